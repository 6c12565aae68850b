"""Photos of a digit on paper: sensor noise, uneven light, grey paper, JPEG.

The renderings are made here from real MNIST test digits, as a phone camera
would see them drawn large and dark on a sheet of paper; the reader must read
them as well as clean renderings of the same digits.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sk_mnist.datasets import read_digit_image
from sk_mnist.exceptions import DataFileError


def _placed(digit, rng):
    """The digit's ink (0..1) drawn 4-10x larger at a random place on a
    canvas 1.3-2.5x its size."""
    factor = int(rng.integers(4, 11))
    side = 28 * factor
    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR)
    canvas = int(side * rng.uniform(1.3, 2.5))
    top, left = (int(rng.integers(0, canvas - side + 1)) for _ in range(2))
    ink = np.zeros((canvas, canvas), np.float32)
    ink[top : top + side, left : left + side] = np.asarray(big, np.float32) / 255
    return ink


def _light(shape, rng):
    """Uneven light across a sheet: a gradient in a random direction, a
    vignette darker towards the corners and the soft edge of a shadow."""
    height, width = shape
    y = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None]
    x = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    along = np.cos(angle) * x + np.sin(angle) * y
    light = 1 - rng.uniform(0.2, 0.4) * (along + 0.5)
    light *= 1 - rng.uniform(0.2, 0.4) * 2 * (x**2 + y**2)
    angle = rng.uniform(0, 2 * np.pi)
    across = np.cos(angle) * x + np.sin(angle) * y - rng.uniform(-0.3, 0.3)
    shadow = 0.5 + 0.5 * np.tanh(across / rng.uniform(0.02, 0.1))
    light *= 1 - rng.uniform(0.15, 0.3) * shadow
    return light.astype(np.float32)


def _photo(ink, rng):
    """The ink as a JPEG photo: dark pen on grey paper under uneven light,
    with sensor noise, tinted."""
    paper = rng.uniform(150, 215)
    pen = rng.uniform(15, 55)
    grey = (paper - (paper - pen) * ink) * _light(ink.shape, rng)
    grey += rng.uniform(6, 14) * rng.standard_normal(grey.shape, dtype=np.float32)
    tint = (1.0, rng.uniform(0.93, 1.0), rng.uniform(0.82, 0.95))
    rgb = Image.merge(
        "RGB",
        [Image.fromarray(np.clip(grey * c, 0, 255).astype(np.uint8)) for c in tint],
    )
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=int(rng.integers(60, 91)))
    return buffer.getvalue()


def _clean(ink):
    """The same ink as a clean scan: black on white, PNG."""
    buffer = io.BytesIO()
    Image.fromarray((255 * (1 - ink)).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _renderings(images, rng):
    """Clean and photo renderings of each digit, with the same placement."""
    clean, photos = [], []
    for digit in images:
        ink = _placed(digit, rng)
        clean.append(_clean(ink))
        photos.append(_photo(ink, rng))
    return clean, photos


def test_photos_of_digits_on_paper_read_as_well_as_clean_scans(
    digit_reader, mnist_test
):
    # 400 real test digits, each drawn 4-12x larger at a random place, as a
    # clean black-on-white scan and as a phone photo of grey paper under
    # uneven light, with noise and JPEG compression. The network must lose
    # less than 1 point of accuracy on the photos against the clean scans,
    # and against the digits themselves.
    images, labels = mnist_test
    rng = np.random.default_rng(27)
    chosen = rng.choice(len(images), 400, replace=False)
    clean, photos = _renderings(images[chosen], rng)
    truth = labels[chosen]
    accuracy = {
        "digits": (digit_reader.predict(images[chosen]) == truth).mean(),
        "clean": (
            digit_reader.predict(np.stack([read_digit_image(c) for c in clean]))
            == truth
        ).mean(),
        "photos": (
            digit_reader.predict(np.stack([read_digit_image(p) for p in photos]))
            == truth
        ).mean(),
    }
    assert accuracy["digits"] > 0.95, accuracy
    assert accuracy["clean"] - accuracy["photos"] < 0.01, accuracy
    assert accuracy["digits"] - accuracy["photos"] < 0.01, accuracy


def test_a_photo_of_blank_paper_is_blank():
    # Noise, a gradient, a vignette and a shadow are no digit.
    rng = np.random.default_rng(0)
    for _ in range(10):
        photo = _photo(np.zeros((400, 300), np.float32), rng)
        with pytest.raises(DataFileError, match="the image is blank; no digit found"):
            read_digit_image(photo)
