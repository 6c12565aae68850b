"""uvicorn, configured from :class:`ServeOptions`, with what it lacks.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``), the
connections it answers (``limit_concurrency``: a 503 beyond) and the wait
for the tasks of requests in flight at shutdown
(``timeout_graceful_shutdown``). What it does not have is added here,
each the smallest change to uvicorn's own classes:

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
- **A signal while the workers load.** A worker loads its app under
  uvicorn's handlers, which only stop a started server, and the process
  manager waits seconds for a starting worker's health check: :class:`Config`
  gives a loading worker the signals' default action, and
  :class:`Supervisor` reads signals while it waits.
- **A bounded request head, and refusals in the app's kind.** httptools
  has no limit on a head; uvicorn answers what it refuses before the app
  in plain text and leaves it out of the metrics. :class:`HTTPProtocol`
  cuts a head off at :data:`MAX_HEAD_BYTES` (431) and answers and counts
  those refusals as the app does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
import time

import httptools
import orjson
import uvicorn
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from ._budget import RETRY_AFTER_SECONDS
from ._metrics import METRICS_STATE
from ._options import ServeOptions

logger = logging.getLogger("uvicorn.error")

#: The most bytes of a request's head (its request line and headers) that a
#: connection may send: nginx's default (four 8 KiB buffers). Checked after
#: each chunk read, so a connection holds at most this and one chunk.
MAX_HEAD_BYTES = 32 * 1024

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

    def load(self) -> None:
        """Import the app (and load its model) as uvicorn does; in a worker
        process, SIGTERM and SIGINT end it on the spot meanwhile.

        uvicorn loads a worker's app after it has installed its signal
        handlers, which only ask the server to stop once it has started: a
        worker importing the app and loading a large model would do all of
        it, start, then stop, and be killed at the end of the grace period.
        While it loads, a worker holds nothing to clean up (the socket and
        the temporary folder are the parent's), so the system's default
        action, which acts even inside onnxruntime's C++ code, is right.
        The app of a single process is built before, by the command.
        """
        if not isinstance(self.app, str) or (
            threading.current_thread() is not threading.main_thread()
        ):
            super().load()
            return
        previous = {sig: signal.signal(sig, signal.SIG_DFL) for sig in _STOPPING}
        try:
            super().load()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _HeadTooLarge(Exception):
    """A request's head, whole, over :data:`MAX_HEAD_BYTES` (its size)."""


class HTTPProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) with the bounds it lacks.

    - A connection is closed when a request is not complete (head and body)
      ``config.read_timeout`` seconds after its first byte arrived, or after
      the connection was made for the first; and when it is still busy
      ``config.graceful_shutdown_timeout`` seconds after the server began to
      shut down. Between requests, uvicorn's keep-alive timeout applies.
    - A request's head is at most :data:`MAX_HEAD_BYTES`: beyond, a 431.
      httptools has no such limit (h11 has, but parses in Python at a
      fraction of the speed), and it gathers a header line that never ends
      in memory, so the bytes are counted here as they arrive.
    - What uvicorn refuses before the app (a request httptools cannot parse:
      a bad method, two Content-Length headers, a malformed request line;
      a connection over ``limit_concurrency``) is answered as the app
      answers, ``{"error": "..."}`` (with ``Retry-After`` for the 503), and
      counted in ``sk_mnist_requests_total`` with the endpoint ``other``.
      uvicorn answers them in plain text from fixed methods, overridden here.
    - A request in absolute form (``POST http://host/path``) has the
      authority of its target as its ``Host`` (RFC 9112, 3.2.2: the Host
      header is then ignored), so the app's Host check sees that; uvicorn
      keeps the path only.
    """

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._read_timer = None
        self._in_head, self._head_began, self._head_bytes = False, False, 0
        self._arm_read_timer()

    def data_received(self, data: bytes) -> None:
        if self._read_timer is None and not self._request_read():
            self._arm_read_timer()
        self._head_began = False
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            # A head begun in this chunk is not counted (it holds part of
            # the chunk at most): a head is cut off at most a chunk late.
            self._head_bytes += 0 if self._head_began else len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._head_too_large()
                return
        if self._request_read() and self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_began, self._head_bytes = True, True, 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        # The whole head as httptools gathered it: a head that arrived in
        # one or two reads was never counted in data_received (a read that
        # begins or ends a head is not), so it is measured here, before the
        # request reaches the app. Raised inside httptools' callback, the
        # error comes back to send_400_response as the parse error's context.
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > MAX_HEAD_BYTES:
            raise _HeadTooLarge(size)
        if self.url[:1] not in (b"/", b"*"):  # absolute form: its authority
            target = httptools.parse_url(self.url)
            host = target.host or b""
            host = b"[" + host + b"]" if b":" in host else host
            if target.port is not None:
                host += b":%d" % target.port
            self.headers[:] = [(n, v) for n, v in self.headers if n != b"host"]
            self.headers.append((b"host", host))
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this in its handler of httptools' parse error, which
        # says what was wrong ("Invalid method encountered", "Duplicate
        # Content-Length"); it logged its own warning.
        error = sys.exc_info()[1]
        if isinstance(getattr(error, "__context__", None), _HeadTooLarge):
            self._head_too_large()
            return
        # An error raised in one of this class's callbacks (parsing an
        # absolute-form target) reaches here as httptools' "User callback
        # error"; its context says what was wrong.
        cause = getattr(error, "__context__", None)
        if isinstance(error, httptools.HttpParserCallbackError) and cause is not None:
            error = f"its target: {cause or type(cause).__name__}"
        why = _one_line(str(error)) if error is not None else msg
        self._refuse(400, f"the request is not valid HTTP/1.1 ({why})", logged=True)

    def _head_too_large(self) -> None:
        self._refuse(
            431,
            f"the request's head (request line and headers) is over this "
            f"server's limit of {MAX_HEAD_BYTES} bytes",
        )

    def _start_asgi_task(self, cycle, app) -> None:
        if app is service_unavailable:  # over limit_concurrency
            app = self._over_connection_limit
        super()._start_asgi_task(cycle, app)

    async def _over_connection_limit(self, scope, receive, send) -> None:
        self._count(503)
        body = _error_body(
            f"the server is at its limit of {self.limit_concurrency} connections "
            f"and requests at once; retry in {RETRY_AFTER_SECONDS} s"
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"retry-after", b"%d" % RETRY_AFTER_SECONDS),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _refuse(self, status: int, why: str, *, logged: bool = False) -> None:
        """Answer ``status`` with ``{"error": why}`` and close the connection."""
        if not logged:
            client = "{}:{} - ".format(*self.client) if self.client else ""
            logger.warning("%s%d: %s", client, status, why)
        self._count(status)
        body = _error_body(why)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _count(self, status: int) -> None:
        metrics = self.app_state.get(METRICS_STATE)
        if metrics is not None:
            metrics.requests.labels("other", str(status)).inc()

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

    def keep_subprocess_alive(self) -> None:
        # uvicorn pings each worker and waits up to timeout_worker_healthcheck
        # (5 s) for its answer, which a worker still starting (importing the
        # app, loading the model) cannot give: signals wait meanwhile. The
        # workers are first waited for here in short steps, and a SIGTERM or
        # SIGINT ends the wait; uvicorn's own check then runs as it does.
        for process in self.processes:
            if not self._answered_or_gone(process):
                return  # a stop signal: handled at the next turn of run()
        super().keep_subprocess_alive()

    def _answered_or_gone(self, process) -> bool:
        """False if a stop signal came before ``process`` answered a ping."""
        try:
            process.parent_conn.send(b"ping")
        except OSError:
            return True  # closed: uvicorn's check sees it
        deadline = time.monotonic() + self.config.timeout_worker_healthcheck
        while time.monotonic() < deadline and process.process.is_alive():
            if any(sig in _STOPPING for sig in self.signal_queue):
                return False
            try:
                if process.parent_conn.poll(0.1):
                    process.parent_conn.recv()
                    return True
            except (OSError, EOFError):
                return True
        return True

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


def _error_body(why: str) -> bytes:
    return orjson.dumps({"error": why})


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


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
