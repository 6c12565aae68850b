"""The ``sk-mnist`` command: train, search, evaluate, predict and export.

Every command prints its report to stdout (``serve`` its address, then
uvicorn's log). Bad options, missing files,
unreadable images and failed fits give one line on stderr and a non-zero
exit status (2 for usage errors, 130 for Ctrl-C, 143 for SIGTERM, 1 for
everything else), never a traceback. Options are checked, by building the
estimator, before any data are loaded or any file is written. One module per
subcommand, each with ``add_parser(commands)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import sys

from . import _signals
from ._common import (
    CommandError,
    Parser,
    UsageError,
    is_onnx,
    one_line,
    set_up_backend,
)

# Each subcommand's module, in the order --help lists them.
_SUBCOMMANDS = ("train", "search", "evaluate", "predict", "export", "serve")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sk-mnist`` command."""
    import importlib

    from .._version import __version__

    parser = Parser(
        prog="sk-mnist",
        description="Train, tune, evaluate and use the classic Keras MNIST network "
        "with scikit-learn.",
    )
    parser.add_argument(
        "--version", action="version", version=f"sk-mnist {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for name in _SUBCOMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Run the ``sk-mnist`` command; return its exit status."""
    with _signals.handling():
        command = "sk-mnist"
        try:
            args = build_parser().parse_args(argv)
            command = f"sk-mnist {args.command}"
            status = _run(args)
        except KeyboardInterrupt as exc:
            status = _interrupted(command, f"; {exc}" if str(exc) else "")
        except UsageError as exc:
            print(
                f"{command}: error: {one_line(exc)} (see {command} --help)",
                file=sys.stderr,
            )
            status = 2
        except CommandError as exc:
            status = _error(command, exc)
        except _documented_errors() as exc:
            status = _error(command, exc)
        if status == 0 and _signals.received() is not None:
            # A Ctrl-C the interpreter swallowed (raised inside a callback):
            # the command ran to its end, but the user asked it to stop.
            status = _interrupted(command, " (after the command had finished)")
        return status


def _run(args):
    import importlib

    # An ONNX model is run by onnxruntime alone: no Keras, no TensorFlow;
    # serve exports any other model in a child process, and starts no backend.
    command = importlib.import_module(f".{args.command}", __name__)
    # A subcommand's options are checked before the backend is set up: the
    # import of TensorFlow takes seconds, a bad value must not wait for it.
    if hasattr(command, "check"):
        command.check(args)
    if args.command != "serve":
        set_up_backend(
            args, keras_needed=not (args.command == "predict" and is_onnx(args.model))
        )
    return command.run(args)


def _documented_errors():
    """The errors sk-mnist, scikit-learn, skops and onnxruntime document for bad
    input and bad data: DataFileError, UnsafeModelError, ModelError,
    InvalidParameterError and NotFittedError are ValueErrors, DownloadError an
    OSError, TrainingDivergedError a FloatingPointError."""
    from ..exceptions import TrainingDivergedError

    return (OSError, ValueError, TrainingDivergedError)


def _error(command, exc):
    print(f"{command}: error: {one_line(exc)}", file=sys.stderr)
    return 1


def _interrupted(command, detail):
    import signal

    word = "terminated" if _signals.received() == signal.SIGTERM else "interrupted"
    print(f"{command}: {word}{detail}", file=sys.stderr)
    return _signals.exit_status()


__all__ = ["build_parser", "main"]
