"""Over forty bad inputs: each gets its own exception and a message naming the
problem, leaves the caller's input unchanged and leaves no partial file behind.

The network and CLI cases that need real training or subprocesses live beside
their features (tests/test_classifier.py, tests/test_cli.py,
tests/datasets/test_fetch.py for the mocked downloads); this table collects
the fast ones in one place.
"""

from __future__ import annotations

import copy
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import FAST_PARAMS
from sklearn.exceptions import NotFittedError

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist, load, save
from sk_mnist.exceptions import DataFileError, TrainingDivergedError, UnsafeModelError

RNG = np.random.default_rng(0)
FAST = FAST_PARAMS  # the suite's one small, fast classifier (conftest.py)


@dataclass
class Case:
    id: str
    make: Callable[[Any], tuple]  # tmp_path -> the arguments of ``call``
    call: Callable[..., Any]
    error: type[BaseException]
    match: str


def arrays(**changes):
    base = {
        "x_train": RNG.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "y_train": np.arange(30, dtype=np.uint8) % 10,
        "x_test": RNG.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "y_test": np.arange(10, dtype=np.uint8),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def npz(tmp, **changes):
    path = tmp / "data.npz"
    np.savez(path, **arrays(**changes))
    return (path,)


def idx_folder(tmp, corrupt=None):
    folder = tmp / "idx"
    folder.mkdir()
    names = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    for key, value in arrays().items():
        header = struct.pack(">BBBB", 0, 0, 8, value.ndim) + struct.pack(
            f">{value.ndim}I", *value.shape
        )
        content = bytearray(header + value.tobytes())
        if corrupt == "lying-header" and key == "x_test":
            content[4:8] = struct.pack(">I", 99_999)
        if corrupt == "magic" and key == "x_test":
            content[:4] = b"GIF8"
        if not (corrupt == "missing" and key == "y_test"):
            (folder / names[key]).write_bytes(bytes(content))
    return (folder,)


def fetch(path):
    return fetch_mnist(path=path, subset="all")


def images(n=4, **kw):
    return RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8).astype(
        kw.get("dtype", np.uint8)
    )


def fit_flattener(X, **params):
    return MNISTFlattener(**params).fit(X)


def flattener_then(X):
    return MNISTFlattener().fit(images()).transform(X)


def digits(n=60):
    X = RNG.random((n, 784), dtype=np.float32)
    y = np.arange(n) % 3
    return X, y


def fit_clf(X, y, **params):
    return KerasMLPClassifier(**{**FAST, **params}).fit(X, y)


def fitted_clf():
    return fit_clf(*digits())


_FITTED = {}


def clf_then_predict(X):
    if "clf" not in _FITTED:
        _FITTED["clf"] = fitted_clf()
    return _FITTED["clf"].predict(X)


def saved_model(tmp, edit=None):
    if "clf" not in _FITTED:
        _FITTED["clf"] = fitted_clf()
    path = save(_FITTED["clf"], tmp / "model.skops")
    if edit is not None:
        edit(path)
    return (path,)


def edit_schema(old, new):
    def edit(path):
        with zipfile.ZipFile(path) as src:
            members = {i.filename: src.read(i) for i in src.infolist()}
        assert old in members["schema.json"]
        members["schema.json"] = members["schema.json"].replace(old, new)
        with zipfile.ZipFile(path, "w") as dst:
            for name, data in members.items():
                dst.writestr(name, data)

    return edit


def write(content):
    def make(tmp):
        path = tmp / "file.skops"
        path.write_bytes(content)
        return (path,)

    return make


