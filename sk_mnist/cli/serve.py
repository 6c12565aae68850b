"""``sk-mnist serve``: the model over HTTP, on onnxruntime alone.

This command imports neither TensorFlow, Keras nor JAX: a ``.skops`` model
(or a train/search folder) is first exported to ONNX by ``sk-mnist export``
in a child process, and the server runs the exported file. The app itself
is :func:`sk_mnist.serving.app.create_app`; uvicorn serves it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ._common import CommandError, at_least, is_onnx, model_path, printable


def add_parser(commands):
    parser = commands.add_parser(
        "serve",
        help="serve a model over HTTP (Open Inference Protocol v2, a page to "
        "draw on, metrics)",
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="an .onnx file written by export, or a .skops model or "
        "train/search folder (exported first, in a separate process)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only; "
        "0.0.0.0 for every interface)",
    )
    parser.add_argument(
        "--port", type=at_least(0), default=8000, help="(default: 8000)"
    )
    parser.add_argument(
        "--workers", type=at_least(1), default=1, help="processes (default: 1)"
    )
    parser.add_argument(
        "--name", default="mnist", help="the model's name in /v2/models/NAME"
    )
    parser.add_argument(
        "--max-batch-size",
        type=at_least(1),
        help="combine concurrent requests into batches of up to this many "
        "images (default: no batching)",
    )
    parser.add_argument(
        "--max-latency-ms",
        type=float,
        default=2.0,
        help="with batching, the longest a request waits for others (default: 2)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=at_least(1),
        default=8 * 1024**2,
        help="larger request bodies get 413 (default: 8 MiB)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds one model call may take (default: 10)",
    )
    parser.add_argument(
        "--threads",
        type=at_least(1),
        default=1,
        help="onnxruntime threads per worker process; more help only large "
        "batches (default: 1)",
    )
    parser.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn's log level (default: info)",
    )


def run(args):
    import uvicorn

    from ..serving import ServedModel
    from ..serving.app import CONFIG_ENV, create_app

    if args.max_latency_ms < 0 or not args.timeout > 0:
        raise CommandError("--max-latency-ms must be >= 0 and --timeout > 0")
    with contextlib.ExitStack() as stack:
        onnx_file = _onnx_file(args.model, stack)
        model = ServedModel.from_file(
            onnx_file, timeout=args.timeout, threads=args.threads
        )
        options = dict(
            name=args.name,
            max_body_bytes=args.max_body_bytes,
            max_batch_size=args.max_batch_size,
            max_latency_ms=args.max_latency_ms,
        )
        print(
            f"Serving {printable(args.model)} as {printable(args.name)!r} at "
            f"http://{args.host}:{args.port}/ ({len(model.classes)} classes, "
            f"{args.workers} worker{'s' if args.workers > 1 else ''})",
            flush=True,
        )
        if args.workers == 1:
            uvicorn.run(
                create_app(model, **options),
                host=args.host,
                port=args.port,
                log_level=args.log_level,
            )
            return 0
        # Each worker process loads the model itself from the same file, and
        # writes its metrics where /metrics sums them.
        metrics_dir = stack.enter_context(tempfile.TemporaryDirectory())
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ[CONFIG_ENV] = json.dumps(
            {
                **options,
                "model": str(onnx_file),
                "timeout": args.timeout,
                "threads": args.threads,
            }
        )
        uvicorn.run(
            "sk_mnist.serving.app:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        )
    return 0


def _onnx_file(model, stack) -> Path:
    """The ONNX file to serve: ``model`` itself, or its export in a temp folder."""
    if is_onnx(model):
        return Path(model)
    source = model_path(model)
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sk-mnist-")))
    out = folder / "model.onnx"
    print(f"Exporting {printable(source)} to ONNX in a separate process", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "sk_mnist", "export", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["export failed"]
        raise CommandError(lines[-1].removeprefix("sk-mnist export: error: "))
    return out
