"""save/load on skops: round trips of any pipeline, and refusal of hostile files."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from unittest import mock

import h5py
import keras
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import sk_mnist
import sk_mnist._keras.serialization
from sk_mnist import KerasMLPClassifier, MNISTFlattener, load, save
from sk_mnist.exceptions import UnsafeModelError


def _images(X):
    return (X * 255).round().astype(np.uint8).reshape(-1, 28, 28)


@pytest.fixture(scope="module")
def fitted(small_mnist, fast_params):
    """A fitted flattener + classifier pipeline with string labels."""
    X, y, _, _ = small_mnist
    images = _images(X)
    pipe = make_pipeline(MNISTFlattener(), KerasMLPClassifier(**fast_params))
    return pipe.fit(images, y.astype(str)), images


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    return save(fitted[0], tmp_path_factory.mktemp("saved") / "model.skops")


# ------------------------------------------------------------- round trips
def test_the_default_pipeline_round_trips_bit_equal(small_mnist, tmp_path):
    X, y, Xt, _ = small_mnist
    pipe = make_pipeline(MNISTFlattener(), KerasMLPClassifier(epochs=1, random_state=0))
    pipe.fit(_images(X), y)
    loaded = load(save(pipe, tmp_path / "model.skops"))
    np.testing.assert_array_equal(
        loaded.predict_proba(_images(Xt)), pipe.predict_proba(_images(Xt))
    )
    assert loaded[-1].get_params() == pipe[-1].get_params()
    assert loaded[-1].history_ == pipe[-1].history_
    assert loaded[0].image_shape_ == (28, 28)
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]


def test_string_labels_come_back_as_strings(fitted, saved):
    pipe, images = fitted
    loaded = load(saved)
    np.testing.assert_array_equal(loaded.predict(images), pipe.predict(images))
    assert loaded.classes_.dtype.kind == "U"
    np.testing.assert_allclose(
        loaded.predict_proba(images), pipe.predict_proba(images), atol=1e-6
    )


def test_a_pipeline_with_pca_and_a_scaler_round_trips(
    small_mnist, fast_params, tmp_path
):
    X, y, Xt, _ = small_mnist
    pipe = make_pipeline(
        MNISTFlattener(),
        PCA(40, random_state=0),
        StandardScaler(),
        KerasMLPClassifier(**fast_params),
    ).fit(_images(X), y)
    loaded = load(save(pipe, tmp_path / "pca.skops"))
    np.testing.assert_array_equal(
        loaded.predict(_images(Xt)), pipe.predict(_images(Xt))
    )
    # float32 BLAS may round a reloaded copy of PCA's arrays differently.
    np.testing.assert_allclose(
        loaded.predict_proba(_images(Xt)), pipe.predict_proba(_images(Xt)), atol=1e-6
    )


def test_a_column_transformer_over_a_dataframe_round_trips(
    small_mnist, fast_params, tmp_path
):
    X, y, Xt, _ = small_mnist
    pixels = [f"pixel{i}" for i in range(1, 785)]

    def frame(A):
        df = pd.DataFrame((A * 255).round().astype(np.uint8), columns=pixels)
        df["writer"] = np.arange(len(A)) % 7
        return df

    pipe = Pipeline(
        [
            ("columns", ColumnTransformer([("pixels", MNISTFlattener(), pixels)])),
            (
                "union",
                FeatureUnion([("scaled", StandardScaler()), ("raw", "passthrough")]),
            ),
            ("mlp", KerasMLPClassifier(**fast_params)),
        ]
    ).fit(frame(X), y)
    loaded = load(save(pipe, tmp_path / "ct.skops"))
    np.testing.assert_array_equal(loaded.predict(frame(Xt)), pipe.predict(frame(Xt)))
    np.testing.assert_allclose(
        loaded.predict_proba(frame(Xt)), pipe.predict_proba(frame(Xt)), atol=1e-6
    )


def test_a_searchs_best_estimator_round_trips(small_mnist, fast_params, tmp_path):
    X, y, Xt, _ = small_mnist
    search = GridSearchCV(
        make_pipeline(MNISTFlattener(), KerasMLPClassifier(**fast_params)),
        {"kerasmlpclassifier__hidden_layer_sizes": [(16,), (32,)]},
        cv=2,
    ).fit(_images(X[:1000]), y[:1000])
    loaded = load(save(search.best_estimator_, tmp_path / "best.skops"))
    np.testing.assert_array_equal(
        loaded.predict_proba(_images(Xt)), search.predict_proba(_images(Xt))
    )


def test_a_loaded_classifier_continues_training_like_the_original(
    small_mnist, fast_params, tmp_path
):
    X, y, _, _ = small_mnist
    a = KerasMLPClassifier(**fast_params).fit(X, y)
    b = load(save(a, tmp_path / "m.skops"))
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    for wa, wb in zip(a.model_.get_weights(), b.model_.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_an_optimizer_instance_and_class_weight_survive(
    small_mnist, fast_params, tmp_path
):
    X, y, _, _ = small_mnist
    clf = KerasMLPClassifier(
        optimizer=keras.optimizers.SGD(momentum=0.9),
        class_weight={0: 2.0},
        **fast_params,
    ).fit(X[:300], y[:300])
    loaded = load(save(clf, tmp_path / "m.skops"))
    assert type(loaded.optimizer).__name__ == "SGD"
    assert loaded.optimizer.get_config()["momentum"] == pytest.approx(0.9)
    assert loaded.class_weight == {0: 2.0}


def test_a_state_without_the_parameters_added_since_gets_their_defaults(
    small_mnist, fast_params
):
    # A file of an earlier sk-mnist holds no alpha, max_norm, input_dropout,
    # learning_rate_schedule, momentum or nesterovs_momentum; their defaults
    # are what it did, so the loaded estimator predicts, clones and continues.
    X, y, Xt, _ = small_mnist
    clf = KerasMLPClassifier(**fast_params).fit(X[:300], y[:300])
    added = [
        "alpha",
        "max_norm",
        "input_dropout",
        "learning_rate_schedule",
        "momentum",
        "nesterovs_momentum",
    ]
    state = {k: v for k, v in clf.__getstate__().items() if k not in added}
    old = KerasMLPClassifier.__new__(KerasMLPClassifier)
    old.__setstate__(state)
    assert old.get_params() == clf.get_params()
    np.testing.assert_array_equal(old.predict_proba(Xt), clf.predict_proba(Xt))
    assert clone(old).get_params() == clf.get_params()
    old.partial_fit(X[:300], y[:300])
    assert old.n_iter_ == clf.n_iter_ + 1


def test_plain_skops_loads_the_file_trusting_the_documented_names(fitted, saved):
    pipe, images = fitted
    assert sorted(skops.io.get_untrusted_types(file=saved)) == sorted(
        sk_mnist.TRUSTED_TYPES
    )
    loaded = skops.io.load(saved, trusted=list(sk_mnist.TRUSTED_TYPES))
    np.testing.assert_array_equal(
        loaded.predict_proba(images[:100]), pipe.predict_proba(images[:100])
    )


_OTHER_BACKEND = {"tensorflow": "jax", "jax": "tensorflow"}[keras.backend.backend()]


def test_a_file_saved_on_one_backend_loads_on_the_other(
    small_mnist, fast_params, tmp_path
):
    # Both directions in one run: the README's test command installs no JAX,
    # so on TensorFlow this needs the jax extra; .ci/run installs it and runs
    # this file again on JAX, where the other backend is TensorFlow.
    pytest.importorskip(
        _OTHER_BACKEND, reason=f"the {_OTHER_BACKEND} backend is not installed"
    )
    X, y, Xt, _ = small_mnist
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "Xt.npy", Xt)
    child = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from sk_mnist import KerasMLPClassifier, load, save
        d = sys.argv[1]
        Xt = np.load(d + "/Xt.npy")
        clf = KerasMLPClassifier(**{fast_params!r}).fit(
            np.load(d + "/X.npy"), np.load(d + "/y.npy"))
        save(clf, d + "/other.skops")
        np.save(d + "/other_proba.npy", clf.predict_proba(Xt))
        np.save(d + "/mine_proba.npy", load(d + "/mine.skops").predict_proba(Xt))
        """
    )
    mine = KerasMLPClassifier(**fast_params).fit(X, y)
    save(mine, tmp_path / "mine.skops")
    env = {**os.environ, "KERAS_BACKEND": _OTHER_BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(
        [sys.executable, "-c", child, str(tmp_path)],
        env=env,
        check=True,
        capture_output=True,
    )
    other = load(tmp_path / "other.skops")
    np.testing.assert_allclose(
        other.predict_proba(Xt), np.load(tmp_path / "other_proba.npy"), atol=1e-6
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "mine_proba.npy"), mine.predict_proba(Xt), atol=1e-6
    )


