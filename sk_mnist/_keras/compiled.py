"""An epoch as a few compiled programs on JAX: a scan over the batches.

Keras's JAX trainer calls one compiled step per batch from Python (its
``steps_per_execution`` loops in Python too), so a small network spends much
of an epoch in dispatch. Here ``steps`` batches at a time run as one XLA
program: :func:`jax.lax.scan` over Keras's own stateless
:meth:`~keras.Model.train_step`, with the batches gathered on the device from
the epoch's permutation. Keras does not offer this, so it is written here;
the update of each batch is Keras's, so are the loss, the regularization,
the constraints, the metrics and the optimizer.

The model's variables are written back after every chunk, so callbacks see
the model as Keras's ``fit`` would show it after a chunk of
``steps_per_execution`` steps.
"""

from __future__ import annotations

import weakref

import jax
import jax.numpy as jnp

# The compiled chunks of each model, by (batch size, steps, weighted): a
# partial_fit call or the next fit of a warm start reuses them.
_COMPILED = weakref.WeakKeyDictionary()


class CompiledEpochs:
    """Runs epochs of ``model`` on ``X, Y, W`` in chunks of ``steps`` batches.

    Parameters
    ----------
    model : keras.Model
        A compiled model on the JAX backend, trained in place.
    X, Y, W : jax arrays
        The inputs, one-hot targets and sample weights (``W`` may be None).
    batch_size : int
        Samples per step; a last, smaller batch gets a program of its own.
    steps : int
        Batches per compiled chunk (Keras's ``steps_per_execution``).
    """

    def __init__(self, model, X, Y, W, *, batch_size, steps):
        self.model, self.data = model, (X, Y, W)
        self.batch_size, self.steps = batch_size, steps
        self.n_full, self.rest = divmod(len(X), batch_size)
        # What Keras's fit does before its first step: build the optimizer,
        # the loss and the metrics (symbolically, from the first sample);
        # there is no public spelling short of running fit or evaluate.
        model._symbolic_build(data_batch=(X[:1], Y[:1]))

    def chunks(self):
        """``(first step, last step, compiled function, first sample)`` per chunk."""
        step = 0
        while step < self.n_full:
            n = min(self.steps, self.n_full - step)
            yield (
                step,
                step + n - 1,
                self._compiled(self.batch_size, n),
                (step * self.batch_size),
            )
            step += n
        if self.rest:
            yield step, step, self._compiled(self.rest, 1), step * self.batch_size

    def run(self, order, callbacks):
        """Train one epoch in the order ``order``; stop when a callback says so.

        Batch hooks are called once per chunk, with the first and the last
        step of the chunk, as Keras's ``fit`` does with
        ``steps_per_execution``.
        """
        model = self.model
        order = jnp.asarray(order)
        for begin, end, function, start in self.chunks():
            callbacks.on_train_batch_begin(begin)
            state, logs = function(self._state(), *self.data, order, start)
            self._write(state)
            callbacks.on_train_batch_end(end, logs)
            if model.stop_training:
                break

    def _state(self):
        model = self.model
        return (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
            [v.value for v in model.metrics_variables],
        )

    def _write(self, state):
        model = self.model
        groups = (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )
        for variables, values in zip(groups, state, strict=True):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)

    def _compiled(self, batch_size, steps):
        weighted = self.data[2] is not None
        cache = _COMPILED.setdefault(self.model, {})
        key = (batch_size, steps, weighted)
        if key not in cache:
            cache[key] = _chunk_function(self.model, batch_size, steps, weighted)
        return cache[key]


def _chunk_function(model, batch_size, steps, weighted):
    """One XLA program: ``steps`` train steps from sample ``start`` of ``order``.

    It holds the model weakly, so that ``_COMPILED`` does not keep it alive.
    """
    model = weakref.proxy(model)

    def chunk(state, X, Y, W, order, start):
        def step(state, i):
            rows = jax.lax.dynamic_slice_in_dim(
                order, start + i * batch_size, batch_size
            )
            batch = (X[rows], Y[rows], W[rows]) if weighted else (X[rows], Y[rows])
            logs, state = model.train_step(state, batch)
            return state, logs

        state, logs = jax.lax.scan(step, state, jnp.arange(steps))
        return state, jax.tree_util.tree_map(lambda values: values[-1], logs)

    return jax.jit(chunk)
