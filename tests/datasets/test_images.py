"""Reading a photo or drawing of one digit: any size, background, transparency."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image

from sk_mnist.datasets import read_digit_image
from sk_mnist.datasets._images import MAX_PIXELS, decoded_size
from sk_mnist.exceptions import DataFileError


def _digit():
    """A thick 7 on a dark background, 28x28."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[5:9, 6:22] = 255
    for row in range(9, 24):
        image[row, 20 - (row - 9) // 2 : 23 - (row - 9) // 2] = 255
    return image


def test_a_dark_digit_on_light_paper_reads_as_mnist_does(tmp_path):
    path = tmp_path / "seven.png"
    Image.fromarray(255 - _digit()).resize((140, 140)).save(path)
    image = read_digit_image(path)
    assert image.shape == (28, 28)
    assert image.dtype == np.uint8
    assert image[0].max() == 0
    assert image.max() == 255


def test_a_drawing_on_a_transparent_background_uses_its_alpha_as_ink(tmp_path):
    ink = _digit()
    for colour in (0, 255):  # black strokes, then white strokes
        rgba = np.zeros((28, 28, 4), dtype=np.uint8)
        rgba[..., :3] = colour
        rgba[..., 3] = ink
        path = tmp_path / f"drawing-{colour}.png"
        Image.fromarray(rgba, "RGBA").resize((112, 112)).save(path)
        opaque = tmp_path / "opaque.png"
        Image.fromarray(ink).resize((112, 112)).save(opaque)
        np.testing.assert_array_equal(read_digit_image(path), read_digit_image(opaque))


def _png_header_only(path, width, height):
    """A PNG whose header declares width x height and whose data is tiny."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(1000)))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_a_huge_image_is_refused_from_its_header_in_one_line(tmp_path, side):
    # 20,000 x 20,000 is past twice Pillow's own limit, which Pillow refuses
    # at open: the message still quotes sk-mnist's limit, not Pillow's.
    path = _png_header_only(tmp_path / "huge.png", side, side)
    # A file is named once; bytes (a server's upload) are "the image", once.
    for source, start in (
        (path, f"{path}: the image"),
        (path.read_bytes(), "the image"),
    ):
        for read in (read_digit_image, decoded_size):
            with pytest.raises(DataFileError) as error:
                read(source)
            message = str(error.value)
            assert message.startswith(f"{start} is too large to read as a digit: ")
            assert f"{MAX_PIXELS:,}" in message
            assert "\n" not in message
            assert "the image: the image" not in message
            assert f"{Image.MAX_IMAGE_PIXELS:,}" not in message
            assert str(Image.MAX_IMAGE_PIXELS) not in message
    assert side * side > MAX_PIXELS


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("not an image"), "not a readable image"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: None, "no such image file"),
        (lambda p: Image.new("L", (50, 50), 255).save(p, "PNG"), "blank"),
    ],
    ids=["text", "fifo", "folder", "missing", "blank"],
)
def test_what_is_not_a_digit_image_is_a_clear_error(tmp_path, make, message):
    path = tmp_path / "digit.png"
    make(path)
    with pytest.raises(DataFileError, match=message):
        read_digit_image(path)


def test_postscript_is_refused_without_starting_ghostscript(tmp_path, monkeypatch):
    # Pillow hands EPS files to Ghostscript; the reader never lets it open one.
    from PIL import EpsImagePlugin

    def ghostscript(*args, **kwargs):
        pytest.fail("Ghostscript was asked to render the file")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    eps = tmp_path / "digit.eps"
    eps.write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n"
        b"newpath 4 4 moveto 24 24 lineto stroke showpage\n%%EOF\n"
    )
    with pytest.raises(
        DataFileError, match=r"not a readable image \(sk-mnist reads PNG"
    ):
        read_digit_image(eps)


def _render(image, style, rng):
    """A 28x28 MNIST digit as a person's picture of it: 4-12x larger, off-centre."""
    factor = int(rng.integers(4, 13))
    big = np.asarray(
        Image.fromarray(image).resize(
            (28 * factor, 28 * factor), Image.Resampling.BILINEAR
        )
    )
    side = int(28 * factor * rng.uniform(1.3, 2.5))
    top, left = (int(rng.integers(0, side - 28 * factor + 1)) for _ in range(2))
    ink = np.zeros((side, side), np.uint8)
    ink[top : top + 28 * factor, left : left + 28 * factor] = big
    paper = 1 - ink / 255.0
    if style == "dark-on-light":
        return Image.fromarray(255 - ink)
    if style == "grey-paper":
        return Image.fromarray((rng.uniform(180, 230) * paper).astype(np.uint8))
    if style == "rgb":
        rgb = np.stack([250 * paper, 245 * paper, 235 * paper], axis=-1)
        return Image.fromarray(rgb.astype(np.uint8), "RGB")
    if style == "transparent":
        strokes = np.zeros((side, side, 4), np.uint8)
        strokes[..., 2] = 120
        strokes[..., 3] = ink
        return Image.fromarray(strokes, "RGBA")
    return Image.fromarray(ink)


@pytest.mark.parametrize(
    "style", ["light-on-dark", "dark-on-light", "grey-paper", "rgb", "transparent"]
)
def test_real_test_digits_drawn_large_and_off_centre_read_as_the_clean_ones(
    digit_reader, mnist_test, style
):
    # 300 real test digits, each scaled up 4-12x, placed at random on a larger
    # canvas and drawn as the style says, then read back: the network must
    # lose less than 1 point of accuracy against the clean digits.
    images, labels = mnist_test
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(images), 300, replace=False)
    clean = (digit_reader.predict(images[chosen]) == labels[chosen]).mean()
    read = []
    for i in chosen:
        buffer = io.BytesIO()
        _render(images[i], style, rng).save(buffer, format="PNG")
        read.append(read_digit_image(buffer.getvalue()))
    accuracy = (digit_reader.predict(np.stack(read)) == labels[chosen]).mean()
    assert clean > 0.95
    assert clean - accuracy < 0.01, (clean, accuracy)


