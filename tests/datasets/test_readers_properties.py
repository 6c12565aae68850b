"""The IDX and npz readers over generated and mutated headers."""

from __future__ import annotations

import gzip
import io
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import budget, idx_files

from sk_mnist.datasets._readers import read_idx, read_npz
from sk_mnist.exceptions import DataFileError

#: Whatever a header declares, reading takes at most this much beyond the file.
_MEMORY_BOUND = 8 * 1024**2


def _read_within_bound(read, path, extra):
    """``read(path)``, or None after a DataFileError naming the file; the
    memory it took bounded by ``_MEMORY_BOUND`` plus ``extra`` bytes."""
    tracemalloc.start()
    try:
        return read(path)
    except DataFileError as exc:
        assert str(path) in str(exc)
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < _MEMORY_BOUND + extra


@settings(max_examples=budget(300))
@given(case=idx_files())
def test_read_idx_gives_the_declared_array_or_a_data_file_error(case):
    ndim, content, gzipped = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file-idx-ubyte"
        path.write_bytes(gzip.compress(content) if gzipped else content)
        array = _read_within_bound(lambda p: read_idx(p, ndim=ndim), path, len(content))
    if array is None:
        return
    dims = np.frombuffer(content[4 : 4 + 4 * ndim], ">u4")
    assert array.dtype == np.uint8
    assert array.shape == tuple(int(d) for d in dims)
    assert array.tobytes() == content[4 + 4 * ndim :]


_ARRAYS = st.dictionaries(
    st.sampled_from(["x_train", "y_train", "x_test", "y_test", "other"]),
    hnp.arrays(
        st.sampled_from([np.uint8, np.int64, np.float32, np.int16]),
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=30),
    ),
    min_size=1,
)


def _with_header(data, name, header):
    """``data`` (an .npz) with the .npy header of ``name`` replaced."""
    members = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            members[info.filename] = archive.read(info)
    content = members[f"{name}.npy"]
    end = content.index(b"\n") + 1
    members[f"{name}.npy"] = header + content[end:]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for member, value in members.items():
            archive.writestr(member, value)
    return out.getvalue()


@settings(max_examples=budget(150))
@given(arrays=_ARRAYS, mutate=st.booleans(), data=st.data())
def test_read_npz_gives_checked_arrays_or_a_data_file_error(arrays, mutate, data):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    content = buffer.getvalue()
    if mutate:
        name = data.draw(st.sampled_from(sorted(arrays)))
        shape = data.draw(st.lists(st.integers(0, 2**40), max_size=3))
        descr = data.draw(st.sampled_from(["|u1", "<i8", "<U1000000", "|O", "<f4"]))
        header = (
            b"\x93NUMPY\x01\x00"
            + len(
                text := f"{{'descr': '{descr}', 'fortran_order': False, "
                f"'shape': {tuple(shape)}, }}\n".encode()
            ).to_bytes(2, "little")
            + text
        )
        content = _with_header(content, name, header)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mnist.npz"
        path.write_bytes(content)
        checked = _read_within_bound(read_npz, path, 4 * len(content))
    if checked is None:
        return
    for part in ("train", "test"):
        x, y = checked[f"x_{part}"], checked[f"y_{part}"]
        assert x.dtype == np.uint8
        assert x.shape[1:] == (28, 28)
        assert y.dtype == np.int64
        assert y.shape == (len(x),)
        assert ((y >= 0) & (y <= 9)).all()
