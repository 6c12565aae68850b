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

    Raised by :class:`sk_mnist.serving.ServedModel` for a graph it refuses to
    run (an operator export never writes, tensors stored in other files, not
    one uint8 image input) and for a run that fails, takes too long or
    answers what is not one label and one row of probabilities per image.
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
