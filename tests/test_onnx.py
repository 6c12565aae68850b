"""ONNX export: pipelines served by onnxruntime give the pipeline's answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sk_mnist import KerasMLPClassifier, MNISTFlattener
from sk_mnist.onnx import ACTIVATIONS, MIN_OPSET, to_onnx


def _run(model, X):
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"X": X})


@pytest.fixture(scope="module")
def train_and_test(mnist_train, mnist_test):
    (x, y), (xt, yt) = mnist_train, mnist_test
    return x[:5000], y[:5000], xt, yt


@pytest.mark.parametrize(
    ("steps", "params", "labels"),
    [
        ([], dict(epochs=1), "int"),
        ([], dict(hidden_layer_sizes=(128,), activation="sigmoid", epochs=2), "int"),
        ([], dict(hidden_layer_sizes=(64,), epochs=2), "str"),
        ([PCA(40, random_state=0)], dict(hidden_layer_sizes=(64,), epochs=2), "int"),
    ],
    ids=["default-network", "one-sigmoid-layer", "string-labels", "with-pca"],
)
def test_onnxruntime_answers_as_the_pipeline_on_the_10000_test_images(
    train_and_test, steps, params, labels
):
    X, y, Xt, _ = train_and_test
    y = y.astype(str) if labels == "str" else y
    pipe = make_pipeline(
        MNISTFlattener(), *steps, KerasMLPClassifier(random_state=0, **params)
    ).fit(X, y)
    expected_labels, expected_proba = pipe.predict(Xt), pipe.predict_proba(Xt)
    for images in (False, True):
        model = to_onnx(pipe, images=images)
        inputs = Xt if images else Xt.reshape(len(Xt), -1).astype(np.float32)
        label, proba = _run(model, inputs)
        np.testing.assert_array_equal(label, expected_labels)
        np.testing.assert_allclose(proba, expected_proba, atol=1e-5)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_exportable_activation_computes_what_keras_computes(activation):
    rng = np.random.default_rng(0)
    X = rng.random((300, 20), dtype=np.float32)
    y = rng.integers(0, 3, 300)
    clf = KerasMLPClassifier(
        hidden_layer_sizes=(16, 8), activation=activation, epochs=1, random_state=0
    ).fit(X, y)
    label, proba = _run(to_onnx(clf), X)
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(label, clf.predict(X))


def test_zipmap_gives_a_dict_per_sample_when_asked(train_and_test):
    X, y, Xt, _ = train_and_test
    clf = KerasMLPClassifier(hidden_layer_sizes=(16,), epochs=1, random_state=0)
    pipe = make_pipeline(MNISTFlattener(), clf).fit(X[:500], y[:500])
    _, proba = _run(
        to_onnx(pipe, zipmap=True), Xt[:3].reshape(3, -1).astype(np.float32)
    )
    assert sorted(proba[0]) == list(range(10))
    assert sum(proba[0].values()) == pytest.approx(1.0, abs=1e-5)


class _Unknown(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return X


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda X, y: make_pipeline(MNISTFlattener(), KerasMLPClassifier()),
            NotFittedError,
            "not fitted",
        ),
        (
            lambda X, y: make_pipeline(
                MNISTFlattener(),
                _Unknown(),
                KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1),
            ).fit(X, y),
            ValueError,
            "skl2onnx cannot convert a step.*_Unknown",
        ),
        (
            lambda X, y: KerasMLPClassifier(
                hidden_layer_sizes=(8,), activation="tanh_shrink", epochs=1
            ).fit(X.reshape(len(X), -1) / 255, y),
            ValueError,
            "activation='tanh_shrink' cannot be exported to ONNX",
        ),
        (
            lambda X, y: make_pipeline(
                MNISTFlattener(), KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1)
            ).fit(pd.DataFrame(X.reshape(len(X), -1)).add_prefix("p"), y),
            ValueError,
            "fitted on a DataFrame with named columns",
        ),
    ],
    ids=["unfitted", "unknown-step", "unsupported-activation", "dataframe-input"],
)
def test_what_cannot_be_exported_is_a_clear_error_and_writes_nothing(
    train_and_test, tmp_path, make, error, message
):
    X, y, _, _ = train_and_test
    estimator = make(X[:300], y[:300])
    with pytest.raises(error, match=message):
        to_onnx(estimator, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_images_need_a_leading_flattener(train_and_test, tmp_path):
    X, y, _, _ = train_and_test
    clf = KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1).fit(
        X[:300].reshape(300, -1) / 255, y[:300]
    )
    with pytest.raises(ValueError, match="images=True needs a pipeline that starts"):
        to_onnx(clf, tmp_path / "m.onnx", images=True)
    assert list(tmp_path.iterdir()) == []


def test_converters_register_on_import_of_sk_mnist_onnx_only():
    code = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import sk_mnist
        before = "skl2onnx" in sys.modules
        import skl2onnx
        from sk_mnist import KerasMLPClassifier
        rng = np.random.default_rng(0)
        clf = KerasMLPClassifier(hidden_layer_sizes=(4,), epochs=1).fit(
            rng.random((40, 6), dtype=np.float32), np.arange(40) % 2)
        try:
            skl2onnx.to_onnx(clf, rng.random((1, 6), dtype=np.float32))
            unregistered = "converted"
        except Exception as exc:
            unregistered = type(exc).__name__
        import sk_mnist.onnx
        model = skl2onnx.to_onnx(clf, rng.random((1, 6), dtype=np.float32),
                                 options={id(clf): {"zipmap": False}})
        print(json.dumps([before, unregistered, [o.name for o in model.graph.output]]))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    before, unregistered, outputs = json.loads(done.stdout.strip().splitlines()[-1])
    assert before is False
    assert unregistered == "MissingShapeCalculator"
    assert outputs == ["label", "probabilities"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda X, y: MNISTFlattener().fit(X),
            "ends in KerasMLPClassifier; got a MNISTFlattener without one",
        ),
        (
            lambda X, y: make_pipeline(
                MNISTFlattener(),
                FunctionTransformer(np.sqrt),
                KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1),
            ).fit(X, y),
            "skl2onnx cannot convert a step of this pipeline",
        ),
    ],
    ids=["lone-flattener", "function-transformer"],
)
def test_a_pipeline_onnx_cannot_hold_is_a_value_error_before_any_file(
    train_and_test, tmp_path, make, message
):
    X, y, _, _ = train_and_test
    estimator = make(X[:300], y[:300])
    with pytest.raises(ValueError, match=message):
        to_onnx(estimator, tmp_path / "model.onnx", images=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opset", [1, 12, 10**6, "21", True])
def test_a_target_opset_out_of_range_is_refused_before_any_file(
    train_and_test, tmp_path, opset
):
    X, y, _, _ = train_and_test
    pipe = make_pipeline(
        MNISTFlattener(), KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1)
    ).fit(X[:300], y[:300])
    with pytest.raises(ValueError, match=r"target_opset must be an integer from 13"):
        to_onnx(pipe, tmp_path / "model.onnx", target_opset=opset)
    assert list(tmp_path.iterdir()) == []


def test_the_lowest_supported_opset_gives_a_valid_model(train_and_test):
    X, y, Xt, _ = train_and_test
    pipe = make_pipeline(
        MNISTFlattener(), KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1)
    ).fit(X[:300], y[:300])
    model = to_onnx(pipe, images=True, target_opset=MIN_OPSET)
    label, _ = _run(model, Xt[:100])
    np.testing.assert_array_equal(label, pipe.predict(Xt[:100]))


def test_labels_beyond_int64_are_refused_not_wrapped(train_and_test, tmp_path):
    X, y, _, _ = train_and_test
    big = y[:300].astype(np.uint64) + np.uint64(2**63)
    pipe = make_pipeline(
        MNISTFlattener(), KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1)
    ).fit(X[:300], big)
    with pytest.raises(
        ValueError,
        match=r"ONNX labels are at most int64; classes_ holds 922337203685477581[0-9]",
    ):
        to_onnx(pipe, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []
    small = make_pipeline(
        MNISTFlattener(), KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1)
    ).fit(X[:300], y[:300].astype(np.uint64))
    label, _ = _run(to_onnx(small, images=True), X[:50])
    np.testing.assert_array_equal(label, small.predict(X[:50]))


def test_boolean_labels_come_back_as_booleans(train_and_test):
    X, y, Xt, _ = train_and_test
    pipe = make_pipeline(
        MNISTFlattener(), KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1)
    ).fit(X[:300], y[:300] == 1)
    label, _ = _run(to_onnx(pipe, images=True), Xt[:100])
    assert label.dtype == np.bool_
    np.testing.assert_array_equal(label, pipe.predict(Xt[:100]))
