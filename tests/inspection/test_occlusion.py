"""occlusion_map: exact on models whose answer is known, numpy only."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sk_mnist.inspection import occlusion_map
from sk_mnist.inspection._occlusion import Occlusion, occlusion_rows


class LinearSoftmax:
    """A two-class model: class 1's logit is ``weights . image``; counts calls."""

    def __init__(self, weights):
        self.weights = np.asarray(weights, dtype=float)
        self.calls = []

    def __call__(self, images):
        self.calls.append(images.shape)
        logit = np.tensordot(images.astype(float), self.weights, axes=2)
        p = 1 / (1 + np.exp(-logit))
        return np.stack([1 - p, p], axis=1)


def _probability_of_1(model, image):
    return model(image[None])[0, 1]


def test_single_pixel_windows_give_each_pixels_own_drop():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(5, 6))
    image = (rng.random((5, 6)) > 0.5) * rng.random((5, 6))
    model = LinearSoftmax(weights)
    maps = occlusion_map(model, image[None], target=1, window=1, output="probability")
    expected = np.zeros((5, 6))
    for r, c in np.ndindex(5, 6):
        occluded = image.copy()
        occluded[r, c] = 0
        expected[r, c] = _probability_of_1(model, image) - _probability_of_1(
            model, occluded
        )
    np.testing.assert_allclose(maps[0], expected, atol=1e-12)
    assert (maps[0][image == 0] == 0).all()
    assert (maps[0][(image > 0) & (weights > 0)] > 0).all()
    assert (maps[0][(image > 0) & (weights < 0)] < 0).all()


def test_log_odds_of_a_linear_model_are_weight_times_pixel():
    # The log-odds of a logistic model are its logit, linear in the pixels:
    # blanking one pixel lowers them by exactly its weight times its value.
    rng = np.random.default_rng(5)
    weights, image = rng.normal(size=(5, 6)), rng.random((5, 6))
    model = LinearSoftmax(weights)
    maps = occlusion_map(model, np.stack([image, image]), target=[1, 0], window=1)
    np.testing.assert_allclose(maps[0], weights * image, atol=1e-9)
    np.testing.assert_allclose(maps[1], -weights * image, atol=1e-9)


def test_log_odds_still_move_where_the_probability_rounds_to_one():
    def confident(images):  # float32 softmax of a large logit gap
        logits = np.zeros((len(images), 2), dtype=np.float32)
        logits[:, 1] = 40 + images.sum(axis=(1, 2))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    image = np.zeros((1, 4, 4), dtype=np.float32)
    image[0, 1, 1:3] = 1.0
    assert confident(image)[0, 1] == 1.0
    flat = occlusion_map(confident, image, window=1, output="probability")
    np.testing.assert_array_equal(flat, 0)
    moving = occlusion_map(confident, image, window=1)
    np.testing.assert_allclose(moving[0, 1, 1:3], 1.0, rtol=1e-4)
    assert (moving[0][image[0] == 0] == 0).all()


def test_a_pixel_gets_the_mean_drop_of_the_windows_that_cover_it():
    rng = np.random.default_rng(1)
    weights, image = rng.normal(size=(4, 4)), rng.random((4, 4)) + 0.1
    model = LinearSoftmax(weights)
    maps = occlusion_map(
        model, image[None], target=1, window=(2, 3), stride=2, output="probability"
    )
    # Rows start at 0 and 2; columns at 0 and, to reach the edge, 1.
    drops = {}
    for r0, c0 in [(0, 0), (0, 1), (2, 0), (2, 1)]:
        occluded = image.copy()
        occluded[r0 : r0 + 2, c0 : c0 + 3] = 0
        drops[r0, c0] = _probability_of_1(model, image) - _probability_of_1(
            model, occluded
        )
    expected = np.zeros((4, 4))
    for r, c in np.ndindex(4, 4):
        covering = [
            d for (r0, c0), d in drops.items() if r0 <= r < r0 + 2 and c0 <= c < c0 + 3
        ]
        expected[r, c] = np.mean(covering)
    np.testing.assert_allclose(maps[0], expected, atol=1e-12)


