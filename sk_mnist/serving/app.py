"""The ASGI application of ``sk-mnist serve``: a route table, lifespan, middleware.

Starlette routes, named as the Open Inference Protocol (v2) names them,
with the convenience routes beside: ``POST /predict`` for one image file,
``POST /explain`` for which of its pixels decided (occlusion, as
:func:`sk_mnist.inspection.occlusion_map`), ``GET /`` for the draw-a-digit
page, ``GET /metrics`` for Prometheus and ``GET /openapi.json``. Each route
is a method of :class:`~sk_mnist.serving.endpoints.Endpoints`; what they
raise is answered by :mod:`sk_mnist.serving.errors` as a body
``{"error": "..."}`` naming the problem. Every request is charged to one
memory budget (:mod:`sk_mnist.serving._budget`), counted and timed
(:mod:`sk_mnist.serving._metrics`), and refused if a web page of another
origin sent it (:mod:`sk_mnist.serving._origin`). Nothing here imports
TensorFlow, Keras or JAX.
"""

from __future__ import annotations

import contextlib
import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import errors
from ._budget import MemoryBudget
from ._metrics import METRICS_STATE, Metrics, MetricsMiddleware
from ._model import ServedModel
from ._options import ServeOptions
from ._origin import SameOriginMiddleware
from .endpoints import Endpoints

#: The environment variables through which ``sk-mnist serve`` configures the
#: worker processes of ``--workers N`` (each builds its own app): the options
#: as :meth:`ServeOptions.to_json` writes them, and the ONNX file's path.
CONFIG_ENV = "SK_MNIST_SERVE_CONFIG"
MODEL_ENV = "SK_MNIST_SERVE_MODEL"


def create_app(
    model: ServedModel,
    options: ServeOptions = ServeOptions(),  # noqa: B008 (frozen: never mutated)
) -> Starlette:
    """The server's ASGI app for ``model``.

    Parameters
    ----------
    model : ServedModel
        The exported model to serve; closed when the app shuts down.
    options : ServeOptions, default=ServeOptions()
        The limits and batching of ``sk-mnist serve`` (checked here); the
        model's name in the v2 routes is ``options.name``. Bound to a
        loopback ``options.host``, the app answers only requests whose
        ``Host`` is a loopback name (in tests: ``base_url="http://127.0.0.1"``).

    Returns
    -------
    starlette.applications.Starlette
        Also ``app.state.metrics``, the Prometheus metrics, and
        ``app.state.budget``, the memory budget.
    """
    options = options.check()
    metrics = Metrics()
    budget = MemoryBudget(options.memory_budget_bytes)
    endpoints = Endpoints(model, options, metrics=metrics, budget=budget)
    routes = [
        Route("/", endpoints.page),
        Route("/v2", endpoints.server_metadata),
        Route("/v2/health/live", endpoints.live),
        Route("/v2/health/ready", endpoints.ready),
        Route("/v2/models/{name}", endpoints.model_metadata),
        Route("/v2/models/{name}/ready", endpoints.model_ready),
        Route("/v2/models/{name}/infer", endpoints.infer, methods=["POST"]),
        Route("/predict", endpoints.predict_image, methods=["POST"]),
        Route("/explain", endpoints.explain_image, methods=["POST"]),
        Route("/metrics", endpoints.metrics_text),
        Route("/openapi.json", endpoints.openapi),
        Mount(
            "/static", StaticFiles(packages=[(__package__, "static")]), name="static"
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await endpoints.start()
        try:
            # uvicorn hands this state to every connection: the refusals of
            # sk_mnist.serving._server's protocol, before the app, count too.
            yield {METRICS_STATE: metrics}
        finally:
            await endpoints.stop()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=errors.HANDLERS,
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics, routes=routes),
            Middleware(
                SameOriginMiddleware, host=options.host, loopback=options.is_loopback
            ),
        ],
    )
    # Starlette's redirect to the path with(out) a trailing slash writes the
    # request's Host header into Location; a path of another spelling is a 404.
    app.router.redirect_slashes = False
    app.state.metrics, app.state.budget = metrics, budget
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
