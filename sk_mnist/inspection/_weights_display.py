"""FirstLayerWeightsDisplay: the first hidden layer's weights as images."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._flattener import MNISTFlattener
from .._utils._pixels import square_shape
from ..plotting._base import grid_columns, make_axes
from ._checks import finite_numbers


class FirstLayerWeightsDisplay:
    """Each hidden unit's incoming weights, drawn in the shape of the image.

    What scikit-learn's gallery draws for an
    :class:`~sklearn.neural_network.MLPClassifier` on MNIST ("Visualization
    of MLP weights on MNIST"), as a Display: one panel per unit, in a
    diverging colour map centred on 0 with one scale for all panels, so that
    red pixels excite the unit, blue ones inhibit it, and units compare.
    Create it with :meth:`from_estimator` or :meth:`from_weights`; the
    constructor only stores.

    Parameters
    ----------
    weights : ndarray of shape (n_units, h, w)
        The weights of the units drawn.
    units : ndarray of int of shape (n_units,)
        Which units they are (the columns of the kernel), for the titles.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure.
    axes_ : ndarray of matplotlib.axes.Axes
        One axes per unit.
    images_ : list of matplotlib.image.AxesImage
        The drawn weights, one per unit.

    See Also
    --------
    AttributionDisplay : Which pixels decided a given digit.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sk_mnist.inspection import FirstLayerWeightsDisplay
    >>> kernel = np.random.default_rng(0).normal(size=(784, 32))
    >>> display = FirstLayerWeightsDisplay.from_weights(kernel, units=[0, 5])
    >>> [ax.get_title() for ax in display.axes_]
    ['Unit 0', 'Unit 5']
    >>> display.images_[1].get_array().shape
    (28, 28)
    """

    def __init__(self, weights, units):
        self.weights = weights
        self.units = units

    def plot(self, *, ax=None, ncols=None, cmap="RdBu_r"):
        """Draw one panel per unit.

        Parameters
        ----------
        ax : sequence of matplotlib Axes, default=None
            One axes per unit; ``None`` makes a new figure.
        ncols : int >= 1, default=None
            Columns of a new figure's grid, at most one per unit; the square
            root of the number of units by default (4 for 16). Each unit is
            its own matplotlib Axes, so drawing hundreds takes tens of
            seconds: draw a selection (``units``).
        cmap : str, default="RdBu_r"
            Diverging colour map, centred on 0.

        Returns
        -------
        display : FirstLayerWeightsDisplay
            This object, with ``figure_``, ``axes_`` and ``images_`` set.
        """
        weights = np.asarray(self.weights, dtype=float)
        n = len(weights)
        ncols = grid_columns(ncols, n)
        figure, axes = make_axes(
            ax, n, ncols=ncols, figsize=(1.8 * ncols, 2.0 * np.ceil(n / ncols))
        )
        largest = float(np.abs(weights).max()) or 1.0
        drawn = []
        for axis, unit, unit_weights in zip(axes, self.units, weights, strict=True):
            drawn.append(
                axis.imshow(
                    unit_weights,
                    cmap=cmap,
                    vmin=-largest,
                    vmax=largest,
                    interpolation="nearest",
                )
            )
            axis.set_title(f"Unit {unit}", fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
        figure.tight_layout()
        self.figure_, self.axes_, self.images_ = figure, np.asarray(axes), drawn
        return self

    @classmethod
    def from_weights(
        cls,
        kernel,
        *,
        image_shape=None,
        n_units=16,
        units=None,
        ax=None,
        ncols=None,
        cmap="RdBu_r",
    ):
        """Draw the columns of a first-layer kernel as images.

        Parameters
        ----------
        kernel : array-like of shape (n_pixels, n_hidden)
            The first Dense layer's kernel, as Keras stores it (one column of
            incoming weights per unit); finite numbers (a network whose
            training diverged to NaN has none to draw).
        image_shape : tuple of (int, int), default=None
            Height and width of the input images, integers >= 1 whose product
            is ``n_pixels``; ``None`` takes the square of ``n_pixels`` (28x28
            for 784).
        n_units : int, default=16
            How many units to draw, the first ones, when ``units`` is None.
        units : array-like of int, default=None
            Which units to draw, by index; overrides ``n_units``.
        ax : sequence of matplotlib Axes, default=None
            Where to draw.
        ncols : int >= 1, default=None
            Columns of a new figure's grid, as in :meth:`plot`.
        cmap : str, default="RdBu_r"
            Diverging colour map, centred on 0.

        Returns
        -------
        display : FirstLayerWeightsDisplay
            The drawn display.
        """
        kernel = np.asarray(kernel)
        if kernel.ndim != 2 or 0 in kernel.shape:
            raise ValueError(
                f"kernel must be a matrix of shape (n_pixels, n_hidden), got shape "
                f"{kernel.shape}."
            )
        kernel = finite_numbers(kernel, "kernel")
        n_pixels, n_hidden = kernel.shape
        image_shape = _image_shape(image_shape, n_pixels)
        units = _units(units, n_units, n_hidden)
        weights = kernel[:, units].T.reshape(len(units), *image_shape)
        return cls(weights, units).plot(ax=ax, ncols=ncols, cmap=cmap)

    @classmethod
    def from_estimator(
        cls, estimator, *, n_units=16, units=None, ax=None, ncols=None, cmap="RdBu_r"
    ):
        """Draw the first hidden layer of a fitted KerasMLPClassifier.

        Parameters
        ----------
        estimator : KerasMLPClassifier, Pipeline or fitted search
            A fitted classifier, a Pipeline whose steps before it are
            :class:`~sk_mnist.MNISTFlattener` (or ``"passthrough"``), or a
            fitted search over either (its best estimator). A step that
            changes the features (a PCA, a scaler) is refused: the weights
            would not be in pixel space.
        n_units : int, default=16
            How many units to draw, the first ones, when ``units`` is None.
        units : array-like of int, default=None
            Which units to draw, by index; overrides ``n_units``.
        ax : sequence of matplotlib Axes, default=None
            Where to draw.
        ncols : int >= 1, default=None
            Columns of a new figure's grid, as in :meth:`plot`.
        cmap : str, default="RdBu_r"
            Diverging colour map, centred on 0.

        Returns
        -------
        display : FirstLayerWeightsDisplay
            The drawn display.
        """
        classifier, image_shape = _classifier_and_shape(estimator)
        return cls.from_weights(
            _first_kernel(classifier),
            image_shape=image_shape,
            n_units=n_units,
            units=units,
            ax=ax,
            ncols=ncols,
            cmap=cmap,
        )


def _classifier_and_shape(estimator):
    """The fitted network and the image shape its first layer reads."""
    if hasattr(estimator, "best_estimator_"):
        estimator = estimator.best_estimator_
    image_shape = None
    if hasattr(estimator, "steps"):
        for name, step in estimator.steps[:-1]:
            if not (
                step is None
                or isinstance(step, MNISTFlattener)
                or (isinstance(step, str) and step == "passthrough")
            ):
                raise ValueError(
                    f"The pipeline's step {name!r} ({type(step).__name__}) changes "
                    f"the features before the network, so its first layer's "
                    f"weights are not in pixel space; draw a pipeline with only an "
                    f"MNISTFlattener before the classifier, or explain digits with "
                    f"AttributionDisplay, which works through any pipeline."
                )
        for _, step in estimator.steps[:-1]:
            if isinstance(step, MNISTFlattener):
                check_is_fitted(step)
                image_shape = step.image_shape_
        estimator = estimator.steps[-1][1]
    check_is_fitted(estimator)
    if not hasattr(estimator, "model_"):
        raise TypeError(
            f"{type(estimator).__name__} has no model_; expected a fitted "
            f"KerasMLPClassifier, a Pipeline ending in one, or a search over one."
        )
    return estimator, image_shape


def _first_kernel(classifier):
    """The kernel of the first Dense layer, through Keras's public API."""
    import keras

    for layer in classifier.model_.layers:
        if isinstance(layer, keras.layers.Dense):
            return layer.get_weights()[0]
    raise ValueError(f"{type(classifier).__name__}.model_ has no Dense layer to draw.")


