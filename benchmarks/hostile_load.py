"""The server under hostile load: its memory, slow clients and its shutdown.

Runs ``sk-mnist serve`` on 127.0.0.1 with its default options (a small
hand-written model: what is measured is the server, not the network) and
measures, from outside, what issue 27's tester did:

- the server's peak resident memory (sampled from ``/proc`` every 5 ms)
  while 16 clients post at once an image bomb to ``/predict``: a 5000x5000
  RGBA PNG of 16-bit zeros (about 200 KB that decode to 200 MB), and
  progressive JPEGs of 4900x4900 zeros, grey and colour (a few hundred KB
  whose decoder holds 48 and 144 MB of coefficients); while 40 clients
  each send all but the last byte of an 8 MiB body, then stall; and while
  32 clients stream header lines without end;
- how long the server keeps idle connections (connected, nothing sent),
  trickling ones (a byte every 2 s) and endless heads open;
- the time from SIGTERM to the process's exit while clients hold stalled
  uploads, with one process and with ``--workers 2``, and with
  ``--workers 2`` while the workers load a model of 80 MB.

Every client connects to loopback only, every wait is bounded, and the run
stops by itself (the servers are killed if anything goes wrong). Writes
``results/hostile_load.md`` and ``.json`` (``-quick`` with ``--quick``, a
smoke run of seconds with fewer clients and 1 s timeouts).

    python benchmarks/hostile_load.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import report as reporting
from measure import machine

#: The full run's counts; --quick takes fewer and shorter.
FULL = {
    "bombs": 16,
    "uploads": 40,
    "upload_bytes": 8 * 1024**2,
    "idle": 200,
    "trickling": 50,
    "stalled_at_shutdown": 20,
    "heads": 32,
    "options": [],  # serve's defaults: --read-timeout 10, grace 5 s
    "wait": 60,
}
QUICK = {
    "bombs": 4,
    "uploads": 8,
    "upload_bytes": 1024**2,
    "idle": 20,
    "trickling": 5,
    "stalled_at_shutdown": 4,
    "heads": 4,
    "options": ["--read-timeout", "1", "--graceful-shutdown-timeout", "1"],
    "wait": 15,
}
LIVE = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="sk-mnist-hostile-") as folder:
        model = Path(folder) / "model.onnx"
        model.write_bytes(_model())
        large = Path(folder) / "large.onnx"
        large.write_bytes(_model(hidden=(4096, 4096)))
        bomb = _bomb_png(5000, 5000)
        images = {
            "png": bomb,
            "jpeg_grey": _progressive_jpeg("L", 4900),
            "jpeg_colour": _progressive_jpeg("RGB", 4900),
        }
        with _Server(model, *plan["options"]) as server:
            rest = server.rss()
            bombs = {
                kind: _bombs(server, image, plan["bombs"])
                for kind, image in images.items()
            }
            # Before the stalled uploads, whose memory the allocator keeps.
            heads = _endless_heads(server, plan["heads"], plan["wait"])
            uploads = _stalled_uploads(
                server, plan["uploads"], plan["upload_bytes"], plan["wait"]
            )
            idle = _lifetimes(server, plan["idle"], plan["wait"], trickle=False)
            trickling = _lifetimes(server, plan["trickling"], plan["wait"], True)
            shutdown_one = _shutdown(server, plan["stalled_at_shutdown"], plan["wait"])
        with _Server(model, "--workers", "2", *plan["options"]) as server:
            shutdown_two = _shutdown(server, plan["stalled_at_shutdown"], plan["wait"])
        loading = _shutdown_while_loading(large, plan["wait"])
    report = {
        "quick": args.quick,
        "machine": machine(),
        "commit": _commit(),
        "options": plan["options"] or "defaults",
        "bomb_bytes": {kind: len(image) for kind, image in images.items()},
        "rss_at_rest_mb": rest,
        "bombs": bombs,
        "stalled_uploads": uploads,
        "endless_heads": heads,
        "idle_connections": idle,
        "trickling_connections": trickling,
        "sigterm_with_stalled_clients": {
            "1 worker": shutdown_one,
            "2 workers": shutdown_two,
        },
        "sigterm_while_the_workers_load": loading,
    }
    stem = "hostile_load-quick" if args.quick else "hostile_load"
    reporting.write(stem, report, _markdown(report))


class _Server:
    """``sk-mnist serve MODEL --port 0``, its address read from its banner."""

    def __init__(self, model, *options, ready=True):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sk_mnist", "serve", str(model), "--port", "0"]
            + ["--log-level", "warning", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.process.stdout.readline()
        found = re.search(r" at http://127\.0\.0\.1:(\d+)/ ", line)
        if not found:
            self.process.kill()
            raise RuntimeError(f"sk-mnist serve did not start: {line!r}")
        self.port = int(found.group(1))
        if not ready:
            return
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url("/v2/health/ready"), timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        self.process.kill()
        raise RuntimeError("sk-mnist serve was not ready after 120 s")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def connect(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def rss(self) -> float:
        """The server process's resident memory now, in MB."""
        return _rss_mb(self.process.pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


class _PeakMemory:
    """The peak resident memory of a process while the block runs, in MB."""

    def __init__(self, pid):
        self.pid, self.peak, self._done = pid, 0.0, threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, _rss_mb(self.pid))
            except OSError:  # the process ended
                return
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(timeout=5)


