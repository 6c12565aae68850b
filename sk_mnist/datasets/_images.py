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
#: one does not; a baseline JPEG photo of any allowed size does, as it is
#: decoded at an eighth, a quarter or a half of its size (a progressive one
#: is also charged the coefficients its decoder holds: _coefficient_bytes).
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
#: The noise smoothed before ink is told from paper: a Gaussian of this
#: standard deviation, in pixels of the reduced image.
_NOISE_SIGMA = 1.0
#: The paper's light is estimated over windows of this fraction of the
#: image's shorter side: wider than any stroke of a digit in the image,
_BACKGROUND = 0.5
#: by a paraboloid dropping this many grey levels at the image's shorter
#: side from its centre (25 at a tenth of the side, 6 at a twentieth).
_CURVATURE = 2500.0
#: The paper's light is estimated on blocks: this many on the shorter side.
_BLOCKS = 64
#: and smoothed over this fraction of the shorter side (a shadow's edge is
#: kept to within about that).
_LIGHT_SIGMA = 0.03
#: Less contrast than this (of 255 grey levels) between ink and paper is a
#: blank page.
_MIN_CONTRAST = 8.0
#: The faint edges of strokes count down to this fraction of the ink's
#: contrast (or the paper's noise, if higher).
_FAINT = 0.05
#: The ink of the strokes' cores: this percentile of the strokes Otsu finds.
_WHITE = 75
#: The strokes' cores stand at least this many robust deviations of the
#: paper's noise above it: measured on the photo renderings of the tests,
#: strokes stood 14 or more, what blank sheets showed 10 or fewer.
_SIGNAL = 12.0
#: Ink components smaller than this fraction of the largest are not the digit.
_KEEP = 0.1
#: Bytes per working pixel the reader itself holds at once after the image is
#: reduced: the grey levels, the smoothed levels, the ink, two label arrays,
#: masks, and Pillow's and numpy's copies on the way. Measured peak: 27 to 29
#: bytes a pixel for 512x512 images (grey, colour, 16-bit PNG, JPEG).
_WORKING_BYTES = 48


