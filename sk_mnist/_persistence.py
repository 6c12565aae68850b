"""Saving and loading fitted estimators with skops, without pickle.

skops (:mod:`skops.io`) stores any scikit-learn estimator as a zip archive of
JSON and arrays and refuses, at load, every type the caller has not trusted.
sk-mnist's estimators describe their own state (``__getstate__``), which
skops stores as it stores any object; the network inside the classifier's
state is its ``.keras`` archive, loaded with Keras's ``safe_mode=True``.
This module only bounds what a file may make the loader read and says which
types sk-mnist trusts.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from ._utils import _archives
from ._utils._files import atomic_write, read_bounded
from .exceptions import UnsafeModelError

#: The types sk-mnist adds to what skops trusts by default: its estimators.
#: Pass these names to ``skops.io.load(path, trusted=...)`` to load a file
#: without sk-mnist's own :func:`load`.
TRUSTED_TYPES = (
    "sk_mnist._classifier.KerasMLPClassifier",
    "sk_mnist._flattener.MNISTFlattener",
)
# No MNIST pipeline comes near these; they bound the work of a hostile file.
_MAX_FILE_BYTES = 2 * 1024**3
_MAX_SCHEMA_BYTES = 64 * 1024**2
_SCHEMA = "schema.json"
_OLD_MANIFEST = "estimator.json"


def save(estimator, path) -> Path:
    """Save a fitted estimator or pipeline to a skops file, without pickle.

    Any estimator made of scikit-learn's and sk-mnist's estimators can be
    saved: a Pipeline, ColumnTransformer or FeatureUnion holding them, a
    search's ``best_estimator_``, or one estimator alone.

    Parameters
    ----------
    estimator : estimator
        Fitted.
    path : str or path-like
        The file to write (``.skops`` by convention). It is written to a
        temporary file beside it, fsynced and renamed into place, so a
        failure leaves no partial file; an existing file keeps its mode.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The estimator is not fitted.

    See Also
    --------
    load : Read the file back.
    skops.io.dump : What writes the file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sk_mnist import MNISTFlattener, load, save
    >>> flattener = MNISTFlattener().fit(np.zeros((2, 28, 28), dtype=np.uint8))
    >>> path = save(flattener, os.path.join(tempfile.mkdtemp(), "f.skops"))
    >>> load(path).image_shape_
    (28, 28)
    """
    import skops.io
    from sklearn.utils.validation import check_is_fitted

    from ._callbacks import callbacks_set_aside

    check_is_fitted(estimator)
    # What set_callbacks added watches fits and is no part of the model.
    with callbacks_set_aside(estimator):
        data = skops.io.dumps(estimator)
    with atomic_write(path) as file:
        file.write(data)
    return Path(path)


def load(path, trusted=None):
    """Load an estimator saved by :func:`save`, running no code from the file.

    Parameters
    ----------
    path : str or path-like
        A skops file.
    trusted : list of str, default=None
        Types to trust beyond skops's defaults and sk-mnist's estimators,
        by their full names (``"mymodule.MyTransformer"``); see
        :func:`skops.io.get_untrusted_types`.

    Returns
    -------
    estimator : estimator
        Fitted, predicting as the saved one did.

    Raises
    ------
    UnsafeModelError
        The file holds types nobody trusted (listed in the message), is not a
        skops file (a pickle, an older sk-mnist format), is damaged, declares
        more data than it holds, or holds a network that does not match its
        weights or would run code to load.
    FileNotFoundError, IsADirectoryError
        There is no such file, or it is a folder.
    ValueError
        It is not a regular file (a FIFO or device), or is implausibly large.
    TypeError
        ``trusted`` is not a list of type names (a lone string, ``True``).

    See Also
    --------
    save : Write the file.
    skops.io.load : What reads the file; ``skops.io.load(path,
        trusted=[*sk_mnist.TRUSTED_TYPES])`` reads it too.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sk_mnist import MNISTFlattener, load, save
    >>> path = os.path.join(tempfile.mkdtemp(), "flattener.skops")
    >>> _ = save(MNISTFlattener(scale=16.0).fit(np.zeros((1, 8, 8))), path)
    >>> loaded = load(path)
    >>> loaded.scale_, loaded.image_shape_
    (16.0, (8, 8))
    """
    import skops.io

    trusted = _check_trusted(trusted)
    data = read_bounded(path, _MAX_FILE_BYTES, what="model file")
    _check_archive(data, path)
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
        refused = sorted(set(untrusted) - set(TRUSTED_TYPES) - set(trusted))
        if refused:
            raise UnsafeModelError(
                f"{path} holds types that are not trusted: {refused}. Load it with "
                f"trusted=[...] naming them only if you trust where the file came "
                f"from."
            )
        return skops.io.loads(data, trusted=untrusted)
    except UnsafeModelError:
        raise
    except _LOAD_ERRORS as exc:
        raise UnsafeModelError(
            f"{path} is damaged or was edited ({type(exc).__name__}: {str(exc)[:300]})."
        ) from exc


# What skops, numpy and the estimators' own __setstate__ raise for a file
# that passed the archive checks but holds edited or damaged state.
_LOAD_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    RecursionError,
    OverflowError,
    EOFError,
    RuntimeError,
    zipfile.BadZipFile,
    zlib.error,
)


def _check_trusted(trusted):
    """``trusted`` as a list of type names: None, or a list or tuple of str."""
    if trusted is None:
        return []
    if isinstance(trusted, list | tuple) and all(isinstance(t, str) for t in trusted):
        return list(trusted)
    raise TypeError(
        f"trusted must be None or a list of type names such as "
        f"['mymodule.MyTransformer'], got {trusted!r}."
    )


def _check_archive(data, path):
    """Refuse what is not a skops file, or declares more than it holds."""
    archive = _archives.open_zip(data, path, expected=_what_it_is(data))
    with archive:
        names = set(archive.namelist())
        if _OLD_MANIFEST in names and _SCHEMA not in names:
            raise UnsafeModelError(
                f"{path} is in the older sk-mnist format (.skmnist, a zip with "
                f"{_OLD_MANIFEST}), which this version no longer reads; train "
                f"and save the model again (it is now a skops file)."
            )
        if _SCHEMA not in names:
            raise UnsafeModelError(f"{path} is not a skops model file: no {_SCHEMA}.")
        _archives.read_json(archive, _SCHEMA, path, limit=_MAX_SCHEMA_BYTES)
        _archives.check_npy_members(archive, path)


def _what_it_is(data):
    """What to call a file that is not a zip archive, from its first bytes."""
    if data[:1] == b"\x80":  # pickle protocols 2 and newer start so
        return (
            "a skops model file (it starts as a pickle does: a pickle or joblib "
            "file is refused, since loading it could run code)"
        )
    if data[:2] == b"PK":
        return "a skops model file (its zip archive is damaged or truncated)"
    return "a skops model file"


__all__ = ["TRUSTED_TYPES", "load", "save"]
