"""fetch_mnist: real data, local npz and IDX files, the cache and mocked downloads."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import tempfile
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.utils import Bunch

from sk_mnist import fetch_mnist
from sk_mnist.datasets import _download
from sk_mnist.datasets._readers import IDX_FILES
from sk_mnist.exceptions import DataFileError, DownloadError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    """Each test chooses its source itself."""
    monkeypatch.delenv("SK_MNIST_DATA", raising=False)


def small_arrays(n_train=50, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def canonical_arrays():
    """Arrays of MNIST's real sizes (zeros, cyclic labels) for download mocks."""
    return {
        "x_train": np.zeros((60_000, 28, 28), np.uint8),
        "y_train": (np.arange(60_000) % 10).astype(np.uint8),
        "x_test": np.zeros((10_000, 28, 28), np.uint8),
        "y_test": (np.arange(10_000) % 10).astype(np.uint8),
    }


def write_idx(path, array, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    content = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(content)


def write_idx_folder(folder, arrays, gz=False, dotted=False):
    folder.mkdir(exist_ok=True)
    for key, stem in IDX_FILES.items():
        # Some mirrors name the files "train-images.idx3-ubyte".
        name = stem.replace("-idx", ".idx") if dotted else stem
        write_idx(folder / (name + (".gz" if gz else "")), arrays[key], gz=gz)
    return folder


# ---------------------------------------------------------------- real data
@pytest.mark.parametrize(
    ("subset", "n", "counts"),
    [
        ("train", 60_000, TRAIN_COUNTS),
        ("test", 10_000, TEST_COUNTS),
        ("all", 70_000, np.add(TRAIN_COUNTS, TEST_COUNTS)),
    ],
)
def test_real_data_matches_the_published_facts(mnist_path, subset, n, counts):
    bunch = fetch_mnist(path=mnist_path, subset=subset)
    assert bunch.data.shape == (n, 784)
    assert bunch.images.shape == (n, 28, 28)
    assert bunch.data.dtype == np.uint8
    assert np.shares_memory(bunch.data, bunch.images)
    assert bunch.target.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(bunch.target), counts)
    assert bunch.feature_names[0] == "pixel1"
    assert bunch.feature_names[-1] == "pixel784"
    np.testing.assert_array_equal(bunch.target_names, np.arange(10))
    assert "MNIST" in bunch.DESCR
    if subset in ("train", "all"):
        np.testing.assert_array_equal(bunch.target[:5], [5, 0, 4, 1, 9])
    if subset == "train":
        assert bunch.data.mean() == pytest.approx(33.3184, abs=1e-4)
    if subset == "test":
        np.testing.assert_array_equal(bunch.target[:3], [7, 2, 1])
        np.testing.assert_array_equal(bunch.target[-3:], [4, 5, 6])
    if subset == "all":
        np.testing.assert_array_equal(bunch.target[60_000:60_003], [7, 2, 1])


def test_real_data_as_frame_looks_like_openml(mnist_path):
    bunch = fetch_mnist(path=mnist_path, subset="test", as_frame=True)
    assert isinstance(bunch.data, pd.DataFrame)
    assert list(bunch.data.columns[:2]) == ["pixel1", "pixel2"]
    assert bunch.data.shape == (10_000, 784)
    assert bunch.target.name == "class"
    assert bunch.frame.shape == (10_000, 785)
    np.testing.assert_array_equal(bunch.target.to_numpy()[:3], [7, 2, 1])
    X, y = fetch_mnist(path=mnist_path, subset="test", as_frame=True, return_X_y=True)
    assert X.shape == (10_000, 784)
    assert y.shape == (10_000,)


def test_environment_variable_is_honoured(mnist_path, monkeypatch):
    monkeypatch.setenv("SK_MNIST_DATA", mnist_path)
    X, y = fetch_mnist(subset="test", return_X_y=True)
    assert X.shape == (10_000, 784)
    np.testing.assert_array_equal(y[:3], [7, 2, 1])


def test_environment_variable_pointing_nowhere_is_a_clear_error(monkeypatch, tmp_path):
    missing = tmp_path / "nope.npz"
    monkeypatch.setenv("SK_MNIST_DATA", str(missing))
    with pytest.raises(DataFileError, match="SK_MNIST_DATA=.*nope.npz.*does not exist"):
        fetch_mnist()


