"""A Keras model to bytes and back, in Keras's own ``.keras`` format.

Pickling, :func:`copy.deepcopy` and :func:`sk_mnist.save` all need the model
in memory as bytes (the estimator's ``__getstate__`` holds them). Keras 3's
public ``save_model``/``load_model`` take only paths ending in ``.keras``;
a file on disk would outlive a process killed while loading, so the bytes go
through ``keras.src.saving.saving_lib``, which takes file objects: the same
functions Keras's own pickling (``KerasSaveable.__reduce__``) calls. Loading
writes nothing to disk; saving writes the archive to memory too (Keras's
writer makes, and removes, an empty folder for assets, which these networks
have none of).

Before Keras reads an archive, the whole network config is compared with
what :mod:`sk_mnist._keras.network` itself builds from the same sizes, so a
field that would make Keras allocate or run anything else is refused first;
loading always uses ``safe_mode=True``.
"""

from __future__ import annotations

import io
import json
import random
import re
import zipfile
import zlib

import keras
import numpy as np
from keras.src.saving import saving_lib

from .._utils import _archives
from .._utils._text import shorten
from ..exceptions import UnsafeModelError
from . import network

# What a damaged archive can make Keras, h5py or numpy raise while loading.
_LOAD_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OSError,
    RuntimeError,
    OverflowError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
)


def model_to_bytes(model) -> bytes:
    """Serialize ``model`` (architecture, weights, optimizer state) to bytes."""
    buffer = io.BytesIO()
    saving_lib.save_model(model, buffer)
    return buffer.getvalue()


def model_from_bytes(data: bytes, *, origin: str = "the saved model"):
    """Load a model written by :func:`model_to_bytes`, refusing unsafe ones.

    Before Keras sees the bytes, the archive is checked: only the members
    Keras writes for a network without assets, every member's checksum, a
    config equal to what sk-mnist builds (``Sequential`` of ``InputLayer``,
    ``Dense`` and ``Dropout`` layers with the fields it sets and no other),
    layer sizes that agree with the weights stored beside them, and weights
    that store every byte they declare. So Keras never allocates more than
    the file holds, nor extracts anything to disk. Keras then loads it with
    ``safe_mode=True``, from memory.

    Parameters
    ----------
    data : bytes
        The content of a ``.keras`` file.
    origin : str
        Named in error messages (a file name, or "the pickled estimator").

    Raises
    ------
    UnsafeModelError
        The bytes are not such an archive, are damaged, do not match their
        weights, or would make Keras run code or build anything else.
    """
    if not isinstance(data, bytes | bytearray):
        raise UnsafeModelError(f"{origin}: the network is not a .keras archive.")
    data = bytes(data)
    check_network_archive(data, origin)
    try:
        return saving_lib.load_model(io.BytesIO(data), safe_mode=True)
    except _LOAD_ERRORS as exc:
        raise UnsafeModelError(
            f"{origin}: Keras could not load the network ({type(exc).__name__}: "
            f"{shorten(exc)})."
        ) from None


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
        _archives.read_json(archive, "metadata.json", origin, limit=2**16)
        expected = _check_config(config, origin)
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
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_COMPILE = {
    "loss": ["categorical_crossentropy"],
    "loss_weights": [None],
    "metrics": [["accuracy"]],
    "weighted_metrics": [None],
    "run_eagerly": [False],
    "steps_per_execution": [1],
    "jit_compile": [True, False, "auto"],
}


