"""The Keras engine behind :class:`~sk_mnist.KerasMLPClassifier`.

The only place in sk-mnist that imports Keras at module top: the estimator
imports these modules inside its methods, so ``import sk_mnist`` stays free
of TensorFlow and Keras.

- :mod:`.network`: building and compiling the network, running it;
- :mod:`.training`: the epoch loop;
- :mod:`.serialization`: a model as ``.keras`` bytes and back, safely.
"""

import os
import sys

#: Set (to "1") by ``sk-mnist`` unless ``--verbose``, in its own environment,
#: so that it reaches the worker processes of a parallel search too.
QUIET_ENV = "SK_MNIST_QUIET_BACKEND"


def start_backend_quietly():
    """Import Keras and place its first tensor with file descriptor 2 muted.

    TensorFlow's C++ start-up notes (oneDNN, CUDA drivers) are written by
    absl to the process's stderr before any logging setting applies (neither
    TF_CPP_MIN_LOG_LEVEL nor absl's variables reach them), at import and when
    the first tensor is placed. An import error still raises, after stderr is
    restored.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras

            keras.ops.zeros(1)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if os.environ.get(QUIET_ENV) == "1" and "keras" not in sys.modules:
    start_backend_quietly()
