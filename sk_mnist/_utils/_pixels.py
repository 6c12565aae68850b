"""Pixels as columns and back: the names and shapes every module agrees on."""

from __future__ import annotations

import math

import numpy as np


def pixel_names(n_pixels):
    """OpenML's names of flat pixel columns: ``pixel1`` .. ``pixelN``."""
    return [f"pixel{i}" for i in range(1, n_pixels + 1)]


def square_shape(n_pixels):
    """``(side, side)`` when ``n_pixels`` is a square number, else None."""
    side = math.isqrt(n_pixels)
    return (side, side) if side * side == n_pixels else None


def rows_to_images(X, image_shape=None):
    """Flat rows (n, h * w) back to images (n, h, w); images pass through.

    ``image_shape`` defaults to the square the number of columns makes;
    ``(n, h, w, 1)`` loses its channel axis.
    """
    X = np.asarray(X)
    if X.ndim == 4 and X.shape[-1] == 1:
        return X[..., 0]
    if X.ndim == 3:
        return X
    shape = image_shape or (square_shape(X.shape[1]) if X.ndim == 2 else None)
    if shape is None:
        raise ValueError(
            f"Expected images (n, h, w) or flat rows of a square number of pixels, "
            f"got shape {X.shape}."
        )
    return X.reshape(len(X), *shape)
