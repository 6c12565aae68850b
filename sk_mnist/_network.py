"""Building and compiling the Keras network.

This is the only module that names Keras layers, so that every classic MNIST
tutorial configuration reads as data: the sizes of the hidden layers, their
activation, the dropout after each, and the optimizer. Keras is imported
inside the functions, never at module import.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

# Keras's JAX trainer donates the model's state buffers to its compiled predict
# function, so two threads predicting with one model at once would read
# buffers the other has given away. On JAX, calls are serialised; TensorFlow's
# compiled functions are safe to call from several threads.
_JAX_PREDICT_LOCK = threading.Lock()


def n_seeds(n_hidden: int) -> int:
    """Number of seeds :func:`build_network` takes for ``n_hidden`` layers.

    One per Dense kernel initializer (the hidden layers and the output) and
    one per possible Dropout layer.
    """
    return 2 * n_hidden + 1


def build_network(
    n_features: int,
    n_classes: int,
    *,
    hidden_layer_sizes: Sequence[int] = (512, 512),
    activation: str = "relu",
    dropout: Sequence[float] = (0.2, 0.2),
    optimizer: Any = "rmsprop",
    learning_rate: float | None = None,
    seeds: Sequence[int] | None = None,
):
    """Build and compile the Dense/Dropout network of the classic tutorials.

    ``784 -> Dense(512, relu) -> Dropout(0.2) -> Dense(512, relu) ->
    Dropout(0.2) -> Dense(10, softmax)`` with the defaults, compiled with
    categorical cross-entropy and accuracy. A Dropout layer is left out where
    its rate is 0.

    Parameters
    ----------
    n_features : int
        Width of the input (784 for MNIST).
    n_classes : int
        Units of the softmax output (2 for a binary problem).
    hidden_layer_sizes : sequence of int, default=(512, 512)
        Units of each hidden Dense layer.
    activation : str, default="relu"
        Keras activation of the hidden layers.
    dropout : sequence of float, default=(0.2, 0.2)
        Dropout rate after each hidden layer, one per layer.
    optimizer : str or keras.optimizers.Optimizer, default="rmsprop"
        A Keras optimizer name or instance. An instance is re-created from its
        config, so the caller's object is never trained or mutated.
    learning_rate : float, default=None
        Overrides the optimizer's learning rate when given.
    seeds : sequence of int, default=None
        ``n_seeds(len(hidden_layer_sizes))`` integers: one per Dense kernel
        initializer (hidden layers, then the output) followed by one per
        Dropout layer. ``None`` leaves Keras to draw them.

    Returns
    -------
    model : keras.Sequential
        The compiled model, built for inputs of shape ``(None, n_features)``.

    Examples
    --------
    >>> from sk_mnist._network import build_network
    >>> model = build_network(784, 10, seeds=range(5))  # doctest: +SKIP
    >>> model.count_params()  # doctest: +SKIP
    669706
    """
    import keras

    n_hidden = len(hidden_layer_sizes)
    if seeds is None:
        seeds = [None] * n_seeds(n_hidden)
    seeds = [None if s is None else int(s) for s in seeds]
    dense_seeds, dropout_seeds = seeds[: n_hidden + 1], seeds[n_hidden + 1 :]

    layers = [keras.Input(shape=(n_features,), name="pixels")]
    for i, (units, rate) in enumerate(zip(hidden_layer_sizes, dropout, strict=True)):
        layers.append(
            keras.layers.Dense(
                int(units),
                activation=activation,
                kernel_initializer=keras.initializers.GlorotUniform(
                    seed=dense_seeds[i]
                ),
                name=f"dense_{i}",
            )
        )
        if rate > 0:
            layers.append(
                keras.layers.Dropout(
                    float(rate), seed=dropout_seeds[i], name=f"dropout_{i}"
                )
            )
    layers.append(
        keras.layers.Dense(
            n_classes,
            activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(
                seed=dense_seeds[n_hidden]
            ),
            name="output",
        )
    )
    model = keras.Sequential(layers, name="mlp")
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def make_optimizer(optimizer: Any, learning_rate: float | None = None):
    """A fresh Keras optimizer from a name or an instance.

    Parameters
    ----------
    optimizer : str or keras.optimizers.Optimizer
        ``"rmsprop"``, ``"sgd"``, ``"adam"``... or an optimizer instance, which
        is copied through its config (its state is not carried over).
    learning_rate : float, default=None
        Replaces the learning rate of the config when given.

    Returns
    -------
    keras.optimizers.Optimizer
        A new optimizer that no other model uses.
    """
    import keras

    if isinstance(optimizer, str):
        try:
            template = keras.optimizers.get(optimizer)
        except ValueError:
            raise ValueError(
                f"optimizer must be the name of a Keras optimizer such as "
                f"'rmsprop', 'sgd' or 'adam', got {optimizer!r}."
            ) from None
    elif isinstance(optimizer, keras.optimizers.Optimizer):
        template = optimizer
    else:
        raise TypeError(
            f"optimizer must be a str or a keras.optimizers.Optimizer, got "
            f"{type(optimizer).__name__}: {optimizer!r}."
        )
    config = template.get_config()
    if learning_rate is not None:
        config["learning_rate"] = float(learning_rate)
    return type(template).from_config(config)


def check_activation(activation: str) -> None:
    """Raise a ValueError naming ``activation`` when Keras does not know it."""
    import keras

    try:
        keras.activations.get(activation)
    except ValueError:
        raise ValueError(
            f"activation must be the name of a Keras activation such as 'relu', "
            f"'sigmoid' or 'tanh', got {activation!r}."
        ) from None


def predict_in_batches(model, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Run the compiled forward pass of ``model`` on ``X``, a batch at a time.

    :meth:`keras.Model.predict` builds a data pipeline and a progress callback
    on every call (about 57 ms here even for one sample); the compiled
    ``predict_on_batch`` function costs well under a millisecond for a few
    samples, so small requests stay fast. Chunks of ``batch_size`` rows keep
    memory bounded for large ``X``.

    Parameters
    ----------
    model : keras.Model
        A built model.
    X : ndarray of shape (n_samples, n_features), dtype float32
        Inputs.
    batch_size : int, default=8192
        Rows per call of the compiled function.

    Returns
    -------
    ndarray of shape (n_samples, n_outputs)
        The model's outputs as a float32 numpy array.
    """
    import keras

    if keras.backend.backend() == "jax":
        with _JAX_PREDICT_LOCK:
            return _predict_chunks(model, X, batch_size)
    return _predict_chunks(model, X, batch_size)


def _predict_chunks(model, X, batch_size):
    if len(X) <= batch_size:
        return np.asarray(model.predict_on_batch(X))
    return np.concatenate(
        [
            np.asarray(model.predict_on_batch(X[start : start + batch_size]))
            for start in range(0, len(X), batch_size)
        ]
    )
