"""The ``sk-mnist`` command: train, search, evaluate and predict from the shell.

Every command prints its report to stdout. Bad options, missing files,
unreadable images and failed fits give one line on stderr and a non-zero
exit status (2 for usage errors, 130 for Ctrl-C, 1 for everything else),
never a traceback. Options are checked, by building the estimator, before
any data are loaded or any file is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

from .exceptions import TrainingDivergedError

MODEL_FILE = "model.skops"
CARD_FILE = "README.md"

# The classifier parameters the command line exposes: option, how to read
# one value, help. Defaults come from KerasMLPClassifier().get_params().
# Sizes and rates per hidden layer are written 512x512 and 0.2x0.1, in
# options and in --grid alike.
_MODEL_OPTIONS = {
    "hidden_layer_sizes": ("--hidden", "_layers", "units of each hidden layer"),
    "activation": ("--activation", "str", "activation of the hidden layers"),
    "dropout": ("--dropout", "_rates", "dropout after each hidden layer"),
    "optimizer": ("--optimizer", "str", "Keras optimizer"),
    "learning_rate": ("--learning-rate", "float", "the optimizer's learning rate"),
    "batch_size": ("--batch-size", "_positive_int", "samples per gradient step"),
    "epochs": ("--epochs", "_positive_int", "passes over the training data"),
    "validation_fraction": (
        "--validation-fraction",
        "float",
        "held-out fraction for validation curves",
    ),
}
# The command line is reproducible by default, unlike the estimator.
_CLI_DEFAULTS = {"random_state": 0}
_OUTPUTS = {
    "train": [
        MODEL_FILE,
        CARD_FILE,
        "metrics.json",
        "history.csv",
        "training_curves.png",
        "confusion_matrix.png",
        "misclassified.png",
    ],
    "search": [MODEL_FILE, "cv_results.csv", "search_results.png"],
}


class CommandError(Exception):
    """An error to report in one line, without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _layers(text):
    """'512x512' -> (512, 512); '512' -> (512,)."""
    try:
        return tuple(_positive_int(part) for part in text.lower().split("x"))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"hidden layer sizes are positive integers joined by x, such as 512 or "
            f"512x512; got {text!r}"
        ) from None


