"""A Keras model to bytes and back, in Keras's own ``.keras`` format.

Pickling, :func:`copy.deepcopy` and :func:`sk_mnist.save` all need the model
in memory as bytes. Keras 3's public ``save_model``/``load_model`` only take
paths ending in ``.keras``, so the bytes pass through a private temporary
folder that is removed at once. Loading always uses ``safe_mode=True``: a
model that asks to deserialize Python code (a ``Lambda`` layer) is refused.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..exceptions import UnsafeModelError


def model_to_bytes(model) -> bytes:
    """Serialize ``model`` (architecture, weights, optimizer state) to bytes."""
    import keras

    with tempfile.TemporaryDirectory(prefix="sk_mnist-") as folder:
        path = os.path.join(folder, "model.keras")
        keras.saving.save_model(model, path)
        with open(path, "rb") as file:
            return file.read()


def model_from_bytes(data: bytes, *, origin: str = "the saved model"):
    """Load a model written by :func:`model_to_bytes`, refusing unsafe ones.

    Parameters
    ----------
    data : bytes
        The content of a ``.keras`` file.
    origin : str
        Named in error messages (a file name, or "the pickled estimator").

    Raises
    ------
    UnsafeModelError
        When the model would run code to load (a ``Lambda`` layer or another
        object Keras refuses in safe mode), or the bytes are not a ``.keras``
        archive.
    """
    import keras

    if not isinstance(data, bytes | bytearray) or data[:4] != b"PK\x03\x04":
        raise UnsafeModelError(
            f"{origin} is not a Keras .keras archive (it does not start with "
            f"a zip header)."
        )
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
        except (OSError, KeyError) as exc:
            raise UnsafeModelError(
                f"{origin} is a damaged or foreign .keras archive: {exc}"
            ) from exc


def seed_states(model) -> list[list[int]]:
    """The counters of the layers' random seed generators (Dropout's).

    The ``.keras`` format does not keep them, so a reloaded model would draw
    the same dropout masks again from its first step; saving them beside the
    model lets training continue exactly where it stopped.
    """
    import keras

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