def test_a_clean_mnist_digit_reads_back_nearly_unchanged(mnist_test):
    # MNIST's digits already are what the reader makes: their centre of mass
    # at (14, 14), their longer side 20 pixels.
    images, _ = mnist_test
    for image in images[:50]:
        read = read_digit_image(_png(image))
        assert np.abs(read.astype(int) - image).mean() < 12


def _png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("side", [2, 3, 4, 8, 12])
def test_a_speck_on_a_tiny_image_is_read(side):
    # The server warms its reader up on a 4x4 speck; small drawings are no
    # photos: their paper is their border, and they are not smoothed.
    image = np.zeros((side, side), np.uint8)
    image[side // 2, side // 2] = 255
    from scipy import ndimage

    digit = read_digit_image(_png(image))
    assert digit.max() == 255
    np.testing.assert_allclose(ndimage.center_of_mass(digit), (14, 14), atol=0.5)


def test_scikit_learn_s_8x8_digits_are_read():
    from sklearn.datasets import load_digits

    for image in load_digits().images[:300]:
        digit = read_digit_image(_png((image * 16).clip(0, 255).astype(np.uint8)))
        assert digit.max() == 255


#: The transposition that stores an upright picture under each EXIF
#: orientation (what a camera does), the inverse of what reading undoes.
_STORED_AS = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_90",
    7: "TRANSVERSE",
    8: "ROTATE_270",
}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("orientation", sorted(_STORED_AS))
def test_a_photo_is_read_upright_by_its_exif_orientation(fmt, orientation):
    # Before: the orientation was ignored, and a phone's portrait photo of
    # a 7 was read lying on its side.
    upright = np.full((200, 120), 255, np.uint8)
    upright[30:50, 20:100] = 0  # a 7: its bar
    upright[50:170, 80:100] = 0  # and its stem
    expected = read_digit_image(_encoded(Image.fromarray(upright), "PNG"))
    stored = Image.fromarray(upright).transpose(
        Image.Transpose[_STORED_AS[orientation]]
    )
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    data = _encoded(stored, fmt, exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as image:  # the tag is there
        assert image.getexif()[ExifTags.Base.Orientation] == orientation
    got = read_digit_image(data)
    assert np.abs(got.astype(int) - expected).max() <= 8, orientation


def _encoded(image, fmt, **save):
    buffer = io.BytesIO()
    if fmt != "PNG":
        save["quality"] = 95
    image.save(buffer, fmt, **save)
    return buffer.getvalue()