def _image_shape(image_shape, n_pixels):
    """``(height, width)`` of the kernel's input, checked against its pixels."""
    if image_shape is None:
        shape = square_shape(n_pixels)
        if shape is None:
            raise ValueError(
                f"{n_pixels} pixels are not a square image; pass image_shape."
            )
        return shape
    shape = (
        tuple(image_shape)
        if isinstance(image_shape, (tuple, list, np.ndarray))
        and np.ndim(image_shape) == 1
        else None
    )
    if (
        shape is None
        or len(shape) != 2
        or not all(isinstance(v, Integral) and not isinstance(v, bool) for v in shape)
        or min(shape) < 1
        or shape[0] * shape[1] != n_pixels
    ):
        raise ValueError(
            f"image_shape must be a pair of integers >= 1 (height, width) whose "
            f"product is the kernel's {n_pixels} input pixels, got {image_shape!r}."
        )
    return int(shape[0]), int(shape[1])


def _units(units, n_units, n_hidden):
    if units is None:
        if not isinstance(n_units, Integral) or n_units < 1:
            raise ValueError(f"n_units must be a positive integer, got {n_units!r}.")
        return np.arange(min(n_units, n_hidden))
    units = np.asarray(units)
    if (
        units.ndim != 1
        or len(units) == 0
        or not np.issubdtype(units.dtype, np.integer)
        or units.min() < 0
        or units.max() >= n_hidden
    ):
        raise ValueError(
            f"units must be a non-empty list of unit indices in [0, {n_hidden}), "
            f"got {units.tolist()!r}."
        )
    return units
