"""MNISTFlattener over generated shapes, dtypes and values."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import budget, pixel_arrays

from sk_mnist import MNISTFlattener


@settings(max_examples=budget(300))
@given(X=pixel_arrays(), scale=st.sampled_from(["auto", 255.0, None]))
@example(X=np.array([[[np.nan]]], dtype=np.float32), scale="auto")
@example(X=np.full((1, 2, 2), 1e38, dtype=np.float64), scale=None)
@example(X=np.ones((1, 3, 3), dtype=np.bool_), scale="auto")
def test_the_output_is_finite_float32_rows_or_a_clear_error(X, scale):
    flattener = MNISTFlattener(scale=scale)
    try:
        out = flattener.fit_transform(X)
    except ValueError as exc:
        assert len(str(exc)) > 20  # a message, naming the problem
        return
    n = X.shape[0]
    assert out.dtype == np.float32
    assert out.shape == (n, int(np.prod(X.shape[1:])))
    assert np.isfinite(out).all()
    if scale is not None:
        assert out.min() >= 0
        assert out.max() <= 1
    np.testing.assert_array_equal(flattener.transform(X), out)
    back = flattener.inverse_transform(out)
    assert back.shape == (n, *flattener.image_shape_)


@settings(max_examples=budget(100))
@given(X=pixel_arrays(), other=pixel_arrays())
def test_transform_of_other_images_matches_or_names_the_difference(X, other):
    try:
        flattener = MNISTFlattener().fit(X)
    except ValueError:
        return
    try:
        out = flattener.transform(other)
    except ValueError as exc:
        assert len(str(exc)) > 20
        return
    assert out.dtype == np.float32
    assert out.shape == (other.shape[0], flattener.n_features_in_)
