"""The memory reading one image takes: declared before decoding, and held to."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from PIL import Image

from sk_mnist.datasets import read_digit_image
from sk_mnist.datasets._images import MAX_DECODED_BYTES, decoded_size
from sk_mnist.exceptions import DataFileError


def _chunk(kind, data):
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data))
    )


def _rgba16_bomb(side=5000):
    """The issue's bomb: a side x side RGBA PNG at 16 bits a sample, all
    zeros, about 194 KB; it decoded to about 220 MB before it was refused."""
    row = bytes(1 + side * 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def test_the_16_bit_rgba_bomb_is_refused_before_decoding_in_one_line():
    bomb = _rgba16_bomb()
    assert len(bomb) < 200_000
    for read in (read_digit_image, decoded_size):
        with pytest.raises(DataFileError) as error:
            read(bomb)
        message = str(error.value)
        # one line, wrapped once, sk-mnist's own limit quoted
        assert message.startswith(
            "the image is too large to read as a digit: 5000x5000 pixels"
        )
        assert "\n" not in message
        assert "the image: the image" not in message
        assert f"{MAX_DECODED_BYTES:,} bytes (64 MiB)" in message
        assert f"{Image.MAX_IMAGE_PIXELS:,}" not in message


#: Run in a fresh interpreter. The peak resident size is Linux's VmHWM, reset
#: (through /proc/self/clear_refs) just before the image is read, less the
#: resident size then: the memory reading took, whatever the imports' peak.
#: Pillow's plugins and scipy are loaded first, by reading a small image of
#: the same format.
_MEASURE = textwrap.dedent(
    """
    import io, json, sys
    from PIL import Image
    from sk_mnist.datasets._images import decoded_size, read_digit_image
    from sk_mnist.exceptions import DataFileError

    def status(key):
        with open("/proc/self/status") as lines:
            for line in lines:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024

    data = open(sys.argv[1], "rb").read()
    with Image.open(io.BytesIO(data)) as image:
        small, fmt = io.BytesIO(), image.format
    warm = Image.new("L", (64, 64), 255)
    warm.paste(0, (20, 10, 40, 50))
    warm.save(small, fmt)
    read_digit_image(small.getvalue())
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = status("VmRSS")
    declared = error = None
    try:
        declared = decoded_size(data)
        read_digit_image(data)
    except DataFileError as exc:
        error = str(exc)
    peak = status("VmHWM") - before
    print(json.dumps({"declared": declared, "peak": peak, "error": error}))
    """
)


def _measure(tmp_path, data):
    path = tmp_path / "image"
    path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def test_reading_the_bomb_allocates_almost_nothing(tmp_path):
    # Before the change, reading it raised the peak by about 270 MB.
    measured = _measure(tmp_path, _rgba16_bomb())
    assert measured["error"].startswith("the image is too large to read as a digit")
    assert measured["peak"] < 8 * 2**20, measured


def _large(fmt, mode, size=(3000, 2000), **save):
    """A dark digit-like stroke on light paper, large, saved as ``fmt``."""
    image = Image.linear_gradient("L").resize(size).point(lambda v: 160 + v // 4)
    image.paste(
        20, (size[0] // 3, size[1] // 5, size[0] // 3 + size[0] // 20, size[1] * 4 // 5)
    )
    if mode == "I;16":  # 16-bit levels: 0..255 scaled to 0..65535
        image = Image.fromarray(np.asarray(image, np.uint16) * 257)
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, fmt, **save)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode", "size"),
    [
        ("PNG", "RGB", (3000, 2000)),
        ("PNG", "RGBA", (3000, 2000)),
        ("PNG", "I;16", (3000, 2000)),
        ("JPEG", "RGB", (6000, 4000)),
        ("GIF", "P", (3000, 2000)),
        ("TIFF", "RGB", (3000, 2000)),
        ("WEBP", "RGB", (1500, 1000)),
        ("PNG", "L", (512, 512)),
    ],
    ids=[
        "png-rgb",
        "png-rgba",
        "png-16-bit",
        "jpeg-24-mp",
        "gif",
        "tiff",
        "webp",
        "working-size",  # no reduction: the reader's own arrays dominate
    ],
)
def test_reading_an_image_takes_at_most_its_declared_size(tmp_path, fmt, mode, size):
    # The peak resident memory while reading, measured in a fresh process,
    # stays within what decoded_size declared from the header (plus 2 MiB of
    # allocator slack), and what is declared stays under the limit.
    measured = _measure(tmp_path, _large(fmt, mode, size))
    assert measured["error"] is None, measured
    assert measured["declared"] <= MAX_DECODED_BYTES
    assert measured["peak"] <= measured["declared"] + 2 * 2**20, measured


def test_a_large_jpeg_is_decoded_small():
    # 24 million pixels: a JPEG decoder decodes it at an eighth of its size,
    # in grey, so it costs a few MB where the full colour image is 96 MB.
    jpeg = _large("JPEG", "RGB", (6000, 4000), quality=90)
    assert decoded_size(jpeg) < 8 * 2**20
    assert read_digit_image(jpeg).max() == 255


def test_a_file_object_is_left_where_it_was():
    data = _large("PNG", "L", (300, 200))
    stream = io.BytesIO(data)
    size = decoded_size(stream)
    assert stream.tell() == 0
    assert size == decoded_size(data)
    np.testing.assert_array_equal(read_digit_image(stream), read_digit_image(data))


def _progressive(mode, size, **save):
    """A progressive JPEG of one level: a few hundred bytes to a few KB."""
    buffer = io.BytesIO()
    Image.new(mode, size, 0).save(buffer, "JPEG", progressive=True, quality=1, **save)
    return buffer.getvalue()


def test_a_progressive_jpeg_is_charged_the_coefficients_its_decoder_holds(tmp_path):
    # The tester's bomb: a small progressive 4900x4900 JPEG cost about 137 MB
    # to decode (libjpeg holds every coefficient of a progressive image, two
    # bytes a pixel a component, however small draft() makes the output)
    # while decoded_size said about 5 MB. Grey, it takes about 48 MB: what is
    # declared covers what reading takes.
    bomb = _progressive("L", (4900, 4900))
    assert len(bomb) < 100_000
    measured = _measure(tmp_path, bomb)
    assert measured["peak"] > 40 * 2**20, measured  # the decoder's buffer
    assert measured["declared"] >= 4900 * 4900 * 2, measured
    assert measured["peak"] <= measured["declared"] + 2 * 2**20, measured


@pytest.mark.parametrize("subsampling", [0, 2], ids=["4:4:4", "4:2:0"])
def test_a_progressive_colour_jpeg_bomb_is_refused_before_decoding(
    tmp_path, subsampling
):
    # Colour: three components (at 4:2:0 the two chroma ones at a quarter).
    bomb = _progressive("RGB", (4900, 4900), subsampling=subsampling)
    measured = _measure(tmp_path, bomb)
    assert measured["error"].startswith(
        "the image is too large to read as a digit: a progressive (or "
        "multi-scan) JPEG of 4900x4900 pixels"
    ), measured
    assert "\n" not in measured["error"]
    assert measured["peak"] < 8 * 2**20, measured


def test_a_progressive_photo_of_12_megapixels_is_still_read():
    # A 4000x3000 progressive photo at 4:2:0 (what cameras and web tools
    # write) holds 36 MB of coefficients: under the limit, read.
    photo = _large("JPEG", "RGB", (4000, 3000), progressive=True, quality=90)
    assert 36_000_000 <= decoded_size(photo) <= MAX_DECODED_BYTES
    assert read_digit_image(photo).max() == 255


def _multi_scan(jpeg):
    """``jpeg`` (baseline, three components in one scan) with its first scan
    header saying it holds one component, as a JPEG whose components come in
    scans of their own begins. Only its header is read (decoded_size)."""
    start = jpeg.index(b"\xff\xda")
    length = int.from_bytes(jpeg[start + 2 : start + 4], "big")
    assert jpeg[start + 4] == 3
    scan = bytes([0, 8, 1]) + jpeg[start + 5 : start + 7] + bytes([0, 63, 0])
    return jpeg[: start + 2] + scan + jpeg[start + 2 + length :]


def test_a_jpeg_of_one_scan_per_component_is_charged_its_coefficients():
    baseline = _large("JPEG", "RGB", (4000, 3000), quality=90, subsampling=2)
    # Decoded at a quarter of its size, in grey, it takes about 10 MB; of one
    # scan a component, its 36 MB of coefficients (luma, two quarter chroma)
    # come on top.
    assert decoded_size(_multi_scan(baseline)) >= decoded_size(baseline) + 36_000_000


def test_a_progressive_mpo_is_charged_as_a_progressive_jpeg():
    # A phone's MPO (several JPEG pictures in one file) opens as Pillow's
    # MpoImageFile, format "MPO": it was charged as a baseline JPEG.
    buffer = io.BytesIO()
    Image.new("L", (4900, 4900)).save(
        buffer,
        "MPO",
        save_all=True,
        append_images=[Image.new("L", (64, 64))],
        progressive=True,
        quality=1,
    )
    assert decoded_size(buffer.getvalue()) >= 4900 * 4900 * 2
