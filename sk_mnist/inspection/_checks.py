"""What the inspection Displays check before they draw: grids and arrays."""

from __future__ import annotations

import reprlib

import numpy as np


def finite_numbers(values, name):
    """``values`` as an array of real numbers, all finite, else a ValueError."""
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got dtype {values.dtype}.")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        n_nan, n_inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        raise ValueError(
            f"{name} must be finite; it holds {n_nan} NaN and {n_inf} infinite values."
        )
    return values


def one_per_image(values, name, n_images):
    """``values`` as a 1-d array of ``n_images``, or None; else a ValueError."""
    if values is None:
        return None
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != n_images:
        raise ValueError(
            f"{name} must have one value per image ({n_images}), got "
            f"{reprlib.repr(values)}."
        )
    return array