def _rss_mb(pid) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def _bombs(server, png, n):
    """``n`` clients post the bomb to /predict at once."""
    statuses, seconds = [None] * n, [None] * n
    start = threading.Barrier(n)

    def post(i):
        start.wait(timeout=30)
        began = time.monotonic()
        try:
            with server.connect(timeout=120) as sock:
                sock.sendall(
                    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(png) + png
                )
                statuses[i] = int(_read_reply(sock).split(b" ", 2)[1])
        except OSError as exc:
            statuses[i] = type(exc).__name__
        seconds[i] = time.monotonic() - began

    return {
        "clients": n,
        **_memory_while(server, post, n, settle=1.0),
        "statuses": _counts(statuses),
        "answered_in_s_max": round(max(seconds), 2),
    }


def _stalled_uploads(server, n, size, wait):
    """``n`` clients send all but the last byte of a ``size``-byte body."""
    head = (
        b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size
    )
    chunk = b" " * (1 << 16)
    sent, lived = [0] * n, [None] * n

    def upload(i):
        with server.connect(timeout=wait) as sock:
            began = time.monotonic()
            try:
                sock.sendall(head)
                while sent[i] < size - 1:
                    part = chunk[: size - 1 - sent[i]]
                    sock.sendall(part)
                    sent[i] += len(part)
            except OSError:
                pass  # refused or closed while sending
            lived[i] = _closed_after(sock, began, wait)

    return {
        "clients": n,
        "body_bytes": size,
        **_memory_while(server, upload, n),
        "bytes_accepted_median": int(statistics.median(sent)),
        **_lifetime_summary(lived, wait),
    }


def _endless_heads(server, n, wait):
    """``n`` clients send a request line, then header lines of 1 KB without
    end (at most 64 MiB each, for ``wait`` seconds)."""
    line = b"X-Filler: " + b"a" * 1012 + b"\r\n"
    sent, lived, statuses = [0] * n, [None] * n, [None] * n

    def stream(i):
        with server.connect(timeout=wait) as sock:
            began = time.monotonic()
            try:
                sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                while sent[i] < 64 * 2**20 and time.monotonic() - began < wait:
                    sock.sendall(line)
                    sent[i] += len(line)
            except OSError:
                pass  # cut off
            try:
                sock.settimeout(5)
                statuses[i] = int(_read_reply(sock).split(b" ", 2)[1])
            except OSError as exc:
                statuses[i] = type(exc).__name__
            lived[i] = _closed_after(sock, began, wait)

    return {
        "clients": n,
        **_memory_while(server, stream, n),
        "bytes_sent_median": int(statistics.median(sent)),
        "bytes_sent_max": max(sent),
        "statuses": _counts(statuses),
        **_lifetime_summary(lived, wait),
    }


