"""Reading photos or drawings of digits into MNIST-like 28x28 images."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np

from .._utils._files import check_regular_file
from ..exceptions import DataFileError

#: MNIST's digits fill a 20x20 box (their longer side), placed in 28x28 so
#: that their centre of mass is at pixel (14, 14): measured on the training
#: set, the centres have mean (13.99, 14.00), from MNIST's whole-pixel shifts.
_BOX = 20
_CENTRE = 14.0
#: Ink below this fraction of the darkest stroke is paper texture or noise.
_INK = 0.05
#: The largest image read: a 4000x3000 phone photo with room to spare.
MAX_PIXELS = 25_000_000
#: The formats Pillow may decode: rasters it reads itself. PostScript (EPS)
#: would start Ghostscript, and vector or document formats have no pixels.
RASTER_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO")


def read_digit_image(source) -> np.ndarray:
    """Read an image of one digit as an MNIST-style 28x28 uint8 array.

    Pillow decodes the image. What MNIST itself did to its digits, which no
    library offers as one call, is written here: light ink on a dark
    background (inverted when the border is light, the paper's grey level
    removed), the digit cropped to its ink, scaled with anti-aliasing to fit
    a 20x20 box with its aspect ratio kept, and placed in a 28x28 image with
    its centre of mass, to a fraction of a pixel, at pixel (14, 14).

    ``sk-mnist predict`` and ``sk-mnist serve`` read images with this
    function, so a model answers the same digit the same way everywhere.

    Parameters
    ----------
    source : str, path-like, bytes or binary file object
        A PNG, JPEG, GIF, BMP, TIFF, WebP, PPM/PGM, TGA or ICO image; any
        size, dark or light background, or strokes on a transparent one.

    Returns
    -------
    ndarray of shape (28, 28), dtype uint8
        Pixels 0..255, ink bright.

    Raises
    ------
    DataFileError
        The file is missing, not an image of those formats (PostScript is
        refused: it would run Ghostscript), larger than 25 million pixels,
        or blank.

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
    gray, origin = _decode(source)
    return _as_mnist(gray, origin)


def _decode(source):
    """Grey levels of the image (float32), and its name for messages."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, bytes | bytearray | memoryview):
        source, origin = io.BytesIO(source), "the image"
    elif hasattr(source, "read"):
        origin = "the image"
    else:
        try:
            source = check_regular_file(source, what="image file")
        except (OSError, ValueError) as exc:
            raise DataFileError(str(exc)) from None
        origin = os.fspath(source)
    too_large = f"{origin}: the image is too large to read as a digit"
    try:
        with warnings.catch_warnings():
            # Pillow warns of (and past twice its limit refuses) huge images
            # at open; the size is checked here against a far lower bound.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source, formats=RASTER_FORMATS) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise DataFileError(
                        f"{too_large} ({width}x{height} pixels; at most "
                        f"{MAX_PIXELS:,})."
                    )
                image.load()
                return _grey(image), origin
    except Image.DecompressionBombError as exc:
        raise DataFileError(f"{too_large} ({exc})") from None
    except UnidentifiedImageError:
        raise DataFileError(
            f"{origin}: not a readable image (sk-mnist reads "
            f"{', '.join(RASTER_FORMATS)} files)."
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataFileError(f"{origin}: not a readable image ({exc}).") from None


def _as_mnist(gray, origin):
    """Light ink on black, cropped, in a 20x20 box, centred by mass in 28x28."""
    from PIL import Image
    from scipy import ndimage

    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 127:
        gray, border = 255.0 - gray, 255.0 - border
    gray -= np.median(border)
    np.clip(gray, 0, 255, out=gray)
    ink = gray > _INK * gray.max() if gray.max() > 0 else np.zeros_like(gray, bool)
    if not ink.any():
        raise DataFileError(f"{origin}: the image is blank; no digit found.")
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
        raise DataFileError(f"{origin}: the image is blank; no digit found.")
    centre_y, centre_x = ndimage.center_of_mass(canvas)
    canvas = ndimage.shift(
        canvas, (_CENTRE - centre_y, _CENTRE - centre_x), order=1, mode="constant"
    )
    canvas = np.clip(canvas, 0, None)
    canvas *= 255.0 / canvas.max()
    return canvas.round().astype(np.uint8)


def _grey(image):
    """Grey levels of ``image``; for a drawing on a transparent background, its alpha.

    Such a drawing has its ink in the alpha channel, whatever the colour of
    its strokes: converting it to grey directly can lose the ink entirely.
    """
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32)
        if alpha.min() < 255:
            return alpha
    return np.asarray(image.convert("L"), dtype=np.float32)
