"""``sk-mnist serve`` in a child process on a loopback port the system picks.

Every wait is bounded: the banner, readiness, the exit. The address is the
one the banner names (``--port 0``: the port really bound).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx2 as httpx

_BANNER = re.compile(r"Serving .* at (http://(\S+):(\d+)/) ")


class ServeProcess:
    """``sk-mnist serve MODEL --port 0 ARGS...``, started and ready.

    Attributes: ``url`` (ending in ``/``), ``host``, ``port``, ``process``;
    ``log()`` is what it wrote to stderr so far, ``out()`` to stdout.
    """

    def __init__(
        self, model, *args, env=None, preexec_fn=None, ready=True, timeout=300
    ):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sk_mnist", "serve", str(model), "--port", "0"]
            + [str(arg) for arg in args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
            preexec_fn=preexec_fn,
        )
        self._out, self._err, self._lines = [], [], queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in [
                (self.process.stdout, self._out),
                (self.process.stderr, self._err),
            ]
        ]
        for reader in self._readers:
            reader.start()
        if ready:
            self.wait_for_banner(timeout)
            self.wait_until_ready(timeout)

    def _read(self, stream, into):
        for line in stream:
            into.append(line)
            self._lines.put(line)

    def wait_for_banner(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _BANNER.search("".join(self._out))
            if found:
                self.url, self.host = found.group(1), found.group(2).strip("[]")
                self.port = int(found.group(3))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"no banner:\n{self.out()}{self.log()}")

    def wait_until_ready(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if (
                    httpx.get(f"{self.url}v2/health/ready", timeout=5).status_code
                    == 200
                ):
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError(f"never ready:\n{self.out()}{self.log()}")

    def wait_for_log(self, text, timeout=60) -> bool:
        """Whether stderr holds ``text`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.05)
        return False

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=10)

    def log(self) -> str:
        return "".join(self._err)

    def out(self) -> str:
        return "".join(self._out)

    def send(self, signum=signal.SIGTERM):
        self.process.send_signal(signum)

    def wait(self, timeout=60) -> int | None:
        """The exit status, or None if still running after ``timeout`` seconds."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self._readers:
            reader.join(timeout=10)
        return self.process.returncode

    def stop(self, signum=signal.SIGTERM, timeout=60) -> int | None:
        self.send(signum)
        return self.wait(timeout)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def closed_by_server(sock, timeout) -> bool:
    """Whether the server closes ``sock`` within ``timeout`` seconds (what
    it sends before closing is read and ignored)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return False