# --------------------------------------------------------- how it is written
def test_a_new_file_follows_the_umask_and_a_replaced_one_keeps_its_mode(
    fitted, tmp_path
):
    pipe, _ = fitted
    old = os.umask(0o027)
    try:
        new = save(pipe, tmp_path / "new.skops")
    finally:
        os.umask(old)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    existing = tmp_path / "existing.skops"
    existing.write_bytes(b"old")
    existing.chmod(0o604)
    save(pipe, existing)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o604
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.skops", "new.skops"]


def test_a_name_near_the_file_system_limit_still_saves(fitted, tmp_path):
    pipe, images = fitted
    name = "m" * (os.pathconf(tmp_path, "PC_NAME_MAX") - len(".skops")) + ".skops"
    loaded = load(save(pipe, tmp_path / name))
    np.testing.assert_array_equal(
        loaded.predict(images[:10]), pipe.predict(images[:10])
    )


def test_a_failed_save_leaves_the_old_file_and_no_temporary_file(
    fitted, tmp_path, monkeypatch
):
    pipe, _ = fitted
    path = tmp_path / "model.skops"
    path.write_bytes(b"previous model")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        save(pipe, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]
    assert path.read_bytes() == b"previous model"


def test_unfitted_estimators_are_not_saved(tmp_path):
    with pytest.raises(NotFittedError):
        save(
            make_pipeline(MNISTFlattener(), KerasMLPClassifier()), tmp_path / "x.skops"
        )
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ trusted types
def _double(X):
    return 2 * X


