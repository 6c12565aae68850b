"""Readers for MNIST files on disk: Keras's ``mnist.npz`` and the original IDX files.

Both return a dict of the four arrays of Keras's layout (``x_train``, ``y_train``,
``x_test``, ``y_test``), restricted to the parts asked for, and check them with
:func:`check_mnist_arrays` so that every source is held to the same rules.
"""

from __future__ import annotations

import gzip
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._utils import _archives
from .._utils._files import check_regular_file
from ..exceptions import DataFileError, UnsafeModelError

IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
CANONICAL_COUNTS = {"train": 60_000, "test": 10_000}

# The four files of the original distribution. Some mirrors write a dot
# instead of the last dash ("train-images.idx3-ubyte"); both are accepted.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def keys_for(parts):
    """The array names that hold the given parts ("train", "test")."""
    return [f"{xy}_{part}" for part in parts for xy in ("x", "y")]


def check_mnist_arrays(arrays, origin, *, canonical=False):
    """Check arrays in Keras's MNIST layout; return them as uint8 / int64.

    Parameters
    ----------
    arrays : dict of str to ndarray
        Holds ``x_<part>`` and ``y_<part>`` for each part read.
    origin : str
        Where the arrays came from, for error messages (a file name).
    canonical : bool, default=False
        Also require the 60,000 training and 10,000 test images of the
        published data set (downloads and the cache must have them; files a
        user points at may be any size).

    Returns
    -------
    arrays : dict of str to ndarray
        Images as C-contiguous uint8 ``(n, 28, 28)``, labels as int64 ``(n,)``.

    Raises
    ------
    DataFileError
        Naming ``origin``, the array and what was wrong with it.
    """
    checked = {}
    parts = sorted({key.split("_", 1)[1] for key in arrays})
    for part in parts:
        x, y = arrays.get(f"x_{part}"), arrays.get(f"y_{part}")
        if x is None or y is None:
            missing = f"x_{part}" if x is None else f"y_{part}"
            raise DataFileError(f"{origin}: the array {missing!r} is missing.")
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
            raise DataFileError(
                f"{origin}: x_{part} must hold 28x28 images, shape (n, 28, 28); "
                f"got shape {x.shape}."
            )
        if y.ndim != 1:
            raise DataFileError(
                f"{origin}: y_{part} must be a 1-D array of labels; got shape "
                f"{y.shape}."
            )
        if x.shape[0] != y.shape[0]:
            raise DataFileError(
                f"{origin}: x_{part} has {x.shape[0]} images but y_{part} has "
                f"{y.shape[0]} labels."
            )
        if x.shape[0] == 0:
            raise DataFileError(f"{origin}: x_{part} holds no images.")
        if canonical and x.shape[0] != CANONICAL_COUNTS[part]:
            raise DataFileError(
                f"{origin}: MNIST's {part} set has {CANONICAL_COUNTS[part]} images; "
                f"this file has {x.shape[0]}. It is truncated or not MNIST."
            )
        for name, arr, high in ((f"x_{part}", x, 255), (f"y_{part}", y, 9)):
            if arr.dtype.kind not in "iu":
                raise DataFileError(
                    f"{origin}: {name} must hold integers; got dtype {arr.dtype}."
                )
            # uint8 images cannot leave 0..255, so skip a pass over 47 MB.
            if not (arr.dtype == np.uint8 and high == 255):
                low_seen, high_seen = int(arr.min()), int(arr.max())
                if low_seen < 0 or high_seen > high:
                    raise DataFileError(
                        f"{origin}: {name} values must lie in 0..{high}; got values "
                        f"from {low_seen} to {high_seen}."
                    )
        checked[f"x_{part}"] = np.ascontiguousarray(x, dtype=np.uint8)
        checked[f"y_{part}"] = np.ascontiguousarray(y, dtype=np.int64)
    return checked


def read_npz(path, parts=("train", "test")):
    """Read the given parts of an ``mnist.npz`` in Keras's layout.

    Never unpickles: object arrays are refused with a clear error.
    """
    path = Path(path)
    wanted = keys_for(parts)
    _check_npz_magic(path)
    _check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover
                raise DataFileError(f"{path}: not an .npz archive.")
            missing = [key for key in wanted if key not in npz.files]
            if missing:
                raise DataFileError(
                    f"{path}: expected the arrays {wanted} of Keras's mnist.npz; "
                    f"missing {missing} (the file has {sorted(npz.files)})."
                )
            arrays = {key: npz[key] for key in wanted}
    except DataFileError:
        raise
    except FileNotFoundError as exc:
        raise DataFileError(f"{path}: no such file.") from exc
    except AttributeError as exc:
        # np.load returns a bare ndarray for a .npy file, which has no context
        # manager protocol on old numpy and no ``files``.
        raise DataFileError(
            f"{path}: expected an .npz archive of Keras's mnist.npz layout; got a "
            "single array."
        ) from exc
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataFileError(
                f"{path}: holds object arrays or pickled data, which sk-mnist never "
                "loads (they can run code). Save plain integer arrays instead."
            ) from exc
        raise DataFileError(f"{path}: not a readable .npz archive ({exc}).") from exc
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise DataFileError(
            f"{path}: corrupt or truncated .npz archive ({type(exc).__name__}: {exc})."
        ) from exc
    if any(arr.dtype.hasobject for arr in arrays.values()):  # pragma: no cover
        raise DataFileError(f"{path}: holds object arrays, which are refused.")
    return check_mnist_arrays(arrays, str(path))


