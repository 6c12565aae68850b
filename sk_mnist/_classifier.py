"""KerasMLPClassifier: the Keras Dense/Dropout network as a scikit-learn classifier."""

from __future__ import annotations

import copy
import inspect
import warnings
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, compute_class_weight
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

from ._callbacks import CallbackSupportMixin, begin_fit_task
from ._description import (
    PARAMETER_CONSTRAINTS,
    FittedState,
    check_unchanged,
    from_params,
    n_validation,
    split_validation,
)
from .exceptions import (
    FitInterruptedWarning,
    TrainingDivergedError,
)


class KerasMLPClassifier(CallbackSupportMixin, ClassifierMixin, BaseEstimator):
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
    steps_per_execution : int or "auto", default="auto"
        Batches per compiled call, as Keras's ``compile(steps_per_execution=)``.
        1 runs one step per call, as the tutorials compile the network. More
        runs that many steps as one compiled program: with XLA on TensorFlow
        (Keras's ``jit_compile=True``), as a scan over the batches on JAX.
        ``"auto"`` compiles chunks of 32 steps for fits that plan at least
        1,000 steps (``epochs`` times the batches per epoch) and one step per
        call for smaller ones, which compiling would slow down. Either way
        the epochs, the callbacks' epoch hooks, early stopping and the
        history are the same; batch-level hooks are called once per chunk,
        with its last step, and Ctrl-C stops at the end of a chunk.

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
        The trained network. Predictions of a few rows (up to 128 on
        TensorFlow, 32 on JAX) run in numpy on copies of its weights; on
        TensorFlow, weights changed through Keras directly
        (``model_.set_weights``, ``model_.fit``) reach those predictions only
        after the estimator's next ``fit`` or ``partial_fit`` (JAX sees them
        at once).
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

    _parameter_constraints: dict = dict(PARAMETER_CONSTRAINTS)

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
        steps_per_execution="auto",
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
        self.steps_per_execution = steps_per_execution

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
            X, y = validate_data(
                self, X, y, reset=not incremental, dtype=np.float32, order="C"
            )
            check_classification_targets(y)
            classes = _check_labels(y, classes, incremental)
            encoded = np.searchsorted(classes, y)
            weights = _sample_weights(
                sample_weight, self.class_weight, X, y, encoded, classes
            )
            description = self._describe(
                X.shape[1],
                len(classes),
                n_train=len(X) - n_validation(self.validation_fraction, len(X)),
                check_activation=not incremental,
            )
            if incremental:
                check_unchanged(description, network.describe(self.model_))
            # scikit-learn's callbacks (1.9+): the fit is a task, each epoch a
            # subtask; None without that API.
            epochs = self.epochs if epochs is None else epochs
            task = begin_fit_task(self, X, y, sample_weight, epochs=epochs)
            rng = self._rng if incremental else check_random_state(self.random_state)
            split_seed, shuffle_seed = rng.randint(network.SEED_MAX, size=2)
            if incremental:
                model, history = self.model_, copy.deepcopy(self.history_)
            else:
                seeds, input_seed = network.draw_seeds(rng, description.network)
                model = network.build(
                    X.shape[1], len(classes), description, seeds, input_seed=input_seed
                )
                history = {}
            # The estimator's own Keras callbacks, beside the plan's (the
            # user's, copied): the engine calls them at every epoch.
            callbacks = []
            if task is not None:
                callbacks += task.epoch_callbacks(
                    history,
                    lambda seen: FittedState(rng, classes, model, seen).attributes(),
                )
                description = task.quiet_keras(description)
            result = _train(
                description,
                model,
                *split_validation(
                    self.validation_fraction, X, encoded, weights, split_seed
                ),
                n_classes=len(classes),
                epochs=epochs,
                history=history,
                shuffle_seed=shuffle_seed,
                callbacks=callbacks,
            )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        # Every fitted attribute at once, after a fit that succeeded.
        vars(self).update(FittedState(rng, classes, model, history).attributes())
        if task is not None:
            task.end()
        if result.interrupted_epoch is not None:
            warnings.warn(
                f"Training was interrupted by the user in epoch "
                f"{result.interrupted_epoch + 1}; the estimator keeps the weights it "
                f"had reached and is usable.",
                FitInterruptedWarning,
                stacklevel=4,
            )
        return self

    def _describe(self, n_features=None, n_classes=None, **kwargs):
        """The :class:`~sk_mnist._description.Description` of these parameters.

        ``kwargs`` go to :func:`~sk_mnist._description.from_params`:
        ``n_train``, ``check_activation``.
        """
        return from_params(
            self.get_params(deep=False),
            n_features=n_features,
            n_classes=n_classes,
            **kwargs,
        )

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
            from ._keras import network

            model = network.build(
                n_features, n_classes, self._describe(n_features, n_classes)
            )
        lines = []
        model.summary(print_fn=lambda text, **_: lines.append(text))
        return "\n".join(lines)

    def __copy__(self):
        """A shallow copy that shares the network, as ``copy.copy`` of any object.

        scikit-learn's callbacks make each epoch's ``fitted_estimator`` with
        ``copy.copy``; through :meth:`__getstate__` it would write the network
        to a ``.keras`` archive and read it back every time.
        """
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

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

        return serialization.to_plain_data(dict(super().__getstate__()))

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
        FittedState.check_saved(state)
        super().__setstate__(
            serialization.from_plain_data(state, origin="the saved KerasMLPClassifier")
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.classifier_tags.multi_label = False
        return tags


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


def _train(description, model, train, validation, **kwargs):
    """Hand the engine the arrays and the plan; warn like scikit-learn."""
    from ._keras import training

    plan = description.plan
    X, encoded, weights = train
    try:
        result = training.train(
            model,
            X,
            encoded,
            weights,
            plan=plan,
            validation=validation,
            **kwargs,
        )
    except TrainingDivergedError as exc:
        raise TrainingDivergedError(
            f"{exc}; try a lower learning_rate (got "
            f"{description.optimizer.learning_rate!r}) or scaling the features to "
            f"[0, 1] with MNISTFlattener."
        ) from None
    if plan.early_stopping and not (
        result.stopped_early or result.interrupted_epoch is not None
    ):
        warnings.warn(
            f"KerasMLPClassifier stopped after the maximum of {kwargs['epochs']} "
            f"epochs while {plan.monitor} was still improving; increase epochs.",
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
