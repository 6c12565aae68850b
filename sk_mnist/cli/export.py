"""``sk-mnist export``: a saved model as ONNX, to serve without TensorFlow."""

from __future__ import annotations

from pathlib import Path

from ._common import (
    CommandError,
    add_data_options,
    add_model_argument,
    load_classifier,
)


def add_parser(commands):
    parser = commands.add_parser("export", help="export a saved model for serving")
    add_model_argument(parser, "a folder written by train/search, or a model file")
    parser.add_argument(
        "--format", choices=["onnx"], default="onnx", help="(default: onnx)"
    )
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="the file to write"
    )
    add_data_options(parser)


def run(args):
    from .._utils._files import check_replaceable
    from ..onnx import to_onnx

    if not args.out.strip():
        raise CommandError("--out is empty (an unset shell variable?); give a file")
    out = Path(args.out)
    check_replaceable(out)
    pipe = load_classifier(args.model)
    # to_onnx checks the pipeline and the converted model before it writes.
    try:
        to_onnx(pipe, out, images=True)
    except OSError as exc:
        raise CommandError(
            f"--out {out}: cannot write there ({exc.strerror or exc})"
        ) from None
    print(
        f"Wrote {out} (input: uint8 images {list(pipe[0].image_shape_)}; outputs: "
        f"label, probabilities)"
    )
    return 0
