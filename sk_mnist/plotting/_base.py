"""What the Displays share: finding the fitted classifier, a grid, axes."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils.validation import check_is_fitted


def final_estimator(estimator, attribute: str):
    """The fitted estimator that holds ``attribute``.

    Accepts the estimator itself, a Pipeline ending in it, or a fitted search
    (its ``best_estimator_``, itself possibly a Pipeline).
    """
    if hasattr(estimator, "best_estimator_"):
        estimator = estimator.best_estimator_
    elif hasattr(estimator, "cv_results_"):
        raise ValueError(
            "The search was fitted with refit=False, so it has no best estimator "
            "to plot; refit it with refit=True."
        )
    if hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    check_is_fitted(estimator)
    if not hasattr(estimator, attribute):
        raise TypeError(
            f"{type(estimator).__name__} has no {attribute}; expected a fitted "
            f"KerasMLPClassifier, a Pipeline ending in one, or a search over one."
        )
    return estimator


def grid_columns(ncols, n_panels):
    """Columns of a new figure's grid of ``n_panels``, from ``ncols``.

    ``None`` is the square root of the number of panels; more columns than
    panels are as many as the panels (one row, no empty axes).
    """
    if ncols is None:
        return int(np.ceil(np.sqrt(n_panels)))
    if isinstance(ncols, bool) or not isinstance(ncols, Integral) or ncols < 1:
        raise ValueError(f"ncols must be None or an integer >= 1, got {ncols!r}.")
    return int(min(ncols, n_panels))


def make_axes(ax, n, *, figsize, ncols=None):
    """``n`` axes: the user's (one or a sequence), else a new figure's."""
    import matplotlib.pyplot as plt

    if ax is None:
        ncols = ncols or n
        nrows = int(np.ceil(n / ncols))
        figure, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
        axes = list(axes.ravel())
        for extra in axes[n:]:
            extra.set_visible(False)
        return figure, axes[:n]
    axes = list(np.ravel(ax)) if np.ndim(ax) else [ax]
    if len(axes) != n:
        raise ValueError(f"ax must hold {n} axes, one per panel; got {len(axes)}.")
    return axes[0].figure, axes
