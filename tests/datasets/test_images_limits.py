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
    try:
        declared = decoded_size(data)
        read_digit_image(data)
        error = None
    except DataFileError as exc:
        declared, error = None, str(exc)
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
