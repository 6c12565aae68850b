"""The Open Inference Protocol (v2) in JSON: tensors in, tensors out.

As KServe documents it: a request holds ``inputs``, each a tensor with a
``name``, a ``shape``, a ``datatype`` and its ``data`` (flat in row-major
order, or nested); a response holds ``model_name``, ``id`` and ``outputs``
of the same form. No library parses it into numpy without a model server
around it (MLServer's codecs come with MLServer), so the few rules are
written here, each refusal naming the value and what was expected.
"""

from __future__ import annotations

import math

import numpy as np

from .._utils._text import shorten

#: v2 datatypes a request may use for pixels; each is read as uint8 0..255.
PIXEL_DATATYPES = {
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


class RequestError(ValueError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def label_datatype(classes: np.ndarray) -> str:
    """The v2 datatype of the labels: INT64, BOOL or BYTES (strings)."""
    return {"b": "BOOL", "i": "INT64", "u": "INT64"}.get(classes.dtype.kind, "BYTES")


def parse_infer_request(request, *, input_name: str, image_shape, max_images: int):
    """The images of a v2 ``infer`` request as uint8 ``(n, h, w)``, and its id.

    ``shape`` may be ``[n, h, w]``, ``[n, h, w, 1]`` or ``[n, h * w]``;
    ``data`` flat or nested, of as many values as the shape holds, each a
    pixel value 0..255 (integers, or floats that are whole numbers).

    Raises
    ------
    RequestError
        Naming what is wrong: not an object, no single input, another input
        name, an unknown datatype, a shape or data length that does not fit,
        values outside 0..255, more than ``max_images`` images.
    """
    if not isinstance(request, dict):
        raise RequestError(
            f"expected a JSON object with 'inputs'; got {type(request).__name__}"
        )
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise RequestError(
            f"expected 'inputs' to be a list of one tensor, {input_name!r}; got "
            f"{_brief(inputs)}"
        )
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise RequestError(f"expected the input to be an object; got {_brief(tensor)}")
    name = tensor.get("name")
    if name != input_name:
        raise RequestError(
            f"the model's input is named {input_name!r}; got {_brief(name)}"
        )
    datatype = tensor.get("datatype")
    if datatype not in PIXEL_DATATYPES:
        raise RequestError(
            f"expected a datatype among {sorted(PIXEL_DATATYPES)} for pixel values; "
            f"got {_brief(datatype)}"
        )
    n = _check_shape(tensor.get("shape"), image_shape, max_images)
    data = tensor.get("data")
    images = _pixels(data, datatype, n * math.prod(image_shape))
    identifier = request.get("id")
    if identifier is not None and not isinstance(identifier, str):
        raise RequestError(f"expected 'id' to be a string; got {_brief(identifier)}")
    outputs = _requested_outputs(request.get("outputs"))
    return images.reshape(n, *image_shape), identifier, outputs


def _check_shape(shape, image_shape, max_images):
    h, w = image_shape
    accepted = f"[n, {h}, {w}], [n, {h}, {w}, 1] or [n, {h * w}]"
    if not (
        isinstance(shape, list)
        and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        and shape
        and shape[1:] in ([h, w], [h, w, 1], [h * w])
    ):
        raise RequestError(f"expected a shape {accepted}; got {_brief(shape)}")
    n = shape[0]
    if not 1 <= n <= max_images:
        raise RequestError(
            f"expected between 1 and {max_images} images per request; the shape "
            f"{shape} holds {n}",
            status=413 if n > max_images else 400,
        )
    return n


def _pixels(data, datatype, size):
    """``data`` as a flat uint8 array of ``size`` pixel values."""
    if not isinstance(data, list):
        raise RequestError(f"expected 'data' to be a list; got {_brief(data)}")
    try:
        # numpy reads a list of Python ints as int64, of floats as float64.
        values = np.asarray(data).ravel()
    except (ValueError, TypeError):
        values = None
    if values is None or values.dtype.kind not in "iuf":
        raise RequestError(
            f"expected 'data' to hold {datatype} numbers (flat or nested lists of "
            f"equal length); got {_brief(data)}"
        )
    if values.size != size:
        raise RequestError(
            f"the shape holds {size} values but 'data' holds {values.size}"
        )
    if values.dtype.kind == "f":
        bad = ~(np.isfinite(values) & (values >= 0) & (values <= 255))
        bad |= values != np.round(values)
    elif values.size and (values.min() < 0 or values.max() > 255):
        bad = (values < 0) | (values > 255)
    else:
        return values.astype(np.uint8)
    if bad.any():
        raise RequestError(
            f"expected pixel values: whole numbers from 0 to 255; got "
            f"{_brief(_data_value(values[np.argmax(bad)]))}"
        )
    return values.astype(np.uint8)


def _data_value(value):
    return int(value) if float(value).is_integer() else float(value)


def _requested_outputs(outputs):
    names = {"label", "probabilities"}
    if outputs is None:
        return ["label", "probabilities"]
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and o.get("name") in names for o in outputs
    ):
        raise RequestError(
            f"expected 'outputs' to list some of {sorted(names)} as "
            f'[{{"name": "label"}}]; got {_brief(outputs)}'
        )
    return [o["name"] for o in outputs]


def infer_response(model_name, identifier, labels, proba, outputs, classes):
    """A v2 response: ``label`` and ``probabilities`` as flat tensors."""
    tensors = {
        "label": {
            "name": "label",
            "shape": [len(labels)],
            "datatype": label_datatype(classes),
            "data": labels.tolist(),
        },
        "probabilities": {
            "name": "probabilities",
            "shape": list(proba.shape),
            "datatype": "FP32",
            "data": proba.ravel(),
        },
    }
    response = {"model_name": model_name, "model_version": "1"}
    if identifier is not None:
        response["id"] = identifier
    response["outputs"] = [tensors[name] for name in outputs]
    return response


def metadata(model_name, input_name, image_shape, classes):
    """The v2 model metadata: its one input and two outputs."""
    return {
        "name": model_name,
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [
            {"name": input_name, "datatype": "UINT8", "shape": [-1, *image_shape]}
        ],
        "outputs": [
            {"name": "label", "datatype": label_datatype(classes), "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]},
        ],
    }


def _brief(value):
    return shorten(repr(value), 80)
