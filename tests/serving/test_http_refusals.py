"""What ``sk-mnist serve`` answers before its app: requests httptools cannot
parse, heads without end, connections over the limit, absolute-form targets.

A real server (uvicorn's protocol is what is tested), on a loopback port;
every read is bounded.
"""

from __future__ import annotations

import re
import time

import onnx_graphs
import pytest
from _serve_process import ServeProcess

from sk_mnist.serving._server import MAX_HEAD_BYTES

MAX_CONNECTIONS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("refusals") / "model.onnx"
    path.write_bytes(onnx_graphs.model(*onnx_graphs.head()))
    with ServeProcess(
        path, "--max-connections", MAX_CONNECTIONS, "--read-timeout", 30
    ) as server:
        yield server


def _exchange(server, data, timeout=10):
    """What the server answers ``data`` until it closes (or ``timeout``)."""
    with server.connect() as sock:
        sock.sendall(data)
        return _read_all(sock, timeout)


def _read_all(sock, timeout):
    answer, deadline = b"", time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        answer += chunk
    return answer


def _parsed(answer):
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return status, headers, body


def _count(server, status):
    with server.connect() as sock:
        sock.sendall(
            b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        text = _read_all(sock, 10).decode()
    found = re.search(
        rf'sk_mnist_requests_total{{endpoint="other",status="{status}"}} (\S+)', text
    )
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize(
    ("request_bytes", "why"),
    [
        (b"G@T / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "Invalid method"),
        (
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n"
            b"Content-Length: 2\r\n\r\nab",
            "Duplicate Content-Length",
        ),
        (b"GET /v2/health/live HTTP/1.1 x\r\nHost: 127.0.0.1\r\n\r\n", "CRLF"),
        # Before (outside tester's Y3): "User callback error".
        (
            b"GET http:///v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "its target",
        ),
    ],
    ids=["bad-method", "two-content-lengths", "malformed-request-line", "bad-target"],
)
def test_what_httptools_cannot_parse_is_a_json_400_and_counted(
    server, request_bytes, why
):
    # Before: uvicorn's plain-text "Invalid HTTP request received.", not
    # counted in sk_mnist_requests_total.
    before = _count(server, 400)
    status, headers, body = _parsed(_exchange(server, request_bytes))
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert body.startswith(b'{"error":"the request is not valid HTTP/1.1 (')
    assert why.encode() in body
    assert _count(server, 400) == before + 1


def test_a_head_without_end_is_cut_off_with_431(server):
    # Before: no limit; 32 connections streaming header lines took the
    # tester's server from 219 to 556 MB until the read timeout.
    line = b"X-Filler: " + b"a" * 990 + b"\r\n"
    before = _count(server, 431)
    with server.connect() as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sent = 0
        try:
            while sent < 64 * 2**20:
                sock.sendall(line)
                sent += len(line)
        except ConnectionError:
            pass
        answer = _read_all(sock, 10)
    # The server stopped reading a chunk or so past the limit; what the
    # socket buffers took on the way is the rest.
    assert sent < 16 * 2**20
    if answer:  # unless the reset beat the answer to the client
        status, headers, body = _parsed(answer)
        assert status == 431
        assert f"limit of {MAX_HEAD_BYTES} bytes".encode() in body
    assert _count(server, 431) == before + 1


@pytest.mark.parametrize("writes", [1, 2], ids=["one-write", "two-writes"])
def test_a_whole_head_over_the_limit_in_one_or_two_writes_is_a_431(server, writes):
    # Before (outside tester's Y1): a read that begins or ends a head was not
    # counted, so a 200,000-byte head in one or two writes was answered 200.
    filler = b"X-Filler: " + b"a" * 200_000 + b"\r\n"
    head = (
        b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + filler
        + b"Connection: close\r\n\r\n"
    )
    before = _count(server, 431)
    with server.connect() as sock:
        half = len(head) // writes
        try:
            sock.sendall(head[:half])
            if writes == 2:
                time.sleep(0.3)
                sock.sendall(head[half:])
        except ConnectionError:
            pass
        answer = _read_all(sock, 10)
    assert _parsed(answer)[0] == 431
    assert _count(server, 431) == before + 1


def test_a_long_head_under_the_limit_is_answered(server):
    filler = b"X-Filler: " + b"a" * (MAX_HEAD_BYTES // 2) + b"\r\n"
    answer = _exchange(
        server,
        b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + filler
        + b"Connection: close\r\n\r\n",
    )
    assert _parsed(answer)[:1] == (200,)


def test_connections_over_the_limit_get_a_json_503_with_retry_after(server):
    # Before: uvicorn's plain-text 503, without Retry-After.
    before = _count(server, 503)
    held = [server.connect() for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.5)  # accepted by the server
        status, headers, body = _parsed(
            _exchange(
                server,
                b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Connection: close\r\n\r\n",
            )
        )
    finally:
        for sock in held:
            sock.close()
    assert status == 503
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/json"
    assert b"limit of 4 connections" in body
    time.sleep(0.5)  # the held connections closed
    assert _count(server, 503) == before + 1


@pytest.mark.parametrize(
    ("target", "host", "status"),
    [
        (b"http://evil.example/predict", b"127.0.0.1", 403),
        (b"http://evil.example:80/v2/health/live", b"127.0.0.1", 403),
        (b"http://127.0.0.1/v2/health/live", b"evil.example", 200),
    ],
)
def test_an_absolute_form_target_is_checked_by_its_authority(
    server, target, host, status
):
    # RFC 9112, 3.2.2: the target's authority is the request's host, and the
    # Host header is ignored. Before: the Host header was checked, so a
    # target naming another site was answered.
    method = b"POST" if target.endswith(b"predict") else b"GET"
    answer = _exchange(
        server,
        method
        + b" "
        + target
        + b" HTTP/1.1\r\nHost: "
        + host
        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    got, _, body = _parsed(answer)
    assert got == status, body
    if status == 403:
        assert b"evil.example" in body
        assert b"not a loopback name" in body
