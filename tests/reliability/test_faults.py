"""Faults during work: Ctrl-C inside a search, and memory over many fits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import FAST_PARAMS
from sklearn.model_selection import GridSearchCV

from sk_mnist import KerasMLPClassifier

FAST = FAST_PARAMS  # the suite's one small, fast classifier (conftest.py)


class _InterruptFirstFit(keras.callbacks.Callback):
    """Raises KeyboardInterrupt, as Ctrl-C would, in the first fit only."""

    fired = []

    def on_train_batch_end(self, batch, logs=None):
        if not type(self).fired and batch == 2:
            type(self).fired.append(True)
            raise KeyboardInterrupt


def test_ctrl_c_in_one_fit_of_a_search_warns_and_the_search_stays_usable(small_mnist):
    X, y, Xt, _ = small_mnist
    _InterruptFirstFit.fired = []
    search = GridSearchCV(
        KerasMLPClassifier(callbacks=[_InterruptFirstFit()], **FAST),
        {"hidden_layer_sizes": [(16,), (32,)]},
        cv=2,
    )
    with pytest.warns(UserWarning, match="interrupted by the user in epoch 1"):
        search.fit(X[:800], y[:800])
    assert _InterruptFirstFit.fired == [True]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(Xt[:5]).shape == (5,)


_GROWTH = textwrap.dedent("""
    import gc, json, sys
    import numpy as np, keras
    from sk_mnist import KerasMLPClassifier
    X = np.random.default_rng(0).random((1000, 784), dtype=np.float32)
    y = np.arange(1000) % 10
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    sizes = []
    for i in range(int(sys.argv[2])):
        if sys.argv[1] == "raw":
            m = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
            m.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
            m.fit(X, keras.utils.to_categorical(y, 10), batch_size=128, epochs=1, verbose=0)
            del m
        else:
            KerasMLPClassifier(hidden_layer_sizes=(64,), dropout=0, epochs=1,
                               random_state=i).fit(X, y)
        gc.collect()
        sizes.append(rss())
    print(json.dumps(sizes))
""")


def _growth(kind, fits=15):
    out = subprocess.run(
        [sys.executable, "-c", _GROWTH, kind, str(fits)],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout
    sizes = json.loads(out)
    return sizes[-1] - sizes[4]  # after the first few fits have warmed the caches


def test_memory_over_successive_fits_grows_no_more_than_raw_keras():
    # TensorFlow itself keeps about 4 MB per model built and fitted in a process
    # (measured here, also with keras.backend.clear_session()); sk-mnist must
    # not add a leak of its own on top (a kept model or data copy would add
    # tens of MB per fit).
    ours, raw = _growth("sk-mnist"), _growth("raw")
    print(f"growth over fits 5..15: sk-mnist {ours:.0f} MB, raw Keras {raw:.0f} MB")
    assert ours <= 1.5 * max(raw, 0.0) + 40
