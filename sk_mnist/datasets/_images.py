"""Reading photos or drawings of digits into MNIST-like 28x28 images."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import struct
import warnings

import numpy as np

from .._utils._files import check_regular_file
from ..exceptions import DataFileError

#: MNIST's digits fill a 20x20 box (their longer side), placed in 28x28 so
#: that their centre of mass is at pixel (14, 14): measured on the training
#: set, the centres have mean (13.99, 14.00), from MNIST's whole-pixel shifts.
_BOX = 20
_CENTRE = 14.0
#: The largest image read: a 4000x3000 phone photo with room to spare. It
#: bounds the time spent decoding; the memory is bounded by the next limit.
MAX_PIXELS = 25_000_000
#: The most memory reading one image may take: the decoded pixels, in the
#: layout Pillow keeps them (one byte a pixel for grey or palette images,
#: two for 16-bit grey, four for colour, with or without alpha, and for
#: 32-bit samples), the single-band copy made of them, and the reader's own
#: working arrays. A 4000x3000 colour PNG (48 MB decoded) fits; a 5000x5000
#: one does not; a JPEG photo of any allowed size does, as it is decoded at
#: an eighth, a quarter or a half of its size.
MAX_DECODED_BYTES = 64 * 2**20
#: The formats Pillow may decode: rasters it reads itself. PostScript (EPS)
#: would start Ghostscript, and vector or document formats have no pixels.
RASTER_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO")
#: Images are reduced (while decoding for JPEG, right after for the others)
#: until their longer side is at most this: the digit ends up 20 pixels tall,
#: so 512 keeps a digit a tenth of a photo's width over 50 pixels across.
_WORKING_SIDE = 512
#: Copies of the decoded pixels that a decoder holds besides Pillow's image:
#: measured (peak resident memory while loading a 3000x2000 image, after a
#: first small image of the format): libwebp decodes into buffers of its own
#: and Pillow copies them, 4.0x the image; PNG, JPEG, GIF, BMP, TIFF (raw and
#: deflate), PPM and TGA peaked within 3% of the image.
_DECODER_COPIES = {"WEBP": 4}
#: Bytes per working pixel the reader itself holds at once after the image is
#: reduced: the grey levels and at most nine more float32 or int32 arrays of
#: that size (smoothed levels, background, ink, labels), and boolean masks.
_WORKING_BYTES = 48


def read_digit_image(source) -> np.ndarray:
    """Read an image of one digit as an MNIST-style 28x28 uint8 array.

    Pillow decodes the image. What MNIST itself did to its digits, which no
    library offers as one call, is written here: light ink on a dark
    background (inverted when the ink is darker than the paper, the paper's
    grey level removed), the digit cropped to its ink, scaled with
    anti-aliasing to fit a 20x20 box with its aspect ratio kept, and placed
    in a 28x28 image with its centre of mass, to a fraction of a pixel, at
    pixel (14, 14).

    ``sk-mnist predict`` and ``sk-mnist serve`` read images with this
    function, so a model answers the same digit the same way everywhere.

    Parameters
    ----------
    source : str, path-like, bytes or binary file object
        A PNG, JPEG, GIF, BMP, TIFF, WebP, PPM/PGM, TGA or ICO image; any
        size, dark or light background, or strokes on a transparent one;
        8 or 16 bits a sample, or 32-bit integers or floats.

    Returns
    -------
    ndarray of shape (28, 28), dtype uint8
        Pixels 0..255, ink bright.

    Raises
    ------
    DataFileError
        The file is missing, not an image of those formats (PostScript is
        refused: it would run Ghostscript), larger than 25 million pixels or
        than 64 MiB decoded (see :func:`decoded_size`), or blank.

    See Also
    --------
    MNISTFlattener : Turns these images into a classifier's features.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sk_mnist.datasets import read_digit_image
    >>> paper = np.full((200, 120), 255, dtype=np.uint8)
    >>> paper[30:170, 50:70] = 0  # a dark "1" on white paper
    >>> buffer = io.BytesIO()
    >>> Image.fromarray(paper).save(buffer, format="PNG")
    >>> digit = read_digit_image(buffer.getvalue())
    >>> digit.shape, digit.dtype, int(digit.max())
    ((28, 28), dtype('uint8'), 255)
    """
    with _opened(source) as (image, prefix):
        plan = _plan(image, prefix)
        gray = _decode(image, plan)
    return _as_mnist(gray, prefix)


def decoded_size(source) -> int:
    """The most bytes :func:`read_digit_image` holds while reading ``source``.

    Read from the image's header, without decoding it: the decoded pixels
    (after the reduction a JPEG decoder makes), the decoder's own copies, the
    single-band copy and the reduced image the reader makes, and its working
    arrays. A server charges this against its memory budget before it
    decodes the image.

    Parameters
    ----------
    source : str, path-like, bytes or binary file object
        What :func:`read_digit_image` reads. A file object is left where it
        was, so the same object can be read next.

    Returns
    -------
    int
        Bytes, at most ``MAX_DECODED_BYTES`` (64 MiB).

    Raises
    ------
    DataFileError
        The file is missing, not an image of the formats read, or larger
        than 25 million pixels or 64 MiB decoded.
    """
    with _opened(source) as (image, prefix):
        return _plan(image, prefix).nbytes


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How an image is decoded: what :func:`decoded_size` counts is what
    :func:`_decode` does, as both follow this one description."""

    #: The mode of the single-band, full-size copy, or None to use the image
    #: itself (already grey).
    single: str | None
    #: Take the alpha channel as the ink (strokes on a transparent background).
    alpha: bool
    #: The integer factor the image is reduced by (1: not reduced).
    factor: int
    #: Samples are scaled by this to grey levels 0..255 (None: 8-bit already,
    #: or floats scaled by their range, see ``_float_scale``).
    scale: float | None
    nbytes: int