def _rates(text):
    """'0.2' -> 0.2; '0.2x0.1' -> (0.2, 0.1): one rate, or one per layer."""
    try:
        rates = tuple(float(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"dropout is a rate such as 0.2, or one per layer such as 0.2x0.1; got "
            f"{text!r}"
        ) from None
    return rates[0] if len(rates) == 1 else rates


def _reader(name):
    return {"_layers": _layers, "_rates": _rates, "_positive_int": _positive_int}.get(
        name, {"str": str, "float": float}.get(name)
    )


def _grid_entry(text):
    """'hidden=256,512x512' -> ('hidden_layer_sizes', [(256,), (512, 512)])."""
    key, sep, values = text.partition("=")
    options = {
        option.lstrip("-"): name for name, (option, *_) in _MODEL_OPTIONS.items()
    }
    name = options.get(key.strip())
    if not sep or not values or name is None:
        raise argparse.ArgumentTypeError(
            f"grid entries are KEY=V1,V2,... with KEY one of {sorted(options)}; "
            f"got {text!r}"
        )
    read = _reader(_MODEL_OPTIONS[name][1])
    try:
        return name, [read(value.strip()) for value in values.split(",")]
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise argparse.ArgumentTypeError(f"in {text!r}: {exc}") from None


def _format_default(value):
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return value


def _shared_options(parser, *, model=True, out=None):
    """Declare the options the subcommands share, once."""
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="a local mnist.npz or folder of IDX files (default: $SK_MNIST_DATA, "
        "else the cache, else a download)",
    )
    parser.add_argument(
        "--backend",
        choices=["tensorflow", "jax"],
        help="Keras backend (default: $KERAS_BACKEND or tensorflow)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="let TensorFlow and Keras print their own warnings",
    )
    if out is not None:
        parser.add_argument(
            "--out", default=out, metavar="DIR", help=f"output folder (default: {out})"
        )
    if not model:
        return
    from ._classifier import KerasMLPClassifier

    defaults = {**KerasMLPClassifier().get_params(), **_CLI_DEFAULTS}
    parser.add_argument(
        "--train-size",
        type=_positive_int,
        metavar="N",
        help="train on the first N training images only (default: all 60,000)",
    )
    for name, (option, reader, text) in _MODEL_OPTIONS.items():
        parser.add_argument(
            option,
            dest=name,
            type=_reader(reader),
            default=defaults[name],
            help=f"{text} (default: {_format_default(defaults[name])})",
        )
    parser.add_argument(
        "--early-stopping",
        action="store_true",
        help="stop when the monitored score stops improving",
    )
    parser.add_argument(
        "--random-state",
        type=int,
        default=defaults["random_state"],
        help=f"seed (default: {defaults['random_state']})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sk-mnist`` command."""
    from ._version import __version__

    parser = _Parser(
        prog="sk-mnist",
        description="Train, tune, evaluate and use the classic Keras MNIST network "
        "with scikit-learn.",
    )
    parser.add_argument(
        "--version", action="version", version=f"sk-mnist {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    train = commands.add_parser(
        "train", help="fit on the training set, report on the test set"
    )
    _shared_options(train, out="sk-mnist-out")

    search = commands.add_parser("search", help="grid search with cross-validation")
    _shared_options(search, out="sk-mnist-search")
    search.add_argument(
        "--grid",
        type=_grid_entry,
        nargs="+",
        required=True,
        metavar="KEY=VALUES",
        help="e.g. hidden=256,512,512x512 dropout=0,0.2",
    )
    search.add_argument(
        "--cv", type=_positive_int, default=3, help="folds (default: 3)"
    )
    search.add_argument(
        "--n-jobs", type=int, default=1, help="parallel fits (default: 1)"
    )

    for name, text in (
        ("evaluate", "re-evaluate a saved model on the test set"),
        ("predict", "classify image files of digits"),
        ("export", "export a saved model for serving"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "model",
            metavar="MODEL",
            help="a folder written by train/search, or a model file"
            + (
                " (.skops, or .onnx to run it with onnxruntime alone)"
                if name == "predict"
                else ""
            ),
        )
        if name == "predict":
            command.add_argument(
                "images", nargs="+", metavar="IMAGE", help="image files of one digit"
            )
        if name == "export":
            command.add_argument(
                "--format", choices=["onnx"], default="onnx", help="(default: onnx)"
            )
            command.add_argument(
                "--out", required=True, metavar="FILE", help="the file to write"
            )
        _shared_options(command, model=False)
    return parser


def main(argv=None) -> int:
    """Run the ``sk-mnist`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        _set_up_backend(args)
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"sk-mnist {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, OSError, ValueError, TrainingDivergedError) as exc:
        # The errors sk-mnist, scikit-learn and skops document for bad input
        # and bad data: DataFileError, UnsafeModelError, InvalidParameterError
        # and NotFittedError are ValueErrors, DownloadError an OSError.
        print(f"sk-mnist {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _set_up_backend(args):
    """Choose the Keras backend and, unless --verbose, quiet its own chatter."""
    if args.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != args.backend:
            raise CommandError("Keras is already imported with another backend")
        os.environ["KERAS_BACKEND"] = args.backend
    if args.verbose:
        return
    # An ONNX model is served by onnxruntime alone: no Keras, no TensorFlow.
    serving_onnx = args.command == "predict" and _is_onnx(args.model)
    # TensorFlow's C++ notes, its Python logger (the retracing notice) and
    # the deprecation warnings of the backends' own internals.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl", "jax", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("tensorflow", "keras", "jax", "absl", "google"):
        warnings.filterwarnings("ignore", module=module)
    if not serving_onnx:
        _import_keras_quietly()


def _import_keras_quietly():
    """Start Keras and its backend with file descriptor 2 sent to /dev/null.

    TensorFlow's C++ start-up notes (oneDNN, CUDA drivers) are written by
    absl to the process's stderr, at import and when the first tensor places
    its device, whatever TF_CPP_MIN_LOG_LEVEL says; no Python setting reaches
    them. An import error still raises, after stderr is restored.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            from ._keras import network

            network.place_device()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _train(args):
    from .exceptions import FitInterruptedWarning

    pipe = _pipeline(args, verbose=1 if sys.stdout.isatty() else 2)
    out = _check_out(args.out, _OUTPUTS["train"])
    X, y = _load_data(args, "train")
    X_test, y_test = _load_data(args, "test")
    print(pipe[-1].summary(n_features=784, n_classes=10))
    print(
        f"Training on {len(X)} images for up to {args.epochs} epochs "
        f"(backend: {_backend()})",
        flush=True,
    )
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitInterruptedWarning)
        pipe.fit(X, y)
    interrupted = False
    for warning in caught:
        if issubclass(warning.category, FitInterruptedWarning):
            interrupted = True
        else:  # show the others (ConvergenceWarning) as they would have been
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    seconds = time.perf_counter() - start
    metrics, predicted = _report(pipe, X_test, y_test)
    metrics.update(
        n_train=len(X),
        epochs_trained=int(pipe[-1].n_iter_),
        interrupted=interrupted,
        fit_seconds=round(seconds, 2),
        backend=_backend(),
        params=_json_params(pipe[-1]),
        command=_command_line(),
    )
    out.mkdir(parents=True, exist_ok=True)
    _write_model(pipe, out)
    _write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    _write_text(out / "history.csv", _history_csv(pipe[-1].history_))
    pictures = _save_pictures(pipe, out, X_test, y_test, predicted)
    _write_text(
        out / CARD_FILE, _model_card(pipe, metrics, y_test, predicted, pictures)
    )
    written = [MODEL_FILE, "metrics.json", "history.csv", *pictures, CARD_FILE]
    print(f"Wrote {', '.join(written)} to {out}")
    if interrupted:
        print(
            f"sk-mnist train: interrupted after {metrics['epochs_trained']} epochs; "
            f"the files in {out} hold the model as it was then",
            file=sys.stderr,
        )
        return 130
    return 0


def _search(args):
    from sklearn.model_selection import GridSearchCV, ParameterGrid

    grid = _grid(args)
    pipe = _pipeline(args, verbose=0)
    for candidate in ParameterGrid(grid):
        _check_estimator(pipe.set_params(**candidate)[-1], f"grid value {candidate}")
    out = _check_out(args.out, _OUTPUTS["search"])
    X, y = _load_data(args, "train")
    search = GridSearchCV(
        _pipeline(args, verbose=0),
        grid,
        cv=args.cv,
        n_jobs=args.n_jobs,
        error_score="raise",
    )
    print(
        f"Searching {len(ParameterGrid(grid))} candidates x {args.cv} folds on "
        f"{len(X)} images (backend: {_backend()})",
        flush=True,
    )
    search.fit(X, y)
    table = _ranked_table(search.cv_results_)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    out.mkdir(parents=True, exist_ok=True)
    _write_model(search.best_estimator_, out)
    _write_text(out / "cv_results.csv", _frame(search.cv_results_).to_csv(index=False))
    _save_search_plot(search, grid, out)
    X_test, y_test = _load_data(args, "test")
    print(f"Best: {search.best_params_} (mean CV accuracy {search.best_score_:.4f})")
    print(f"Best pipeline's test accuracy: {search.score(X_test, y_test):.4f}")
    print(f"Wrote {', '.join(_OUTPUTS['search'])} to {out}")
    return 0


def _evaluate(args):
    from ._persistence import load

    pipe = load(_model_path(args.model))
    X_test, y_test = _load_data(args, "test")
    _report(pipe, X_test, y_test)
    return 0


def _predict(args):
    import numpy as np

    from .datasets._images import read_digit_image

    images = np.stack([read_digit_image(path) for path in args.images])
    if _is_onnx(args.model):
        labels, proba = _run_onnx(args.model, images)
    else:
        from ._persistence import load

        pipe = load(_model_path(args.model))
        proba = pipe.predict_proba(images)
        labels = pipe.classes_[proba.argmax(axis=1)]
    for path, label, row in zip(args.images, labels, proba, strict=True):
        print(f"{path}: {label} (probability {row.max():.3f})")
    return 0


def _export(args):
    from ._persistence import load
    from .onnx import to_onnx

    pipe = load(_model_path(args.model))
    out = Path(args.out)
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; give the file to write")
    to_onnx(pipe, out, images=True)
    print(
        f"Wrote {out} (input: uint8 images {list(pipe[0].image_shape_)}; outputs: "
        f"label, probabilities)"
    )
    return 0


def _is_onnx(model):
    return str(model).lower().endswith(".onnx")


def _run_onnx(path, images):
    """Labels and probabilities from an ONNX model of uint8 images, by onnxruntime."""
    from ._utils._files import read_bounded

    try:
        import onnxruntime
    except ImportError:
        raise CommandError(
            'serving an .onnx model needs onnxruntime: pip install "sk-mnist[onnx]"'
        ) from None
    data = read_bounded(path, 2 * 1024**3, what="ONNX model")
    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors subclass Exception only
        raise CommandError(
            f"{path}: not a readable ONNX model ({_one_line(exc)[:200]})"
        ) from None
    inputs = session.get_inputs()
    shape = [None, *images.shape[1:]]
    if (
        len(inputs) != 1
        or inputs[0].type != "tensor(uint8)"
        or [d if isinstance(d, int) else None for d in inputs[0].shape] != shape
    ):
        found = [(i.name, i.type, i.shape) for i in inputs]
        raise CommandError(
            f"{path}: expected an ONNX model of uint8 images {shape} (written by "
            f"sk-mnist export); its inputs are {found}"
        )
    outputs = [o.name for o in session.get_outputs()]
    if outputs[:2] != ["label", "probabilities"]:
        raise CommandError(
            f"{path}: expected the outputs label and probabilities; got {outputs}"
        )
    labels, proba = session.run(outputs[:2], {inputs[0].name: images})
    return labels, proba


_COMMANDS = {
    "train": _train,
    "search": _search,
    "evaluate": _evaluate,
    "predict": _predict,
    "export": _export,
}


def _pipeline(args, verbose):
    """flattener + classifier from the options, every parameter checked."""
    from sklearn.pipeline import Pipeline

    from ._classifier import KerasMLPClassifier
    from ._flattener import MNISTFlattener

    params = {name: getattr(args, name) for name in _MODEL_OPTIONS}
    clf = KerasMLPClassifier(
        **params,
        early_stopping=args.early_stopping,
        random_state=args.random_state,
        verbose=verbose,
    )
    _check_estimator(clf, "options")
    return Pipeline([("flatten", MNISTFlattener()), ("mlp", clf)])


def _check_estimator(clf, origin):
    """Validate every parameter of ``clf`` for 784 pixels and 10 digits."""
    try:
        clf._validate_params()
        clf._check_params(n_features=784, n_classes=10)
    except ValueError as exc:
        raise CommandError(f"{origin}: {_one_line(exc)}") from None


def _grid(args):
    grid = {}
    for name, values in args.grid:
        if f"mlp__{name}" in grid:
            raise CommandError(f"--grid names {name} twice")
        grid[f"mlp__{name}"] = values
    return grid


def _check_out(path, names):
    """The output folder, checked before any work: writable, no output a folder.

    Writing is tried (a temporary file in it), then undone: the folder is
    created only when there is something to write, so bad options or data
    leave no empty folder behind.
    """
    out = Path(path)
    for name in names:
        if (out / name).is_dir():
            raise CommandError(f"--out {out}: {out / name} is a folder")
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise CommandError(
            f"--out {out}: cannot write there ({exc.strerror})"
        ) from None
    finally:
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
    return out


def _load_data(args, part):
    """The images of ``part``; the training set cut to ``--train-size`` images."""
    from .datasets import fetch_mnist

    X, y = fetch_mnist(subset=part, path=args.data, return_X_y=True)
    n = getattr(args, "train_size", None) if part == "train" else None
    return (X[:n], y[:n]) if n else (X, y)


def _report(pipe, X_test, y_test):
    """Accuracy, log loss and the classification report on the test set."""
    from sklearn.metrics import accuracy_score, classification_report, log_loss

    proba = pipe.predict_proba(X_test)
    predicted = pipe.classes_[proba.argmax(axis=1)]
    metrics = {
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "test_loss": float(log_loss(y_test, proba, labels=pipe.classes_)),
        "n_test": len(y_test),
    }
    print(f"Test accuracy: {metrics['test_accuracy']:.4f}")
    print(f"Test loss: {metrics['test_loss']:.4f}")
    print(classification_report(y_test, predicted, digits=4))
    return metrics, predicted


def _write_model(estimator, out):
    from ._persistence import save

    save(estimator, out / MODEL_FILE)


def _write_text(path, text):
    from ._utils._files import atomic_write

    with atomic_write(path, "w") as file:
        file.write(text)


def _save_figure(figure, path):
    from ._utils._files import atomic_write

    with atomic_write(path) as file:
        figure.savefig(file, format="png", dpi=100)


def _save_pictures(pipe, out, X_test, y_test, predicted):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    from .plotting import DigitGridDisplay, TrainingHistoryDisplay

    figures = {
        "training_curves.png": TrainingHistoryDisplay.from_estimator(pipe).figure_,
        "confusion_matrix.png": ConfusionMatrixDisplay.from_predictions(
            y_test, predicted, colorbar=False
        ).figure_,
    }
    if (predicted != y_test).any():
        figures["misclassified.png"] = DigitGridDisplay.from_estimator(
            pipe,
            X_test,
            y_test,
            n_images=9,
            only_errors=True,
            show_proba=True,
            random_state=0,
        ).figure_
    for name, figure in figures.items():
        _save_figure(figure, out / name)
    plt.close("all")
    return list(figures)


def _save_search_plot(search, grid, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import SearchResultsDisplay

    param = next(iter(grid)) if len(grid) == 1 else None
    _save_figure(
        SearchResultsDisplay.from_search(search, param=param).figure_,
        out / "search_results.png",
    )
    plt.close("all")


def _model_card(pipe, metrics, y_test, predicted, pictures):
    """A skops model card: parameters, data, metrics, pictures, provenance."""
    import pandas as pd
    from sklearn.metrics import classification_report
    from skops import card

    from ._persistence import TRUSTED_TYPES

    model_card = card.Card(pipe, template=None)
    state = (
        f"Training was interrupted after {metrics['epochs_trained']} epochs."
        if metrics["interrupted"]
        else f"Trained for {metrics['epochs_trained']} epochs."
    )
    report = classification_report(y_test, predicted, digits=4, output_dict=True)
    model_card.add(
        **{
            "Model description": (
                "The classic Keras Dense/Dropout MNIST network, as an "
                "sk-mnist pipeline (`MNISTFlattener` + `KerasMLPClassifier`). " + state
            ),
            "Training data": (
                f"The first {metrics['n_train']} of MNIST's 60,000 training "
                f"images (Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0)."
            ),
            "Evaluation data": f"MNIST's {metrics['n_test']} test images.",
            "How it was made": (
                f"`{metrics['command']}` on the {metrics['backend']} backend, in "
                f"{metrics['fit_seconds']} s."
            ),
            "How to load it": (
                '```python\nimport sk_mnist\n\npipe = sk_mnist.load("model.skops")\n'
                '```\n\nor `skops.io.load("model.skops", trusted=[...])` naming '
                f"{', '.join(f'`{t}`' for t in TRUSTED_TYPES)}."
            ),
        }
    )
    model_card.add_metrics(
        description="On the test images.",
        accuracy=round(metrics["test_accuracy"], 4),
        log_loss=round(metrics["test_loss"], 4),
    )
    params = metrics["params"]
    model_card.add_table(
        **{
            "Hyperparameters": {
                "parameter": list(params),
                "value": [json.dumps(value) for value in params.values()],
            },
            "Versions": _versions(),
            "Classification report": pd.DataFrame(report)
            .T.round(4)
            .reset_index(names="class"),
        }
    )
    for name in pictures:
        title = name.removesuffix(".png").replace("_", " ").capitalize()
        model_card.add_plot(alt_text=title, **{title: name})
    return model_card.render()


def _versions():
    from importlib.metadata import version

    from ._version import __version__

    names = ["sk-mnist", "scikit-learn", "keras", _backend(), "skops"]
    found = [__version__, *(version(n) for n in names[1:])]
    return {"package": names, "version": found}


def _model_path(text) -> Path:
    path = Path(text)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise CommandError(
            f"{path}: no saved model (run `sk-mnist train --out DIR` first)"
        )
    return path


def _backend() -> str:
    from ._keras import network

    return network.backend_name()


def _json_params(estimator) -> dict:
    """The estimator's parameters as JSON: tuples as lists, objects by name."""
    params = {}
    for key, value in estimator.get_params(deep=False).items():
        if isinstance(value, tuple):
            value = list(value)
        if not (value is None or isinstance(value, bool | int | float | str | list)):
            value = type(value).__name__
        params[key] = value
    return params


def _command_line():
    return shlex.join(["sk-mnist", *sys.argv[1:]])


def _history_csv(history):
    import pandas as pd

    frame = pd.DataFrame(history)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
    return frame.to_csv()


def _frame(results):
    import pandas as pd

    return pd.DataFrame(results)


def _ranked_table(results):
    columns = [
        "rank_test_score",
        "mean_test_score",
        "std_test_score",
        "mean_fit_time",
        "params",
    ]
    table = _frame(results)[columns].sort_values("rank_test_score")
    table["params"] = table["params"].map(
        lambda p: ", ".join(f"{k.removeprefix('mlp__')}={v}" for k, v in p.items())
    )
    return table


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