class _Shift(StandardScaler):
    pass


def test_a_function_nobody_trusted_is_refused_and_loads_when_trusted(
    small_mnist, fast_params, tmp_path
):
    X, y, _, _ = small_mnist
    pipe = make_pipeline(
        FunctionTransformer(_double), _Shift(), KerasMLPClassifier(**fast_params)
    ).fit(X[:300], y[:300])
    path = save(pipe, tmp_path / "custom.skops")
    names = [f"{__name__}._double", f"{__name__}._Shift"]
    with pytest.raises(UnsafeModelError, match="not trusted") as info:
        load(path)
    for name in names:
        assert name in str(info.value)
    with pytest.raises(UnsafeModelError, match=r"_Shift"):
        load(path, trusted=names[:1])
    loaded = load(path, trusted=names)
    np.testing.assert_array_equal(loaded.predict(X[:50]), pipe.predict(X[:50]))


# -------------------------------------------------------------- hostile files
def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _network_member(members):
    return next(name for name in members if name.endswith(".bin"))


def _with_network(saved, out, edit):
    """``saved`` with the .keras archive of its network rewritten by ``edit``."""
    members = _members(saved)
    name = _network_member(members)
    with zipfile.ZipFile(io.BytesIO(members[name])) as archive:
        network = {i.filename: archive.read(i) for i in archive.infolist()}
    raw = edit(network)  # the edited members, or the archive's bytes
    if raw is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for member, data in network.items():
                archive.writestr(member, data)
        raw = buffer.getvalue()
    members[name] = raw
    return _write_zip(out, members)


