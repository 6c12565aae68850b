"""The Open Inference Protocol (v2): tensors in, tensors out, as JSON or binary.

As KServe documents it: a request holds ``inputs``, each a tensor with a
``name``, a ``shape``, a ``datatype`` and its ``data`` (flat in row-major
order, or nested); a response holds ``model_name``, ``id`` and ``outputs``
of the same form. Triton's binary tensor data extension, which its own
client uses by default, sends a tensor's raw bytes after the JSON instead:
the header ``Inference-Header-Content-Length: N`` says that the first ``N``
bytes of the body are the JSON, each tensor sent so carries
``parameters.binary_data_size``, and the bytes follow in the order of the
tensors (little-endian, row-major; a BOOL is one byte; a BYTES element is a
4-byte length and its bytes). ``parameters.binary_data`` on a requested
output, or ``parameters.binary_data_output`` on the request, asks for the
answer in the same form.

No library parses either form into numpy without a model server around it
(MLServer's codecs come with MLServer, tritonclient is a client), so the
rules are written here. A body is untrusted: whatever it holds, reading it
raises :class:`RequestError` (a 4xx) and nothing else, each refusal naming
the value (shortened, at any nesting depth) and what was expected, and
every declared size is checked against the bytes present before anything is
allocated.
"""

from __future__ import annotations

import itertools
import math
import reprlib
import struct
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import orjson

from .._utils._text import shorten
from .._version import __version__

#: v2 datatypes a request may use for pixels, as little-endian numpy dtypes;
#: each value must be a whole number 0..255 (and within the datatype's range).
PIXEL_DATATYPES = {
    name: np.dtype(code).newbyteorder("<")
    for name, code in {
        "UINT8": "u1",
        "UINT16": "u2",
        "UINT32": "u4",
        "UINT64": "u8",
        "INT8": "i1",
        "INT16": "i2",
        "INT32": "i4",
        "INT64": "i8",
        "FP16": "f2",
        "FP32": "f4",
        "FP64": "f8",
    }.items()
}

# The values each datatype holds, as Python numbers (which compare exactly).
_RANGES = {
    name: (-float(np.finfo(d).max), float(np.finfo(d).max))
    if d.kind == "f"
    else (int(np.iinfo(d).min), int(np.iinfo(d).max))
    for name, d in PIXEL_DATATYPES.items()
}

#: The outputs of every served model, in the order they are answered.
OUTPUT_NAMES = ("label", "probabilities")

#: The header of the binary tensor data extension, as Triton spells it.
HEADER_LENGTH = "Inference-Header-Content-Length"

#: The extensions ``GET /v2`` lists, named as Triton and KServe name them.
EXTENSIONS = ("binary_tensor_data",)

# Bodies that are not UTF-8 JSON, recognised by their first bytes to say so.
_NOT_JSON = {
    b"\x1f\x8b": "gzip-compressed",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
    b"BZh": "bzip2-compressed",
    b"\xef\xbb\xbf": "UTF-8 with a byte order mark",
    b"\xff\xfe": "UTF-16 text",
    b"\xfe\xff": "UTF-16 text",
}

# The parameters that ask for Triton's shared-memory extension, which this
# server does not implement.
_SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size")


