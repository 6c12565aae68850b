"""Prometheus metrics of the server: requests, latency, batch sizes.

prometheus-client holds the metrics and writes the text format; this module
names them and measures each request in a small ASGI middleware. With
several worker processes (``--workers``), ``PROMETHEUS_MULTIPROC_DIR`` is set
by ``sk-mnist serve`` and the workers' values are summed at ``/metrics``.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.routing import Match

# Small requests take well under a millisecond: buckets from 100 us.
_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: The key of the app's metrics in its lifespan state (``create_app``'s
#: lifespan yields it): uvicorn passes that state to every connection, so
#: the refusals its protocol makes before the app are counted too.
METRICS_STATE = "sk_mnist.metrics"


class Metrics:
    """The server's metrics, in a registry of their own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sk_mnist_requests",
            "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sk_mnist_request_duration_seconds",
            "Time from a request's arrival to its answer, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "sk_mnist_batch_size",
            "Images in each onnxruntime call.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format, of every worker process."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Count and time every HTTP request by its route's path template.

    ``routes`` are the app's: a request refused before the router ran (the
    same-origin check's 403) is counted under the route it asked for, found
    as the router would find it; a path no route takes is ``other``.
    """

    def __init__(self, app, metrics: Metrics, routes=()):
        self.app, self.metrics, self.routes = app, metrics, routes

    def _endpoint(self, scope) -> str:
        route = scope.get("route")
        if route is None:
            route = next(
                (r for r in self.routes if r.matches(scope)[0] is not Match.NONE),
                None,
            )
        return getattr(route, "path", "other")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # The route's template keeps the labels few ({name}, not each name).
            endpoint = self._endpoint(scope)
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
