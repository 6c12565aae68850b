"""Connections of a real ``sk-mnist serve``: read timeout, limits, shutdown.

Each test asserts what happens to a connection (closed by the server or
not, answered or not) or to the process (its exit status), never how long
it took; every wait is bounded. The model is a small hand-written graph, so
the servers start without TensorFlow.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import onnx_graphs
import pytest
from _serve_process import ServeProcess, closed_by_server

#: The module server's read timeout, in seconds: a client has that long to
#: deliver a whole request.
READ_TIMEOUT = 3
MAX_CONNECTIONS = 8
#: A request whose body never comes: 1000 bytes declared, one sent.
STALLED = (
    b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
)
LIVE = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("connections") / "model.onnx"
    path.write_bytes(onnx_graphs.model(*onnx_graphs.head()))
    return path


@pytest.fixture(scope="module")
def server(model_file):
    with ServeProcess(
        model_file,
        "--read-timeout",
        READ_TIMEOUT,
        "--keep-alive-timeout",
        1,
        "--max-connections",
        MAX_CONNECTIONS,
    ) as server:
        yield server


def _infer_body(n):
    images = np.arange(n * 784, dtype=np.int64).reshape(n, 28, 28) % 256
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "X",
                    "shape": [n, 28, 28],
                    "datatype": "UINT8",
                    "data": images.ravel().tolist(),
                }
            ]
        }
    ).encode()


def _answer(sock) -> tuple[int, bytes]:
    """The status and body of the answer to what was sent on ``sock``."""
    sock.settimeout(30)
    reply = http.client.HTTPResponse(sock)
    reply.begin()
    return reply.status, reply.read()


def test_an_idle_connection_is_closed_after_the_read_timeout(server):
    with server.connect() as sock:
        assert closed_by_server(sock, timeout=10 * READ_TIMEOUT)
    assert server.wait_for_log("closing the connection: no complete request")


def test_a_request_trickled_a_byte_every_2_s_is_cut_off_before_its_end(server):
    sent = 0
    with server.connect() as sock:
        while sent < len(LIVE):
            try:
                sock.sendall(LIVE[sent : sent + 1])
            except OSError:
                break
            sent += 1
            if closed_by_server(sock, timeout=2):
                break
    assert sent < len(LIVE)


def test_a_body_that_never_comes_is_cut_off(server):
    with server.connect() as sock:
        sock.sendall(STALLED)
        assert closed_by_server(sock, timeout=10 * READ_TIMEOUT)
    # The app saw the client go: one line and a 499, no traceback.
    assert server.wait_for_log("499", timeout=10)
    assert "Traceback" not in server.log()


def test_requests_sent_in_time_are_answered_however_long_the_connection_lives(
    server,
):
    """The read timeout counts for each request, not for the connection; an
    idle keep-alive connection is closed after --keep-alive-timeout."""
    body = _infer_body(1000)  # about 2 MB of JSON
    infer = (
        b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with server.connect() as sock:
        for _ in range(2 * READ_TIMEOUT):  # each 0.5 s apart: 3 read timeouts
            sock.sendall(LIVE)
            assert _answer(sock) == (200, b'{"live":true}')
            time.sleep(0.5)
        sock.sendall(infer + body)
        status, answer = _answer(sock)
        assert status == 200
        assert len(json.loads(answer)["outputs"][0]["data"]) == 1000
        assert closed_by_server(sock, timeout=30)  # keep-alive: 1 s


def test_connections_beyond_the_limit_get_503_until_the_idle_ones_are_closed(
    server,
):
    idle = [server.connect() for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.5)  # all accepted
        assert httpx.get(f"{server.url}v2/health/live").status_code == 503
        assert all(closed_by_server(sock, timeout=10 * READ_TIMEOUT) for sock in idle)
        assert httpx.get(f"{server.url}v2/health/live").status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_1100_idle_connections_under_1024_descriptors_block_new_requests_no_longer_than_the_read_timeout(  # noqa: E501
    model_file,
):
    """systemd's default limit: the idle connections take every descriptor,
    and new requests fail until the read timeout closes them, while the
    clients still hold them open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:  # this process holds the 1,100 client sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    with ServeProcess(
        model_file, "--read-timeout", 2, "--log-level", "warning", preexec_fn=limit
    ) as server:
        idle = [server.connect() for _ in range(1100)]
        try:
            answers = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and 200 not in answers:
                try:
                    got = httpx.get(f"{server.url}v2/health/live", timeout=5)
                    answers.append(got.status_code)
                except httpx.TransportError as exc:
                    answers.append(type(exc).__name__)
                time.sleep(0.2)
            assert 200 in answers, answers[-5:]
            # The clients still hold their 1,100 sockets: the server closed them.
            assert sum(closed_by_server(sock, timeout=0.01) for sock in idle) > 900
        finally:
            for sock in idle:
                sock.close()
        assert server.stop() == 143


