"""POST /explain: the occlusion map of a drawn digit, from the ONNX model.

The route computes what :func:`sk_mnist.inspection.occlusion_attributions`
computes over the fitted pipeline, with onnxruntime only, bounded as
``/predict`` is (body size, the memory budget, the model's timeout).
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import threading

import httpx2 as httpx
import numpy as np
import pytest
from _graphs import mlp_graph
from PIL import Image
from starlette.testclient import TestClient

from sk_mnist.datasets import read_digit_image
from sk_mnist.inspection import occlusion_attributions
from sk_mnist.inspection._occlusion import occlusion_rows
from sk_mnist.onnx import to_onnx
from sk_mnist.serving import ServedModel, endpoints
from sk_mnist.serving._options import ServeOptions
from sk_mnist.serving.app import create_app

BASE = "http://127.0.0.1"


def _png(image):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def onnx_bytes(inspected_network):
    return to_onnx(inspected_network, images=True).SerializeToString()


@pytest.fixture(scope="module")
def client(onnx_bytes):
    app = create_app(ServedModel(onnx_bytes), ServeOptions(max_body_bytes=64 * 1024))
    with TestClient(app, base_url=BASE) as client:
        yield client


def test_explain_answers_the_map_the_pipeline_gives(
    client, inspected_network, mnist_test
):
    images, _ = mnist_test
    for image in images[:3]:
        png = _png(255 - image)  # dark ink on white paper, as drawn
        answer = client.post("/explain", content=png)
        assert answer.status_code == 200
        body = answer.json()
        digit = read_digit_image(png)[None]
        expected = occlusion_attributions(inspected_network, digit)
        assert body["label"] == int(expected.predicted[0])
        assert body["classes"] == list(range(10))
        np.testing.assert_allclose(
            body["probabilities"],
            inspected_network.predict_proba(digit)[0],
            atol=1e-5,
        )
        maps = np.asarray(body["attributions"])
        assert maps.shape == (28, 28)
        scale = np.abs(expected.attributions[0]).max()
        np.testing.assert_allclose(maps, expected.attributions[0], atol=1e-3 * scale)
        # Blank paper, far from the ink, has no say.
        far = np.ones((28, 28), bool)
        for r, c in np.argwhere(digit[0] > 0):
            far[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = False
        assert (maps[far] == 0).all()


def test_explain_charges_its_rows_to_the_memory_budget_and_releases_them(
    client, onnx_bytes, mnist_test
):
    images, _ = mnist_test
    budget = client.app.state.budget
    model = ServedModel(onnx_bytes)
    running = occlusion_rows((28, 28)) * (784 + model.bytes_per_image)
    model.close()
    assert client.post("/explain", content=_png(images[0])).status_code == 200
    assert budget.peak >= running
    assert budget.in_use == 0


def test_explain_over_a_small_budget_is_refused_and_predict_still_answers(
    onnx_bytes, mnist_test
):
    images, _ = mnist_test
    options = ServeOptions(memory_budget_bytes=1024**2)
    with TestClient(create_app(ServedModel(onnx_bytes), options), base_url=BASE) as c:
        refused = c.post("/explain", content=_png(images[0]))
        assert refused.status_code == 413
        assert "budget" in refused.json()["error"]
        assert c.post("/predict", content=_png(images[0])).status_code == 200
        assert c.app.state.budget.in_use == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "the body is empty"),
        (b"not an image at all", 400, "not a readable image"),
        (_png(np.zeros((28, 28))), 400, "blank"),
        (b"\x89PNG" + b"\0" * (64 * 1024), 413, "over this server's limit"),
    ],
    ids=["empty", "text", "blank", "over-the-body-limit"],
)
def test_explain_refuses_what_is_not_a_digit_image(client, body, status, message):
    answer = client.post("/explain", content=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert client.app.state.budget.in_use == 0


def test_explain_is_in_the_openapi_description(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "occlusion" in paths["/explain"]["post"]["summary"]


def test_the_served_explanation_imports_no_framework(onnx_bytes, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_bytes)
    png = tmp_path / "digit.png"
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 13:15] = 255
    png.write_bytes(_png(digit))
    code = (
        "import sys; from starlette.testclient import TestClient; "
        "from sk_mnist.serving import ServedModel; "
        "from sk_mnist.serving.app import create_app; "
        f"app = create_app(ServedModel.from_file({str(path)!r})); "
        "c = TestClient(app, base_url='http://127.0.0.1'); c.__enter__(); "
        f"r = c.post('/explain', content=open({str(png)!r}, 'rb').read()); "
        "assert r.status_code == 200, r.text; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_occlusion_is_built_and_averaged_off_the_event_loop(monkeypatch):
    # Before: the 730 occluded rows were built, and their drops averaged, on
    # the event loop, which answered nothing else meanwhile.
    threads = []

    class Recorded(endpoints.Occlusion):
        def __init__(self, *args, **kwargs):
            threads.append(threading.current_thread())
            super().__init__(*args, **kwargs)

        def attributions(self, *args, **kwargs):
            threads.append(threading.current_thread())
            return super().attributions(*args, **kwargs)

    monkeypatch.setattr(endpoints, "Occlusion", Recorded)
    app = create_app(ServedModel(mlp_graph()))
    digit = np.full((28, 28), 255, np.uint8)
    digit[6:22, 12:16] = 0

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.post("/explain", content=_png(digit))

    answer = asyncio.run(scenario())  # the event loop runs in this thread
    assert answer.status_code == 200, answer.text
    assert len(threads) == 2
    assert threading.main_thread() not in threads
