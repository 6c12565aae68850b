"""Saving and loading fitted sk-mnist estimators and Pipelines without pickle.

A saved file is a zip archive holding ``estimator.json`` (the scikit-learn
parameters and fitted attributes of every step, as JSON) and one Keras
``.keras`` archive per network. Loading parses JSON, rebuilds only the
classes listed in ``_CLASSES``, and loads networks with Keras's
``safe_mode=True``: nothing in a file can make Python run code. (joblib and
pickle, which scikit-learn recommends for trusted files, run code by design.)
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from ._classifier import KerasMLPClassifier
from ._flattener import MNISTFlattener
from ._version import __version__
from .exceptions import UnsafeModelError
from .utils._keras_io import (
    model_from_bytes,
    model_to_bytes,
    seed_states,
    set_seed_states,
)

FORMAT = "sk-mnist-model"
FORMAT_VERSION = 1
_MANIFEST = "estimator.json"
# Keep archives of plausible size: a 2x512 network is about 8 MB.
_MAX_MEMBER_BYTES = 2 * 1024**3

_FITTED = {
    "MNISTFlattener": ("image_shape_", "scale_", "n_features_in_", "feature_names_in_"),
    "KerasMLPClassifier": (
        "classes_",
        "n_features_in_",
        "feature_names_in_",
        "history_",
        "loss_curve_",
        "n_iter_",
        "validation_scores_",
        "best_validation_score_",
    ),
}
_CLASSES = {"MNISTFlattener": MNISTFlattener, "KerasMLPClassifier": KerasMLPClassifier}


def save(estimator, path) -> Path:
    """Save a fitted sk-mnist estimator or Pipeline to one file, without pickle.

    Parameters
    ----------
    estimator : Pipeline, MNISTFlattener or KerasMLPClassifier
        Fitted. A Pipeline may hold only these two estimators (and
        ``"passthrough"``).
    path : str or path-like
        The file to write (``.skmnist`` by convention). It is written to a
        temporary file first and renamed into place, so a failure never leaves
        a partial file.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        For an estimator this format cannot hold.
    sklearn.exceptions.NotFittedError
        For an unfitted estimator.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sk_mnist import MNISTFlattener, save, load
    >>> flattener = MNISTFlattener().fit(np.zeros((2, 28, 28), dtype=np.uint8))
    >>> path = save(flattener, os.path.join(tempfile.mkdtemp(), "f.skmnist"))
    >>> load(path).image_shape_
    (28, 28)
    """
    models: dict[str, bytes] = {}
    tree = _encode(estimator, models)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sk_mnist_version": __version__,
        "estimator": tree,
    }
    path = Path(path)
    # Not a `with` block: the file must outlive it to be renamed into place.
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115
        dir=path.parent if str(path.parent) else ".",
        prefix=f".{path.name}-",
        suffix=".part",
        delete=False,
    )
    try:
        with tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(_MANIFEST, json.dumps(manifest, indent=1))
            for name, content in models.items():
                archive.writestr(name, content, compress_type=zipfile.ZIP_STORED)
        os.replace(tmp.name, path)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    return path


def load(path):
    """Load an estimator saved by :func:`save`, running no code from the file.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    estimator : Pipeline, MNISTFlattener or KerasMLPClassifier
        Fitted, predicting exactly as the saved one did.

    Raises
    ------
    UnsafeModelError
        The file is not an sk-mnist model (for example a pickle), is damaged,
        or holds a network that would run code to load (a ``Lambda`` layer).
    FileNotFoundError
        There is no such file.

    See Also
    --------
    save : Write the file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sk_mnist import MNISTFlattener, load, save
    >>> path = os.path.join(tempfile.mkdtemp(), "flattener.skmnist")
    >>> _ = save(MNISTFlattener(scale=16.0).fit(np.zeros((1, 8, 8))), path)
    >>> loaded = load(path)
    >>> loaded.scale_, loaded.image_shape_
    (16.0, (8, 8))
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file.")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UnsafeModelError(
            f"{path} is not an sk-mnist model file (not a zip archive; a pickle or "
            f"joblib file is refused because loading it could run code)."
        ) from None
    with archive:
        try:
            manifest = json.loads(_read_member(archive, _MANIFEST, path))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UnsafeModelError(
                f"{path}: {_MANIFEST} is not valid JSON ({exc})."
            ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise UnsafeModelError(f"{path} is not an sk-mnist model file.")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise UnsafeModelError(
                f"{path} has format version {manifest.get('format_version')!r}; this "
                f"sk-mnist ({__version__}) reads version {FORMAT_VERSION}."
            )
        try:
            return _decode(manifest["estimator"], archive, path)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, UnsafeModelError):
                raise
            raise UnsafeModelError(
                f"{path}: the saved estimator is damaged or was edited "
                f"({type(exc).__name__}: {exc})."
            ) from exc


