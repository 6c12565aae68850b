"""The options of ``sk-mnist serve``, declared once.

:class:`ServeOptions` is the one place where each option's default and its
bounds live: the command line builds its arguments from the defaults, the
app and the model read their limits from it, and the worker processes of
``--workers N`` receive it as JSON.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import re

#: A model name is one URL path segment that needs no escaping.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: A host to bind: a name or an IPv4/IPv6 address, without brackets or spaces.
_HOST = re.compile(r"[A-Za-z0-9_.:%-]+")


class OptionError(ValueError):
    """An option out of bounds: :attr:`option` names it, the message says why.

    ``str(error)`` is ``"{option} {problem}"``; the command line names the
    option ``--option-name`` instead.
    """

    def __init__(self, option: str, problem: str):
        super().__init__(f"{option} {problem}")
        self.option, self.problem = option, problem


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """What ``sk-mnist serve`` was asked for; :meth:`check` validates it.

    Parameters
    ----------
    host : str, default="127.0.0.1"
        Address to bind; anything but a loopback address exposes the server.
    port : int, default=8000
        TCP port, 0 for one the system picks.
    name : str, default="mnist"
        The model's name in ``/v2/models/{name}``: letters, digits, ``-``,
        ``_`` and ``.``.
    workers : int, default=1
        Server processes.
    threads : int, default=1
        onnxruntime's threads for one model call.
    timeout : float, default=10.0
        Seconds one model call may run before it is stopped.
    max_body_bytes : int, default=8 MiB
        Largest request body.
    max_images : int, default=4096
        Most images in one request.
    max_batch_size : int or None, default=64
        Combine concurrent requests into model calls of up to this many
        images; 1 or ``None`` runs each request alone.
    max_latency_ms : float, default=0.0
        With batching, the longest a request waits for others; 0 waits for
        none (opportunistic: the requests that arrive while a call runs make
        the next one). The defaults are what ``benchmarks/http_serving.py``
        measured best (``docs/user_guide/serving.rst``, Batching).
    memory_budget_bytes : int, default=256 MiB
        Bytes that all requests in flight may hold at once (bodies being read,
        images being decoded).
    read_timeout : float, default=10.0
        Seconds a client has to deliver a request's head and body.
    keep_alive_timeout : float, default=5.0
        Seconds an idle keep-alive connection stays open.
    max_connections : int, default=512
        Concurrent connections; beyond them new requests get 503.
    graceful_shutdown_timeout : float, default=5.0
        After SIGTERM, seconds requests in flight have to finish.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    name: str = "mnist"
    workers: int = 1
    threads: int = 1
    timeout: float = 10.0
    max_body_bytes: int = 8 * 1024**2
    max_images: int = 4096
    max_batch_size: int | None = 64
    max_latency_ms: float = 0.0
    memory_budget_bytes: int = 256 * 1024**2
    read_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 512
    graceful_shutdown_timeout: float = 5.0

    def check(self) -> ServeOptions:
        """Return ``self`` if every option is in bounds.

        Raises
        ------
        OptionError
            Naming the option, the value given and what is expected.
        """
        if not isinstance(self.host, str) or not _HOST.fullmatch(self.host):
            raise OptionError(
                "host",
                "must be an address or host name to bind, such as 127.0.0.1 or "
                f"::1 (IPv6 without brackets); got {self.host!r}",
            )
        _in_range("port", self.port, 0, 65535)
        if (
            not isinstance(self.name, str)
            or not _NAME.fullmatch(self.name)
            or self.name in {".", ".."}
        ):
            raise OptionError(
                "name",
                "must be one URL path segment of letters, digits, '-', '_' and "
                f"'.' (not '.' or '..'); got {self.name!r}",
            )
        _in_range("workers", self.workers, 1, max_threads())
        _in_range("threads", self.threads, 1, max_threads())
        _finite("timeout", self.timeout, 0.0, 3600.0, low_open=True)
        _in_range("max_body_bytes", self.max_body_bytes, 1, 1024**3)
        _in_range("max_images", self.max_images, 1, 1_000_000)
        if self.max_batch_size is not None:
            # Not bounded by max_images: a request larger than a batch runs
            # alone, and a --max-images the user lowers must not turn the
            # default batch size into an error about an option never set.
            _in_range("max_batch_size", self.max_batch_size, 1, 1_000_000)
        _finite("max_latency_ms", self.max_latency_ms, 0.0, 1000.0)
        _in_range(
            "memory_budget_bytes", self.memory_budget_bytes, 1024**2, 64 * 1024**3
        )
        _finite("read_timeout", self.read_timeout, 0.0, 3600.0, low_open=True)
        _finite(
            "keep_alive_timeout", self.keep_alive_timeout, 0.0, 3600.0, low_open=True
        )
        _in_range("max_connections", self.max_connections, 1, 1_000_000)
        _finite("graceful_shutdown_timeout", self.graceful_shutdown_timeout, 0.0, 600.0)
        return self

    @property
    def is_loopback(self) -> bool:
        """Whether :attr:`host` reaches this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def to_json(self) -> str:
        """The options as JSON, for the worker processes."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        """The options :meth:`to_json` wrote, checked again."""
        return cls(**json.loads(text)).check()


def max_threads() -> int:
    """The most onnxruntime threads or worker processes: four per core."""
    return 4 * (os.cpu_count() or 1)


def _in_range(name, value, low, high):
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise OptionError(
            name, f"must be a whole number in [{low}, {high}]; got {value!r}"
        )


def _finite(name, value, low, high, *, low_open=False):
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and value <= high
    )
    if not ok:
        bracket = "(" if low_open else "["
        raise OptionError(
            name,
            f"must be a finite number in {bracket}{low:g}, {high:g}]; got {value!r}",
        )
