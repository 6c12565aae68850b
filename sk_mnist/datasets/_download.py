"""Downloading MNIST (OpenML or Keras's file) and keeping it in a local cache.

The cache is one ``mnist.npz`` in Keras's layout under ``<data_home>/sk_mnist``.
It is written only after the download passed its checksum and the arrays passed
:func:`check_mnist_arrays`, and always atomically (a temporary file in the same
folder, then a rename), so an interrupted download never leaves a partial cache.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .._utils._files import atomic_write
from ..exceptions import DataFileError, DownloadError
from ._readers import check_mnist_arrays, read_npz

OPENML_DATA_ID = 554  # mnist_784, version 1
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
# The hash Keras itself checks for this file (keras.datasets.mnist.load_data).
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
CACHE_NAME = "mnist.npz"

_OFFLINE_HINT = (
    "Without network access, point sk-mnist at a local copy: "
    "fetch_mnist(path='/path/to/mnist.npz') or "
    "`export SK_MNIST_DATA=/path/to/mnist.npz` "
    "(Keras's mnist.npz layout, or a folder holding the four MNIST IDX files)."
)


def cache_dir(data_home=None):
    """The folder sk-mnist caches MNIST in, below scikit-learn's data home.

    scikit-learn's ``get_data_home`` creates the data home; where that fails
    (a file in the way, a read-only mount) the folder is returned all the
    same, and reading, downloading and writing the cache cope with it.
    """
    from sklearn.datasets import get_data_home

    try:
        return Path(get_data_home(data_home)) / "sk_mnist"
    except OSError:
        home = data_home or os.environ.get("SCIKIT_LEARN_DATA", "~/scikit_learn_data")
        return Path(os.path.expanduser(os.fspath(home))) / "sk_mnist"


def read_cache(folder, parts):
    """Read the cached arrays, or return None when there is no usable cache.

    A cache that fails to read or to validate is reported with a warning and
    removed, so that the next download replaces it.
    """
    path = Path(folder) / CACHE_NAME
    if not path.is_file():
        return None
    try:
        arrays = read_npz(path, parts)
        return check_mnist_arrays(arrays, str(path), canonical=True)
    except DataFileError as exc:
        warnings.warn(
            f"Ignoring the corrupt MNIST cache ({exc}); it will be downloaded again.",
            RuntimeWarning,
            stacklevel=3,
        )
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def write_cache(folder, arrays):
    """Write the four arrays to the cache atomically; warn if that is impossible.

    The data were already read, so a read-only or full disk costs only the
    cache, never the caller's result.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / CACHE_NAME) as file:
            np.savez(file, **arrays)
    except OSError as exc:
        _warn_no_cache(folder, exc)


def _warn_no_cache(folder, exc):
    warnings.warn(
        f"Could not write the MNIST cache in {folder} ({exc}); the data are "
        "returned but will be downloaded again next time.",
        RuntimeWarning,
        stacklevel=4,
    )


def download_openml(folder):
    """All 70,000 images from OpenML ``mnist_784`` (v1), labels as int64.

    scikit-learn's ``fetch_openml`` does the HTTP work, keeps its own cache of
    the ARFF file under ``folder`` and verifies OpenML's MD5 checksum; this
    turns its DataFrame into Keras's layout.
    """
    from sklearn.datasets import fetch_openml

    try:
        bunch = fetch_openml(
            data_id=OPENML_DATA_ID,
            data_home=str(Path(folder) / "openml"),
            as_frame=True,
            parser="pandas",
            n_retries=2,
            delay=1.0,
        )
    except (OSError, ValueError) as exc:
        # URLError and HTTPError are OSErrors; a checksum mismatch is a ValueError.
        raise DownloadError(
            f"Could not download MNIST from OpenML (data_id={OPENML_DATA_ID}): "
            f"{type(exc).__name__}: {exc}. {_OFFLINE_HINT}"
        ) from exc
    data, target = bunch.data, bunch.target
    if data.shape != (70_000, 784):
        raise DownloadError(
            f"OpenML's mnist_784 came back with shape {data.shape}; expected "
            f"(70000, 784). {_OFFLINE_HINT}"
        )
    try:
        labels = np.asarray(target, dtype=str).astype(np.int64)
    except ValueError as exc:
        raise DownloadError(
            f"OpenML's mnist_784 labels are not the digits '0'..'9': {exc}."
        ) from exc
    images = data.to_numpy(dtype=np.int64).reshape(-1, 28, 28)
    arrays = {
        "x_train": images[:60_000],
        "y_train": labels[:60_000],
        "x_test": images[60_000:],
        "y_test": labels[60_000:],
    }
    return check_mnist_arrays(arrays, "OpenML mnist_784", canonical=True)


def download_keras(folder):
    """Keras's ``mnist.npz``, fetched by pooch and checked against its SHA-256.

    pooch downloads into a temporary file, checks the hash and only then
    renames it into place, so a failed or tampered download leaves nothing.
    """
    import pooch
    import requests

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fetched = pooch.retrieve(
            KERAS_URL,
            known_hash=f"sha256:{KERAS_SHA256}",
            fname="keras-mnist.npz",
            path=folder,
            downloader=pooch.HTTPDownloader(progressbar=False, timeout=(10, 60)),
        )
    except (OSError, ValueError, requests.RequestException) as exc:
        # pooch raises ValueError on a hash mismatch, requests its own errors
        # (subclasses of OSError) for connection failures.
        raise DownloadError(
            f"Could not download MNIST from {KERAS_URL}: {type(exc).__name__}: "
            f"{exc}. {_OFFLINE_HINT}"
        ) from exc
    try:
        arrays = read_npz(fetched)
        return check_mnist_arrays(arrays, KERAS_URL, canonical=True)
    finally:
        # The arrays are now held in memory and go to the shared cache file.
        with contextlib.suppress(OSError):
            os.unlink(fetched)


def download(source, folder):
    """Download all of MNIST from ``source`` ("openml" or "keras").

    The download goes through ``folder`` (where OpenML's files are cached);
    when that folder cannot be created or written, through a temporary
    folder instead, with a warning: the data are still returned.
    """
    fetch = download_openml if source == "openml" else download_keras
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        _warn_no_cache(folder, exc)
        with tempfile.TemporaryDirectory(prefix="sk_mnist-") as scratch:
            return fetch(scratch)
    return fetch(folder)
