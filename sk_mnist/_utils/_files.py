"""Files: written atomically, and read only when they are what they claim.

Python has no standard "write this file atomically" helper (``tempfile``
gives the temporary file, ``os.replace`` the rename, but not the fsyncs, the
file mode a user expects, or the clean-up), so it is written once here and
used by the MNIST cache, :func:`sk_mnist.save` and the command line.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

# A short fixed prefix keeps the temporary name within NAME_MAX (255 bytes)
# even when the target's own name is near the limit.
_TMP_PREFIX = ".skm-"


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; rename it into place on success.

    The data are flushed and fsynced before the rename, and the folder after
    it, so a crash leaves either the old file or the new one, never a part.
    A new file gets the mode ``open()`` would give it (0666 less the umask);
    a file that is replaced keeps its mode. If the block raises, the
    temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    mode : {"wb", "w"}, default="wb"
        Binary or text.

    Yields
    ------
    file
        The open temporary file.
    """
    path = Path(path)
    folder = path.parent
    check_replaceable(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_TMP_PREFIX, suffix=".part")
    except OSError as exc:
        raise _about(exc, path) from None
    try:
        with os.fdopen(fd, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # Name the file the user asked for, not the temporary one.
        raise _about(exc, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(folder)


def check_replaceable(path) -> None:
    """Refuse to write ``path`` where something other than a regular file is.

    A FIFO, socket or device node (``/dev/null``) would otherwise be
    replaced by a regular file, and a folder cannot be.
    """
    try:
        check_regular_file(path, what="file name")
    except FileNotFoundError:
        return
    except ValueError:
        raise ValueError(
            f"{path} exists and is not a regular file (a FIFO, socket or device); "
            f"refusing to replace it."
        ) from None


def _about(exc, path):
    """``exc`` as an error about ``path`` (its own message, without temp names)."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def _mode_for(path):
    """The mode of the file being replaced, else the umask's default."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def fsync_folder(folder):
    # Makes the rename itself durable; not every file system allows it.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_regular_file(path, *, what="file") -> Path:
    """``path`` as a Path, if it is a regular file; else a clear error.

    A FIFO would block ``open()`` forever and a device can be endless, so
    anything that is not a regular file is refused before it is opened.

    Raises
    ------
    FileNotFoundError
        Nothing is there.
    IsADirectoryError
        It is a folder.
    ValueError
        It is a FIFO, socket or device.
    """
    path = Path(os.path.expanduser(os.fspath(path)))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such {what}.") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a folder; expected a {what}.")
    if not stat.S_ISREG(mode):
        raise ValueError(
            f"{path} is not a regular file (a FIFO, socket or device); expected "
            f"a {what}."
        )
    return path


def read_bounded(path, limit, *, what="file") -> bytes:
    """The bytes of the regular file ``path``, refusing more than ``limit``.

    The file's size is taken from the open file before reading, so memory
    follows the file (a 260 KB model takes 260 KB, whatever ``limit`` is),
    and a file that grows while it is read is refused.
    """
    path = check_regular_file(path, what=what)
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise ValueError(
                f"{path} is {size} bytes, larger than any {what} sk-mnist writes "
                f"({limit} bytes at most)."
            )
        data = file.read(size + 1)
    if len(data) != size:
        raise ValueError(f"{path} changed size while it was read; try again.")
    return data