class RequestError(ValueError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class RequestedOutput(NamedTuple):
    """An output a request asks for, and whether to send it as binary data."""

    name: str
    binary: bool


# What a request that names no outputs asks for, without and with
# binary_data_output.
_ALL_OUTPUTS = {
    binary: tuple(RequestedOutput(name, binary) for name in OUTPUT_NAMES)
    for binary in (False, True)
}


@dataclass(frozen=True, eq=False)
class InferRequest:
    """A v2 ``infer`` request, read and checked.

    Attributes
    ----------
    images : ndarray of shape (n, h, w), uint8
        The pixels of the request's one input.
    id : str or None
        The request's ``id``, echoed in the response.
    outputs : tuple of RequestedOutput
        The outputs to answer, in order, each with whether it is to be sent
        as binary data (Triton's binary tensor data extension).
    """

    images: np.ndarray
    id: str | None
    outputs: tuple[RequestedOutput, ...]

    @property
    def binary(self) -> bool:
        """Whether the response carries binary tensors after its JSON."""
        return any(output.binary for output in self.outputs)


def label_datatype(classes: np.ndarray) -> str:
    """The v2 datatype of the labels: INT64, BOOL or BYTES (strings)."""
    return {"b": "BOOL", "i": "INT64", "u": "INT64"}.get(classes.dtype.kind, "BYTES")


def server_metadata() -> dict:
    """The v2 server metadata (``GET /v2``): name, version and extensions."""
    return {"name": "sk-mnist", "version": __version__, "extensions": list(EXTENSIONS)}


def read_infer_request(
    body: bytes,
    *,
    header_length: int | str | None,
    input_name: str,
    image_shape,
    max_images: int,
) -> InferRequest:
    """Read the body of a v2 ``infer`` request: JSON, or JSON and binary tensors.

    ``shape`` may be ``[n, h, w]``, ``[n, h, w, 1]`` or ``[n, h * w]``;
    ``data`` flat or nested, of as many values as the shape holds, or the
    tensor's bytes after the JSON; each value a pixel 0..255 (integers, or
    floats that are whole numbers) within the range of its ``datatype``.

    Parameters
    ----------
    body : bytes
        The request's body, whole.
    header_length : int, str or None
        The ``Inference-Header-Content-Length`` header (the length of the
        JSON at the start of ``body``) as sent, or None without it.
    input_name : str
        The name of the model's input.
    image_shape : tuple of int
        ``(h, w)``, the model's image shape.
    max_images : int
        Most images in one request (more are a 413).

    Returns
    -------
    InferRequest

    Raises
    ------
    RequestError
        And nothing else, whatever the body: naming what is wrong (not JSON,
        compressed, binary without the header, not an object, no single
        input, another input name, an unknown datatype, a shape, data or
        binary size that does not fit, values outside the datatype or 0..255,
        more than ``max_images`` images, unknown outputs).

    Examples
    --------
    >>> header = (
    ...     b'{"inputs": [{"name": "X", "shape": [1, 2, 2], "datatype": "UINT8", '
    ...     b'"parameters": {"binary_data_size": 4}}]}'
    ... )
    >>> request = read_infer_request(
    ...     header + bytes([0, 255, 7, 8]),
    ...     header_length=str(len(header)),
    ...     input_name="X",
    ...     image_shape=(2, 2),
    ...     max_images=16,
    ... )
    >>> request.images
    array([[[  0, 255],
            [  7,   8]]], dtype=uint8)
    >>> request.outputs[0]
    RequestedOutput(name='label', binary=False)
    >>> try:
    ...     read_infer_request(
    ...         b'{"inputs": [{"name": "X", "datatype": "INT8", "shape": [1, 4], '
    ...         b'"data": [200, 0, 0, 0]}]}',
    ...         header_length=None,
    ...         input_name="X",
    ...         image_shape=(2, 2),
    ...         max_images=16,
    ...     )
    ... except RequestError as exc:
    ...     print(exc.status, exc)
    400 expected INT8 values from -128 to 127; got 200
    """
    if not isinstance(body, bytes):  # a bytearray or memoryview
        body = bytes(body)
    header, tail = _split(body, header_length)
    request = _decode(header, with_header=header_length is not None)
    return _read(
        request,
        header,
        tail,
        input_name=input_name,
        image_shape=image_shape,
        max_images=max_images,
    )


def write_infer_response(
    model_name: str, request: InferRequest, labels, proba, classes
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a v2 response: ``label`` and ``probabilities``.

    The outputs the request asked for, in its order; those it asked for as
    binary data come after the JSON, which then carries their
    ``binary_data_size`` and whose length the ``Inference-Header-Content-Length``
    header gives. Labels are INT64, BOOL or BYTES as :func:`label_datatype`
    says for ``classes``; probabilities FP32.

    Returns
    -------
    body : bytes
    headers : dict of str to str
        ``Content-Type``, and with binary outputs ``Inference-Header-Content-Length``.

    Examples
    --------
    >>> import numpy as np
    >>> request = InferRequest(
    ...     np.zeros((1, 2, 2), np.uint8), "r-1", (RequestedOutput("label", True),)
    ... )
    >>> classes = np.array(["cat", "dog"])
    >>> body, headers = write_infer_response(
    ...     "pets", request, classes[[1]], np.float32([[0.25, 0.75]]), classes
    ... )
    >>> length = int(headers[HEADER_LENGTH])
    >>> label = orjson.loads(body[:length])["outputs"][0]
    >>> label["datatype"], label["parameters"]
    ('BYTES', {'binary_data_size': 7})
    >>> body[length:]
    b'\\x03\\x00\\x00\\x00dog'
    """
    datatype = label_datatype(classes)
    proba = np.ascontiguousarray(proba, dtype="<f4")
    tensors = {
        "label": ([len(labels)], datatype, np.asarray(labels)),
        "probabilities": (list(proba.shape), "FP32", proba),
    }
    outputs, blobs = [], []
    for name, binary in request.outputs:
        shape, dtype, values = tensors[name]
        tensor = {"name": name, "shape": shape, "datatype": dtype}
        if binary:
            blob = _tensor_bytes(values, dtype)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _tensor_json(values, dtype)
        outputs.append(tensor)
    response = {"model_name": model_name, "model_version": "1"}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = outputs
    text = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return text, {"Content-Type": "application/json"}
    return b"".join([text, *blobs]), {
        "Content-Type": "application/octet-stream",
        HEADER_LENGTH: str(len(text)),
    }


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


def parse_header_length(value: str | None) -> int | None:
    """The ``Inference-Header-Content-Length`` header as a number of bytes.

    None without the header. Raises :class:`RequestError` for anything but
    digits (at most 18 of them: ``int()`` of a long digit string is slow, and
    refused past 4,300 digits), naming it.
    """
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise RequestError(
            f"expected the {HEADER_LENGTH} header to be a number of bytes; "
            f"got {_brief(value)}"
        )
    return int(text)


def _split(body, header_length):
    """``body`` as (JSON header, binary tail), the header's length checked."""
    if isinstance(header_length, str):
        header_length = parse_header_length(header_length)
    if header_length is None:
        return body, None
    if not 0 < header_length <= len(body):
        raise RequestError(
            f"the {HEADER_LENGTH} header says the JSON is {header_length} bytes, "
            f"but the body holds {len(body)} bytes; expected 1 to {len(body)}"
        )
    return body[:header_length], memoryview(body)[header_length:]


def _decode(header, *, with_header):
    if not header:
        raise RequestError("the body is empty; expected a v2 inference request")
    try:
        return orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise RequestError(_not_json(bytes(header), exc, with_header)) from None


def _not_json(header, exc, with_header):
    """Why ``header`` is not a JSON request, as a client can act on it."""
    for magic, kind in _NOT_JSON.items():
        if header.startswith(magic):
            expected = (
                "compressed bodies are not read: send the JSON itself"
                if kind.endswith("compressed")
                else "expected JSON in UTF-8, without a byte order mark"
            )
            return f"the body is {kind} (it starts with {magic.hex(' ')}); {expected}"
    if b"\x00" in header[:4]:
        return (
            f"the body starts with NUL bytes ({header[:4].hex(' ')}), as UTF-16 or "
            f"UTF-32 text does; expected JSON in UTF-8"
        )
    try:
        header.decode("utf-8")
    except UnicodeDecodeError as error:
        where, byte = error.start, header[error.start]
    else:
        where = None
    what = f"the first {len(header)} bytes of the body" if with_header else "the body"
    if not with_header and b'"binary_data_size"' in header:
        return (
            f"the body holds binary tensor data after its JSON, but the request "
            f"has no {HEADER_LENGTH} header; expected that header to give the "
            f"length of the JSON in bytes"
        )
    if where is not None:
        return (
            f"expected {what} to be a v2 inference request in JSON (UTF-8); "
            f"byte {where} is 0x{byte:02x}, which is not UTF-8 text"
        )
    return f"{what} is not valid JSON ({shorten(exc, 120)})"


def _read(request, header, tail, *, input_name, image_shape, max_images):
    if not isinstance(request, dict):
        raise RequestError(
            f"expected a JSON object with 'inputs'; got {_type(request)}"
        )
    identifier = request.get("id")
    if identifier is not None and not isinstance(identifier, str):
        raise RequestError(f"expected 'id' to be a string; got {_brief(identifier)}")
    parameters = _parameters(request.get("parameters"), "the request's")
    binary_out = _flag(parameters, "binary_data_output", "the request's")
    outputs = _requested_outputs(request.get("outputs"), binary_out)
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
    if not isinstance(name, str) or name != input_name:
        raise RequestError(
            f"the model's input is named {input_name!r}; got {_brief(name)}"
        )
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in PIXEL_DATATYPES:
        raise RequestError(
            f"expected a datatype among {sorted(PIXEL_DATATYPES)} for pixel values; "
            f"got {_brief(datatype)}"
        )
    n = _check_shape(tensor.get("shape"), image_shape, max_images)
    size = n * math.prod(image_shape)
    parameters = _parameters(tensor.get("parameters"), "the input's")
    _refuse_shared_memory(parameters, "the input")
    if "binary_data_size" in parameters:
        if "data" in tensor:
            raise RequestError(
                "expected the input to hold either 'data' or "
                "parameters.binary_data_size; got both"
            )
        values = _binary_values(tail, parameters["binary_data_size"], datatype, size)
    else:
        if tail is not None and len(tail):
            raise RequestError(
                f"the body holds {len(tail)} bytes after its JSON, but the input "
                f"has no parameters.binary_data_size; expected the JSON alone, or "
                f"the input's size in bytes there"
            )
        values = _json_values(tensor.get("data"), datatype, size, request, header)
    images = _pixels(values, datatype)
    return InferRequest(images.reshape(n, *image_shape), identifier, outputs)


def _parameters(value, whose):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(
            f"expected {whose} 'parameters' to be an object; got {_brief(value)}"
        )
    return value


def _flag(parameters, key, whose):
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise RequestError(
            f"expected {whose} parameters.{key} to be true or false; got "
            f"{_brief(value)}"
        )
    return value


def _refuse_shared_memory(parameters, what):
    if any(key in parameters for key in _SHARED_MEMORY):
        raise RequestError(
            f"{what} asks for shared memory ({_brief(parameters)}); this server "
            f"reads tensors from the body only: send them as JSON or binary data"
        )


def _check_shape(shape, image_shape, max_images):
    h, w = image_shape
    accepted = f"[n, {h}, {w}], [n, {h}, {w}, 1] or [n, {h * w}]"
    if not (
        isinstance(shape, list)
        and shape
        and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        and shape[1:] in ([h, w], [h, w, 1], [h * w])
    ):
        raise RequestError(f"expected a shape {accepted}; got {_brief(shape)}")
    n = shape[0]
    if not 1 <= n <= max_images:
        raise RequestError(
            f"expected between 1 and {max_images} images per request; the shape "
            f"{_brief(shape)} holds {n}",
            status=413 if n > max_images else 400,
        )
    return n


def _binary_values(tail, declared, datatype, size):
    """The input's values from the bytes after the JSON, sizes checked first."""
    if tail is None:
        raise RequestError(
            f"the input declares parameters.binary_data_size but the request has "
            f"no {HEADER_LENGTH} header; expected that header to give the length "
            f"of the JSON in bytes"
        )
    if not isinstance(declared, int) or isinstance(declared, bool) or declared < 0:
        raise RequestError(
            f"expected parameters.binary_data_size to be a number of bytes; got "
            f"{_brief(declared)}"
        )
    dtype = PIXEL_DATATYPES[datatype]
    expected = size * dtype.itemsize
    if declared != expected:
        raise RequestError(
            f"the input declares binary_data_size {declared}, but {size} {datatype} "
            f"values take {expected} bytes"
        )
    if declared != len(tail):
        raise RequestError(
            f"the input declares binary_data_size {declared}, but the body holds "
            f"{len(tail)} bytes after its JSON; expected exactly {declared}"
        )
    return np.frombuffer(tail, dtype=dtype)


def _json_values(data, datatype, size, request, header):
    """The input's ``data`` as a flat array of numbers (not yet checked)."""
    if not isinstance(data, list):
        raise RequestError(f"expected 'data' to be a list; got {_brief(data)}")
    if _no_text_in(data, request, header):
        values = _numbers(data)
    else:
        types = _leaf_types(data)
        if bool in types:  # numpy would read [true, 2] as [1, 2]
            raise RequestError(
                f"expected 'data' to hold {datatype} numbers; got true or false "
                f"among them: {_brief(data)}"
            )
        values = _numbers(data, types) if types <= {int, float} else None
    # Nested at most as deep as the deepest shape, [n, h, w, 1].
    if values is None or values.dtype.kind not in "iuf" or values.ndim > 4:
        raise RequestError(
            f"expected 'data' to hold {datatype} numbers (flat or nested lists of "
            f"equal length); got {_brief(data)}"
        )
    if values.size != size:
        raise RequestError(
            f"the shape holds {size} values but 'data' holds {values.size}"
        )
    return values.ravel()


def _numbers(data, types=None):
    """``data`` as an array, or None if its lists are ragged or too deep.

    Only for ``data`` known to hold no string (of which numpy would make an
    array of strings as long as the longest one) and no boolean. Told the
    ``types`` of its values, numpy reads them in one pass; integers past
    int64 (orjson reads up to 2**64 - 1) are then an OverflowError.
    """
    dtype = None if types is None else np.float64 if float in types else np.int64
    try:
        try:
            return np.asarray(data, dtype=dtype)
        except OverflowError:
            return np.asarray(data, dtype=np.float64)
    except ValueError:
        return None


def _no_text_in(data, request, header):
    """Whether ``data`` surely holds no string and no true/false, from the bytes.

    Looking at each value's type costs about as much as numpy's reading of
    them, and the JSON text tells it at once for the usual body. ``true`` and
    ``false`` hold an ``r`` or an ``f``, which no number and none of the usual
    keys do. Each string of JSON text is two ``"`` (a ``"`` inside one is
    escaped: one more), so a body with twice as many as the strings and keys
    of the request outside ``data`` has none in ``data`` (duplicate keys,
    which orjson reads as one, only make the count larger). The request
    outside ``data`` is walked without recursion and only while small.
    """
    if b"r" in header or b"f" in header:
        return False
    strings, stack, budget = 0, [request], 256
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            strings += 1
        elif isinstance(node, (dict, list)):
            budget -= len(node)
            if budget < 0:
                return False
            if isinstance(node, dict):
                strings += len(node)
                stack.extend(value for value in node.values() if value is not data)
            else:
                stack.extend(node)
    return header.count(b'"') == 2 * strings


def _leaf_types(data, depth=4):
    """The types of the values ``data`` holds at its innermost level of lists.

    Looked at before numpy reads ``data`` (unless :func:`_no_text_in` tells):
    given one string among numbers, numpy makes an array of strings as long
    as the longest (1 MB of text among 500,000 zeros asks for 1.8 TiB). The
    levels are walked one after
    the other in C (``chain``, ``map``), never recursively, and no further
    than the ``depth`` of the deepest shape accepted; only levels of lists
    are copied, never the values.
    """
    types = set(map(type, data))
    while types == {list} and depth > 1:
        types = set(map(type, itertools.chain.from_iterable(data)))
        if types == {list}:
            data = list(itertools.chain.from_iterable(data))
        depth -= 1
    return types


def _pixels(values, datatype):
    """Flat ``values`` as uint8, each in ``datatype``'s range and 0..255."""
    low, high = _RANGES[datatype]
    # Python numbers compare exactly (numpy would round 2**64 - 1 to a float).
    smallest, largest = values.min().item(), values.max().item()
    if values.dtype.kind == "f" and not (
        math.isfinite(smallest) and math.isfinite(largest)
    ):  # NaN (binary FP data may hold it) makes min and max NaN
        _refuse(values[np.argmax(~np.isfinite(values))], "finite numbers")
    if smallest < low or largest > high:
        _refuse(
            smallest if smallest < low else largest,
            f"{datatype} values from {_number(low)} to {_number(high)}",
        )
    pixels = "pixel values: whole numbers from 0 to 255"
    if smallest < 0 or largest > 255:
        _refuse(smallest if smallest < 0 else largest, pixels)
    if values.dtype.kind == "f":
        fraction = values != np.floor(values)
        if fraction.any():
            _refuse(values[np.argmax(fraction)], pixels)
    return values.astype(np.uint8)


def _number(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def _refuse(value, expected):
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**64:
        value = int(value)
    raise RequestError(f"expected {expected}; got {_brief(value)}")


def _requested_outputs(outputs, binary):
    if outputs is None:
        return _ALL_OUTPUTS[binary]
    expected = (
        f"expected 'outputs' to list some of {list(OUTPUT_NAMES)} as "
        f'[{{"name": "label"}}]'
    )
    if not isinstance(outputs, list):
        raise RequestError(f"{expected}; got {_brief(outputs)}")
    requested = []
    for output in outputs:
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str) or name not in OUTPUT_NAMES:
            raise RequestError(f"{expected}; got {_brief(outputs)}")
        if any(name == seen.name for seen in requested):
            raise RequestError(f"{expected}, each once; got {name!r} twice")
        whose = f"output {name!r}'s"
        parameters = _parameters(output.get("parameters"), whose)
        _refuse_shared_memory(parameters, f"the output {name!r}")
        if "classification" in parameters:
            raise RequestError(
                f"the output {name!r} asks for classification "
                f"({_brief(parameters['classification'])}); this server does not "
                f"implement that extension: ask for 'label' and 'probabilities'"
            )
        if "binary_data" in parameters:
            requested.append(
                RequestedOutput(name, _flag(parameters, "binary_data", whose))
            )
        else:
            requested.append(RequestedOutput(name, binary))
    return tuple(requested)


def _tensor_json(values, datatype):
    if datatype == "FP32":
        return values.ravel()  # orjson writes float32 arrays itself
    if datatype == "BYTES":
        return [_text(v) for v in values.tolist()]
    return values.tolist()


def _tensor_bytes(values, datatype):
    if datatype == "BYTES":
        encoded = [_text(v).encode() for v in values.tolist()]
        return b"".join(struct.pack("<I", len(e)) + e for e in encoded)
    dtype = {"INT64": "<i8", "BOOL": "u1", "FP32": "<f4"}[datatype]
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _type(value):
    return "null" if value is None else type(value).__name__


# A repr that stops a few levels down and a few items along: a body of
# 2 KB of brackets makes the builtin repr raise RecursionError.
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict = 3, 4, 4
_repr.maxstring, _repr.maxother, _repr.maxlong = 40, 40, 40


def _brief(value):
    return shorten(_repr.repr(value), 80)
