"""The ``--out`` folder of train and search: checked first, written as one set.

A run's outputs (model, model card, metrics, pictures) describe one model,
so they are replaced together or not at all. They are written into a fresh
hidden folder inside ``--out`` (the same file system, so moving them is a
rename), then moved into place in one short step during which Ctrl-C and
SIGTERM wait; outputs of an earlier run that this one does not write are
removed in that step too. A run stopped before that step leaves the folder
as it was, and its hidden folder is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .._utils._files import fsync_folder
from . import _signals
from ._common import MODEL_FILE, CommandError

_STAGING_PREFIX = ".sk-mnist-run-"


class OutputFolder:
    """``--out``, checked before any work: a folder sk-mnist may write.

    Parameters
    ----------
    path : str
        The ``--out`` option.
    names : list of str
        Every file this command may write there.

    Raises
    ------
    CommandError
        An empty path (an unset shell variable), a file, an output name
        taken by a folder or by something that is not a regular file, files
        of these names that sk-mnist did not write (a README.md with no
        model.skops beside it), or a folder that cannot be written.
    """

    def __init__(self, path: str, names):
        if not str(path).strip():
            raise CommandError(
                "--out is empty (an unset shell variable?); give the output folder"
            )
        self.path, self.names = Path(path), list(names)
        self._check()

    def _check(self):
        out = self.path
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} is a file; give a folder")
        taken = []
        for name in self.names:
            target = out / name
            if target.is_dir():
                raise CommandError(f"--out {out}: {target} is a folder")
            if target.exists() and not target.is_file():
                raise CommandError(
                    f"--out {out}: {target} is not a regular file (a FIFO, socket "
                    f"or device); refusing to replace it"
                )
            if target.is_file():
                taken.append(name)
        if taken and not (out / MODEL_FILE).is_file():
            raise CommandError(
                f"--out {out} already holds {', '.join(taken)}, which sk-mnist did "
                f"not write (no {MODEL_FILE} beside them); choose a new or empty "
                f"folder"
            )
        # Writing is tried (a temporary file), then undone: the folder is made
        # only when there is something to write.
        with self._made() as folder:
            try:
                tempfile.TemporaryFile(dir=folder).close()
            except OSError as exc:
                raise CommandError(
                    f"--out {out}: cannot write there ({exc.strerror})"
                ) from None

    @contextlib.contextmanager
    def _made(self):
        """The folder, created for the block; what the block created is removed
        again unless it holds something."""
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(
                f"--out {self.path}: cannot write there ({exc.strerror})"
            ) from None
        try:
            yield self.path
        finally:
            for folder in missing:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()

    @contextlib.contextmanager
    def writing(self):
        """A staging folder to write the outputs in; moved into place on success.

        Yields
        ------
        pathlib.Path
            The staging folder. Whatever the block writes there under one of
            ``names`` replaces the file of that name in ``--out``.
        """
        with self._made() as out:
            staging = Path(tempfile.mkdtemp(dir=out, prefix=_STAGING_PREFIX))
            try:
                yield staging
                self._commit(staging)
            except KeyboardInterrupt:
                raise KeyboardInterrupt(
                    f"{out} was left as it was; none of this run's files were kept"
                ) from None
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, staging):
        out = self.path
        with _signals.deferred():
            for name in self.names:
                new, old = staging / name, out / name
                if new.exists():
                    with contextlib.suppress(FileNotFoundError):
                        os.chmod(new, stat.S_IMODE(os.stat(old).st_mode))
                    os.replace(new, old)
                elif old.is_file():  # from an earlier run: not part of this set
                    old.unlink()
            fsync_folder(out)