def _terminate(process, wait):
    """SIGTERM ``process``: its exit status (None if still running after
    ``wait`` s) and the seconds it took."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        status = None
    return status, time.monotonic() - began


def _shutdown_while_loading(model, wait, delay=1.0):
    """SIGTERM ``delay`` s after the banner of ``--workers 2`` serving the
    large ``model``, while the workers import the app and load it."""
    with _Server(model, "--workers", "2", ready=False) as server:
        time.sleep(delay)
        status, seconds = _terminate(server.process, wait)
    return {
        "model_mb": round(model.stat().st_size / 1e6, 1),
        "signal_after_banner_s": delay,
        "exit_status": status,
        "seconds_to_exit": round(seconds, 2) if status is not None else None,
    }


def _lifetimes(server, n, wait, trickle):
    """How long the server keeps ``n`` connections that send nothing, or
    that send a request's head a byte every 2 s."""
    lived, sent = [None] * n, [0] * n

    def hold(i):
        with server.connect(timeout=wait) as sock:
            began = time.monotonic()
            if not trickle:
                lived[i] = _closed_after(sock, began, wait)
                return
            while time.monotonic() - began < wait and sent[i] < len(LIVE):
                try:
                    sock.sendall(LIVE[sent[i] : sent[i] + 1])
                except OSError:
                    break
                sent[i] += 1
                if _closed_within(sock, 2.0):
                    break
            lived[i] = time.monotonic() - began if _closed_within(sock, 0) else None

    _run_all(hold, n)
    summary = {"connections": n, **_lifetime_summary(lived, wait)}
    if trickle:
        summary["bytes_sent_max"] = max(sent)
    return summary


