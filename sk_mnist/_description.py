"""The one description of a network and its training, between estimator and engine.

:class:`~sk_mnist.KerasMLPClassifier` turns its parameters into a
:class:`Description` once per fit (:func:`from_params`); the Keras engine
(:mod:`sk_mnist._keras`) builds the network, its optimizer, schedule and
callbacks from it, and describes a built network in the same terms
(:func:`sk_mnist._keras.network.describe`). Continuing a fitted network
(``warm_start``, ``partial_fit``) compares the two (:func:`changes`), with no
renaming. This module imports no Keras at its top: the two names only Keras
can resolve (an optimizer's, an activation's) are resolved by the engine,
imported when a description is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)

from ._utils._text import shorten
from .exceptions import UnsafeModelError

#: The classifier's parameters and what each may be, as scikit-learn's
#: ``_parameter_constraints`` (the estimator uses this table).
PARAMETER_CONSTRAINTS: dict = {
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "activation": [str],
    "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
    "optimizer": [str, HasMethods(["get_config"])],
    "momentum": [Interval(Real, 0, 1, closed="left")],
    "nesterovs_momentum": ["boolean"],
    "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
    "learning_rate_schedule": [
        StrOptions({"constant", "cosine", "adaptive"}),
        HasMethods(["get_config", "__call__"]),
    ],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "max_norm": [Interval(Real, 0, None, closed="neither"), None],
    "input_dropout": [Interval(Real, 0, 1, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "epochs": [Interval(Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "early_stopping": ["boolean"],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "class_weight": [dict, StrOptions({"balanced"}), None],
    "callbacks": [list, tuple, None],
    "warm_start": ["boolean"],
    "random_state": ["random_state"],
    "verbose": [Interval(Integral, 0, 2, closed="both")],
    "steps_per_execution": [
        Interval(Integral, 1, None, closed="left"),
        StrOptions({"auto"}),
    ],
}


@dataclass(frozen=True)
class Network:
    """The layers between the input and the softmax output.

    Attributes
    ----------
    hidden_layer_sizes : tuple of int
        Units of each hidden Dense layer.
    activation : str
        Keras's name of the hidden layers' activation.
    dropout : tuple of float
        Dropout rate after each hidden layer (0: no Dropout layer).
    input_dropout : float
        Dropout rate on the inputs (0: no layer).
    l2 : float
        Keras's ``L2`` factor on every kernel: ``0.5 * alpha / batch_size``,
        MLPClassifier's penalty per sample of a batch.
    max_norm : float or None
        Keras's ``MaxNorm`` on each hidden unit's incoming weights.
    """

    hidden_layer_sizes: tuple = (512, 512)
    activation: str = "relu"
    dropout: tuple = (0.2, 0.2)
    input_dropout: float = 0.0
    l2: float = field(default=0.0, metadata={"parameter": "alpha"})
    max_norm: float | None = None


@dataclass(frozen=True)
class Optimizer:
    """The optimizer and its learning rate over time.

    Attributes
    ----------
    optimizer : str
        Keras's class name of the optimizer (``"RMSprop"``, ``"SGD"``).
    learning_rate : float or None
        The rate training starts from (None: a schedule instance's own).
    momentum, nesterov : float, bool
        SGD's momentum (0 and False for optimizers without one).
    schedule : str
        ``"constant"`` for a plain rate (the adaptive rule lowers a plain
        rate), else Keras's class name of the schedule (``"CosineDecay"``).
    source : str or keras.optimizers.Optimizer
        The optimizer parameter, a name or an instance to copy (not compared).
    schedule_source : keras.optimizers.schedules.LearningRateSchedule or None
        A schedule instance to copy (not compared).
    decay_steps : int
        The steps a cosine schedule decays over (not compared).
    """

    optimizer: str = "RMSprop"
    learning_rate: float | None = 0.001
    momentum: float = 0.0
    nesterov: bool = field(default=False, metadata={"parameter": "nesterovs_momentum"})
    schedule: str = field(
        default="constant", metadata={"parameter": "learning_rate_schedule"}
    )
    source: Any = field(default="rmsprop", compare=False)
    schedule_source: Any = field(default=None, compare=False)
    decay_steps: int = field(default=1, compare=False)


@dataclass(frozen=True)
class TrainingPlan:
    """How the epochs run: batches, validation, stopping, the adaptive rate.

    Attributes
    ----------
    batch_size, epochs, shuffle, validation_fraction, early_stopping,
    n_iter_no_change, tol, verbose
        The estimator's parameters of the same names.
    adaptive : bool
        MLPClassifier's adaptive rate: divided by 5 after two epochs that did
        not improve :attr:`monitor` by ``tol``.
    record_learning_rate : bool
        Whether ``history_`` records the rate each epoch started with.
    callbacks : tuple of keras.callbacks.Callback
        The user's callbacks, copied in every fit.
    steps_per_execution : int or "auto"
        Batches per compiled call (Keras's name); ``"auto"`` decides from
        the size of the fit (see :func:`sk_mnist._keras.training.execution_steps`).
    """

    batch_size: int = 128
    epochs: int = 20
    shuffle: bool = True
    validation_fraction: float = 0.0
    early_stopping: bool = False
    n_iter_no_change: int = 10
    tol: float = 1e-4
    adaptive: bool = False
    record_learning_rate: bool = False
    callbacks: tuple = ()
    verbose: int = 0
    steps_per_execution: int | str = "auto"

    @property
    def monitor(self) -> str:
        """What early stopping and the adaptive rate watch, decided here only.

        The validation accuracy when early stopping holds data out (as
        MLPClassifier's ``early_stopping``), else the training loss.
        """
        if self.early_stopping and self.validation_fraction > 0:
            return "val_accuracy"
        return "loss"


@dataclass(frozen=True)
class Description:
    """A network, its optimizer and (for a fit) the training plan."""

    network: Network
    optimizer: Optimizer
    plan: TrainingPlan | None = None


@dataclass(frozen=True)
class FittedState:
    """What a fit that succeeded leaves on the estimator, described once.

    A fit makes four things: the RandomState that continues a ``warm_start``,
    the classes, the network and its history; the other fitted attributes
    are read from the history. The estimator sets :meth:`attributes` at
    once, and refuses a saved state :meth:`check_saved` does not accept.
    """

    rng: Any
    classes: Any
    model: Any
    history: dict

    def attributes(self) -> dict:
        """The fitted attributes, by name."""
        loss = list(self.history.get("loss", []))
        scores = self.history.get("val_accuracy")
        return {
            "_rng": self.rng,
            "classes_": self.classes,
            "model_": self.model,
            "history_": self.history,
            "loss_curve_": loss,
            "n_iter_": len(loss),
            "validation_scores_": None if scores is None else list(scores),
            "best_validation_score_": None if scores is None else max(scores),
        }

    @staticmethod
    def check_saved(state) -> None:
        """Refuse a saved state whose fitted attributes no fit could have made.

        What a file holds is data, not an estimator: ``classes_`` as a list,
        a structured, 2-D or NaN-holding array, a foreign random generator or
        a history of strings would load and fail later, inside ``predict``.
        """
        _check_saved(state)


def from_params(
    params,
    *,
    n_features=None,
    n_classes=None,
    n_train=None,
    validate=False,
    check_activation=True,
) -> Description:
    """The description of what the estimator parameters ``params`` ask for.

    Every check that needs no data is made here, so the command line checks
    its options by calling this. ``validate`` first checks the parameters
    against :data:`PARAMETER_CONSTRAINTS` (the estimator's ``fit`` does that
    itself). ``check_activation`` runs the activation once in a small layer
    (a network that was built with it need not). Given the input and output
    widths, the network must fit in memory; ``n_train`` samples per epoch
    plan a cosine schedule's steps (one batch per epoch when unknown).
    """
    from ._keras import network as engine

    if validate:
        validate_parameter_constraints(
            PARAMETER_CONSTRAINTS,
            {name: params[name] for name in PARAMETER_CONSTRAINTS},
            caller_name="KerasMLPClassifier",
        )
    hidden, rates = _check_layers(params["hidden_layer_sizes"], params["dropout"])
    if check_activation:
        engine.check_activation(params["activation"])
    if n_features is not None and n_classes is not None:
        _check_network_size(n_features, hidden, n_classes)
    layers = Network(
        hidden_layer_sizes=hidden,
        activation=engine.activation_name(params["activation"]),
        dropout=rates,
        input_dropout=float(params["input_dropout"]),
        l2=0.5 * float(params["alpha"]) / params["batch_size"],
        max_norm=None if params["max_norm"] is None else float(params["max_norm"]),
    )
    batch_size = params["batch_size"]
    batches = math.ceil(n_train / min(batch_size, n_train)) if n_train else 1
    plan = TrainingPlan(
        batch_size=int(batch_size),
        epochs=int(params["epochs"]),
        shuffle=bool(params["shuffle"]),
        validation_fraction=float(params["validation_fraction"]),
        early_stopping=bool(params["early_stopping"]),
        n_iter_no_change=int(params["n_iter_no_change"]),
        tol=float(params["tol"]),
        adaptive=params["learning_rate_schedule"] == "adaptive",
        record_learning_rate=params["learning_rate_schedule"] != "constant",
        callbacks=tuple(params["callbacks"] or ()),
        verbose=int(params["verbose"]),
        steps_per_execution=params["steps_per_execution"],
    )
    optimizer = _optimizer(params, engine, decay_steps=plan.epochs * batches)
    return Description(layers, optimizer, plan)


def _optimizer(params, engine, *, decay_steps):
    """The optimizer description; momentum belongs to SGD, as in MLPClassifier."""
    source, momentum = params["optimizer"], float(params["momentum"])
    name, config = engine.optimizer_defaults(source)
    if momentum and not (isinstance(source, str) and name == "SGD"):
        raise ValueError(
            f"momentum={params['momentum']!r} is SGD's: it needs optimizer='sgd', "
            f"got optimizer={source!r}. Set momentum=0, or pass a Keras optimizer "
            f"instance configured as you want it."
        )
    schedule = params["learning_rate_schedule"]
    rate = params["learning_rate"]
    if isinstance(schedule, str):
        schedule_name = "CosineDecay" if schedule == "cosine" else "constant"
        schedule_source = None
        rate = float(config["learning_rate"] if rate is None else rate)
    else:
        engine.check_schedule(schedule)
        if rate is not None:
            raise ValueError(
                f"learning_rate={rate!r} cannot be used with a LearningRateSchedule "
                f"instance, which sets its own rates; set learning_rate=None."
            )
        schedule_name, schedule_source = type(schedule).__name__, schedule
        rate = schedule.get_config().get("initial_learning_rate")
    return Optimizer(
        optimizer=name,
        learning_rate=rate,
        momentum=momentum if momentum else float(config.get("momentum", 0.0)),
        nesterov=(
            bool(params["nesterovs_momentum"])
            if momentum
            else bool(config.get("nesterov", False))
        ),
        schedule=schedule_name,
        source=source,
        schedule_source=schedule_source,
        decay_steps=max(1, int(decay_steps)),
    )


def changes(wanted: Description, built: Description) -> list:
    """What differs between the two descriptions, and from which parameter.

    A list of ``(parameter, field, built value, wanted value)``: a field's
    ``metadata["parameter"]`` names the parameter it is made from where the
    names differ (``l2`` is made from ``alpha``).

    Floats are compared to a relative 1e-6 (the backend holds a rate in
    float32). The adaptive rate lowers the rate it started from, by design:
    under an adaptive plan the rate is not compared.
    """
    found = []
    pairs = [(wanted.network, built.network), (wanted.optimizer, built.optimizer)]
    for mine, theirs in pairs:
        for item in fields(mine):
            if not item.compare:
                continue
            if item.name == "learning_rate" and wanted.plan and wanted.plan.adaptive:
                continue
            a, b = getattr(mine, item.name), getattr(theirs, item.name)
            same = (
                math.isclose(a, b, rel_tol=1e-6)
                if isinstance(a, float) and isinstance(b, float)
                else a == b
            )
            if not same:
                parameter = item.metadata.get("parameter", item.name)
                found.append((parameter, item.name, b, a))
    return found


def check_unchanged(wanted: Description, built: Description) -> None:
    """Refuse to continue a network that the parameters no longer describe.

    ``warm_start`` and ``partial_fit`` train the fitted network; a parameter
    changed since (``set_params``) would otherwise be reported by
    ``get_params`` but silently not used.
    """
    for parameter, name, found, value in changes(wanted, built):
        what = "" if name == parameter else f"{name} "
        raise ValueError(
            f"{parameter} was changed since the network was built "
            f"({what}{found!r} in the fitted network, {value!r} now), but "
            f"warm_start and partial_fit continue the fitted network. Set "
            f"warm_start=False (or fit a new estimator) to build a new one."
        )


def n_validation(fraction, n_samples):
    """How many of ``n_samples`` the validation split holds out."""
    return math.ceil(fraction * n_samples) if fraction else 0


def split_validation(fraction, X, encoded, weights, seed):
    """Hold out ``fraction`` of the samples, stratified when possible.

    Returns the training ``(X, encoded, weights)`` and the validation
    ``(X, encoded)``, or None without validation.
    """
    if not fraction:
        return (X, encoded, weights), None
    n_valid = n_validation(fraction, len(X))
    if n_valid >= len(X):
        raise ValueError(
            f"validation_fraction={fraction} leaves no "
            f"training samples out of {len(X)}."
        )
    counts = np.bincount(encoded)
    stratify = (
        encoded
        if counts[counts > 0].min() >= 2 and n_valid >= np.count_nonzero(counts)
        else None
    )
    train_idx, valid_idx = train_test_split(
        np.arange(len(X)), test_size=n_valid, random_state=seed, stratify=stratify
    )
    train_idx.sort()
    train_weights = None if weights is None else weights[train_idx]
    return (X[train_idx], encoded[train_idx], train_weights), (
        X[valid_idx],
        encoded[valid_idx],
    )


def _check_saved(state):
    """:meth:`FittedState.check_saved`."""
    if "classes_" in state:
        classes = state["classes_"]
        if not (
            isinstance(classes, np.ndarray)
            and classes.ndim == 1
            and len(classes) >= 2
            and classes.dtype.names is None
            and classes.dtype.kind in "biufUO"
        ):
            raise UnsafeModelError(
                f"the saved classes_ must be a 1-D array of at least 2 labels; got "
                f"{type(classes).__name__} {_brief(classes)}."
            )
        if classes.dtype.kind == "O" and not all(
            isinstance(c, str | Integral) for c in classes.tolist()
        ):
            raise UnsafeModelError(
                f"the saved classes_ holds objects other than strings and integers: "
                f"{_brief(classes)}."
            )
        if classes.dtype.kind == "f" and not np.isfinite(classes).all():
            raise UnsafeModelError(
                f"the saved classes_ holds NaN or infinite labels: {_brief(classes)}."
            )
        if len(np.unique(classes)) != len(classes) or (
            classes.tolist() != sorted(classes.tolist())
        ):
            raise UnsafeModelError(
                f"the saved classes_ must be sorted and distinct, as fit makes "
                f"them; got {_brief(classes)}."
            )
    n_features = state.get("n_features_in_", 1)
    if (
        not isinstance(n_features, Integral)
        or isinstance(n_features, bool)
        or (n_features < 1)
    ):
        raise UnsafeModelError(
            f"the saved n_features_in_ must be a positive integer; got "
            f"{_brief(n_features)}."
        )
    if "_rng" in state and not isinstance(state["_rng"], np.random.RandomState):
        raise UnsafeModelError(
            f"the saved _rng must be a numpy RandomState; got "
            f"{type(state['_rng']).__name__}."
        )
    history = state.get("history_", {})
    if not isinstance(history, dict) or not all(
        isinstance(key, str)
        and isinstance(values, list)
        and all(isinstance(v, Real) and not isinstance(v, bool) for v in values)
        for key, values in history.items()
    ):
        raise UnsafeModelError(
            f"the saved history_ must map metric names to lists of numbers; got "
            f"{_brief(history)}."
        )


def _brief(value):
    return shorten(repr(value))


def _check_layers(hidden_layer_sizes, dropout):
    """Validate the layer sizes and dropout rates; return them as tuples."""
    sizes = hidden_layer_sizes
    sizes = (sizes,) if np.isscalar(sizes) else tuple(sizes)
    if not sizes or not all(
        isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes
    ):
        raise ValueError(
            f"hidden_layer_sizes must be positive integers, got {hidden_layer_sizes!r}."
        )
    rates = dropout
    if np.isscalar(rates):
        rates = (rates,) * len(sizes)
    rates = tuple(rates)
    if len(rates) != len(sizes):
        raise ValueError(
            f"dropout must be one float or one per hidden layer "
            f"({len(sizes)}), got {dropout!r}."
        )
    if not all(isinstance(r, Real) and 0 <= r < 1 for r in rates):
        raise ValueError(f"dropout rates must be in [0, 1), got {dropout!r}.")
    return tuple(int(s) for s in sizes), tuple(float(r) for r in rates)


def _check_network_size(n_features, hidden, n_classes):
    """Refuse a network whose weights alone would not fit in this machine's memory.

    Keras would otherwise start to allocate it and fail in the backend after
    a long wait, or take the machine's memory; this says which parameter.
    """
    import os

    sizes = [n_features, *hidden, n_classes]
    n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    # Weights, their gradients and up to two optimizer slots, in float32.
    needed = 4 * 4 * n_params
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return
    if needed > available:
        raise ValueError(
            f"hidden_layer_sizes={tuple(hidden)} makes a network of {n_params:,} "
            f"parameters for {n_features} features, needing about "
            f"{needed / 2**30:,.0f} GiB to train; this machine has "
            f"{available / 2**30:,.0f} GiB."
        )