def test_all_copies_of_an_image_go_in_one_call_and_blank_windows_are_skipped():
    image = np.zeros((28, 28), dtype=np.uint8)
    image[10:14, 12:14] = 255  # 8 inked pixels
    model = LinearSoftmax(np.ones((28, 28)) / 255)
    occlusion_map(model, np.stack([image, image]), window=1)
    # One call per image: the image itself and one copy per inked pixel.
    assert model.calls == [(9, 28, 28), (9, 28, 28)]
    model.calls.clear()
    occlusion_map(model, image[None], window=2)
    # 2x2 windows at stride 1 touching the 4x2 block: 5 rows x 3 columns.
    assert model.calls == [(16, 28, 28)]


def test_batch_size_splits_the_calls_without_changing_the_result():
    rng = np.random.default_rng(2)
    images = rng.random((3, 8, 8))
    model = LinearSoftmax(rng.normal(size=(8, 8)))
    whole = occlusion_map(model, images, window=1)
    model.calls.clear()
    split = occlusion_map(model, images, window=1, batch_size=10)
    np.testing.assert_allclose(split, whole, atol=1e-12)
    assert max(shape[0] for shape in model.calls) == 10
    assert sum(shape[0] for shape in model.calls) == 3 * 65


def test_target_defaults_to_the_most_probable_class_and_can_be_chosen():
    rng = np.random.default_rng(3)
    model = LinearSoftmax(rng.normal(size=(6, 6)))
    images = rng.random((4, 6, 6))
    maps, proba = occlusion_map(model, images, return_proba=True)
    np.testing.assert_allclose(proba, model(images))
    by_column = {t: occlusion_map(model, images, target=t) for t in (0, 1)}
    predicted = proba.argmax(axis=1)
    for i, column in enumerate(predicted):
        np.testing.assert_allclose(maps[i], by_column[column][i])
    # Two classes: what pushes one up pushes the other down.
    np.testing.assert_allclose(by_column[0], -by_column[1], atol=1e-12)
    per_image = occlusion_map(model, images, target=[0, 1, 1, 0])
    np.testing.assert_allclose(per_image[1], by_column[1][1])


def test_the_images_dtype_is_kept_and_the_baseline_must_fit_it():
    image = np.full((1, 4, 4), 200, dtype=np.uint8)
    seen = []

    def predict_proba(images):
        seen.append(images.dtype)
        p = images.astype(float).mean(axis=(1, 2)) / 255
        return np.stack([1 - p, p], axis=1)

    maps = occlusion_map(
        predict_proba, image, target=1, window=1, baseline=100, output="probability"
    )
    assert set(seen) == {np.dtype(np.uint8)}
    np.testing.assert_allclose(maps[0], np.full((4, 4), 100 / 16 / 255))
    with pytest.raises(ValueError, match=r"baseline=0.5 is not representable .*uint8"):
        occlusion_map(predict_proba, image, baseline=0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, r"window must be an integer >= 1 or a pair .* got 0"),
        ({"window": (2, 9)}, r"at most the image's shape \(4, 4\); got \(2, 9\)"),
        ({"stride": (1, 1, 1)}, r"stride must be .* got \(1, 1, 1\)"),
        ({"target": 5}, r"target 5 is not a column of the 2 probabilities"),
        ({"target": [0, 1, 0]}, r"one per image \(2\), got \[0, 1, 0\]"),
        ({"baseline": float("nan")}, r"baseline must be a finite number, got nan"),
        ({"batch_size": 1}, r"batch_size must be an integer >= 2, got 1"),
        ({"output": "logit"}, r"'log_odds' or 'probability', got 'logit'"),
    ],
)
def test_bad_options_are_a_clear_error(kwargs, message):
    model = LinearSoftmax(np.ones((4, 4)))
    with pytest.raises(ValueError, match=message):
        occlusion_map(model, np.ones((2, 4, 4)), **kwargs)


