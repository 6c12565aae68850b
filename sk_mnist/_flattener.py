"""MNISTFlattener: digit images to flat float32 features in [0, 1]."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from ._callbacks import CallbackSupportMixin, begin_fit_task
from ._utils._pixels import pixel_names, rows_to_images, square_shape

_MAX_PIXEL = 255.0


class MNISTFlattener(CallbackSupportMixin, TransformerMixin, BaseEstimator):
    """Flatten digit images into float32 features scaled to [0, 1].

    The first step of every sk-mnist pipeline. It does what the classic Keras
    tutorials do by hand (``reshape(60000, 784)``, ``astype("float32")``,
    ``/= 255``), checks the pixels on the way, and remembers the image shape so
    that it can turn features back into images.

    Parameters
    ----------
    image_shape : tuple of (int, int), default=None
        Height and width of one image. ``None`` takes them from 3-D
        ``(n, h, w)`` or 4-D ``(n, h, w, 1)`` input, or from a square number of
        flat features (784 gives 28x28, 64 gives 8x8). One of the two may be
        ``-1``, inferred from the number of features as :func:`numpy.reshape`
        does.
    scale : "auto", float or None, default="auto"
        What pixels are divided by. ``"auto"`` divides integer input, or float
        input whose maximum exceeds 1, by 255, and passes float input already
        in [0, 1] unchanged, so that data cannot be normalised twice
        unnoticed. A number (such as ``16.0`` for
        :func:`~sklearn.datasets.load_digits`) divides by that number;
        ``None`` leaves values as they are. Pixels must lie in ``[0, scale]``.

    Attributes
    ----------
    image_shape_ : tuple of (int, int)
        Height and width of the images seen in :meth:`fit`.
    scale_ : float
        The divisor used by :meth:`transform` (1.0 when nothing is divided).
    n_features_in_ : int
        Number of pixels per image seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen in :meth:`fit`, when ``X`` had string
        column names (a DataFrame).

    See Also
    --------
    KerasMLPClassifier : The network this transformer feeds.
    fetch_mnist : MNIST as images and flat pixels.
    sklearn.preprocessing.MinMaxScaler : Per-feature scaling, which MNIST
        does not want (a pixel that is always 0 would be divided by 0).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mnist import MNISTFlattener
    >>> images = np.zeros((2, 28, 28), dtype=np.uint8)
    >>> images[0, 14, 14] = 255
    >>> flat = MNISTFlattener().fit_transform(images)
    >>> flat.shape, flat.dtype, float(flat.max())
    ((2, 784), dtype('float32'), 1.0)
    >>> MNISTFlattener().fit(images).get_feature_names_out()[:3]
    array(['pixel1', 'pixel2', 'pixel3'], dtype=object)
    """

    _parameter_constraints: dict = {
        "image_shape": [tuple, list, None],
        "scale": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="neither"),
            None,
        ],
    }

    def __init__(self, *, image_shape=None, scale="auto"):
        self.image_shape = image_shape
        self.scale = scale

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the image shape and the scale from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, h, w), (n_samples, h, w, 1) \
                or (n_samples, h * w), or DataFrame
            Images, or flattened images, of any integer or float dtype.
        y : None
            Ignored.

        Returns
        -------
        self : MNISTFlattener
            The fitted transformer.
        """
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit to ``X`` and return it flattened and scaled, validating it once.

        Parameters
        ----------
        X : array-like of shape (n_samples, h, w), (n_samples, h, w, 1) \
                or (n_samples, h * w), or DataFrame
            Images, or flattened images.
        y : None
            Ignored.

        Returns
        -------
        X_new : ndarray of shape (n_samples, h * w), float32
            The pixels divided by ``scale_``, C-contiguous.
        """
        X_flat = self._fit(X)
        return self._scaled(X_flat)

    def transform(self, X):
        """Flatten ``X`` to ``(n_samples, h * w)`` float32 and divide it by ``scale_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, h, w), (n_samples, h, w, 1) \
                or (n_samples, h * w), or DataFrame
            Images of the shape seen in :meth:`fit`.

        Returns
        -------
        X_new : ndarray of shape (n_samples, h * w), float32
            The scaled pixels, C-contiguous. A DataFrame under
            ``set_output(transform="pandas")``.
        """
        check_is_fitted(self)
        X_flat = self._flatten(X, reset=False)
        self._check_range(X_flat)
        return self._scaled(X_flat)

    def inverse_transform(self, X):
        """Turn features back into images on the input's scale.

        Parameters
        ----------
        X : array-like of shape (n_samples, h * w)
            Features as :meth:`transform` returns them.

        Returns
        -------
        images : ndarray of shape (n_samples, h, w), float32
            ``X`` multiplied by ``scale_`` and reshaped to ``image_shape_``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return rows_to_images(X * np.float32(self.scale_), self.image_shape_)

    def get_feature_names_out(self, input_features=None):
        """Output feature names: the input's, else ``pixel1`` .. ``pixelN``.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Input feature names; must match ``feature_names_in_`` if that is set.

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per pixel, OpenML's ``pixel1`` .. ``pixelN`` by default.
        """
        check_is_fitted(self, "n_features_in_")
        names = _check_feature_names_in(self, input_features, generate_names=False)
        if names is None:
            names = np.asarray(pixel_names(self.n_features_in_), dtype=object)
        return names

    def __setstate__(self, state):
        """Restore a pickled or saved flattener, refusing edited fitted state.

        ``image_shape_`` must be two positive integers whose product is
        ``n_features_in_``, and ``scale_`` a positive finite number, as
        :meth:`fit` makes them: a file is data, and a scale of 0 or an image
        shape of 10**9 pixels would only fail later, in ``transform``.
        """
        if "image_shape_" in state or "scale_" in state:
            _check_fitted_state(state)
            state = {**state, "image_shape_": tuple(state["image_shape_"])}
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- the work ------------------------------------------------------------

    def _fit(self, X):
        """Validate ``X``, set the fitted attributes and return ``X`` flat."""
        X_flat = self._flatten(X, reset=True)
        # scikit-learn's callbacks (1.9+): the fit is one task without
        # subtasks, as StandardScaler's, so that a ProgressBar set on a
        # pipeline draws this step too (and scikit-learn does not warn that
        # the step cannot take the pipeline's callbacks).
        task = begin_fit_task(self, X_flat, None, epochs=0)
        self.scale_ = self._resolve_scale(X_flat)
        self._check_range(X_flat)
        if task is not None:
            task.end()
        return X_flat

    def _flatten(self, X, *, reset):
        """Reshape images to 2-D (a view when possible), then validate them."""
        image_shape = None
        if isinstance(X, (list, tuple)) or (
            hasattr(X, "ndim") and not hasattr(X, "columns") and X.ndim in (3, 4)
        ):
            X = np.asarray(X)
        if isinstance(X, np.ndarray) and X.ndim in (3, 4):
            if X.ndim == 4 and X.shape[3] != 1:
                raise ValueError(
                    "Expected images of one channel, shape (n_samples, h, w, 1); "
                    f"got shape {X.shape}."
                )
            image_shape = (int(X.shape[1]), int(X.shape[2]))
            fitted = getattr(self, "image_shape_", None)
            if not reset and fitted is not None and image_shape != tuple(fitted):
                raise ValueError(
                    f"{type(self).__name__} was fitted on "
                    f"{fitted[0]}x{fitted[1]} images, got "
                    f"{image_shape[0]}x{image_shape[1]} images."
                )
            X = X.reshape(X.shape[0], math.prod(X.shape[1:]))
        elif isinstance(X, np.ndarray) and X.ndim > 4:
            raise ValueError(
                "Expected images of shape (n_samples, h, w) or (n_samples, h, w, 1), "
                f"or flat features (n_samples, h * w); got an array of shape {X.shape}."
            )
        if not reset and _nothing_to_convert(X):
            # scikit-learn's check_array costs about 40 us a call, as much as
            # the network's forward pass of one image (and a pipeline
            # validates twice); such an array it would pass through as it
            # is, so only the checks against the fit run.
            return validate_data(self, X, reset=False, skip_check_array=True)
        X = validate_data(self, X, reset=reset, dtype="numeric", order="C")
        if reset:
            self.image_shape_ = self._resolve_image_shape(image_shape, X.shape[1])
        return X

    def _resolve_image_shape(self, seen, n_features):
        """The fitted (h, w): the parameter, else the input's, else a square."""
        if self.image_shape is not None:
            shape = self.image_shape
            if (
                len(shape) != 2
                or not all(isinstance(d, Integral) for d in shape)
                or any(d == 0 or d < -1 for d in shape)
                or list(shape).count(-1) > 1
            ):
                raise ValueError(
                    "image_shape must be two positive integers (height, width), one "
                    f"of which may be -1; got {shape!r}."
                )
            h, w = (int(d) for d in shape)
            if h == -1:
                h = n_features // w if n_features % w == 0 else -1
            elif w == -1:
                w = n_features // h if n_features % h == 0 else -1
            got = f"{n_features} features per sample"
            if seen is not None:
                got = f"{seen[0]}x{seen[1]} images"
            if h < 1 or w < 1 or h * w != n_features or seen not in (None, (h, w)):
                raise ValueError(
                    f"image_shape={tuple(shape)!r} does not fit the input: got {got}."
                )
            return (h, w)
        if seen is not None:
            return seen
        shape = square_shape(n_features)
        if shape is None:
            raise ValueError(
                f"Cannot infer the image shape from {n_features} flat features: it "
                "is not a square number. Pass image_shape=(height, width)."
            )
        return shape

    def _resolve_scale(self, X):
        if self.scale is None:
            return 1.0
        if self.scale != "auto":
            return float(self.scale)
        # Booleans are ink or no ink: already 0 and 1.
        if X.dtype.kind in "iu" or (X.dtype.kind == "f" and X.size and X.max() > 1.0):
            return _MAX_PIXEL
        return 1.0

    def _check_range(self, X):
        if X.size == 0:
            return
        low = X.min()
        if low < 0:
            raise ValueError(
                f"Negative values in data passed to {type(self).__name__}: pixels "
                f"must lie in [0, {self.scale_:g}]; got a minimum of {low:g}."
            )
        high = X.max()
        if self.scale is not None and high > self.scale_:
            hint = (
                "; this looks like raw 0..255 pixels given to a transformer fitted "
                "on [0, 1] data"
                if self.scale_ == 1.0
                else ""
            )
            raise ValueError(
                f"Pixel values above the scale passed to {type(self).__name__}: "
                f"pixels must lie in [0, {self.scale_:g}]; got a maximum of "
                f"{high:g}{hint}. Set scale to the largest possible pixel value, "
                "or None."
            )
        if high / self.scale_ > np.finfo(np.float32).max:
            raise ValueError(
                f"Pixel values too large for float32 passed to "
                f"{type(self).__name__}: got a maximum of {high:g} (float32 ends at "
                f"{np.finfo(np.float32).max:g}); scale them first or set scale."
            )

    def _scaled(self, X):
        """X / scale_ as float32 in one allocation (the ufunc casts in chunks)."""
        out = np.empty(X.shape, dtype=np.float32)
        if self.scale_ == 1.0:
            out[...] = X
        else:
            np.divide(X, self.scale_, out=out, dtype=np.float32, casting="unsafe")
        return out


