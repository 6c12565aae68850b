"""A real ``sk-mnist serve`` process on a free loopback port."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, save

#: Libraries the serving process must not map: TensorFlow, JAX/XLA, Keras's.
_FORBIDDEN = re.compile(r"tensorflow|jaxlib|jax_plugins|xla_extension|keras", re.I)


@pytest.fixture(scope="module")
def saved(mnist_train, mnist_test, tmp_path_factory):
    (X, y), (Xt, _) = mnist_train, mnist_test
    pipe = make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(hidden_layer_sizes=(64,), epochs=2, random_state=0),
    ).fit(X[:6000], y[:6000])
    path = save(pipe, tmp_path_factory.mktemp("serve") / "model.skops")
    return pipe, path, Xt[:1000]


def _infer_body(images):
    return {
        "inputs": [
            {
                "name": "X",
                "shape": list(images.shape),
                "datatype": "UINT8",
                "data": images.ravel().tolist(),
            }
        ]
    }


class _Server:
    """``sk-mnist serve`` in a child process; its address read from its log."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sk_mnist", "serve", *map(str, args), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log = []
        for line in self.process.stderr:  # uvicorn logs to stderr
            self.log.append(line)
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            if found:
                self.url = found.group(1)
                break
        else:
            raise AssertionError("".join(self.log) + self.process.stdout.read())
        self.port = int(self.url.rsplit(":", 1)[1])
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self):
        for line in self.process.stderr:
            self.log.append(line)

    def stop(self, signum=signal.SIGTERM):
        self.process.send_signal(signum)
        self.process.wait(timeout=60)
        self._drain.join(timeout=10)
        return self.process.returncode, "".join(self.log)


@pytest.fixture(scope="module")
def server(saved):
    _, path, _ = saved
    server = _Server(path, "--log-level", "info")
    yield server
    if server.process.poll() is None:
        server.process.kill()


def test_serve_answers_1000_real_images_as_the_saved_pipeline(server, saved):
    pipe, _, images = saved
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
    answer = httpx.post(
        f"{server.url}/v2/models/mnist/infer",
        json=_infer_body(images),
        timeout=60,
    ).json()
    label, proba = answer["outputs"]
    np.testing.assert_array_equal(label["data"], pipe.predict(images))
    np.testing.assert_allclose(
        np.reshape(proba["data"], (1000, 10)), pipe.predict_proba(images), atol=1e-5
    )


def test_the_serving_process_maps_no_tensorflow_keras_or_jax(server):
    with open(f"/proc/{server.process.pid}/maps") as maps:
        mapped = {line.split()[-1] for line in maps if "/" in line}
    assert not [path for path in mapped if _FORBIDDEN.search(path)]
    assert any("onnxruntime" in path for path in mapped)


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(
            b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        reply = http.client.HTTPResponse(conn)
        reply.begin()  # answered although the body never comes
        body = json.loads(reply.read())
    assert reply.status == 413
    assert "over this server's limit" in body["error"]


def test_the_default_address_is_this_machine_only():
    from sk_mnist.cli import build_parser

    assert build_parser().parse_args(["serve", "m.onnx"]).host == "127.0.0.1"


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)]
)
def test_a_signal_stops_the_server_after_answering_what_is_in_flight(
    saved, tmp_path, signum, status
):
    pipe, path, images = saved
    # A request that waits in the batcher for others, long enough to be in
    # flight when the signal comes.
    server = _Server(path, "--max-batch-size", "4096", "--max-latency-ms", "3000")
    answers = []

    def ask():
        answers.append(
            httpx.post(
                f"{server.url}/v2/models/mnist/infer",
                json=_infer_body(images[:5]),
                timeout=60,
            )
        )

    asking = threading.Thread(target=ask)
    asking.start()
    time.sleep(1)
    returncode, log = server.stop(signum)
    asking.join(timeout=60)
    assert len(answers) == 1
    assert answers[0].status_code == 200
    assert answers[0].json()["outputs"][0]["data"] == pipe.predict(images[:5]).tolist()
    assert returncode == status, log
    assert "Traceback" not in log
    word = "terminated" if signum == signal.SIGTERM else "interrupted"
    assert f"sk-mnist serve: {word}" in log


def test_a_model_that_cannot_be_exported_is_one_line(tmp_path, mnist_test):
    images, _ = mnist_test
    flattener = save(MNISTFlattener().fit(images[:10]), tmp_path / "f.skops")
    done = subprocess.run(
        [sys.executable, "-m", "sk_mnist", "serve", str(flattener), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "holds a MNISTFlattener, not a classifier" in lines[0]
    assert os.listdir(tmp_path) == ["f.skops"]


def test_worker_processes_share_the_port_and_sum_their_metrics(saved):
    pipe, path, images = saved
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "sk_mnist", "serve", str(path), "--workers", "2"]
        + ["--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # the export, then two processes starting
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        for _ in range(8):
            answer = httpx.post(
                f"{url}/v2/models/mnist/infer", json=_infer_body(images[:3])
            )
            assert (
                answer.json()["outputs"][0]["data"] == pipe.predict(images[:3]).tolist()
            )
        metrics = httpx.get(f"{url}/metrics").text
        assert (
            'sk_mnist_requests_total{endpoint="/v2/models/{name}/infer",status="200"} 8.0'
            in metrics
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    # uvicorn's process manager stops the workers and ends the command itself.
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
