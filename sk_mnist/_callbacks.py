"""scikit-learn's callback API on the estimator's side (``sklearn.callback``, 1.9+).

:class:`~sk_mnist.KerasMLPClassifier` follows what scikit-learn's own
iterative estimators do (``LogisticRegression``): its fit is one task, opened
after the data are validated, whose subtasks are the epochs; the task ends
with ``reconstruction_attributes={}`` (the estimator is fitted by then). The
epochs are reported from inside the engine's epoch loop by
:class:`sk_mnist._keras.sklearn_callbacks.EpochTasks`; this module imports no
Keras.

With a scikit-learn older than 1.9 there is no ``sklearn.callback``: the
mixin is an empty class, :func:`begin_fit_task` returns None and the
estimator fits as it always did.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import Any

try:
    from sklearn.callback import CallbackSupportMixin, ProgressBar
except ImportError:  # scikit-learn < 1.9

    class CallbackSupportMixin:
        """Stands in for scikit-learn's mixin where it has no callback API."""

    ProgressBar = None

#: Whether this scikit-learn has the callback API (``set_callbacks``).
HAS_CALLBACKS = ProgressBar is not None


@dataclasses.dataclass
class FitTask:
    """One fit of an estimator as a task of scikit-learn's callback API.

    Attributes
    ----------
    estimator : estimator instance
        The estimator being fitted (the one the hooks are called for).
    context : sklearn.callback.CallbackContext
        The fit's root context; one subcontext per epoch is made under it.
    X, y : array-like
        The training data of the task, passed to every hook that asks.
    metadata : dict or None
        ``{"sample_weight": ...}`` when the fit is weighted, as scikit-learn
        passes it.
    """

    estimator: Any
    context: Any
    X: Any
    y: Any
    metadata: dict | None

    @property
    def observed(self) -> bool:
        """Whether any callback sees this fit's tasks (else epochs need no report).

        The hooks of this fit's tasks are those of the estimator's callbacks,
        set on it or propagated to it from a meta-estimator
        (``_skl_callbacks``, the attribute ``set_callbacks`` fills).
        """
        return bool(getattr(self.estimator, "_skl_callbacks", None))

    @property
    def shows_progress(self) -> bool:
        """Whether a ``ProgressBar`` draws this fit or a task around it.

        Keras's own progress output would then be a second display of the
        same fit, interleaved with the first: the engine turns it off. A
        ``ProgressBar`` set on a search whose ``max_propagation_depth`` does
        not reach this fit still draws the search, so every task on the path
        from the root is looked at (``CallbackContext`` keeps its callbacks
        in ``_callbacks``; scikit-learn has no public accessor).
        """
        context = self.context
        while context is not None:
            if any(isinstance(c, ProgressBar) for c in context._callbacks):
                return True
            context = context.parent
        return False

    def epoch_callbacks(self, history, attributes):
        """The Keras callback that reports this fit's epochs, in a list.

        Empty when no callback watches the fit, so that such a fit runs no
        code per epoch. ``history`` is what earlier calls trained
        (``warm_start``, ``partial_fit``); ``attributes(history)`` gives the
        fitted attributes of the estimator with that history, for an
        epoch's ``fitted_estimator``.
        """
        if not self.observed:
            return []
        from ._keras.sklearn_callbacks import EpochTasks

        return [EpochTasks(self, history, attributes)]

    def quiet_keras(self, description):
        """``description`` with Keras's own progress output off under a ProgressBar."""
        if not self.shows_progress:
            return description
        plan = dataclasses.replace(description.plan, verbose=0)
        return dataclasses.replace(description, plan=plan)

    def end(self):
        """End the fit task: the estimator is fitted, so nothing is rebuilt."""
        self.context.call_on_fit_task_end(
            estimator=self.estimator,
            X=self.X,
            y=self.y,
            metadata=self.metadata,
            reconstruction_attributes={},
        )


def begin_fit_task(estimator, X, y, sample_weight=None, *, epochs):
    """Open ``estimator``'s fit task with ``epochs`` subtasks; None without the API.

    ``epochs=0`` makes the task a leaf, for an estimator fitted in one step
    (:class:`~sk_mnist.MNISTFlattener`).

    Called once per fit, after the data are validated, inside the fit's
    ``_fit_context`` (whose exit tears the callbacks down, whatever happens).
    """
    if not HAS_CALLBACKS:
        return None
    metadata = None if sample_weight is None else {"sample_weight": sample_weight}
    context = estimator._init_callback_context(max_subtasks=epochs)
    context.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=metadata)
    return FitTask(estimator, context, X, y, metadata)


@contextmanager
def callbacks_set_aside(estimator):
    """Take the callbacks off ``estimator`` and every estimator in it, for the block.

    Callbacks watch fits; they are no part of a fitted model. A pickle
    carries them (that is how a search's worker processes get them), but a
    model file must not: loading it would need scikit-learn's callback
    types (and their listeners' addresses) to be trusted. ``clone`` passes
    callbacks on, so a search's ``best_estimator_`` or a pipeline's steps
    may hold them too: every estimator reachable through attributes, lists,
    tuples and dicts is looked at.
    """
    set_aside = []
    for inner in _estimators_in(estimator):
        if "_skl_callbacks" in vars(inner):
            set_aside.append((inner, vars(inner).pop("_skl_callbacks")))
    try:
        yield estimator
    finally:
        for inner, callbacks in set_aside:
            vars(inner)["_skl_callbacks"] = callbacks


def _estimators_in(value, seen=None):
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, list | tuple):
        for item in value:
            yield from _estimators_in(item, seen)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _estimators_in(item, seen)
    elif hasattr(value, "get_params") and hasattr(value, "__dict__"):
        yield value
        for item in vars(value).values():
            yield from _estimators_in(item, seen)
