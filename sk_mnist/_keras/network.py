"""Building, compiling and running the Keras network.

This is the only module that names Keras layers, so that every classic MNIST
tutorial configuration reads as data: the sizes of the hidden layers, their
activation, the dropout after each, and the optimizer.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from .._description import Description, Network, Optimizer
from . import inference

# Keras's JAX trainer donates the model's state buffers to its compiled
# functions, so a thread predicting while another predicts or trains with the
# same model would read buffers the other has given away. On JAX, predictions
# and whole training runs are serialised (re-entrant, so a callback may
# predict during training); TensorFlow's compiled functions are thread-safe.
_JAX_LOCK = threading.RLock()


def backend_lock():
    """A lock that serialises use of models on JAX; no lock elsewhere."""
    if keras.backend.backend() == "jax":
        return _JAX_LOCK
    return contextlib.nullcontext()


def n_seeds(n_hidden: int) -> int:
    """Number of seeds :func:`build_network` takes for ``n_hidden`` layers.

    One per Dense kernel initializer (the hidden layers and the output) and
    one per possible Dropout layer.
    """
    return 2 * n_hidden + 1


#: Seeds are drawn below this bound (numpy's RandomState.randint).
SEED_MAX = 2**31 - 1


def draw_seeds(rng, layers: Network):
    """The ``(seeds, input_seed)`` of :func:`build`, drawn from ``rng``.

    ``input_seed`` is drawn only when there is an input Dropout layer, so
    that the default network's seeds are those it always had.
    """
    seeds = rng.randint(SEED_MAX, size=n_seeds(len(layers.hidden_layer_sizes)))
    input_seed = int(rng.randint(SEED_MAX)) if layers.input_dropout > 0 else None
    return seeds, input_seed


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
    input_dropout: float = 0.0,
    input_seed: int | None = None,
    l2: float = 0.0,
    max_norm: float | None = None,
    schedule: Any = None,
):
    """Build and compile the Dense/Dropout network of the classic tutorials.

    ``784 -> Dense(512, relu) -> Dropout(0.2) -> Dense(512, relu) ->
    Dropout(0.2) -> Dense(10, softmax)`` with the defaults, compiled with
    categorical cross-entropy and accuracy. A Dropout layer is left out where
    its rate is 0. The keywords make a :class:`~sk_mnist._description.Description`
    for :func:`build`, which the estimator calls with its own; this spelling
    is for use without the estimator (scikeras's ``model=``).

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
    input_dropout : float, default=0.0
        Dropout rate on the inputs, in a Dropout layer before the first Dense
        layer (left out at 0), seeded with ``input_seed``.
    input_seed : int, default=None
        The seed of the input Dropout layer.
    l2 : float, default=0.0
        ``l2 * sum(w ** 2)`` of every Dense kernel is added to the loss
        (Keras's ``L2`` regularizer); biases are not penalized.
    max_norm : float, default=None
        Keras's ``MaxNorm`` constraint on each hidden unit's incoming weights.
    schedule : keras.optimizers.schedules.LearningRateSchedule, default=None
        The optimizer's learning rate as a schedule (copied); replaces
        ``learning_rate``.

    Returns
    -------
    model : keras.Sequential
        The compiled model, built for inputs of shape ``(None, n_features)``.

    Examples
    --------
    >>> from sk_mnist._keras.network import build_network
    >>> model = build_network(784, 10, seeds=range(5))
    >>> model.count_params()
    669706
    """
    name, config = optimizer_defaults(optimizer)
    rate = config["learning_rate"] if learning_rate is None else learning_rate
    if schedule is not None:
        rate = schedule.get_config().get("initial_learning_rate")
    description = Description(
        Network(
            hidden_layer_sizes=tuple(int(units) for units in hidden_layer_sizes),
            activation=activation_name(activation),
            dropout=tuple(float(r) for r in dropout),
            input_dropout=float(input_dropout),
            l2=float(l2),
            max_norm=max_norm,
        ),
        Optimizer(
            optimizer=name,
            learning_rate=None if rate is None else float(rate),
            momentum=float(config.get("momentum", 0.0)),
            nesterov=bool(config.get("nesterov", False)),
            schedule="constant" if schedule is None else type(schedule).__name__,
            source=optimizer,
            schedule_source=schedule,
        ),
    )
    return build(n_features, n_classes, description, seeds, input_seed=input_seed)


def build(
    n_features: int,
    n_classes: int,
    description: Description,
    seeds: Sequence[int] | None = None,
    *,
    input_seed: int | None = None,
):
    """The compiled network ``description`` describes, seeded with ``seeds``.

    ``seeds`` as in :func:`build_network`; the optimizer and its schedule
    are made here from ``description.optimizer``, once.
    """
    layers_ = description.network
    n_hidden = len(layers_.hidden_layer_sizes)
    if seeds is None:
        seeds = [None] * n_seeds(n_hidden)
    seeds = [None if s is None else int(s) for s in seeds]
    dense_seeds, dropout_seeds = seeds[: n_hidden + 1], seeds[n_hidden + 1 :]

    layers = [input_layer(n_features)]
    if layers_.input_dropout > 0:
        layers.append(dropout_layer(layers_.input_dropout, input_seed, "input_dropout"))
    for i, (units, rate) in enumerate(
        zip(layers_.hidden_layer_sizes, layers_.dropout, strict=True)
    ):
        layers.append(
            dense_layer(
                units,
                layers_.activation,
                dense_seeds[i],
                f"dense_{i}",
                l2=layers_.l2,
                max_norm=layers_.max_norm,
            )
        )
        if rate > 0:
            layers.append(dropout_layer(rate, dropout_seeds[i], f"dropout_{i}"))
    layers.append(
        dense_layer(
            n_classes, "softmax", dense_seeds[n_hidden], "output", l2=layers_.l2
        )
    )
    model = keras.Sequential(layers, name="mlp")
    model.compile(
        optimizer=make_optimizer(description.optimizer),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def input_layer(n_features: int, name: str = "pixels"):
    """The input of the network: ``n_features`` float32 columns."""
    return keras.layers.InputLayer(shape=(n_features,), name=name)


def dense_layer(
    units: int,
    activation: str,
    seed: int | None,
    name: str,
    *,
    l2: float = 0.0,
    max_norm: float | None = None,
):
    """One Dense layer as :func:`build_network` makes it (Glorot-uniform, seeded).

    ``l2 > 0`` adds Keras's ``L2`` regularizer on the kernel, and
    ``max_norm`` its ``MaxNorm`` constraint on each unit's incoming weights.
    """
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        kernel_regularizer=keras.regularizers.L2(l2) if l2 > 0 else None,
        kernel_constraint=(
            keras.constraints.MaxNorm(max_norm, axis=0)
            if max_norm is not None
            else None
        ),
        name=name,
    )


def dropout_layer(rate: float, seed: int | None, name: str):
    """One Dropout layer as :func:`build_network` makes it."""
    return keras.layers.Dropout(rate, seed=seed, name=name)


def optimizer_defaults(optimizer: Any) -> tuple[str, dict]:
    """Keras's class name and config of an optimizer given by name or instance.

    Raises a ValueError naming ``optimizer`` when Keras has no optimizer of
    that name, and a TypeError for anything but a name or an instance.
    """
    if isinstance(optimizer, str):
        try:
            template = keras.optimizers.get(optimizer)
        except (ValueError, KeyError, TypeError):
            # Names of wrappers that need arguments (LossScaleOptimizer)
            # fail inside Keras with a KeyError or TypeError.
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
    return type(template).__name__, template.get_config()


def make_optimizer(description: Optimizer):
    """The one Keras optimizer of a fit, made from its description.

    A new object that no other model uses: an instance given as the
    parameter is copied through its config (its state is not carried over),
    and so is a schedule instance; ``"CosineDecay"`` decays the starting
    rate to 0 over ``decay_steps`` steps. The adaptive rate is a plain rate
    that a callback lowers (see :mod:`.training`).
    """
    source = description.source
    template = keras.optimizers.get(source) if isinstance(source, str) else source
    config = template.get_config()
    if description.schedule_source is not None:
        schedule = description.schedule_source
        config["learning_rate"] = type(schedule).from_config(schedule.get_config())
    elif description.schedule == "CosineDecay":
        config["learning_rate"] = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=description.learning_rate,
            decay_steps=description.decay_steps,
        )
    else:
        config["learning_rate"] = description.learning_rate
    if "momentum" in config:
        config["momentum"] = description.momentum
    if "nesterov" in config:
        config["nesterov"] = description.nesterov
    return type(template).from_config(config)


def check_schedule(schedule) -> None:
    """Raise a ValueError unless ``schedule`` is a Keras LearningRateSchedule."""
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        raise ValueError(
            f"learning_rate_schedule must be one of ('constant', 'cosine', "
            f"'adaptive') or a Keras LearningRateSchedule, got {schedule!r}."
        )


def backend_name() -> str:
    """The Keras backend in use: ``"tensorflow"``, ``"jax"``..."""
    return keras.backend.backend()


def describe(model) -> Description:
    """What a network built by :func:`build` was built with, as a description.

    The layers are read from the model; the optimizer's class name, momentum
    (0 and False for optimizers without one), the schedule's class name
    (``"constant"`` for a plain rate) and the rate it starts from. The
    estimator compares it with the description of its parameters before it
    continues a network (``warm_start``, ``partial_fit``).
    """
    hidden, rates, activation, input_rate = [], [], None, 0.0
    l2, max_norm = 0.0, None
    for layer in model.layers[:-1]:
        if isinstance(layer, keras.layers.Dense):
            hidden.append(int(layer.units))
            rates.append(0.0)
            activation = activation_name(layer.activation)
            if layer.kernel_regularizer is not None:
                l2 = float(layer.kernel_regularizer.l2)
            if layer.kernel_constraint is not None:
                max_norm = float(layer.kernel_constraint.max_value)
        elif isinstance(layer, keras.layers.Dropout):
            if rates:
                rates[-1] = float(layer.rate)
            else:
                input_rate = float(layer.rate)
    config = model.optimizer.get_config()
    rate = config["learning_rate"]  # a schedule's config
    if isinstance(rate, dict):
        schedule = rate["class_name"]
        initial = rate["config"].get("initial_learning_rate")
    else:
        schedule = "constant"
        initial = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    return Description(
        Network(
            hidden_layer_sizes=tuple(hidden),
            activation=activation,
            dropout=tuple(rates),
            input_dropout=input_rate,
            l2=l2,
            max_norm=max_norm,
        ),
        Optimizer(
            optimizer=type(model.optimizer).__name__,
            learning_rate=None if initial is None else float(initial),
            momentum=float(config.get("momentum", 0.0)),
            nesterov=bool(config.get("nesterov", False)),
            schedule=schedule,
            source=model.optimizer,
        ),
    )


def dense_layers(model) -> list:
    """``(kernel, bias, activation name)`` of each Dense layer, in order.

    What an inference engine needs to run the network elsewhere: Dropout is
    the identity at inference, so the Dense layers are the whole network.
    """
    return [
        (
            keras.ops.convert_to_numpy(layer.kernel).astype(np.float32),
            keras.ops.convert_to_numpy(layer.bias).astype(np.float32),
            activation_name(layer.activation),
        )
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense)
    ]


def activation_name(activation) -> str:
    """The Keras name of an activation given by name or as the function."""
    return keras.activations.serialize(keras.activations.get(activation))


def check_activation(activation: str) -> None:
    """Raise a ValueError naming ``activation`` unless a hidden layer can use it.

    Keras knows activations that are no element-wise function of one tensor
    (``"threshold"`` needs more arguments, ``"glu"`` halves its input), so
    the name is checked by building a small Dense layer with it and calling
    it once: its output must have the layer's own shape.
    """
    expected = (
        f"activation must be the name of a Keras activation that maps each unit "
        f"to one value, such as 'relu', 'sigmoid' or 'tanh'; got {activation!r}"
    )
    try:
        keras.activations.get(activation)
        # Zeros: an unseeded initializer would draw from Python's global random.
        layer = keras.layers.Dense(2, activation=activation, kernel_initializer="zeros")
        output = layer(keras.ops.ones((1, 3)))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{expected}.") from exc
    if tuple(output.shape) != (1, 2):
        raise ValueError(
            f"{expected}: it turns 2 units into shape {tuple(output.shape)[1:]}."
        )


def predict_in_batches(model, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Run the compiled forward pass of ``model`` on ``X``, a batch at a time.

    :meth:`keras.Model.predict` builds a data adapter and callbacks on every
    call, and ``predict_on_batch`` converts and (on JAX) writes the model's
    state back on every call: for one image, that is most of the time. The
    forward pass here is compiled once per model (:func:`forward_function`)
    and reused by every call; a few rows are run in numpy instead
    (:mod:`.inference`), which costs less than any call into the backend.
    Chunks of ``batch_size`` rows keep memory bounded for large ``X``.

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
    with backend_lock():
        small = inference.forward(model, X)
        if small is not None:
            return small
        forward = forward_function(model)
        if len(X) <= batch_size:
            return forward(X)
        return np.concatenate(
            [
                forward(X[start : start + batch_size])
                for start in range(0, len(X), batch_size)
            ]
        )


# The compiled forward pass of each model, made on its first prediction.
_FORWARD = weakref.WeakKeyDictionary()


def forward_function(model):
    """``model``'s inference pass as one compiled function, numpy in and out.

    On TensorFlow a ``tf.function`` traced once for any number of rows; on
    JAX a ``jax.jit`` of :meth:`keras.Model.stateless_call` on the model's
    current weights (traced once per number of rows). It reads the
    variables at each call, so weights set later (a warm start, restored
    best weights) are the ones used.
    """
    forward = _FORWARD.get(model)
    if forward is None:
        forward = _FORWARD[model] = _compile_forward(model)
    return forward


def _compile_forward(model):
    # The functions hold the model weakly: a strong reference from the value
    # of _FORWARD to its key would keep every model that ever predicted.
    ref = weakref.ref(model)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        width = model.inputs[0].shape[-1]
        # No autograph: the call has no Python control flow to convert, and
        # autograph writes its converted source to a temporary file, which a
        # process that ends abruptly leaves behind.
        compiled = tf.function(
            lambda x: ref()(x, training=False),
            input_signature=[tf.TensorSpec((None, width), tf.float32)],
            autograph=False,
        )
        return lambda X: compiled(X).numpy()
    if backend == "jax":
        import jax

        @jax.jit
        def compiled(trainable, non_trainable, x):
            return ref().stateless_call(trainable, non_trainable, x, training=False)[0]

        def run(X):
            return np.asarray(
                compiled(
                    [v.value for v in ref().trainable_variables],
                    [v.value for v in ref().non_trainable_variables],
                    X,
                )
            )

        return run
    return lambda X: np.asarray(ref().predict_on_batch(X))
