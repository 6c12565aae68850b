"""A Keras model to bytes and back, in Keras's own ``.keras`` format.

Pickling, :func:`copy.deepcopy` and :func:`sk_mnist.save` all need the model
in memory as bytes (the estimator's ``__getstate__`` holds them). Keras 3's
public ``save_model``/``load_model`` only take paths ending in ``.keras``, so
the bytes pass through a private temporary folder that is removed on every
path. The archive is checked before Keras reads it, and loading always uses
``safe_mode=True``: a model that asks to deserialize Python code is refused.
"""

from __future__ import annotations

import io
import os
import tempfile

import keras
import numpy as np

from .._utils import _archives
from ..exceptions import UnsafeModelError


def model_to_bytes(model) -> bytes:
    """Serialize ``model`` (architecture, weights, optimizer state) to bytes."""
    with tempfile.TemporaryDirectory(prefix="sk_mnist-") as folder:
        path = os.path.join(folder, "model.keras")
        keras.saving.save_model(model, path)
        with open(path, "rb") as file:
            return file.read()


def model_from_bytes(data: bytes, *, origin: str = "the saved model"):
    """Load a model written by :func:`model_to_bytes`, refusing unsafe ones.

    Before Keras sees the bytes, the archive is checked: only the members
    Keras writes for a network without assets, bounded sizes, a
    ``Sequential`` of ``InputLayer``/``Dense``/``Dropout`` layers whose
    sizes agree with the weights stored beside them, and weights that store
    every byte they declare. So Keras never allocates more than the file
    holds, nor extracts assets to a folder of its own. Keras then loads it
    with ``safe_mode=True``, from a private folder removed on every path.

    Parameters
    ----------
    data : bytes
        The content of a ``.keras`` file.
    origin : str
        Named in error messages (a file name, or "the pickled estimator").

    Raises
    ------
    UnsafeModelError
        The bytes are not such an archive, do not match their weights, or
        would make Keras run code.
    """
    if not isinstance(data, bytes | bytearray):
        raise UnsafeModelError(f"{origin}: the network is not a .keras archive.")
    check_network_archive(bytes(data), origin)
    with tempfile.TemporaryDirectory(prefix="sk_mnist-") as folder:
        path = os.path.join(folder, "model.keras")
        with open(path, "wb") as file:
            file.write(data)
        try:
            return keras.saving.load_model(path, safe_mode=True)
        except ValueError as exc:
            if "safe_mode" in str(exc) or "lambda" in str(exc).lower():
                raise UnsafeModelError(
                    f"{origin} contains code that Keras would have to run to load "
                    f"it (such as a Lambda layer); sk-mnist refuses to load it."
                ) from exc
            raise UnsafeModelError(
                f"{origin} could not be loaded as a Keras model: {exc}"
            ) from exc
        except (OSError, KeyError, TypeError) as exc:
            raise UnsafeModelError(
                f"{origin} is a damaged or foreign .keras archive: {exc}"
            ) from exc


def check_network_archive(data: bytes, origin) -> None:
    """Check a ``.keras`` archive before Keras builds anything from it."""
    with _archives.open_zip(data, origin) as archive:
        names = set(archive.namelist())
        if not (_REQUIRED <= names <= _MEMBERS):
            raise UnsafeModelError(
                f"{origin}: a network archive holds {sorted(_MEMBERS)}; this one "
                f"holds {sorted(names)}."
            )
        config = _archives.read_json(archive, "config.json", origin, limit=2**20)
        expected = _expected_weight_shapes(config, origin)
        weights = _archives.read_member(archive, _WEIGHTS, origin)
    stored = _stored_weight_shapes(weights, origin)
    if stored != expected:
        raise UnsafeModelError(
            f"{origin}: the network's layers call for weights of shapes "
            f"{expected} but the archive stores {stored}."
        )


_WEIGHTS = "model.weights.h5"
_REQUIRED = {"config.json", _WEIGHTS}
_MEMBERS = {*_REQUIRED, "metadata.json"}


def _expected_weight_shapes(config, origin):
    """Kernel and bias shapes of each Dense layer of a config, in order."""
    try:
        if config["class_name"] != "Sequential":
            raise ValueError(f"a {config['class_name']!r} model")
        layers = config["config"]["layers"]
        n_in = None
        shapes = []
        for layer in layers:
            kind, layer_config = layer["class_name"], layer["config"]
            if kind == "InputLayer":
                n_in = _positive_int(layer_config["batch_shape"][-1])
            elif kind == "Dense":
                units = _positive_int(layer_config["units"])
                shapes.append([(n_in, units), (units,)])
                n_in = units
            elif kind != "Dropout":
                raise ValueError(f"a {kind!r} layer")
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise UnsafeModelError(
            f"{origin}: not a network KerasMLPClassifier builds ({exc})."
        ) from None
    return shapes


