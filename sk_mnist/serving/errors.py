"""What the server answers when a route raises: ``{"error": "..."}``, never a traceback.

Each handler is a plain function of the request and the exception, as
Starlette calls them; :data:`HANDLERS` maps the exceptions to them (as
MLServer's ``rest/errors.py`` does). A route sees these exceptions:

- :class:`~sk_mnist.serving._protocol.RequestError`: a request refused,
  with its own 4xx status;
- :class:`~sk_mnist.exceptions.DataFileError`: not an image the reader
  reads (400);
- :class:`~sk_mnist.serving._budget.OverBudget`: no room in the memory
  budget (503 with ``Retry-After``, or 413 for a request that never fits);
- ``ClientDisconnect``: the client went away before its body was read,
  answered (to nobody) and counted as nginx's 499, in one log line;
- ``RecursionError``, ``ValueError``, ``TypeError``, ``LookupError`` while
  the request is read (:func:`reading_request`): what the parser did not
  foresee, answered 400 with a message that never echoes the request (its
  ``repr`` may be what recursed);
- ``MemoryError``: 503, as a full budget;
- :class:`~sk_mnist.exceptions.ModelError`: the model failed to run (500,
  naming why);
- Starlette's 404 and 405 for routes and methods that do not exist;
- anything else is a fault of the server's: a JSON 500, its traceback
  logged.
"""

from __future__ import annotations

import contextlib
import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from .._utils._text import shorten
from ..exceptions import DataFileError, ModelError
from ._budget import RETRY_AFTER_SECONDS, OverBudget
from ._protocol import RequestError

#: nginx's status for a client that closed the connection before the answer.
CLIENT_CLOSED_REQUEST = 499

_log = logging.getLogger("uvicorn.error")
_TOO_DEEP = "the request is nested too deeply to read"


class ORJSONResponse(JSONResponse):
    """JSON written by orjson: numpy arrays as they are, fast."""

    def render(self, content) -> bytes:
        return orjson.dumps(
            content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        )


def error_response(message, status=400, headers=None) -> Response:
    """The body ``{"error": message}`` with ``status``."""
    return ORJSONResponse({"error": str(message)}, status_code=status, headers=headers)


async def request_refused(request: Request, exc: RequestError) -> Response:
    return error_response(exc, exc.status)


async def image_refused(request: Request, exc: DataFileError) -> Response:
    return error_response(exc, 400)


async def over_budget(request: Request, exc: OverBudget) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
    return error_response(exc, exc.status, headers)


async def out_of_memory(request: Request, exc: MemoryError) -> Response:
    return error_response(
        f"the server is out of memory for this request; retry in "
        f"{RETRY_AFTER_SECONDS} s",
        503,
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def client_disconnected(request: Request, exc: ClientDisconnect) -> Response:
    client = f"{request.client.host}:{request.client.port}" if request.client else "-"
    _log.info(
        '%s - "%s %s" %d: the client went away before sending its whole body',
        client,
        request.method,
        shorten(request.url.path, 80),
        CLIENT_CLOSED_REQUEST,
    )
    return Response(status_code=CLIENT_CLOSED_REQUEST)


@contextlib.contextmanager
def reading_request():
    """Turn what reading a request raised into a :class:`RequestError` (400).

    Around the parser only: whatever it did not foresee (a ``TypeError``, a
    ``RecursionError`` at some depth) is still the request's doing. The
    message names the exception's type, never its text, which may quote the
    request (or be what recursed).
    """
    try:
        yield
    except (RequestError, DataFileError, OverBudget):
        raise
    except RecursionError:
        raise RequestError(_TOO_DEEP) from None
    except (ValueError, TypeError, LookupError, ArithmeticError) as exc:
        raise RequestError(
            f"the request could not be read ({type(exc).__name__}); see "
            f"/openapi.json for what this route expects"
        ) from None


async def too_deep(request: Request, exc: RecursionError) -> Response:
    return error_response(_TOO_DEEP, 400)


async def internal_error(request: Request, exc: Exception) -> Response:
    # A fault of the server's, not of the request: Starlette logs its
    # traceback after this answer.
    return error_response(
        f"internal server error ({type(exc).__name__}); the server's log has "
        f"the details",
        500,
    )


async def model_failed(request: Request, exc: ModelError) -> Response:
    return error_response(exc, 500)


async def http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        message = f"no route {shorten(request.url.path, 200)}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {shorten(request.url.path, 200)}"
    else:
        message = exc.detail
    return error_response(message, exc.status_code, exc.headers)


#: The exception handlers of the app, most specific first (Starlette picks
#: the closest class in each exception's MRO).
HANDLERS = {
    RequestError: request_refused,
    DataFileError: image_refused,
    OverBudget: over_budget,
    MemoryError: out_of_memory,
    ClientDisconnect: client_disconnected,
    ModelError: model_failed,
    RecursionError: too_deep,
    HTTPException: http_error,
    Exception: internal_error,
}
