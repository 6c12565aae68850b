"""``sk-mnist train``: fit on the training set, report on the test set."""

from __future__ import annotations

import json
import sys
import time
import warnings

from . import _progress, _report, _signals
from ._common import (
    CARD_FILE,
    MODEL_FILE,
    add_data_options,
    add_model_options,
    backend,
    check_constraints,
    check_holdout,
    classifier,
    load_data,
    pipeline,
    write_text,
)
from ._outputs import OutputFolder

OUTPUTS = [
    MODEL_FILE,
    CARD_FILE,
    "metrics.json",
    "history.csv",
    "training_curves.png",
    "confusion_matrix.png",
    "misclassified.png",
]


def add_parser(commands):
    parser = commands.add_parser(
        "train", help="fit on the training set, report on the test set"
    )
    add_data_options(parser)
    add_model_options(parser, out="sk-mnist-out")


def check(args):
    """The options' ranges, before the backend loads (run checks the rest)."""
    check_constraints(classifier(args))


def run(args):
    from ..exceptions import FitInterruptedWarning

    on_terminal = sys.stdout.isatty()
    pipe = pipeline(args, verbose=1 if on_terminal else 2)
    if on_terminal:
        # One view of the pipeline, its fit and each epoch; Keras's own bar
        # gives way to it. Off a terminal, Keras's one line per epoch.
        _progress.show(pipe)
    out = OutputFolder(args.out, OUTPUTS)
    X, y = load_data(args, "train")
    check_holdout(pipe[-1], len(X))
    X_test, y_test = load_data(args, "test")
    print(pipe[-1].summary(n_features=784, n_classes=10))
    print(
        f"Training on {len(X)} images for up to {args.epochs} epochs "
        f"(backend: {backend()})",
        flush=True,
    )
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitInterruptedWarning)
        pipe.fit(X, y)
    _progress.hide(pipe)
    interrupted = False
    for warning in caught:
        if issubclass(warning.category, FitInterruptedWarning):
            interrupted = True
        else:  # show the others (ConvergenceWarning) as they would have been
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    seconds = time.perf_counter() - start
    # From here on, an interrupt leaves --out as it was (the report included).
    with out.writing() as folder:
        metrics, predicted = _report.report(pipe, X_test, y_test)
        metrics.update(
            n_train=len(X),
            epochs_trained=int(pipe[-1].n_iter_),
            interrupted=interrupted,
            fit_seconds=round(seconds, 2),
            backend=backend(),
            params=_report.json_params(pipe[-1]),
            command=_report.command_line(),
        )
        _report.save_model(pipe, folder)
        write_text(folder / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        write_text(folder / "history.csv", _report.history_csv(pipe[-1].history_))
        pictures = _report.save_pictures(pipe, folder, X_test, y_test, predicted)
        write_text(
            folder / CARD_FILE,
            _report.model_card(pipe, metrics, y_test, predicted, pictures),
        )
    written = [MODEL_FILE, "metrics.json", "history.csv", *pictures, CARD_FILE]
    print(f"Wrote {', '.join(written)} to {out.path}")
    if interrupted:
        print(
            f"sk-mnist train: interrupted after {metrics['epochs_trained']} epochs; "
            f"the files in {out.path} hold the model as it was then",
            file=sys.stderr,
        )
        return _signals.exit_status()
    return 0
