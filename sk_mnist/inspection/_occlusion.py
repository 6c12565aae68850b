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
        and returns probabilities of shape ``(m, n_classes)``. All the
        occluded copies of one image (and the image itself) go in one call
        when they are at most ``batch_size``.
    images : array-like of shape (n_images, h, w)
        The images, as ``predict_proba`` reads them (integer or float).
    target : int, array-like of int of shape (n_images,) or None, default=None
        The column of the probabilities to explain, per image or for all;
        ``None`` explains each image's most probable class.
    window : int or tuple of (int, int), default=(2, 2)
        Height and width of the occluding window.
    stride : int or tuple of (int, int), default=1
        Step between window positions; the last position touches the
        image's edge, so that every pixel is covered.
    baseline : float, default=0.0
        The value occluded pixels are set to; it must be representable in
        the images' dtype.
    output : {"log_odds", "probability"}, default="log_odds"
        The score whose drop is attributed: the class's log-odds (natural
        logarithm), or its probability.
    batch_size : int, default=1024
        The most rows per call of ``predict_proba``.
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
    n, h, w = images.shape
    if not isinstance(batch_size, Integral) or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}.")
    targets = _targets(target, n)
    _check_output(output)
    attributions = np.zeros((n, h, w))
    probas = []
    for i, image in enumerate(images):
        occlusion = Occlusion(image, window=window, stride=stride, baseline=baseline)
        proba = _predict(predict_proba, occlusion.rows, batch_size)
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
    itself (the server awaits its ONNX session on ``rows``).

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
        image's dtype.
    """

    def __init__(self, image, *, window=(2, 2), stride=1, baseline=0.0):
        image = np.asarray(image)
        if image.ndim != 2 or 0 in image.shape:
            raise ValueError(
                f"image must be a non-empty array of shape (h, w), got shape "
                f"{image.shape}."
            )
        window = _pair(window, "window", image.shape)
        stride = _pair(stride, "stride", image.shape)
        baseline = _baseline(baseline, image.dtype)
        masks, self._coverage = _masks(image.shape, window, stride)
        # Windows where the image is already blank change nothing: their
        # difference is exactly 0, and they are not evaluated.
        self._active = masks[(masks & (image != baseline)).any(axis=(1, 2))]
        copies = np.where(self._active, baseline, image)
        self.rows = np.concatenate([image[None], copies])

    def attributions(self, proba, *, target=None, output="log_odds"):
        """The map, from the probabilities of :attr:`rows`.

        Parameters
        ----------
        proba : array-like of shape (len(rows), n_classes)
            The probabilities of :attr:`rows`, in order.
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
        if proba.ndim != 2 or len(proba) != len(self.rows):
            raise ValueError(
                f"proba must hold one row of probabilities per row of the "
                f"occlusion ({len(self.rows)}), got shape {proba.shape}."
            )
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
        drops = score[0] - score[1:]
        return np.tensordot(drops, self._active, axes=1) / self._coverage, column


@functools.lru_cache(maxsize=8)
def _masks(shape, window, stride):
    """One boolean image per window position, and how many cover each pixel.

    Read-only, cached: a server explains images of one shape.
    """
    h, w = shape
    rows = _window_masks(h, window[0], stride[0])
    cols = _window_masks(w, window[1], stride[1])
    masks = (rows[:, None, :, None] & cols[None, :, None, :]).reshape(-1, h, w)
    coverage = masks.sum(axis=0)
    masks.setflags(write=False)
    coverage.setflags(write=False)
    return masks, coverage


def _predict(predict_proba, X, batch_size):
    chunks = [
        np.asarray(predict_proba(X[start : start + batch_size]), dtype=np.float64)
        for start in range(0, len(X), batch_size)
    ]
    for chunk, start in zip(chunks, range(0, len(X), batch_size), strict=True):
        expected = min(batch_size, len(X) - start)
        if chunk.ndim != 2 or len(chunk) != expected:
            raise ValueError(
                f"predict_proba must return one row of probabilities per image: "
                f"given {expected} images it returned shape {chunk.shape}."
            )
    return np.concatenate(chunks)


def _check_output(output):
    if output not in ("log_odds", "probability"):
        raise ValueError(f"output must be 'log_odds' or 'probability', got {output!r}.")


def _window_masks(size, window, stride):
    """One boolean row per window position along an axis of ``size`` pixels."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    masks = np.zeros((len(starts), size), dtype=bool)
    for k, start in enumerate(starts):
        masks[k, start : start + window] = True
    return masks


def _pair(value, name, shape):
    pair = (value, value) if isinstance(value, Integral) else tuple(value)
    if (
        len(pair) != 2
        or not all(isinstance(v, Integral) for v in pair)
        or not all(1 <= v <= s for v, s in zip(pair, shape, strict=True))
    ):
        raise ValueError(
            f"{name} must be a positive integer or a pair of them, at most the "
            f"image's shape {shape}; got {value!r}."
        )
    return tuple(int(v) for v in pair)


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
    targets = (
        np.broadcast_to(np.asarray(target), (n,))
        if np.ndim(target) == 0
        else (np.asarray(target))
    )
    if targets.shape != (n,) or not np.issubdtype(targets.dtype, np.integer):
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
    window, stride = _pair(window, "window", shape), _pair(stride, "stride", shape)
    masks, _ = _masks(tuple(shape), window, stride)
    return len(masks) + 1
