"""save/load: identical predictions, and refusal of anything that could run code."""

from __future__ import annotations

import pickle
import zipfile

import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, load, save
from sk_mnist.exceptions import UnsafeModelError

FAST = dict(hidden_layer_sizes=(32,), epochs=1, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def fitted(small_mnist):
    X, y, _, _ = small_mnist
    images = (X * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    pipe = Pipeline(
        [("flatten", MNISTFlattener()), ("mlp", KerasMLPClassifier(**FAST))]
    )
    return pipe.fit(images, y.astype(str)), images


def test_saved_pipeline_loads_and_predicts_identically(fitted, tmp_path):
    pipe, images = fitted
    path = save(pipe, tmp_path / "model.skmnist")
    loaded = load(path)
    np.testing.assert_array_equal(
        loaded.predict_proba(images[:500]), pipe.predict_proba(images[:500])
    )
    np.testing.assert_array_equal(
        loaded.predict(images[:50]), pipe.predict(images[:50])
    )
    assert loaded[-1].history_ == pipe[-1].history_
    assert loaded[-1].get_params() == pipe[-1].get_params()
    assert loaded[0].image_shape_ == (28, 28)
    assert [p.name for p in tmp_path.iterdir()] == ["model.skmnist"]


def test_loaded_estimator_continues_training_like_the_original(small_mnist, tmp_path):
    X, y, _, _ = small_mnist
    a = KerasMLPClassifier(**FAST).fit(X, y)
    b = load(save(a, tmp_path / "m.skmnist"))
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    for wa, wb in zip(a.model_.get_weights(), b.model_.get_weights(), strict=False):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_optimizer_instance_and_class_weight_survive(small_mnist, tmp_path):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(
        optimizer=keras.optimizers.SGD(momentum=0.9), class_weight={0: 2.0}, **FAST
    ).fit(X[:300], y[:300])
    loaded = load(save(clf, tmp_path / "m.skmnist"))
    assert type(loaded.optimizer).__name__ == "SGD"
    assert loaded.optimizer.get_config()["momentum"] == pytest.approx(0.9)
    assert loaded.class_weight == {0: 2.0}


def test_a_pickle_renamed_to_the_format_is_refused(fitted, tmp_path):
    path = tmp_path / "model.skmnist"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UnsafeModelError, match="not an sk-mnist model file.*pickle"):
        load(path)


def test_a_network_with_a_lambda_layer_is_refused(fitted, tmp_path):
    pipe, _ = fitted
    path = save(pipe, tmp_path / "model.skmnist")
    hostile = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Lambda(lambda x: x * 2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    keras_file = tmp_path / "hostile.keras"
    hostile.save(keras_file)
    rewritten = tmp_path / "tampered.skmnist"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for item in src.infolist():
            data = (
                keras_file.read_bytes()
                if item.filename.endswith(".keras")
                else src.read(item)
            )
            dst.writestr(item.filename, data)
    with pytest.raises(UnsafeModelError, match="Lambda"):
        load(rewritten)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: m.replace('"format": "sk-mnist-model"', '"format": "other"'),
            "not an sk-mnist model",
        ),
        (
            lambda m: m.replace('"class": "MNISTFlattener"', '"class": "os.system"'),
            "refusing to build 'os.system'",
        ),
        (
            lambda m: m.replace('"format_version": 1', '"format_version": 99'),
            "format version 99",
        ),
        (lambda m: m[: len(m) // 2], "not valid JSON"),
    ],
    ids=["format", "foreign-class", "version", "truncated-json"],
)
def test_an_edited_manifest_is_a_clear_error(fitted, tmp_path, edit, message):
    pipe, _ = fitted
    path = save(pipe, tmp_path / "model.skmnist")
    with zipfile.ZipFile(path) as src:
        members = {i.filename: src.read(i) for i in src.infolist()}
    members["estimator.json"] = edit(members["estimator.json"].decode()).encode()
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    with pytest.raises(UnsafeModelError, match=message):
        load(path)


def test_a_truncated_file_is_a_clear_error(fitted, tmp_path):
    pipe, _ = fitted
    path = save(pipe, tmp_path / "model.skmnist")
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 3])
    with pytest.raises(UnsafeModelError):
        load(path)


def test_unsupported_and_unfitted_estimators_are_not_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(TypeError, match="LogisticRegression"):
        save(Pipeline([("lr", LogisticRegression())]), tmp_path / "x.skmnist")
    with pytest.raises(NotFittedError):
        save(KerasMLPClassifier(), tmp_path / "y.skmnist")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load(tmp_path / "absent.skmnist")


def test_a_failed_save_leaves_no_partial_file(fitted, tmp_path, monkeypatch):
    pipe, _ = fitted
    from sk_mnist import _persistence

    def broken(model):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_persistence, "model_to_bytes", broken)
    with pytest.raises(OSError, match="No space"):
        save(pipe, tmp_path / "model.skmnist")
    assert list(tmp_path.iterdir()) == []
