"""Weight penalty, max-norm, input dropout and learning-rate schedules."""

from __future__ import annotations

import math

import keras
import numpy as np
import onnxruntime
import pytest
from conftest import FAST_PARAMS
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError

from sk_mnist import KerasMLPClassifier, MNISTFlattener, load, save
from sk_mnist._keras.network import describe
from sk_mnist.onnx import to_onnx

FAST = FAST_PARAMS
REGULARIZED = dict(
    alpha=0.5,
    max_norm=2.0,
    input_dropout=0.2,
    learning_rate_schedule="cosine",
    optimizer="sgd",
    momentum=0.9,
)


def test_the_defaults_add_nothing(small_mnist):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(**FAST).fit(X[:500], y[:500])
    assert [type(layer).__name__ for layer in clf.model_.layers] == [
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert clf.model_.losses == []
    assert all(layer.kernel_constraint is None for layer in clf.model_.layers[::2])
    assert "learning_rate" not in clf.history_
    built = describe(clf.model_)
    assert (built.network.l2, built.network.max_norm) == (0.0, None)
    assert built.network.input_dropout == 0.0
    assert built.optimizer.schedule == "constant"


def test_the_penalty_is_alpha_over_the_batch_in_the_loss(small_mnist):
    # MLPClassifier adds 0.5 * alpha * sum(w**2) / n_samples to each batch's
    # mean loss; here n_samples is the batch size, and biases are free.
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(alpha=0.5, **FAST).fit(X[:1000], y[:1000])
    kernels = [layer.kernel for layer in clf.model_.layers if hasattr(layer, "kernel")]
    expected = (
        0.5
        * 0.5
        / FAST["batch_size"]
        * sum(float(np.sum(keras.ops.convert_to_numpy(k) ** 2)) for k in kernels)
    )
    penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in clf.model_.losses)
    assert penalty == pytest.approx(expected, rel=1e-5)
    plain = KerasMLPClassifier(**FAST).fit(X[:1000], y[:1000])
    # The reported training loss holds the penalty.
    assert clf.history_["loss"][-1] > plain.history_["loss"][-1]


def test_no_hidden_unit_has_incoming_weights_longer_than_max_norm(small_mnist):
    X, y, _, _ = small_mnist
    params = {**FAST, "hidden_layer_sizes": (64, 32), "learning_rate": 0.01}
    free = KerasMLPClassifier(**params).fit(X[:1000], y[:1000])
    held = KerasMLPClassifier(max_norm=0.5, **params).fit(X[:1000], y[:1000])

    def norms(clf):
        return [
            np.linalg.norm(keras.ops.convert_to_numpy(layer.kernel), axis=0)
            for layer in clf.model_.layers
            if isinstance(layer, keras.layers.Dense)
        ]

    assert max(n.max() for n in norms(free)[:-1]) > 0.5  # the limit matters
    for unit_norms in norms(held)[:-1]:
        assert unit_norms.max() <= 0.5 + 1e-5


def test_inputs_are_dropped_in_training_only(small_mnist):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(
        input_dropout=0.5, **{**FAST, "hidden_layer_sizes": (32,)}, dropout=0.0
    ).fit(X[:500], y[:500])
    first = clf.model_.layers[0]
    assert isinstance(first, keras.layers.Dropout)
    assert first.rate == 0.5
    inputs = X[:50]
    at_inference = keras.ops.convert_to_numpy(clf.model_(inputs, training=False))
    np.testing.assert_allclose(clf.predict_proba(inputs), at_inference, atol=1e-6)
    np.testing.assert_array_equal(clf.predict_proba(inputs), clf.predict_proba(inputs))
    in_training = keras.ops.convert_to_numpy(clf.model_(inputs, training=True))
    assert np.abs(in_training - at_inference).max() > 1e-3


def test_cosine_decays_over_the_planned_steps_in_history(small_mnist):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(
        learning_rate_schedule="cosine",
        optimizer="sgd",
        learning_rate=0.1,
        **{**FAST, "epochs": 4},
    ).fit(X[:640], y[:640])
    steps = math.ceil(640 / FAST["batch_size"])
    expected = [
        0.1 * 0.5 * (1 + math.cos(math.pi * e * steps / (4 * steps))) for e in range(4)
    ]
    np.testing.assert_allclose(clf.history_["learning_rate"], expected, rtol=1e-5)
    # Going on past the plan: the final rate, 0.
    clf.set_params(warm_start=True, epochs=1).fit(X[:640], y[:640])
    assert clf.history_["learning_rate"][-1] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("calls", ["one fit", "five partial_fit calls"])
def test_adaptive_divides_the_rate_by_five_after_two_epochs_without_progress(
    small_mnist, calls
):
    X, y, _, _ = small_mnist
    # A tolerance no epoch can meet: every epoch fails to improve. The count
    # goes on across partial_fit calls of one epoch each.
    clf = KerasMLPClassifier(
        learning_rate_schedule="adaptive",
        optimizer="sgd",
        learning_rate=0.1,
        tol=100.0,
        **{**FAST, "epochs": 5},
    )
    if calls == "one fit":
        clf.fit(X[:500], y[:500])
    else:
        for _ in range(5):
            clf.partial_fit(X[:500], y[:500], classes=np.arange(10))
    np.testing.assert_allclose(
        clf.history_["learning_rate"], [0.1, 0.1, 0.1, 0.02, 0.02], rtol=1e-5
    )