def _positive_int(value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"a size of {value!r}")
    return value


def _stored_weight_shapes(weights, origin):
    """The shapes stored per Dense layer, checking every dataset is all there."""
    import h5py

    def check(name, item):
        if isinstance(item, h5py.Dataset):
            declared = item.size * item.dtype.itemsize
            if item.id.get_storage_size() != declared:
                raise UnsafeModelError(
                    f"{origin}: the weight {name} declares shape {item.shape} but "
                    f"does not store its {declared} bytes."
                )

    try:
        with h5py.File(io.BytesIO(weights), "r") as file:
            file.visititems(check)
            layers = file.get("layers", {})
            dense = sorted(
                (name for name in layers if name.startswith("dense")),
                key=lambda name: 0 if name == "dense" else int(name.rsplit("_")[1]),
            )
            return [
                [
                    tuple(layers[name]["vars"][key].shape)
                    for key in sorted(layers[name]["vars"], key=int)
                ]
                for name in dense
            ]
    except UnsafeModelError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise UnsafeModelError(
            f"{origin}: the network's weights file is damaged ({exc})."
        ) from None


def seed_states(model) -> list[list[int]]:
    """The counters of the layers' random seed generators (Dropout's).

    The ``.keras`` format does not keep them, so a reloaded model would draw
    the same dropout masks again from its first step; saving them beside the
    model lets training continue exactly where it stopped.
    """
    return [
        [int(v) for v in keras.ops.convert_to_numpy(layer.seed_generator.state)]
        for layer in model.layers
        if getattr(layer, "seed_generator", None) is not None
    ]


def set_seed_states(model, states) -> None:
    """Restore counters taken by :func:`seed_states` on an identical model."""
    generators = [
        layer.seed_generator
        for layer in model.layers
        if getattr(layer, "seed_generator", None) is not None
    ]
    if len(generators) != len(states):
        raise UnsafeModelError(
            f"the saved model has {len(generators)} random layers but "
            f"{len(states)} seed states were saved with it."
        )
    for generator, state in zip(generators, states, strict=True):
        generator.state.assign(np.asarray(state, dtype=generator.state.dtype))


def optimizer_to_config(optimizer) -> dict:
    """An optimizer given as a parameter, as its Keras config (plain data)."""
    return keras.optimizers.serialize(optimizer)


def optimizer_from_config(config: dict):
    """The optimizer of :func:`optimizer_to_config`; only Keras's own classes."""
    try:
        with keras.saving.custom_object_scope({}):
            optimizer = keras.optimizers.deserialize(config)
    except (TypeError, ValueError, KeyError) as exc:
        raise UnsafeModelError(
            f"the saved optimizer {config.get('class_name')!r} is not one of "
            f"Keras's optimizers ({exc})."
        ) from None
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise UnsafeModelError(
            f"the saved optimizer is a {type(optimizer).__name__}, not a Keras "
            f"optimizer."
        )
    return optimizer


def check_model_fits(model, n_features, classes) -> None:
    """Check that a loaded network is the classifier's own kind of network.

    Its input has ``n_features`` columns and its last layer is a softmax Dense
    layer with one unit per class, so that ``classes_`` and the columns of
    ``predict_proba`` agree.
    """
    output = model.layers[-1] if model.layers else None
    activation = getattr(getattr(output, "activation", None), "__name__", None)
    if not isinstance(output, keras.layers.Dense) or activation != "softmax":
        raise UnsafeModelError(
            "the saved network does not end in a softmax Dense layer; it was not "
            "written by KerasMLPClassifier."
        )
    n_inputs = model.inputs[0].shape[-1] if model.inputs else None
    if n_features is not None and n_inputs != n_features:
        raise UnsafeModelError(
            f"the saved network takes {n_inputs} inputs but n_features_in_ is "
            f"{n_features}."
        )
    if classes is not None and output.units != len(classes):
        raise UnsafeModelError(
            f"the saved network has {output.units} outputs but classes_ holds "
            f"{len(classes)} classes."
        )