def read_digit_image(source) -> np.ndarray:
    """Read an image of one digit as an MNIST-style 28x28 uint8 array.

    Pillow decodes the image, reduced to a 512-pixel side (a JPEG while it is
    decoded) and turned upright as its EXIF orientation says (as a phone stores
    a portrait photo). What MNIST itself did to its digits, which no library
    offers as one call, is written here: light ink on a dark background
    (inverted when the ink is darker than the paper; the paper's light, even or
    not, divided out), the digit found among noise and specks and cropped to its
    ink, scaled with anti-aliasing to fit a 20x20 box with its aspect ratio
    kept, and placed in a 28x28 image with its centre of mass, to a fraction of
    a pixel, at pixel (14, 14). Photos of a digit on paper (grey paper, uneven
    light, sensor noise) read as well as clean scans.

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
        than 64 MiB to read (see ``decoded_size``), or blank.

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
    coefficients, declared = _coefficient_bytes(image), (width, height)
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
        coefficients
        + pixels * _pixel_bytes(mode) * _DECODER_COPIES.get(image.format, 1)
        + pixels * copies
        + (reduced * band_bytes if factor > 1 else 0)
        + reduced * band_bytes  # turned upright (EXIF orientation)
        + reduced * _WORKING_BYTES
    )
    if nbytes > MAX_DECODED_BYTES:
        what = f"{width}x{height} pixels of mode {mode}"
        if coefficients:
            what = (
                f"a progressive (or multi-scan) JPEG of {declared[0]}x{declared[1]} "
                f"pixels, whose {coefficients:,} bytes of coefficients the decoder "
                f"holds whole,"
            )
        raise DataFileError(
            f"{prefix}the image is too large to read as a digit: {what} "
            f"take{'s' if coefficients else ''} {nbytes:,} bytes to read; sk-mnist "
            f"reads images of at most {MAX_DECODED_BYTES:,} bytes "
            f"({MAX_DECODED_BYTES // 2**20} MiB) decoded."
        )
    return _Plan(single=single, alpha=alpha, factor=factor, scale=scale, nbytes=nbytes)


def _coefficient_bytes(image):
    """Bytes libjpeg holds for the DCT coefficients of a whole JPEG.

    A baseline JPEG whose first scan holds every component is decoded a band
    of blocks at a time. A progressive one, or one whose components come in
    scans of their own, is not: libjpeg keeps every coefficient of the image
    until the last scan (two bytes each, one a pixel of each component at its
    own sampling), whatever ``draft`` asked (it only scales the output). A
    518-byte progressive 4900x4900 grey JPEG holds 48 MB so. Pillow reads the
    sampling factors (``layer``) and says whether it is progressive, not how
    its scans are laid out: ``_first_scan_components`` reads that.
    """
    from PIL import JpegImagePlugin

    # MPO files (a phone's several pictures in one JPEG) are JPEGs too.
    if not isinstance(image, JpegImagePlugin.JpegImageFile) or not image.layer:
        return 0
    progressive = image.info.get("progressive") or image.info.get("progression")
    if not progressive and _first_scan_components(image.fp) >= len(image.layer):
        return 0
    width, height = image.size  # as declared: before draft
    horizontal = max(h for _, h, _, _ in image.layer)
    vertical = max(v for _, _, v, _ in image.layer)
    # Whole MCUs (of 8x8 blocks at the largest sampling) across and down.
    across, down = (
        math.ceil(width / (8 * horizontal)),
        math.ceil(height / (8 * vertical)),
    )
    blocks = sum(across * h * down * v for _, h, v, _ in image.layer)
    return blocks * 64 * 2


def _first_scan_components(stream):
    """How many components the first scan of a JPEG holds (its SOS header).

    The markers are walked from the start of the file to the first start of
    scan; the stream is put back where it was. A file cut short before it
    counts as one component (the whole-image buffer is charged).
    """
    position = stream.tell()
    try:
        stream.seek(0)
        if stream.read(2) != b"\xff\xd8":
            return 1
        while True:
            byte = stream.read(1)
            if not byte:
                return 1
            if byte != b"\xff":
                continue
            marker = stream.read(1)
            while marker == b"\xff":  # fill bytes
                marker = stream.read(1)
            if not marker or marker == b"\x00" or 0xD0 <= marker[0] <= 0xD7:
                continue  # no segment: stuffed byte, restart markers
            length = stream.read(2)
            if len(length) < 2:
                return 1
            if marker == b"\xda":
                count = stream.read(1)
                return count[0] if count else 1
            stream.seek(int.from_bytes(length, "big") - 2, io.SEEK_CUR)
    finally:
        stream.seek(position)


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
    band = _upright(image, band)
    # A copy, always: of an "F" image (already float32) np.asarray would be a
    # read-only view of Pillow's pixels, which the steps below write to.
    gray = np.array(band, dtype=np.float32)
    del band
    if plan.scale is not None:
        gray *= np.float32(plan.scale)
    elif image.mode == "F":
        gray = _float_levels(gray)
    np.clip(gray, 0, 255, out=gray)
    return gray


#: The transposition that turns an image upright, by its EXIF orientation
#: (tag 274), as ``PIL.ImageOps.exif_transpose`` maps them. That function
#: transposes the full-size image (and its EXIF) into a copy; the reader
#: turns the reduced band instead, a copy of a 512-pixel side at most.
_ORIENTATIONS = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


def _upright(image, band):
    """``band`` (of ``image``, decoded) turned as its EXIF orientation says:
    a phone stores a portrait photo as a landscape one and this tag."""
    from PIL import ExifTags, Image

    orientation = image.getexif().get(ExifTags.Base.Orientation)
    method = _ORIENTATIONS.get(orientation)
    return band if method is None else band.transpose(Image.Transpose[method])


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

    ink, support = _ink(gray, prefix)
    rows, cols = (
        np.flatnonzero(support.any(axis=1)),
        np.flatnonzero(support.any(axis=0)),
    )
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
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


def _ink(gray, prefix):
    """The ink, bright on a black ground, and the pixels of the digit.

    A photo of a digit on paper is no clean scan: the paper is grey and lit
    unevenly (a gradient, darker corners, a shadow), the sensor adds noise,
    and a fixed fraction of the darkest stroke marks noise as ink. No library
    call turns such a picture into MNIST's ink, so the steps are here, each
    with the scipy.ndimage operation that does its part:

    1. Noise is smoothed (a Gaussian of one pixel) before anything is told
       apart, so single noisy pixels neither set the threshold nor pass it.
    2. Which is the ink: the side of the paper (the median of the border)
       with the farther extreme. Ink is the minority and far from the paper
       level; uneven light moves the paper's level less.
    3. The paper's own light is estimated at a large scale and removed: a
       morphological closing (opening for light ink) with a window half the
       image's shorter side removes every stroke narrower than that and keeps
       gradients, the rounded light of a vignette and a shadow's edge (as
       ImageJ's rolling-ball background does). Dark ink is then the fraction
       of that light it absorbs (the photo divided by its background, as a
       flat field is), so a stroke in a shadow is as dark as one in the light.
    4. The ink is told from the paper by Otsu's threshold on the image's own
       histogram (numpy and scipy have none; scikit-image's is a dependency
       for ten lines), then by hysteresis: the faint edges of the strokes
       down to just above the paper's noise (four robust deviations) are
       ink when they touch the strokes Otsu found.
    5. The digit is the largest ink components: those of at least a tenth of
       the largest, so a broken stroke stays and specks of dirt or noise go.
    """
    from scipy import ndimage

    # Under 64 pixels a side an image is a drawing (see _light), and a pixel a
    # good part of a stroke: it is not smoothed.
    photo = min(gray.shape) >= _BLOCKS
    smooth = ndimage.gaussian_filter(gray, _NOISE_SIGMA) if photo else gray.copy()
    blocks, step = _block_means(gray)
    dark_ink = _dark_ink(blocks)
    light = _light(blocks, step, gray.shape, dark_ink)
    if dark_ink:
        # Dark ink: the fraction of the light falling on the paper it absorbs.
        np.maximum(light, 1.0, out=light)
        ink = 255 * (1 - gray / light)
        smooth = 255 * (1 - smooth / light)
    else:
        ink = gray - light
        smooth -= light
    del light
    np.clip(ink, 0, 255, out=ink)
    np.clip(smooth, None, 255, out=smooth)  # signed: the paper's noise is measured
    peak = float(smooth.max())
    # Of a photo, every fourth pixel is enough for a histogram.
    sample = smooth[::2, ::2] if photo else smooth
    threshold = _otsu(sample) if peak > 0 else 0.0
    ground = sample[sample <= threshold]
    level = float(np.median(ground)) if ground.size else 0.0
    spread = 1.4826 * float(np.median(np.abs(ground - level))) if ground.size else 0.0
    del ground, sample
    if peak - level <= max(_MIN_CONTRAST, 6 * spread):
        raise DataFileError(f"{prefix}the image is blank; no digit found.")
    faint = min(threshold, level + max(4 * spread, _FAINT * (peak - level)))
    eight = np.ones((3, 3), bool)
    strokes, _ = ndimage.label(smooth > threshold, structure=eight)
    sizes = np.bincount(strokes.ravel())
    sizes[0] = 0
    kept = np.flatnonzero(sizes >= _KEEP * sizes.max())
    regions, _ = ndimage.label(smooth > faint, structure=eight)
    del smooth
    strong = np.isin(strokes, kept)
    touched = np.unique(regions[strong])
    del strokes
    # A pen's stroke is as dark as it gets over most of its width: its cores
    # are MNIST's full ink (255), however dark the pen was on that paper.
    cores = ink[strong]
    cores = cores[cores > threshold]
    white = float(np.percentile(cores, _WHITE) if cores.size else ink.max()) - level
    del strong, cores
    if white <= _SIGNAL * spread:  # what Otsu split off is the paper's noise
        raise DataFileError(f"{prefix}the image is blank; no digit found.")
    support = np.isin(regions, touched[touched > 0])
    del regions
    ink -= level
    np.clip(ink, 0, max(white, 1.0), out=ink)
    ink *= support
    # The digit's box: its own pixels above the faint level (the support,
    # found on the smoothed image, reaches a pixel or two beyond them).
    support &= ink > faint - level
    if not support.any():
        raise DataFileError(f"{prefix}the image is blank; no digit found.")
    return ink, support


def _block_means(gray, count=None):
    """The image as means of square blocks, ``count`` (``_BLOCKS``) on its
    shorter side (a 4x4 block averages the noise down 4 times; the light
    varies little within one), and the blocks' side."""
    height, width = gray.shape
    step = max(1, min(height, width) // (count or _BLOCKS))
    rows, cols = -(-height // step), -(-width // step)
    padded = np.pad(gray, ((0, rows * step - height), (0, cols * step - width)), "edge")
    return padded.reshape(rows, step, cols, step).mean(
        axis=(1, 3), dtype=np.float32
    ), step


def _extended(blocks, reach):
    """``blocks`` extended past its edges by odd reflection (2 x edge - mirror
    image): a gradient goes on as it went, where a mirror or a constant would
    make the edge a valley (or a ridge) that a closing (or a median) fills
    with the light of half a window inwards."""
    reach = min(reach, blocks.shape[0] - 1, blocks.shape[1] - 1)
    return np.pad(blocks, reach, mode="reflect", reflect_type="odd"), reach


def _enlarged(small, size, step):
    """``small`` (one value a block of ``step`` pixels) enlarged to ``size``
    (rows, columns) with bilinear interpolation."""
    from PIL import Image

    height, width = size
    enlarged = Image.fromarray(small.astype(np.float32), "F").resize(
        (width, height),
        Image.Resampling.BILINEAR,
        box=(0, 0, width / step, height / step),
    )
    return np.asarray(enlarged, dtype=np.float32).copy()


def _dark_ink(blocks):
    """Whether the ink is darker than the paper.

    Ink is the minority of the image and far from the paper around it: the
    paper's level is a median over windows of half the image (on blocks of
    4x4 blocks, so it is cheap), which follows the light without telling ink
    from paper; the ink is the side of it with the farther extreme.
    """
    from scipy import ndimage

    if min(blocks.shape) < _BLOCKS:  # a drawing: its paper is its border
        border = np.concatenate([blocks[0], blocks[-1], blocks[:, 0], blocks[:, -1]])
        darkest, lightest = np.percentile(blocks - np.median(border), [0.2, 99.8])
        return -darkest > lightest
    coarse, step = _block_means(blocks, 16)
    size = max(3, round(_BACKGROUND * min(coarse.shape)))
    extended, reach = _extended(coarse, size)
    paper = ndimage.median_filter(extended, size=size, mode="nearest")
    paper = paper[reach : reach + coarse.shape[0], reach : reach + coarse.shape[1]]
    difference = blocks - _enlarged(paper, blocks.shape, step)
    darkest, lightest = np.percentile(difference, [0.2, 99.8])
    return -darkest > lightest


def _light(blocks, step, size, dark_ink):
    """The paper's light (its level without the strokes) at each pixel.

    Estimated on the block means. A closing (an opening for light ink) over
    windows of half the shorter side removes the strokes; as it keeps the
    brightest noise of each window, it is only used to find the strokes
    (Otsu's threshold on the ink it leaves), and the light is then the
    Gaussian-weighted mean of the paper's blocks alone (a normalised
    convolution), enlarged back with bilinear interpolation.
    """
    from scipy import ndimage

    rows, cols = blocks.shape
    if min(rows, cols) < _BLOCKS:
        # Under 64 pixels a side, an image is a drawing or an icon, not a
        # photo, and a stroke is a good part of its width: its paper is one
        # level, the median of its border (as MNIST-like images have).
        border = np.concatenate([blocks[0], blocks[-1], blocks[:, 0], blocks[:, -1]])
        return np.full(size, np.median(border), dtype=np.float32)
    rough = _rolled(blocks, dark_ink)
    sigma = max(1.0, _LIGHT_SIGMA * min(rows, cols))
    light = rough
    for _ in range(2):
        strokes = 1 - blocks / np.maximum(light, 1.0) if dark_ink else blocks - light
        if not strokes.max() > strokes.min():
            break
        paper = ~ndimage.binary_dilation(strokes > _otsu(strokes), iterations=2)
        light = rough.copy()
        # Near the paper, its mean within a few blocks; in a wide stroke or a
        # blob, its mean over a wider reach; the closing where neither reaches.
        for reach in (4 * sigma, sigma):
            weight = ndimage.gaussian_filter(
                paper.astype(np.float32), reach, mode="nearest"
            )
            mean = ndimage.gaussian_filter(blocks * paper, reach, mode="nearest")
            covered = weight > 0.05
            light[covered] = mean[covered] / weight[covered]
    return _enlarged(light, size, step)


def _rolled(blocks, dark_ink):
    """A closing (an opening for light ink) of the blocks by a paraboloid.

    A flat window fills any dark patch narrower than itself, a shadow's
    strip as well as a stroke; a paraboloid (ImageJ's sliding paraboloid)
    enters a patch as far as its curvature lets it: a stroke, narrow and deep,
    is bridged over, while the light of a wide, shallow shadow or a dark
    corner is followed. It is the sum of two parabolas, one an axis, so each
    step is two one-dimensional passes.
    """
    from scipy import ndimage

    rows, cols = blocks.shape
    side = min(rows, cols)
    # Past this reach the paraboloid has dropped more than the 255 grey levels
    # any contrast can have, so it is cut there.
    reach = max(1, math.ceil(side * min(_BACKGROUND, math.sqrt(255 / _CURVATURE))))
    offsets = np.arange(-reach, reach + 1, dtype=np.float32) / side
    bowl = (-_CURVATURE * offsets**2).astype(np.float32)
    extended, pad = _extended(blocks, reach)
    steps = (ndimage.grey_dilation, ndimage.grey_erosion)
    for step in steps if dark_ink else steps[::-1]:
        extended = step(extended, structure=bowl[:, None], mode="nearest")
        extended = step(extended, structure=bowl[None, :], mode="nearest")
    return extended[pad : pad + rows, pad : pad + cols]


def _otsu(values):
    """Otsu's threshold: the level splitting the histogram into two classes
    of the largest between-class variance."""
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts, dtype=np.float64)
    above = below[-1] - below
    total = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = below * above * (total / below - (total[-1] - total) / above) ** 2
    between = np.nan_to_num(between[:-1], nan=-1.0)
    return float(edges[1 + np.argmax(between)])
