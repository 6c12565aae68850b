"""KerasMLPClassifier: the Keras Dense/Dropout network as a scikit-learn classifier."""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, compute_class_weight
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    unique_labels,
)
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from ._utils._text import shorten
from .exceptions import (
    FitInterruptedWarning,
    TrainingDivergedError,
    UnsafeModelError,
)

_SEED_MAX = 2**31 - 1


class KerasMLPClassifier(ClassifierMixin, BaseEstimator):
    """The classic Keras Dense/Dropout MNIST network as a scikit-learn classifier.

    A Keras 3 ``Sequential`` of Dense layers, each followed by Dropout, and a
    softmax output, trained with categorical cross-entropy. The defaults are
    the network of the classic Keras MNIST tutorial: 784 -> 512 relu ->
    Dropout 0.2 -> 512 relu -> Dropout 0.2 -> 10 softmax (669,706
    parameters), RMSprop, batch 128, 20 epochs.

    Parameter names follow :class:`~sklearn.neural_network.MLPClassifier`
    where the two overlap. Keras is imported the first time a network is
    built, not when sk-mnist is imported.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(512, 512)
        Units of each hidden Dense layer; ``(512,)`` for one layer.
    activation : str, default="relu"
        Activation of the hidden layers, any Keras activation name
        (``"relu"``, ``"sigmoid"``, ``"tanh"``...).
    dropout : float or sequence of float, default=0.2
        Dropout rate after each hidden layer: one float for all of them, or
        one per layer. A rate of 0 leaves the Dropout layer out.
    input_dropout : float, default=0.0
        Dropout rate on the inputs (the pixels), in training only; 0 leaves
        the layer out. Srivastava et al. (2014) drop 20% of MNIST's pixels.
    optimizer : str or keras.optimizers.Optimizer, default="rmsprop"
        A Keras optimizer name (``"rmsprop"``, ``"sgd"``, ``"adam"``...) or
        instance. An instance is re-created from its config in every fit, so
        it is never trained or changed.
    momentum : float, default=0.0
        Momentum of ``optimizer="sgd"`` (Keras's ``SGD(momentum=...)``), in
        [0, 1), as :class:`~sklearn.neural_network.MLPClassifier`'s
        ``momentum`` for its ``"sgd"`` solver. The default 0 is plain SGD, as
        in the tutorials (MLPClassifier defaults to 0.9). Must be 0 with any
        other optimizer; configure an optimizer instance directly instead.
    nesterovs_momentum : bool, default=True
        Whether the momentum is Nesterov's, as in
        :class:`~sklearn.neural_network.MLPClassifier`; used when
        ``momentum > 0``.
    learning_rate : float, default=None
        The optimizer's learning rate; ``None`` keeps the optimizer's own
        (0.001 for RMSprop, 0.01 for SGD). With a schedule, its starting
        rate.
    learning_rate_schedule : {"constant", "cosine", "adaptive"} or \
            keras.optimizers.schedules.LearningRateSchedule, default="constant"
        How the learning rate changes during training. ``"constant"`` keeps
        it. ``"cosine"`` decays it to 0 along a half cosine over the steps
        :meth:`fit` plans (``epochs`` times the batches per epoch; for
        :meth:`partial_fit`, ``epochs`` calls on data the size of the first
        call's); training beyond them, with ``warm_start`` or more
        ``partial_fit`` calls, goes on at the final rate. ``"adaptive"``, as
        in :class:`~sklearn.neural_network.MLPClassifier`, divides the rate
        by 5 each time two consecutive epochs fail to lower the training loss
        by ``tol`` (or to raise the validation accuracy by ``tol`` with
        ``early_stopping`` and ``validation_fraction``); the count goes on
        across ``partial_fit`` and ``warm_start`` calls. A Keras
        ``LearningRateSchedule`` instance is copied in every fit, like an
        optimizer instance, and sets its own rates (``learning_rate`` must
        then be None). Any schedule but ``"constant"`` records the rate each
        epoch started with in ``history_["learning_rate"]``.
    alpha : float, default=0.0
        Strength of the L2 penalty on the weights (kernels, not biases), with
        :class:`~sklearn.neural_network.MLPClassifier`'s meaning: the penalty
        ``0.5 * alpha * sum(w ** 2)`` is divided by the number of samples of
        the batch (``batch_size``) when it is added to the batch's mean loss.
    max_norm : float, default=None
        Largest L2 norm of each hidden unit's vector of incoming weights,
        enforced after every step (Keras's ``MaxNorm``); ``None`` for no
        limit. Srivastava et al. (2014) combine it with dropout.
    batch_size : int, default=128
        Samples per gradient step.
    epochs : int, default=20
        Passes over the training data in :meth:`fit`.
    shuffle : bool, default=True
        Whether to shuffle the training data before each epoch. The shuffling
        is seeded from ``random_state``.
    validation_fraction : float, default=0.0
        Fraction of the training data held out, stratified, to record
        ``val_loss`` and ``val_accuracy`` after each epoch, like Keras's
        ``validation_split``. Must be in [0, 1).
    early_stopping : bool, default=False
        Stop when the monitored quantity has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the weights of the best
        epoch. The validation accuracy is monitored when
        ``validation_fraction > 0``, the training loss otherwise.
    n_iter_no_change : int, default=10
        Epochs without improvement before early stopping.
    tol : float, default=1e-4
        The smallest change that counts as an improvement.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``.
        ``"balanced"`` uses :func:`sklearn.utils.compute_class_weight`.
    callbacks : list of keras.callbacks.Callback, default=None
        Extra Keras callbacks. They are deep-copied in every fit, so the
        objects passed here are never mutated.
    warm_start : bool, default=False
        When fitted already, go on training the same network in :meth:`fit`
        instead of building a new one.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initializers, every Dropout layer, the shuffling and
        the validation split. An int gives identical weights and predictions
        in every fit on the same backend and machine. No global seed is set.
    verbose : {0, 1, 2}, default=0
        0 is silent, 1 shows Keras's progress bar, 2 prints one line per
        epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, in the order of the columns of
        :meth:`predict_proba`.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen in :meth:`fit`, when ``X`` had string
        column names.
    model_ : keras.Sequential
        The trained network.
    history_ : dict of str to list of float
        Per-epoch ``loss`` and ``accuracy``, plus ``val_loss`` and
        ``val_accuracy`` when validating, like Keras's ``History.history``.
        Continued by ``warm_start`` and :meth:`partial_fit`.
    loss_curve_ : list of float
        The training loss after each epoch (``history_["loss"]``).
    n_iter_ : int
        Number of epochs trained.
    validation_scores_ : list of float or None
        Validation accuracy after each epoch, or ``None`` without validation.
    best_validation_score_ : float or None
        The best validation accuracy, or ``None`` without validation.

    See Also
    --------
    MNISTFlattener : Turns digit images into this classifier's features.
    sklearn.neural_network.MLPClassifier : scikit-learn's own network.

    Notes
    -----
    Keras shuffles arrays without a seed of its own, so this estimator
    shuffles the data itself, with a generator seeded from ``random_state``,
    and trains one epoch per call of :meth:`keras.Model.fit` while a single
    list of callbacks spans all epochs (see :ref:`reproducibility`).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_mnist import KerasMLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = KerasMLPClassifier(hidden_layer_sizes=(64,), epochs=5,
    ...                          random_state=0).fit(X / 16, y)
    >>> clf.predict(X[:3] / 16).shape
    (3,)
    >>> clf.n_iter_, sorted(clf.history_)
    (5, ['accuracy', 'loss'])
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
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
    }

    def __init__(
        self,
        hidden_layer_sizes=(512, 512),
        activation="relu",
        dropout=0.2,
        input_dropout=0.0,
        optimizer="rmsprop",
        momentum=0.0,
        nesterovs_momentum=True,
        learning_rate=None,
        learning_rate_schedule="constant",
        alpha=0.0,
        max_norm=None,
        batch_size=128,
        epochs=20,
        shuffle=True,
        validation_fraction=0.0,
        early_stopping=False,
        n_iter_no_change=10,
        tol=1e-4,
        class_weight=None,
        callbacks=None,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.optimizer = optimizer
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.alpha = alpha
        self.max_norm = max_norm
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network for ``epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features, such as :class:`MNISTFlattener` output.
        y : array-like of shape (n_samples,)
            Class labels: integers, strings or a pandas categorical.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.

        Returns
        -------
        self : KerasMLPClassifier
            The fitted estimator.
        """
        incremental = self.warm_start and hasattr(self, "model_")
        classes = self.classes_ if incremental else None
        return self._fit(X, y, sample_weight, classes=classes, incremental=incremental)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train the network for one epoch on ``X, y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features.
        y : array-like of shape (n_samples,)
            Class labels, all of them in ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every class that will ever appear. Required in the first call;
            later calls may repeat it or leave it out.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.

        Returns
        -------
        self : KerasMLPClassifier
            The estimator, trained one more epoch.
        """
        # scikit-learn's first-call check sets classes_ from `classes`; a
        # first call that fails must not leave it behind.
        with _restored_on_error(self, ("classes_",)):
            first = _check_partial_fit_first_call(self, classes)
            return self._fit(
                X,
                y,
                sample_weight,
                classes=self.classes_,
                incremental=not first,
                epochs=1,
            )

    def _fit(self, X, y, sample_weight, *, classes, incremental, epochs=None):
        """Validate the data, build (or reuse) the network and train it.

        ``classes`` is None to take the classes from ``y``; ``incremental``
        trains the fitted network further instead of building a new one. The
        fitted attributes are set at the end, so a fit that fails leaves the
        estimator as it was.
        """
        from ._keras import network

        with _restored_on_error(self, ("n_features_in_", "feature_names_in_")):
            hidden, _ = self._check_params()
            if incremental:
                _check_unchanged(self)
            X, y = validate_data(
                self, X, y, reset=not incremental, dtype=np.float32, order="C"
            )
            check_classification_targets(y)
            classes = _check_labels(y, classes, incremental)
            encoded = np.searchsorted(classes, y)
            weights = _sample_weights(
                sample_weight, self.class_weight, X, y, encoded, classes
            )
            rng = self._rng if incremental else check_random_state(self.random_state)
            split_seed, shuffle_seed = rng.randint(_SEED_MAX, size=2)
            if incremental:
                model, history = self.model_, copy.deepcopy(self.history_)
            else:
                seeds = rng.randint(_SEED_MAX, size=network.n_seeds(len(hidden)))
                # Drawn only when used, so that the default network's seeds
                # are those it always had.
                input_seed = (
                    int(rng.randint(_SEED_MAX)) if self.input_dropout > 0 else None
                )
                model, history = (
                    self._build_network(
                        X.shape[1],
                        len(classes),
                        seeds,
                        input_seed=input_seed,
                        n_train=len(X)
                        - _n_validation(self.validation_fraction, len(X)),
                    ),
                    {},
                )
            result = _train(
                self,
                model,
                *_validation_split(
                    self.validation_fraction, X, encoded, weights, split_seed
                ),
                n_classes=len(classes),
                epochs=self.epochs if epochs is None else epochs,
                history=history,
                shuffle_seed=shuffle_seed,
            )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        self._set_fitted(rng, classes, model, history)
        if result.interrupted_epoch is not None:
            warnings.warn(
                f"Training was interrupted by the user in epoch "
                f"{result.interrupted_epoch + 1}; the estimator keeps the weights it "
                f"had reached and is usable.",
                FitInterruptedWarning,
                stacklevel=4,
            )
        return self

    def _set_fitted(self, rng, classes, model, history):
        """Set every fitted attribute at once, after a fit that succeeded."""
        self._rng = rng
        self.classes_ = classes
        self.model_ = model
        self.history_ = history
        self.loss_curve_ = list(history.get("loss", []))
        self.n_iter_ = len(self.loss_curve_)
        scores = history.get("val_accuracy")
        self.validation_scores_ = None if scores is None else list(scores)
        self.best_validation_score_ = None if scores is None else max(scores)

    def _build_network(
        self, n_features, n_classes, seeds=None, *, input_seed=None, n_train=None
    ):
        """The compiled network these parameters describe.

        ``n_train`` training samples per epoch plan a cosine schedule's steps
        (one batch per epoch when unknown, as for :meth:`summary`).
        """
        from ._keras import network

        hidden, rates = _check_layers(self.hidden_layer_sizes, self.dropout)
        _check_network_size(n_features, hidden, n_classes)
        optimizer = _optimizer(self)
        schedule = None
        if not _is_name(self.learning_rate_schedule, "constant"):
            batches = (
                math.ceil(n_train / min(self.batch_size, n_train)) if n_train else 1
            )
            schedule = network.make_schedule(
                self.learning_rate_schedule,
                _initial_rate(optimizer, self.learning_rate),
                self.epochs * batches,
            )
        return network.build_network(
            n_features,
            n_classes,
            hidden_layer_sizes=hidden,
            activation=self.activation,
            dropout=rates,
            optimizer=optimizer,
            learning_rate=self.learning_rate,
            seeds=seeds,
            input_dropout=self.input_dropout,
            input_seed=input_seed,
            l2=_l2(self.alpha, self.batch_size),
            max_norm=self.max_norm,
            schedule=schedule,
        )

    def _check_params(self, n_features=None, n_classes=None):
        """Check what ``_parameter_constraints`` cannot: layers, names, optimizer.

        Needs no data, so the command line calls it (after
        ``_validate_params``) before it loads any; given the input and output
        widths, it also checks that the network fits in memory.
        """
        from ._keras import network

        hidden, rates = _check_layers(self.hidden_layer_sizes, self.dropout)
        network.check_activation(self.activation)
        network.make_optimizer(_optimizer(self), self.learning_rate)
        network.make_schedule(self.learning_rate_schedule, 0.001, 1)
        if not isinstance(self.learning_rate_schedule, str) and (
            self.learning_rate is not None
        ):
            raise ValueError(
                f"learning_rate={self.learning_rate!r} cannot be used with a "
                f"LearningRateSchedule instance, which sets its own rates; set "
                f"learning_rate=None."
            )
        if n_features is not None and n_classes is not None:
            _check_network_size(n_features, hidden, n_classes)
        return hidden, rates

    def predict_proba(self, X):
        """Probability of each class, from the softmax output.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``; each row sums to 1.
        """
        from ._keras import network

        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32, order="C")
        proba = network.predict_in_batches(self.model_, X).astype(np.float64)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict_log_proba(self, X):
        """Natural logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities in the order of ``classes_``.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``, of the type they were given in.
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def summary(self, n_features=784, n_classes=10) -> str:
        """The Keras summary of the network, as the tutorials print it.

        Parameters
        ----------
        n_features : int, default=784
            Input width of the network to describe when not fitted yet.
        n_classes : int, default=10
            Output units of the network to describe when not fitted yet.

        Returns
        -------
        str
            The text of :meth:`keras.Model.summary` for ``model_`` when
            fitted, else for the network these parameters would build.
        """
        if hasattr(self, "model_"):
            model = self.model_
        else:
            model = self._build_network(n_features, n_classes)
        lines = []
        model.summary(print_fn=lambda text, **_: lines.append(text))
        return "\n".join(lines)

    def __getstate__(self):
        """The estimator as plain data: the one description of its state.

        Pickling, :func:`copy.deepcopy` and :func:`sk_mnist.save` (skops) all
        use it. The network becomes its ``.keras`` archive (bytes) plus the
        counters of its Dropout seed generators, which that format leaves
        out; an optimizer instance given as a parameter becomes its Keras
        config. Everything else is numbers, strings, arrays, lists and dicts
        (and ``_rng``, the RandomState that continues a ``warm_start``).
        """
        from ._keras import serialization

        state = dict(super().__getstate__())
        if "model_" in state:
            state["_seed_states"] = serialization.seed_states(state["model_"])
            state["model_"] = serialization.model_to_bytes(state["model_"])
        if not isinstance(state["optimizer"], str):
            state["optimizer"] = serialization.optimizer_to_config(state["optimizer"])
        if not isinstance(state["learning_rate_schedule"], str):
            state["learning_rate_schedule"] = serialization.schedule_to_config(
                state["learning_rate_schedule"]
            )
        return state

    def __setstate__(self, state):
        """Rebuild from :meth:`__getstate__`, checking the network is this one's.

        The network is loaded with Keras's ``safe_mode=True`` after its layer
        sizes were checked against its stored weights, and must fit the
        estimator: ``n_features_in_`` inputs, one softmax output per class.
        """
        from ._keras import serialization

        # A file of an earlier sk-mnist lacks the parameters added since;
        # each one's default is what that version did (no penalty, no limit,
        # plain SGD, a constant rate), so get_params and clone keep working.
        defaults = inspect.signature(type(self).__init__).parameters
        state = {
            **{name: defaults[name].default for name in self._get_param_names()},
            **state,
        }
        _check_fitted_state(state)
        if isinstance(state.get("optimizer"), dict):
            state["optimizer"] = serialization.optimizer_from_config(state["optimizer"])
        if isinstance(state.get("learning_rate_schedule"), dict):
            state["learning_rate_schedule"] = serialization.schedule_from_config(
                state["learning_rate_schedule"]
            )
        if "classes_" in state and "model_" not in state:
            raise UnsafeModelError(
                "the saved KerasMLPClassifier is fitted but holds no network."
            )
        if "model_" in state:
            model = serialization.model_from_bytes(
                state["model_"], origin="the saved KerasMLPClassifier"
            )
            serialization.set_seed_states(model, state.pop("_seed_states", []))
            serialization.check_model_fits(
                model, state.get("n_features_in_"), state.get("classes_")
            )
            state["model_"] = model
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.classifier_tags.multi_label = False
        return tags


