"""Hypothesis strategies for sk-mnist's property-based tests, in one place.

Images of any shape, dtype and values; IDX headers and bodies; label sets of
every kind a classifier takes; mutations of a saved model file; v2 infer
requests (JSON or binary tensors) and their damaged bodies. Each test
asks for ``budget(n)`` examples: ``n`` in the default ``ci`` profile, twenty
times as many with ``HYPOTHESIS_PROFILE=long`` (see ``conftest.py``).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zipfile

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

#: How many times more examples the "long" profile tries.
LONG_FACTOR = 20


def budget(n: int) -> int:
    """``n`` examples in CI; ``LONG_FACTOR * n`` with HYPOTHESIS_PROFILE=long."""
    return n * LONG_FACTOR if os.environ.get("HYPOTHESIS_PROFILE") == "long" else n


PIXEL_DTYPES = st.sampled_from(
    [
        np.uint8,
        np.uint16,
        np.int8,
        np.int32,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
    ]
)

IMAGE_SHAPES = st.one_of(
    st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
    st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.just(1)),
    st.tuples(st.integers(1, 4), st.sampled_from([1, 4, 9, 16, 25, 36])),
    st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 4)),
)


def pixel_arrays():
    """Arrays a user might hand the flattener: every dtype, any values (NaN too)."""
    return hnp.arrays(dtype=PIXEL_DTYPES, shape=IMAGE_SHAPES)


def unit_images(n_min=20, n_max=60, side=8):
    """uint8 images (n, side, side): small, valid, any content."""
    return hnp.arrays(
        np.uint8, st.tuples(st.integers(n_min, n_max), st.just(side), st.just(side))
    )


@st.composite
def idx_files(draw):
    """(ndim asked for, file bytes, gzipped): headers that tell the truth or lie."""
    ndim = draw(st.sampled_from([1, 3]))
    truthful = draw(st.booleans())
    if truthful:
        dims = draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim))
    else:
        dims = draw(
            st.lists(
                st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1)),
                min_size=0,
                max_size=4,
            )
        )
    magic = (
        b"\x00\x00"
        if draw(st.booleans()) or truthful
        else draw(st.binary(min_size=2, max_size=2))
    )
    code = 0x08 if truthful else draw(st.sampled_from([0x08, 0x08, 0x09, 0x0D, 0xFF]))
    header = (
        magic + bytes([code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    )
    size = int(np.prod(dims)) if dims and truthful else draw(st.integers(0, 200))
    body = draw(st.binary(min_size=size, max_size=size))
    if not truthful and draw(st.booleans()):
        body += draw(st.binary(max_size=20))  # trailing or missing data
    return ndim, header + body, draw(st.booleans())


LABEL_KINDS = st.sampled_from(["int", "negative-int", "int64-extremes", "str", "bool"])


@st.composite
def label_sets(draw, n_classes_max=4):
    """(kind, classes array): the labels a classifier may be fitted on."""
    kind = draw(LABEL_KINDS)
    if kind == "bool":
        return kind, np.array([False, True])
    n = draw(st.integers(2, n_classes_max))
    if kind == "str":
        values = draw(
            st.lists(
                st.text(min_size=1, max_size=6), min_size=n, max_size=n, unique=True
            )
        )
        return kind, np.array(values)
    low, high = {
        "int": (0, 20),
        "negative-int": (-1000, 1000),
        "int64-extremes": (-(2**63), 2**63 - 1),
    }[kind]
    values = draw(st.lists(st.integers(low, high), min_size=n, max_size=n, unique=True))
    return kind, np.array(values, dtype=np.int64)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def zip_members(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def zipped(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _json_paths(value, prefix=()):
    """Every path into a JSON tree, the root excluded."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield (*prefix, key)
        yield from _json_paths(child, (*prefix, key))


def _replaced(tree, path, value):
    tree = json.loads(json.dumps(tree))
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return tree


@st.composite
def _json_edit(draw, document: bytes):
    tree = json.loads(document)
    paths = list(_json_paths(tree))
    path = draw(st.sampled_from(paths))
    value = draw(JSON_VALUES)
    return f"{'/'.join(map(str, path))}={value!r}"[:200], json.dumps(
        _replaced(tree, path, value)
    ).encode()


def _network_member(members):
    return next(name for name in members if name.endswith(".bin"))


