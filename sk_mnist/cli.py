"""The ``sk-mnist`` command: train, search, evaluate and predict from the shell.

Every command prints its report to stdout. Bad options, missing files and
unreadable images give one line on stderr and a non-zero exit status
(2 for usage errors, 1 for everything else), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

MODEL_FILE = "model.skmnist"
_PARAM_NAMES = {
    "hidden": "hidden_layer_sizes",
    "hidden_layer_sizes": "hidden_layer_sizes",
    "activation": "activation",
    "dropout": "dropout",
    "optimizer": "optimizer",
    "learning-rate": "learning_rate",
    "learning_rate": "learning_rate",
    "batch-size": "batch_size",
    "batch_size": "batch_size",
    "epochs": "epochs",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class CommandError(Exception):
    """An error to report in one line, without a traceback."""


# ----------------------------------------------------------------- parsing
def _layers(text: str) -> tuple[int, ...]:
    """'512x512' or '512' -> (512, 512) or (512,)."""
    try:
        sizes = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"hidden layer sizes look like 512 or 512x512, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"hidden layer sizes must be positive, got {text!r}"
        )
    return sizes


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _grid_entry(text: str):
    """'hidden=256,512x512' -> ('mlp__hidden_layer_sizes', [(256,), (512, 512)])."""
    key, sep, values = text.partition("=")
    if not sep or not values:
        raise argparse.ArgumentTypeError(
            f"grid entries look like hidden=256,512x512 or dropout=0,0.2; got {text!r}"
        )
    name = _PARAM_NAMES.get(key.strip())
    if name is None:
        raise argparse.ArgumentTypeError(
            f"unknown grid parameter {key!r}; choose from "
            f"{sorted(k for k in _PARAM_NAMES if '_' not in k)}"
        )
    convert = {
        "hidden_layer_sizes": _layers,
        "dropout": float,
        "learning_rate": float,
        "batch_size": _positive_int,
        "epochs": _positive_int,
    }.get(name, str)
    try:
        return f"mlp__{name}", [convert(v.strip()) for v in values.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad value in {text!r}: {exc}") from None


def _common(parser, *, model_options=True):
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="a local mnist.npz or folder of IDX files (default: "
        "$SK_MNIST_DATA, else the cache, else a download)",
    )
    parser.add_argument(
        "--backend",
        choices=["tensorflow", "jax"],
        help="Keras backend (default: $KERAS_BACKEND or tensorflow)",
    )
    if not model_options:
        return
    parser.add_argument(
        "--subset",
        type=_positive_int,
        metavar="N",
        help="train on the first N training images only",
    )
    parser.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="+",
        default=[512, 512],
        metavar="UNITS",
        help="units of each hidden layer (default: 512 512)",
    )
    parser.add_argument(
        "--activation", default="relu", help="hidden activation (default: relu)"
    )
    parser.add_argument(
        "--dropout",
        type=float,
        nargs="+",
        default=[0.2],
        metavar="RATE",
        help="dropout after each hidden layer, one rate or one per layer "
        "(default: 0.2)",
    )
    parser.add_argument(
        "--optimizer", default="rmsprop", help="Keras optimizer (default: rmsprop)"
    )
    parser.add_argument(
        "--learning-rate", type=float, help="the optimizer's learning rate"
    )
    parser.add_argument(
        "--epochs", type=_positive_int, default=20, help="epochs (default: 20)"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=128,
        help="batch size (default: 128)",
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.0,
        help="held-out fraction for validation curves (default: 0)",
    )
    parser.add_argument(
        "--early-stopping",
        action="store_true",
        help="stop when the monitored score stops improving",
    )
    parser.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")


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
    _common(train)
    train.add_argument(
        "--out",
        default="sk-mnist-out",
        metavar="DIR",
        help="folder for the model, metrics and pictures (default: sk-mnist-out)",
    )

    search = commands.add_parser("search", help="grid search with cross-validation")
    _common(search)
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
    search.add_argument(
        "--out",
        default="sk-mnist-search",
        metavar="DIR",
        help="folder for the results (default: sk-mnist-search)",
    )

    evaluate = commands.add_parser(
        "evaluate", help="re-evaluate a saved model on the test set"
    )
    evaluate.add_argument(
        "model", metavar="DIR", help="a folder written by train/search, or a model file"
    )
    _common(evaluate, model_options=False)

    predict = commands.add_parser("predict", help="classify image files of digits")
    predict.add_argument(
        "model", metavar="DIR", help="a folder written by train/search, or a model file"
    )
    predict.add_argument(
        "images", nargs="+", metavar="IMAGE", help="PNG/JPEG files of one digit each"
    )
    predict.add_argument(
        "--backend",
        choices=["tensorflow", "jax"],
        help="Keras backend (default: $KERAS_BACKEND or tensorflow)",
    )
    return parser


# ---------------------------------------------------------------- commands
def main(argv=None) -> int:
    """Run the ``sk-mnist`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ start-up notes would bury the report; a user's own
    # setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.backend:
        if (
            "keras" in sys.modules
            and os.environ.get("KERAS_BACKEND", "tensorflow") != args.backend
        ):
            print(
                "sk-mnist: error: Keras is already imported with another backend",
                file=sys.stderr,
            )
            return 1
        os.environ["KERAS_BACKEND"] = args.backend
    from .exceptions import DataFileError, DownloadError, UnsafeModelError

    try:
        return {
            "train": _train,
            "search": _search,
            "evaluate": _evaluate,
            "predict": _predict,
        }[args.command](args)
    except (
        CommandError,
        DataFileError,
        DownloadError,
        UnsafeModelError,
        FileNotFoundError,
        PermissionError,
        ValueError,
        TypeError,
    ) as exc:
        print(f"sk-mnist {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sk-mnist {args.command}: interrupted", file=sys.stderr)
        return 130


def _load_data(args, subset):
    """The images of ``subset``; the training set cut to ``--subset`` images."""
    from .datasets import fetch_mnist

    X, y = fetch_mnist(subset=subset, path=args.data, return_X_y=True)
    n = getattr(args, "subset", None) if subset == "train" else None
    return (X[:n], y[:n]) if n else (X, y)


def _pipeline(args, verbose):
    from sklearn.pipeline import Pipeline

    from ._classifier import KerasMLPClassifier
    from ._flattener import MNISTFlattener

    dropout = args.dropout[0] if len(args.dropout) == 1 else tuple(args.dropout)
    return Pipeline(
        [
            ("flatten", MNISTFlattener()),
            (
                "mlp",
                KerasMLPClassifier(
                    hidden_layer_sizes=tuple(args.hidden),
                    activation=args.activation,
                    dropout=dropout,
                    optimizer=args.optimizer,
                    learning_rate=args.learning_rate,
                    epochs=args.epochs,
                    batch_size=args.batch_size,
                    validation_fraction=args.validation_fraction,
                    early_stopping=args.early_stopping,
                    random_state=args.random_state,
                    verbose=verbose,
                ),
            ),
        ]
    )


def _prepare_out(path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(
            f"cannot create the output folder {out}: {exc.strerror}"
        ) from None
    return out


def _report(pipe, X_test, y_test):
    """Accuracy, log loss and the classification report on the test set."""
    from sklearn.metrics import accuracy_score, classification_report, log_loss

    proba = pipe.predict_proba(X_test)
    classes = pipe.classes_
    predicted = classes[proba.argmax(axis=1)]
    metrics = {
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "test_loss": float(log_loss(y_test, proba, labels=classes)),
        "n_test": int(len(y_test)),
    }
    print(f"Test accuracy: {metrics['test_accuracy']:.4f}")
    print(f"Test loss: {metrics['test_loss']:.4f}")
    print(classification_report(y_test, predicted, digits=4))
    return metrics, predicted


def _save_pictures(pipe, out, X_test, y_test, predicted):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    from .plotting import DigitGridDisplay, TrainingHistoryDisplay

    written = []
    curves = TrainingHistoryDisplay.from_estimator(pipe)
    curves.figure_.savefig(out / "training_curves.png", dpi=100)
    written.append("training_curves.png")
    matrix = ConfusionMatrixDisplay.from_predictions(y_test, predicted, colorbar=False)
    matrix.figure_.savefig(out / "confusion_matrix.png", dpi=100)
    written.append("confusion_matrix.png")
    if (predicted != y_test).any():
        grid = DigitGridDisplay.from_estimator(
            pipe,
            X_test,
            y_test,
            n_images=9,
            only_errors=True,
            show_proba=True,
            random_state=0,
        )
        grid.figure_.savefig(out / "misclassified.png", dpi=100)
        written.append("misclassified.png")
    plt.close("all")
    return written


def _train(args):
    import numpy as np

    from ._persistence import save

    out = _prepare_out(args.out)
    X, y = _load_data(args, "train")
    X_test, y_test = _load_data(args, "test")
    verbose = 1 if sys.stdout.isatty() else 2
    pipe = _pipeline(args, verbose)
    print(pipe[-1].summary(n_features=X.shape[1], n_classes=len(np.unique(y))))
    print(
        f"Training on {len(X)} images for up to {args.epochs} epochs "
        f"(backend: {_backend()})",
        flush=True,
    )
    start = time.perf_counter()
    pipe.fit(X, y)
    seconds = time.perf_counter() - start
    metrics, predicted = _report(pipe, X_test, y_test)
    mlp = pipe[-1]
    metrics.update(
        n_train=int(len(X)),
        epochs_trained=int(mlp.n_iter_),
        fit_seconds=round(seconds, 2),
        backend=_backend(),
        params=_plain_params(mlp),
    )
    save(pipe, out / MODEL_FILE)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _write_history(mlp.history_, out / "history.csv")
    pictures = _save_pictures(pipe, out, X_test, y_test, predicted)
    print(
        f"Wrote {MODEL_FILE}, metrics.json, history.csv, {', '.join(pictures)} to {out}"
    )
    return 0


def _search(args):
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    from sklearn.model_selection import GridSearchCV

    from ._persistence import save
    from .plotting import SearchResultsDisplay

    out = _prepare_out(args.out)
    X, y = _load_data(args, "train")
    grid = dict(args.grid)
    search = GridSearchCV(
        _pipeline(args, verbose=0), grid, cv=args.cv, n_jobs=args.n_jobs
    )
    n_candidates = 1
    for values in grid.values():
        n_candidates *= len(values)
    print(
        f"Searching {n_candidates} candidates x {args.cv} folds on {len(X)} images "
        f"(backend: {_backend()})",
        flush=True,
    )
    search.fit(X, y)
    results = pd.DataFrame(search.cv_results_)
    table = results[
        [
            "rank_test_score",
            "mean_test_score",
            "std_test_score",
            "mean_fit_time",
            "params",
        ]
    ].sort_values("rank_test_score")
    table["params"] = table["params"].map(
        lambda p: ", ".join(f"{k.removeprefix('mlp__')}={v}" for k, v in p.items())
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    results.to_csv(out / "cv_results.csv", index=False)
    param = next(iter(grid)) if len(grid) == 1 else None
    SearchResultsDisplay.from_search(search, param=param).figure_.savefig(
        out / "search_results.png", dpi=100
    )
    save(search.best_estimator_, out / MODEL_FILE)
    X_test, y_test = _load_data(args, "test")
    print(f"Best: {search.best_params_} (mean CV accuracy {search.best_score_:.4f})")
    print(f"Best pipeline's test accuracy: {search.score(X_test, y_test):.4f}")
    print(f"Wrote cv_results.csv, search_results.png, {MODEL_FILE} to {out}")
    return 0


def _model_path(text) -> Path:
    path = Path(text)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise CommandError(
            f"{path}: no saved model (run `sk-mnist train --out DIR` first)"
        )
    return path


def _evaluate(args):
    from ._persistence import load

    pipe = load(_model_path(args.model))
    X_test, y_test = _load_data(args, "test")
    _report(pipe, X_test, y_test)
    return 0


def _predict(args):
    import numpy as np

    from ._persistence import load
    from .datasets._images import read_digit_image

    images = np.stack([read_digit_image(path) for path in args.images])
    pipe = load(_model_path(args.model))
    proba = pipe.predict_proba(images)
    for path, row in zip(args.images, proba, strict=True):
        best = int(row.argmax())
        print(f"{path}: {pipe.classes_[best]} (probability {row[best]:.3f})")
    return 0


# ------------------------------------------------------------------ helpers
def _backend() -> str:
    import keras

    return keras.backend.backend()


def _plain_params(estimator) -> dict:
    params = {}
    for key, value in estimator.get_params(deep=False).items():
        if isinstance(value, tuple):
            value = list(value)
        if value is None or isinstance(value, bool | int | float | str | list):
            params[key] = value
    return params


def _write_history(history, path):
    import pandas as pd

    frame = pd.DataFrame(history)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
    frame.to_csv(path)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
