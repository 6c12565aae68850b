"""Occlusion (Zeiler & Fergus, 2014) in numpy, over any ``predict_proba``.

This module imports numpy only: the server runs it over its onnxruntime
session, the estimator-facing functions over a fitted pipeline. Captum's
``Occlusion`` does the same for PyTorch models; nothing in numpy, scikit-learn
or Keras does it over a plain callable, hence this short module.
"""

from __future__ import annotations

import functools
from numbers import Integral, Real

import numpy as np

# The most bytes of images one call of predict_proba is given.
_CALL_BYTES = 64 * 2**20


def occlusion_map(
    predict_proba,
    images,
    *,
    target=None,
    window=(2, 2),
    stride=1,
    baseline=0.0,
    output="log_odds",
    batch_size=1024,
    return_proba=False,
):
    """How much each pixel pushed a class up or down.

    A window of ``window`` pixels slides over each image by ``stride``; each
    position gives a copy of the image with that window set to ``baseline``
    (blank paper for MNIST). A pixel's attribution is the mean, over the
    windows that cover it, of the score of ``target`` on the image minus its
    score on the occluded copy: positive where the ink made the class more
    likely, negative where it made it less likely. Windows already blank
    throughout change nothing and are not evaluated (their difference is
    exactly 0).

    The score is the class's log-odds by default,
    ``log p - log(sum of the other classes' p)``: a confident network's
    probability rounds to 1.0 in float32, where occluding a window changes
    nothing, while the other classes' probabilities, and so the log-odds,
    still move.

    Parameters
    ----------
    predict_proba : callable
        Takes an array of shape ``(m, h, w)`` (the images' shape and dtype)
        and returns probabilities of shape ``(m, n_classes)``, finite and
        non-negative. All the occluded copies of one image (and the image
        itself) go in one call when they are at most ``batch_size`` and hold
        at most 64 MiB.
    images : array-like of shape (n_images, h, w)
        The images, as ``predict_proba`` reads them (integer, float or
        boolean pixels). An image of ``h x w`` pixels makes up to
        ``(h - window + 1) x (w - window + 1)`` occluded copies at stride 1,
        each evaluated once; they are built one call at a time, so that
        memory grows with ``batch_size x h x w``, not with their number.
    target : int, array-like of int of shape (n_images,) or None, default=None
        The column of the probabilities to explain, per image or for all;
        ``None`` explains each image's most probable class.
    window : int or tuple of (int, int), default=(2, 2)
        Height and width of the occluding window, integers from 1 to the
        image's.
    stride : int or tuple of (int, int), default=1
        Step between window positions, integers from 1 to the window's (a
        longer step would leave pixels between windows that none covers);
        the last position touches the image's edge, so that every pixel is
        covered.
    baseline : float, default=0.0
        The value occluded pixels are set to; it must be representable in
        the images' dtype.
    output : {"log_odds", "probability"}, default="log_odds"
        The score whose drop is attributed: the class's log-odds (natural
        logarithm), or its probability.
    batch_size : int, default=1024
        The most rows per call of ``predict_proba``; fewer for images so large
        that ``batch_size`` of them would exceed 64 MiB.
    return_proba : bool, default=False
        Also return the probabilities of the unoccluded images.

    Returns
    -------
    attributions : ndarray of shape (n_images, h, w), float64
        Per pixel, the mean drop of the target's score when it is occluded.
    proba : ndarray of shape (n_images, n_classes)
        The probabilities of the images; only when ``return_proba``.

    References
    ----------
    M. D. Zeiler and R. Fergus, "Visualizing and Understanding Convolutional
    Networks", ECCV 2014, section 4.2 (occlusion sensitivity).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mnist.inspection import occlusion_map
    >>> def predict_proba(images):  # class 1 is "the top-left pixel is inked"
    ...     p = images[:, 0, 0].astype(float)
    ...     return np.stack([1 - p, p], axis=1)
    >>> images = np.zeros((1, 3, 3))
    >>> images[0, 0, 0] = images[0, 2, 2] = 1.0
    >>> occlusion_map(predict_proba, images, window=1, output="probability")[0]
    array([[1., 0., 0.],
           [0., 0., 0.],
           [0., 0., 0.]])
    """
    if not callable(predict_proba):
        raise TypeError(
            f"predict_proba must be a callable, got {type(predict_proba).__name__}."
        )
    images = np.asarray(images)
    if images.ndim != 3 or 0 in images.shape:
        raise ValueError(
            f"images must be a non-empty array of shape (n_images, h, w), got "
            f"shape {images.shape}."
        )
    _check_numeric(images, "images")
    n, h, w = images.shape
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, Integral)
        or batch_size < 2
    ):
        raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}.")
    # Calls are capped in bytes too: the copies of a large image are built
    # one call at a time, never all at once.
    rows_per_call = int(min(batch_size, max(2, _CALL_BYTES // images[0].nbytes)))
    targets = _targets(target, n)
    _check_output(output)
    attributions = np.zeros((n, h, w))
    probas = []
    for i, image in enumerate(images):
        occlusion = Occlusion(image, window=window, stride=stride, baseline=baseline)
        chunks = []
        for rows in occlusion.iter_rows(rows_per_call):
            chunks.append(_predict(predict_proba, rows))
            del rows  # one call's rows alive at a time, not two
        proba = np.concatenate(chunks)
        attributions[i], _ = occlusion.attributions(
            proba, target=None if targets is None else targets[i], output=output
        )
        probas.append(proba[0])
    if return_proba:
        return attributions, np.asarray(probas)
    return attributions


class Occlusion:
    """The occluded copies of one image, and the map their probabilities make.

    :func:`occlusion_map` in two steps, for a caller that runs the model
    itself (the server awaits its ONNX session on ``rows``). The windows are
    rectangles of one size on a grid of positions, and the map is computed
    from those positions: nothing of the size of the copies is built until
    ``rows`` or :meth:`iter_rows` is read.

    Parameters
    ----------
    image : ndarray of shape (h, w)
        The image.
    window, stride, baseline
        As in :func:`occlusion_map`.

    Attributes
    ----------
    rows : ndarray of shape (1 + n_windows, h, w)
        The image, then one copy per window position that touches a pixel
        other than ``baseline``, that window set to ``baseline``; of the
        image's dtype. Built when first read, at most :func:`occlusion_rows`
        images.
    """

    def __init__(self, image, *, window=(2, 2), stride=1, baseline=0.0):
        image = np.asarray(image)
        if image.ndim != 2 or 0 in image.shape:
            raise ValueError(
                f"image must be a non-empty array of shape (h, w), got shape "
                f"{image.shape}."
            )
        _check_numeric(image, "image")
        self._window, stride = _window_and_stride(window, stride, image.shape)
        self._image = image
        self._baseline = _baseline(baseline, image.dtype)
        # Along each axis: where the windows start, and which pixels each covers.
        self._starts = [
            _starts(size, length, step)
            for size, length, step in zip(
                image.shape, self._window, stride, strict=True
            )
        ]
        self._covers = [
            _covering(starts, size, length)
            for starts, size, length in zip(
                self._starts, image.shape, self._window, strict=True
            )
        ]
        # Windows where the image is already blank change nothing: their
        # difference is exactly 0, and they are not evaluated. One (row start
        # index, column start index) per window evaluated, in row-major order.
        inked = _window_counts(image != self._baseline, self._starts, self._window)
        self._active = np.argwhere(inked > 0)

    @functools.cached_property
    def rows(self):
        return next(self.iter_rows(len(self._active) + 1))

    def iter_rows(self, size):
        """:attr:`rows` in chunks of at most ``size``, each built when asked.

        Parameters
        ----------
        size : int
            The most rows per chunk.

        Yields
        ------
        rows : ndarray of shape (at most size, h, w)
            The next rows: the image itself first, then the occluded copies.
        """
        height, width = self._window
        total = len(self._active) + 1
        for first in range(0, total, size):
            stop = min(first + size, total)
            chunk = np.repeat(self._image[None], stop - first, axis=0)
            # Row 0 is the image; row 1 + k is the copy of the k-th window.
            for j, k in enumerate(range(first - 1, stop - 1)):
                if k >= 0:
                    r = self._starts[0][self._active[k, 0]]
                    c = self._starts[1][self._active[k, 1]]
                    chunk[j, r : r + height, c : c + width] = self._baseline
            yield chunk
            del chunk

    def attributions(self, proba, *, target=None, output="log_odds"):
        """The map, from the probabilities of :attr:`rows`.

        Parameters
        ----------
        proba : array-like of shape (len(rows), n_classes)
            The probabilities of :attr:`rows`, in order; finite and >= 0.
        target : int, default=None
            The column to explain; ``None`` takes the image's most probable.
        output : {"log_odds", "probability"}, default="log_odds"
            The score whose drop is attributed, as in :func:`occlusion_map`.

        Returns
        -------
        attributions : ndarray of shape (h, w), float64
            Per pixel, the mean drop of the target's score over the windows
            that cover it.
        target : int
            The column explained.
        """
        _check_output(output)
        proba = np.asarray(proba, dtype=np.float64)
        n_rows = len(self._active) + 1
        if proba.ndim != 2 or len(proba) != n_rows:
            raise ValueError(
                f"proba must hold one row of probabilities per row of the "
                f"occlusion ({n_rows}), got shape {proba.shape}."
            )
        _check_proba(proba, "proba")
        column = int(np.argmax(proba[0])) if target is None else int(target)
        if not 0 <= column < proba.shape[1]:
            raise ValueError(
                f"target {column} is not a column of the {proba.shape[1]} "
                f"probabilities."
            )
        score = proba[:, column]
        if output == "log_odds":
            # The others' sum, not 1 - p, which rounds to 0 where p does to 1;
            # both floored at float32's smallest normal number, not 0.
            tiny = np.finfo(np.float32).tiny
            others = np.delete(proba, column, axis=1).sum(axis=1)
            score = np.log(np.maximum(score, tiny)) - np.log(np.maximum(others, tiny))
        # drops[i, j]: the drop of the window at the i-th row start and j-th
        # column start, 0 where not evaluated. A pixel sums the drops of the
        # windows covering its row and its column, then divides by their number.
        rows, cols = self._covers
        drops = np.zeros((len(rows), len(cols)))
        drops[self._active[:, 0], self._active[:, 1]] = score[0] - score[1:]
        coverage = np.outer(rows.sum(axis=0), cols.sum(axis=0))
        return (rows.T @ drops @ cols) / coverage, column


def _predict(predict_proba, X):
    proba = np.asarray(predict_proba(X))
    if proba.ndim != 2 or len(proba) != len(X):
        raise ValueError(
            f"predict_proba must return one row of probabilities per image: "
            f"given {len(X)} images it returned shape {proba.shape}."
        )
    if proba.dtype.kind not in "biuf":
        raise ValueError(
            f"predict_proba must return real numbers, got dtype {proba.dtype}."
        )
    proba = proba.astype(np.float64)
    _check_proba(proba, "predict_proba's output")
    return proba


def _check_proba(proba, name):
    """Refuse NaN, infinite or negative probabilities: they make no map."""
    bad = ~np.isfinite(proba) | (proba < 0)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite probabilities >= 0; {int(bad.sum())} values "
            f"are not, the first {float(proba[row, column])!r} (row {row}, column "
            f"{column})."
        )


def _check_numeric(images, name):
    if images.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must hold numbers (integer, float or boolean pixels), got "
            f"dtype {images.dtype}."
        )


def _check_output(output):
    if output not in ("log_odds", "probability"):
        raise ValueError(f"output must be 'log_odds' or 'probability', got {output!r}.")


def _starts(size, length, stride):
    """Where the windows start along an axis of ``size`` pixels.

    Every ``stride`` pixels, and the last at the edge: with ``stride`` at most
    the window's ``length``, every pixel is covered.
    """
    starts = np.arange(0, size - length + 1, stride)
    if starts[-1] != size - length:
        starts = np.append(starts, size - length)
    return starts


def _covering(starts, size, length):
    """``covers[k, p]``: 1.0 where window ``k`` along an axis covers pixel ``p``."""
    pixels = np.arange(size)
    covers = (pixels >= starts[:, None]) & (pixels < starts[:, None] + length)
    return covers.astype(np.float64)


def _window_counts(mask, starts, window):
    """How many pixels of ``mask`` each window holds, on the grid of starts.

    A summed-area table: one pass over the image and four reads per window,
    where one image-sized mask per window would take (h * w)**2 bytes.
    """
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = mask.cumsum(axis=0).cumsum(axis=1)
    r, c = starts[0][:, None], starts[1][None, :]
    height, width = window
    return (
        table[r + height, c + width]
        - table[r, c + width]
        - table[r + height, c]
        + table[r, c]
    )


def _pair(value, name, shape):
    expected = (
        f"{name} must be an integer >= 1 or a pair of them, at most the image's "
        f"shape {shape}; got {value!r}"
    )
    if isinstance(value, Integral) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, (tuple, list, np.ndarray)) and np.ndim(value) == 1:
        pair = tuple(value)
    else:
        raise ValueError(f"{expected} (of type {type(value).__name__}).")
    if (
        len(pair) != 2
        or not all(isinstance(v, Integral) and not isinstance(v, bool) for v in pair)
        or not all(1 <= v <= s for v, s in zip(pair, shape, strict=True))
    ):
        raise ValueError(f"{expected}.")
    return tuple(int(v) for v in pair)


