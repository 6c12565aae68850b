"""The routes of ``sk-mnist serve``: one object, a method per route.

As MLServer's ``rest/endpoints.py``: :class:`Endpoints` holds what the
routes share (the model, the options, the metrics, the memory budget, the
batcher) and each route is a method whose docstring is its OpenAPI
description; :func:`sk_mnist.serving.app.create_app` maps paths to them.
A route raises what it refuses (:mod:`sk_mnist.serving.errors` answers).

The request path: the body is read chunk by chunk, each chunk charged to the
memory budget; the parse is charged its working memory and runs in a thread
when the body is large; an image's decoded size is charged before it is
decoded in a thread; the model's tensors are charged while it runs, off the
event loop; what was charged is released when the answer is ready.
"""

from __future__ import annotations

import contextlib
from importlib import resources

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.schemas import SchemaGenerator

from .._utils._text import shorten
from ..datasets import read_digit_image
from ..datasets._images import decoded_size
from ..exceptions import DataFileError
from ..inspection._occlusion import Occlusion, occlusion_rows
from . import _protocol
from ._batching import AdaptiveBatcher
from ._budget import MemoryBudget
from ._metrics import Metrics
from ._model import ServedModel
from ._options import ServeOptions
from .errors import ORJSONResponse, reading_request

#: What parsing JSON into arrays may hold, in Python objects (measured with
#: tracemalloc over the protocol's parser): up to 20 times the text for flat
#: numbers (a pointer, an array element, a float object), and for each list or
#: object it opens about 64 bytes more (44 times the text for lists nested
#: 1,000 deep, 36 for a body of ``{},``). A JSON body is charged this while it
#: is parsed: ``JSON_BYTE_FACTOR`` times its size and ``JSON_CONTAINER_BYTES``
#: for each ``[`` and ``{`` in it.
JSON_BYTE_FACTOR = 24
JSON_CONTAINER_BYTES = 64
#: Bodies up to this size are parsed on the event loop (a thread costs more
#: than parsing them); larger ones in a thread, where the event loop runs
#: between the parser's steps (orjson holds the GIL while it reads the text).
_INLINE_PARSE_BYTES = 64 * 1024


# A 4x4 PNG with one white pixel: read once at start-up.
_WARM_UP_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000040000000408000000008c9ac1a2"
    "0000000f49444154789c63608080ff0c0800000c08010042510f040000000049454e"
    "44ae426082"
)


def _parse_cost(body, header_length: int | None) -> int:
    """The bytes parsing ``body`` may hold: its JSON part as
    :data:`JSON_BYTE_FACTOR` and :data:`JSON_CONTAINER_BYTES` say, its binary
    tensors once (converted to pixels)."""
    json_part = len(body) if header_length is None else min(header_length, len(body))
    containers = body.count(b"[", 0, json_part) + body.count(b"{", 0, json_part)
    return (
        JSON_BYTE_FACTOR * json_part
        + JSON_CONTAINER_BYTES * containers
        + (len(body) - json_part)
    )


