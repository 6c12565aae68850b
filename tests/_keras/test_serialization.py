"""The .keras archive of a network: in memory, checked against what sk-mnist builds."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import numpy as np
import pytest

from sk_mnist._keras import network, serialization
from sk_mnist.exceptions import UnsafeModelError


@pytest.fixture(scope="module")
def archive():
    model = network.build_network(
        20, 3, hidden_layer_sizes=(8, 6), dropout=(0.2, 0.0), seeds=range(5)
    )
    return serialization.model_to_bytes(model)


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def _zip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _with_config(data, edit):
    members = _members(data)
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    return _zip(members)


def _layer(config, name):
    return next(e for e in config["config"]["layers"] if e["config"]["name"] == name)


def test_a_network_loads_from_bytes_without_a_temporary_file(
    archive, tmp_path, monkeypatch
):
    def no_disk(*args, **kwargs):
        raise AssertionError("a temporary file or folder was made")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with monkeypatch.context() as loading:
        loading.setattr(tempfile, "mkdtemp", no_disk)
        loading.setattr(tempfile, "mkstemp", no_disk)
        model = serialization.model_from_bytes(archive)
    saved = serialization.model_to_bytes(model)  # Keras's writer: see the module
    with monkeypatch.context() as loading:
        loading.setattr(tempfile, "mkdtemp", no_disk)
        loading.setattr(tempfile, "mkstemp", no_disk)
        again = serialization.model_from_bytes(saved)
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == []


# Fields that make Keras allocate or build something sk-mnist never writes:
# each the way a hostile file would set it.
_EDITS = {
    "lora-rank": (
        lambda c: _layer(c, "dense_0")["config"].update(lora_rank=500_000),
        r"layer 'dense_0': config sets \['lora_rank'\]",
    ),
    "per-layer-input-shape": (
        lambda c: _layer(c, "dense_1")["build_config"].update(
            input_shape=[None, 100_000_000]
        ),
        r"input_shape is \[None, 100000000\]; sk-mnist writes \[None, 8\]",
    ),
    "string-dtype-input": (
        lambda c: c["config"]["layers"][0]["config"].update(dtype="string"),
        r"the input: config: dtype is string; sk-mnist writes float32",
    ),
    "regularizer": (
        lambda c: _layer(c, "dense_0")["config"].update(
            activity_regularizer={"class_name": "L1", "config": {"l1": 1.0}}
        ),
        r"layer 'dense_0': config sets \['activity_regularizer'\]",
    ),
    "unknown-layer-class": (
        lambda c: c["config"]["layers"].insert(
            2, {"class_name": "Embedding", "config": {"name": "e", "input_dim": 10**9}}
        ),
        r"a 'Embedding' layer",
    ),
    "noise-shape": (
        lambda c: _layer(c, "dropout_0")["config"].update(noise_shape=[10**9]),
        r"noise_shape is",
    ),
    "huge-seed": (
        lambda c: _layer(c, "dropout_0")["config"].update(seed=10**40),
        r"a seed of 1{41}|a seed of 10{40}",
    ),
    "bad-name": (
        lambda c: _layer(c, "dense_0")["config"].update(name="\x1b[2J"),
        r"a layer name",
    ),
    "threshold-activation": (
        lambda c: _layer(c, "dense_0")["config"].update(activation="threshold"),
        r"maps each unit to one value",
    ),
    "optimizer-field": (
        lambda c: c["compile_config"]["optimizer"]["config"].update(foo=1),
        r"not one of Keras's optimizers \(Argument\(s\) not recognized: \{'foo'",
    ),
    "loss": (
        lambda c: c["compile_config"].update(loss="mse"),
        r"loss='mse' in the compile config",
    ),
    "top-level-field": (
        lambda c: c.update(extra={"x": 1}),
        r"the model sets \['extra'\]",
    ),
    "functional-model": (
        lambda c: c.update(class_name="Functional"),
        r"a 'Functional' model",
    ),
}


@pytest.mark.parametrize("case", sorted(_EDITS))
def test_a_config_field_sk_mnist_never_writes_is_refused_before_keras(archive, case):
    edit, message = _EDITS[case]
    data = _with_config(archive, edit)
    with pytest.raises(UnsafeModelError, match=message):
        serialization.check_network_archive(data, "the file")
    with pytest.raises(UnsafeModelError, match="not a network KerasMLPClassifier"):
        serialization.model_from_bytes(data, origin="the file")


def test_a_config_from_an_older_keras_with_fewer_fields_still_loads(archive):
    def drop(config):
        for entry in config["config"]["layers"]:
            entry["config"].pop("quantization_config", None)

    model = serialization.model_from_bytes(_with_config(archive, drop))
    assert [layer.name for layer in model.layers] == [
        "dense_0",
        "dropout_0",
        "dense_1",
        "output",
    ]


def _flip(data, member, offset):
    """``data`` with one byte of ``member`` flipped, its CRC left as it was."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(data)
    damaged[start + offset] ^= 0xFF
    return bytes(damaged)


def _damaged_weights(offset):
    """Stored weights with 64 bytes overwritten at ``offset``, and a right CRC."""

    def damage(data):
        members = _members(data)
        weights = bytearray(members["model.weights.h5"])
        weights[offset : offset + 64] = b"\xff" * 64
        members["model.weights.h5"] = bytes(weights)
        return _zip(members)

    return damage


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: _flip(d, "model.weights.h5", 500), r"damaged or truncated"),
        (lambda d: _flip(d, "config.json", 10), r"damaged or truncated"),
        (_damaged_weights(0), r"weights file is damaged"),
        (_damaged_weights(6080), r"weights file is damaged"),
        (lambda d: d[: len(d) // 2], r"not a zip archive"),
    ],
    ids=[
        "flipped-weight-byte",
        "flipped-config-byte",
        "damaged-h5-superblock",
        "damaged-h5-object-header",
        "truncated",
    ],
)
def test_damaged_bytes_are_an_unsafe_model_error(archive, damage, message):
    with pytest.raises(UnsafeModelError, match=message):
        serialization.model_from_bytes(damage(archive), origin="the file")


@pytest.mark.parametrize(
    "states",
    [
        [[10**40, 0]],
        [[1, 2, 3]],
        [["a", 0]],
        [[1.5, 0]],
        [[1, 0], [1, 0]],
        "x",
    ],
)
def test_seed_states_that_no_model_has_are_refused(archive, states):
    model = serialization.model_from_bytes(archive)
    with pytest.raises(UnsafeModelError, match="seed state"):
        serialization.set_seed_states(model, states)