def _window_and_stride(window, stride, shape):
    window, stride = _pair(window, "window", shape), _pair(stride, "stride", shape)
    if any(step > length for step, length in zip(stride, window, strict=True)):
        raise ValueError(
            f"stride {stride} must be at most window {window} along each axis: "
            f"a longer step leaves pixels between the windows that no window "
            f"covers, without an attribution."
        )
    return window, stride


def _baseline(baseline, dtype):
    if not isinstance(baseline, Real) or not np.isfinite(baseline):
        raise ValueError(f"baseline must be a finite number, got {baseline!r}.")
    cast = np.asarray(baseline).astype(dtype)
    if cast != baseline:
        raise ValueError(
            f"baseline={baseline!r} is not representable in the images' dtype "
            f"{dtype}; pass float images or a baseline such as 0."
        )
    return cast


def _targets(target, n):
    if target is None:
        return None
    targets = np.asarray(target) if np.ndim(target) else np.asarray([target] * n)
    if targets.shape != (n,) or targets.dtype.kind not in "iu":
        raise ValueError(
            f"target must be None, a column index or one per image ({n}), got "
            f"{target!r}."
        )
    return [int(t) for t in targets]


def occlusion_rows(shape, *, window=(2, 2), stride=1):
    """The most rows :class:`Occlusion` makes of an image of ``shape``.

    One per window position, and the image itself: what a caller charges to
    a memory budget before it builds them.
    """
    shape = tuple(shape)
    window, stride = _window_and_stride(window, stride, shape)
    n_rows, n_cols = (
        len(_starts(size, length, step))
        for size, length, step in zip(shape, window, stride, strict=True)
    )
    return n_rows * n_cols + 1
