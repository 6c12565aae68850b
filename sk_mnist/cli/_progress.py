"""Progress on a terminal through scikit-learn's ``ProgressBar`` (1.9+)."""

from __future__ import annotations

from .._callbacks import HAS_CALLBACKS


def show(estimator):
    """Draw ``estimator``'s fit, its sub-estimators' and their epochs as one view.

    Without scikit-learn's callback API (before 1.9), Keras's own bar of
    each fit stays, as it was.
    """
    if HAS_CALLBACKS:
        from sklearn.callback import ProgressBar

        estimator.set_callbacks(ProgressBar(max_propagation_depth=None))


def hide(estimator):
    """Take the bar off again, so that what is saved holds no callback."""
    if HAS_CALLBACKS:
        estimator.set_callbacks()
