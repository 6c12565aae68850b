"""The network's forward pass in numpy, for predictions on a few samples.

Keras has no low-overhead path for one image: ``predict`` builds a data
adapter and callbacks on every call, and even a compiled function costs a
call into the backend that, on TensorFlow, takes longer than the whole
forward pass of a small batch in numpy. So for small batches (up to
:data:`MAX_ROWS` rows, by backend) the Dense layers the estimator builds
run here, on numpy copies of their weights; larger batches take the compiled Keras path
(:func:`sk_mnist._keras.network.forward_function`). Only the layers
:func:`~sk_mnist._keras.network.build` makes (Dense, Dropout, which is the
identity at inference) and the activations of :data:`ACTIVATIONS` are run
here; any other model returns None from :func:`forward` and takes Keras's
path. Each activation is tested against Keras's (``tests/_keras``).

The copies are remade when the weights may have changed. On JAX that is
exact: JAX arrays are immutable, so an assignment replaces a variable's
array, and a copy is remade when any variable holds another one. On
TensorFlow nothing short of reading the variables tells, and reading even
the optimizer's step counter costs a quarter of the whole numpy pass of one
image; so there a copy lasts until :func:`forget`, which the engine calls
whenever it has trained a model (:func:`training`: no copy is used while
training runs, restored best weights included). A model whose
weights are changed through Keras directly (``model_.set_weights``,
``model_.fit``) must be forgotten too, or predicted in batches larger than
:data:`MAX_ROWS`.
"""

from __future__ import annotations

import contextlib
import weakref

import keras
import numpy as np
from scipy import special

#: The largest batch run in numpy, by backend: the sizes up to which the
#: numpy pass took clearly less time than the compiled forward pass, side
#: by side in one process, in repeated runs of ``benchmarks/serving.py``
#: (its last table in ``benchmarks/results/serving.md``). Near the limit the
#: two are within noise of each other; on JAX already from about 32 rows.
MAX_ROWS = {"tensorflow": 128, "jax": 32}

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _elu(z):
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


def _softplus(z):
    return np.logaddexp(np.float32(0), z)


def _hard_sigmoid(z):
    return np.clip(z / np.float32(6) + np.float32(0.5), 0, 1)


#: Keras's activations by their serialized names, as numpy functions of a
#: float32 array (the same formulas as ``keras.activations``).
ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "relu6": lambda z: np.clip(z, 0, 6),
    "leaky_relu": lambda z: np.where(z >= 0, z, np.float32(0.2) * z),
    "sigmoid": special.expit,
    "hard_sigmoid": _hard_sigmoid,
    "tanh": np.tanh,
    "elu": _elu,
    "selu": lambda z: (
        np.float32(_SELU_SCALE)
        * np.where(z > 0, z, np.float32(_SELU_ALPHA) * np.expm1(np.minimum(z, 0)))
    ),
    "softplus": _softplus,
    "softsign": lambda z: z / (1 + np.abs(z)),
    "silu": lambda z: z * special.expit(z),
    "gelu": lambda z: (
        np.float32(0.5) * z * (1 + special.erf(z / np.float32(np.sqrt(2))))
    ),
    "mish": lambda z: z * np.tanh(_softplus(z)),
}

# The numpy weights of each model, made at its first small prediction, and
# the models being trained, whose weights change at every step.
_WEIGHTS = weakref.WeakKeyDictionary()
_TRAINING = weakref.WeakSet()


def forward(model, X):
    """``model``'s probabilities for the rows of ``X`` in numpy, or None.

    None when ``X`` has more rows than :data:`MAX_ROWS` allows on this
    backend, or ``model`` has a layer or an activation this module does not
    run.
    """
    if len(X) > MAX_ROWS.get(keras.backend.backend(), 0) or model in _TRAINING:
        return None
    layers = _weights(model)
    if layers is None:
        return None
    # numpy's BLAS threads as they are, as MLPClassifier uses them: limiting
    # them per call (threadpoolctl) sets a process-wide count, which threads
    # predicting at once would set and restore under each other's products.
    h = X
    for kernel, bias, activation in layers[:-1]:
        h = activation(h @ kernel + bias)
    kernel, bias, _ = layers[-1]
    z = h @ kernel + bias
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def forget(model):
    """Drop the numpy copies of ``model``'s weights (they are remade on use)."""
    _WEIGHTS.pop(model, None)


@contextlib.contextmanager
def training(model):
    """While the block trains ``model``, its predictions take Keras's path.

    Callbacks may predict between the steps; the copies are dropped at the
    end, when the weights are final.
    """
    _TRAINING.add(model)
    try:
        yield
    finally:
        _TRAINING.discard(model)
        forget(model)


def _weights(model):
    """``[(kernel, bias, activation function)]`` of ``model``, up to date."""
    token = _token(model)
    cached = _WEIGHTS.get(model)
    if cached is not None and _same(cached[0], token):
        return cached[1]
    layers = _read(model)
    _WEIGHTS[model] = (token, layers)
    return layers


def _token(model):
    """What changes when the weights do: see the module's docstring."""
    if keras.backend.backend() == "jax":
        return tuple(v.value for v in model.weights)
    return None


def _same(a, b):
    if isinstance(a, tuple):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
    return a == b


def _read(model):
    """The Dense layers' weights as numpy, or None for a model run elsewhere."""
    from .network import activation_name

    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            continue
        if (
            not isinstance(layer, keras.layers.Dense)
            or layer.bias is None
            or (layer.dtype, layer.compute_dtype) != ("float32", "float32")
        ):
            return None
        layers.append(
            (
                # Copies: a JAX array's numpy view would share a buffer that
                # training may donate and overwrite.
                np.array(keras.ops.convert_to_numpy(layer.kernel), copy=True),
                np.array(keras.ops.convert_to_numpy(layer.bias), copy=True),
                ACTIVATIONS.get(activation_name(layer.activation)),
            )
        )
    if not layers or any(activation is None for *_, activation in layers[:-1]):
        return None
    if activation_name(model.layers[-1].activation) != "softmax":
        return None
    return layers