def _shutdown(server, n, wait):
    """SIGTERM while ``n`` clients hold stalled uploads: time to exit."""
    stalled = []
    for _ in range(n):
        sock = server.connect(timeout=wait)
        sock.sendall(LIVE)
        _read_reply(sock)
        sock.sendall(
            b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        stalled.append(sock)
    time.sleep(0.5)
    status, seconds = _terminate(server.process, wait)
    for sock in stalled:
        sock.close()
    return {
        "stalled_clients": n,
        "exit_status": status,
        "seconds_to_exit": round(seconds, 2) if status is not None else None,
    }


def _commit() -> str | None:
    """The checkout's commit, if it is a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).parent,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def _memory_while(server, client, n, *, settle=0.0):
    """The server's RSS before, at its peak while ``n`` clients run, and after."""
    before = server.rss()
    with _PeakMemory(server.process.pid) as memory:
        _run_all(client, n)
    time.sleep(settle)
    return {
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(memory.peak, 1),
        "rss_after_mb": round(server.rss(), 1),
    }


def _memory_text(row):
    return (
        f"peak {row['peak_rss_mb']:.0f} MB, then {row['rss_after_mb']:.0f} MB "
        f"(from {row['rss_before_mb']:.0f} MB)"
    )


def _run_all(target, n):
    threads = [
        threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)


def _read_reply(sock) -> bytes:
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    if not reply:
        raise ConnectionResetError("closed without an answer")
    return reply


def _closed_within(sock, timeout) -> bool:
    """Whether the server closed ``sock`` (EOF or reset) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        if time.monotonic() >= deadline:
            return False


def _closed_after(sock, began, wait):
    """Seconds from ``began`` until the server closed ``sock``, or None."""
    if _closed_within(sock, wait - (time.monotonic() - began)):
        return time.monotonic() - began
    return None


def _lifetime_summary(lived, wait):
    closed = [s for s in lived if s is not None]
    return {
        "closed_by_server": len(closed),
        "still_open_after_s": wait if len(closed) < len(lived) else None,
        "lived_s_median": round(statistics.median(closed), 2) if closed else None,
        "lived_s_max": round(max(closed), 2) if closed else None,
    }


def _counts(values):
    counts = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def _model(hidden=()) -> bytes:
    """uint8 images in, label and probabilities out, as export names them;
    ``hidden`` ReLU layers of those widths (random weights) before the last."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Cast", ["X"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["f", "shape"], ["h0"]),
    ]
    initializers = [
        numpy_helper.from_array(np.arange(10, dtype=np.int64), "classes"),
        numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"),
    ]
    width = 784
    for i, size in enumerate(hidden):
        weights = rng.normal(0, 1e-3, (width, size)).astype(np.float32)
        initializers.append(numpy_helper.from_array(weights, f"W{i}"))
        nodes += [
            helper.make_node("MatMul", [f"h{i}", f"W{i}"], [f"m{i}"]),
            helper.make_node("Relu", [f"m{i}"], [f"h{i + 1}"]),
        ]
        width = size
    last = len(hidden)
    initializers.append(
        numpy_helper.from_array(
            rng.normal(0, 1e-3, (width, 10)).astype(np.float32), "W"
        )
    )
    nodes += [
        helper.make_node("MatMul", [f"h{last}", "W"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["i"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "i"], ["label"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "hostile_load",
        [helper.make_tensor_value_info("X", TensorProto.UINT8, [None, 28, 28])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, [None, 10]
            ),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return model.SerializeToString()


def _bomb_png(width, height) -> bytes:
    """A PNG of ``width`` x ``height`` RGBA pixels at 16 bits, all zeros.

    Written by hand: Pillow has no 16-bit RGBA mode to save from.
    """

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = bytes(1 + width * 8)  # filter byte, then 4 samples of 2 bytes
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )


def _progressive_jpeg(mode, side) -> bytes:
    """A progressive JPEG of ``side`` x ``side`` zeros (colour at 4:4:4)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (side, side)).save(
        buffer, "JPEG", progressive=True, quality=1, subsampling=0
    )
    return buffer.getvalue()


def _markdown(report):
    u, heads = report["stalled_uploads"], report["endless_heads"]
    idle, trickle = report["idle_connections"], report["trickling_connections"]
    shutdown = report["sigterm_with_stalled_clients"]

    def lived(s):
        if s["lived_s_max"] is None:
            return f"none closed in {s['still_open_after_s']} s"
        text = (
            f"closed after {s['lived_s_median']} s (median), {s['lived_s_max']} s max"
        )
        if s["still_open_after_s"]:
            text += f"; {s['connections'] - s['closed_by_server']} still open"
        return text

    def answers(statuses):
        return "answers: " + ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items()))

    names = {
        "png": "PNG, 5000x5000 RGBA 16-bit zeros",
        "jpeg_grey": "progressive JPEG, 4900x4900 grey zeros",
        "jpeg_colour": "progressive JPEG, 4900x4900 colour zeros, 4:4:4",
    }
    rows = [("at rest", f"{report['rss_at_rest_mb']:.0f} MB RSS", "")]
    for kind, b in report["bombs"].items():
        size = report["bomb_bytes"][kind]
        rows.append(
            (
                f"{b['clients']} image bombs at once ({size / 1024:.0f} KB "
                f"{names[kind]}) to /predict",
                _memory_text(b),
                answers(b["statuses"]),
            )
        )
    rows += [
        (
            f"{heads['clients']} heads without end (1 KB header lines)",
            _memory_text(heads),
            f"{answers(heads['statuses'])}; sent {heads['bytes_sent_median'] // 1024}"
            f" KB (median), {heads['bytes_sent_max'] // 1024} KB max; "
            + lived({**heads, "connections": heads["clients"]}),
        ),
        (
            f"{u['clients']} stalled uploads of {u['body_bytes'] // 1024**2} MiB "
            "(all but the last byte sent)",
            _memory_text(u),
            lived({**u, "connections": u["clients"]}),
        ),
        (f"{idle['connections']} idle connections", lived(idle), ""),
        (
            f"{trickle['connections']} connections trickling a byte every 2 s",
            lived(trickle),
            f"bytes of the head sent: at most {trickle['bytes_sent_max']}",
        ),
    ]
    for workers, s in shutdown.items():
        rows.append(
            (
                f"SIGTERM with {s['stalled_clients']} stalled uploads, {workers}",
                f"exit {s['exit_status']} after {s['seconds_to_exit']} s"
                if s["exit_status"] is not None
                else "still running",
                "",
            )
        )
    loading = report["sigterm_while_the_workers_load"]
    rows.append(
        (
            f"SIGTERM {loading['signal_after_banner_s']:g} s after the banner, "
            f"2 workers loading a {loading['model_mb']:.0f} MB model",
            f"exit {loading['exit_status']} after {loading['seconds_to_exit']} s"
            if loading["exit_status"] is not None
            else "still running",
            "",
        )
    )
    lines = [
        f"# The server under hostile load ({'quick' if report['quick'] else 'full'})",
        "",
        reporting.machine_line(report["machine"]),
        "",
        "`benchmarks/hostile_load.py`: `sk-mnist serve` with "
        + (
            "its default options"
            if report["options"] == "defaults"
            else "`" + " ".join(report["options"]) + "`"
        )
        + ", one process (and `--workers 2` for the last two rows); clients on "
        "127.0.0.1; resident memory sampled every 5 ms."
        + (f" Measured at commit {report['commit']}." if report["commit"] else ""),
        "",
        "| load | server | clients |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b_} | {c} |" for a, b_, c in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
