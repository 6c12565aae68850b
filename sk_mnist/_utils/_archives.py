"""Zip archives from files a user did not write: sizes checked before reading.

Both formats sk-mnist reads are zip archives (skops files, and Keras's
``.keras`` networks inside them), and both libraries read members whole.
:mod:`zipfile` stops inflating a member at the size its header declares,
so bounding the declared sizes bounds the memory; these checks do that
before skops, numpy or Keras allocate anything.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib

import numpy as np

from ..exceptions import UnsafeModelError

#: A member may inflate to this much whatever its compressed size...
FREE_INFLATION = 16 * 1024**2
#: ...and beyond it to at most this multiple of its compressed size. Weights
#: and JSON compress far less; a decompression bomb far more.
MAX_RATIO = 100
#: No deflate stream inflates more than about 1032 times its size: the bound
#: for data whose arrays may legitimately be mostly zeros.
DEFLATE_RATIO = 1100

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError)


def open_zip(
    source, origin, *, expected="a zip archive", max_ratio=MAX_RATIO
) -> zipfile.ZipFile:
    """``source`` (bytes or a path) as a zip archive, members' sizes checked.

    ``expected`` describes the file in the error for what is not a zip;
    ``max_ratio`` bounds how many times its compressed size a member larger
    than ``FREE_INFLATION`` may inflate to.
    """
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    try:
        archive = zipfile.ZipFile(source)
        infos = archive.infolist()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise UnsafeModelError(
            f"{origin} is not {expected} ({type(exc).__name__}: {exc})."
        ) from None
    for info in infos:
        if info.flag_bits & 0x1:
            raise UnsafeModelError(
                f"{origin}: the member {info.filename} is encrypted."
            )
        allowed = max(FREE_INFLATION, max_ratio * info.compress_size)
        if info.file_size > allowed:
            raise UnsafeModelError(
                f"{origin}: the member {info.filename} would inflate to "
                f"{info.file_size} bytes from {info.compress_size}; refusing a "
                f"likely decompression bomb."
            )
    _check_checksums(archive, origin)
    return archive


def _check_checksums(archive: zipfile.ZipFile, origin) -> None:
    """Read every member through once, in chunks: zipfile checks its CRC-32.

    A flipped byte, a member shorter or longer than its header says, or a
    damaged deflate stream is found here, as one clear error, instead of
    inside whichever library reads that member later.
    """
    for info in archive.infolist():
        try:
            with archive.open(info) as member:
                while member.read(1 << 20):
                    pass
        except (*_READ_ERRORS, ValueError, RuntimeError) as exc:
            # RuntimeError: zipfile's word for an encrypted member.
            archive.close()
            raise UnsafeModelError(
                f"{origin}: the member {info.filename} is damaged or truncated "
                f"({type(exc).__name__}: {exc})."
            ) from None


def read_member(archive: zipfile.ZipFile, name: str, origin) -> bytes:
    """The bytes of one member; a damaged or missing member is a clear error."""
    try:
        return archive.read(name)
    except KeyError:
        raise UnsafeModelError(f"{origin}: the archive has no {name}.") from None
    except _READ_ERRORS as exc:
        raise UnsafeModelError(
            f"{origin}: the member {name} is damaged or truncated ({exc})."
        ) from None


def read_json(archive: zipfile.ZipFile, name: str, origin, *, limit: int):
    """Parse a JSON member of at most ``limit`` bytes, however deeply nested."""
    if archive.getinfo(name).file_size > limit:
        raise UnsafeModelError(
            f"{origin}: {name} is larger than {limit} bytes, more than sk-mnist "
            f"ever writes."
        )
    try:
        return json.loads(read_member(archive, name, origin))
    except (ValueError, RecursionError) as exc:
        # Python's parser recurses once per nesting level.
        raise UnsafeModelError(
            f"{origin}: {name} is not valid JSON or is nested too deeply "
            f"({type(exc).__name__})."
        ) from None


def check_npy_members(archive: zipfile.ZipFile, origin) -> None:
    """Check every ``.npy`` member's header against the bytes that follow it.

    numpy allocates the array its header declares before reading the data,
    so a header declaring a huge shape or string width would allocate that
    much; here the declared size must equal the member's actual size.
    """
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            continue
        try:
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(member, max_header_size=10_000)
                header_size = member.tell()
        except (ValueError, *_READ_ERRORS) as exc:
            raise UnsafeModelError(
                f"{origin}: {info.filename} is not a valid .npy array ({exc})."
            ) from None
        if dtype.hasobject:
            raise UnsafeModelError(
                f"{origin}: {info.filename} holds object arrays (Python objects), "
                f"which are refused."
            )
        declared = math.prod(shape) * dtype.itemsize
        if declared != info.file_size - header_size:
            raise UnsafeModelError(
                f"{origin}: {info.filename} declares shape {shape} of {dtype} "
                f"({declared} bytes) but holds {info.file_size - header_size}."
            )