def _check_fitted_state(state):
    """Refuse a saved state whose fitted attributes no fit could have made.

    What a file holds is data, not an estimator: ``classes_`` as a list, a
    structured, 2-D or NaN-holding array, a foreign random generator or a
    history of strings would load and fail later, inside ``predict``.
    """
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


def _check_unchanged(clf):
    """Refuse to continue a network that ``clf``'s parameters no longer describe.

    ``warm_start`` and :meth:`partial_fit` train the fitted ``model_``; a
    parameter changed since (``set_params``) would otherwise be reported
    by ``get_params`` but silently not used.
    """
    from ._keras import network

    hidden, rates = _check_layers(clf.hidden_layer_sizes, clf.dropout)
    built = network.describe(clf.model_)
    schedule = clf.learning_rate_schedule
    wanted = {
        "hidden_layer_sizes": hidden,
        "dropout": rates,
        "input_dropout": float(clf.input_dropout),
        "activation": network.activation_name(clf.activation),
        "alpha": float(clf.alpha),
        "max_norm": None if clf.max_norm is None else float(clf.max_norm),
        "optimizer": type(network.make_optimizer(clf.optimizer)).__name__,
        "learning_rate_schedule": (
            "constant"
            if _is_name(schedule, "constant") or _is_name(schedule, "adaptive")
            else "CosineDecay"
            if _is_name(schedule, "cosine")
            else type(schedule).__name__
        ),
    }
    if isinstance(clf.optimizer, str):
        wanted["momentum"] = float(clf.momentum)
        if clf.momentum:
            wanted["nesterovs_momentum"] = bool(clf.nesterovs_momentum)
    # The adaptive schedule lowers the rate it started from, by design.
    if clf.learning_rate is not None and not _is_name(schedule, "adaptive"):
        wanted["learning_rate"] = float(clf.learning_rate)
    # The network holds Keras's L2 factor, which depends on batch_size too.
    built["alpha"] = 2.0 * built["l2"] * clf.batch_size
    built["learning_rate_schedule"] = built["schedule"]
    built["nesterovs_momentum"] = built["nesterov"]
    for name, value in wanted.items():
        found = built[name]
        same = (
            math.isclose(found, value, rel_tol=1e-6)
            if isinstance(value, float) and isinstance(found, float)
            else found == value
        )
        if not same:
            raise ValueError(
                f"{name} was changed since the network was built "
                f"({found!r} in the fitted network, {value!r} now), but "
                f"warm_start and partial_fit continue the fitted network. Set "
                f"warm_start=False (or fit a new estimator) to build a new one."
            )


