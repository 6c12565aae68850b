"""GridSearchCV on a real Dask LocalCluster gives the serial search's scores."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

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
    for bad in (0, 2.7, "2"):
        with pytest.raises(ValueError, match="'tf_threads' parameter"):
            worker_environment(bad)
    with pytest.raises(ValueError, match="'backend' parameter.*'pytorch'"):
        worker_environment(backend="pytorch")


def _pipeline():
    return Pipeline(
        [
            ("flatten", MNISTFlattener()),
            ("mlp", KerasMLPClassifier(epochs=2, batch_size=64, random_state=0)),
        ]
    )


def test_dask_search_gives_exactly_the_serial_scores(mnist_train):
    # Large enough that TensorFlow's thread count changes the sums: with one
    # thread per worker, one of these scores differs in the 4th digit.
    images, labels = mnist_train
    X, y = images[:20_000], labels[:20_000]
    pipe = _pipeline()
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


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dask(*args, env=None):
    dask = Path(sys.executable).with_name("dask")
    return subprocess.Popen(
        [str(dask), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_the_documented_command_line_cluster_gives_the_serial_scores(mnist_train):
    """`dask scheduler` and two `dask worker ... --nthreads 1`, as the docs say."""
    images, labels = mnist_train
    X, y = images[:3000], labels[:3000]
    pipe = _pipeline()
    grid = {"mlp__hidden_layer_sizes": [(16,), (32,)]}
    serial = GridSearchCV(pipe, grid, cv=2, n_jobs=1).fit(X, y)
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, **worker_environment()}
    processes = [
        _dask(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            address.rsplit(":", 1)[1],
            "--no-dashboard",
            env=env,
        )
    ]
    try:
        for _ in range(2):
            processes.append(
                _dask(
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    "3GiB",
                    "--no-dashboard",
                    env=env,
                )
            )
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            with joblib.parallel_backend("dask", scatter=[X, y]):
                on_dask = GridSearchCV(pipe, grid, cv=2).fit(X, y)
            for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
                np.testing.assert_array_equal(
                    on_dask.cv_results_[key], serial.cv_results_[key]
                )

            # A worker killed in the middle of a search: Dask reruns its tasks
            # on the other worker, and the result is the same (or a clear
            # error); the search must not hang.
            outcome = {}

            def search():
                try:
                    with joblib.parallel_backend("dask", scatter=[X, y]):
                        outcome["search"] = GridSearchCV(pipe, grid, cv=2).fit(X, y)
                except Exception as exc:  # reported by the assertion below
                    outcome["error"] = exc

            runner = threading.Thread(target=search)
            runner.start()
            deadline = time.monotonic() + 60
            while not client.processing() or not any(client.processing().values()):
                assert time.monotonic() < deadline, "no task started"
                time.sleep(0.1)
            os.killpg(processes[1].pid, signal.SIGKILL)
            runner.join(timeout=600)
            assert not runner.is_alive(), "the search hung after a worker died"
            if "error" in outcome:
                assert str(outcome["error"]), outcome["error"]
            else:
                np.testing.assert_array_equal(
                    outcome["search"].cv_results_["mean_test_score"],
                    serial.cv_results_["mean_test_score"],
                )
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert all(process.poll() is not None for process in processes)
