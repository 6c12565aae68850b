"""Fixtures shared by the sk-mnist tests: real MNIST and tiny synthetic digits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from sk_mnist import fetch_mnist

# Property-based tests: the "ci" profile runs each test's budget of examples,
# the same ones every run (derandomized, so CI is reproducible), with no
# deadline (a fit's first call compiles) and no example database in the
# checkout; "long" (HYPOTHESIS_PROFILE=long) runs twenty times the examples,
# freshly drawn, and keeps a database so that what it finds is replayed.
settings.register_profile(
    "ci",
    deadline=None,
    database=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The checkout's sibling folder holds real MNIST on the team's machines;
# .ci/run exports SK_MNIST_DATA pointing at it.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


#: A small, fast classifier: a few seconds per fit on 3,000 digits.
FAST_PARAMS = dict(hidden_layer_sizes=(64,), epochs=2, batch_size=64, random_state=0)


@pytest.fixture(scope="session")
def fast_params() -> dict:
    """Parameters of a small, fast, seeded KerasMLPClassifier (a fresh copy)."""
    return dict(FAST_PARAMS)


@pytest.fixture(scope="session")
def mnist_path() -> str:
    """Path of the real mnist.npz: SK_MNIST_DATA, else the shared folder."""
    path = os.environ.get("SK_MNIST_DATA") or (str(_SHARED) if _SHARED.exists() else "")
    if not path:
        pytest.skip("real MNIST is not available: set SK_MNIST_DATA")
    return path


@pytest.fixture(scope="session")
def mnist_train(mnist_path):
    """The 60,000 real training images (n, 28, 28) uint8 and labels."""
    bunch = fetch_mnist(path=mnist_path, subset="train")
    return bunch.images, bunch.target


@pytest.fixture(scope="session")
def mnist_test(mnist_path):
    """The 10,000 real test images (n, 28, 28) uint8 and labels."""
    bunch = fetch_mnist(path=mnist_path, subset="test")
    return bunch.images, bunch.target


@pytest.fixture(scope="session")
def small_mnist(mnist_train, mnist_test):
    """3,000 real training and 1,000 real test digits, flattened to [0, 1]."""
    (x, y), (xt, yt) = mnist_train, mnist_test
    flat = lambda a: (a.reshape(len(a), -1) / np.float32(255)).astype(np.float32)  # noqa: E731
    return flat(x[:3000]), y[:3000], flat(xt[:1000]), yt[:1000]


@pytest.fixture(scope="session")
def digit_reader(mnist_train):
    """flattener + a 256-unit network on all 60,000 training images: a model
    good enough to read digits that were drawn or re-rendered (~98%)."""
    from sklearn.pipeline import make_pipeline

    from sk_mnist import KerasMLPClassifier, MNISTFlattener

    X, y = mnist_train
    return make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(hidden_layer_sizes=(256,), epochs=5, random_state=0),
    ).fit(X, y)


@pytest.fixture(scope="session")
def inspected_network(mnist_train):
    """flattener + a 128-unit network, 3 epochs on 10,000 real training
    images (seconds): the network the inspection tests explain."""
    from sklearn.pipeline import make_pipeline

    from sk_mnist import KerasMLPClassifier, MNISTFlattener

    X, y = mnist_train
    return make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(hidden_layer_sizes=(128,), epochs=3, random_state=0),
    ).fit(X[:10_000], y[:10_000])