def _check_config(config, origin):
    """Compare a network config with what sk-mnist builds; the weight shapes.

    Each layer of the file is rebuilt, unbuilt (allocating nothing), by the
    same functions :func:`~sk_mnist._keras.network.build_network` uses, from
    the few values sk-mnist lets vary (sizes, activation, rates, seeds,
    names), each checked first. The file's config must then equal the
    rebuilt one, field by field: a field sk-mnist never sets (``lora_rank``,
    a per-layer ``input_shape``, a string dtype, a regularizer of another
    kind) is refused before Keras sees it. Fields of the rebuilt config that
    the file leaves out (an older Keras wrote fewer) take Keras's defaults.

    Returns the ``[(kernel shape), (bias shape)]`` of each Dense layer.
    """
    # Keras gives an unseeded layer a seed from Python's global random; the
    # rebuilt layers must not use up the caller's random numbers.
    random_state = random.getstate()
    try:
        return _check_layers_of(config, origin)
    finally:
        random.setstate(random_state)


def _check_layers_of(config, origin):
    try:
        _expect_keys(config, _TOP_KEYS, "the model")
        if (config["module"], config["class_name"]) != ("keras", "Sequential"):
            raise ValueError(f"a {config['class_name']!r} model")
        body = config["config"]
        layers = body["layers"]
        if not isinstance(layers, list) or not layers:
            raise ValueError("no layers")
        n_in = _check_input(layers[0])
        shapes, names = [], set()
        for position, entry in enumerate(layers[1:], start=1):
            n_out = _check_layer(entry, n_in, last=position == len(layers) - 1)
            name = entry["config"]["name"]
            if name in names:
                raise ValueError(f"two layers named {name!r}")
            names.add(name)
            if n_out is not None:
                shapes.append([(n_in, n_out), (n_out,)])
                n_in = n_out
        if not shapes or layers[-1].get("class_name") != "Dense":
            raise ValueError("no Dense output layer")
        top = keras.saving.serialize_keras_object(
            keras.Sequential(name=_name(body["name"]))
        )["config"]
        top["build_input_shape"] = [None, _width(layers[0])]
        _expect_equal({**body, "layers": []}, {**top, "layers": []}, "the model")
        _expect_equal(
            config.get("build_config"),
            {"input_shape": [None, _width(layers[0])]},
            "the model's build_config",
        )
        _check_compile(config.get("compile_config"))
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
        raise UnsafeModelError(
            f"{origin}: not a network KerasMLPClassifier builds "
            f"({type(exc).__name__}: {shorten(exc)})."
        ) from None
    return shapes


_TOP_KEYS = {
    "module",
    "class_name",
    "config",
    "registered_name",
    "build_config",
    "compile_config",
}


def _check_input(entry):
    width = _width(entry)
    rebuilt = network.input_layer(width, name=_name(entry["config"]["name"]))
    _expect_equal(entry, keras.saving.serialize_keras_object(rebuilt), "the input")
    return width


def _width(entry):
    if entry.get("class_name") != "InputLayer":
        raise ValueError(f"a first layer {entry.get('class_name')!r}")
    shape = entry["config"]["batch_shape"]
    if not (isinstance(shape, list) and len(shape) == 2 and shape[0] is None):
        raise ValueError(f"an input shape {shape!r}")
    return _positive_int(shape[1])


def _check_layer(entry, n_in, *, last):
    """Check one Dense or Dropout layer; return a Dense layer's units."""
    kind, config = entry["class_name"], entry["config"]
    name = _name(config["name"])
    if kind == "Dense":
        activation = config["activation"]
        if last and activation != "softmax":
            raise ValueError(
                f"the output layer {name!r} has activation {shorten(activation)}: "
                f"the network does not end in a softmax"
            )
        if not isinstance(activation, str):
            raise ValueError(f"activation {shorten(activation)} in layer {name!r}")
        network.check_activation(activation)
        units = _positive_int(config["units"])
        seed = _seed(config["kernel_initializer"]["config"]["seed"])
        regularizer, constraint = (
            config.get("kernel_regularizer"),
            config.get("kernel_constraint"),
        )
        l2 = 0.0 if regularizer is None else _rate(regularizer["config"]["l2"])
        max_norm = (
            None if constraint is None else _rate(constraint["config"]["max_value"])
        )
        rebuilt = network.dense_layer(
            units, activation, seed, name, l2=l2, max_norm=max_norm
        )
        expected = {
            **keras.saving.serialize_keras_object(rebuilt),
            "build_config": {"input_shape": [None, n_in]},
        }
        _expect_equal(entry, expected, f"layer {name!r}")
        return units
    if kind == "Dropout" and not last:
        rate = config["rate"]
        if not (isinstance(rate, float | int) and 0 <= rate < 1):
            raise ValueError(f"a dropout rate of {rate!r} in layer {name!r}")
        rebuilt = network.dropout_layer(float(rate), _seed(config["seed"]), name)
        _expect_equal(entry, keras.saving.serialize_keras_object(rebuilt), name)
        return None
    raise ValueError(f"a {kind!r} layer")


