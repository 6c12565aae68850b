"""Exceptions raised by sk-mnist.

Each one subclasses the built-in exception that code written for scikit-learn
already catches, so ``except ValueError`` and ``except OSError`` keep working.
"""


class DataFileError(ValueError):
    """A local or cached MNIST file is missing parts, corrupt or not MNIST.

    The message names the file and what is wrong with it.
    """


class DownloadError(ConnectionError):
    """MNIST could not be downloaded, or the download failed its checksum.

    The message says how to point sk-mnist at a local copy instead.
    """


class UnsafeModelError(ValueError):
    """A saved model asks to run code, or is not a file written by sk-mnist."""


class ModelError(ValueError):
    """An ONNX model that ``sk-mnist export`` did not write, or that misbehaves.

    Raised by :class:`sk_mnist.serving.ServedModel`, with a one-line message
    naming what is wrong, for a graph it refuses to run (an operator, size,
    shape or tensor export never writes: more than 1,000 nodes, sparse or
    external tensors, a computed shape, tensors or matrix products that
    outgrow the image and weights, class labels that are not unique or not
    UTF-8 text, shapes onnxruntime makes otherwise than onnx infers) and for
    a run that fails, takes too long or answers what is not one label and one
    row of probabilities per image.
    """


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite.

    The message names the epoch and suggests a lower learning rate.
    """


class FitInterruptedWarning(UserWarning):
    """Training was interrupted (Ctrl-C); the estimator keeps what it reached.

    The message names the epoch. Catch it to tell an interrupted fit from a
    complete one, as ``sk-mnist train`` does.
    """


__all__ = [
    "DataFileError",
    "DownloadError",
    "FitInterruptedWarning",
    "ModelError",
    "TrainingDivergedError",
    "UnsafeModelError",
]
