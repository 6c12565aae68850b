"""``sk-mnist serve``: the model over HTTP, on onnxruntime alone.

This command imports neither TensorFlow, Keras nor JAX: a ``.skops`` model
(or a train/search folder) is first exported to ONNX by ``sk-mnist export``
in a child process, and the server runs the exported file. The app itself
is :func:`sk_mnist.serving.app.create_app`; uvicorn serves it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import typing
from pathlib import Path

from ..serving._options import OptionError, ServeOptions
from . import _signals
from ._common import CommandError, is_onnx, model_path, printable

#: What each of :class:`ServeOptions`'s fields means on the command line.
#: The options are the fields, spelled ``--max-body-bytes``; their defaults
#: and bounds are ServeOptions's own.
_HELP = {
    "host": "address to bind: 127.0.0.1 is this machine only, 0.0.0.0 every interface",
    "port": "TCP port; 0 for one the system picks",
    "name": "the model's name in /v2/models/NAME: letters, digits, -, _ and .",
    "workers": "server processes",
    "threads": "onnxruntime threads per worker process, at most 4 per core; more "
    "help only large batches",
    "timeout": "seconds one model call may take",
    "max_body_bytes": "larger request bodies get 413",
    "max_images": "most images in one request",
    "max_batch_size": "combine concurrent requests into batches of up to this "
    "many images; 1 runs each request alone",
    "max_latency_ms": "with batching, the longest a request waits for others, "
    "0 to 1000",
    "memory_budget_bytes": "bytes that all requests in flight may hold (bodies "
    "being read, images being decoded); beyond, a request waits or gets 503",
    "read_timeout": "seconds a client has to send a whole request, head and "
    "body; then its connection is closed",
    "keep_alive_timeout": "seconds an idle connection stays open between requests",
    "max_connections": "connections at once; beyond, requests get 503",
    "graceful_shutdown_timeout": "after SIGTERM, seconds the requests in flight "
    "have to finish before their connections are closed",
}


def add_parser(commands):
    parser = commands.add_parser(
        "serve",
        help="serve a model over HTTP (Open Inference Protocol v2, a page to "
        "draw on, metrics)",
    )
    parser.set_defaults(serve_parser=parser)
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="an .onnx file written by export, or a .skops model or "
        "train/search folder (exported first, in a separate process)",
    )
    types = typing.get_type_hints(ServeOptions)
    for field in dataclasses.fields(ServeOptions):
        reader = _whole if int in typing.get_args(types[field.name]) else None
        reader = reader or {int: _whole, float: _number, str: str}[types[field.name]]
        parser.add_argument(
            _option(field.name),
            dest=field.name,
            type=reader,
            default=field.default,
            metavar=None if reader is str else "N",
            help=_HELP[field.name]
            + ("" if field.default is None else f" (default: {_shown(field)})"),
        )
    parser.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn's log level (default: info)",
    )


def run(args):
    options = _checked_options(args)
    if not options.is_loopback:
        print(
            f"sk-mnist serve: warning: --host {printable(options.host)} is not a "
            "loopback address: anyone who can reach this machine can use the server",
            file=sys.stderr,
            flush=True,
        )

    from ..serving import ServedModel
    from ..serving._server import Config, bind, serve, url
    from ..serving.app import CONFIG_ENV, MODEL_ENV, create_app

    with contextlib.ExitStack() as stack:
        # Bound first, so that a port taken is said before any export, and
        # listened on only when the server starts.
        try:
            sock = bind(options.host, options.port)
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {url(options.host, options.port)} "
                f"({exc.strerror or exc})"
            ) from None
        stack.callback(sock.close)
        onnx_file = _onnx_file(args.model, stack)
        model = ServedModel.from_file(
            onnx_file, timeout=options.timeout, threads=options.threads
        )
        workers = options.workers
        print(
            f"Serving {printable(args.model)} as {options.name!r} at "
            f"{url(options.host, sock.getsockname()[1])} ({len(model.classes)} "
            f"classes, {workers} worker{'s' if workers > 1 else ''})",
            flush=True,
        )
        if workers == 1:
            config = Config(
                create_app(model, options), options, log_level=args.log_level
            )
        else:
            # Each worker process loads the model itself from the same file,
            # and writes its metrics where /metrics sums them.
            metrics_dir = stack.enter_context(tempfile.TemporaryDirectory())
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            os.environ[CONFIG_ENV] = options.to_json()
            os.environ[MODEL_ENV] = str(onnx_file)
            config = Config(
                "sk_mnist.serving.app:app_from_environment",
                options,
                factory=True,
                log_level=args.log_level,
            )
        serve(config, sock)  # raises the signal that stopped it, as a Ctrl-C
    if _signals.received() is not None:
        raise KeyboardInterrupt  # one the interpreter swallowed on the way out
    return 0


def _checked_options(args) -> ServeOptions:
    """The options given, in bounds, or a usage error (exit 2) naming the bad one."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServeOptions)}
    try:
        return ServeOptions(**values).check()
    except OptionError as exc:
        args.serve_parser.error(f"{_option(exc.option)} {exc.problem}")


def _option(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _shown(field) -> str:
    value = field.default
    if field.name.endswith("_bytes") and value % 1024**2 == 0:
        return f"{value // 1024**2} MiB"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _whole(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


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