def _check_npz_magic(path):
    """Name what a file that is neither a zip nor a .npy array is not."""
    try:
        with open(path, "rb") as file:
            magic = file.read(6)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file.") from None
    if not (magic.startswith(b"PK") or magic == b"\x93NUMPY"):
        raise DataFileError(
            f"{path}: not an .npz archive (it starts with {magic!r}, not a zip "
            "header); expected a Keras-layout mnist.npz."
        )


def _check_npz_sizes(path):
    """Refuse members that inflate, or arrays that declare, more than they hold.

    numpy allocates what an array's header declares before reading it.
    """
    if not zipfile.is_zipfile(path):
        return  # np.load says what the file is instead
    try:
        with _archives.open_zip(
            path, path, max_ratio=_archives.DEFLATE_RATIO
        ) as archive:
            _archives.check_npy_members(archive, path)
    except UnsafeModelError as exc:
        raise DataFileError(str(exc)) from None


def _find_idx_file(folder, stem):
    candidates = [stem, stem.replace("-idx", ".idx")]
    for name in candidates:
        for suffix in ("", ".gz"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    raise DataFileError(
        f"{folder}: no IDX file {stem} (or {stem}.gz). An MNIST folder holds "
        f"{', '.join(IDX_FILES.values())}, gzipped or not."
    )


def read_idx(path, *, ndim):
    """Read one IDX file of unsigned bytes (gzipped or not) into an array.

    The header is read first and bounds everything after it: exactly the
    bytes it declares are read (in chunks, so a lying header allocates
    nothing), fewer is a truncated file and more is trailing data. A gzipped
    file may not declare more than deflate can hold for its size.
    """
    path = _regular_file(path)
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == _GZIP_MAGIC
        with (gzip.open if gzipped else open)(path, "rb") as f:
            shape = _idx_header(f, path, ndim)
            declared = math.prod(shape)
            limit = _archives.DEFLATE_RATIO * path.stat().st_size
            if declared > limit:
                raise DataFileError(
                    f"{path}: the IDX header declares shape {shape} ({declared} "
                    f"bytes), more than a file of {path.stat().st_size} bytes can "
                    "hold; its header lies."
                )
            content = _read_exactly(f, declared)
            trailing = f.read(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(
            f"{path}: cannot be read ({type(exc).__name__}: {exc}); the file is "
            "corrupt or truncated."
        ) from exc
    if len(content) != declared or trailing:
        got = f"{len(content)}" if len(content) != declared else "more"
        raise DataFileError(
            f"{path}: the IDX header promises shape {shape} ({declared} bytes of "
            f"data) but the file holds {got}; it is truncated or its header lies."
        )
    return np.frombuffer(content, np.uint8).reshape(shape)


_CHUNK = 16 * 1024**2


def _idx_header(f, path, ndim):
    head = f.read(4)
    if len(head) < 4:
        raise DataFileError(f"{path}: too short to be an IDX file ({len(head)} bytes).")
    zero0, zero1, dtype_code, file_ndim = head
    if zero0 != 0 or zero1 != 0:
        raise DataFileError(f"{path}: not an IDX file (magic bytes {head.hex()}).")
    if dtype_code != _IDX_UBYTE:
        raise DataFileError(
            f"{path}: IDX data type 0x{dtype_code:02x}; MNIST files hold unsigned "
            "bytes (0x08)."
        )
    if file_ndim != ndim:
        raise DataFileError(
            f"{path}: the IDX header gives {file_ndim} dimensions; expected {ndim}."
        )
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataFileError(f"{path}: the IDX header is truncated.")
    return tuple(int(d) for d in np.frombuffer(dims, ">u4"))


def _read_exactly(f, n):
    """Up to ``n`` bytes, read in chunks so that memory follows the content."""
    chunks, left = [], n
    while left:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _regular_file(path):
    """``path`` if it is a regular file; a FIFO or device would block or not end."""
    try:
        return check_regular_file(path, what="MNIST file")
    except (OSError, ValueError) as exc:
        raise DataFileError(str(exc)) from None


def read_idx_folder(folder, parts=("train", "test")):
    """Read the given parts from a folder with MNIST's four IDX files."""
    folder = Path(folder)
    arrays = {}
    for key in keys_for(parts):
        path = _find_idx_file(folder, IDX_FILES[key])
        arrays[key] = read_idx(path, ndim=3 if key.startswith("x") else 1)
    return check_mnist_arrays(arrays, str(folder))


def read_local(path, parts=("train", "test")):
    """Read a local ``mnist.npz`` file or a folder of IDX files."""
    path = Path(os.path.expanduser(os.fspath(path)))
    if path.is_dir():
        return read_idx_folder(path, parts)
    if not path.exists():
        raise DataFileError(
            f"{path}: no such file or folder. Give a Keras-layout mnist.npz or a "
            "folder holding the four MNIST IDX files."
        )
    return read_npz(_regular_file(path), parts)
