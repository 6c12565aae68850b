"""load over random mutations of a valid file: refused, or a working model."""

from __future__ import annotations

import resource
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.pipeline import make_pipeline
from strategies import budget, file_mutations

from sk_mnist import KerasMLPClassifier, MNISTFlattener, load, save
from sk_mnist.exceptions import UnsafeModelError


@pytest.fixture(scope="module")
def original(small_mnist, tmp_path_factory):
    X, y, Xt, _ = small_mnist
    images = (X[:600] * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    pipe = make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1, random_state=0),
    ).fit(images, y[:600])
    path = save(pipe, tmp_path_factory.mktemp("original") / "model.skops")
    test = (Xt[:50] * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    return path.read_bytes(), pipe.predict_proba(test), test


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def memory_bound():
    """The peak RSS of the whole module stays within 500 MiB of its start."""
    start = _peak_rss_mib()
    yield
    assert _peak_rss_mib() - start < 500


@settings(
    max_examples=budget(60),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_mutated_file_is_refused_or_loads_a_working_model(
    original, memory_bound, data
):
    content, proba, test = original
    what, mutated = data.draw(file_mutations(content), label="mutation")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.skops"
        path.write_bytes(mutated)
        try:
            model = load(path)
        except (UnsafeModelError, OSError):
            return
    # An edit that leaves a valid model (another verbose level, a renamed
    # layer): it must work, and a model that predicts as the original is one.
    got = model.predict_proba(test)
    assert got.shape[0] == len(test), what
    assert np.isfinite(got).all(), what
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5, err_msg=what)
    np.testing.assert_array_equal(
        model.predict(test), model.classes_[got.argmax(axis=1)], err_msg=what
    )
