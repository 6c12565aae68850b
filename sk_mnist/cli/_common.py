"""What the subcommands share: options, the pipeline, data, models, printing."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import unicodedata
import warnings
from pathlib import Path

MODEL_FILE = "model.skops"
CARD_FILE = "README.md"

# The classifier parameters the command line exposes: option, how to read
# one value, help. Defaults come from KerasMLPClassifier().get_params().
# Sizes and rates per hidden layer are written 512x512 and 0.2x0.1, in
# options and in --grid alike.
MODEL_OPTIONS = {
    "hidden_layer_sizes": ("--hidden", "layers", "units of each hidden layer"),
    "activation": ("--activation", "str", "activation of the hidden layers"),
    "dropout": ("--dropout", "rates", "dropout after each hidden layer"),
    "input_dropout": ("--input-dropout", "float", "dropout on the input pixels"),
    "optimizer": ("--optimizer", "str", "Keras optimizer"),
    "momentum": ("--momentum", "float", "momentum of --optimizer sgd"),
    "nesterovs_momentum": (
        "--nesterovs-momentum",
        "boolean",
        "whether sgd's momentum is Nesterov's: true or false",
    ),
    "learning_rate": ("--learning-rate", "float", "the optimizer's learning rate"),
    "learning_rate_schedule": (
        "--learning-rate-schedule",
        "str",
        "constant, cosine or adaptive",
    ),
    "alpha": ("--alpha", "float", "L2 penalty on the weights"),
    "max_norm": (
        "--max-norm",
        "float",
        "largest norm of a hidden unit's incoming weights",
    ),
    "batch_size": ("--batch-size", "positive_int", "samples per gradient step"),
    "epochs": ("--epochs", "positive_int", "passes over the training data"),
    "validation_fraction": (
        "--validation-fraction",
        "float",
        "held-out fraction for validation curves",
    ),
}
# The command line is reproducible by default, unlike the estimator.
_CLI_DEFAULTS = {"random_state": 0}
#: The fewest training images worth a run: fewer cannot hold the ten digits.
MIN_TRAIN_SIZE = 10


class CommandError(Exception):
    """An error to report in one line, without a traceback."""


class UsageError(CommandError):
    """A bad option value: reported as argparse reports its own (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr."""

    def error(self, message):
        message = one_line(message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text):
    return at_least(1)(text)


def at_least(low):
    """An argparse type: an integer of at least ``low``."""

    def read(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            qualifier = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise argparse.ArgumentTypeError(f"expected {qualifier}, got {text!r}")
        return value

    return read


def n_jobs(text):
    """joblib's n_jobs: a positive count, or -1, -2... for all CPUs but some."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of jobs, or -1 for one per CPU; got {text!r}"
        )
    return value


def layers(text):
    """'512x512' -> (512, 512); '512' -> (512,)."""
    try:
        return tuple(positive_int(part) for part in text.lower().split("x"))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"hidden layer sizes are positive integers joined by x, such as 512 or "
            f"512x512; got {text!r}"
        ) from None