def _check_compile(config):
    """The compile config sk-mnist writes: its loss, metric and a Keras optimizer."""
    if config is None:
        return
    _expect_keys(config, {"optimizer", *_COMPILE}, "the compile config")
    for key, allowed in _COMPILE.items():
        if key in config and config[key] not in allowed:
            raise ValueError(f"{key}={config[key]!r} in the compile config")
    optimizer = config["optimizer"]
    if isinstance(optimizer, str):
        optimizer = {"class_name": optimizer, "config": {}}
    instance = optimizer_from_config(optimizer)
    _expect_keys(
        optimizer.get("config") or {}, type(instance)().get_config(), "the optimizer"
    )


def _expect_keys(found, allowed, where):
    unknown = set(found) - set(allowed)
    if unknown:
        raise ValueError(f"{where} sets {sorted(unknown)}, which sk-mnist never writes")


def _expect_equal(found, expected, where):
    """``found`` equals ``expected`` as JSON, fields absent from ``found`` aside."""
    found, expected = _plain(found), _plain(expected)
    if isinstance(found, dict) and isinstance(expected, dict):
        _expect_keys(found, expected, where)
        for key, value in found.items():
            _expect_equal(value, expected[key], f"{where}: {key}")
    elif found != expected:
        raise ValueError(
            f"{where} is {shorten(found)}; sk-mnist writes {shorten(expected)}"
        )


def _plain(value):
    """JSON-comparable: tuples as lists, Keras's shared-object ids dropped."""
    value = json.loads(json.dumps(value))
    if isinstance(value, dict):
        value.pop("shared_object_id", None)
    return value


def _name(value):
    if not (isinstance(value, str) and _NAME.fullmatch(value)):
        raise ValueError(f"a layer name {shorten(value)}")
    return value


def _seed(value):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise ValueError(f"a seed of {shorten(value)}")
    return value


def _rate(value):
    """A finite positive number (a penalty or a norm), as a float."""
    if (
        not isinstance(value, float | int)
        or isinstance(value, bool)
        or not (0 < value < float("inf"))
    ):
        raise ValueError(f"a regularization value of {shorten(value)}")
    return float(value)


def _positive_int(value):
    # No MNIST network comes near 2**24 units; the weights bound the rest.
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**24:
        raise ValueError(f"a size of {shorten(value)}")
    return value


