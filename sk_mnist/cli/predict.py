"""``sk-mnist predict``: classify image files of digits.

An ``.onnx`` model runs on onnxruntime alone (:mod:`sk_mnist.serving`), so
this command then imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from ._common import (
    CommandError,
    add_data_options,
    add_model_argument,
    is_onnx,
    load_classifier,
    printable,
)


def add_parser(commands):
    parser = commands.add_parser("predict", help="classify image files of digits")
    add_model_argument(
        parser,
        "a folder written by train/search, or a model file (.skops, or .onnx to "
        "run it with onnxruntime alone)",
    )
    parser.add_argument(
        "images", nargs="+", metavar="IMAGE", help="image files of one digit"
    )
    add_data_options(parser)


def run(args):
    import numpy as np

    from ..datasets import read_digit_image

    images = np.stack([read_digit_image(path) for path in args.images])
    if is_onnx(args.model):
        labels, proba = _run_onnx(args.model, images)
    else:
        pipe = load_classifier(args.model)
        proba = pipe.predict_proba(images)
        labels = pipe.classes_[proba.argmax(axis=1)]
    # Every answer is checked before the first line is printed.
    lines = [
        f"{printable(path)}: {printable(label)} (probability {row.max():.3f})"
        for path, label, row in zip(args.images, labels, proba, strict=True)
    ]
    print("\n".join(lines))
    return 0


def _run_onnx(path, images):
    """Labels and probabilities from an exported model, by onnxruntime alone."""
    try:
        from ..serving import ServedModel
    except ImportError:
        raise CommandError(
            'serving an .onnx model needs onnxruntime: pip install "sk-mnist[onnx]"'
        ) from None
    model = ServedModel.from_file(path)
    if tuple(model.image_shape) != images.shape[1:]:
        raise CommandError(
            f"{path}: the model reads {model.image_shape} images; the images are "
            f"read as {images.shape[1:]}"
        )
    return model.predict(images)
