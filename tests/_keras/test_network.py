"""The network builder: the classic architecture, seeds, optimizers, forward pass."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest

from sk_mnist._description import Description, Network, Optimizer, changes
from sk_mnist._keras import inference, network


def test_the_default_network_is_the_classic_one():
    model = network.build_network(784, 10, seeds=range(network.n_seeds(2)))
    assert model.count_params() == 669_706
    assert [type(layer).__name__ for layer in model.layers] == [
        "Dense",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert model.layers[0].activation.__name__ == "relu"
    assert model.layers[-1].activation.__name__ == "softmax"
    assert type(model.optimizer).__name__ == "RMSprop"
    assert model.layers[1].rate == pytest.approx(0.2)


def test_a_zero_rate_leaves_the_dropout_layer_out():
    model = network.build_network(
        20, 3, hidden_layer_sizes=(8, 4), dropout=(0.0, 0.5), seeds=range(5)
    )
    assert [type(layer).__name__ for layer in model.layers] == [
        "Dense",
        "Dense",
        "Dropout",
        "Dense",
    ]


def test_the_same_seeds_give_the_same_weights_and_others_do_not():
    a = network.build_network(
        20, 3, hidden_layer_sizes=(8,), dropout=(0.2,), seeds=[1, 2, 3]
    )
    b = network.build_network(
        20, 3, hidden_layer_sizes=(8,), dropout=(0.2,), seeds=[1, 2, 3]
    )
    c = network.build_network(
        20, 3, hidden_layer_sizes=(8,), dropout=(0.2,), seeds=[4, 2, 3]
    )
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_an_optimizer_instance_is_copied_and_its_rate_replaced():
    given = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    made = network.make_optimizer(Optimizer("SGD", 0.003, momentum=0.9, source=given))
    assert made is not given
    assert made.get_config()["momentum"] == pytest.approx(0.9)
    assert float(made.learning_rate) == pytest.approx(0.003)
    assert float(given.learning_rate) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("optimizer", "error", "message"),
    [
        ("nesterov-ish", ValueError, "optimizer must be the name of a Keras optimizer"),
        (
            "LossScaleOptimizer",
            ValueError,
            "optimizer must be the name of a Keras optimizer",
        ),
        (3, TypeError, "optimizer must be a str or a keras.optimizers.Optimizer"),
    ],
)
def test_bad_optimizers_are_named(optimizer, error, message):
    with pytest.raises(error, match=message):
        network.optimizer_defaults(optimizer)


def test_an_unknown_activation_is_named():
    with pytest.raises(
        ValueError, match="activation must be the name of a Keras activation.*'bogus'"
    ):
        network.check_activation("bogus")


def test_describe_reads_back_what_the_network_was_built_with():
    wanted = Description(
        Network((8, 4), "tanh", (0.0, 0.5)),
        Optimizer("SGD", 0.05, momentum=0.9, nesterov=True, source="sgd"),
    )
    built = network.describe(network.build(20, 3, wanted, seeds=range(5)))
    assert changes(wanted, built) == []
    assert built.network == wanted.network
    assert built.optimizer.learning_rate == pytest.approx(0.05)
    smaller = replace(wanted, network=Network((8,), "tanh", (0.0,)))
    assert [change[0] for change in changes(smaller, built)] == [
        "hidden_layer_sizes",
        "dropout",
    ]
    regularized = network.build_network(
        20,
        3,
        hidden_layer_sizes=(8,),
        dropout=(0.0,),
        optimizer="sgd",
        seeds=range(3),
        input_dropout=0.2,
        input_seed=7,
        l2=0.01,
        max_norm=3.0,
        schedule=keras.optimizers.schedules.CosineDecay(0.05, 100),
    )
    built = network.describe(regularized)
    assert built.network == Network((8,), "relu", (0.0,), 0.2, 0.01, 3.0)
    assert (built.optimizer.schedule, built.optimizer.learning_rate) == (
        "CosineDecay",
        0.05,
    )


def test_one_optimizer_is_made_from_the_description_with_its_schedule():
    made = network.make_optimizer(
        Optimizer("SGD", 0.2, schedule="CosineDecay", source="sgd", decay_steps=10)
    )
    rate = made.get_config()["learning_rate"]
    assert rate["class_name"] == "CosineDecay"
    assert rate["config"]["decay_steps"] == 10
    assert rate["config"]["initial_learning_rate"] == pytest.approx(0.2)


def test_dense_layers_are_the_whole_network_at_inference():
    model = network.build_network(
        20, 3, hidden_layer_sizes=(8,), dropout=(0.3,), seeds=range(3)
    )
    X = np.random.default_rng(0).random((5, 20), dtype=np.float32)
    h = X
    for kernel, bias, activation in network.dense_layers(model):
        z = h @ kernel + bias
        h = (
            np.maximum(z, 0)
            if activation == "relu"
            else np.exp(z) / np.exp(z).sum(1, keepdims=True)
        )
    np.testing.assert_allclose(
        h, network.predict_in_batches(model, X), rtol=1e-5, atol=1e-6
    )


def test_predicting_in_chunks_equals_one_call():
    model = network.build_network(
        20, 3, hidden_layer_sizes=(8,), dropout=(0.0,), seeds=range(3)
    )
    X = np.random.default_rng(0).random((1000, 20), dtype=np.float32)
    np.testing.assert_allclose(
        network.predict_in_batches(model, X, batch_size=300),
        network.predict_in_batches(model, X),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        network.predict_in_batches(model, X),
        model.predict(X, verbose=0),
        rtol=1e-5,
        atol=1e-7,
    )


@pytest.mark.parametrize(
    ("activation", "message"),
    [
        ("threshold", r"maps each unit to one value.*got 'threshold'\.$"),
        ("glu", r"got 'glu': it turns 2 units into shape \(1,\)"),
    ],
)
def test_an_activation_that_is_no_element_wise_function_is_refused(activation, message):
    # Keras knows both names, but a hidden layer cannot use them: the check
    # builds a layer and calls it, as fit would.
    assert keras.activations.get(activation) is not None
    with pytest.raises(ValueError, match=message):
        network.check_activation(activation)


@pytest.mark.parametrize("activation", sorted(["relu", "gelu", "softmax", "tanh"]))
def test_element_wise_activations_pass_the_check(activation):
    network.check_activation(activation)


def test_the_compiled_forward_pass_does_not_keep_its_model_alive():
    import gc
    import weakref

    model = network.build_network(
        20, 3, hidden_layer_sizes=(4,), dropout=(0.0,), seeds=range(3)
    )
    # Past the rows run in numpy (sk_mnist._keras.inference): the compiled pass.
    n = inference.MAX_ROWS[keras.backend.backend()] + 1
    X = np.random.default_rng(0).random((n, 20), dtype=np.float32)
    np.testing.assert_array_equal(
        network.predict_in_batches(model, X), np.asarray(model.predict_on_batch(X))
    )
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_the_compiled_forward_pass_writes_no_temporary_file():
    # autograph writes each function it converts to a temporary file, which
    # a process that ends abruptly leaves behind: the forward pass has no
    # control flow to convert, so it is traced without autograph.
    import glob
    import os
    import tempfile

    pattern = os.path.join(tempfile.gettempdir(), "__autograph_generated_file*")
    before = set(glob.glob(pattern))
    model = network.build_network(
        20, 3, hidden_layer_sizes=(4,), dropout=(0.0,), seeds=range(3)
    )
    X = np.random.default_rng(0).random((100, 20), dtype=np.float32)
    network.predict_in_batches(model, X)
    assert set(glob.glob(pattern)) <= before