def _optimizer(clf):
    """``clf.optimizer``, as an SGD with ``clf.momentum`` when that is set.

    Like MLPClassifier's ``momentum``, it belongs to SGD: another optimizer
    with a momentum would silently ignore it, so it is refused.
    """
    from ._keras import network

    if not clf.momentum:
        return clf.optimizer
    is_sgd = isinstance(clf.optimizer, str) and (
        type(network.make_optimizer(clf.optimizer)).__name__ == "SGD"
    )
    if not is_sgd:
        raise ValueError(
            f"momentum={clf.momentum!r} is SGD's: it needs optimizer='sgd', got "
            f"optimizer={clf.optimizer!r}. Set momentum=0, or pass a Keras "
            f"optimizer instance configured as you want it."
        )
    return network.make_optimizer(
        clf.optimizer, momentum=clf.momentum, nesterov=clf.nesterovs_momentum
    )


def _is_name(value, name):
    return isinstance(value, str) and value == name


def _l2(alpha, batch_size):
    """Keras's L2 factor for MLPClassifier's ``alpha``: 0.5 * alpha / batch."""
    return 0.5 * float(alpha) / batch_size


def _initial_rate(optimizer, learning_rate):
    """``learning_rate``, else the optimizer's own default rate."""
    from ._keras import network

    if learning_rate is not None:
        return float(learning_rate)
    return float(network.make_optimizer(optimizer).get_config()["learning_rate"])