def test_bad_images_and_models_are_a_clear_error():
    model = LinearSoftmax(np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"\(n_images, h, w\), got shape \(16,\)"):
        occlusion_map(model, np.ones(16))
    with pytest.raises(TypeError, match="predict_proba must be a callable, got int"):
        occlusion_map(3, np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match=r"given 17 images it returned shape \(2,\)"):
        occlusion_map(lambda images: np.ones(2), np.ones((1, 4, 4)), window=1)


def test_importing_the_core_loads_no_framework():
    code = (
        "import sys; from sk_mnist.inspection import occlusion_map; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'matplotlib', "
        "'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_occlusion_in_two_steps_is_occlusion_map():
    rng = np.random.default_rng(4)
    image = (rng.random((7, 7)) > 0.6).astype(np.uint8) * 255
    model = LinearSoftmax(rng.normal(size=(7, 7)) / 255)
    occlusion = Occlusion(image, window=2)
    assert occlusion.rows.dtype == np.uint8
    np.testing.assert_array_equal(occlusion.rows[0], image)
    # Each copy differs from the image inside one 2x2 window only, set to 0.
    for copy in occlusion.rows[1:]:
        changed = np.argwhere(copy != image)
        assert len(changed) > 0
        assert (copy[copy != image] == 0).all()
        assert (changed.max(axis=0) - changed.min(axis=0) <= 1).all()
    maps, column = occlusion.attributions(model(occlusion.rows), target=1)
    assert column == 1
    np.testing.assert_allclose(
        maps, occlusion_map(model, image[None], target=1)[0], atol=1e-12
    )
    with pytest.raises(ValueError, match=r"one row of probabilities per row"):
        occlusion.attributions(model(occlusion.rows[:3]))


def test_occlusion_rows_bounds_the_rows_of_any_image():
    full = np.full((28, 28), 255, dtype=np.uint8)
    assert occlusion_rows((28, 28)) == 27 * 27 + 1 == len(Occlusion(full).rows)
    assert occlusion_rows((28, 28), window=1) == 785
    sparse = np.zeros((28, 28), dtype=np.uint8)
    sparse[5, 5] = 9
    assert len(Occlusion(sparse).rows) == 5 <= occlusion_rows((28, 28))


@pytest.mark.parametrize("stride", [3, 5, 28, (1, 10), (3, 2)])
def test_a_stride_longer_than_the_window_is_refused_naming_both(stride):
    # Pixels between windows would be covered by none: no attribution (0/0).
    model = LinearSoftmax(np.ones((28, 28)))
    image = np.random.default_rng(0).random((28, 28))
    with pytest.raises(
        ValueError, match=r"stride \(.*\) must be at most window \(2, 2\)"
    ):
        occlusion_map(model, image[None], stride=stride)
    with pytest.raises(ValueError, match=r"must be at most window \(2, 2\)"):
        Occlusion(image, stride=stride)
    with pytest.raises(ValueError, match=r"must be at most window \(2, 2\)"):
        occlusion_rows((28, 28), stride=stride)


@pytest.mark.parametrize("shape", [(7, 9), (5, 5), (1, 6)])
def test_every_pixel_is_covered_for_every_accepted_window_and_stride(shape):
    rng = np.random.default_rng(6)
    image = rng.random(shape) + 0.1
    model = LinearSoftmax(rng.normal(size=shape))
    for window in np.ndindex(shape):
        window = (window[0] + 1, window[1] + 1)
        for stride in np.ndindex(window):
            stride = (stride[0] + 1, stride[1] + 1)
            maps = occlusion_map(model, image[None], window=window, stride=stride)
            assert np.isfinite(maps).all(), (window, stride)
            occlusion = Occlusion(image, window=window, stride=stride)
            rows = occlusion_rows(shape, window=window, stride=stride)
            assert len(occlusion.rows) == rows


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 2.0},
        {"window": None},
        {"window": float("nan")},
        {"window": True},
        {"window": "2"},
        {"window": (2.0, 2)},
        {"stride": 1.5},
        {"stride": None},
    ],
)
def test_a_window_or_stride_that_is_not_integers_names_the_value(kwargs):
    ((name, value),) = kwargs.items()
    model = LinearSoftmax(np.ones((4, 4)))
    with pytest.raises(
        ValueError, match=rf"{name} must be an integer >= 1 or a pair of them"
    ) as error:
        occlusion_map(model, np.ones((1, 4, 4)), **kwargs)
    assert f"got {value!r}" in str(error.value)