@st.composite
def file_mutations(draw, original: bytes):
    """(description, bytes): a saved model file damaged or edited one way.

    Byte flips and truncations of the file itself; a member of the archive
    flipped, truncated or replaced (with checksums recomputed, so that the
    parsers behind the zip see it); an edit anywhere in ``schema.json``; an
    edit anywhere in the network's own ``config.json``.
    """
    kind = draw(
        st.sampled_from(["flip", "truncate", "member", "schema", "network-config"])
    )
    if kind == "flip":
        offset = draw(st.integers(0, len(original) - 1))
        data = bytearray(original)
        data[offset] ^= draw(st.integers(1, 255))
        return f"flip at {offset}", bytes(data)
    if kind == "truncate":
        cut = draw(st.integers(0, len(original) - 1))
        return f"truncated to {cut}", original[:cut]
    members = zip_members(original)
    if kind == "schema":
        what, members["schema.json"] = draw(_json_edit(members["schema.json"]))
        return f"schema {what}", zipped(members)
    if kind == "network-config":
        name = _network_member(members)
        network = zip_members(members[name])
        what, network["config.json"] = draw(_json_edit(network["config.json"]))
        members[name] = zipped(network)
        return f"network config {what}", zipped(members)
    name = draw(st.sampled_from(sorted(members)))
    content = members[name]
    how = draw(st.sampled_from(["flip", "truncate", "replace"]))
    if how == "flip" and content:
        offset = draw(st.integers(0, len(content) - 1))
        edited = bytearray(content)
        edited[offset] ^= draw(st.integers(1, 255))
        members[name] = bytes(edited)
    elif how == "truncate":
        members[name] = content[: draw(st.integers(0, max(0, len(content) - 1)))]
    else:
        members[name] = draw(st.binary(max_size=64))
    return f"member {name}: {how}", zipped(members)


#: The v2 datatypes a request may send pixels in, with their little-endian dtypes.
V2_PIXEL_DATATYPES = {
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


@st.composite
def v2_requests(draw, image_shape=(2, 3), max_images=3, input_name="X"):
    """(images, request, tail): a valid v2 infer request for uint8 ``images``.

    ``request`` is the JSON object; ``tail`` the binary tensor bytes that
    follow it (Triton's binary tensor data extension), or None when the
    pixels are in ``data`` (flat or nested, as integers or whole floats).
    Shapes ``[n, h, w]``, ``[n, h, w, 1]`` or ``[n, h * w]``; every pixel
    datatype (INT8 holds only 0..127); optional ``id``, ``outputs`` and
    the binary output parameters.
    """
    h, w = image_shape
    n = draw(st.integers(1, max_images))
    datatype = draw(st.sampled_from(sorted(V2_PIXEL_DATATYPES)))
    top = 127 if datatype == "INT8" else 255
    images = draw(hnp.arrays(np.uint8, (n, h, w), elements=st.integers(0, top)))
    shape = draw(st.sampled_from([[n, h, w], [n, h, w, 1], [n, h * w]]))
    values = images.astype(V2_PIXEL_DATATYPES[datatype])
    tensor = {"name": input_name, "shape": shape, "datatype": datatype}
    tail = None
    if draw(st.booleans()):
        tail = values.tobytes()
        tensor["parameters"] = {"binary_data_size": len(tail)}
    elif draw(st.booleans()):
        tensor["data"] = values.reshape(shape).tolist()
    else:
        tensor["data"] = values.ravel().tolist()
    request = {"inputs": [tensor]}
    if draw(st.booleans()):
        request["id"] = draw(st.text(max_size=8))
    if draw(st.booleans()):
        request["parameters"] = {"binary_data_output": draw(st.booleans())}
    if draw(st.booleans()):
        names = draw(
            st.lists(
                st.sampled_from(["label", "probabilities"]), max_size=2, unique=True
            )
        )
        outputs = []
        for name in names:
            output = {"name": name}
            if draw(st.booleans()):
                output["parameters"] = {"binary_data": draw(st.booleans())}
            outputs.append(output)
        request["outputs"] = outputs
    return images, request, tail


# A placeholder swapped for deep nesting after json.dumps (which would
# itself recurse too deep on such a tree).
_DEEP = "\x00deep\x00"

_V2_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from(
        [
            2**63,
            2**64,
            -(2**63) - 1,
            10**30,
            1e308,
            -1e308,
            float("nan"),
            float("inf"),
            -0.0,
            "UINT8",
            "X",
            "label",
            "",
            "\ud800",
            [],
            {},
            [[]],
            [None],
            [True, 1],
            {"name": "label"},
            {"binary_data_size": 1},
            {"binary_data_size": 2**62},
            {"binary_data_size": -1},
            {"binary_data_output": "true"},
            {"shared_memory_region": "r"},
            {"classification": 3},
        ]
    ),
    st.just(_DEEP),
)


def _deepened(text, depth, kind):
    nest = (
        "[" * depth + "]" * depth
        if kind == "list"
        else '{"a":' * depth + "1" + "}" * depth
    )
    return text.replace(json.dumps(_DEEP), nest)


