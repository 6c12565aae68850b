"""MNISTFlattener: accepted inputs, scaling, round trips, errors and real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sk_mnist import MNISTFlattener


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize(
    "form",
    [
        lambda x: x,
        lambda x: x[..., np.newaxis],
        lambda x: x.reshape(len(x), -1),
        lambda x: list(x),
        lambda x: x.astype(np.float64),
        lambda x: x.astype(np.int64),
        lambda x: pd.DataFrame(
            x.reshape(len(x), -1), columns=[f"pixel{i}" for i in range(1, 785)]
        ),
    ],
    ids=["3d", "4d", "flat", "list", "float64", "int64", "dataframe"],
)
def test_every_accepted_form_gives_the_same_float32_features(images, form):
    expected = images.reshape(5, 784).astype(np.float32) / 255
    out = MNISTFlattener().fit_transform(form(images))
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    assert out.shape == (5, 784)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_fit_then_transform_equals_fit_transform(images):
    flattener = MNISTFlattener().fit(images)
    np.testing.assert_array_equal(
        flattener.transform(images), MNISTFlattener().fit_transform(images)
    )
    assert flattener.image_shape_ == (28, 28)
    assert flattener.scale_ == 255.0
    assert flattener.n_features_in_ == 784


def test_float_input_already_in_unit_range_is_not_scaled_twice(images):
    once = MNISTFlattener().fit_transform(images)
    twice = MNISTFlattener().fit_transform(once)
    np.testing.assert_array_equal(once, twice)


def test_raw_pixels_given_to_a_unit_range_fit_are_refused(images):
    flattener = MNISTFlattener().fit(images / 255.0)
    with pytest.raises(
        ValueError, match=r"above the scale.*maximum of 25\d.*raw 0..255"
    ):
        flattener.transform(images)


def test_explicit_scale_and_no_scale(images):
    np.testing.assert_allclose(
        MNISTFlattener(scale=510.0).fit_transform(images),
        images.reshape(5, -1) / 510.0,
        rtol=1e-6,
    )
    out = MNISTFlattener(scale=None).fit_transform(images)
    np.testing.assert_array_equal(out, images.reshape(5, -1).astype(np.float32))


def test_inverse_transform_gives_back_the_images(images):
    flattener = MNISTFlattener()
    restored = flattener.inverse_transform(flattener.fit_transform(images))
    assert restored.shape == (5, 28, 28)
    np.testing.assert_allclose(restored, images, atol=1e-3)


def test_image_shape_is_inferred_from_square_widths_and_can_be_given():
    assert MNISTFlattener().fit(np.zeros((2, 64))).image_shape_ == (8, 8)
    assert MNISTFlattener(image_shape=(4, 16)).fit(np.zeros((2, 64))).image_shape_ == (
        4,
        16,
    )
    assert MNISTFlattener(image_shape=(2, -1)).fit(np.zeros((2, 64))).image_shape_ == (
        2,
        32,
    )
    with pytest.raises(
        ValueError, match="Cannot infer the image shape from 10 flat features"
    ):
        MNISTFlattener().fit(np.zeros((2, 10)))
    with pytest.raises(
        ValueError, match=r"image_shape=\(5, 5\) does not fit the input"
    ):
        MNISTFlattener(image_shape=(5, 5)).fit(np.zeros((2, 64)))
    with pytest.raises(
        ValueError, match=r"image_shape must be two positive integers.*\(0, 8\)"
    ):
        MNISTFlattener(image_shape=(0, 8)).fit(np.zeros((2, 64)))


def test_feature_names_are_openml_names_or_the_inputs(images):
    flattener = MNISTFlattener().fit(images)
    names = flattener.get_feature_names_out()
    assert names[0] == "pixel1"
    assert names[-1] == "pixel784"
    assert len(names) == 784
    frame = pd.DataFrame(images.reshape(5, -1), columns=[f"p{i}" for i in range(784)])
    assert MNISTFlattener().fit(frame).get_feature_names_out()[0] == "p0"


def test_set_output_pandas_returns_a_named_frame(images):
    out = MNISTFlattener().set_output(transform="pandas").fit_transform(images)
    assert isinstance(out, pd.DataFrame)
    assert out.shape == (5, 784)
    assert out.columns[0] == "pixel1"


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (np.full((2, 28, 28), np.nan), ValueError, "NaN"),
        (np.full((2, 28, 28), np.inf), ValueError, "infinity"),
        (-np.ones((2, 28, 28)), ValueError, "Negative values in data.*minimum of -1"),
        (np.full((2, 28, 28), 300), ValueError, "above the scale.*maximum of 300"),
        (np.zeros((0, 28, 28)), ValueError, "0 sample"),
        (np.zeros((2, 28, 28, 3)), ValueError, r"one channel.*\(2, 28, 28, 3\)"),
        (
            np.zeros((2, 2, 28, 28, 1)),
            ValueError,
            r"got an array of shape \(2, 2, 28, 28, 1\)",
        ),
        (np.zeros(784), ValueError, "Reshape your data"),
        (sp.csr_matrix(np.ones((2, 784))), TypeError, "[Ss]parse"),
        (np.array([["a"] * 784]), ValueError, "numeric|convert"),
    ],
    ids=[
        "nan",
        "inf",
        "negative",
        "above-255",
        "empty",
        "rgb",
        "5d",
        "1d",
        "sparse",
        "strings",
    ],
)
def test_bad_input_is_a_clear_error_and_the_input_is_unchanged(bad, error, message):
    before = bad.copy()
    with pytest.raises(error, match=message):
        MNISTFlattener().fit(bad)
    if isinstance(bad, np.ndarray):
        np.testing.assert_array_equal(bad, before)


def test_a_different_image_shape_at_transform_is_named(images):
    flattener = MNISTFlattener().fit(images)
    with pytest.raises(ValueError, match="fitted on 28x28 images, got 32x32 images"):
        flattener.transform(np.zeros((1, 32, 32)))
    with pytest.raises(ValueError, match="784 features"):
        flattener.transform(np.zeros((1, 100)))


def test_transform_does_not_modify_the_input(images):
    before = images.copy()
    MNISTFlattener().fit_transform(images)
    np.testing.assert_array_equal(images, before)


def test_load_digits_in_a_pipeline_with_scale_16():
    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(MNISTFlattener(scale=16.0), LogisticRegression(max_iter=500))
    pipe.fit(X[:1200], y[:1200])
    assert pipe[0].image_shape_ == (8, 8)
    assert float(pipe[0].transform(X).max()) == 1.0
    assert pipe.score(X[1200:], y[1200:]) > 0.9


def test_real_training_set_mean_matches_the_published_value(mnist_train):
    images, _ = mnist_train
    out = MNISTFlattener().fit_transform(images)
    assert out.shape == (60_000, 784)
    assert out.dtype == np.float32
    assert float(out.mean(dtype=np.float64)) == pytest.approx(33.3184 / 255, abs=1e-4)


def test_real_openml_shaped_frame_gives_the_same_features(mnist_path):
    from sk_mnist import fetch_mnist

    frame = fetch_mnist(path=mnist_path, subset="test", as_frame=True).data
    images = fetch_mnist(path=mnist_path, subset="test").images
    np.testing.assert_array_equal(
        MNISTFlattener().fit_transform(frame), MNISTFlattener().fit_transform(images)
    )


def test_boolean_images_are_ink_or_no_ink():
    images = np.zeros((3, 28, 28), dtype=bool)
    images[:, 10:18, 12:16] = True
    features = MNISTFlattener().fit_transform(images)
    assert set(np.unique(features).tolist()) == {0.0, 1.0}


def test_values_beyond_float32_are_refused_without_a_scale():
    X = np.full((2, 784), 1e39)
    with pytest.raises(ValueError, match=r"too large for float32.*1e\+39"):
        MNISTFlattener(scale=None).fit(X)
    flattener = MNISTFlattener(scale=None).fit(np.ones((2, 784)))
    with pytest.raises(ValueError, match="too large for float32"):
        flattener.transform(X)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float32, np.float64])
def test_a_plain_array_transforms_as_its_list_and_its_fortran_copy(dtype):
    # A C-contiguous array of finite numbers skips check_array (nothing to
    # convert); lists and Fortran-ordered copies go through it: same rows.
    X = np.random.default_rng(0).integers(0, 256, (5, 784)).astype(dtype)
    flattener = MNISTFlattener().fit(X)
    fast = flattener.transform(X)
    assert fast.dtype == np.float32
    assert fast.flags.c_contiguous
    np.testing.assert_array_equal(fast, flattener.transform(X.tolist()))
    np.testing.assert_array_equal(fast, flattener.transform(np.asfortranarray(X)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_pixels_are_refused_by_check_array(bad):
    X = np.zeros((3, 784), dtype=np.float32)
    flattener = MNISTFlattener().fit(X)
    X[1, 5] = bad
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        flattener.transform(X)
