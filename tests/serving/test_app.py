"""The serving app, in process: every route, every bad request, batching."""

from __future__ import annotations

import asyncio
import io
import json
import re
import resource
import struct
import zlib

import httpx2 as httpx
import numpy as np
import pytest
from PIL import Image
from sklearn.pipeline import make_pipeline
from starlette.testclient import TestClient

from sk_mnist import KerasMLPClassifier, MNISTFlattener
from sk_mnist.datasets import read_digit_image
from sk_mnist.onnx import to_onnx
from sk_mnist.serving import ServedModel
from sk_mnist.serving._options import ServeOptions
from sk_mnist.serving.app import create_app

INFER = "/v2/models/mnist/infer"
BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def served(mnist_train, mnist_test):
    (X, y), (Xt, _) = mnist_train, mnist_test
    pipe = make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(hidden_layer_sizes=(64,), epochs=2, random_state=0),
    ).fit(X[:6000], y[:6000])
    # The ONNX bytes: each app closes its model when it shuts down.
    return pipe, to_onnx(pipe, images=True).SerializeToString(), Xt[:200]


@pytest.fixture(scope="module")
def client(served):
    _, data, _ = served
    with TestClient(
        create_app(ServedModel(data), ServeOptions(max_body_bytes=2 * 1024**2)),
        base_url=BASE,
    ) as client:
        yield client


def _request(images, **tensor):
    return {
        "id": "r1",
        "inputs": [
            {
                "name": "X",
                "shape": list(images.shape),
                "datatype": "UINT8",
                "data": images.ravel().tolist(),
                **tensor,
            }
        ],
    }