def _n_validation(fraction, n_samples):
    """How many of ``n_samples`` the validation split holds out."""
    return math.ceil(fraction * n_samples) if fraction else 0


def _sample_weights(sample_weight, class_weight, X, y, encoded, classes):
    """Combine ``sample_weight`` and ``class_weight``; None when unweighted."""
    if sample_weight is None and class_weight is None:
        return None
    weights = _check_sample_weight(
        sample_weight, X, dtype=np.float32, ensure_non_negative=True
    )
    if class_weight is not None:
        if isinstance(class_weight, dict):
            unknown = set(class_weight) - set(classes.tolist())
            if unknown:
                raise ValueError(
                    f"class_weight has keys {sorted(unknown, key=str)} that are "
                    f"not classes of y {classes.tolist()}."
                )
            negative = {k: v for k, v in class_weight.items() if v < 0}
            if negative:
                raise ValueError(f"class_weight must be non-negative; got {negative}.")
        per_class = compute_class_weight(class_weight, classes=classes, y=y).astype(
            np.float32
        )
        weights = weights * per_class[encoded]
    return weights


def _validation_split(fraction, X, encoded, weights, seed):
    """Hold out ``fraction`` of the samples, stratified when possible.

    Returns the training ``(X, encoded, weights)`` and the validation
    ``(X, encoded)``, or None without validation.
    """
    if not fraction:
        return (X, encoded, weights), None
    n_valid = _n_validation(fraction, len(X))
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


