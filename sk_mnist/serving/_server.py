"""uvicorn, configured from :class:`ServeOptions`, with what it lacks.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``), the
connections it answers (``limit_concurrency``: a 503 beyond) and the wait
for the tasks of requests in flight at shutdown
(``timeout_graceful_shutdown``). Three bounds it does not have are added
here, each the smallest change to uvicorn's own classes:

- **A read timeout.** Its HTTP protocols arm a timer only between requests
  (keep-alive), so a client that connects and sends nothing, trickles a
  request's head a byte at a time, or declares a body it never sends holds
  its connection, and a file descriptor, for ever. :class:`HTTPProtocol`
  gives each request ``read_timeout`` seconds from its first byte (from
  the connection, for the first request) until its body is complete, then
  closes the connection.
- **Connections closed at the end of the grace period.** At shutdown
  uvicorn waits for connections to close and, after
  ``timeout_graceful_shutdown``, cancels the requests' tasks, which logs
  each one's traceback and answers 500 to a client still sending its body.
  :class:`HTTPProtocol` closes a connection still busy after
  ``graceful_shutdown_timeout`` instead: the app sees the client gone (a
  499, one log line); uvicorn's own timeout stays, a little later, for a
  task that outlives its connection.
- **A second signal, and stalled workers.** uvicorn's server forces its way
  out on a second Ctrl-C but not a second SIGTERM; its process manager
  joins the workers without a bound and ignores every signal meanwhile.
  :class:`Server` and :class:`Supervisor` stop at once on a second SIGINT
  or SIGTERM, and the supervisor kills workers still running when their
  grace period is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

try:
    import httptools  # noqa: F401  (uvicorn's own choice, as "auto" makes it)
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as _UvicornProtocol
else:
    from uvicorn.protocols.http.httptools_impl import (
        HttpToolsProtocol as _UvicornProtocol,
    )

from ._options import ServeOptions

logger = logging.getLogger("uvicorn.error")

#: Seconds after ``graceful_shutdown_timeout`` at which uvicorn cancels the
#: tasks still running (their connections are closed by then), and a worker
#: process still alive is killed.
BACKSTOP = 2.0
_STOPPING = (signal.SIGINT, signal.SIGTERM)


class Config(uvicorn.Config):
    """uvicorn's configuration from :class:`ServeOptions`.

    ``app`` is an ASGI app, or with ``options.workers > 1`` an import string
    of an app factory. Also holds the two timeouts :class:`HTTPProtocol`
    reads (the worker processes receive this object pickled).
    """

    def __init__(self, app, options: ServeOptions, **kwargs):
        super().__init__(
            app,
            host=options.host,
            port=options.port,
            workers=options.workers,
            http=HTTPProtocol,
            ws="none",  # no WebSocket routes: no upgrades either
            limit_concurrency=options.max_connections,
            timeout_keep_alive=options.keep_alive_timeout,
            timeout_graceful_shutdown=options.graceful_shutdown_timeout + BACKSTOP,
            **kwargs,
        )
        self.read_timeout = options.read_timeout
        self.graceful_shutdown_timeout = options.graceful_shutdown_timeout


class HTTPProtocol(_UvicornProtocol):
    """uvicorn's HTTP/1.1 protocol with a read timeout and a shutdown bound.

    A connection is closed when a request is not complete (head and body)
    ``config.read_timeout`` seconds after its first byte arrived, or after
    the connection was made for the first; and when it is still busy
    ``config.graceful_shutdown_timeout`` seconds after the server began to
    shut down. Between requests, uvicorn's keep-alive timeout applies.
    """

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._read_timer = None
        self._arm_read_timer()

    def data_received(self, data: bytes) -> None:
        if self._read_timer is None and not self._request_read():
            self._arm_read_timer()
        super().data_received(data)
        if self._request_read() and self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def connection_lost(self, exc) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        super().shutdown()  # closes an idle connection, or asks to close after
        if not self.transport.is_closing():
            self.loop.call_later(
                self.config.graceful_shutdown_timeout, self._close, "shutting down"
            )

    def _request_read(self) -> bool:
        """Whether the current request is whole and its answer not yet sent."""
        cycle = self.cycle
        return cycle is not None and not cycle.more_body and not cycle.response_complete

    def _arm_read_timer(self) -> None:
        self._read_timer = self.loop.call_later(
            self.config.read_timeout, self._read_timed_out
        )

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self._request_read():
            self._close(f"no complete request in {self.config.read_timeout:g} s")

    def _close(self, why: str) -> None:
        if not self.transport.is_closing():
            client = "{}:{} - ".format(*self.client) if self.client else ""
            logger.info("%sclosing the connection: %s", client, why)
            self.transport.close()


class Server(uvicorn.Server):
    """uvicorn's server, which also stops at once on a second SIGTERM.

    On the way out, uvicorn raises the signals it caught again, with the
    previous handlers back (the command's, which exit 143 or 130).
    """

    def handle_exit(self, sig, frame) -> None:
        if self.should_exit and sig in _STOPPING:
            self.force_exit = True
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets=None) -> None:
        await super().shutdown(sockets)
        if self.force_exit:
            # uvicorn returns at once, and the tasks still running would be
            # cancelled as the loop closes, each logging a traceback: close
            # their connections so they end on a disconnect, and shut the
            # app down (its batcher) if it does so promptly.
            for connection in list(self.server_state.connections):
                connection.transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while self.server_state.tasks:
                        await asyncio.sleep(0.02)
                    await self.lifespan.shutdown()


class Supervisor(Multiprocess):
    """uvicorn's process manager, bounded when it stops.

    It sends SIGTERM to the workers as uvicorn's does, then waits for them at
    most ``graceful_shutdown_timeout`` plus :data:`BACKSTOP` seconds, and
    kills those still running then, or at once on a second SIGINT or
    SIGTERM. :attr:`stopped_by` is the signal that stopped it.
    """

    stopped_by: int | None = None

    def handle_int(self) -> None:
        self.stopped_by = self.stopped_by or signal.SIGINT
        super().handle_int()

    def handle_term(self) -> None:
        self.stopped_by = self.stopped_by or signal.SIGTERM
        super().handle_term()

    def join_all(self) -> None:
        deadline = time.monotonic() + self.config.graceful_shutdown_timeout + BACKSTOP
        for process in self.processes:
            while process.exitcode is None:
                process.process.join(0.1)
                again = any(sig in _STOPPING for sig in self.signal_queue)
                if process.exitcode is None and (again or time.monotonic() > deadline):
                    why = "a second signal" if again else "the grace period is over"
                    logger.warning("Killing the worker processes: %s", why)
                    for each in self.processes:
                        if each.exitcode is None:
                            each.process.kill()
                            each.process.join(5)
                    return


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``, for uvicorn to listen on.

    Bound here rather than by uvicorn, so that the banner can name the port
    really bound (port 0 asks the system for one) and a failure is an
    ``OSError`` for the command to report in one line: uvicorn's own
    ``Config.bind_socket`` logs it and exits the process.

    Raises
    ------
    OSError
        The address is taken, unknown or not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)  # the worker processes of --workers listen on it
    return sock


def url(host: str, port: int) -> str:
    """``http://host:port/``, an IPv6 address in brackets."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(config: Config, sock: socket.socket) -> None:
    """Serve ``config``'s app on ``sock`` until SIGINT or SIGTERM.

    The signal is raised again when the server has stopped, with the
    previous handlers back, so the caller exits as it says.
    """
    if config.workers == 1:
        Server(config).run(sockets=[sock])  # raises the signals it caught again
        return
    previous = {sig: signal.getsignal(sig) for sig in _STOPPING}
    supervisor = Supervisor(config, sockets=[sock])  # installs its own handlers
    try:
        supervisor.run()
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if supervisor.stopped_by is not None:
        signal.raise_signal(supervisor.stopped_by)