def _stall(server) -> socket.socket:
    """A connection whose request is in flight: its body never comes."""
    sock = server.connect()
    sock.sendall(LIVE)  # accepted and answered: the server holds it
    assert _answer(sock)[0] == 200
    sock.sendall(STALLED)
    time.sleep(0.5)  # read by the server
    return sock


def test_sigterm_closes_a_stalled_upload_after_the_grace_period_and_exits_143(
    model_file,
):
    with ServeProcess(
        model_file, "--graceful-shutdown-timeout", 1, "--read-timeout", 600
    ) as server:
        with _stall(server) as sock:
            assert server.stop(signal.SIGTERM, timeout=60) == 143
            assert closed_by_server(sock, timeout=5)
        log = server.log()
        assert "closing the connection: shutting down" in log
        assert "Traceback" not in log
        assert log.splitlines()[-1] == "sk-mnist serve: terminated"


def test_a_second_sigterm_stops_the_server_at_once(model_file):
    with ServeProcess(
        model_file, "--graceful-shutdown-timeout", 600, "--read-timeout", 600
    ) as server:
        with _stall(server):
            server.send(signal.SIGTERM)
            assert server.wait_for_log("Waiting for connections to close")
            assert server.wait(timeout=1) is None  # waiting for the upload
            assert server.stop(signal.SIGTERM, timeout=60) == 143
        assert "Traceback" not in server.log()
        assert server.log().splitlines()[-1] == "sk-mnist serve: terminated"


def _workers(pid) -> list[int]:
    """The worker processes uvicorn's process manager ``pid`` started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            spawned = b"spawn_main" in (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if parent == pid and spawned:
            found.append(int(stat.parent.name))
    return found


def test_with_workers_a_second_sigterm_stops_at_once_even_with_a_stalled_worker(
    model_file,
):
    with ServeProcess(
        model_file,
        "--workers",
        2,
        "--graceful-shutdown-timeout",
        600,
        "--read-timeout",
        600,
    ) as server:
        workers = _workers(server.process.pid)
        assert len(workers) == 2
        stalled = [_stall(server) for _ in range(4)]  # in one worker or both
        os.kill(workers[0], signal.SIGSTOP)  # a worker that never answers
        try:
            server.send(signal.SIGTERM)
            assert server.wait_for_log("Terminated child process")
            assert server.wait(timeout=1) is None  # waiting for the uploads
            assert server.stop(signal.SIGTERM, timeout=60) == 143
            assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
        finally:
            for sock in stalled:
                sock.close()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert server.log().splitlines()[-1] == "sk-mnist serve: terminated"


#: Run by each worker process of the test below at start-up (a
#: ``sitecustomize`` on its path): importing the app hangs, as loading a large
#: model takes long, but for ever. The parent imports it as usual.
_SLOW_LOAD = """
import sys, time

class _Hang:
    def find_spec(self, name, path=None, target=None):
        if name == "sk_mnist.serving.app":
            open(__file__ + ".loading", "w").close()
            time.sleep(3600)
        return None

if "--multiprocessing-fork" in sys.argv:
    sys.meta_path.insert(0, _Hang())
"""


def test_with_workers_sigterm_while_they_load_the_model_exits_at_once(
    model_file, tmp_path
):
    # Before: each worker loaded on (uvicorn's handlers only ask a started
    # server to stop) and was killed at the end of the grace period, here
    # 600 s: 8.5 s from SIGTERM to exit with the defaults.
    hook = tmp_path / "sitecustomize.py"
    hook.write_text(_SLOW_LOAD)
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    with ServeProcess(
        model_file,
        "--workers",
        2,
        "--graceful-shutdown-timeout",
        600,
        env={"PYTHONPATH": path},
        ready=False,
    ) as server:
        server.wait_for_banner(timeout=300)
        loading = Path(f"{hook}.loading")
        deadline = time.monotonic() + 300
        while not loading.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loading.exists(), server.log()
        workers = _workers(server.process.pid)
        assert workers
        assert server.stop(signal.SIGTERM, timeout=60) == 143, server.log()
        assert "Killing the worker processes" not in server.log()
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
        assert server.log().splitlines()[-1] == "sk-mnist serve: terminated"


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 in this Python")
def test_an_ipv6_host_is_named_in_brackets_with_the_port_bound(model_file):
    with ServeProcess(model_file, "--host", "::1") as server:
        assert server.url == f"http://[::1]:{server.port}/"
        assert server.port != 0
        assert httpx.get(f"{server.url}v2/health/live").json() == {"live": True}
        assert "warning" not in server.log()  # ::1 is loopback