def _train(clf, model, train, validation, *, n_classes, epochs, history, shuffle_seed):
    """Hand the engine ``clf``'s arrays and plain parameters; warn like sklearn.

    ``history`` is what earlier calls trained (``warm_start``, ``partial_fit``):
    the epoch count and the adaptive schedule go on from it.
    """
    from ._keras import training

    X, encoded, weights = train
    adaptive = None
    if _is_name(clf.learning_rate_schedule, "adaptive"):
        monitor = training.monitored_metric(
            validation is not None and clf.early_stopping
        )
        adaptive = training.AdaptiveRate(
            monitor, clf.tol, previous=history.get(monitor, [])
        )
    try:
        result = training.train(
            model,
            X,
            encoded,
            weights,
            n_classes=n_classes,
            validation=validation,
            epochs=epochs,
            initial_epoch=len(history.get("loss", [])),
            # Like MLPClassifier, at most one batch of all samples (a huge
            # batch_size would overflow the backend's shape arithmetic).
            batch_size=min(clf.batch_size, len(X)),
            shuffle_rng=np.random.default_rng(shuffle_seed) if clf.shuffle else None,
            early_stopping=training.EarlyStopping(clf.tol, clf.n_iter_no_change)
            if clf.early_stopping
            else None,
            adaptive_rate=adaptive,
            record_learning_rate=not _is_name(clf.learning_rate_schedule, "constant"),
            callbacks=clf.callbacks or (),
            verbose=clf.verbose,
        )
    except TrainingDivergedError as exc:
        raise TrainingDivergedError(
            f"{exc}; try a lower learning_rate (got {clf.learning_rate!r}) or "
            f"scaling the features to [0, 1] with MNISTFlattener."
        ) from None
    ran_to_the_end = not result.stopped_early and result.interrupted_epoch is None
    if clf.early_stopping and ran_to_the_end:
        warnings.warn(
            f"KerasMLPClassifier stopped after the maximum of {epochs} epochs "
            f"while {training.monitored_metric(validation is not None)} was "
            f"still improving; increase epochs.",
            ConvergenceWarning,
            stacklevel=5,
        )
    return result


