"""Serving exported models with onnxruntime alone: no TensorFlow, Keras or JAX.

:class:`ServedModel` reads a file written by ``sk-mnist export`` (or
:func:`sk_mnist.onnx.to_onnx` with ``images=True``), checks it and runs it:
``sk-mnist predict MODEL.onnx`` calls its ``predict``, and ``sk-mnist serve``
awaits its ``apredict``, which runs onnxruntime in the model's own thread.
Needs the ``onnx`` extra.
"""

from ..exceptions import ModelError
from ._model import MAX_MODEL_BYTES, ServedModel

__all__ = ["MAX_MODEL_BYTES", "ModelError", "ServedModel"]
