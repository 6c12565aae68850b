"""
Deploying: export the pipeline to ONNX and serve it with onnxruntime
====================================================================

Serving a model should not need the library that trained it. We train the
classic pipeline, export it to ONNX with skl2onnx (sk-mnist registers the
converters for its two estimators), load it in onnxruntime, which needs
neither TensorFlow nor Keras, and check that it gives the pipeline's
answers on the 10,000 test images.
"""

# %%
# Train the pipeline
# ------------------
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime
from sklearn.pipeline import make_pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist
from sk_mnist.onnx import to_onnx

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train, epochs = (6_000, 2) if quick else (60_000, 20)

train, test = fetch_mnist(subset="train"), fetch_mnist(subset="test")
pipe = make_pipeline(
    MNISTFlattener(), KerasMLPClassifier(epochs=epochs, random_state=0)
).fit(train.images[:n_train], train.target[:n_train])

# %%
# Export
# ------
# ``images=True`` makes the model take uint8 images as they come, 28x28; the
# flattener's reshape and scaling are part of the graph.
folder = Path(tempfile.mkdtemp())
model = to_onnx(pipe, folder / "mnist.onnx", images=True)
print([(i.name, i.type.tensor_type.elem_type) for i in model.graph.input])
print([o.name for o in model.graph.output])
print(f"{(folder / 'mnist.onnx').stat().st_size / 1e6:.1f} MB")

# %%
# Serve with onnxruntime and compare
# ----------------------------------
session = onnxruntime.InferenceSession(
    str(folder / "mnist.onnx"), providers=["CPUExecutionProvider"]
)
labels, proba = session.run(None, {"X": test.images})
expected = pipe.predict_proba(test.images)
print(f"Identical labels: {np.array_equal(labels, pipe.predict(test.images))}")
print(f"Largest probability difference: {np.abs(proba - expected).max():.1e}")
print(f"Test accuracy, onnxruntime: {(labels == test.target).mean():.4f}")

# %%
# One digit at a time
# -------------------
# The latency a web service sees: one image per request.
timings = {}
for name, predict in {
    "onnxruntime": lambda x: session.run(None, {"X": x}),
    "pipeline.predict_proba": pipe.predict_proba,
}.items():
    predict(test.images[:1])
    start = time.perf_counter()
    for i in range(200):
        predict(test.images[i : i + 1])
    timings[name] = (time.perf_counter() - start) / 200 * 1000
    print(f"{name}: {timings[name]:.3f} ms per image")

fig, ax = plt.subplots(figsize=(6, 2.5))
ax.barh(list(timings), list(timings.values()), color=["tab:green", "tab:blue"])
ax.set_xlabel("milliseconds per single-image request")
fig.tight_layout()
plt.show()
