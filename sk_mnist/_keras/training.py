"""The epoch loop: seeded shuffling, one callback list across epochs, faults.

Keras shuffles arrays with unseeded random ops, and shuffling a ``PyDataset``
would go through Python's global ``random``. So each epoch here is one
:meth:`keras.Model.fit` call on a copy permuted by our own seeded generator,
with ``shuffle=False``, while one :class:`SpanningCallbackList` makes the
callbacks (early stopping, the progress bar, the user's) see one run of many
epochs. The steps are small functions, as skorch splits its ``fit_loop``:
:func:`train` -> :func:`run_epoch` -> :meth:`keras.Model.fit`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import threading
from dataclasses import dataclass, field

import keras
import numpy as np

from .._description import TrainingPlan
from ..exceptions import TrainingDivergedError
from . import inference, network


class SpanningCallbackList(keras.callbacks.CallbackList):
    """A ``CallbackList`` that spans several one-epoch ``fit`` calls.

    :meth:`keras.Model.fit` uses a ``CallbackList`` it is given as it is and
    calls its ``on_train_begin``/``on_train_end`` around every call. This list
    ignores those and runs them once, from :meth:`begin` and :meth:`end`.
    """

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def begin(self):
        """Start the training run: ``on_train_begin`` of every callback."""
        super().on_train_begin()

    def end(self):
        """End the training run: ``on_train_end`` of every callback."""
        super().on_train_end()


class StopOnCtrlC(keras.callbacks.Callback):
    """Ctrl-C ends training at the end of the current batch.

    Python raises ``KeyboardInterrupt`` wherever the main thread is when the
    signal arrives, and inside the backend's eager and compiled machinery an
    exception there can leave its memory corrupt (seen: TensorFlow aborting
    with ``free(): invalid next size``). So while training runs in the main
    thread, SIGINT only sets :attr:`requested`, and this callback stops the
    model at the next batch boundary; a second Ctrl-C raises as usual.
    """

    def __init__(self):
        super().__init__()
        self.requested = False

    def on_train_batch_end(self, batch, logs=None):
        if self.requested:
            self.model.stop_training = True

    @contextlib.contextmanager
    def handling_sigint(self):
        """Install the SIGINT handler for the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class EarlyStoppingAtBest(keras.callbacks.EarlyStopping):
    """Keras's early stopping, restoring the weights of the best epoch.

    Patience is counted as Keras counts it (an epoch that does not beat the
    best by more than ``min_delta`` waits). Keras moves its best only on
    such an improvement, and restores that epoch's weights, so with a
    ``tol`` larger than the improvements the first epoch came back while
    ``best_validation_score_`` named a later one; scikit-learn's MLP keeps
    the weights of the best score, and so does this.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.top = None

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        current = (logs or {}).get(self.monitor)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.top is None or bool(self.monitor_op(current, self.top)):
            self.top = current
            if self.best_epoch != epoch or self.best_weights is None:
                self.best_weights = self.model.get_weights()
            self.best_epoch = epoch


class AdaptiveRate(keras.callbacks.Callback):
    """Divide the learning rate by 5 when ``monitor`` stops improving by ``tol``.

    MLPClassifier's ``learning_rate="adaptive"`` as its documentation states
    it: each time two consecutive epochs fail to improve the monitored value
    (the training loss, or the validation accuracy) by at least ``tol`` on the
    best so far, the rate is divided by 5. Keras's ``ReduceLROnPlateau``
    starts counting afresh in every ``fit``; this count goes on across calls:
    ``previous`` holds the values of the epochs trained before (by an earlier
    ``partial_fit`` or ``warm_start`` fit), whose reductions were made then.
    """

    PATIENCE, FACTOR = 2, 0.2

    def __init__(self, monitor, tol, previous=()):
        super().__init__()
        self.monitor, self.tol = monitor, tol
        self.maximize = monitor.endswith("accuracy")
        self.best, self.stale = None, 0
        for value in previous:
            self._due(value)

    def _due(self, value) -> bool:
        """Count ``value``; whether the rate is due to be lowered now."""
        better = self.best is None or (
            value > self.best + self.tol
            if self.maximize
            else value < self.best - self.tol
        )
        if better:
            self.best, self.stale = value, 0
            return False
        self.stale += 1
        if self.stale < self.PATIENCE:
            return False
        self.stale = 0
        return True

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and self._due(float(value)):
            optimizer = self.model.optimizer
            rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            optimizer.learning_rate = rate * self.FACTOR


class RecordLearningRate(keras.callbacks.Callback):
    """Add the learning rate each epoch started with to its logs (``history_``)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._rate = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self._rate


