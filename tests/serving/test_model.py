"""ServedModel: exported models run by onnxruntime, hostile ones refused first."""

from __future__ import annotations

import numpy as np
import onnx_graphs
import pytest
from sklearn.pipeline import make_pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener
from sk_mnist.onnx import to_onnx
from sk_mnist.serving import ModelError, ServedModel


@pytest.fixture(scope="module")
def exported(small_mnist):
    X, y, Xt, _ = small_mnist
    images = (X * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    pipe = make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(hidden_layer_sizes=(16,), epochs=1, random_state=0),
    ).fit(images, y)
    test = (Xt * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    return pipe, to_onnx(pipe, images=True).SerializeToString(), test


def test_an_exported_model_answers_as_its_pipeline(exported):
    pipe, data, test = exported
    model = ServedModel(data)
    labels, proba = model.predict(test)
    np.testing.assert_array_equal(labels, pipe.predict(test))
    np.testing.assert_allclose(proba, pipe.predict_proba(test), atol=1e-5)
    np.testing.assert_array_equal(model.classes, pipe.classes_)
    assert model.image_shape == (28, 28)


def test_a_hand_written_graph_of_the_exporters_operators_runs(exported):
    _, _, test = exported
    labels, proba = ServedModel(onnx_graphs.model(*onnx_graphs.head())).predict(
        test[:5]
    )
    assert labels.shape == (5,)
    np.testing.assert_allclose(proba, 0.1, atol=1e-6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: b"\x00garbage", "not a readable ONNX model"),
        (
            onnx_graphs.constant_of_shape,
            "ConstantOfShape is not one sk-mnist export writes",
        ),
        (onnx_graphs.endless_loop, "ai.onnx.Loop is not one sk-mnist export writes"),
        (onnx_graphs.external_data, "stored in another file"),
        (
            lambda: onnx_graphs.model(
                *onnx_graphs.head(), classes=np.array([1.5] * 10, np.float32)
            ),
            "classes are not integers or strings",
        ),
    ],
    ids=["garbage", "constant-of-shape", "endless-loop", "external-data", "classes"],
)
def test_a_hostile_graph_is_refused_before_onnxruntime_runs_it(make, message):
    with pytest.raises(ModelError, match=message):
        ServedModel(make(), origin="the file")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            onnx_graphs.narrow_probabilities,
            r"probabilities of shape \(4, 3\); expected",
        ),
        (onnx_graphs.nan_probabilities, "not finite rows in \\[0, 1\\] summing to 1"),
    ],
    ids=["odd-shapes", "nan"],
)
def test_answers_that_are_not_one_row_per_image_are_refused(exported, make, message):
    _, _, test = exported
    model = ServedModel(make(), origin="the file")
    with pytest.raises(ModelError, match=message):
        model.predict(test[:4])


def test_a_run_over_its_time_is_stopped(exported):
    _, data, test = exported
    model = ServedModel(data, timeout=1e-6)
    with pytest.raises(ModelError, match=r"the model stopped after 1e-06 s"):
        model.predict(np.repeat(test, 20, axis=0))