#: Bytes a pixel of each Pillow mode takes in memory: Pillow keeps pixels of
#: more than one band, even two (LA, PA), in four bytes.
def _pixel_bytes(mode):
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _plan(image, prefix):
    """Check the declared size against sk-mnist's limits; plan the decoding."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise DataFileError(
            f"{prefix}the image is too large to read as a digit: its header declares "
            f"{width}x{height} pixels; sk-mnist reads at most {MAX_PIXELS:,}."
        )
    longer = max(width, height, 1)
    if longer > _WORKING_SIDE:
        # A JPEG decoder can decode at 1/2, 1/4 or 1/8 of the size (and grey
        # straight from the luma channel); Pillow chooses the smallest scale
        # still at least this size. Other formats ignore the call.
        image.draft(
            "L",
            (
                max(1, width * _WORKING_SIDE // longer),
                max(1, height * _WORKING_SIDE // longer),
            ),
        )
    else:
        image.draft("L", None)
    width, height = image.size
    mode = image.mode
    pixels = width * height
    transparent = "transparency" in image.info and mode in ("1", "L", "P", "RGB")
    # The single-band copy: none for one band of 8, 16 or 32 bits (their
    # samples scaled to 0..255 after the reduction); the alpha channel of a
    # transparent image (and its grey levels, should the alpha turn out to
    # be all opaque); the grey levels of the others.
    scale = None
    alpha = "A" in image.getbands() or transparent
    if mode.startswith("I;16") or mode == "I":
        single, copies = None, 0
        scale = 255.0 / (2.0 ** _bits(image) - 1)
    elif mode in ("F", "L"):
        single, copies = None, 0
    elif alpha:
        single, copies = "L", 2 + (4 if transparent else 0)
    else:
        # Pillow converts 1, P and RGB to grey directly; other modes (CMYK
        # JPEGs) may pass through RGB.
        single, copies = "L", 1 if mode in ("1", "P", "RGB") else 5
    factor = max(1, math.ceil(max(width, height) / _WORKING_SIDE))
    reduced = math.ceil(width / factor) * math.ceil(height / factor)
    band_bytes = 1 if single == "L" else _pixel_bytes(mode)
    nbytes = (
        pixels * _pixel_bytes(mode) * _DECODER_COPIES.get(image.format, 1)
        + pixels * copies
        + (reduced * band_bytes if factor > 1 else 0)
        + reduced * _WORKING_BYTES
    )
    if nbytes > MAX_DECODED_BYTES:
        raise DataFileError(
            f"{prefix}the image is too large to read as a digit: {width}x{height} "
            f"pixels of mode {mode} take {nbytes:,} bytes to read; sk-mnist "
            f"reads images of at most {MAX_DECODED_BYTES:,} bytes "
            f"({MAX_DECODED_BYTES // 2**20} MiB) decoded."
        )
    return _Plan(single=single, alpha=alpha, factor=factor, scale=scale, nbytes=nbytes)


def _bits(image):
    """Bits a sample of a 16- or 32-bit integer image: a TIFF says (12-bit
    scanners store 0..4095 in 16-bit samples); Pillow reads the others (PNG,
    16-bit PGM, whose other maximum values it scales to 65535) as 16-bit."""
    tags = getattr(image, "tag_v2", None)
    if tags is not None:
        bits = tags.get(258)
        bits = bits[0] if isinstance(bits, tuple) else bits
        if isinstance(bits, int) and 1 <= bits <= 32:
            return bits - (1 if tags.get(339, 1) == 2 and bits == 32 else 0)
    return 16


@contextlib.contextmanager
def _opened(source):
    """The image opened by Pillow (its header read), and its name for messages.

    Every error of Pillow's, at open or while decoding, becomes one
    DataFileError of one line.
    """
    from PIL import Image, UnidentifiedImageError

    stream, prefix, start = source, "", None
    if isinstance(source, bytes | bytearray | memoryview):
        stream = io.BytesIO(source)
    elif hasattr(source, "read"):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            start = source.tell()
    else:
        try:
            stream = check_regular_file(source, what="image file")
        except (OSError, ValueError) as exc:
            raise DataFileError(str(exc)) from None
        prefix = f"{os.fspath(stream)}: "
    try:
        with warnings.catch_warnings():
            # Pillow warns of huge images at open (and refuses those over
            # twice its own limit, far over sk-mnist's): the size is checked
            # in _plan against sk-mnist's limits.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream, formats=RASTER_FORMATS) as image:
                yield image, prefix
    except DataFileError:
        raise
    except Image.DecompressionBombError:
        raise DataFileError(
            f"{prefix}the image is too large to read as a digit: its header declares "
            f"more than {MAX_PIXELS:,} pixels, sk-mnist's limit."
        ) from None
    except UnidentifiedImageError:
        raise DataFileError(
            f"{prefix}not a readable image (sk-mnist reads "
            f"{', '.join(RASTER_FORMATS)} files)."
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise DataFileError(
            f"{prefix}not a readable image ({_one_line(exc)})."
        ) from None
    finally:
        if start is not None:
            with contextlib.suppress(OSError, ValueError):
                source.seek(start)


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _decode(image, plan):
    """Grey levels 0..255 (float32) of the image, reduced as planned."""
    from PIL import Image

    image.load()
    band = image
    if plan.alpha:
        with_alpha = image if "A" in image.getbands() else image.convert("LA")
        band = with_alpha.getchannel("A")
        if band.getextrema()[0] == 255:  # opaque after all: its grey levels
            band = with_alpha.convert("L")
        del with_alpha
    elif plan.single is not None:
        band = image.convert(plan.single)  # one band, full size
    if plan.factor > 1 and band.mode.startswith("I;16"):
        # Pillow cannot reduce 16-bit grey images, but resizes them, with the
        # same box average, without a 32-bit copy.
        width, height = band.size
        band = band.resize(
            (-(-width // plan.factor), -(-height // plan.factor)),
            Image.Resampling.BOX,
        )
    elif plan.factor > 1:
        # Pillow's reduce averages each factor x factor box: an anti-aliased
        # reduction, one pass over the pixels.
        band = band.reduce(plan.factor)
    gray = np.asarray(band, dtype=np.float32)
    del band
    if plan.scale is not None:
        gray *= np.float32(plan.scale)
    elif image.mode == "F":
        gray = _float_levels(gray)
    np.clip(gray, 0, 255, out=gray)
    return gray


def _float_levels(gray):
    """Grey levels of float samples, which have no bit depth to scale by.

    Floats in 0..1 are intensities (as TIFF writers and scikit-image store
    them), floats in 0..255 grey levels (as Pillow's own "F" images hold
    them), and any other range is stretched from its minimum to its maximum.
    """
    finite = np.isfinite(gray)
    if not finite.all():
        gray = np.where(finite, gray, 0).astype(np.float32)
    low, high = float(gray.min()), float(gray.max())
    if low >= 0 and high <= 1:
        return gray * np.float32(255)
    if low >= 0 and high <= 255:
        return gray
    return ((gray - low) * np.float32(255 / (high - low))).astype(np.float32)


def _as_mnist(gray, prefix):
    """Light ink on black, cropped, in a 20x20 box, centred by mass in 28x28."""
    from PIL import Image
    from scipy import ndimage

    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 127:
        gray, border = 255.0 - gray, 255.0 - border
    gray -= np.median(border)
    np.clip(gray, 0, 255, out=gray)
    ink = gray > 0.05 * gray.max() if gray.max() > 0 else np.zeros_like(gray, bool)
    if not ink.any():
        raise DataFileError(f"{prefix}the image is blank; no digit found.")
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    digit = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = digit.shape
    factor = _BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    # Lanczos on floats: an anti-aliased reduction (or enlargement) of the
    # grey levels, as MNIST's own normalisation anti-aliased its digits.
    scaled = Image.fromarray(digit.astype(np.float32), "F").resize(
        size, Image.Resampling.LANCZOS
    )
    scaled = np.clip(np.asarray(scaled, dtype=np.float32), 0, None)
    canvas = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - scaled.shape[0]) // 2, (28 - scaled.shape[1]) // 2
    canvas[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    if canvas.max() <= 0:
        raise DataFileError(f"{prefix}the image is blank; no digit found.")
    centre_y, centre_x = ndimage.center_of_mass(canvas)
    canvas = ndimage.shift(
        canvas, (_CENTRE - centre_y, _CENTRE - centre_x), order=1, mode="constant"
    )
    canvas = np.clip(canvas, 0, None)
    canvas *= 255.0 / canvas.max()
    return canvas.round().astype(np.uint8)