CASES = [
    # ---- fetch_mnist: parameters, local files
    Case(
        "fetch-bad-subset",
        lambda t: ("validation",),
        lambda s: fetch_mnist(subset=s),
        ValueError,
        "subset",
    ),
    Case(
        "fetch-bad-source",
        lambda t: ("kaggle",),
        lambda s: fetch_mnist(source=s),
        ValueError,
        "source",
    ),
    Case(
        "fetch-bad-type",
        lambda t: (3.5,),
        lambda p: fetch_mnist(path=p),
        ValueError,
        "path",
    ),
    Case(
        "fetch-missing-file",
        lambda t: (t / "none.npz",),
        fetch,
        DataFileError,
        "no such file",
    ),
    Case("fetch-text-file", write(b"hello"), fetch, DataFileError, "file.skops"),
    Case(
        "fetch-truncated-npz",
        lambda t: _truncate(npz(t)[0]),
        fetch,
        DataFileError,
        "data.npz",
    ),
    Case(
        "fetch-object-array",
        lambda t: npz(t, y_train=np.array([None] * 30, dtype=object)),
        fetch,
        DataFileError,
        "object arrays",
    ),
    Case(
        "fetch-missing-array",
        lambda t: npz(t, y_test=None),
        fetch,
        DataFileError,
        r"missing \['y_test'\]",
    ),
    Case(
        "fetch-wrong-shape",
        lambda t: npz(t, x_train=np.zeros((30, 32, 32), np.uint8)),
        fetch,
        DataFileError,
        r"28x28 images.*\(30, 32, 32\)",
    ),
    Case(
        "fetch-label-range",
        lambda t: npz(t, y_test=np.arange(10) + 5),
        fetch,
        DataFileError,
        r"0\.\.9; got values from 5 to 14",
    ),
    Case(
        "fetch-float-images",
        lambda t: npz(t, x_test=np.zeros((10, 28, 28), np.float64)),
        fetch,
        DataFileError,
        "integers; got dtype float64",
    ),
    Case(
        "fetch-huge-pixels",
        lambda t: npz(t, x_test=np.full((10, 28, 28), 70_000, np.int32)),
        fetch,
        DataFileError,
        r"0\.\.255; got values from 70000",
    ),
    Case(
        "fetch-length-mismatch",
        lambda t: npz(t, y_train=np.zeros(29, np.uint8)),
        fetch,
        DataFileError,
        "30 images but y_train has 29 labels",
    ),
    Case(
        "fetch-empty",
        lambda t: npz(
            t, x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8)
        ),
        fetch,
        DataFileError,
        "holds no images",
    ),
    Case(
        "idx-lying-header",
        lambda t: idx_folder(t, "lying-header"),
        fetch,
        DataFileError,
        "header lies",
    ),
    Case(
        "idx-bad-magic",
        lambda t: idx_folder(t, "magic"),
        fetch,
        DataFileError,
        "not an IDX file",
    ),
    Case(
        "idx-missing-file",
        lambda t: idx_folder(t, "missing"),
        fetch,
        DataFileError,
        "no IDX file t10k-labels",
    ),
    # ---- MNISTFlattener
    Case(
        "flat-nan",
        lambda t: (np.full((2, 28, 28), np.nan),),
        fit_flattener,
        ValueError,
        "NaN",
    ),
    Case(
        "flat-inf",
        lambda t: (np.full((2, 784), np.inf),),
        fit_flattener,
        ValueError,
        "infinity",
    ),
    Case(
        "flat-negative",
        lambda t: (-images().astype(np.int16),),
        fit_flattener,
        ValueError,
        "Negative values",
    ),
    Case(
        "flat-above-255",
        lambda t: (images().astype(np.int32) + 256,),
        fit_flattener,
        ValueError,
        "above the scale",
    ),
    Case(
        "flat-huge-float",
        lambda t: (np.full((2, 784), 1e300),),
        fit_flattener,
        ValueError,
        "above the scale.*1e\\+300",
    ),
    Case(
        "flat-empty",
        lambda t: (np.zeros((0, 784)),),
        fit_flattener,
        ValueError,
        "0 sample",
    ),
    Case(
        "flat-rgb",
        lambda t: (np.zeros((2, 28, 28, 3)),),
        fit_flattener,
        ValueError,
        "one channel",
    ),
    Case(
        "flat-5d",
        lambda t: (np.zeros((1, 2, 28, 28, 1)),),
        fit_flattener,
        ValueError,
        "shape \\(1, 2, 28, 28, 1\\)",
    ),
    Case(
        "flat-1d",
        lambda t: (np.zeros(784),),
        fit_flattener,
        ValueError,
        "Reshape your data",
    ),
    Case(
        "flat-sparse",
        lambda t: (sp.csr_matrix(np.ones((2, 784))),),
        fit_flattener,
        TypeError,
        "[Ss]parse",
    ),
    Case(
        "flat-strings",
        lambda t: (np.full((2, 784), "x"),),
        fit_flattener,
        ValueError,
        "numeric|convert",
    ),
    Case(
        "flat-non-square",
        lambda t: (np.zeros((2, 10)),),
        fit_flattener,
        ValueError,
        "not a square number",
    ),
    Case(
        "flat-other-size",
        lambda t: (np.zeros((1, 32, 32)),),
        flattener_then,
        ValueError,
        "fitted on 28x28 images, got 32x32",
    ),
    Case(
        "flat-bad-scale",
        lambda t: (images(),),
        lambda X: fit_flattener(X, scale=-1.0),
        ValueError,
        "scale",
    ),
    Case(
        "flat-bad-image-shape",
        lambda t: (np.zeros((2, 64)),),
        lambda X: fit_flattener(X, image_shape=(0, 8)),
        ValueError,
        r"got \(0, 8\)",
    ),
    # ---- KerasMLPClassifier
    Case(
        "clf-zero-layer",
        lambda t: digits(),
        lambda X, y: fit_clf(X, y, hidden_layer_sizes=(512, 0)),
        ValueError,
        r"positive integers, got \(512, 0\)",
    ),
    Case(
        "clf-dropout-1",
        lambda t: digits(),
        lambda X, y: fit_clf(X, y, dropout=1.0),
        ValueError,
        "dropout",
    ),
    Case(
        "clf-activation",
        lambda t: digits(),
        lambda X, y: fit_clf(X, y, activation="rellu"),
        ValueError,
        "'rellu'",
    ),
    Case(
        "clf-optimizer",
        lambda t: digits(),
        lambda X, y: fit_clf(X, y, optimizer="adamw2"),
        ValueError,
        "'adamw2'",
    ),
    Case(
        "clf-epochs-0",
        lambda t: digits(),
        lambda X, y: fit_clf(X, y, epochs=0),
        ValueError,
        "Got 0",
    ),
    Case(
        "clf-batch-0",
        lambda t: digits(),
        lambda X, y: fit_clf(X, y, batch_size=0),
        ValueError,
        "Got 0",
    ),
    Case(
        "clf-nan",
        lambda t: (np.full((60, 784), np.nan, np.float32), np.arange(60) % 3),
        fit_clf,
        ValueError,
        "NaN",
    ),
    Case(
        "clf-one-class",
        lambda t: (digits()[0], np.zeros(60, int)),
        fit_clf,
        ValueError,
        "only one class: 0",
    ),
    Case(
        "clf-length-mismatch",
        lambda t: (digits()[0], np.arange(59) % 3),
        fit_clf,
        ValueError,
        "inconsistent numbers of samples",
    ),
    Case(
        "clf-continuous",
        lambda t: (digits()[0], RNG.random(60)),
        fit_clf,
        ValueError,
        "Unknown label type",
    ),
    Case(
        "clf-multi-output",
        lambda t: (digits()[0], np.zeros((60, 2), int)),
        fit_clf,
        ValueError,
        "1d array",
    ),
    Case(
        "clf-strings-X",
        lambda t: (np.full((60, 784), "a"), np.arange(60) % 3),
        fit_clf,
        ValueError,
        "convert|numeric",
    ),
    Case(
        "clf-huge-X",
        lambda t: (np.full((60, 784), 1e30, np.float32), np.arange(60) % 3),
        lambda X, y: fit_clf(X, y, optimizer="sgd", dropout=0.0, batch_size=32),
        TrainingDivergedError,
        "NaN or infinite in epoch 1",
    ),
    Case(
        "clf-sample-weight-length",
        lambda t: digits(),
        lambda X, y: KerasMLPClassifier(**FAST).fit(X, y, sample_weight=np.ones(3)),
        ValueError,
        "sample_weight",
    ),
    Case(
        "clf-class-weight-key",
        lambda t: digits(),
        lambda X, y: fit_clf(X, y, class_weight={7: 1.0}),
        ValueError,
        r"class_weight has keys \[7\]",
    ),
    Case(
        "clf-partial-no-classes",
        lambda t: digits(),
        lambda X, y: KerasMLPClassifier(**FAST).partial_fit(X, y),
        ValueError,
        "classes must be passed",
    ),
    Case(
        "clf-wrong-features",
        lambda t: (np.zeros((2, 100), np.float32),),
        clf_then_predict,
        ValueError,
        "784 features",
    ),
    Case(
        "clf-unfitted-predict",
        lambda t: (np.zeros((2, 784)),),
        lambda X: KerasMLPClassifier().predict(X),
        NotFittedError,
        "not fitted",
    ),
    # ---- save / load
    Case(
        "load-pickle",
        write(pickle.dumps({"x": 1})),
        load,
        UnsafeModelError,
        "pickle or joblib file is refused",
    ),
    Case(
        "load-truncated",
        lambda t: _truncate(saved_model(t)[0]),
        load,
        UnsafeModelError,
        "model.skops",
    ),
    Case(
        "load-zip-without-schema",
        lambda t: _zip(t, {"other.txt": b"x"}),
        load,
        UnsafeModelError,
        "no schema.json",
    ),
    Case(
        "load-foreign-class",
        lambda t: saved_model(
            t,
            edit_schema(
                b'"__class__": "KerasMLPClassifier",\n  "__module__": "sk_mnist._classifier"',
                b'"__class__": "Popen",\n  "__module__": "subprocess"',
            ),
        ),
        load,
        UnsafeModelError,
        r"not trusted: \['subprocess.Popen'\]",
    ),
    Case(
        "load-unknown-loader",
        lambda t: saved_model(
            t, edit_schema(b'"__loader__": "ObjectNode"', b'"__loader__": "EvalNode"')
        ),
        load,
        UnsafeModelError,
        "damaged or was edited",
    ),
    Case(
        "load-missing",
        lambda t: (t / "absent.skops",),
        load,
        FileNotFoundError,
        "no such model file",
    ),
    Case(
        "save-into-a-folder",
        lambda t: (fitted_clf(), t),
        save,
        IsADirectoryError,
        "is a folder",
    ),
    Case(
        "save-unfitted",
        lambda t: (KerasMLPClassifier(), t / "x.skops"),
        save,
        NotFittedError,
        "not fitted",
    ),
]


def _truncate(path):
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return (path,)


def _zip(tmp, members):
    path = tmp / "foreign.skops"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return (path,)


def _same(a, b):
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(
            a, b, equal_nan=a.dtype.kind == "f"
        )
    if sp.issparse(a):
        return (a != b).nnz == 0
    if isinstance(a, pd.DataFrame | pd.Series):
        return a.equals(b)
    if hasattr(a, "get_params"):
        return a.get_params() == b.get_params() and vars(a).keys() == vars(b).keys()
    return a == b


def test_there_are_at_least_forty_distinct_bad_inputs():
    assert len({case.id for case in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_gets_a_specific_clear_error_and_changes_nothing(
    case, tmp_path, monkeypatch
):
    monkeypatch.delenv("SK_MNIST_DATA", raising=False)
    args = case.make(tmp_path)
    before_args = copy.deepcopy(args)
    before_files = {p: p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(case.error, match=case.match):
        case.call(*args)
    for now, then in zip(args, before_args, strict=True):
        assert _same(now, then), f"{case.id} changed its input"
    after_files = {p: p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
    assert after_files == before_files, f"{case.id} left or changed files"
