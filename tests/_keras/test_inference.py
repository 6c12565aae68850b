"""The numpy forward pass of small batches against Keras's own."""

import gc
import weakref

import keras
import numpy as np
import pytest

from sk_mnist import KerasMLPClassifier
from sk_mnist._keras import inference, network


def _inputs(n, seed=0):
    # MNIST-like: most pixels blank, the rest in [0, 1].
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784), dtype=np.float32)
    return X * (rng.random((n, 784)) < 0.2)


def _network(activation="relu", hidden=(64, 32)):
    model = network.build_network(
        784, 10, hidden_layer_sizes=hidden, activation=activation, seeds=range(5)
    )
    # Biases away from 0, as training leaves them.
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.bias.assign(np.linspace(-0.5, 0.5, layer.units, dtype=np.float32))
    return model


@pytest.mark.parametrize("activation", sorted(inference.ACTIVATIONS))
def test_every_activation_gives_keras_probabilities(activation):
    model = _network(activation)
    X = _inputs(inference.MAX_ROWS[keras.backend.backend()])
    mine = inference.forward(model, X)
    assert mine is not None
    assert np.abs(mine - model.predict(X, verbose=0)).max() <= 1e-6


def test_the_estimator_uses_numpy_for_a_few_rows_and_keras_for_more():
    model = _network()
    small = _inputs(inference.MAX_ROWS[keras.backend.backend()])
    large = _inputs(len(small) + 1)
    assert inference.forward(model, small) is not None
    assert inference.forward(model, large) is None
    for X in (small, large):
        np.testing.assert_allclose(
            network.predict_in_batches(model, X),
            model.predict(X, verbose=0),
            atol=1e-6,
        )


@pytest.mark.parametrize("activation", ["celu", "hard_silu"])
def test_an_activation_outside_the_table_takes_the_keras_path(activation):
    assert activation not in inference.ACTIVATIONS
    model = _network(activation)
    X = _inputs(3)
    assert inference.forward(model, X) is None
    np.testing.assert_allclose(
        network.predict_in_batches(model, X), model.predict(X, verbose=0), atol=1e-6
    )


def test_small_predictions_follow_each_fit(fast_params):
    X, y = _inputs(300), np.arange(300) % 3
    clf = KerasMLPClassifier(**fast_params).fit(X, y)
    before = clf.predict_proba(X[:2])
    clf.partial_fit(X, y)
    after = clf.predict_proba(X[:2])
    assert np.abs(after - before).max() > 1e-4
    np.testing.assert_allclose(after, clf.model_.predict(X[:2], verbose=0), atol=1e-6)


def test_predictions_during_training_take_the_keras_path(fast_params):
    class Probe(keras.callbacks.Callback):
        seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(inference.forward(self.model, X[:2]))

    X, y = _inputs(200), np.arange(200) % 2
    KerasMLPClassifier(**fast_params, callbacks=[Probe()]).fit(X, y)
    assert len(Probe.seen) == fast_params["epochs"]
    assert all(found is None for found in Probe.seen)


def test_weights_set_by_hand_are_seen_on_jax_and_after_forget_on_tensorflow():
    model = _network()
    X = _inputs(2)
    before = inference.forward(model, X)
    layer = model.layers[-1]
    layer.set_weights([w * 2 for w in layer.get_weights()])
    if keras.backend.backend() != "jax":
        np.testing.assert_array_equal(inference.forward(model, X), before)
        inference.forget(model)
    after = inference.forward(model, X)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, model.predict(X, verbose=0), atol=1e-6)


def test_the_numpy_weights_do_not_keep_their_model_alive():
    model = _network()
    assert inference.forward(model, _inputs(1)) is not None
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_the_docs_state_the_limits_the_code_has():
    # The limits are written out in the estimator's docstring and two guides;
    # a change of MAX_ROWS must change them too.
    from pathlib import Path

    tf_rows, jax_rows = inference.MAX_ROWS["tensorflow"], inference.MAX_ROWS["jax"]
    docs = Path(__file__).parents[2] / "docs"
    texts = {
        "model_ docstring": KerasMLPClassifier.__doc__,
        "backends.rst": (docs / "user_guide" / "backends.rst").read_text(),
        "architecture.rst": (docs / "developers" / "architecture.rst").read_text(),
    }
    for name, text in texts.items():
        flat = " ".join(text.split())
        assert (
            f"{tf_rows} on TensorFlow" in flat
            or f"{tf_rows} rows on TensorFlow" in flat
        ), name
        assert f"{jax_rows} on JAX" in flat or f"({jax_rows} on JAX)" in flat, name