# --------------------------------------------------------------- local files
def test_small_npz_round_trips(tmp_path):
    arrays = small_arrays()
    np.savez(tmp_path / "m.npz", **arrays)
    bunch = fetch_mnist(path=tmp_path / "m.npz", subset="all")
    np.testing.assert_array_equal(
        bunch.images, np.concatenate([arrays["x_train"], arrays["x_test"]])
    )
    np.testing.assert_array_equal(
        bunch.target, np.concatenate([arrays["y_train"], arrays["y_test"]])
    )
    assert bunch.filename == str(tmp_path / "m.npz")


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dotted", [False, True])
def test_idx_folder_gives_the_same_arrays(tmp_path, gz, dotted):
    arrays = small_arrays()
    folder = write_idx_folder(tmp_path / "idx", arrays, gz=gz, dotted=dotted)
    X, y = fetch_mnist(path=folder, subset="test", return_X_y=True)
    np.testing.assert_array_equal(X, arrays["x_test"].reshape(-1, 784))
    np.testing.assert_array_equal(y, arrays["y_test"])


def test_object_array_npz_is_refused_without_unpickling(tmp_path):
    arrays = small_arrays()
    arrays["y_train"] = np.array([object()] * 50, dtype=object)
    np.savez(tmp_path / "o.npz", **arrays)
    with pytest.raises(DataFileError, match="o.npz.*object arrays"):
        fetch_mnist(path=tmp_path / "o.npz")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("y_train"), r"missing \['y_train'\]"),
        (
            lambda a: a.update(x_train=a["x_train"][:, :27]),
            r"28x28 images.*\(50, 27, 28\)",
        ),
        (lambda a: a.update(y_train=a["y_train"][:49]), "50 images but y_train has 49"),
        (lambda a: a.update(y_train=a["y_train"] + 10), r"values must lie in 0..9"),
        (
            lambda a: a.update(x_train=a["x_train"].astype(np.float32)),
            "integers; got dtype float32",
        ),
        (
            lambda a: a.update(x_train=a["x_train"].astype(np.int16) - 1),
            r"0..255; got values from -1",
        ),
        (
            lambda a: a.update(x_train=a["x_train"][:0], y_train=a["y_train"][:0]),
            "holds no images",
        ),
    ],
)
def test_wrong_arrays_name_the_file_and_the_problem(tmp_path, change, message):
    arrays = small_arrays()
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataFileError, match=message) as info:
        fetch_mnist(path=tmp_path / "bad.npz")
    assert "bad.npz" in str(info.value)


def test_truncated_and_corrupt_npz_are_clear_errors(tmp_path):
    np.savez(tmp_path / "good.npz", **small_arrays())
    content = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(content[: len(content) // 2])
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    for name in ("cut.npz", "junk.npz"):
        with pytest.raises(DataFileError, match=name):
            fetch_mnist(path=tmp_path / name)


def test_idx_file_with_a_lying_header_is_refused(tmp_path):
    arrays = small_arrays()
    folder = write_idx_folder(tmp_path / "idx", arrays)
    path = folder / "t10k-images-idx3-ubyte"
    content = bytearray(path.read_bytes())
    content[4:8] = struct.pack(">I", 10_000)  # promises 10,000 images, holds 20
    path.write_bytes(bytes(content))
    with pytest.raises(
        DataFileError, match="header promises shape.*truncated or its header lies"
    ):
        fetch_mnist(path=folder, subset="test")


def test_idx_folder_missing_a_file_names_it(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", small_arrays())
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataFileError, match="no IDX file t10k-labels-idx1-ubyte"):
        fetch_mnist(path=folder, subset="test")


def test_missing_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataFileError, match="no such file"):
        fetch_mnist(path=tmp_path / "absent.npz")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"subset": "validation"}, "subset"), ({"source": "kaggle"}, "source")],
)
def test_bad_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fetch_mnist(**kwargs)