@dataclass
class TrainingResult:
    """What :func:`train` did.

    Attributes
    ----------
    history : dict of str to list of float
        The metrics of each epoch trained, as Keras's ``History.history``.
    interrupted_epoch : int or None
        The (0-based) epoch a ``KeyboardInterrupt`` stopped, else ``None``.
    stopped_early : bool
        Whether a callback (early stopping) ended training before ``epochs``.
    """

    history: dict = field(default_factory=dict)
    interrupted_epoch: int | None = None
    stopped_early: bool = False


def train(
    model,
    X,
    y,
    sample_weight=None,
    *,
    plan: TrainingPlan,
    n_classes,
    validation=None,
    epochs=None,
    history=None,
    shuffle_seed=None,
    callbacks=(),
) -> TrainingResult:
    """Train ``model`` as ``plan`` says, on labels encoded as 0..n_classes-1.

    Parameters
    ----------
    model : keras.Model
        A compiled model; trained in place.
    X : ndarray of shape (n_samples, n_features), float32
        Training inputs.
    y : ndarray of shape (n_samples,), int
        Class indices, one-hot encoded here for the cross-entropy.
    sample_weight : ndarray of shape (n_samples,), default=None
        Weight of each sample in the loss.
    plan : TrainingPlan
        Batches, shuffling, early stopping, the adaptive rate, the history's
        learning rate, the user's callbacks (deep-copied, never mutated) and
        the verbosity.
    n_classes : int
        Units of the network's output.
    validation : tuple of (ndarray, ndarray), default=None
        Inputs and class indices scored after each epoch.
    epochs : int, default=None
        Epochs to train in this call (``plan.epochs`` when None).
    history : dict of str to list of float, default=None
        What earlier calls trained (``warm_start``, ``partial_fit``): the
        epoch numbers and the adaptive rate's count go on from it.
    shuffle_seed : int, default=None
        Seeds the permutation of each epoch when ``plan.shuffle``.
    callbacks : sequence of keras.callbacks.Callback, default=()
        The estimator's own callbacks, used as they are (not copied).

    Returns
    -------
    TrainingResult

    Raises
    ------
    TrainingDivergedError
        The loss became NaN or infinite; the message names the epoch.
    """
    history = history or {}
    epochs = plan.epochs if epochs is None else epochs
    initial_epoch = len(history.get("loss", []))
    # Like MLPClassifier, at most one batch of all samples (a huge batch_size
    # would overflow the backend's shape arithmetic).
    batch_size = min(plan.batch_size, len(X))
    one_hot = np.eye(n_classes, dtype=np.float32)
    validation_data = (
        None if validation is None else (validation[0], one_hot[validation[1]])
    )
    recorder = keras.callbacks.History()
    ctrl_c = StopOnCtrlC()
    callback_list = SpanningCallbackList(
        [
            keras.callbacks.TerminateOnNaN(),
            ctrl_c,
            *_internal_callbacks(plan, history),
            *copy.deepcopy(list(plan.callbacks)),
            *callbacks,
            *([RecordLearningRate()] if plan.record_learning_rate else []),
            recorder,
        ],
        add_progbar=plan.verbose != 0,
        model=model,
        verbose=plan.verbose,
        epochs=initial_epoch + epochs,
        steps=math.ceil(len(X) / batch_size),
    )
    shuffle_rng = np.random.default_rng(shuffle_seed) if plan.shuffle else None
    steps = execution_steps(plan.steps_per_execution, len(X), batch_size, epochs)
    compiled_epochs = network.backend_name() == "jax" and steps > 1
    batched = network.backend_name() == "tensorflow"
    data = (
        (X, one_hot[y], sample_weight)
        if shuffle_rng is None and not compiled_epochs and not batched
        else _as_tensors(X, one_hot[y], sample_weight)
    )
    if batched and validation_data is not None:
        validation_data = _batches(*_as_tensors(*validation_data, None), batch_size)
    if compiled_epochs:
        from . import compiled

        epoch_runner = compiled.CompiledEpochs(
            model, *data, batch_size=batch_size, steps=steps
        )
    else:
        _set_execution(model, steps)
    result = TrainingResult(history=recorder.history)
    epoch = initial_epoch
    with network.backend_lock(), ctrl_c.handling_sigint(), inference.training(model):
        callback_list.begin()
        model.stop_training = False
        try:
            for epoch in range(initial_epoch, initial_epoch + epochs):
                if compiled_epochs:
                    run_compiled_epoch(
                        model,
                        epoch_runner,
                        epoch=epoch,
                        shuffle_rng=shuffle_rng,
                        validation_data=validation_data,
                        callbacks=callback_list,
                    )
                else:
                    run_epoch(
                        model,
                        *data,
                        epoch=epoch,
                        batch_size=batch_size,
                        shuffle_rng=shuffle_rng,
                        validation_data=validation_data,
                        callbacks=callback_list,
                    )
                _check_finite(recorder.history, epoch, epoch + 1 - initial_epoch)
                if ctrl_c.requested:
                    result.interrupted_epoch = epoch
                    break
                if model.stop_training:
                    result.stopped_early = True
                    break
        except KeyboardInterrupt:
            result.interrupted_epoch = epoch
        finally:
            callback_list.end()
    return result


