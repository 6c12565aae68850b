"""The epochs of a fit as tasks of scikit-learn's callback API.

:class:`EpochTasks` is a Keras callback that the engine puts in a fit's
callback list when scikit-learn callbacks observe the fit (see
:mod:`sk_mnist._callbacks`). Keras calls it at each epoch's begin and end;
it makes the epoch a subtask of the fit task and calls scikit-learn's hooks
there, as ``LogisticRegression`` does for its solver's iterations:

- ``on_fit_task_begin`` and ``on_fit_task_end`` get the fit's ``X``, ``y``
  and metadata, and, only for a callback whose hook asks for a
  ``fitted_estimator``, an estimator that predicts as the network stands
  then (its fitted attributes are computed only when asked for);
- a hook's ``on_fit_task_end`` that returns True stops training after that
  epoch, through Keras's ``model.stop_training``, which the epoch loop
  honours as it does for early stopping.

The ``fitted_estimator`` shares the network being trained: it predicts as
the network stood at that epoch while the hook runs (which is when
scikit-learn's callbacks use it), not after training went on.
"""

from __future__ import annotations

import keras


class EpochTasks(keras.callbacks.Callback):
    """Report each epoch to scikit-learn's callbacks; stop when one asks.

    Parameters
    ----------
    task : sk_mnist._callbacks.FitTask
        The fit's task: its root context, estimator, data and metadata.
    history : dict of str to list of float
        What earlier calls trained (``warm_start``, ``partial_fit``).
    attributes : callable
        ``attributes(history)`` returns the estimator's fitted attributes
        with ``history`` (``history`` extended by this fit's epochs so far),
        as a dict for scikit-learn's ``reconstruction_attributes``.
    """

    def __init__(self, task, history, attributes):
        super().__init__()
        self.task = task
        self.history = history
        self.attributes = attributes
        self.logs = []
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = self.task.context.subcontext(task_name="epoch")
        self._epoch.call_on_fit_task_begin(**self._hook_arguments())

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs or {}))
        stop = self._epoch.call_on_fit_task_end(**self._hook_arguments())
        self._epoch = None
        if stop:
            self.model.stop_training = True

    def _hook_arguments(self):
        done = list(self.logs)
        return dict(
            estimator=self.task.estimator,
            X=self.task.X,
            y=self.task.y,
            metadata=self.task.metadata,
            # scikit-learn calls this only for a hook with fitted_estimator.
            reconstruction_attributes=lambda: self.attributes(self._so_far(done)),
        )

    def _so_far(self, logs):
        """The history after the epochs of this fit whose logs are ``logs``."""
        history = {key: list(values) for key, values in self.history.items()}
        for entry in logs:
            for key, value in entry.items():
                history.setdefault(key, []).append(value)
        return history
