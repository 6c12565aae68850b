"""The ASGI application of ``sk-mnist serve``, built from a loaded model.

Starlette routes, named as the Open Inference Protocol (v2) names them,
with the convenience routes beside: ``POST /predict`` for one image file,
``GET /`` for the draw-a-digit page, ``GET /metrics`` for Prometheus and
``GET /openapi.json``. JSON is read and written with orjson. Every refusal
is a 4xx with a body ``{"error": "..."}`` that names the problem; a body
over the limit is refused from its ``Content-Length`` before it is read.
Nothing here imports TensorFlow, Keras or JAX.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from importlib import resources

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles

from ..datasets import read_digit_image
from ..exceptions import DataFileError, ModelError
from . import _protocol
from ._batching import AdaptiveBatcher
from ._metrics import Metrics, MetricsMiddleware
from ._model import ServedModel
from ._options import ServeOptions

#: The environment variables through which ``sk-mnist serve`` configures the
#: worker processes of ``--workers N`` (each builds its own app): the options
#: as :meth:`ServeOptions.to_json` writes them, and the ONNX file's path.
CONFIG_ENV = "SK_MNIST_SERVE_CONFIG"
MODEL_ENV = "SK_MNIST_SERVE_MODEL"


# A 4x4 PNG with one white pixel: read once at start-up.
_WARM_UP_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000040000000408000000008c9ac1a2"
    "0000000f49444154789c63608080ff0c0800000c08010042510f040000000049454e"
    "44ae426082"
)


class _ORJSONResponse(JSONResponse):
    def render(self, content) -> bytes:
        return orjson.dumps(
            content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        )


def _error(message, status=400):
    return _ORJSONResponse({"error": str(message)}, status_code=status)


def create_app(
    model: ServedModel,
    options: ServeOptions = ServeOptions(),  # noqa: B008 (frozen: never mutated)
) -> Starlette:
    """The server's ASGI app for ``model``.

    Parameters
    ----------
    model : ServedModel
        The exported model to serve.
    options : ServeOptions, default=ServeOptions()
        The limits and batching of ``sk-mnist serve`` (checked here); the
        model's name in the v2 routes is ``options.name``.

    Returns
    -------
    starlette.applications.Starlette
        Also ``app.state.metrics``, the Prometheus metrics.
    """
    options = options.check()
    name, max_body_bytes, max_images = (
        options.name,
        options.max_body_bytes,
        options.max_images,
    )
    max_batch_size, max_latency_ms = options.max_batch_size, options.max_latency_ms
    metrics = Metrics()
    batcher = None
    if max_batch_size is not None:
        batcher = AdaptiveBatcher(
            model.predict,
            max_batch_size=max_batch_size,
            max_latency=max_latency_ms / 1000,
            on_batch=metrics.batch_size.observe,
        )

    async def predict(images):
        if batcher is not None:
            return await batcher.predict(images)
        metrics.batch_size.observe(len(images))
        return model.predict(images)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _protocol.RequestError(
                    f"Content-Length must be a number of bytes; got {declared!r}"
                )
            if int(declared) > max_body_bytes:
                raise _protocol.RequestError(
                    f"the body of {declared} bytes is over this server's limit of "
                    f"{max_body_bytes} bytes",
                    status=413,
                )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise _protocol.RequestError(
                    f"the body is over this server's limit of {max_body_bytes} bytes",
                    status=413,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def check_name(request: Request):
        asked = request.path_params["name"]
        if asked != name:
            raise _protocol.RequestError(
                f"no model named {asked!r}; this server serves {name!r}", status=404
            )

    meta = _protocol.metadata(name, model.input_name, model.image_shape, model.classes)
    page_html = (
        resources.files(__package__)
        .joinpath("static/index.html")
        .read_text(encoding="utf-8")
        .replace("{{name}}", urllib.parse.quote(name, safe=""))
        .encode()
    )

    async def live(request):
        """
        summary: Whether the server is running (Open Inference Protocol v2).
        responses:
          200: {description: '{"live": true}'}
        """
        return _ORJSONResponse({"live": True})

    async def ready(request):
        """
        summary: Whether the server is ready to answer inference requests.
        responses:
          200: {description: '{"ready": true}'}
        """
        return _ORJSONResponse({"ready": True})

    async def model_metadata(request):
        """
        summary: The model's inputs and outputs, their datatypes and shapes.
        responses:
          200: {description: 'name, versions, platform, inputs, outputs'}
          404: {description: 'no model of that name'}
        """
        check_name(request)
        return _ORJSONResponse(meta)

    async def model_ready(request):
        """
        summary: Whether the named model is ready.
        responses:
          200: {description: '{"name": ..., "ready": true}'}
          404: {description: 'no model of that name'}
        """
        check_name(request)
        return _ORJSONResponse({"name": name, "ready": True})

    async def infer(request):
        """
        summary: Classify images sent as a v2 tensor.
        description: >
          The body is a v2 inference request with one input, named as the
          metadata names it, of datatype UINT8 (or another integer or float
          datatype holding whole numbers 0..255) and shape [n, h, w],
          [n, h, w, 1] or [n, h*w]. The answer holds the outputs label
          (shape [n]) and probabilities (FP32, shape [n, classes]).
        responses:
          200: {description: 'a v2 inference response'}
          400: {description: 'a malformed request, named in {"error": ...}'}
          404: {description: 'no model of that name'}
          413: {description: 'a body or batch over the limits'}
        """
        check_name(request)
        body = await read_body(request)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _protocol.RequestError(
                f"the body is not valid JSON ({exc})"
            ) from None
        images, identifier, outputs = _protocol.parse_infer_request(
            payload,
            input_name=model.input_name,
            image_shape=model.image_shape,
            max_images=max_images,
        )
        labels, proba = await predict(images)
        return _ORJSONResponse(
            _protocol.infer_response(
                name, identifier, labels, proba, outputs, model.classes
            )
        )

    async def predict_image(request):
        """
        summary: Classify one image file of a digit (PNG, JPEG...).
        description: >
          The body is the file itself, read as `sk-mnist predict` reads it.
          The answer is {"label", "probabilities", "classes"}, the
          probabilities in the order of the classes.
        responses:
          200: {description: 'label, probabilities, classes'}
          400: {description: 'not an image, blank, or too large'}
          413: {description: 'a body over the limit'}
        """
        body = await read_body(request)
        if not body:
            raise _protocol.RequestError("the body is empty; send an image file")
        if tuple(model.image_shape) != (28, 28):
            raise _protocol.RequestError(
                f"this model reads {model.image_shape} images; /predict reads "
                f"digits as MNIST's 28x28, so send v2 tensors to /v2/models/"
                f"{name}/infer instead",
                status=409,
            )
        try:
            image = await run_in_threadpool(read_digit_image, body)
        except DataFileError as exc:
            raise _protocol.RequestError(str(exc)) from None
        labels, proba = await predict(image[None])
        return _ORJSONResponse(
            {
                "label": labels[0].item(),
                "probabilities": proba[0],
                "classes": model.classes.tolist(),
            }
        )

    async def metrics_text(request):
        """
        summary: Prometheus metrics (requests, latency, batch sizes).
        responses:
          200: {description: 'Prometheus text format'}
        """
        return Response(
            metrics.exposition(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    async def page(request):
        """
        summary: The draw-a-digit page.
        responses:
          200: {description: 'HTML'}
        """
        return Response(page_html, media_type="text/html; charset=utf-8")

    routes = [
        Route("/", page),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/predict", predict_image, methods=["POST"]),
        Route("/metrics", metrics_text),
        Mount(
            "/static",
            StaticFiles(packages=[(__package__, "static")]),
            name="static",
        ),
    ]
    schemas = SchemaGenerator(
        {
            "openapi": "3.0.0",
            "info": {"title": f"sk-mnist serve: {name}", "version": "1"},
        }
    )

    async def openapi(request):
        """
        summary: This description (OpenAPI 3).
        responses:
          200: {description: 'OpenAPI document'}
        """
        return _ORJSONResponse(schemas.get_schema(routes=app.routes))

    routes.append(Route("/openapi.json", openapi, include_in_schema=True))

    async def refused(request, exc):
        return _error(exc, exc.status)

    async def model_failed(request, exc):
        return _error(exc, 500)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # The first /predict would otherwise pay for importing the image
        # decoders and scipy.ndimage.
        await run_in_threadpool(read_digit_image, _WARM_UP_PNG)
        if batcher is not None:
            await batcher.start()
        try:
            yield
        finally:
            if batcher is not None:
                await batcher.stop()

    async def not_found(request, exc):
        return _error(f"no route {request.url.path}", exc.status_code)

    async def not_allowed(request, exc):
        return _error(f"{request.method} is not allowed on {request.url.path}", 405)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            _protocol.RequestError: refused,
            ModelError: model_failed,
            404: not_found,
            405: not_allowed,
        },
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.metrics = metrics
    return app


def app_from_environment() -> Starlette:
    """The app of one worker process of ``sk-mnist serve --workers N``.

    uvicorn starts each worker with an import string; the options come in
    :data:`CONFIG_ENV` (as JSON) and the model file's path in :data:`MODEL_ENV`.
    """
    options = ServeOptions.from_json(os.environ[CONFIG_ENV])
    model = ServedModel.from_file(
        os.environ[MODEL_ENV], timeout=options.timeout, threads=options.threads
    )
    return create_app(model, options)
