"""occlusion_attributions: occlusion over a fitted estimator or pipeline."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from .._flattener import MNISTFlattener
from .._utils._pixels import square_shape
from ._occlusion import occlusion_map


def occlusion_attributions(
    estimator,
    X,
    *,
    target=None,
    window=(2, 2),
    stride=1,
    baseline=0.0,
    output="log_odds",
):
    """Which pixels pushed each image's predicted (or a chosen) class up or down.

    Runs :func:`occlusion_map` over ``estimator.predict_proba``: it needs no
    gradient, so it explains any fitted classifier or pipeline, a PCA in
    front of the network included.

    Parameters
    ----------
    estimator : fitted classifier or Pipeline
        Has ``predict_proba`` and ``classes_``, and reads ``X`` as given.
    X : array-like of shape (n_images, h, w), (n_images, h, w, 1) \
            or (n_images, h * w)
        The images to explain, of numbers. Flat rows are reshaped to the image shape the
        pipeline's :class:`~sk_mnist.MNISTFlattener` learned (else to a
        square) for occlusion, and passed to ``estimator`` flat again.
    target : class label, array-like of shape (n_images,) or None, default=None
        The class to explain, one for all images or one per image, as
        labels from ``classes_``; ``None`` explains each predicted class.
    window : int or tuple of (int, int), default=(2, 2)
        Height and width of the occluding window.
    stride : int or tuple of (int, int), default=1
        Step between window positions, at most the window (so that every
        pixel is covered).
    baseline : float, default=0.0
        The value occluded pixels are set to (MNIST's blank paper).
    output : {"log_odds", "probability"}, default="log_odds"
        The score whose drop is attributed: the class's log-odds, which still
        move where a confident network's probability rounds to 1, or its
        probability.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        With the attributes:

        attributions : ndarray of shape (n_images, h, w)
            Per pixel, the mean drop of the target's score (``output``) when
            the pixel is occluded: positive where it pushed the class up.
        images : ndarray of shape (n_images, h, w)
            The images, as given.
        target : ndarray of shape (n_images,)
            The explained class of each image.
        target_proba : ndarray of shape (n_images,)
            The probability of that class on the unoccluded image.
        predicted : ndarray of shape (n_images,)
            The predicted class of each image.

    See Also
    --------
    occlusion_map : The same computation over any ``predict_proba`` callable.
    AttributionDisplay : Draws the attributions over the digits.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sk_mnist.inspection import occlusion_attributions
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X / 16, y)
    >>> result = occlusion_attributions(clf, X[:2] / 16)
    >>> result.attributions.shape, result.target.tolist()
    ((2, 8, 8), [0, 1])
    """
    check_is_fitted(estimator)
    if not hasattr(estimator, "predict_proba"):
        raise TypeError(
            f"{type(estimator).__name__} has no predict_proba; occlusion needs "
            f"the probabilities of a fitted classifier or pipeline."
        )
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"X must hold numbers (integer, float or boolean pixels), got dtype "
            f"{X.dtype}."
        )
    if X.ndim == 4 and X.shape[-1] == 1:
        images = X[..., 0]

        def predict_proba(batch):
            return estimator.predict_proba(batch[..., None])

    elif X.ndim == 3:
        images, predict_proba = X, estimator.predict_proba
    elif X.ndim == 2:
        shape = _image_shape(estimator, X.shape[1])
        images = X.reshape(len(X), *shape)

        def predict_proba(batch):
            return estimator.predict_proba(batch.reshape(len(batch), -1))

    else:
        raise ValueError(
            f"X must hold images (n, h, w), (n, h, w, 1) or flat rows (n, h * w), "
            f"got shape {X.shape}."
        )
    classes = np.asarray(estimator.classes_)
    columns = None if target is None else _columns(target, classes, len(images))
    attributions, proba = occlusion_map(
        predict_proba,
        images,
        target=columns,
        window=window,
        stride=stride,
        baseline=baseline,
        output=output,
        return_proba=True,
    )
    predicted = np.argmax(proba, axis=1)
    columns = predicted if columns is None else columns
    return Bunch(
        attributions=attributions,
        images=images,
        target=classes[columns],
        target_proba=proba[np.arange(len(images)), columns],
        predicted=classes[predicted],
    )


def _image_shape(estimator, n_features):
    steps = getattr(estimator, "steps", [])
    for _, step in steps:
        if isinstance(step, MNISTFlattener) and hasattr(step, "image_shape_"):
            return step.image_shape_
    shape = square_shape(n_features)
    if shape is None:
        raise ValueError(
            f"Flat rows of {n_features} pixels are not a square image and no "
            f"fitted MNISTFlattener in the pipeline gives their shape; pass "
            f"images of shape (n, h, w)."
        )
    return shape


def _columns(target, classes, n):
    labels = np.asarray(target)
    labels = np.broadcast_to(labels, (n,)) if labels.ndim == 0 else labels
    if labels.shape != (n,):
        raise ValueError(
            f"target must be one class label or one per image ({n}), got an "
            f"array of shape {labels.shape}."
        )
    index = {label: i for i, label in enumerate(classes.tolist())}
    unknown = [
        label
        for label in labels.tolist()
        if not isinstance(label, Hashable) or label not in index
    ]
    if unknown:
        raise ValueError(
            f"target {unknown[0]!r} is not a class of the estimator; its "
            f"classes are {classes.tolist()}."
        )
    columns = np.asarray([index[label] for label in labels.tolist()])
    return columns
