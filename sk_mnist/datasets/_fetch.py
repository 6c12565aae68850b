"""fetch_mnist: MNIST as a Bunch, from a local file, the cache or a download."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import StrOptions, validate_params

from .._utils._pixels import pixel_names
from ..exceptions import DataFileError, DownloadError
from . import _download
from ._readers import read_local

ENV_VAR = "SK_MNIST_DATA"
_SUBSET_PARTS = {"train": ("train",), "test": ("test",), "all": ("train", "test")}


@validate_params(
    {
        "subset": [StrOptions({"train", "test", "all"})],
        "path": [str, os.PathLike, None],
        "source": [StrOptions({"openml", "keras"})],
        "data_home": [str, os.PathLike, None],
        "download_if_missing": ["boolean"],
        "return_X_y": ["boolean"],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def fetch_mnist(
    *,
    subset="train",
    path=None,
    source="openml",
    data_home=None,
    download_if_missing=True,
    return_X_y=False,
    as_frame=False,
):
    """Load the MNIST digits (28x28 grey images of 0..9), as scikit-learn's loaders do.

    The data come from the first of these that exists:

    1. ``path``, or else the environment variable ``SK_MNIST_DATA``: a local
       ``mnist.npz`` in Keras's layout, or a folder with the four original IDX
       files (gzipped or not);
    2. the cache in ``data_home``, written by an earlier download;
    3. a download from ``source``, checked against its published checksum and
       then cached.

    Whatever the source, the arrays are checked (shapes, dtypes, pixels in
    0..255, labels in 0..9, matching counts) and labels are returned as
    integers 0..9.

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        The 60,000 training images, the 10,000 test images, or all 70,000
        (training first, as OpenML orders them).
    path : str or path-like, default=None
        A local ``mnist.npz`` or IDX folder. Overrides ``SK_MNIST_DATA``.
    source : {"openml", "keras"}, default="openml"
        Where to download from when there is no local copy: OpenML's
        ``mnist_784`` (version 1) or Keras's ``mnist.npz``.
    data_home : str or path-like, default=None
        Folder for the cache; by default scikit-learn's
        :func:`~sklearn.datasets.get_data_home`. The cache lives in its
        ``sk_mnist`` sub-folder.
    download_if_missing : bool, default=True
        If False, raise instead of downloading when there is no local copy.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        Return ``data`` as a DataFrame with OpenML's columns ``pixel1`` ..
        ``pixel784`` and ``target`` as a Series named ``class``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : ndarray of shape (n_samples, 784), uint8, or DataFrame
            The flattened images, pixels 0..255 (row-major, as OpenML's).
        images : ndarray of shape (n_samples, 28, 28), uint8
            The same pixels as images.
        target : ndarray of shape (n_samples,), int64, or Series
            The digit each image shows.
        frame : DataFrame or None
            ``data`` and ``target`` together when ``as_frame=True``.
        feature_names : list of str
            ``pixel1`` .. ``pixel784``.
        target_names : ndarray of shape (10,)
            The classes, 0 .. 9.
        filename : str
            The file the data were read from.
        DESCR : str
            The description of the data set.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    DataFileError
        A local or cached file is missing, corrupt or not MNIST.
    DownloadError
        There was no local copy and the download failed; the message says how
        to use a local file.

    See Also
    --------
    sklearn.datasets.fetch_openml : The generic OpenML loader used underneath.
    MNISTFlattener : Turns ``images`` or ``data`` into network-ready features.

    Examples
    --------
    >>> from sk_mnist import fetch_mnist
    >>> mnist = fetch_mnist(subset="test")  # doctest: +SKIP
    >>> mnist.data.shape, mnist.images.shape, mnist.target[:3]  # doctest: +SKIP
    ((10000, 784), (10000, 28, 28), array([7, 2, 1]))
    """
    parts = _SUBSET_PARTS[subset]
    arrays, filename = _load_arrays(parts, path, source, data_home, download_if_missing)
    images = _join([arrays[f"x_{part}"] for part in parts])
    target = _join([arrays[f"y_{part}"] for part in parts])
    data = images.reshape(len(images), -1)
    names = pixel_names(784)
    frame = None
    if as_frame:
        import pandas as pd

        data = pd.DataFrame(data, columns=names, copy=False)
        target = pd.Series(target, name="class")
        frame = pd.concat([data, target], axis=1)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        images=images,
        target=target,
        frame=frame,
        feature_names=names,
        target_names=np.arange(10),
        filename=filename,
        DESCR=_descr(),
    )


def _load_arrays(parts, path, source, data_home, download_if_missing):
    """Find the data (local, cache, download); return the arrays and their file."""
    if path is not None and not os.fspath(path):
        raise ValueError(
            "path is empty; give the path of a Keras-layout mnist.npz or of a "
            f"folder of IDX files, or None to use ${ENV_VAR}, the cache or a "
            "download."
        )
    if path is None and os.environ.get(ENV_VAR):
        path = os.environ[ENV_VAR]
        if not Path(os.path.expanduser(path)).exists():
            raise DataFileError(
                f"{ENV_VAR}={path!r} does not exist. Point it at a Keras-layout "
                "mnist.npz or a folder with the four MNIST IDX files, or unset it."
            )
    if path is not None:
        return read_local(path, parts), str(path)

    folder = _download.cache_dir(data_home)
    cached = _download.read_cache(folder, parts)
    if cached is not None:
        return cached, str(folder / _download.CACHE_NAME)
    if not download_if_missing:
        raise DownloadError(
            f"MNIST is not in the cache {folder} and download_if_missing=False. "
            + _download._OFFLINE_HINT
        )
    arrays = _download.download(source, folder)
    _download.write_cache(folder, arrays)
    return {key: arrays[key] for key in arrays if key.split("_")[1] in parts}, str(
        folder / _download.CACHE_NAME
    )


def _join(arrays):
    """Concatenate the parts; a single part is returned without a copy."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _descr():
    return resources.files("sk_mnist.datasets").joinpath("descr/mnist.rst").read_text()