def test_health_and_metadata_follow_the_protocol(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/mnist/ready").json() == {
        "name": "mnist",
        "ready": True,
    }
    meta = client.get("/v2/models/mnist").json()
    assert meta["name"] == "mnist"
    assert meta["inputs"] == [{"name": "X", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
    ]


def test_infer_answers_as_the_pipeline(client, served):
    pipe, _, images = served
    answer = client.post(INFER, json=_request(images))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == "mnist"
    assert body["id"] == "r1"
    label, proba = body["outputs"]
    assert label == {
        "name": "label",
        "shape": [200],
        "datatype": "INT64",
        "data": pipe.predict(images).tolist(),
    }
    assert proba["shape"] == [200, 10]
    assert proba["datatype"] == "FP32"
    np.testing.assert_allclose(
        np.reshape(proba["data"], (200, 10)), pipe.predict_proba(images), atol=1e-5
    )


@pytest.mark.parametrize(
    "variant",
    ["nested", "flat-rows", "channel", "fp32", "int64", "only-label"],
)
def test_other_datatypes_and_shapes_the_model_can_take_are_converted(
    client, served, variant
):
    pipe, _, images = served
    images = images[:20]
    request = _request(images)
    tensor = request["inputs"][0]
    if variant == "nested":
        tensor["data"] = images.tolist()
    elif variant == "flat-rows":
        tensor["shape"] = [20, 784]
    elif variant == "channel":
        tensor["shape"] = [20, 28, 28, 1]
    elif variant == "fp32":
        tensor.update(datatype="FP32", data=[float(v) for v in tensor["data"]])
    elif variant == "int64":
        tensor["datatype"] = "INT64"
    else:
        request["outputs"] = [{"name": "label"}]
    body = client.post(INFER, json=request).json()
    assert body["outputs"][0]["data"] == pipe.predict(images).tolist()
    assert len(body["outputs"]) == (1 if variant == "only-label" else 2)


def _set(path, value):
    def edit(request):
        target = request
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return request

    return edit


_IMAGE = np.zeros((2, 28, 28), np.uint8)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "the body is not valid JSON"),
        (b"[1, 2]", 400, "expected a JSON object with 'inputs'; got list"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "the body is not valid JSON"),
        (_set(["inputs"], []), 400, "'inputs' to be a list of one tensor"),
        (
            _set(["inputs", 0, "name"], "pixels"),
            400,
            "input is named 'X'; got 'pixels'",
        ),
        (_set(["inputs", 0, "datatype"], "BYTES"), 400, "datatype among"),
        (_set(["inputs", 0, "shape"], [2, 27, 28]), 400, r"shape \[n, 28, 28\]"),
        (
            _set(["inputs", 0, "shape"], [3, 28, 28]),
            400,
            "holds 2352 values but 'data' holds 1568",
        ),
        (_set(["inputs", 0, "shape"], [0, 28, 28]), 400, "between 1 and 4096 images"),
        (
            _set(["inputs", 0, "shape"], [5000, 28, 28]),
            413,
            "between 1 and 4096 images",
        ),
        (_set(["inputs", 0, "data"], [256] * 1568), 400, "from 0 to 255; got 256"),
        (_set(["inputs", 0, "data"], [-1] * 1568), 400, "from 0 to 255; got -1"),
        (_set(["inputs", 0, "data"], "abc"), 400, "'data' to be a list"),
        (_set(["inputs", 0, "data"], [[1, 2], [3]]), 400, "flat or nested lists"),
        (_set(["id"], 5), 400, "'id' to be a string"),
        (_set(["outputs"], [{"name": "logits"}]), 400, "'outputs' to list some of"),
    ],
)
def test_a_bad_request_is_a_4xx_naming_the_problem(client, body, status, message):
    if callable(body):
        body = json.dumps(body(_request(_IMAGE))).encode()
    answer = client.post(
        INFER, content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status, answer.text
    assert re.search(message, answer.json()["error"]), answer.json()
    assert client.get("/v2/health/ready").status_code == 200


def test_float_pixels_must_be_whole_numbers(client):
    request = _request(_IMAGE, datatype="FP32")
    request["inputs"][0]["data"] = [0.5] * 1568
    answer = client.post(INFER, json=request)
    assert answer.status_code == 400
    assert "whole numbers from 0 to 255; got 0.5" in answer.json()["error"]


def test_routes_and_names_that_do_not_exist_are_json_404s_and_405s(client):
    answer = client.post("/v2/models/other/infer", json=_request(_IMAGE))
    assert answer.status_code == 404
    assert answer.json() == {
        "error": "no model named 'other'; this server serves 'mnist'"
    }
    assert client.get("/v2/models/other").status_code == 404
    assert client.get("/nowhere").json() == {"error": "no route /nowhere"}
    answer = client.get(INFER)
    assert answer.status_code == 405
    assert "GET is not allowed" in answer.json()["error"]


def test_a_body_over_the_limit_is_413_declared_or_streamed(client):
    answer = client.post(INFER, content=b" " * (2 * 1024**2 + 1))
    assert answer.status_code == 413
    assert "over this server's limit of 2097152 bytes" in answer.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * 65536

    answer = client.post(INFER, content=chunks())
    assert answer.status_code == 413


def _png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(side=30_000):
    """A valid PNG header declaring side x side pixels, with almost no data."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_predict_reads_an_image_file_as_the_command_line_does(client, served):
    pipe, _, images = served
    png = _png(255 - images[3])  # dark on light
    body = client.post("/predict", content=png).json()
    expected = pipe.predict_proba(read_digit_image(png)[None])[0]
    assert body["label"] == int(pipe.classes_[expected.argmax()])
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-5)
    assert body["classes"] == list(range(10))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the body is empty"),
        (b"not an image at all", "not a readable image"),
        (_png(np.zeros((28, 28), np.uint8)), "blank"),
        (_bomb_png(), "too large to read as a digit"),
    ],
    ids=["empty", "text", "blank", "decompression-bomb"],
)
def test_predict_refuses_what_is_not_a_digit_image(client, body, message):
    answer = client.post("/predict", content=body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_hostile_bodies_leave_memory_bounded_and_the_server_ready(client):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bodies = [
        b"[" * (2 * 1024**2 - 10),
        b'{"inputs": [{"name": "X", "shape": [4096, 28, 28], "datatype": "UINT8", "data": ['
        + b"1," * 1_000_000
        + b"1]}]}",
        b'{"inputs": [{"name": "X", "shape": [1, 784], "datatype": "UINT8", "data": "'
        + b"a" * 2_000_000
        + b'"}]}',
    ]
    for body in bodies * 5:
        assert 400 <= client.post(INFER, content=body).status_code < 500
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024
    assert growth_mib < 200
    assert client.get("/v2/health/ready").status_code == 200


def test_metrics_count_requests_latency_and_batch_sizes(served):
    _, data, images = served
    with TestClient(create_app(ServedModel(data)), base_url=BASE) as client:
        for _ in range(3):
            client.post(INFER, json=_request(images[:5]))
        client.post(INFER, content=b"{")
        text = client.get("/metrics").text
    assert (
        'sk_mnist_requests_total{endpoint="/v2/models/{name}/infer",status="200"} 3.0'
        in text
    )
    assert (
        'sk_mnist_requests_total{endpoint="/v2/models/{name}/infer",status="400"} 1.0'
        in text
    )
    assert re.search(
        r'sk_mnist_request_duration_seconds_count\{endpoint="/v2/models/\{name\}/infer"\} 4\.0',
        text,
    )
    assert 'sk_mnist_batch_size_bucket{le="8.0"} 3.0' in text


def test_refusals_before_routing_are_counted_under_the_route_asked_for(served):
    # The same-origin check answers before the router: its 403s still belong
    # to the route the request named, and an unknown path stays "other".
    _, data, _ = served
    with TestClient(create_app(ServedModel(data)), base_url=BASE) as client:
        for path in ("/explain", "/predict", "/nowhere"):
            answer = client.post(
                path, content=b"x", headers={"Origin": "http://evil.example"}
            )
            assert answer.status_code == 403, (path, answer.text)
        assert client.get("/explain").status_code == 405
        text = client.get("/metrics").text
    for endpoint, status in (
        ("/explain", 403),
        ("/predict", 403),
        ("other", 403),
        ("/explain", 405),
    ):
        line = f'sk_mnist_requests_total{{endpoint="{endpoint}",status="{status}"}} 1.0'
        assert line in text, text


def test_the_openapi_description_lists_the_routes(client):
    schema = client.get("/openapi.json").json()
    assert schema["openapi"] == "3.0.0"
    for path in ("/v2/models/{name}/infer", "/predict", "/v2/health/ready", "/metrics"):
        assert path in schema["paths"], sorted(schema["paths"])
    assert "summary" in schema["paths"]["/v2/models/{name}/infer"]["post"]


def test_the_page_is_served_whole_and_needs_nothing_from_elsewhere(client):
    html = client.get("/").text
    for marker in ('id="canvas"', 'id="prediction"', 'id="clear"', "/static/page.js"):
        assert marker in html
    assert 'href="/v2/models/mnist"' in html
    for path in ("/static/page.js", "/static/page.css"):
        answer = client.get(path)
        assert answer.status_code == 200
        assert not re.search(r"https?://", answer.text), path
    assert not re.search(r"(src|href)=\"https?://", html)


def test_batched_answers_equal_unbatched_ones(served):
    pipe, data, images = served

    async def fire(app, n):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            answers = await asyncio.gather(
                *(c.post(INFER, json=_request(images[i : i + 1])) for i in range(n))
            )
            metrics = (await c.get("/metrics")).text
        return [a.json()["outputs"] for a in answers], metrics

    async def both():
        batched_app = create_app(
            ServedModel(data), ServeOptions(max_batch_size=16, max_latency_ms=50)
        )
        async with batched_app.router.lifespan_context(batched_app):
            batched, metrics = await fire(batched_app, 48)
        single, _ = await fire(
            create_app(ServedModel(data), ServeOptions(max_batch_size=1)), 48
        )
        return batched, single, metrics

    batched, single, metrics = asyncio.run(both())
    assert batched == single
    # Requests were combined: no batch of one image only.
    ones = re.search(r'sk_mnist_batch_size_bucket\{le="1.0"\} (\S+)', metrics)
    total = re.search(r"sk_mnist_batch_size_count (\S+)", metrics)
    assert float(ones.group(1)) < float(total.group(1)) <= 48 / 2


@pytest.fixture(scope="module")
def other_labels(mnist_train):
    """Tiny pipelines fitted with string and with boolean labels."""
    X, y = mnist_train[0][:600], mnist_train[1][:600]
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    fitted = {}
    for kind, labels in {"str": names[y], "bool": y >= 5}.items():
        pipe = make_pipeline(
            MNISTFlattener(),
            KerasMLPClassifier(hidden_layer_sizes=(8,), epochs=1, random_state=0),
        ).fit(X, labels)
        fitted[kind] = pipe, to_onnx(pipe, images=True).SerializeToString()
    return fitted


@pytest.mark.parametrize(
    ("kind", "datatype", "python_type"),
    [("str", "BYTES", str), ("bool", "BOOL", bool)],
)
def test_predict_and_infer_answer_string_and_boolean_labels_as_json_values(
    other_labels, served, kind, datatype, python_type
):
    pipe, data = other_labels[kind]
    images = served[2][:5]
    png = _png(255 - images[3])
    with TestClient(create_app(ServedModel(data)), base_url=BASE) as client:
        answer = client.post("/predict", content=png)
        infer = client.post(INFER, json=_request(images)).json()
        meta = client.get("/v2/models/mnist").json()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = pipe.predict(read_digit_image(png)[None]).tolist()[0]
    assert type(body["label"]) is python_type
    assert body["label"] == expected
    assert body["classes"] == pipe.classes_.tolist()
    label = infer["outputs"][0]
    assert label["datatype"] == meta["outputs"][0]["datatype"] == datatype
    assert label["data"] == pipe.predict(images).tolist()


def test_server_metadata_and_binary_tensors_are_served(client, served):
    pipe, _, images = served
    meta = client.get("/v2").json()
    assert meta["name"] == "sk-mnist"
    assert "binary_tensor_data" in meta["extensions"]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "X",
                    "shape": [20, 28, 28],
                    "datatype": "UINT8",
                    "parameters": {"binary_data_size": 20 * 784},
                }
            ],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
        }
    ).encode()
    answer = client.post(
        INFER,
        content=header + images[:20].tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    (label,) = json.loads(answer.content[:length])["outputs"]
    assert label["parameters"]["binary_data_size"] == 20 * 8
    labels = np.frombuffer(answer.content[length:], "<i8")
    np.testing.assert_array_equal(labels, pipe.predict(images[:20]))
