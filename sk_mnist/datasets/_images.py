"""Reading photos or drawings of digits into MNIST-like 28x28 images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import DataFileError

_BOX = 20  # MNIST digits fit a 20x20 box centred by mass in 28x28


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
        A PNG, JPEG or any format Pillow reads; any size, dark or light
        background.

    Returns
    -------
    ndarray of shape (28, 28), dtype uint8
        Pixels 0..255, ink bright.

    Raises
    ------
    DataFileError
        The file is missing, not an image, or blank.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            gray = np.asarray(image.convert("L"), dtype=np.float32)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such image file.") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
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