def _deleted(tree, path):
    tree = json.loads(json.dumps(tree))
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return tree


@st.composite
def v2_bodies(draw, image_shape=(2, 3), max_images=3, input_name="X"):
    """(description, body, header_length): a v2 infer body, valid or damaged.

    Damage of every kind a careless or hostile client sends: any value of the
    JSON tree replaced (wrong types, huge or NaN numbers, strings for lists,
    nesting up to past orjson's depth limit), a key deleted, bytes flipped,
    cut or appended, the body compressed, the ``Inference-Header-Content-Length``
    header wrong, missing or sent without binary data.
    """
    _, request, tail = draw(v2_requests(image_shape, max_images, input_name))
    kind = draw(
        st.sampled_from(
            [
                "replace",
                "replace",
                "replace",
                "delete",
                "bytes",
                "header",
                "gzip",
                "root",
                "valid",
            ]
        )
    )
    what = kind
    # A key of the tree (by the names on its path: inputs/shape...), then one
    # of its places: keys first, so that the pixel values do not crowd them out.
    groups = {}
    for path in _json_paths(request):
        groups.setdefault(tuple(k for k in path if isinstance(k, str)), []).append(path)
    group = draw(st.sampled_from(sorted(groups, key=lambda g: (-len(g), g))))
    path = draw(st.sampled_from(groups[group]))
    if kind == "replace":
        value = draw(_V2_VALUES)
        request = _replaced(request, path, value)
        what = f"{'/'.join(map(str, path))}={value!r}"[:200]
    elif kind == "delete":
        if isinstance(path[-1], str):
            request = _deleted(request, path)
        what = f"delete {'/'.join(map(str, path))}"
    text = json.dumps(request)
    if json.dumps(_DEEP) in text:
        depth = draw(st.sampled_from([65, 1000, 1100]))
        nest = draw(st.sampled_from(["list", "dict"]))
        text = _deepened(text, depth, nest)
        what += f" nested {depth} deep ({nest})"
    header = text.encode()
    body = header + (tail or b"")
    header_length = len(header) if tail is not None else None
    if kind == "bytes":
        how = draw(st.sampled_from(["flip", "cut", "append"]))
        data = bytearray(body)
        if how == "flip":
            offset = draw(st.integers(0, len(data) - 1))
            data[offset] ^= draw(st.integers(1, 255))
        elif how == "cut":
            del data[draw(st.integers(0, len(data) - 1)) :]
        else:
            data += draw(st.binary(min_size=1, max_size=16))
        body = bytes(data)
        what = f"bytes {how}"
    elif kind == "header":
        header_length = draw(
            st.one_of(
                st.none(),
                st.integers(-3, len(body) + 3),
                st.sampled_from(["", "abc", " 12", "1e3", "\u00b2", "9" * 5000]),
                st.integers(0, len(body) + 3).map(str),
            )
        )
        what = f"header {header_length!r}"[:200]
    elif kind == "gzip":
        body = gzip.compress(body)
    elif kind == "root":
        value = draw(_V2_VALUES)
        body, header_length = json.dumps(value).encode(), None
        what = f"the body {value!r}"[:200]
    return what, body, header_length


def v2_response_tensors(body: bytes, headers: dict) -> dict:
    """{output name: numpy array} of a v2 response, read as the spec says.

    The JSON, or with ``Inference-Header-Content-Length`` the JSON and then
    each output's ``binary_data_size`` bytes in order (little-endian; BOOL a
    byte; BYTES elements a 4-byte length and UTF-8 bytes). Written from the
    binary tensor data extension's text, to test the server's writer against.
    """
    length = {k.lower(): v for k, v in headers.items()}.get(
        "inference-header-content-length"
    )
    header = json.loads(body if length is None else body[: int(length)])
    offset = len(body) if length is None else int(length)
    dtypes = {"INT64": "<i8", "BOOL": "?", "FP32": "<f4"}
    tensors = {}
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            tensors[output["name"]] = np.array(output["data"]).reshape(output["shape"])
            continue
        raw = body[offset : offset + size]
        offset += size
        if output["datatype"] == "BYTES":
            values, at = [], 0
            while at < len(raw):
                (n,) = struct.unpack_from("<I", raw, at)
                values.append(raw[at + 4 : at + 4 + n].decode())
                at += 4 + n
            array = np.array(values)
        else:
            array = np.frombuffer(raw, dtypes[output["datatype"]])
        tensors[output["name"]] = array.reshape(output["shape"])
    assert offset == len(body), "bytes left after the last binary output"
    return tensors
