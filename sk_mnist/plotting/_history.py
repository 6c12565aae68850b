"""TrainingHistoryDisplay: accuracy and loss per epoch, the tutorials' curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._base import final_estimator, make_axes

_LABELS = {"loss": "Loss", "accuracy": "Accuracy"}


class TrainingHistoryDisplay:
    """Training and validation curves per epoch, one panel per metric.

    Create it with :meth:`from_estimator` or :meth:`from_history`; the
    constructor only stores the history.

    Parameters
    ----------
    history : dict of str to list of float
        Per-epoch values, as :attr:`KerasMLPClassifier.history_` or Keras's
        ``History.history``: ``loss``, ``accuracy`` and their ``val_`` twins.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure of the plot.
    axes_ : ndarray of matplotlib.axes.Axes
        One axes per metric.
    lines_ : dict of str to matplotlib.lines.Line2D
        The drawn curves, keyed by history key (``"loss"``, ``"val_loss"``...).

    See Also
    --------
    KerasMLPClassifier : Records the history in ``history_``.
    sklearn.model_selection.LearningCurveDisplay : Scores against training size.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sk_mnist.plotting import TrainingHistoryDisplay
    >>> history = {"loss": [0.3, 0.1], "val_loss": [0.2, 0.15],
    ...            "accuracy": [0.9, 0.97], "val_accuracy": [0.93, 0.96]}
    >>> display = TrainingHistoryDisplay.from_history(history)
    >>> [ax.get_title() for ax in display.axes_]
    ['Loss', 'Accuracy']
    >>> sorted(display.lines_)
    ['accuracy', 'loss', 'val_accuracy', 'val_loss']
    """

    def __init__(self, history: Mapping[str, Sequence[float]]):
        self.history = history

    def plot(self, metrics=("loss", "accuracy"), *, ax=None):
        """Draw the curves.

        Parameters
        ----------
        metrics : sequence of str, default=("loss", "accuracy")
            The metrics to draw, one panel each; each must be in the history.
        ax : matplotlib Axes or sequence of Axes, default=None
            Where to draw, one axes per metric. ``None`` makes a new figure.

        Returns
        -------
        display : TrainingHistoryDisplay
            This object, with ``figure_``, ``axes_`` and ``lines_`` set.
        """
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        if not metrics:
            raise ValueError("metrics must name at least one metric, got [].")
        missing = [m for m in metrics if m not in self.history]
        if missing:
            raise ValueError(
                f"metrics {missing} are not in the history, which holds "
                f"{sorted(self.history)}."
            )
        figure, axes = make_axes(ax, len(metrics), figsize=(5 * len(metrics), 4))
        lines = {}
        for axis, metric in zip(axes, metrics, strict=True):
            for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
                if key in self.history:
                    values = np.asarray(self.history[key], dtype=float)
                    epochs = np.arange(1, len(values) + 1)
                    (lines[key],) = axis.plot(epochs, values, marker="o", label=label)
            axis.set_title(_LABELS.get(metric, metric))
            axis.set_xlabel("Epoch")
            axis.set_ylabel(_LABELS.get(metric, metric))
            axis.legend()
        self.figure_, self.axes_, self.lines_ = figure, np.asarray(axes), lines
        return self

    @classmethod
    def from_history(cls, history, *, metrics=("loss", "accuracy"), ax=None):
        """Plot a history dict, as Keras's ``History.history`` holds it.

        Parameters
        ----------
        history : dict of str to list of float
            Per-epoch values.
        metrics : sequence of str, default=("loss", "accuracy")
            The metrics to draw.
        ax : matplotlib Axes or sequence of Axes, default=None
            Where to draw.

        Returns
        -------
        display : TrainingHistoryDisplay
            The drawn display.
        """
        if not isinstance(history, Mapping):
            raise TypeError(
                f"history must be a dict of per-epoch lists, got "
                f"{type(history).__name__}."
            )
        return cls(dict(history)).plot(metrics, ax=ax)

    @classmethod
    def from_estimator(cls, estimator, *, metrics=("loss", "accuracy"), ax=None):
        """Plot the history of a fitted KerasMLPClassifier.

        Parameters
        ----------
        estimator : KerasMLPClassifier, Pipeline or fitted search
            A fitted classifier, a Pipeline ending in one, or a fitted
            ``GridSearchCV``/``RandomizedSearchCV`` (its best estimator).
        metrics : sequence of str, default=("loss", "accuracy")
            The metrics to draw.
        ax : matplotlib Axes or sequence of Axes, default=None
            Where to draw.

        Returns
        -------
        display : TrainingHistoryDisplay
            The drawn display.
        """
        return cls(final_estimator(estimator, "history_").history_).plot(metrics, ax=ax)
