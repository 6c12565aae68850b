"""The epoch loop: one callback list across epochs, seeded shuffling, faults."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sk_mnist._description import TrainingPlan
from sk_mnist._keras import network, training
from sk_mnist.exceptions import TrainingDivergedError


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 20), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.int64) + (X[:, 1] > 0.5)
    return X, y


def _model(**kwargs):
    params = dict(hidden_layer_sizes=(8,), dropout=(0.0,), seeds=range(3))
    return network.build_network(20, 3, **{**params, **kwargs})


def _train(model, X, y, *, plan=(), **kwargs):
    plan = TrainingPlan(
        **{"epochs": 3, "batch_size": 32, "shuffle": False, **dict(plan)}
    )
    return training.train(model, X, y, plan=plan, **{"n_classes": 3, **kwargs})


class _Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("begin")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(epoch)

    def on_train_end(self, logs=None):
        self.calls.append("end")


def test_the_spanning_list_is_a_plain_callback_list():
    callbacks = training.SpanningCallbackList([], model=_model())
    assert isinstance(callbacks, keras.callbacks.CallbackList)


def test_callbacks_see_one_run_of_many_epochs_and_the_users_are_copied():
    X, y = _data()
    recorder = _Record()
    model = _model()
    result = _train(model, X, y, plan={"callbacks": (recorder,)}, epochs=3)
    assert recorder.calls == []  # deep-copied: the user's object is untouched
    assert len(result.history["loss"]) == 3

    seen = []

    class Spy(_Record):
        def on_train_end(self, logs=None):
            super().on_train_end(logs)
            seen.extend(self.calls)

    _train(model, X, y, callbacks=[Spy()], epochs=2, history=result.history)
    assert seen == ["begin", 3, 4, "end"]


def test_shuffling_is_seeded_and_no_rng_keeps_the_order():
    X, y = _data()
    runs = [
        _train(_model(), X, y, plan={"shuffle": True}, shuffle_seed=seed).history[
            "loss"
        ]
        for seed in (1, 1, 2)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    unshuffled = [_train(_model(), X, y).history["loss"] for _ in range(2)]
    assert unshuffled[0] == unshuffled[1]


def test_validation_data_are_scored_after_each_epoch():
    X, y = _data()
    result = _train(_model(), X[:200], y[:200], validation=(X[200:], y[200:]), epochs=2)
    assert sorted(result.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(result.history["val_accuracy"]) == 2


def test_early_stopping_stops_and_says_so():
    X, y = _data()
    result = _train(
        _model(optimizer="sgd", learning_rate=1e-9),
        X,
        y,
        epochs=30,
        plan={"early_stopping": True, "tol": 1.0, "n_iter_no_change": 1},
    )
    assert result.stopped_early
    assert len(result.history["loss"]) < 30


def test_a_nan_loss_is_an_error_naming_the_epoch():
    X, y = _data()
    # A learning rate this absurd overflows the weights on every backend.
    with pytest.raises(TrainingDivergedError, match=r"NaN or infinite in epoch \d"):
        _train(_model(optimizer="sgd", learning_rate=1e38), X, y, epochs=3)


def test_ctrl_c_ends_training_with_the_epoch_reached():
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    X, y = _data()
    result = _train(_model(), X, y, callbacks=[Interrupt()], epochs=5)
    assert result.interrupted_epoch == 1
    assert len(result.history["loss"]) == 1
    assert TrainingPlan(early_stopping=True, validation_fraction=0.1).monitor == (
        "val_accuracy"
    )
    assert TrainingPlan(validation_fraction=0.1).monitor == "loss"


def test_a_real_sigint_stops_at_the_next_batch_and_restores_the_handler():
    import os
    import signal

    class SendSigint(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.params and batch == 2 and not getattr(self, "sent", False):
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    X, y = _data()
    result = _train(_model(), X, y, callbacks=[SendSigint()], epochs=5)
    assert result.interrupted_epoch == 0
    assert len(result.history["loss"]) == 1  # the epoch it stopped in
    assert signal.getsignal(signal.SIGINT) is before


class _Hooks(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches, self.epochs = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_compiled_chunks_keep_the_epochs_and_call_batch_hooks_once_per_chunk():
    # 200 samples: 7 batches of 32 (the last one of 8), in chunks of 3, 3, 1.
    X, y = _data()
    hooks = _Hooks()
    runs = [
        _train(
            _model(),
            X[:200],
            y[:200],
            plan={"steps_per_execution": steps, "shuffle": True},
            shuffle_seed=0,
            validation=(X[200:], y[200:]),
            callbacks=[hooks] if steps > 1 else [],
            epochs=2,
        )
        for steps in (3, 1)
    ]
    assert hooks.epochs == [0, 1]
    # Once per chunk, with its last step (Keras on TensorFlow numbers the
    # last, shorter chunk as a full one: 8).
    assert len(hooks.batches) == 6
    assert hooks.batches[:2] == hooks.batches[3:5] == [2, 5]
    chunked, stepwise = (run.history for run in runs)
    assert (
        sorted(chunked)
        == sorted(stepwise)
        == [
            "accuracy",
            "loss",
            "val_accuracy",
            "val_loss",
        ]
    )
    for key in stepwise:
        np.testing.assert_allclose(chunked[key], stepwise[key], rtol=1e-3)


def test_ctrl_c_in_compiled_training_stops_within_one_more_chunk():
    import os
    import signal

    class SendSigint(_Hooks):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if len(self.batches) == 1:
                os.kill(os.getpid(), signal.SIGINT)

    X, y = _data()
    spy = SendSigint()
    result = _train(
        _model(), X, y, plan={"steps_per_execution": 3}, callbacks=[spy], epochs=5
    )
    assert spy.batches == [2, 5]
    assert result.interrupted_epoch == 0
    assert len(result.history["loss"]) == 1


def test_auto_compiles_only_fits_that_plan_many_steps():
    assert training.execution_steps("auto", 3000, 64, 2) == 1
    assert training.execution_steps("auto", 60_000, 128, 20) == training.AUTO_STEPS
    assert training.execution_steps(5, 10, 64, 1) == 5


def test_compiled_training_does_not_keep_its_model_alive():
    import gc
    import weakref

    X, y = _data()
    model = _model()
    _train(model, X, y, plan={"steps_per_execution": 3}, epochs=1)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