def _edit_config(edit):
    def apply(network):
        config = json.loads(network["config.json"])
        edit(config["config"]["layers"])
        network["config.json"] = json.dumps(config).encode()

    return apply


def _huge_declared_weights(network):
    """Layer sizes and weights that agree, but the weights store no bytes."""
    config = json.loads(network["config.json"])
    layers = config["config"]["layers"]
    dense = [layer for layer in layers if layer["class_name"] == "Dense"]
    units = 2**20
    dense[0]["config"]["units"] = units
    dense[-1]["build_config"]["input_shape"] = [None, units]
    network["config.json"] = json.dumps(config).encode()
    n_in = layers[0]["config"]["batch_shape"][-1]
    n_out = dense[-1]["config"]["units"]
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        for name, shapes in (
            ("dense", [(n_in, units), (units,)]),
            ("dense_1", [(units, n_out), (n_out,)]),
        ):
            group = file.create_group(f"layers/{name}/vars")
            for i, shape in enumerate(shapes):
                group.create_dataset(str(i), shape=shape, dtype="float32")
    network["model.weights.h5"] = buffer.getvalue()


def _lambda_network(tmp):
    hostile = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Lambda(lambda x: x * 2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    hostile.save(tmp / "hostile.keras")
    return _members(tmp / "hostile.keras")


def _npy_header(shape, dtype):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _replace_npy(saved, out, header_and_data):
    members = _members(saved)
    name = next(n for n in members if n.endswith(".npy"))
    members[name] = header_and_data
    return _write_zip(out, members)


def _replace_schema(saved, out, schema, compression=zipfile.ZIP_STORED):
    members = _members(saved)
    members["schema.json"] = schema
    return _write_zip(out, members, compression)


def _encrypted(saved, out):
    out.write_bytes(saved.read_bytes())
    with zipfile.ZipFile(out) as archive:
        offsets = [info.header_offset for info in archive.infolist()]
    data = bytearray(out.read_bytes())
    # The general-purpose flag of the first local header and of every
    # central-directory entry: bit 0 means "encrypted".
    data[offsets[0] + 6] |= 1
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) != -1:
        data[start + 8] |= 1
        start += 4
    out.write_bytes(bytes(data))
    return out


def _mismatched(fitted_clf, tmp, edit):
    clf = pickle.loads(pickle.dumps(fitted_clf))
    edit(clf)
    return save(clf, tmp)


def _edited_pipeline(pipe, tmp, edit):
    pipe = pickle.loads(pickle.dumps(pipe))
    edit(pipe)
    return save(pipe, tmp)


def _with_seed_states(fitted_clf, tmp, states):
    with mock.patch.object(
        sk_mnist._keras.serialization, "seed_states", return_value=states
    ):
        return save(fitted_clf, tmp)


def _size_lie(saved, out):
    """The network member's size, in both its headers, 10 bytes smaller."""
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo(_network_member(_members(saved)))
    smaller = (info.file_size - 10).to_bytes(4, "little")
    data[info.header_offset + 22 : info.header_offset + 26] = smaller
    name = info.filename.encode()
    central = data.find(b"PK\x01\x02")
    while central != -1:
        length = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + length] == name:
            data[central + 24 : central + 28] = smaller
        central = data.find(b"PK\x01\x02", central + 4)
    out.write_bytes(bytes(data))
    return out


def _flipped_network_byte(saved, out):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo(_network_member(_members(saved)))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


def _encrypted_inner(network):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        for member, content in network.items():
            archive.writestr(member, content)
    data = bytearray(inner.getvalue())
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) != -1:
        data[start + 8] |= 1
        start += 4
    return bytes(data)


def _damaged_h5(network):
    weights = bytearray(network["model.weights.h5"])
    weights[:64] = b"\xff" * 64
    network["model.weights.h5"] = bytes(weights)


