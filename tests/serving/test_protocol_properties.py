"""The v2 reader and the server over generated bodies, the writer over every label kind."""

from __future__ import annotations

import json

import numpy as np
import onnx_graphs
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (
    budget,
    label_sets,
    v2_bodies,
    v2_requests,
    v2_response_tensors,
)

from sk_mnist.serving import ServedModel
from sk_mnist.serving._options import ServeOptions
from sk_mnist.serving._protocol import (
    InferRequest,
    RequestedOutput,
    RequestError,
    read_infer_request,
    write_infer_response,
)
from sk_mnist.serving.app import create_app

_SHAPE = (2, 3)
_MAX = 3


def _read(body, header_length):
    return read_infer_request(
        body,
        header_length=header_length,
        input_name="X",
        image_shape=_SHAPE,
        max_images=_MAX,
    )


def _body(datatype='"UINT8"', data="[1, 2, 3, 4, 5, 6]", name='"X"', tail=b""):
    text = (
        f'{{"inputs": [{{"name": {name}, "shape": [1, 2, 3], "datatype": '
        f"{datatype}, "
        + (
            f'"parameters": {{"binary_data_size": {len(tail)}}}'
            if tail
            else f'"data": {data}'
        )
        + "}]}"
    ).encode()
    return text + tail, len(text) if tail else None


# Issue 27's bodies, and what the strategies found while they were written.
_ISSUE_27 = {
    "deep name": _body(name="[" * 1000 + "]" * 1000),
    "deep data": _body(data="[" * 1000 + "]" * 1000),
    "list datatype": _body(datatype='["UINT8"]'),
    "object datatype": _body(datatype='{"a": 1}'),
    "INT8 200": _body(datatype='"INT8"', data="[200, 1, 2, 3, 4, 5]"),
    "true among ints": _body(data="[true, 1, 2, 3, 4, 5]"),
    "string among ints": _body(data='["' + "a" * 10_000 + '", 1, 2, 3, 4, 5]'),
    "2**64 as UINT64": _body(datatype='"UINT64"', data=f"[{2**64}, 1, 2, 3, 4, 5]"),
    "binary without header": (_body(tail=bytes(range(250, 256)))[0], None),
    "NaN as FP32": (_body(datatype='"FP32"', tail=np.full(6, np.nan, "<f4").tobytes())),
}


@settings(max_examples=budget(300))
@given(case=v2_bodies(_SHAPE, _MAX))
@example(case=("deep name", *_ISSUE_27["deep name"]))
@example(case=("deep data", *_ISSUE_27["deep data"]))
@example(case=("list datatype", *_ISSUE_27["list datatype"]))
@example(case=("object datatype", *_ISSUE_27["object datatype"]))
@example(case=("INT8 200", *_ISSUE_27["INT8 200"]))
@example(case=("true among ints", *_ISSUE_27["true among ints"]))
@example(case=("string among ints", *_ISSUE_27["string among ints"]))
@example(case=("2**64 as UINT64", *_ISSUE_27["2**64 as UINT64"]))
@example(case=("binary without header", *_ISSUE_27["binary without header"]))
@example(case=("NaN as FP32", *_ISSUE_27["NaN as FP32"]))
def test_any_body_is_read_or_refused_with_a_4xx(case):
    what, body, header_length = case
    try:
        request = _read(body, header_length)
    except RequestError as exc:
        assert 400 <= exc.status < 500, what
        message = str(exc)
        assert isinstance(message, str), what
        assert message, what
        # Each refusal names the value shortened, however large or deep.
        assert len(message) < 600, (what, message)
        json.dumps({"error": message})  # the error body can be written
        event(f"refused: {message[:30]}")
        return
    event("read")
    assert isinstance(request, InferRequest), what
    assert request.images.dtype == np.uint8
    assert request.images.ndim == 3
    assert request.images.shape[1:] == _SHAPE
    assert 1 <= len(request.images) <= _MAX
    assert request.id is None or isinstance(request.id, str)
    assert all(name in ("label", "probabilities") for name, _ in request.outputs)


@settings(max_examples=budget(100))
@given(case=v2_requests(_SHAPE, _MAX))
def test_a_valid_request_gives_back_its_images_id_and_outputs(case):
    images, request, tail = case
    header = json.dumps(request).encode()
    read = _read(header + (tail or b""), None if tail is None else len(header))
    np.testing.assert_array_equal(read.images, images)
    assert read.id == request.get("id")
    default = request.get("parameters", {}).get("binary_data_output", False)
    expected = [
        (o["name"], o.get("parameters", {}).get("binary_data", default))
        for o in request.get("outputs", [{"name": "label"}, {"name": "probabilities"}])
    ]
    assert list(read.outputs) == expected


@settings(max_examples=budget(60))
@given(
    labels=label_sets(),
    n=st.integers(1, 4),
    binary=st.lists(st.booleans(), min_size=2, max_size=2),
    order=st.permutations(["label", "probabilities"]),
    identifier=st.one_of(st.none(), st.text(max_size=6)),
    data=st.data(),
)
def test_the_response_reads_back_as_json_or_binary(
    labels, n, binary, order, identifier, data
):
    _, classes = labels
    picks = data.draw(hnp.arrays(np.intp, n, elements=st.integers(0, len(classes) - 1)))
    proba = data.draw(
        hnp.arrays(np.float32, (n, len(classes)), elements=st.floats(0, 1, width=32))
    )
    request = InferRequest(
        np.zeros((n, *_SHAPE), np.uint8),
        identifier,
        tuple(RequestedOutput(name, b) for name, b in zip(order, binary, strict=True)),
    )
    body, headers = write_infer_response(
        "mnist", request, classes[picks], proba, classes
    )
    tensors = v2_response_tensors(body, headers)
    assert list(tensors) == order
    assert tensors["label"].tolist() == classes[picks].tolist()
    np.testing.assert_array_equal(tensors["probabilities"].astype(np.float32), proba)
    length = headers.get("Inference-Header-Content-Length")
    header = json.loads(body if length is None else body[: int(length)])
    assert header.get("id") == identifier
    assert header["model_name"] == "mnist"
    assert (length is not None) == any(binary)


@pytest.fixture(scope="module")
def client():
    from starlette.testclient import TestClient

    graph = onnx_graphs.model(*onnx_graphs.head(scale=0.01, seed=0))
    app = create_app(ServedModel(graph), ServeOptions(max_images=_MAX))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


@settings(max_examples=budget(100))
@given(case=v2_bodies((28, 28), _MAX, input_name="X"))
# Found by this test: the header of 5,000 digits was a ValueError in int().
@example(case=("header of 5,000 digits", _ISSUE_27["deep name"][0], "9" * 5000))
def test_the_server_answers_any_body_with_a_200_or_a_json_4xx(client, case):
    what, body, header_length = case
    headers = {"content-type": "application/octet-stream"}
    if header_length is not None:  # as it comes from a socket: latin-1 bytes
        value = str(header_length).encode("latin-1")
        headers["inference-header-content-length"] = value
    answer = client.post("/v2/models/mnist/infer", content=body, headers=headers)
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, what
    if answer.status_code != 200:
        assert list(answer.json()) == ["error"], what
        assert isinstance(answer.json()["error"], str), what
