"""The Keras engine behind :class:`~sk_mnist.KerasMLPClassifier`.

The only place in sk-mnist that imports Keras at module top: the estimator
imports these modules inside its methods, so ``import sk_mnist`` stays free
of TensorFlow and Keras.

- :mod:`.network`: building and compiling the network, running it;
- :mod:`.training`: the epoch loop;
- :mod:`.serialization`: a model as ``.keras`` bytes and back, safely.
"""