def _hostile_files(saved, fitted_clf, tmp, pipe):
    """Each hostile file, with the exception and message its load must give."""
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in _members(saved).items():
            archive.writestr(name, data)
        archive.writestr("filler.bin", b"\0" * 500_000_000)
    fifo = tmp / "fifo.skops"
    os.mkfifo(fifo)
    return {
        "pickle": (
            (tmp / "p.skops").write_bytes(pickle.dumps({"a": 1})) and tmp / "p.skops",
            "UnsafeModelError",
            r"not a skops model file.*pickle",
        ),
        "older-format": (
            _write_zip(tmp / "old.skmnist", {"estimator.json": b"{}"}),
            "UnsafeModelError",
            r"older sk-mnist format",
        ),
        "truncated": (
            (tmp / "t.skops").write_bytes(saved.read_bytes()[:5000])
            and tmp / "t.skops",
            "UnsafeModelError",
            r"not a skops model file|damaged",
        ),
        "zip-bomb-member": (
            (tmp / "bomb.skops").write_bytes(bomb.getvalue()) and tmp / "bomb.skops",
            "UnsafeModelError",
            r"filler.bin would inflate to 500000000 bytes",
        ),
        "deeply-nested-json": (
            _replace_schema(saved, tmp / "deep.skops", b"[" * 200_000 + b"]" * 200_000),
            "UnsafeModelError",
            r"nested too deeply",
        ),
        "huge-json": (
            _replace_schema(saved, tmp / "big.skops", b" " * (65 * 2**20) + b"{}"),
            "UnsafeModelError",
            r"schema.json is larger than",
        ),
        "npy-huge-shape": (
            _replace_npy(
                saved,
                tmp / "shape.skops",
                _npy_header((10**6, 10**6), "<f8") + bytes(8),
            ),
            "UnsafeModelError",
            r"declares shape \(1000000, 1000000\)",
        ),
        "npy-huge-string-width": (
            _replace_npy(
                saved,
                tmp / "width.skops",
                _npy_header((10,), "<U100000000") + bytes(40),
            ),
            "UnsafeModelError",
            r"declares shape \(10,\) of <U100000000 ",
        ),
        "encrypted-member": (
            _encrypted(saved, tmp / "enc.skops"),
            "UnsafeModelError",
            r"encrypted",
        ),
        "layer-sizes-disagree-with-weights": (
            _with_network(
                saved,
                tmp / "units.skops",
                _edit_config(
                    lambda layers: (
                        layers[1]["config"].update(units=1000),
                        layers[-1]["build_config"].update(input_shape=[None, 1000]),
                    )
                ),
            ),
            "UnsafeModelError",
            r"call for weights of shapes .*1000",
        ),
        "absurd-layer-size": (
            _with_network(
                saved,
                tmp / "absurd.skops",
                _edit_config(
                    lambda layers: layers[1]["config"].update(units=2_000_000_000)
                ),
            ),
            "UnsafeModelError",
            r"not a network KerasMLPClassifier builds .*a size of 2000000000",
        ),
        "weights-declared-not-stored": (
            _with_network(saved, tmp / "lazy.skops", _huge_declared_weights),
            "UnsafeModelError",
            r"does not store its",
        ),
        "lambda-layer": (
            _with_network(
                saved, tmp / "lambda.skops", lambda n: n.update(_lambda_network(tmp))
            ),
            "UnsafeModelError",
            r"'Lambda' layer",
        ),
        "classes-disagree-with-outputs": (
            _mismatched(
                fitted_clf,
                tmp / "classes.skops",
                lambda c: setattr(c, "classes_", c.classes_[:3]),
            ),
            "UnsafeModelError",
            r"10 outputs but classes_ holds 3",
        ),
        "inputs-disagree-with-n-features": (
            _mismatched(
                fitted_clf,
                tmp / "inputs.skops",
                lambda c: setattr(c, "n_features_in_", 100),
            ),
            "UnsafeModelError",
            r"takes 784 inputs but n_features_in_ is 100",
        ),
        "output-not-softmax": (
            _mismatched(
                fitted_clf,
                tmp / "linear.skops",
                lambda c: c.model_.layers[-1].__setattr__(
                    "activation", keras.activations.linear
                ),
            ),
            "UnsafeModelError",
            r"does not end in a softmax",
        ),
        "lora-rank": (
            _with_network(
                saved,
                tmp / "lora.skops",
                _edit_config(
                    lambda layers: layers[1]["config"].update(lora_rank=500_000)
                ),
            ),
            "UnsafeModelError",
            r"config sets \['lora_rank'\], which sk-mnist never writes",
        ),
        "per-layer-input-shape": (
            _with_network(
                saved,
                tmp / "input-shape.skops",
                _edit_config(
                    lambda layers: layers[-1]["build_config"].update(
                        input_shape=[None, 100_000_000]
                    )
                ),
            ),
            "UnsafeModelError",
            r"input_shape is \[None, 100000000\]",
        ),
        "string-dtype-input": (
            _with_network(
                saved,
                tmp / "string-input.skops",
                _edit_config(lambda layers: layers[0]["config"].update(dtype="string")),
            ),
            "UnsafeModelError",
            r"dtype is string; sk-mnist writes float32",
        ),
        "flipped-network-byte": (
            _flipped_network_byte(saved, tmp / "flipped.skops"),
            "UnsafeModelError",
            r"is damaged or truncated \(BadZipFile: Bad CRC-32",
        ),
        "size-lie": (
            _size_lie(saved, tmp / "size-lie.skops"),
            "UnsafeModelError",
            r"is damaged or truncated",
        ),
        "encrypted-network-member": (
            _with_network(saved, tmp / "enc-inner.skops", _encrypted_inner),
            "UnsafeModelError",
            r"encrypted",
        ),
        "damaged-weights": (
            _with_network(saved, tmp / "h5.skops", _damaged_h5),
            "UnsafeModelError",
            r"weights file is damaged",
        ),
        "40-digit-seed-counter": (
            _with_seed_states(fitted_clf, tmp / "seed.skops", [[10**40, 0]]),
            "UnsafeModelError",
            r"seed state \[10{40}, 0\] is not 2 integers",
        ),
        "classes-as-a-list": (
            _mismatched(
                fitted_clf,
                tmp / "classes-list.skops",
                lambda c: setattr(c, "classes_", c.classes_.tolist()),
            ),
            "UnsafeModelError",
            r"classes_ must be a 1-D array .* got list",
        ),
        "classes-2d": (
            _mismatched(
                fitted_clf,
                tmp / "classes-2d.skops",
                lambda c: setattr(c, "classes_", c.classes_.reshape(2, 5)),
            ),
            "UnsafeModelError",
            r"classes_ must be a 1-D array",
        ),
        "classes-nan": (
            _mismatched(
                fitted_clf,
                tmp / "classes-nan.skops",
                lambda c: setattr(c, "classes_", np.r_[np.arange(9.0), np.nan]),
            ),
            "UnsafeModelError",
            r"classes_ holds NaN",
        ),
        "classes-structured": (
            _mismatched(
                fitted_clf,
                tmp / "classes-struct.skops",
                lambda c: setattr(
                    c, "classes_", np.zeros(10, dtype=[("a", "i4"), ("b", "f4")])
                ),
            ),
            "UnsafeModelError",
            r"classes_ must be a 1-D array",
        ),
        "rng-replaced": (
            _mismatched(fitted_clf, tmp / "rng.skops", lambda c: setattr(c, "_rng", 5)),
            "UnsafeModelError",
            r"_rng must be a numpy RandomState; got int",
        ),
        "flattener-scale-zero": (
            _edited_pipeline(
                pipe, tmp / "scale.skops", lambda p: setattr(p[0], "scale_", 0.0)
            ),
            "UnsafeModelError",
            r"scale_=0.0; expected a positive finite number",
        ),
        "flattener-absurd-image-shape": (
            _edited_pipeline(
                pipe,
                tmp / "image-shape.skops",
                lambda p: setattr(p[0], "image_shape_", (10**9, 10**9)),
            ),
            "UnsafeModelError",
            r"image_shape_=\(1000000000, 1000000000\) for n_features_in_=784",
        ),
        "folder": (tmp / "folder.skops", "IsADirectoryError", r"is a folder"),
        "fifo": (fifo, "ValueError", r"not a regular file"),
        "device": (Path("/dev/zero"), "ValueError", r"not a regular file"),
        "missing": (tmp / "absent.skops", "FileNotFoundError", r"no such model file"),
    }


