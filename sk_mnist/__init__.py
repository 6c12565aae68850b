"""sk-mnist: the classic Keras Dense/Dropout MNIST network as scikit-learn estimators.

Importing this package imports neither TensorFlow nor Keras: they are loaded
the first time a network is built or loaded. Its public names are loaded on
first use (PEP 562), so that ``import sk_mnist`` is instant: the command line
must answer Ctrl-C from its first moment, and the serving process needs
neither scikit-learn's estimators nor Keras.
"""

import importlib

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


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_PUBLIC])


__all__ = [
    "KerasMLPClassifier",
    "MNISTFlattener",
    "TRUSTED_TYPES",
    "__version__",
    "fetch_mnist",
    "load",
    "save",
]