def _nothing_to_convert(X) -> bool:
    """Whether ``check_array(X, dtype="numeric", order="C")`` would return ``X``.

    A non-empty, C-contiguous 2-D ndarray of integers or finite floats:
    nothing to convert, nothing to refuse. Anything else (lists, frames,
    sparse matrices, NaN) goes through ``check_array`` for its conversions
    and its messages.
    """
    return (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.shape[0] > 0
        and X.shape[1] > 0
        and X.dtype.kind in "uif"
        and X.flags.c_contiguous
        and (X.dtype.kind != "f" or bool(np.isfinite(X).all()))
    )


def _check_fitted_state(state):
    from .exceptions import UnsafeModelError

    n = state.get("n_features_in_")
    shape = state.get("image_shape_")
    scale = state.get("scale_")
    ints = (
        isinstance(shape, tuple | list)
        and len(shape) == 2
        and all(isinstance(d, Integral) and not isinstance(d, bool) for d in shape)
    )
    if not (
        ints
        and isinstance(n, Integral)
        and min(shape) >= 1
        and shape[0] * shape[1] == n
    ):
        raise UnsafeModelError(
            f"the saved MNISTFlattener has image_shape_={shape!r} for "
            f"n_features_in_={n!r}; expected two positive integers whose product "
            f"is n_features_in_."
        )
    if not (
        isinstance(scale, Real)
        and not isinstance(scale, bool)
        and math.isfinite(scale)
        and scale > 0
    ):
        raise UnsafeModelError(
            f"the saved MNISTFlattener has scale_={scale!r}; expected a positive "
            f"finite number."
        )