def _check_labels(y, classes, incremental):
    """The classes of the fit: ``classes`` when given, else those of ``y``.

    Every label of ``y`` must be one of ``classes`` (a label outside them would
    be encoded as a neighbouring class and trained on silently).
    """
    if classes is None:
        classes = unique_labels(y)
    unseen = np.setdiff1d(unique_labels(y), classes)
    if unseen.size:
        origin = "classes_ from the first fit" if incremental else "classes"
        raise ValueError(
            f"y has labels {unseen.tolist()} that are not in {origin} "
            f"{np.asarray(classes).tolist()}."
        )
    if len(classes) < 2:
        raise ValueError(
            f"KerasMLPClassifier needs samples of at least 2 classes in the data, "
            f"but the data contains only one class: {classes.tolist()[0]!r}."
        )
    return classes


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


@contextmanager
def _restored_on_error(estimator, names):
    """Put the attributes ``names`` of ``estimator`` back if the block raises.

    The transactional part of a fit: ``validate_data`` sets
    ``n_features_in_`` before the network is trained, and a fit that fails
    must not leave it behind to make the estimator look fitted.
    """
    saved = {name: vars(estimator)[name] for name in names if name in vars(estimator)}
    try:
        yield
    except BaseException:
        for name in names:
            vars(estimator).pop(name, None)
        vars(estimator).update(saved)
        raise
