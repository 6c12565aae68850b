"""The draw-a-digit page in a real browser: Playwright driving the system Chromium.

No browser is downloaded: Playwright launches Debian's ``chromium``
(``.ci/run`` installs it). Without it this module is skipped, unless
``SK_MNIST_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets) makes that a failure.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import threading

import numpy as np
import pytest
import uvicorn
from _graphs import mlp_graph

from sk_mnist.onnx import to_onnx
from sk_mnist.serving import ServedModel
from sk_mnist.serving.app import create_app

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if _CHROMIUM is None:
    if os.environ.get("SK_MNIST_REQUIRE_BROWSER") == "1":
        raise RuntimeError("SK_MNIST_REQUIRE_BROWSER=1 but no chromium is installed")
    pytest.skip(
        "no system Chromium (apt-get install chromium)", allow_module_level=True
    )

sync_api = pytest.importorskip("playwright.sync_api")

# As the probe of this machine found: no background networking (the machine
# has no network), no sandbox (root), no GPU.
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def _serving(model):
    """``model`` served by uvicorn on a free loopback port: its URL."""
    config = uvicorn.Config(
        create_app(model), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
        assert thread.is_alive()
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def url(digit_reader):
    with _serving(
        ServedModel(to_onnx(digit_reader, images=True).SerializeToString())
    ) as url:
        yield url


@contextlib.contextmanager
def _browser_page(url):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_CHROMIUM, args=_FLAGS)
        page = browser.new_page(viewport={"width": 900, "height": 700})
        problems = []
        page.on(
            "console",
            lambda m: m.type == "error" and problems.append(f"console: {m.text}"),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        page.on(
            "response",
            lambda r: r.status >= 400 and problems.append(f"{r.status}: {r.url}"),
        )
        page.goto(url)
        page.problems = problems
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def page(url):
    with _browser_page(url) as page:
        yield page


def _stroke(page, points):
    """Draw one stroke through ``points`` (fractions of the canvas) with the mouse."""
    box = page.locator("#canvas").bounding_box()

    def at(fx, fy):
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(*point), steps=8)
    page.mouse.up()


def _oval(cx, cy, rx, ry, n=24):
    return [
        (
            cx + rx * math.sin(2 * math.pi * i / n),
            cy - ry * math.cos(2 * math.pi * i / n),
        )
        for i in range(n + 1)
    ]


# Each digit as strokes a person would draw, in fractions of the canvas.
DIGITS = {
    "0": [_oval(0.5, 0.5, 0.22, 0.33)],
    "1": [[(0.5, 0.15), (0.5, 0.85)]],
    "7": [[(0.25, 0.18), (0.75, 0.18), (0.45, 0.85)]],
    "4": [[(0.6, 0.15), (0.25, 0.6), (0.8, 0.6)], [(0.62, 0.35), (0.62, 0.88)]],
}


def _shown(page, digit):
    page.wait_for_function(
        "expected => document.getElementById('prediction').textContent === expected",
        arg=digit,
        timeout=15_000,
    )


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_a_drawn_digit_is_read_when_the_stroke_ends(page, digit):
    for stroke in DIGITS[digit]:
        _stroke(page, stroke)
    _shown(page, digit)
    bars = page.locator("#bars li")
    assert bars.count() == 10
    assert page.locator("#bars li.best span").first.text_content() == digit
    assert page.problems == []


def test_clear_wipes_the_drawing_and_the_result(page):
    _stroke(page, DIGITS["1"][0])
    _shown(page, "1")
    page.click("#clear")
    assert page.locator("#prediction").text_content() == "\u2013"
    assert page.locator("#bars li").count() == 0
    blank = page.evaluate(
        "() => { const c = document.getElementById('canvas');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " return d.every(v => v === 0); }"
    )
    assert blank
    assert page.problems == []


def test_a_late_answer_to_an_earlier_drawing_never_overwrites_the_current_one(page):
    held = []

    def hold_the_first(route):
        if not held:
            held.append(route)  # answered only later
        else:
            route.continue_()

    page.route("**/predict", hold_the_first)
    _stroke(page, DIGITS["7"][0])  # its answer is held back
    page.click("#clear")
    _stroke(page, DIGITS["1"][0])
    _shown(page, "1")
    held[0].continue_()  # the stale answer arrives now
    page.wait_for_timeout(1000)
    assert page.locator("#prediction").text_content() == "1"
    assert page.locator("#bars li.best span").first.text_content() == "1"
    assert page.problems == []


@pytest.mark.parametrize(
    ("classes", "shown"),
    [
        (["zero", "one", "two", "three", "four"], None),
        ([False, True], ["false", "true"]),
    ],
    ids=["strings", "booleans"],
)
def test_the_page_shows_string_and_boolean_labels(classes, shown):
    """Any label kind export writes is shown as the server answers it (the
    model's weights are random: what matters is what the page shows)."""
    shown = shown or classes
    model = ServedModel(mlp_graph(classes=classes))
    with _serving(model) as url, _browser_page(url) as page:
        _stroke(page, DIGITS["7"][0])
        page.wait_for_function(
            "names => names.includes("
            "document.getElementById('prediction').textContent)",
            arg=shown,
            timeout=15_000,
        )
        names = page.locator("#bars li span:first-child").all_text_contents()
        assert names == shown
        best = page.locator("#bars li.best span").first.text_content()
        assert best == page.locator("#prediction").text_content()
        assert page.problems == []


def _alpha(page, selector):
    """The alpha channel of a canvas, as an array of its pixels."""
    width, height, alpha = page.evaluate(
        "selector => { const c = document.querySelector(selector);"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " return [c.width, c.height, Array.from(d.filter((_, i) => i % 4 === 3))]; }",
        selector,
    )
    return np.asarray(alpha).reshape(height, width)


def _maps_shown(page, n):
    page.wait_for_function(
        "n => document.getElementById('map').dataset.shown === String(n)",
        arg=n,
        timeout=15_000,
    )


def test_the_map_of_which_pixels_decided_follows_the_strokes(page):
    from scipy import ndimage

    _stroke(page, DIGITS["1"][0])
    _shown(page, "1")
    assert page.locator("#map").is_hidden()  # the toggle is off: nothing asked
    assert _alpha(page, "#map").max() == 0
    page.check("#explain")
    _maps_shown(page, 1)
    assert page.locator("#map").is_visible()
    ink, shown = _alpha(page, "#canvas") > 0, _alpha(page, "#map") > 0
    # One pixel of the 28x28 map is (longer side of the ink) / 20 pixels here.
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    cell = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / 20
    near = ndimage.binary_dilation(ink, iterations=int(2.5 * cell))
    assert shown.sum() > 0.5 * ink.sum()
    assert (shown & near).sum() > 0.95 * shown.sum()  # over the strokes...
    assert (shown & ink).sum() > 0.8 * ink.sum()  # ...and all along them
    # A second stroke, the bar of a 7 to the left at the top: the map follows.
    left_top = np.zeros_like(ink)
    left_top[: int(0.25 * ink.shape[0]), : int(0.4 * ink.shape[1])] = True
    assert not (shown & left_top).any()
    _stroke(page, [(0.2, 0.15), (0.5, 0.15)])
    _maps_shown(page, 2)
    ink, shown = _alpha(page, "#canvas") > 0, _alpha(page, "#map") > 0
    assert (shown & left_top).sum() > 0.5 * (ink & left_top).sum() > 0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    cell = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / 20
    near = ndimage.binary_dilation(ink, iterations=int(2.5 * cell))
    assert (shown & near).sum() > 0.95 * shown.sum()
    # Off hides and wipes the map; Clear wipes it too.
    page.uncheck("#explain")
    assert page.locator("#map").is_hidden()
    assert _alpha(page, "#map").max() == 0
    page.check("#explain")
    _maps_shown(page, 3)
    page.click("#clear")
    assert _alpha(page, "#map").max() == 0
    assert page.problems == []


def test_a_new_stroke_wipes_the_map_of_the_drawing_before_it(page):
    # The map of the first drawing must not stay over the changed drawing
    # while the changed drawing's /explain fails (or has not answered yet).
    _stroke(page, DIGITS["1"][0])
    page.check("#explain")
    _maps_shown(page, 1)
    assert _alpha(page, "#map").max() > 0
    page.route(
        "**/explain",
        lambda route: route.fulfill(
            status=503, content_type="application/json", body='{"error": "busy"}'
        ),
    )
    _stroke(page, [(0.2, 0.15), (0.5, 0.15)])
    page.wait_for_function(
        "() => document.getElementById('status').textContent === 'busy'",
        timeout=15_000,
    )
    assert _alpha(page, "#map").max() == 0
    assert page.locator("#map").get_attribute("data-shown") == "1"