def _internal_callbacks(plan, history):
    """Early stopping and the adaptive rate, both watching ``plan.monitor``."""
    found = []
    if plan.early_stopping:
        found.append(
            EarlyStoppingAtBest(
                monitor=plan.monitor,
                min_delta=plan.tol,
                patience=plan.n_iter_no_change,
                restore_best_weights=True,
                verbose=int(plan.verbose > 0),
            )
        )
    if plan.adaptive:
        found.append(
            AdaptiveRate(plan.monitor, plan.tol, previous=history.get(plan.monitor, []))
        )
    return found


def run_epoch(
    model,
    X,
    Y,
    sample_weight,
    *,
    epoch,
    batch_size,
    shuffle_rng,
    validation_data,
    callbacks,
):
    """Train one epoch, on the rows in a permuted order when shuffling.

    On TensorFlow each batch gathers its rows (:func:`_batches`); on other
    backends the epoch trains on a permuted copy of the data.
    """
    order = None
    if shuffle_rng is not None:
        order = shuffle_rng.permutation(len(Y)).astype(np.int32)
    if network.backend_name() == "tensorflow":
        X, Y, sample_weight = (
            _batches(X, Y, sample_weight, batch_size, order),
            None,
            None,
        )
    elif order is not None:
        order = keras.ops.convert_to_tensor(order)
        X, Y = keras.ops.take(X, order, axis=0), keras.ops.take(Y, order, axis=0)
        if sample_weight is not None:
            sample_weight = keras.ops.take(sample_weight, order, axis=0)
    model.fit(
        X,
        Y,
        sample_weight=sample_weight,
        batch_size=None if Y is None else batch_size,
        epochs=epoch + 1,
        initial_epoch=epoch,
        shuffle=False,
        validation_data=validation_data,
        callbacks=callbacks,
        verbose=0,
    )