_LOADER = textwrap.dedent(
    """
    import json, resource, sys
    from sk_mnist import load
    good, cases = sys.argv[1], json.loads(sys.argv[2])
    load(good)  # warm up Keras and skops before the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results = {}
    for name, path in cases.items():
        try:
            load(path)
            results[name] = None
        except Exception as exc:
            results[name] = [[c.__name__ for c in type(exc).__mro__], str(exc)]
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps({"results": results, "growth_kib": growth}))
    """
)


def test_every_hostile_file_is_refused_with_bounded_memory_and_no_leftovers(
    fitted, saved, tmp_path
):
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    cases = _hostile_files(saved, fitted[0][-1], hostile, fitted[0])
    (hostile / "folder.skops").mkdir()
    before = {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in hostile.iterdir()
    }
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "TF_CPP_MIN_LOG_LEVEL": "3"}
    paths = {name: str(case[0]) for name, case in cases.items()}
    done = subprocess.run(
        [sys.executable, "-c", _LOADER, str(saved), json.dumps(paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (_, error, message) in cases.items():
        result = report["results"][name]
        assert result is not None, f"{name}: loaded without an error"
        kinds, text = result
        assert error in kinds, f"{name}: {kinds[0]}: {text}"
        assert re.search(message, text), f"{name}: {text}"
    # Peak memory of all the hostile loads together, over a process that had
    # already loaded a real model.
    assert report["growth_kib"] < 300 * 1024, report["growth_kib"]
    assert list(scratch.iterdir()) == []
    after = {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in hostile.iterdir()
    }
    assert after == before


@pytest.mark.parametrize("trusted", ["numpy.load", True, [1], {"a": 1}])
def test_trusted_must_be_a_list_of_type_names(saved, trusted):
    with pytest.raises(
        TypeError, match=r"trusted must be None or a list of type names"
    ):
        load(saved, trusted=trusted)


def test_a_truncated_file_is_called_damaged_not_a_pickle(saved, tmp_path):
    cut = tmp_path / "cut.skops"
    cut.write_bytes(saved.read_bytes()[:5000])
    with pytest.raises(UnsafeModelError, match="damaged or truncated") as info:
        load(cut)
    assert "pickle" not in str(info.value)


_SLOW_LOADS = textwrap.dedent(
    """
    import sys
    from sk_mnist import load
    load(sys.argv[1])  # Keras started: from here on, one load after another
    print("loading", flush=True)
    while True:
        load(sys.argv[1])
    """
)


def test_sigterm_while_loading_leaves_no_temporary_file(saved, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_LOADS, str(saved)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout.readline() == "loading\n"
        # Loads follow each other: a temporary file, if any, would be seen
        # (with the old temporary folder, 1 look in 10 saw it).
        for _ in range(100):
            time.sleep(0.02)
            assert list(scratch.iterdir()) == []
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM
    assert list(scratch.iterdir()) == []


def test_loading_leaves_the_global_random_state_alone(saved):
    import random

    random.seed(7)
    np.random.seed(7)  # noqa: NPY002 (the global state is under test)
    expected = (random.random(), np.random.random())  # noqa: NPY002
    random.seed(7)
    np.random.seed(7)  # noqa: NPY002 (the global state is under test)
    load(saved)
    assert (random.random(), np.random.random()) == expected  # noqa: NPY002
