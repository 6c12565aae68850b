"""What a fitted network learned and which pixels decided its answers.

As :mod:`sklearn.inspection` beside :mod:`sklearn.metrics`' plots:
:func:`occlusion_map` is the computation (numpy only, over any
``predict_proba``-like callable, so that the server runs it over its ONNX
session), :func:`occlusion_attributions` runs it over a fitted estimator or
pipeline, and the Displays draw the attributions and the first hidden layer's
weights. Names are loaded on first use (PEP 562): importing this package
imports neither TensorFlow, Keras, matplotlib nor scikit-learn.
"""

from .._utils._lazy import lazy_attributes

_PUBLIC = {
    "AttributionDisplay": "._attribution_display",
    "FirstLayerWeightsDisplay": "._weights_display",
    "occlusion_attributions": "._attributions",
    "occlusion_map": "._occlusion",
}
__getattr__, __dir__ = lazy_attributes(__name__, _PUBLIC)

__all__ = [
    "AttributionDisplay",
    "FirstLayerWeightsDisplay",
    "occlusion_attributions",
    "occlusion_map",
]
