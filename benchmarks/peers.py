"""The peers sk-mnist is measured against, each fitted as its users write it.

Raw Keras as the classic tutorial writes it and as Keras compiles it best
(XLA, 32 steps per call), sk-mnist's Pipeline, scikeras's
``KerasClassifier`` (when the bench extra is installed), Keras's
``keras.wrappers.SKLearnClassifier`` and scikit-learn's ``MLPClassifier``.
"""

from __future__ import annotations

import importlib.util
import time

SEED = 0


def data(n_train):
    import numpy as np

    from sk_mnist import fetch_mnist

    X, y = fetch_mnist(subset="train", return_X_y=True)
    Xt, yt = fetch_mnist(subset="test", return_X_y=True)
    X, y = X[:n_train], y[:n_train]
    flat = lambda a: (a / np.float32(255)).astype(np.float32)  # noqa: E731
    return X, y, flat(X), flat(Xt), yt


def tutorial_model(compiled=False):
    """The classic Keras MNIST MLP, written as the tutorial writes it.

    ``compiled`` compiles it as Keras does best on a CPU, which the tutorial
    does not ask for: ``jit_compile=True, steps_per_execution=32`` (XLA, and
    32 steps per call).
    """
    import keras

    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy",
        optimizer="rmsprop",
        metrics=["accuracy"],
        **(dict(jit_compile=True, steps_per_execution=32) if compiled else {}),
    )
    return model


class EpochTimer:
    """Wall time of each epoch, for any peer that takes Keras callbacks."""

    def __init__(self):
        self.times, self._start = [], None

    def begin(self):
        self._start = time.perf_counter()

    def end(self):
        self.times.append(time.perf_counter() - self._start)


def keras_timer_callback(timer):
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            timer.begin()

        def on_epoch_end(self, epoch, logs=None):
            timer.end()

    return Timer()


def training_peers(epochs, timer):
    """name -> (make a fitted predictor from (X_raw, y, X_flat)) for each peer."""
    peers = {}

    def raw_keras(X, y, Xf, compiled=False):
        import keras

        model = tutorial_model(compiled)
        model.fit(
            Xf,
            keras.utils.to_categorical(y, 10),
            batch_size=128,
            epochs=epochs,
            verbose=0,
            callbacks=[keras_timer_callback(timer)],
        )
        return lambda x: model.predict(x, verbose=0)

    def sk_mnist(X, y, Xf):
        from sklearn.pipeline import make_pipeline

        from sk_mnist import KerasMLPClassifier, MNISTFlattener

        pipe = make_pipeline(
            MNISTFlattener(),
            KerasMLPClassifier(
                epochs=epochs,
                random_state=SEED,
                callbacks=[keras_timer_callback(timer)],
            ),
        )
        pipe.fit(X, y)
        # The peers predict already-scaled features, so time the classifier
        # step alone on the same input.
        return pipe[-1].predict_proba

    peers["raw Keras (tutorial)"] = raw_keras
    peers["raw Keras (compiled)"] = lambda X, y, Xf: raw_keras(X, y, Xf, compiled=True)
    peers["sk-mnist"] = sk_mnist

    if importlib.util.find_spec("scikeras"):

        def scikeras(X, y, Xf):
            from scikeras.wrappers import KerasClassifier

            clf = KerasClassifier(
                # The loss tells scikeras to one-hot encode the labels; the
                # model arrives compiled, as the tutorial compiles it.
                model=tutorial_model,
                loss="categorical_crossentropy",
                epochs=epochs,
                batch_size=128,
                verbose=0,
                callbacks=[keras_timer_callback(timer)],
            )
            clf.fit(Xf, y)
            return clf.predict_proba

        peers["scikeras KerasClassifier"] = scikeras

    def keras_wrappers(X, y, Xf):
        import keras

        clf = keras.wrappers.SKLearnClassifier(
            model=lambda X, y: tutorial_model(),
            fit_kwargs={
                "epochs": epochs,
                "batch_size": 128,
                "verbose": 0,
                "callbacks": [keras_timer_callback(timer)],
            },
        )
        clf.fit(Xf, y)
        return lambda x: clf.model_.predict(x, verbose=0)

    peers["keras.wrappers.SKLearnClassifier"] = keras_wrappers

    def mlp(X, y, Xf):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(
            (512, 512), batch_size=128, max_iter=1, warm_start=True, random_state=SEED
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(epochs):
                timer.begin()
                clf.fit(Xf, y)
                timer.end()
        return clf.predict_proba

    peers["sklearn MLPClassifier"] = mlp
    return peers
