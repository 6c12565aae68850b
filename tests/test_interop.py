"""sk-mnist's network builder as scikeras's ``model=``, for people migrating.

scikeras comes with the ``bench`` extra only: without it this test is
skipped, and .ci/run installs the extra and runs it again
(``python -m pytest tests/test_interop.py``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from sk_mnist import fetch_mnist
from sk_mnist._keras.network import build_network

scikeras_wrappers = pytest.importorskip(
    "scikeras.wrappers", reason="scikeras comes with the bench extra"
)


def test_build_network_works_as_the_scikeras_model():
    (X, y), (Xt, yt) = (
        fetch_mnist(subset=subset, return_X_y=True) for subset in ("train", "test")
    )
    X, y, Xt, yt = X[:3000] / 255.0, y[:3000], Xt[:1000] / 255.0, yt[:1000]
    clf = scikeras_wrappers.KerasClassifier(
        model=partial(
            build_network,
            784,
            10,
            hidden_layer_sizes=(64,),
            dropout=(0.0,),
            seeds=[0, 1, 2],
        ),
        loss="categorical_crossentropy",
        epochs=2,
        batch_size=64,
        verbose=0,
    )
    clf.fit(X, y)
    assert clf.model_.count_params() == 784 * 64 + 64 + 64 * 10 + 10
    assert clf.score(Xt, yt) > 0.8
    assert clf.predict_proba(Xt[:3]).shape == (3, 10)
    np.testing.assert_allclose(clf.predict_proba(Xt[:3]).sum(axis=1), 1.0, rtol=1e-5)