def test_a_schedule_instance_is_copied_and_follows_its_own_rates(small_mnist):
    X, y, _, _ = small_mnist
    schedule = keras.optimizers.schedules.ExponentialDecay(
        0.05, decay_steps=4, decay_rate=0.5, staircase=True
    )
    config = schedule.get_config()
    clf = KerasMLPClassifier(
        learning_rate_schedule=schedule, optimizer="sgd", **{**FAST, "epochs": 3}
    ).fit(X[:256], y[:256])  # 4 batches of 64 per epoch
    np.testing.assert_allclose(
        clf.history_["learning_rate"], [0.05, 0.025, 0.0125], rtol=1e-5
    )
    assert schedule.get_config() == config
    assert clf.model_.optimizer.get_config()["learning_rate"]["config"] == config


def test_momentum_makes_sgd_a_momentum_sgd(small_mnist):
    X, y, _, _ = small_mnist
    fits = {
        (momentum, nesterov): KerasMLPClassifier(
            optimizer="sgd", momentum=momentum, nesterovs_momentum=nesterov, **FAST
        ).fit(X[:500], y[:500])
        for momentum, nesterov in [(0.0, True), (0.9, True), (0.9, False)]
    }
    for (momentum, nesterov), clf in fits.items():
        config = clf.model_.optimizer.get_config()
        assert config["momentum"] == pytest.approx(momentum)
        # Without momentum there is nothing for Nesterov to look ahead with.
        assert config["nesterov"] is (nesterov and momentum > 0)
    # Plain SGD is the tutorials' optimizer, untouched by the default.
    assert fits[0.0, True].model_.optimizer.get_config()["nesterov"] is False
    losses = [clf.history_["loss"][-1] for clf in fits.values()]
    assert len(set(losses)) == 3


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"alpha": -1.0}, InvalidParameterError, "'alpha' parameter"),
        ({"max_norm": 0.0}, InvalidParameterError, "'max_norm' parameter"),
        ({"input_dropout": 1.0}, InvalidParameterError, "'input_dropout' parameter"),
        ({"momentum": 1.0}, InvalidParameterError, "'momentum' parameter"),
        ({"momentum": 0.9}, ValueError, "momentum=0.9 is SGD's: it needs"),
        (
            {"momentum": 0.9, "optimizer": keras.optimizers.SGD()},
            ValueError,
            "momentum=0.9 is SGD's",
        ),
        (
            {"learning_rate_schedule": "linear"},
            InvalidParameterError,
            "'learning_rate_schedule' parameter",
        ),
        (
            {
                "learning_rate_schedule": keras.optimizers.schedules.CosineDecay(
                    0.1, 10
                ),
                "learning_rate": 0.1,
            },
            ValueError,
            "cannot be used with a LearningRateSchedule instance",
        ),
    ],
)
def test_bad_values_are_refused_naming_them(small_mnist, params, error, message):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(**{**FAST, **params})
    with pytest.raises(error, match=message):
        clf.fit(X[:100], y[:100])
    assert not hasattr(clf, "model_")


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"alpha": 1.0}, "alpha"),
        ({"max_norm": 1.0}, "max_norm"),
        ({"input_dropout": 0.3}, "input_dropout"),
        ({"learning_rate_schedule": "constant"}, "learning_rate_schedule"),
        ({"momentum": 0.5}, "momentum"),
        ({"nesterovs_momentum": False}, "nesterovs_momentum"),
    ],
)
def test_warm_start_refuses_a_changed_regularization(small_mnist, change, name):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(warm_start=True, **REGULARIZED, **FAST).fit(
        X[:300], y[:300]
    )
    clf.set_params(**change)
    with pytest.raises(ValueError, match=f"{name} was changed since the network"):
        clf.fit(X[:300], y[:300])
    with pytest.raises(ValueError, match=f"{name} was changed"):
        clf.partial_fit(X[:300], y[:300])
    assert clf.n_iter_ == FAST["epochs"]


def test_a_grid_search_searches_them_and_clone_keeps_them(small_mnist):
    X, y, _, _ = small_mnist
    search = GridSearchCV(
        KerasMLPClassifier(**FAST),
        {
            "alpha": [0.0, 1.0],
            "max_norm": [3.0],
            "input_dropout": [0.2],
            "learning_rate_schedule": ["adaptive"],
        },
        cv=2,
    ).fit(X[:400], y[:400])
    assert len(search.cv_results_["params"]) == 2
    assert describe(search.best_estimator_.model_).network.max_norm == 3.0
    assert clone(KerasMLPClassifier(**REGULARIZED)).get_params() == (
        KerasMLPClassifier(**REGULARIZED).get_params()
    )


def test_a_regularized_pipeline_saves_loads_and_exports_alike(small_mnist, tmp_path):
    X, y, Xt, _ = small_mnist
    images = (X * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    test = (Xt * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([10], [0.01, 0.001])
    for params in (REGULARIZED, {"learning_rate_schedule": schedule, "alpha": 0.1}):
        pipe = make_pipeline(
            MNISTFlattener(), KerasMLPClassifier(**params, **FAST)
        ).fit(images[:1000], y[:1000])
        loaded = load(save(pipe, tmp_path / "model.skops"))
        np.testing.assert_array_equal(
            loaded.predict_proba(test), pipe.predict_proba(test)
        )
        assert describe(loaded[-1].model_) == describe(pipe[-1].model_)
        # Training goes on identically after loading.
        for estimator in (pipe, loaded):
            estimator.set_params(kerasmlpclassifier__warm_start=True).fit(
                images[:1000], y[:1000]
            )
        np.testing.assert_allclose(
            loaded.predict_proba(test), pipe.predict_proba(test), atol=1e-6
        )
        session = onnxruntime.InferenceSession(
            to_onnx(pipe, images=True).SerializeToString(),
            providers=["CPUExecutionProvider"],
        )
        labels, proba = session.run(None, {"X": test})
        np.testing.assert_allclose(proba, pipe.predict_proba(test), atol=1e-5)
        np.testing.assert_array_equal(labels, pipe.predict(test))
