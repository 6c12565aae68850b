"""Refuse what a web page of another site makes a browser send to the server.

Browsers let any page POST to any address, including ``127.0.0.1``: a
"simple" request (``text/plain``, a form) needs no CORS preflight, and a
page whose name is rebound to ``127.0.0.1`` (DNS rebinding) even reads the
answers, since the browser then takes the server for the page's own.
Starlette has CORS and trusted-host middleware, but CORS only adds headers
(the request still runs) and ``TrustedHostMiddleware`` knows no "any
loopback name", so the two rules are written here:

- bound to a loopback address, the server answers only requests whose
  ``Host`` names a loopback address or ``localhost`` (what a rebound name
  never is);
- a POST (or any method but GET, HEAD and OPTIONS) that a browser marks as
  coming from another origin (``Origin`` of another scheme, host or port,
  ``Sec-Fetch-Site: cross-site`` or ``same-site``, in any case) is refused;
- a request with more than one ``Host`` header is refused (400): which one
  the check should read is not known.

Clients that are not browsers (curl, Triton's and MLServer's clients, the
benchmarks) send no ``Origin`` and are unaffected.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from starlette.datastructures import Headers

from .._utils._text import shorten
from .errors import error_response

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class SameOriginMiddleware:
    """ASGI middleware: 403 for rebound host names and cross-origin POSTs.

    Parameters
    ----------
    app : ASGI app
    host : str
        The address the server is bound to.
    loopback : bool
        Whether ``host`` is a loopback address: then ``Host`` is checked.
    """

    def __init__(self, app, *, host: str, loopback: bool):
        self.app, self.host, self.loopback = app, host.strip("[]").lower(), loopback

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            hosts = sum(name == b"host" for name, _ in scope["headers"])
            if hosts > 1:  # which one a proxy or the Host check used is unknown
                message = (
                    f"the request has {hosts} Host headers; HTTP/1.1 allows one "
                    f"(RFC 9112, 3.2)"
                )
                await error_response(message, 400)(scope, receive, send)
                return
            problem = self.problem(scope)
            if problem is not None:
                await error_response(problem, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def problem(self, scope) -> str | None:
        """Why the request is refused, or ``None``."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        name, port = _split_host(host)
        if self.loopback and not (_is_loopback(name) or name == self.host):
            return (
                f"the Host {shorten(host, 80)!r} is not a loopback name; this "
                f"server is bound to {self.host} and answers requests to "
                f"localhost or 127.0.0.1 only"
            )
        if scope["method"] in _SAFE_METHODS:
            return None
        origin = headers.get("origin")
        scheme = scope.get("scheme", "http")
        if origin is not None and _origin(origin) != (
            scheme,
            name,
            port or _DEFAULT_PORTS.get(scheme),
        ):
            return (
                f"a {scope['method']} from the web page of another origin "
                f"({shorten(origin, 80)!r}) is refused; this server answers "
                f"pages of its own origin and clients that are not browsers"
            )
        # A browser sends one Sec-Fetch-Site; with several, any that says
        # another site refuses the request (the first need not be the one
        # that counts further on).
        sites = [v.strip().lower() for v in headers.getlist("sec-fetch-site")]
        fetch_site = next((v for v in sites if v in {"cross-site", "same-site"}), "")
        if fetch_site:
            return (
                f"a {scope['method']} from the web page of another site "
                f"(Sec-Fetch-Site: {fetch_site}) is refused"
            )
        return None


def _split_host(host: str):
    """``("127.0.0.1", 8000)`` from ``127.0.0.1:8000``, ``[::1]:80``..."""
    if any(c in host for c in "@/\\?# "):  # no host name of a browser's
        return "", None
    try:
        parts = urllib.parse.urlsplit(f"//{host}")
        return (parts.hostname or "").lower(), parts.port
    except ValueError:  # a port that is not a number
        return "", None


def _origin(origin: str):
    try:
        parts = urllib.parse.urlsplit(origin)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    return parts.scheme, (parts.hostname or "").lower(), port


def _is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True  # RFC 6761: resolved to loopback, never by DNS
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
