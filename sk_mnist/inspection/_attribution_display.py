"""AttributionDisplay: occlusion attributions drawn over the digits."""

from __future__ import annotations

import numpy as np

from ..plotting._base import grid_columns, make_axes
from ._attributions import occlusion_attributions
from ._checks import finite_numbers, one_per_image


class AttributionDisplay:
    """Which pixels pushed a class up (red) or down (blue), over each digit.

    Each panel draws the digit in grey and, over it, its attributions in a
    diverging colour map centred on 0, scaled to the panel's largest
    absolute value and transparent where the attribution is 0. Create it
    with :meth:`from_estimator` or :meth:`from_attributions`; the
    constructor only stores.

    Parameters
    ----------
    images : ndarray of shape (n_images, h, w)
        The digits.
    attributions : ndarray of shape (n_images, h, w)
        One map per digit, as :func:`occlusion_attributions` returns.
    target : ndarray of shape (n_images,), default=None
        The explained class of each digit, for the titles.
    target_proba : ndarray of shape (n_images,), default=None
        Its probability, for the titles.
    y_true : ndarray of shape (n_images,), default=None
        The true labels, for the titles.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure.
    axes_ : ndarray of matplotlib.axes.Axes
        One axes per digit.
    overlays_ : list of matplotlib.image.AxesImage
        The drawn maps, one per digit (the digit is the axes' first image).

    See Also
    --------
    occlusion_attributions : Computes the maps.
    FirstLayerWeightsDisplay : What the first hidden layer looks for.
    sk_mnist.plotting.DigitGridDisplay : The digits with their predictions.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sk_mnist.inspection import AttributionDisplay
    >>> images = np.zeros((2, 28, 28))
    >>> maps = np.zeros((2, 28, 28))
    >>> maps[0, 10, 10], maps[1, 5, 5] = 0.5, -0.2
    >>> display = AttributionDisplay.from_attributions(
    ...     images, maps, target=[3, 8], target_proba=[0.9, 0.6])
    >>> [ax.get_title() for ax in display.axes_]
    ['Class 3 (0.90)', 'Class 8 (0.60)']
    >>> display.overlays_[1].get_clim()
    (-0.2, 0.2)
    """

    def __init__(
        self, images, attributions, *, target=None, target_proba=None, y_true=None
    ):
        self.images = images
        self.attributions = attributions
        self.target = target
        self.target_proba = target_proba
        self.y_true = y_true

    def plot(self, *, ax=None, ncols=None, cmap="RdBu_r", digit_cmap="gray_r"):
        """Draw each digit with its attributions over it.

        Parameters
        ----------
        ax : sequence of matplotlib Axes, default=None
            One axes per digit; ``None`` makes a new figure.
        ncols : int >= 1, default=None
            Columns of a new figure's grid, at most one per digit; the square
            root of the number of digits by default. Each digit is its own
            matplotlib Axes, so drawing hundreds takes tens of seconds: draw
            a selection.
        cmap : str, default="RdBu_r"
            Diverging colour map of the attributions: red up, blue down.
        digit_cmap : str, default="gray_r"
            Colour map of the digit underneath.

        Returns
        -------
        display : AttributionDisplay
            This object, with ``figure_``, ``axes_`` and ``overlays_`` set.
        """
        images = np.asarray(self.images)
        maps = np.asarray(self.attributions, dtype=float)
        n = len(images)
        ncols = grid_columns(ncols, n)
        figure, axes = make_axes(
            ax, n, ncols=ncols, figsize=(2.2 * ncols, 2.4 * np.ceil(n / ncols))
        )
        overlays = []
        for i, axis in enumerate(axes):
            axis.imshow(images[i], cmap=digit_cmap, alpha=0.35, interpolation="nearest")
            largest = float(np.abs(maps[i]).max()) or 1.0
            overlays.append(
                axis.imshow(
                    maps[i],
                    cmap=cmap,
                    vmin=-largest,
                    vmax=largest,
                    alpha=np.clip(np.abs(maps[i]) / largest, 0.0, 1.0),
                    interpolation="nearest",
                )
            )
            axis.set_title(self._title(i), fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
        figure.tight_layout()
        self.figure_, self.axes_, self.overlays_ = figure, np.asarray(axes), overlays
        return self

    def _title(self, i):
        parts = []
        if self.target is not None:
            parts.append(f"Class {self.target[i]}")
            if self.target_proba is not None:
                parts.append(f"({self.target_proba[i]:.2f})")
        if self.y_true is not None:
            parts.append(f"Label: {self.y_true[i]}")
        return " ".join(parts)

    @classmethod
    def from_attributions(
        cls,
        images,
        attributions,
        *,
        target=None,
        target_proba=None,
        y_true=None,
        ax=None,
        ncols=None,
        cmap="RdBu_r",
    ):
        """Draw given attributions over given digits.

        Parameters
        ----------
        images : array-like of shape (n_images, h, w)
            The digits, of finite numbers.
        attributions : array-like of shape (n_images, h, w)
            One map per digit, of finite numbers.
        target : array-like of shape (n_images,), default=None
            The explained classes, for the titles.
        target_proba : array-like of shape (n_images,), default=None
            Their probabilities (finite numbers), for the titles.
        y_true : array-like of shape (n_images,), default=None
            The true labels, for the titles.
        ax : sequence of matplotlib Axes, default=None
            Where to draw.
        ncols : int >= 1, default=None
            Columns of a new figure's grid, as in :meth:`plot`.
        cmap : str, default="RdBu_r"
            Diverging colour map of the attributions.

        Returns
        -------
        display : AttributionDisplay
            The drawn display.
        """
        images, maps = np.asarray(images), np.asarray(attributions)
        if images.ndim != 3 or images.shape != maps.shape:
            raise ValueError(
                f"images and attributions must have the same shape (n_images, h, "
                f"w), got {images.shape} and {maps.shape}."
            )
        if len(images) == 0:
            raise ValueError("There are no images to draw (got 0).")
        # NaN or infinite values would reach matplotlib as a NaN scale and
        # transparency, and a digit drawn blank.
        images = finite_numbers(images, "images")
        maps = finite_numbers(maps, "attributions")
        target = one_per_image(target, "target", len(images))
        target_proba = one_per_image(target_proba, "target_proba", len(images))
        if target_proba is not None:
            target_proba = finite_numbers(target_proba, "target_proba")
        y_true = one_per_image(y_true, "y_true", len(images))
        return cls(
            images, maps, target=target, target_proba=target_proba, y_true=y_true
        ).plot(ax=ax, ncols=ncols, cmap=cmap)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y=None,
        *,
        target=None,
        window=(2, 2),
        stride=1,
        output="log_odds",
        ax=None,
        ncols=None,
        cmap="RdBu_r",
    ):
        """Compute the occlusion attributions of ``X`` and draw them.

        Parameters
        ----------
        estimator : fitted classifier or Pipeline
            Has ``predict_proba``; any pipeline (a PCA in front included).
        X : array-like of shape (n_images, h, w) or (n_images, h * w)
            The digits to explain (a few: each is evaluated once per window
            position).
        y : array-like of shape (n_images,), default=None
            Their labels, shown in the titles when given.
        target : class label, array-like or None, default=None
            The class to explain; ``None`` explains each predicted class.
        window : int or tuple of (int, int), default=(2, 2)
            Height and width of the occluding window.
        stride : int or tuple of (int, int), default=1
            Step between window positions, at most the window.
        output : {"log_odds", "probability"}, default="log_odds"
            The score whose drop is attributed.
        ax : sequence of matplotlib Axes, default=None
            Where to draw.
        ncols : int >= 1, default=None
            Columns of a new figure's grid, as in :meth:`plot`.
        cmap : str, default="RdBu_r"
            Diverging colour map of the attributions.

        Returns
        -------
        display : AttributionDisplay
            The drawn display.
        """
        result = occlusion_attributions(
            estimator, X, target=target, window=window, stride=stride, output=output
        )
        return cls.from_attributions(
            result.images,
            result.attributions,
            target=result.target,
            target_proba=result.target_proba,
            y_true=y,
            ax=ax,
            ncols=ncols,
            cmap=cmap,
        )