# ---------------------------------------------------- cache and downloads
def test_no_network_and_no_data_fails_fast_with_a_hint(tmp_path, monkeypatch):
    def offline(**kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("sklearn.datasets.fetch_openml", offline)
    with pytest.raises(DownloadError, match="SK_MNIST_DATA"):
        fetch_mnist(data_home=tmp_path)
    assert not list((tmp_path / "sk_mnist").glob("*.npz"))


def test_download_if_missing_false_does_not_download(tmp_path, monkeypatch):
    monkeypatch.setattr("sklearn.datasets.fetch_openml", pytest.fail)
    with pytest.raises(DownloadError, match="download_if_missing=False"):
        fetch_mnist(data_home=tmp_path, download_if_missing=False)


def openml_bunch():
    arrays = canonical_arrays()
    images = np.concatenate([arrays["x_train"], arrays["x_test"]]).reshape(-1, 784)
    labels = np.concatenate([arrays["y_train"], arrays["y_test"]]).astype(str)
    data = pd.DataFrame(images, columns=[f"pixel{i}" for i in range(1, 785)])
    target = pd.Series(pd.Categorical(labels), name="class")
    return Bunch(data=data, target=target)


def test_openml_download_is_converted_cached_and_reused(tmp_path, monkeypatch):
    calls = []

    def fake_fetch_openml(**kwargs):
        calls.append(kwargs)
        return openml_bunch()

    monkeypatch.setattr("sklearn.datasets.fetch_openml", fake_fetch_openml)
    bunch = fetch_mnist(data_home=tmp_path, subset="test")
    assert calls[0]["data_id"] == 554
    assert bunch.target.dtype == np.int64
    np.testing.assert_array_equal(bunch.target[:3], [0, 1, 2])
    assert (tmp_path / "sk_mnist" / "mnist.npz").is_file()
    assert not list((tmp_path / "sk_mnist").glob(".mnist-*"))  # no temporary left

    again = fetch_mnist(data_home=tmp_path, subset="train")
    assert len(calls) == 1  # served from the cache
    assert again.data.shape == (60_000, 784)


def test_corrupt_cache_is_detected_removed_and_downloaded_again(tmp_path, monkeypatch):
    folder = tmp_path / "sk_mnist"
    folder.mkdir()
    (folder / "mnist.npz").write_bytes(b"PK\x03\x04 half a file")
    monkeypatch.setattr("sklearn.datasets.fetch_openml", lambda **kw: openml_bunch())
    with pytest.warns(RuntimeWarning, match="corrupt MNIST cache"):
        bunch = fetch_mnist(data_home=tmp_path, subset="test")
    assert bunch.data.shape == (10_000, 784)
    np.load(folder / "mnist.npz", allow_pickle=False)["x_test"]  # a valid cache now


def test_read_only_cache_folder_still_returns_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr("sklearn.datasets.fetch_openml", lambda **kw: openml_bunch())

    def refuse(*args, **kwargs):  # what a read-only mount answers, even root
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.warns(RuntimeWarning, match="Could not write the MNIST cache"):
        bunch = fetch_mnist(data_home=tmp_path, subset="test")
    assert bunch.data.shape == (10_000, 784)
    assert not (tmp_path / "sk_mnist" / "mnist.npz").exists()


def test_a_full_disk_while_caching_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr("sklearn.datasets.fetch_openml", lambda **kw: openml_bunch())

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.warns(RuntimeWarning, match="No space left"):
        bunch = fetch_mnist(data_home=tmp_path, subset="test")
    assert bunch.data.shape == (10_000, 784)
    assert list((tmp_path / "sk_mnist").iterdir()) == []


class _Server:
    """A local HTTP server standing in for the Keras download."""

    def __init__(self, payload: bytes, cut_at: int | None = None):
        self.payload, self.cut_at = payload, cut_at
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.payload)))
                self.end_headers()
                body = server.payload
                if server.cut_at is not None:
                    body = body[: server.cut_at]
                self.wfile.write(body)
                self.wfile.flush()
                self.connection.close()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/mnist.npz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def keras_payload(tmp_path_factory):
    path = tmp_path_factory.mktemp("payload") / "mnist.npz"
    np.savez_compressed(path, **canonical_arrays())
    content = path.read_bytes()
    return content, hashlib.sha256(content).hexdigest()


def _serve(monkeypatch, payload, sha256, cut_at=None):
    server = _Server(payload, cut_at)
    monkeypatch.setattr(_download, "KERAS_URL", server.url)
    monkeypatch.setattr(_download, "KERAS_SHA256", sha256)
    return server


def test_keras_download_verifies_caches_and_leaves_no_temporary(
    tmp_path, monkeypatch, keras_payload
):
    payload, sha = keras_payload
    with _serve(monkeypatch, payload, sha):
        bunch = fetch_mnist(source="keras", data_home=tmp_path, subset="test")
    assert bunch.images.shape == (10_000, 28, 28)
    files = sorted(p.name for p in (tmp_path / "sk_mnist").iterdir())
    assert files == ["mnist.npz"]


def test_keras_download_with_wrong_checksum_leaves_nothing(
    tmp_path, monkeypatch, keras_payload
):
    payload, _ = keras_payload
    with (
        _serve(monkeypatch, payload, "0" * 64),
        pytest.raises(DownloadError, match="hash|SHA"),
    ):
        fetch_mnist(source="keras", data_home=tmp_path)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.99])
