"""GridSearchCV on a real Dask LocalCluster gives the serial search's scores."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener
from sk_mnist.dask import local_cluster, worker_environment

distributed = pytest.importorskip(
    "distributed", reason="the dask extra is not installed"
)


def test_worker_environment_sets_threads_before_import():
    env = worker_environment(2, backend="jax")
    assert env["TF_NUM_INTRAOP_THREADS"] == "2"
    assert env["TF_NUM_INTEROP_THREADS"] == "2"
    assert env["KERAS_BACKEND"] == "jax"
    assert "TF_NUM_INTRAOP_THREADS" not in worker_environment(None)
    with pytest.raises(
        ValueError, match="tf_threads must be a positive integer, got 0"
    ):
        worker_environment(0)


def test_dask_search_gives_exactly_the_serial_scores(mnist_train):
    # Large enough that TensorFlow's thread count changes the sums: with one
    # thread per worker, one of these scores differs in the 4th digit.
    images, labels = mnist_train
    X, y = images[:20_000], labels[:20_000]
    pipe = Pipeline(
        [
            ("flatten", MNISTFlattener()),
            ("mlp", KerasMLPClassifier(epochs=2, batch_size=64, random_state=0)),
        ]
    )
    grid = {"mlp__hidden_layer_sizes": [(16,), (32,)], "mlp__dropout": [0.0, 0.2]}
    serial = GridSearchCV(pipe, grid, cv=2, n_jobs=1).fit(X, y)
    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        # Same TensorFlow thread count as this process: same sums, same scores.
        env = client.run(lambda: dict(__import__("os").environ))
        here = __import__("os").environ.get("TF_NUM_INTRAOP_THREADS")
        assert all(e.get("TF_NUM_INTRAOP_THREADS") == here for e in env.values())
        assert all(e["TF_CPP_MIN_LOG_LEVEL"] == "2" for e in env.values())
        with joblib.parallel_backend("dask", scatter=[X, y]):
            on_dask = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(on_dask.cv_results_[key], serial.cv_results_[key])
    np.testing.assert_array_equal(
        on_dask.best_estimator_.predict_proba(X[:50]),
        serial.best_estimator_.predict_proba(X[:50]),
    )