class Endpoints:
    """The routes' methods, for one model and its options.

    Parameters
    ----------
    model : ServedModel
    options : ServeOptions
    metrics : Metrics
    budget : MemoryBudget
    """

    def __init__(
        self,
        model: ServedModel,
        options: ServeOptions,
        *,
        metrics: Metrics,
        budget: MemoryBudget,
    ):
        self.model, self.options = model, options
        self.metrics, self.budget = metrics, budget
        self.batcher, self._batching = None, False
        # A batch of at most one request is no batching: each runs alone.
        if options.max_batch_size is not None and options.max_batch_size > 1:
            self.batcher = AdaptiveBatcher(
                model.apredict,
                max_batch_size=options.max_batch_size,
                max_latency=options.max_latency_ms / 1000,
                on_batch=metrics.batch_size.observe,
            )
        self._metadata = _protocol.metadata(
            options.name, model.input_name, model.image_shape, model.classes
        )
        # The name is one URL path segment (ServeOptions checks it): no escaping.
        self._page = (
            resources.files(__package__)
            .joinpath("page.html")
            .read_text(encoding="utf-8")
            .replace("{{name}}", options.name)
            .encode()
        )
        self._schemas = SchemaGenerator(
            {
                "openapi": "3.0.0",
                "info": {"title": f"sk-mnist serve: {options.name}", "version": "1"},
            }
        )

    async def start(self):
        """At start-up: warm the image reader, start the batcher."""
        # The first /predict would otherwise pay for importing the image
        # decoders and scipy.ndimage; whether the reader finds a digit in
        # this speck does not matter.
        with contextlib.suppress(DataFileError):
            await run_in_threadpool(read_digit_image, _WARM_UP_PNG)
        await self._start_batcher()

    async def stop(self):
        """At shutdown: stop the batcher, close the model (its thread ends)."""
        if self._batching:
            await self.batcher.stop()
            self._batching = False
        await run_in_threadpool(self.model.close)

    async def _start_batcher(self):
        # Also at the first request of an app whose lifespan never ran (one
        # mounted inside another app: Starlette's Mount runs no lifespan).
        if self.batcher is not None and not self._batching:
            self._batching = True
            await self.batcher.start()

    async def live(self, request: Request) -> Response:
        """
        summary: Whether the server is running (Open Inference Protocol v2).
        responses:
          200: {description: '{"live": true}'}
        """
        return ORJSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        """
        summary: Whether the server is ready to answer inference requests.
        responses:
          200: {description: '{"ready": true}'}
        """
        return ORJSONResponse({"ready": True})

    async def server_metadata(self, request: Request) -> Response:
        """
        summary: The server's name, version and protocol extensions (v2).
        responses:
          200: {description: '{"name", "version", "extensions"}'}
        """
        return ORJSONResponse(_protocol.server_metadata())

    async def model_metadata(self, request: Request) -> Response:
        """
        summary: The model's inputs and outputs, their datatypes and shapes.
        responses:
          200: {description: 'name, versions, platform, inputs, outputs'}
          404: {description: 'no model of that name'}
        """
        self._check_name(request)
        return ORJSONResponse(self._metadata)

    async def model_ready(self, request: Request) -> Response:
        """
        summary: Whether the named model is ready.
        responses:
          200: {description: '{"name": ..., "ready": true}'}
          404: {description: 'no model of that name'}
        """
        self._check_name(request)
        return ORJSONResponse({"name": self.options.name, "ready": True})

    async def infer(self, request: Request) -> Response:
        """
        summary: Classify images sent as a v2 tensor.
        description: >
          The body is a v2 inference request with one input, named as the
          metadata names it, of datatype UINT8 (or another integer or float
          datatype holding whole numbers 0..255) and shape [n, h, w],
          [n, h, w, 1] or [n, h*w]: JSON, or with the binary tensor data
          extension JSON of Inference-Header-Content-Length bytes followed
          by the tensor's bytes. The answer holds the outputs label (shape
          [n]) and probabilities (FP32, shape [n, classes]), as JSON or,
          where the request asks for binary_data, as bytes after the JSON.
        responses:
          200: {description: 'a v2 inference response'}
          400: {description: 'a malformed request, named in {"error": ...}'}
          403: {description: 'a request from the web page of another origin'}
          404: {description: 'no model of that name'}
          413: {description: 'a body or batch over the limits'}
          503: {description: 'the memory budget is full: retry after Retry-After'}
        """
        self._check_name(request)
        header_length = _protocol.parse_header_length(
            request.headers.get(_protocol.HEADER_LENGTH)
        )
        async with self.budget.account() as account:
            body = await self._read_body(request, account)
            working = _parse_cost(body, header_length)
            await account.charge(working)
            parsed = await self._off_loop_if_large(
                len(body), self._parse, body, header_length
            )
            account.refund(working)
            labels, proba = await self._predict(parsed.images, account)
        content, headers = _protocol.write_infer_response(
            self.options.name, parsed, labels, proba, self.model.classes
        )
        return Response(content, headers=headers)

    async def predict_image(self, request: Request) -> Response:
        """
        summary: Classify one image file of a digit (PNG, JPEG...).
        description: >
          The body is the file itself, read as `sk-mnist predict` reads it.
          The answer is {"label", "probabilities", "classes"}, the
          probabilities in the order of the classes; labels are JSON
          numbers, strings or booleans, as the model's classes are.
        responses:
          200: {description: 'label, probabilities, classes'}
          400: {description: 'not an image, blank, or too large'}
          403: {description: 'a request from the web page of another origin'}
          409: {description: 'a model that does not read 28x28 digits'}
          413: {description: 'a body over the limit'}
          503: {description: 'the memory budget is full: retry after Retry-After'}
        """
        if tuple(self.model.image_shape) != (28, 28):
            raise _protocol.RequestError(
                f"this model reads {self.model.image_shape} images; /predict reads "
                f"digits as MNIST's 28x28, so send v2 tensors to /v2/models/"
                f"{self.options.name}/infer instead",
                status=409,
            )
        async with self.budget.account() as account:
            body = await self._read_body(request, account)
            if not body:
                raise _protocol.RequestError("the body is empty; send an image file")
            with reading_request():
                decoding = decoded_size(body)  # from the header, before decoding
                await account.charge(decoding)
                image = await run_in_threadpool(read_digit_image, body)
            account.refund(decoding)
            labels, proba = await self._predict(image[None], account)
        return ORJSONResponse(
            {
                "label": labels.tolist()[0],
                "probabilities": proba[0],
                "classes": self.model.classes.tolist(),
            }
        )

    async def explain_image(self, request: Request) -> Response:
        """
        summary: Which pixels of one digit image decided its class (occlusion).
        description: >
          The body is an image file, read as /predict reads it. Each 2x2
          window of the 28x28 digit that holds ink is blanked in turn, the
          digit and all its blanked copies go to the model in one call, and
          each pixel gets the mean drop of the predicted class's log-odds
          over the windows that cover it, as
          sk_mnist.inspection.occlusion_map computes it. The answer is
          /predict's with "attributions", 28 rows of 28 numbers, positive
          where the ink made the class likelier.
        responses:
          200: {description: 'label, probabilities, classes, attributions'}
          400: {description: 'not an image, blank, or too large'}
          403: {description: 'a request from the web page of another origin'}
          409: {description: 'a model that does not read 28x28 digits'}
          413: {description: 'a body over the limit'}
          503: {description: 'the memory budget is full: retry after Retry-After'}
        """
        if tuple(self.model.image_shape) != (28, 28):
            raise _protocol.RequestError(
                f"this model reads {self.model.image_shape} images; /explain reads "
                f"digits as MNIST's 28x28",
                status=409,
            )
        async with self.budget.account() as account:
            body = await self._read_body(request, account)
            if not body:
                raise _protocol.RequestError("the body is empty; send an image file")
            with reading_request():
                decoding = decoded_size(body)  # from the header, before decoding
                await account.charge(decoding)
                image = await run_in_threadpool(read_digit_image, body)
            account.refund(decoding)
            # At most 730 rows (27 x 27 windows and the digit), each charged
            # its pixels and the tensors the model makes of it, before they
            # are built; the run is bounded by the model's timeout.
            running = occlusion_rows(image.shape) * (
                image.size + self.model.bytes_per_image
            )
            await account.charge(running)
            # Building the 730 occluded rows and averaging the drops are numpy
            # work of tens of milliseconds: off the event loop, as the model.
            occlusion = await run_in_threadpool(Occlusion, image)
            self.metrics.batch_size.observe(len(occlusion.rows))
            labels, proba = await self.model.apredict(occlusion.rows)
            attributions, _ = await run_in_threadpool(occlusion.attributions, proba)
            account.refund(running)
        return ORJSONResponse(
            {
                "label": labels.tolist()[0],
                "probabilities": proba[0],
                "classes": self.model.classes.tolist(),
                "attributions": attributions.astype("float32"),
            }
        )

    async def metrics_text(self, request: Request) -> Response:
        """
        summary: Prometheus metrics (requests, latency, batch sizes).
        responses:
          200: {description: 'Prometheus text format'}
        """
        return Response(
            self.metrics.exposition(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    async def page(self, request: Request) -> Response:
        """
        summary: The draw-a-digit page.
        responses:
          200: {description: 'HTML'}
        """
        return Response(self._page, media_type="text/html; charset=utf-8")

    async def openapi(self, request: Request) -> Response:
        """
        summary: This description (OpenAPI 3).
        responses:
          200: {description: 'OpenAPI document'}
        """
        return ORJSONResponse(self._schemas.get_schema(routes=request.app.routes))

    def _check_name(self, request: Request):
        asked = request.path_params["name"]
        if asked != self.options.name:
            raise _protocol.RequestError(
                f"no model named {shorten(repr(asked), 80)}; this server serves "
                f"{self.options.name!r}",
                status=404,
            )

    async def _read_body(self, request: Request, account) -> bytes:
        """The body, each chunk charged to ``account`` as it arrives."""
        limit = self.options.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise _protocol.RequestError(
                    f"Content-Length must be a number of bytes; got "
                    f"{shorten(repr(declared), 80)}"
                )
            if int(declared) > limit:
                raise _protocol.RequestError(
                    f"the body of {declared} bytes is over this server's limit of "
                    f"{limit} bytes",
                    status=413,
                )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _protocol.RequestError(
                    f"the body is over this server's limit of {limit} bytes",
                    status=413,
                )
            await account.charge(len(chunk))
            chunks.append(chunk)
        if len(chunks) == 1:
            return chunks[0]
        await account.charge(size)  # the joined copy, while the chunks live
        body = b"".join(chunks)
        del chunks
        account.refund(size)
        return body

    def _parse(self, body: bytes, header_length):
        with reading_request():
            return _protocol.read_infer_request(
                body,
                header_length=header_length,
                input_name=self.model.input_name,
                image_shape=self.model.image_shape,
                max_images=self.options.max_images,
            )

    async def _off_loop_if_large(self, size, function, *args):
        if size <= _INLINE_PARSE_BYTES:
            return function(*args)
        return await run_in_threadpool(function, *args)

    async def _predict(self, images, account):
        """The model's answers, off the event loop; while it runs, ``account``
        holds what its tensors may take for these images."""
        running = len(images) * self.model.bytes_per_image
        await account.charge(running)
        if self.batcher is not None:
            await self._start_batcher()
            answers = await self.batcher.predict(images)
        else:
            self.metrics.batch_size.observe(len(images))
            answers = await self.model.apredict(images)
        account.refund(running)
        return answers
