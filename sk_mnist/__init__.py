"""sk-mnist: the classic Keras Dense/Dropout MNIST network as scikit-learn estimators.

Importing this package imports neither TensorFlow nor Keras: they are loaded
the first time a network is built or loaded.
"""

from ._classifier import KerasMLPClassifier
from ._flattener import MNISTFlattener
from ._persistence import TRUSTED_TYPES, load, save
from ._version import __version__
from .datasets import fetch_mnist

__all__ = [
    "KerasMLPClassifier",
    "MNISTFlattener",
    "TRUSTED_TYPES",
    "__version__",
    "fetch_mnist",
    "load",
    "save",
]
