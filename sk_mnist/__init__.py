"""sk-mnist: the classic Keras Dense/Dropout MNIST network as scikit-learn estimators.

Importing this package imports neither TensorFlow nor Keras: they are loaded
the first time a network is built or loaded. Its public names are loaded on
first use (PEP 562), so that ``import sk_mnist`` is instant: the command line
must answer Ctrl-C from its first moment, and the serving process needs
neither scikit-learn's estimators nor Keras.
"""

from ._utils._lazy import lazy_attributes
from ._version import __version__

# Where each public name lives.
_PUBLIC = {
    "KerasMLPClassifier": "._classifier",
    "MNISTFlattener": "._flattener",
    "TRUSTED_TYPES": "._persistence",
    "fetch_mnist": ".datasets",
    "load": "._persistence",
    "save": "._persistence",
}
__getattr__, __dir__ = lazy_attributes(__name__, _PUBLIC)

__all__ = [
    "KerasMLPClassifier",
    "MNISTFlattener",
    "TRUSTED_TYPES",
    "__version__",
    "fetch_mnist",
    "load",
    "save",
]
