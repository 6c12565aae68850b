"""The inspection Displays draw what they say (checked on the Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from sk_mnist import KerasMLPClassifier, MNISTFlattener  # noqa: E402
from sk_mnist.inspection import (  # noqa: E402
    AttributionDisplay,
    FirstLayerWeightsDisplay,
    occlusion_attributions,
)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def kernel(inspected_network):
    return inspected_network[-1].model_.layers[0].get_weights()[0]


@pytest.fixture(scope="module")
def digits(mnist_test):
    images, labels = mnist_test
    return images[:4], labels[:4]


def test_weights_display_draws_each_units_weights_as_an_image(
    inspected_network, kernel
):
    display = FirstLayerWeightsDisplay.from_estimator(inspected_network)
    assert len(display.axes_) == 16
    largest = np.abs(kernel[:, :16]).max()
    for unit, (ax, drawn) in enumerate(
        zip(display.axes_, display.images_, strict=True)
    ):
        assert ax.get_title() == f"Unit {unit}"
        assert ax.get_images()[0] is drawn
        np.testing.assert_allclose(drawn.get_array(), kernel[:, unit].reshape(28, 28))
        np.testing.assert_allclose(drawn.get_clim(), (-largest, largest))
    assert display.figure_ is display.axes_[0].figure


def test_weights_display_chosen_units_into_user_axes_and_from_a_bare_classifier(
    inspected_network, kernel
):
    fig, axes = plt.subplots(1, 3)
    display = FirstLayerWeightsDisplay.from_estimator(
        inspected_network[-1], units=[5, 0, 127], ax=axes
    )
    assert display.figure_ is fig
    assert list(display.axes_) == list(axes)
    assert [ax.get_title() for ax in axes] == ["Unit 5", "Unit 0", "Unit 127"]
    np.testing.assert_allclose(
        display.images_[2].get_array(), kernel[:, 127].reshape(28, 28)
    )


def test_weights_display_takes_the_image_shape_the_flattener_learned(fast_params):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60, 6, 20), dtype=np.uint8)
    labels = np.arange(60) % 3
    pipe = make_pipeline(
        MNISTFlattener(),
        "passthrough",
        KerasMLPClassifier(**{**fast_params, "hidden_layer_sizes": (8,)}),
    ).fit(images, labels)
    display = FirstLayerWeightsDisplay.from_estimator(pipe, n_units=100)
    assert len(display.axes_) == 8  # all there are
    kernel = pipe[-1].model_.layers[0].get_weights()[0]
    assert display.images_[1].get_array().shape == (6, 20)
    np.testing.assert_allclose(
        display.images_[1].get_array(), kernel[:, 1].reshape(6, 20)
    )


def test_weights_display_refuses_what_is_not_pixel_space(inspected_network):
    pca_pipe = make_pipeline(MNISTFlattener(), PCA(10), KerasMLPClassifier())
    with pytest.raises(ValueError, match=r"step 'pca' \(PCA\) changes the features"):
        FirstLayerWeightsDisplay.from_estimator(pca_pipe)
    with pytest.raises(NotFittedError):
        FirstLayerWeightsDisplay.from_estimator(KerasMLPClassifier())
    X = np.random.default_rng(0).random((20, 16))
    logistic = LogisticRegression().fit(X, np.arange(20) % 2)
    with pytest.raises(TypeError, match="LogisticRegression has no model_"):
        FirstLayerWeightsDisplay.from_estimator(logistic)
    with pytest.raises(ValueError, match=r"unit indices in \[0, 128\), got \[128\]"):
        FirstLayerWeightsDisplay.from_estimator(inspected_network, units=[128])
    with pytest.raises(ValueError, match="n_units must be a positive integer, got 0"):
        FirstLayerWeightsDisplay.from_estimator(inspected_network, n_units=0)
    with pytest.raises(ValueError, match="785 pixels are not a square image"):
        FirstLayerWeightsDisplay.from_weights(np.ones((785, 4)))


def test_attribution_display_draws_the_maps_over_the_digits(inspected_network, digits):
    images, labels = digits
    display = AttributionDisplay.from_estimator(inspected_network, images, labels)
    expected = occlusion_attributions(inspected_network, images)
    assert len(display.axes_) == 4
    for i, (ax, overlay) in enumerate(
        zip(display.axes_, display.overlays_, strict=True)
    ):
        digit, drawn = ax.get_images()
        assert drawn is overlay
        np.testing.assert_array_equal(digit.get_array(), images[i])
        np.testing.assert_allclose(overlay.get_array(), expected.attributions[i])
        largest = np.abs(expected.attributions[i]).max()
        np.testing.assert_allclose(overlay.get_clim(), (-largest, largest))
        alpha = overlay.get_alpha()
        np.testing.assert_allclose(alpha, np.abs(expected.attributions[i]) / largest)
        assert (alpha[images[i] == 0] < alpha.max()).all()
        assert ax.get_title() == (
            f"Class {expected.target[i]} ({expected.target_proba[i]:.2f}) "
            f"Label: {labels[i]}"
        )
    # Where the map is red the ink made the class likelier: blanking the
    # most positive pixel of the first digit lowers its class's probability.
    row, col = np.unravel_index(np.argmax(expected.attributions[0]), (28, 28))
    blanked = images[:1].copy()
    blanked[0, row, col] = 0
    column = list(inspected_network.classes_).index(expected.target[0])
    assert (
        inspected_network.predict_proba(blanked)[0, column] < expected.target_proba[0]
    )


def test_attribution_display_explains_a_chosen_class_through_any_pipeline(
    mnist_train, digits
):
    X, y = mnist_train
    flat = X[:1000].reshape(1000, -1)
    pca_pipe = make_pipeline(
        MNISTFlattener(), PCA(20, random_state=0), LogisticRegression(max_iter=200)
    ).fit(flat, y[:1000])
    images, _ = digits
    fig, ax = plt.subplots()
    display = AttributionDisplay.from_estimator(
        pca_pipe, images[:1].reshape(1, -1), target=8, ax=ax
    )
    assert display.axes_[0] is ax
    assert display.figure_ is fig
    assert display.overlays_[0].get_array().shape == (28, 28)
    proba = pca_pipe.predict_proba(images[:1].reshape(1, -1))[0, 8]
    assert ax.get_title() == f"Class 8 ({proba:.2f})"
    result = occlusion_attributions(pca_pipe, images[:2], target=[8, 3])
    assert result.target.tolist() == [8, 3]
    with_channel = occlusion_attributions(pca_pipe, images[:2, :, :, None], target=8)
    np.testing.assert_allclose(with_channel.attributions[0], result.attributions[0])
    np.testing.assert_allclose(result.attributions[0], display.overlays_[0].get_array())
    assert np.abs(result.attributions[0]).max() > 0


def test_attributions_bad_input_is_a_clear_error(inspected_network, digits):
    images, labels = digits
    with pytest.raises(ValueError, match=r"target 11 is not a class .* \[0, 1, 2"):
        occlusion_attributions(inspected_network, images, target=11)
    with pytest.raises(ValueError, match=r"one per image \(4\), got an array of"):
        occlusion_attributions(inspected_network, images, target=[1, 2])
    with pytest.raises(NotFittedError):
        occlusion_attributions(KerasMLPClassifier(), images)
    with pytest.raises(ValueError, match=r"y_true must have one value per image"):
        AttributionDisplay.from_estimator(inspected_network, images, labels[:2])
    with pytest.raises(ValueError, match="the same shape"):
        AttributionDisplay.from_attributions(images, np.zeros((4, 27, 28)))
    with pytest.raises(ValueError, match=r"Flat rows of 30 pixels are not a square"):
        occlusion_attributions(
            LogisticRegression().fit(np.eye(30), np.arange(30) % 2), np.eye(30)[:2]
        )


@pytest.fixture(scope="module")
def small_digits_model():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X / 16, y), X[:2] / 16


def test_attribution_display_refuses_a_stride_that_leaves_pixels_uncovered(
    small_digits_model,
):
    model, X = small_digits_model
    with pytest.raises(ValueError, match=r"stride \(3, 3\) must be at most window"):
        AttributionDisplay.from_estimator(model, X, stride=3)
    with pytest.raises(ValueError, match=r"stride \(3, 3\) must be at most window"):
        occlusion_attributions(model, X, stride=3)
    display = AttributionDisplay.from_estimator(model, X, window=3, stride=3)
    assert all(np.isfinite(image.get_array()).all() for image in display.overlays_)


@pytest.mark.parametrize(
    ("bad", "found"), [(np.nan, "1 NaN and 0"), (np.inf, "0 NaN and 1")]
)
def test_attribution_display_refuses_non_finite_maps_naming_what_it_found(bad, found):
    images, maps = np.zeros((2, 8, 8)), np.zeros((2, 8, 8))
    maps[1, 3, 3] = bad
    with pytest.raises(
        ValueError, match=rf"attributions must be finite; it holds {found} infinite"
    ):
        AttributionDisplay.from_attributions(images, maps)
    images[0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"images must be finite"):
        AttributionDisplay.from_attributions(images, np.zeros((2, 8, 8)))


@pytest.mark.parametrize("ncols", [0, -2, 2.5, "a", True])
def test_displays_refuse_a_bad_ncols_naming_it(ncols):
    message = rf"ncols must be None or an integer >= 1, got {ncols!r}"
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        FirstLayerWeightsDisplay.from_weights(np.ones((64, 4)), ncols=ncols)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        AttributionDisplay.from_attributions(
            np.zeros((2, 8, 8)), np.zeros((2, 8, 8)), ncols=ncols
        )


def test_more_columns_than_panels_make_one_row_of_the_panels():
    display = FirstLayerWeightsDisplay.from_weights(np.ones((64, 4)), ncols=10**6)
    assert len(display.figure_.axes) == 4
    assert display.figure_.get_size_inches()[0] == pytest.approx(4 * 1.8)
    display = AttributionDisplay.from_attributions(
        np.zeros((3, 8, 8)), np.zeros((3, 8, 8)), ncols=50
    )
    assert len(display.figure_.axes) == 3


@pytest.mark.parametrize(
    "image_shape", [(-28, -28), (784,), (1, 28, 28), (28.0, 28.0), "ab", 28, (14, 28)]
)
def test_weights_display_refuses_a_bad_image_shape_naming_it(image_shape):
    with pytest.raises(
        ValueError,
        match=r"image_shape must be a pair of integers >= 1 \(height, width\) whose "
        r"product is the kernel's 784 input pixels",
    ) as error:
        FirstLayerWeightsDisplay.from_weights(
            np.ones((784, 4)), image_shape=image_shape
        )
    assert f"got {image_shape!r}" in str(error.value)
    display = FirstLayerWeightsDisplay.from_weights(
        np.ones((784, 4)), image_shape=(16, 49)
    )
    assert display.images_[0].get_array().shape == (16, 49)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_weights_display_refuses_a_non_finite_kernel(bad):
    kernel = np.ones((784, 4))
    kernel[10, 2] = bad
    with pytest.raises(ValueError, match=r"kernel must be finite; it holds"):
        FirstLayerWeightsDisplay.from_weights(kernel)


def test_attribution_display_checks_the_titles_values_naming_them(small_digits_model):
    images, maps = np.zeros((2, 8, 8)), np.zeros((2, 8, 8))
    with pytest.raises(
        ValueError, match=r"target must have one value per image \(2\), got 3"
    ):
        AttributionDisplay.from_attributions(images, maps, target=3)
    with pytest.raises(
        ValueError, match=r"target_proba must hold numbers, got dtype <U1"
    ):
        AttributionDisplay.from_attributions(images, maps, target_proba=["x", "y"])
    with pytest.raises(ValueError, match=r"target_proba must be finite"):
        AttributionDisplay.from_attributions(images, maps, target_proba=[0.5, np.nan])
    model, X = small_digits_model
    with pytest.raises(
        ValueError, match=r"y_true must have one value per image \(2\), got 3"
    ):
        AttributionDisplay.from_estimator(model, X, 3)


def test_attributions_name_x_of_a_non_numeric_dtype_and_any_unknown_target(
    small_digits_model,
):
    model, X = small_digits_model
    with pytest.raises(ValueError, match=r"X must hold numbers .* got dtype <U1"):
        occlusion_attributions(model, np.full((1, 8, 8), "a"))
    with pytest.raises(
        ValueError, match=r"target \{\} is not a class of the estimator"
    ):
        occlusion_attributions(model, X, target={})
