"""A real ``sk-mnist serve`` process on a free loopback port, and its options."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
from _serve_process import ServeProcess
from sklearn.pipeline import make_pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, save
from sk_mnist.cli import build_parser, main
from sk_mnist.cli import serve as serve_command
from sk_mnist.onnx import to_onnx
from sk_mnist.serving._options import ServeOptions

#: Libraries the serving process must not map: TensorFlow, JAX/XLA, Keras's.
_FORBIDDEN = re.compile(r"tensorflow|jaxlib|jax_plugins|xla_extension|keras", re.I)


@pytest.fixture(scope="module")
def saved(mnist_train, mnist_test, tmp_path_factory):
    (X, y), (Xt, _) = mnist_train, mnist_test
    pipe = make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(hidden_layer_sizes=(64,), epochs=2, random_state=0),
    ).fit(X[:6000], y[:6000])
    folder = tmp_path_factory.mktemp("serve")
    path = save(pipe, folder / "model.skops")
    to_onnx(pipe, folder / "model.onnx", images=True)
    return pipe, path, Xt[:1000]


@pytest.fixture(scope="module")
def onnx_file(saved):
    """The model exported: served without an export of its own."""
    return saved[1].with_suffix(".onnx")


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


@pytest.fixture(scope="module")
def server(saved):
    _, path, _ = saved
    with ServeProcess(path, "--log-level", "info") as server:  # exported first
        yield server


def test_serve_answers_1000_real_images_as_the_saved_pipeline(server, saved):
    pipe, _, images = saved
    assert httpx.get(f"{server.url}v2/health/ready").json() == {"ready": True}
    answer = httpx.post(
        f"{server.url}v2/models/mnist/infer",
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
    with server.connect() as conn:
        conn.sendall(
            b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        reply = http.client.HTTPResponse(conn)
        reply.begin()  # answered although the body never comes
        body = json.loads(reply.read())
    assert reply.status == 413
    assert "over this server's limit" in body["error"]


def test_the_banner_names_the_port_really_bound(server):
    # --port 0: the system picked one, which the banner names and answers.
    assert server.port != 0
    assert f" at http://127.0.0.1:{server.port}/ " in server.out()


def test_the_options_are_serve_options_fields_with_their_defaults():
    args = build_parser().parse_args(["serve", "m.onnx"])
    for field in dataclasses.fields(ServeOptions):
        assert getattr(args, field.name) == field.default, field.name
    assert args.host == "127.0.0.1"  # this machine only


def test_the_docs_options_table_names_every_option_with_its_default():
    text = (Path(__file__).parents[2] / "docs/user_guide/serving.rst").read_text()
    table = text[text.index("   * - option\n") : text.index("The routes\n")]
    documented = {}
    rows = re.findall(r"   \* - (.+)\n     - (.+)\n", table)
    for options, defaults in rows[1:]:  # below the header
        names = re.findall(r"``(--[a-z-]+)``", options)
        values = [value.strip("` ") for value in defaults.split(", ")]
        documented.update(zip(names, values, strict=True))
    for field in dataclasses.fields(ServeOptions):
        option = "--" + field.name.replace("_", "-")
        shown = "none" if field.default is None else serve_command._shown(field)
        assert documented.pop(option) == shown, option
    assert set(documented) == {"--log-level"}


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--threads", "100000", "a whole number in [1, {cap}]; got 100000"),
        ("--threads", "0", "a whole number in [1, {cap}]; got 0"),
        ("--workers", "100000", "a whole number in [1, {cap}]; got 100000"),
        ("--max-latency-ms", "inf", "a finite number in [0, 1000]; got inf"),
        ("--max-latency-ms", "nan", "a finite number in [0, 1000]; got nan"),
        ("--max-latency-ms", "1e308", "a finite number in [0, 1000]; got 1e+308"),
        ("--max-latency-ms", "-1", "a finite number in [0, 1000]; got -1.0"),
        ("--timeout", "inf", "a finite number in (0, 3600]; got inf"),
        ("--port", "70000", "a whole number in [0, 65535]; got 70000"),
        ("--port", "-1", "a whole number in [0, 65535]; got -1"),
        (
            "--host",
            "",
            "host name to bind, such as 127.0.0.1 or ::1 (IPv6 without brackets); got ''",
        ),
        ("--host", " ", "(IPv6 without brackets); got ' '"),
        ("--host", "[::1]", "(IPv6 without brackets); got '[::1]'"),
        (
            "--name",
            "",
            "one URL path segment of letters, digits, '-', '_' and '.'",
        ),
        (
            "--name",
            "a/b",
            "'-', '_' and '.' (not '.' or '..'); got 'a/b'",
        ),
        ("--name", "mnist/infer", "(not '.' or '..'); got 'mnist/infer'"),
        ("--name", "..", "(not '.' or '..'); got '..'"),
        ("--read-timeout", "0", "a finite number in (0, 3600]; got 0.0"),
        ("--keep-alive-timeout", "nan", "a finite number in (0, 3600]; got nan"),
        ("--graceful-shutdown-timeout", "-1", "a finite number in [0, 600]; got -1.0"),
        ("--max-connections", "0", "a whole number in [1, 1000000]; got 0"),
        ("--max-batch-size", "0", "a whole number in [1, 1000000]; got 0"),
    ],
)
def test_an_option_out_of_bounds_is_one_line_before_the_model_is_read(
    tmp_path, capsys, option, value, expected
):
    missing = tmp_path / "missing.onnx"  # never looked at
    with pytest.raises(SystemExit) as stopped:
        main(["serve", str(missing), f"{option}={value}"])
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"sk-mnist serve: error: {option} must be ")
    assert expected.format(cap=4 * os.cpu_count()) in line


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.org"])
def test_a_host_that_is_not_loopback_is_warned_about_in_one_line(
    tmp_path, capsys, host
):
    missing = tmp_path / "missing.onnx"
    assert main(["serve", str(missing), "--host", host, "--port", "0"]) == 1
    warning, error = capsys.readouterr().err.strip().splitlines()
    assert warning == (
        f"sk-mnist serve: warning: --host {host} is not a loopback address: anyone "
        "who can reach this machine can use the server"
    )
    # Then the model missing, or (for an address not this machine's) the bind.
    assert error.startswith("sk-mnist serve: error: ")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_a_loopback_host_is_not_warned_about(tmp_path, capsys, host):
    missing = tmp_path / "missing.onnx"
    assert main(["serve", str(missing), "--host", host, "--port", "0"]) == 1
    assert "warning" not in capsys.readouterr().err


def test_a_port_taken_is_one_line_before_the_model_is_read(server, tmp_path, capsys):
    missing = tmp_path / "missing.onnx"
    assert main(["serve", str(missing), "--port", str(server.port)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"sk-mnist serve: error: cannot listen on {server.url} (")


@pytest.mark.parametrize(
    ("signum", "status", "word"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
)
def test_a_signal_stops_the_server_after_answering_what_is_in_flight(
    saved, onnx_file, signum, status, word
):
    pipe, _, images = saved
    body = json.dumps(_infer_body(images[:5])).encode()
    with ServeProcess(onnx_file) as server, server.connect() as conn:
        # A request in flight when the signal comes: half its body sent.
        conn.sendall(
            b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body[:100]
        )
        assert server.wait_for_log("Application startup complete")
        time.sleep(0.5)  # the head read by the server
        server.send(signum)
        assert server.wait_for_log("Shutting down")
        conn.sendall(body[100:])
        reply = http.client.HTTPResponse(conn)
        reply.begin()
        answer = json.loads(reply.read())
        assert server.wait() == status
    assert reply.status == 200
    assert answer["outputs"][0]["data"] == pipe.predict(images[:5]).tolist()
    log = server.log()
    assert "Traceback" not in log
    # Not "terminated (after the command had finished)".
    assert log.splitlines()[-1] == f"sk-mnist serve: {word}"


def test_sigterm_during_the_export_stops_at_once_and_leaves_nothing(saved, tmp_path):
    _, path, _ = saved
    with ServeProcess(path, env={"TMPDIR": str(tmp_path)}, ready=False) as server:
        deadline = time.monotonic() + 120
        while "Exporting" not in server.out() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.listdir(tmp_path)  # the export's temporary folder
        time.sleep(0.5)  # the export process started
        assert server.stop(signal.SIGTERM) == 143
    assert server.log().strip().splitlines() == ["sk-mnist serve: terminated"]
    assert os.listdir(tmp_path) == []
    # No export process left behind.
    assert not [
        cmdline
        for cmdline in Path("/proc").glob("[0-9]*/cmdline")
        if str(tmp_path).encode() in _read_or_empty(cmdline)
    ]


def _read_or_empty(path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


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


def test_worker_processes_share_the_port_and_sum_their_metrics(saved, onnx_file):
    pipe, _, images = saved
    with ServeProcess(onnx_file, "--workers", "2", "--log-level", "warning") as server:
        for _ in range(8):
            answer = httpx.post(
                f"{server.url}v2/models/mnist/infer", json=_infer_body(images[:3])
            )
            assert (
                answer.json()["outputs"][0]["data"] == pipe.predict(images[:3]).tolist()
            )
        metrics = httpx.get(f"{server.url}metrics").text
        assert (
            'sk_mnist_requests_total{endpoint="/v2/models/{name}/infer",status="200"} 8.0'
            in metrics
        )
        # uvicorn's process manager stops the workers; the command exits as
        # the documentation says a SIGTERM ends it.
        assert server.stop(signal.SIGTERM) == 143
    assert "Traceback" not in server.log()