def run_compiled_epoch(
    model, epoch_runner, *, epoch, shuffle_rng, validation_data, callbacks
):
    """Train one epoch in compiled chunks (JAX), then validate, as ``fit`` does.

    The callbacks see what one epoch of :meth:`keras.Model.fit` shows them:
    ``on_epoch_begin``, batch hooks (once per chunk), the validation's test
    hooks and ``on_epoch_end`` with the epoch's metrics.
    """
    n = len(epoch_runner.data[0])
    order = np.arange(n) if shuffle_rng is None else shuffle_rng.permutation(n)
    model.reset_metrics()
    callbacks.on_epoch_begin(epoch)
    epoch_runner.run(order.astype(np.int32), callbacks)
    logs = dict(model.get_metrics_result())
    if validation_data is not None:
        scores = model.evaluate(
            *validation_data,
            batch_size=epoch_runner.batch_size,
            callbacks=callbacks,
            verbose=0,
            return_dict=True,
        )
        logs.update({f"val_{name}": value for name, value in scores.items()})
    callbacks.on_epoch_end(epoch, logs)


#: Batches per compiled call when ``steps_per_execution="auto"`` compiles.
AUTO_STEPS = 32
#: The fewest steps a fit must plan for ``"auto"`` to compile them: below,
#: compiling costs more than it saves (measured in benchmarks/).
AUTO_MIN_STEPS = 1000


def execution_steps(steps_per_execution, n_samples, batch_size, epochs) -> int:
    """Batches per compiled call: the plan's, or for ``"auto"`` by the work's size.

    ``"auto"`` compiles chunks of :data:`AUTO_STEPS` batches (XLA on
    TensorFlow, a scan on JAX) when the fit plans at least
    :data:`AUTO_MIN_STEPS` steps, and one step per call, as the tutorial
    compiles it, for smaller fits (the estimator checks, the tests).
    """
    if steps_per_execution != "auto":
        return int(steps_per_execution)
    planned = epochs * math.ceil(n_samples / batch_size)
    return AUTO_STEPS if planned >= AUTO_MIN_STEPS else 1


def _set_execution(model, steps):
    """Keras's own ``steps_per_execution``, and XLA with it, for ``model.fit``.

    On TensorFlow only: Keras compiles JAX's steps with XLA always.
    """
    if network.backend_name() != "tensorflow":
        return
    jit = steps > 1
    if model.steps_per_execution != steps or bool(model.jit_compile) != jit:
        model.steps_per_execution = steps
        model.jit_compile = jit
        model.train_function = None


def _as_tensors(X, Y, sample_weight):
    # The data become backend tensors once, and each epoch's permuted copy is
    # made by the backend and dropped when the epoch ends: numpy copies that
    # Keras converts again would double the peak memory of a fit (measured in
    # benchmarks/).
    convert = keras.ops.convert_to_tensor
    return (
        convert(X),
        convert(Y),
        None if sample_weight is None else convert(sample_weight),
    )


def _batches(X, Y, sample_weight, batch_size, order=None):
    """The rows, in ``order`` if given, as a dataset of batches (TensorFlow).

    Each epoch is one ``fit`` call; given arrays, Keras's adapter builds
    and traces a shuffling and slicing pipeline at every call, which took
    about 0.1 s here, most of a small fit's epoch. The order is the
    estimator's seeded permutation, so batching is all the pipeline has to
    do (the same batches, about a fifth of the time). Each batch gathers
    its rows from the data as they are: a permuted copy of the whole data
    per epoch, held by its dataset until the next one is made, raised a
    full fit's peak memory by that copy (188 MB on 60,000 images).
    """
    import tensorflow as tf

    rows = (X, Y) if sample_weight is None else (X, Y, sample_weight)
    if order is None:
        return tf.data.Dataset.from_tensor_slices(rows).batch(batch_size)
    return (
        tf.data.Dataset.from_tensor_slices(order)
        .batch(batch_size)
        .map(lambda batch: tuple(tf.gather(part, batch) for part in rows))
    )


def _check_finite(history, epoch, n_expected):
    """Raise when ``TerminateOnNaN`` cut the epoch short or its loss is not finite."""
    losses = history.get("loss", [])
    if len(losses) < n_expected or not np.isfinite(losses[-1]):
        raise TrainingDivergedError(
            f"The training loss became NaN or infinite in epoch {epoch + 1}"
        )