# ------------------------------------------------------------------ encode
def _encode(estimator, models):
    if isinstance(estimator, Pipeline):
        return {
            "class": "Pipeline",
            "params": {"verbose": bool(estimator.verbose)},
            "steps": [
                [
                    name,
                    "passthrough"
                    if step in (None, "passthrough")
                    else _encode(step, models),
                ]
                for name, step in estimator.steps
            ],
        }
    name = type(estimator).__name__
    if name not in _CLASSES or type(estimator) is not _CLASSES[name]:
        raise TypeError(
            f"save() holds Pipelines of MNISTFlattener and KerasMLPClassifier; got "
            f"{type(estimator).__module__}.{type(estimator).__qualname__}. Use "
            f"joblib for other estimators (only for files you trust)."
        )
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    node = {
        "class": name,
        "params": {
            k: _to_json(v, k) for k, v in estimator.get_params(deep=False).items()
        },
        "fitted": {
            attr: _to_json(getattr(estimator, attr), attr)
            for attr in _FITTED[name]
            if hasattr(estimator, attr)
        },
    }
    if name == "KerasMLPClassifier":
        member = f"networks/{len(models)}.keras"
        models[member] = model_to_bytes(estimator.model_)
        node["network"] = member
        node["seed_states"] = seed_states(estimator.model_)
        rng = getattr(estimator, "_rng", None)
        if rng is not None:
            kind, keys, pos, has_gauss, gauss = rng.get_state()
            node["rng_state"] = [kind, keys.tolist(), pos, has_gauss, gauss]
    return node


def _to_json(value, name):
    """Plain JSON for parameters and fitted attributes; arrays keep their dtype."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUO" or (
            value.dtype.kind == "O"
            and not all(isinstance(v, str | int | float) for v in value.ravel())
        ):
            raise TypeError(f"{name}: cannot save an array of dtype {value.dtype}.")
        return {
            "__ndarray__": value.tolist(),
            "dtype": value.dtype.str if value.dtype.kind != "O" else "O",
        }
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v, name) for v in value]}
    if isinstance(value, list):
        return [_to_json(v, name) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            # class_weight may have integer keys: keep them as pairs.
            return {
                "__pairs__": [
                    [_to_json(k, name), _to_json(v, name)] for k, v in value.items()
                ]
            }
        return {k: _to_json(v, name) for k, v in value.items()}
    if hasattr(value, "get_config") and name == "optimizer":
        return {
            "__optimizer__": type(value).__name__,
            "config": _to_json(value.get_config(), name),
        }
    if name == "callbacks":
        raise TypeError(
            "callbacks cannot be saved (they are arbitrary Python objects); set "
            "callbacks=None on the estimator before saving."
        )
    if name == "random_state":
        raise TypeError(
            "random_state must be an int or None to be saved, not a RandomState."
        )
    raise TypeError(f"{name}: cannot save a value of type {type(value).__name__}.")


# ------------------------------------------------------------------ decode
def _from_json(value):
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        dtype = np.dtype(value["dtype"]) if value["dtype"] != "O" else object
        if np.dtype(dtype).kind not in "biufUO":
            raise ValueError(f"array dtype {value['dtype']!r} is not allowed")
        return np.array(value["__ndarray__"], dtype=dtype)
    if "__tuple__" in value:
        return tuple(_from_json(v) for v in value["__tuple__"])
    if "__pairs__" in value:
        return {_hashable(_from_json(k)): _from_json(v) for k, v in value["__pairs__"]}
    if "__optimizer__" in value:
        import keras

        cls = getattr(keras.optimizers, str(value["__optimizer__"]), None)
        if not (isinstance(cls, type) and issubclass(cls, keras.optimizers.Optimizer)):
            raise ValueError(f"unknown optimizer {value['__optimizer__']!r}")
        return cls.from_config(_from_json(value["config"]))
    return {k: _from_json(v) for k, v in value.items()}


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def _decode(node, archive, path):
    if node["class"] == "Pipeline":
        steps = [
            (
                str(name),
                "passthrough"
                if step == "passthrough"
                else _decode(step, archive, path),
            )
            for name, step in node["steps"]
        ]
        return Pipeline(steps, verbose=bool(node["params"].get("verbose", False)))
    cls = _CLASSES.get(node["class"])
    if cls is None:
        raise UnsafeModelError(
            f"{path}: refusing to build {node['class']!r}, which is not an sk-mnist "
            f"estimator."
        )
    params = {k: _from_json(v) for k, v in node["params"].items()}
    estimator = cls(**params)
    fitted = node["fitted"]
    unknown = set(fitted) - set(_FITTED[node["class"]])
    if unknown:
        raise ValueError(f"unexpected fitted attributes {sorted(unknown)}")
    for attr, value in fitted.items():
        setattr(estimator, attr, _from_json(value))
    if cls is KerasMLPClassifier:
        member = node["network"]
        estimator.model_ = model_from_bytes(
            _read_member(archive, member, path), origin=f"{path}:{member}"
        )
        set_seed_states(estimator.model_, node.get("seed_states", []))
        if "rng_state" in node:
            kind, keys, pos, has_gauss, gauss = node["rng_state"]
            rng = np.random.RandomState()
            rng.set_state(
                (kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss)
            )
            estimator._rng = rng
    return estimator


def _read_member(archive, name, path) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise UnsafeModelError(f"{path}: the archive has no {name}.") from None
    if info.file_size > _MAX_MEMBER_BYTES:
        raise UnsafeModelError(
            f"{path}: {name} is implausibly large ({info.file_size} bytes)."
        )
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UnsafeModelError(f"{path}: {name} is damaged ({exc}).") from None


__all__ = ["load", "save"]
