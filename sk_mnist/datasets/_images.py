"""Reading photos or drawings of digits into MNIST-like 28x28 images."""

from __future__ import annotations

import warnings

import numpy as np

from .._utils._files import check_regular_file
from ..exceptions import DataFileError

_BOX = 20  # MNIST digits fit a 20x20 box centred by mass in 28x28
#: The largest image read: a 4000x3000 phone photo with room to spare.
MAX_PIXELS = 25_000_000
#: The formats Pillow may decode: rasters it reads itself. PostScript (EPS)
#: would start Ghostscript, and vector or document formats have no pixels.
RASTER_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO")


def read_digit_image(path) -> np.ndarray:
    """Read an image file of one digit as an MNIST-style 28x28 uint8 array.

    Pillow decodes the file. What MNIST itself did to its digits, which no
    library offers as one call, is written here: light ink on a dark
    background (inverted when the border is light), the digit cropped,
    scaled to fit a 20x20 box with its aspect ratio kept, and placed in a
    28x28 image with its centre of mass at the centre.

    Parameters
    ----------
    path : str or path-like
        A PNG, JPEG, GIF, BMP, TIFF, WebP, PPM/PGM, TGA or ICO file; any
        size, dark or light background.

    Returns
    -------
    ndarray of shape (28, 28), dtype uint8
        Pixels 0..255, ink bright.

    Raises
    ------
    DataFileError
        The file is missing, not an image of those formats (PostScript is
        refused: it would run Ghostscript), too large, or blank.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        path = check_regular_file(path, what="image file")
    except (OSError, ValueError) as exc:
        raise DataFileError(str(exc)) from None
    too_large = f"{path}: the image is too large to read as a digit"
    try:
        with warnings.catch_warnings():
            # Pillow warns of (and past twice its limit refuses) huge images
            # at open; the size is checked here against a far lower bound.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=RASTER_FORMATS) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise DataFileError(
                        f"{too_large} ({width}x{height} pixels; at most "
                        f"{MAX_PIXELS:,})."
                    )
                image.load()
                gray = _grey(image)
    except Image.DecompressionBombError as exc:
        raise DataFileError(f"{too_large} ({exc})") from None
    except UnidentifiedImageError:
        raise DataFileError(
            f"{path}: not a readable image (sk-mnist reads "
            f"{', '.join(RASTER_FORMATS)} files)."
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataFileError(f"{path}: not a readable image ({exc}).") from None
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 127:
        gray = 255.0 - gray
    gray -= np.median(border if border.mean() <= 127 else 255.0 - border)
    np.clip(gray, 0, 255, out=gray)
    ink = gray > 0.2 * gray.max() if gray.max() > 0 else np.zeros_like(gray, bool)
    if not ink.any():
        raise DataFileError(f"{path}: the image is blank; no digit found.")
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    digit = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = digit.shape
    factor = _BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    scaled = Image.fromarray(digit.astype(np.uint8)).resize(
        size, Image.Resampling.LANCZOS
    )
    scaled = np.asarray(scaled, dtype=np.float32)
    canvas = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - scaled.shape[0]) // 2, (28 - scaled.shape[1]) // 2
    canvas[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    total = canvas.sum()
    if total > 0:
        ys, xs = np.indices(canvas.shape)
        shift_y = int(round(13.5 - (ys * canvas).sum() / total))
        shift_x = int(round(13.5 - (xs * canvas).sum() / total))
        canvas = _shift(canvas, shift_y, shift_x)
    if canvas.max() > 0:
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


def _shift(image, dy, dx):
    """Shift ``image`` by whole pixels, filling with zeros (no wrap-around)."""
    out = np.zeros_like(image)
    h, w = image.shape
    src_y = slice(max(0, -dy), min(h, h - dy))
    dst_y = slice(max(0, dy), min(h, h + dy))
    src_x = slice(max(0, -dx), min(w, w - dx))
    dst_x = slice(max(0, dx), min(w, w + dx))
    out[dst_y, dst_x] = image[src_y, src_x]
    return out