def test_memory_grows_with_the_calls_not_with_the_number_of_windows():
    # 96 x 96 float32: 9025 windows. All the copies at once would be 9026 x 36
    # KiB = 333 MB (and the masks of every window 83 MB more); a call of 1024
    # rows is 38 MB.
    import tracemalloc

    image = np.full((1, 96, 96), 0.5, dtype=np.float32)
    calls = []

    def predict_proba(images):
        calls.append(len(images))
        mean = images.mean(axis=(1, 2), dtype=np.float64)
        return np.stack([mean, 1 - mean], axis=1)

    tracemalloc.start()
    try:
        maps = occlusion_map(predict_proba, image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(calls) == 95 * 95 + 1
    assert max(calls) == 1024
    assert peak < 1.5 * 1024 * image[0].nbytes, peak
    assert np.isfinite(maps).all()
    assert (maps > 0).all()


def test_calls_of_a_large_image_are_capped_in_bytes():
    image = np.zeros((1, 128, 128))  # 128 KiB: 512 of them make 64 MiB
    image[0, 60:70, 60:70] = 1.0
    calls = []

    def predict_proba(images):
        calls.append(len(images))
        mean = images.mean(axis=(1, 2))
        return np.stack([mean, 1 - mean], axis=1)

    occlusion_map(predict_proba, image, window=1, output="probability")
    assert calls == [101]  # the image and its 100 inked pixels, one call
    calls.clear()
    occlusion_map(predict_proba, np.ones((1, 128, 128)), window=(1, 128))
    assert calls == [129]
    calls.clear()
    occlusion_map(predict_proba, np.ones((1, 128, 128)), window=(1, 8))
    assert max(calls) == 512
    assert sum(calls) == 128 * 121 + 1


@pytest.mark.parametrize(
    ("bad", "found"),
    [(np.nan, "nan"), (np.inf, "inf"), (-0.5, "-0.5")],
)
def test_non_finite_or_negative_probabilities_are_refused(bad, found):
    def predict_proba(images):
        proba = np.full((len(images), 2), 0.5)
        proba[-1, 1] = bad
        return proba

    with pytest.raises(
        ValueError, match=r"predict_proba's output must be finite probabilities >= 0"
    ) as error:
        occlusion_map(predict_proba, np.ones((1, 4, 4)))
    assert f"the first {found}" in str(error.value)
    occlusion = Occlusion(np.ones((4, 4)))
    proba = np.full((len(occlusion.rows), 2), 0.5)
    proba[3, 0] = bad
    with pytest.raises(
        ValueError, match=r"proba must be finite .* \(row 3, column 0\)"
    ):
        occlusion.attributions(proba)


def test_images_that_are_not_numbers_are_refused_naming_them():
    model = LinearSoftmax(np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"images must hold numbers .* dtype <U1"):
        occlusion_map(model, np.full((1, 4, 4), "a"))
    with pytest.raises(ValueError, match=r"image must hold numbers .* dtype object"):
        Occlusion(np.full((4, 4), None))
    with pytest.raises(ValueError, match=r"target must be None, .* got \{\}"):
        occlusion_map(model, np.ones((1, 4, 4)), target={})
