"""The attributions pass the two sanity checks, on real MNIST.

Deletion: blanking each digit's most important pixels lowers the probability
of its predicted class clearly more than blanking as many of its inked pixels
at random. Randomisation (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018): the maps of the trained network and of the same network with
re-initialised weights have a low rank correlation, so they show the model and
not just the digit's strokes.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.stats import spearmanr

from sk_mnist.inspection import occlusion_attributions

N_DIGITS, N_BLANKED = 200, 20


@pytest.fixture(scope="module")
def digits(mnist_test):
    images, labels = mnist_test
    return images[:N_DIGITS], labels[:N_DIGITS]


@pytest.fixture(scope="module")
def explained(inspected_network, digits):
    return occlusion_attributions(inspected_network, digits[0])


def _reinitialised(pipe, seed):
    """A copy of ``pipe`` whose Dense layers are drawn afresh, as Keras
    initialises them (Glorot-uniform kernels, zero biases)."""
    clone = copy.deepcopy(pipe)
    rng = np.random.default_rng(seed)
    for layer in clone[-1].model_.layers:
        weights = layer.get_weights()
        if weights:
            kernel, bias = weights
            limit = np.sqrt(6 / sum(kernel.shape))
            fresh = rng.uniform(-limit, limit, kernel.shape).astype(kernel.dtype)
            layer.set_weights([fresh, np.zeros_like(bias)])
    return clone


def test_blanking_the_most_important_pixels_lowers_the_class_more_than_random(
    inspected_network, digits, explained
):
    images, _ = digits
    rng = np.random.default_rng(0)
    top, random = images.copy(), images.copy()
    for i, image in enumerate(images):
        inked = np.flatnonzero(image.ravel())
        top[i].ravel()[np.argsort(-explained.attributions[i].ravel())[:N_BLANKED]] = 0
        random[i].ravel()[rng.choice(inked, N_BLANKED, replace=False)] = 0
    rows = np.arange(len(images))
    columns = np.searchsorted(inspected_network.classes_, explained.target)
    drop_top = (
        explained.target_proba - inspected_network.predict_proba(top)[rows, columns]
    )
    drop_random = (
        explained.target_proba - inspected_network.predict_proba(random)[rows, columns]
    )
    assert drop_top.mean() > 0.3
    assert drop_top.mean() > 4 * drop_random.mean()
    assert np.mean(drop_top > drop_random) > 0.9


def test_maps_of_a_reinitialised_network_do_not_rank_like_the_trained_ones(
    inspected_network, digits, explained
):
    images, _ = digits
    randomised = occlusion_attributions(
        _reinitialised(inspected_network, seed=0), images, target=explained.target
    )
    # Over the inked pixels: elsewhere both maps are 0 or nearly (blanking
    # paper changes nothing), ties and small values that would measure the
    # digit's outline, not the model.
    signed, absolute = [], []
    for image, trained, other in zip(
        images, explained.attributions, randomised.attributions, strict=True
    ):
        inked = image > 0
        signed.append(spearmanr(trained[inked], other[inked])[0])
        absolute.append(spearmanr(np.abs(trained[inked]), np.abs(other[inked]))[0])
    assert np.median(signed) < 0.3
    assert np.median(absolute) < 0.3
    # The measure can see similarity: the trained maps computed with a
    # different window rank like the trained ones.
    again = occlusion_attributions(inspected_network, images[:20], window=3)
    control = [
        spearmanr(a[s], b[s])[0]
        for a, b, s in zip(
            explained.attributions[:20],
            again.attributions,
            images[:20] > 0,
            strict=True,
        )
    ]
    assert np.median(control) > 0.6