def test_interrupted_keras_download_leaves_no_partial_file(
    tmp_path, monkeypatch, keras_payload, fraction
):
    payload, sha = keras_payload
    with (
        _serve(monkeypatch, payload, sha, cut_at=int(len(payload) * fraction)),
        pytest.raises(DownloadError, match="SK_MNIST_DATA"),
    ):
        fetch_mnist(source="keras", data_home=tmp_path)
    assert _leftovers(tmp_path) == []


def _leftovers(tmp_path) -> list[str]:
    folder = Path(tmp_path) / "sk_mnist"
    return (
        sorted(p.name for p in folder.rglob("*") if p.is_file())
        if folder.exists()
        else []
    )


# ---------------------------------------------------- hostile or odd sources
def _peak_python_allocation(call):
    """Peak bytes Python and numpy allocated while ``call`` ran (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_gzip_idx_bomb_is_refused_after_reading_what_its_header_declares(
    tmp_path,
):
    arrays = small_arrays()
    write_idx_folder(tmp_path, arrays, gz=True)
    header = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 20, 28, 28)
    bomb = tmp_path / (IDX_FILES["x_test"] + ".gz")
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(header + arrays["x_test"].tobytes())
        for _ in range(64):  # 1 GiB of zeros beyond the declared 20 images
            f.write(bytes(16 * 1024**2))
    assert bomb.stat().st_size < 2 * 1024**2
    before = bomb.stat().st_mtime_ns

    def load():
        with pytest.raises(
            DataFileError, match="holds more; it is truncated or its header lies"
        ):
            fetch_mnist(path=tmp_path, subset="test")

    assert _peak_python_allocation(load) < 50 * 1024**2
    assert bomb.stat().st_mtime_ns == before


def test_an_idx_header_declaring_more_than_the_file_can_hold_is_refused(tmp_path):
    path = tmp_path / "x.gz"
    header = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 2**31, 28, 28)
    with gzip.open(path, "wb") as f:
        f.write(header + bytes(100))
    from sk_mnist.datasets._readers import read_idx

    def load():
        with pytest.raises(DataFileError, match="more than a file of .* can hold"):
            read_idx(path, ndim=3)

    assert _peak_python_allocation(load) < 10 * 1024**2


def test_a_fifo_as_the_data_path_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "mnist.npz"
    os.mkfifo(fifo)
    with pytest.raises(DataFileError, match="not a regular file"):
        fetch_mnist(path=fifo)


def test_an_npz_member_declaring_a_huge_array_is_refused_before_allocation(tmp_path):
    import zipfile

    good = tmp_path / "good.npz"
    np.savez(good, **small_arrays())
    header = tmp_path / "h.npy"
    with open(header, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|u1", "fortran_order": False, "shape": (10**7, 28, 28)}
        )
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "x_train.npy":
                data = header.read_bytes() + bytes(100)
            dst.writestr(item.filename, data)

    def load():
        with pytest.raises(DataFileError, match=r"declares shape \(10000000, 28, 28\)"):
            fetch_mnist(path=bad)

    assert _peak_python_allocation(load) < 10 * 1024**2


def test_a_tilde_in_the_environment_variable_is_expanded(
    mnist_path, monkeypatch, tmp_path
):
    home = tmp_path / "home"
    home.mkdir()
    (home / "mnist.npz").symlink_to(mnist_path)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SK_MNIST_DATA", "~/mnist.npz")
    assert fetch_mnist(subset="test").target[:3].tolist() == [7, 2, 1]


def test_an_empty_path_is_refused_instead_of_reading_the_current_folder(
    mnist_path, monkeypatch
):
    monkeypatch.setenv("SK_MNIST_DATA", mnist_path)
    with pytest.raises(ValueError, match="path is empty"):
        fetch_mnist(path="")


def test_a_data_home_that_is_a_file_warns_and_still_returns_the_data(
    tmp_path, monkeypatch
):
    monkeypatch.setattr("sklearn.datasets.fetch_openml", lambda **kw: openml_bunch())
    home = tmp_path / "home"
    home.write_text("a file where the data home should be")
    with pytest.warns(RuntimeWarning, match="Could not write the MNIST cache"):
        bunch = fetch_mnist(data_home=home, subset="test")
    assert bunch.data.shape == (10_000, 784)
    assert home.read_text() == "a file where the data home should be"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_a_garbage_cache_file_is_called_what_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr("sklearn.datasets.fetch_openml", lambda **kw: openml_bunch())
    cache = tmp_path / "sk_mnist" / "mnist.npz"
    cache.parent.mkdir()
    cache.write_bytes(b"garbage, not an archive")
    with pytest.warns(RuntimeWarning, match="not an .npz archive") as caught:
        fetch_mnist(data_home=tmp_path, subset="test")
    assert not any("pickle" in str(w.message) for w in caught)