def _stored_weight_shapes(weights, origin):
    """The shapes stored per Dense layer, every dataset read in full.

    A dataset must store the bytes it declares, and reading them all finds
    damaged bytes here rather than inside Keras.
    """
    import h5py

    def check(name, item):
        if isinstance(item, h5py.Dataset):
            declared = item.size * item.dtype.itemsize
            if item.id.get_storage_size() != declared:
                raise UnsafeModelError(
                    f"{origin}: the weight {name} declares shape {item.shape} but "
                    f"does not store its {declared} bytes."
                )
            if item.dtype.kind not in "fiu":
                raise UnsafeModelError(
                    f"{origin}: the weight {name} holds {item.dtype}, not numbers."
                )
            item[()]

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
    except (
        OSError,
        KeyError,
        TypeError,
        ValueError,
        RuntimeError,
        OverflowError,
    ) as exc:
        raise UnsafeModelError(
            f"{origin}: the network's weights file is damaged "
            f"({type(exc).__name__}: {shorten(exc)})."
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
    """Restore counters taken by :func:`seed_states` on an identical model.

    Each must be a list of integers that fits the generator's own state
    variable (shape and dtype): anything else came from an edited file.
    """
    generators = [
        layer.seed_generator
        for layer in model.layers
        if getattr(layer, "seed_generator", None) is not None
    ]
    if not isinstance(states, list) or len(generators) != len(states):
        raise UnsafeModelError(
            f"the saved model has {len(generators)} random layers but "
            f"{shorten(states)} was saved as their seed states."
        )
    for generator, state in zip(generators, states, strict=True):
        dtype = np.dtype(generator.state.dtype)
        limits = np.iinfo(dtype)
        if not (
            isinstance(state, list)
            and len(state) == generator.state.shape[0]
            and all(
                isinstance(v, int)
                and not isinstance(v, bool)
                and limits.min <= v <= limits.max
                for v in state
            )
        ):
            raise UnsafeModelError(
                f"the saved seed state {shorten(state)} is not "
                f"{generator.state.shape[0]} integers of {dtype}."
            )
        generator.state.assign(np.asarray(state, dtype=dtype))


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


def schedule_to_config(schedule) -> dict:
    """A learning-rate schedule given as a parameter, as its Keras config."""
    return keras.optimizers.schedules.serialize(schedule)


def schedule_from_config(config: dict):
    """The schedule of :func:`schedule_to_config`; only Keras's own classes."""
    try:
        with keras.saving.custom_object_scope({}):
            schedule = keras.optimizers.schedules.deserialize(config)
    except (TypeError, ValueError, KeyError) as exc:
        raise UnsafeModelError(
            f"the saved learning_rate_schedule {shorten(config.get('class_name'))} "
            f"is not one of Keras's schedules ({shorten(exc)})."
        ) from None
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        raise UnsafeModelError(
            f"the saved learning_rate_schedule is a {type(schedule).__name__}, not "
            f"a Keras LearningRateSchedule."
        )
    return schedule


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


def to_plain_data(state: dict) -> dict:
    """An estimator's state with its Keras objects as plain data.

    The network becomes its ``.keras`` archive (bytes) plus the counters of
    its Dropout seed generators (``_seed_states``), which that format leaves
    out; an optimizer or schedule instance given as a parameter becomes its
    Keras config.
    """
    if "model_" in state:
        state["_seed_states"] = seed_states(state["model_"])
        state["model_"] = model_to_bytes(state["model_"])
    if not isinstance(state["optimizer"], str):
        state["optimizer"] = optimizer_to_config(state["optimizer"])
    if not isinstance(state["learning_rate_schedule"], str):
        state["learning_rate_schedule"] = schedule_to_config(
            state["learning_rate_schedule"]
        )
    return state


def from_plain_data(state: dict, *, origin: str) -> dict:
    """:func:`to_plain_data` undone, every Keras object checked as it is read.

    The network is loaded with ``safe_mode=True`` after its layer sizes were
    checked against its stored weights, and must fit the estimator:
    ``n_features_in_`` inputs, one softmax output per class of ``classes_``.
    """
    if isinstance(state.get("optimizer"), dict):
        state["optimizer"] = optimizer_from_config(state["optimizer"])
    if isinstance(state.get("learning_rate_schedule"), dict):
        state["learning_rate_schedule"] = schedule_from_config(
            state["learning_rate_schedule"]
        )
    if "classes_" in state and "model_" not in state:
        raise UnsafeModelError(f"{origin} is fitted but holds no network.")
    if "model_" in state:
        model = model_from_bytes(state["model_"], origin=origin)
        set_seed_states(model, state.pop("_seed_states", []))
        check_model_fits(model, state.get("n_features_in_"), state.get("classes_"))
        state["model_"] = model
    return state
