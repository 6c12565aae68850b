"""DigitGridDisplay: digits titled "Predicted: p Label: l", mistakes in colour."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._utils._pixels import rows_to_images
from ._base import grid_columns, make_axes

ERROR_COLOR = "tab:red"


class DigitGridDisplay:
    """A grid of digit images, each titled with its predicted and true label.

    The classic tutorials show a 3x3 grid titled "Predicted: p Label: l".
    Mistakes are titled in red; with probabilities, the probability of the
    predicted class follows the prediction.

    Parameters
    ----------
    images : ndarray of shape (n_images, h, w)
        The digits to draw.
    y_true : ndarray of shape (n_images,)
        Their labels.
    y_pred : ndarray of shape (n_images,)
        The predicted labels.
    proba : ndarray of shape (n_images,), default=None
        The probability of each predicted label, shown when given.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure of the plot.
    axes_ : ndarray of matplotlib.axes.Axes
        One axes per image.
    errors_ : ndarray of bool of shape (n_images,)
        Which images are mistakes (drawn with red titles).

    See Also
    --------
    sklearn.metrics.ConfusionMatrixDisplay : The counts behind the mistakes.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sk_mnist.plotting import DigitGridDisplay
    >>> images = np.zeros((4, 28, 28))
    >>> display = DigitGridDisplay.from_predictions(images, [1, 2, 3, 4], [1, 2, 5, 4])
    >>> display.axes_[2].get_title(), display.errors_.tolist()
    ('Predicted: 5 Label: 3', [False, False, True, False])
    """

    def __init__(self, images, y_true, y_pred, proba=None):
        self.images = images
        self.y_true = y_true
        self.y_pred = y_pred
        self.proba = proba

    def plot(self, *, ax=None, ncols=None, cmap="gray_r"):
        """Draw the grid.

        Parameters
        ----------
        ax : sequence of matplotlib Axes, default=None
            One axes per image; ``None`` makes a new figure.
        ncols : int, default=None
            Columns of a new figure's grid; the square root of the number of
            images by default (3 for 9 images).
        cmap : str, default="gray_r"
            Colour map, dark ink on white like the tutorials.

        Returns
        -------
        display : DigitGridDisplay
            This object, with ``figure_``, ``axes_`` and ``errors_`` set.
        """
        images = np.asarray(self.images)
        n = len(images)
        ncols = grid_columns(ncols, n)
        figure, axes = make_axes(
            ax, n, ncols=ncols, figsize=(2.2 * ncols, 2.4 * np.ceil(n / ncols))
        )
        y_true, y_pred = np.asarray(self.y_true), np.asarray(self.y_pred)
        errors = y_true != y_pred
        for i, axis in enumerate(axes):
            axis.imshow(images[i], cmap=cmap, interpolation="nearest")
            title = f"Predicted: {y_pred[i]} Label: {y_true[i]}"
            if self.proba is not None:
                title = (
                    f"Predicted: {y_pred[i]} ({self.proba[i]:.2f}) Label: {y_true[i]}"
                )
            axis.set_title(
                title, color=ERROR_COLOR if errors[i] else "black", fontsize=9
            )
            axis.set_xticks([])
            axis.set_yticks([])
        figure.tight_layout()
        self.figure_, self.axes_, self.errors_ = figure, np.asarray(axes), errors
        return self

    @classmethod
    def from_predictions(cls, images, y_true, y_pred, *, proba=None, ax=None):
        """Draw given images with given labels and predictions.

        Parameters
        ----------
        images : array-like of shape (n_images, h, w) or (n_images, h * w)
            The digits; flat rows of a square number of pixels are reshaped.
        y_true : array-like of shape (n_images,)
            Their labels.
        y_pred : array-like of shape (n_images,)
            The predictions.
        proba : array-like of shape (n_images,), default=None
            The probability of each prediction, shown when given.
        ax : sequence of matplotlib Axes, default=None
            Where to draw.

        Returns
        -------
        display : DigitGridDisplay
            The drawn display.
        """
        images = rows_to_images(images)
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if not len(images) == len(y_true) == len(y_pred):
            raise ValueError(
                f"images, y_true and y_pred must have the same length, got "
                f"{len(images)}, {len(y_true)} and {len(y_pred)}."
            )
        if len(images) == 0:
            raise ValueError("There are no images to draw (got 0).")
        return cls(images, y_true, y_pred, proba).plot(ax=ax)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        n_images=9,
        random_state=None,
        only_errors=False,
        show_proba=False,
        ax=None,
    ):
        """Predict ``X`` and draw ``n_images`` of the digits with their labels.

        Parameters
        ----------
        estimator : fitted classifier or Pipeline
            Predicts ``X`` as given (images or flat rows).
        X : array-like of shape (n_samples, h, w) or (n_samples, h * w)
            The digits.
        y : array-like of shape (n_samples,)
            Their labels.
        n_images : int, default=9
            How many digits to draw (a 3x3 grid by default).
        random_state : int, RandomState instance or None, default=None
            Draws which digits to show; ``None`` shows the first ones.
        only_errors : bool, default=False
            Show only misclassified digits.
        show_proba : bool, default=False
            Show the probability of each prediction (needs ``predict_proba``).
        ax : sequence of matplotlib Axes, default=None
            Where to draw.

        Returns
        -------
        display : DigitGridDisplay
            The drawn display.
        """
        if not isinstance(n_images, int | np.integer) or n_images < 1:
            raise ValueError(f"n_images must be a positive integer, got {n_images!r}.")
        check_is_fitted(estimator)
        y = np.asarray(y)
        if len(X) != len(y):
            raise ValueError(
                f"X and y must have the same length, got {len(X)} and {len(y)}."
            )
        if show_proba:
            proba_all = estimator.predict_proba(X)
            classes = estimator.classes_
            y_pred = classes[np.argmax(proba_all, axis=1)]
            proba = proba_all.max(axis=1)
        else:
            y_pred, proba = np.asarray(estimator.predict(X)), None
        candidates = np.flatnonzero(y_pred != y) if only_errors else np.arange(len(y))
        if len(candidates) == 0:
            raise ValueError("There are no misclassified digits to show.")
        n = min(n_images, len(candidates))
        if random_state is not None:
            chosen = check_random_state(random_state).choice(
                candidates, n, replace=False
            )
        else:
            chosen = candidates[:n]
        return cls.from_predictions(
            rows_to_images(X)[chosen],
            y[chosen],
            y_pred[chosen],
            proba=None if proba is None else proba[chosen],
            ax=ax,
        )