def rates(text):
    """'0.2' -> 0.2; '0.2x0.1' -> (0.2, 0.1): one rate, or one per layer."""
    try:
        values = tuple(float(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"dropout is a rate such as 0.2, or one per layer such as 0.2x0.1; got "
            f"{text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def boolean(text):
    """'true'/'yes'/'1' -> True; 'false'/'no'/'0' -> False.

    By hand: argparse's ``BooleanOptionalAction`` makes --x/--no-x flags, but
    ``--grid nesterovs-momentum=true,false`` needs the value as text too, and
    distutils' ``strtobool`` is gone from Python 3.12.
    """
    words = {
        "true": True,
        "yes": True,
        "1": True,
        "false": False,
        "no": False,
        "0": False,
    }
    try:
        return words[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"expected true or false, got {text!r}"
        ) from None


READERS = {
    "boolean": boolean,
    "layers": layers,
    "rates": rates,
    "positive_int": positive_int,
    "str": str,
    "float": float,
}


def _format_default(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return value


def add_data_options(parser):
    """--data, --backend and --verbose."""
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


def add_model_options(parser, *, out):
    """--out, --train-size and one option per classifier parameter."""
    from .._classifier import KerasMLPClassifier

    parser.add_argument(
        "--out", default=out, metavar="DIR", help=f"output folder (default: {out})"
    )
    defaults = {**KerasMLPClassifier().get_params(), **_CLI_DEFAULTS}
    parser.add_argument(
        "--train-size",
        type=at_least(MIN_TRAIN_SIZE),
        metavar="N",
        help="train on the first N training images only (default: all 60,000)",
    )
    for name, (option, reader, text) in MODEL_OPTIONS.items():
        parser.add_argument(
            option,
            dest=name,
            type=READERS[reader],
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


def add_model_argument(parser, text):
    parser.add_argument("model", metavar="MODEL", help=text)


def classifier(args, verbose=0):
    """The classifier the options ask for (not checked: see check_estimator)."""
    from .._classifier import KerasMLPClassifier

    params = {name: getattr(args, name) for name in MODEL_OPTIONS}
    return KerasMLPClassifier(
        **params,
        early_stopping=args.early_stopping,
        random_state=args.random_state,
        verbose=verbose,
    )


def pipeline(args, verbose, *, checked=True):
    """flattener + classifier from the options, every parameter checked."""
    from sklearn.pipeline import Pipeline

    from .._flattener import MNISTFlattener

    clf = classifier(args, verbose)
    if checked:
        check_estimator(clf)
    return Pipeline([("flatten", MNISTFlattener()), ("mlp", clf)])


# "The 'alpha' parameter of KerasMLPClassifier must be ... Got -1.0 instead."
_CONSTRAINT = re.compile(
    r"The '(?P<name>\w+)' parameter of \w+ (?P<rule>must be .*)\. "
    r"Got (?P<value>.*) instead\.$"
)
# "activation must be ...", "hidden_layer_sizes=(512,) makes ...": the
# description's messages begin with the parameter's name.
_NAMED = re.compile(r"(?P<name>[a-z_]+)(?P<rest>[ =].*)$")
_OPTIONS = {
    **{name: option for name, (option, _, _) in MODEL_OPTIONS.items()},
    "random_state": "--random-state",
}


def grid_origin(candidate):
    """``{'mlp__dropout': nan}`` -> ``'--grid dropout=nan'``, as it was typed."""
    entries = []
    for key, value in candidate.items():
        name = key.removeprefix("mlp__")
        entries.append(f"{_OPTIONS[name].lstrip('-')}={_format_default(value)}")
    return f"--grid {' '.join(entries)}"


def _usage_error(exc, origin):
    """The estimator's message in the command line's words.

    The estimator names its parameters; the user typed options (``--hidden``,
    or ``hidden=`` in a ``--grid``), so a message about a parameter names
    the option instead, and one from a grid value says which value it was.
    """
    message = one_line(exc)
    found = _CONSTRAINT.match(message)
    if found:
        name, rest = found["name"], f" {found['rule']}; got {found['value']}"
    else:
        found = _NAMED.match(message)
        name, rest = (found["name"], found["rest"]) if found else (None, "")
    option = _OPTIONS.get(name)
    if option is None:
        return UsageError(f"{origin or 'options'}: {message}")
    if origin is None:
        return UsageError(f"{option}{rest}")
    return UsageError(f"{origin}: {option.lstrip('-')}{rest}")


def check_constraints(clf, origin=None):
    """``clf``'s parameters against the estimator's constraints, Keras unloaded.

    The first check of every option, run before the backend is set up (its
    import takes seconds): a value out of range is a usage error naming the
    option, as argparse names its own. ``origin`` is None for the options,
    else where the parameters came from (:func:`grid_origin`).
    """
    from sklearn.utils._param_validation import InvalidParameterError

    from .._description import PARAMETER_CONSTRAINTS
    from .._description import validate_parameter_constraints as validate

    params = clf.get_params()
    try:
        validate(
            PARAMETER_CONSTRAINTS,
            {name: params[name] for name in PARAMETER_CONSTRAINTS},
            caller_name=type(clf).__name__,
        )
    except InvalidParameterError as exc:
        raise _usage_error(exc, origin) from None


def check_estimator(clf, origin=None):
    """Validate every parameter of ``clf`` for 784 pixels and 10 digits.

    By making the description the engine would build the network from, so
    the command line accepts exactly what ``fit`` accepts. What a value
    needs besides its range (a dropout rate per layer, SGD for momentum, an
    activation Keras knows, a network that fits in memory) is a usage error
    too, naming the option as :func:`check_constraints` does.
    """
    from .._description import from_params

    check_constraints(clf, origin)
    try:
        from_params(clf.get_params(), n_features=784, n_classes=10, validate=True)
    except ValueError as exc:
        raise _usage_error(exc, origin) from None


def check_holdout(clf, n_rows, origin=None):
    """That ``clf``'s ``validation_fraction`` leaves images of ``n_rows`` to train on.

    The estimator finds it only in ``fit``, after the data are loaded, and
    names its parameter; here it is a usage error naming the option (or the
    grid value, ``origin``) and the number of images a fit is given.
    """
    from .._description import n_validation

    fraction = clf.validation_fraction
    if fraction and n_validation(fraction, n_rows) >= n_rows:
        where = (
            f"--validation-fraction {fraction}"
            if origin is None
            else f"{origin}: validation-fraction {fraction}"
        )
        raise UsageError(
            f"{where} holds out all {n_rows} images a fit trains on; give a "
            f"smaller fraction or more images (--train-size)"
        )


def load_data(args, part):
    """The images of ``part``; the training set cut to ``--train-size`` images.

    A cut that leaves out a digit of the test set is refused before any
    training: the model could never predict it, and the report would fail.
    """
    import numpy as np

    from ..datasets import fetch_mnist

    X, y = fetch_mnist(subset=part, path=args.data, return_X_y=True)
    n = getattr(args, "train_size", None) if part == "train" else None
    if not n:
        return X, y
    if n > len(X):
        raise UsageError(
            f"--train-size {n} is more than the {len(X)} training images there are"
        )
    missing = np.setdiff1d(np.unique(y), np.unique(y[:n]))
    if missing.size:
        raise CommandError(
            f"--train-size {n}: the first {n} training images hold no "
            f"{', '.join(map(str, missing.tolist()))}; give a larger size"
        )
    return X[:n], y[:n]


def model_path(text) -> Path:
    path = Path(text)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise CommandError(
            f"{path}: no saved model (run `sk-mnist train --out DIR` first)"
        )
    return path


def load_classifier(text):
    """The saved model at ``text`` (a file or a train/search folder).

    It must classify: a file that :func:`sk_mnist.save` wrote from a lone
    transformer loads, but cannot answer ``predict_proba``.
    """
    from .._persistence import load

    path = model_path(text)
    model = load(path)
    if not (hasattr(model, "predict_proba") and hasattr(model, "classes_")):
        raise CommandError(
            f"{path} holds a {type(model).__name__}, not a classifier; save a "
            f"pipeline that ends in KerasMLPClassifier"
        )
    return model


def is_onnx(model):
    return str(model).lower().endswith(".onnx")


def backend() -> str:
    from .._keras import network

    return network.backend_name()


def set_up_backend(args, *, keras_needed=True):
    """Choose the Keras backend and, unless --verbose, quiet its own chatter."""
    if args.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != args.backend:
            raise CommandError("Keras is already imported with another backend")
        os.environ["KERAS_BACKEND"] = args.backend
    if args.verbose:
        return
    # TensorFlow's C++ notes, its Python logger (the retracing notice) and
    # the deprecation warnings of the backends' own internals. Set in the
    # environment, so that worker processes of a search inherit them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl", "jax", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("tensorflow", "keras", "jax", "absl", "google"):
        warnings.filterwarnings("ignore", module=module)
    if keras_needed:
        # The engine starts Keras with its start-up notes muted, here and in
        # the worker processes of a parallel search, which inherit the variable.
        from .._keras import QUIET_ENV, start_backend_quietly

        os.environ[QUIET_ENV] = "1"
        start_backend_quietly()


def printable(text) -> str:
    """``text`` safe for a terminal: control and format characters escaped.

    Labels and messages can come from a file (a class name holding an escape
    sequence that clears the screen, a newline that forges a line of output,
    a right-to-left override); each such character is shown as its Python
    escape (``\\x1b``, ``\\n``, ``\\u202e``) and everything else as it is.
    """
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}
        else ch
        for ch in str(text)
    )


def one_line(exc) -> str:
    """An exception's message on one printable line, of at most 1,000 characters.

    A message quotes the value it refuses, and an option's value can be
    100,000 characters long.
    """
    from .._utils._text import shorten

    text = printable(" ".join(str(exc).split())) or type(exc).__name__
    return shorten(text, 1000)


def write_text(path, text):
    from .._utils._files import atomic_write

    with atomic_write(path, "w") as file:
        file.write(text)
