"""
The four classic Keras MNIST networks, side by side
===================================================

The classic tutorials differ in a handful of choices. In sk-mnist each is a
parameter of ``KerasMLPClassifier``; here we fit all four on the same data and
compare test accuracy and training time.
"""

# %%
import os
import time

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.pipeline import make_pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train = 6_000 if quick else 60_000

X, y = fetch_mnist(subset="train", return_X_y=True)
X_test, y_test = fetch_mnist(subset="test", return_X_y=True)
X, y = X[:n_train], y[:n_train]

# %%
# The networks as parameters
# --------------------------
networks = {
    "512 relu, no dropout, 5 epochs": dict(
        hidden_layer_sizes=(512,), dropout=0.0, epochs=5
    ),
    "512-512 sigmoid, SGD, 20 epochs": dict(
        activation="sigmoid", optimizer="sgd", dropout=0.0, epochs=20
    ),
    "512-512 relu, dropout 0.2, RMSprop, 20 epochs": dict(epochs=20),
    "512-512 relu, dropout 0.2, batch 500, 10% validation": dict(
        batch_size=500, validation_fraction=0.1, epochs=20
    ),
}

rows = []
for name, params in networks.items():
    if quick:
        params = {**params, "epochs": min(params["epochs"], 2)}
    pipe = make_pipeline(MNISTFlattener(), KerasMLPClassifier(random_state=0, **params))
    start = time.perf_counter()
    pipe.fit(X, y)
    seconds = time.perf_counter() - start
    rows.append(
        {
            "network": name,
            "test accuracy": pipe.score(X_test, y_test),
            "fit time (s)": round(seconds, 1),
        }
    )
results = pd.DataFrame(rows).set_index("network")
print(results.to_string(float_format=lambda v: f"{v:.4f}"))

# %%
# Accuracy against training time
# ------------------------------
fig, ax = plt.subplots(figsize=(7, 4))
ax.barh(results.index, results["test accuracy"], color="tab:blue")
ax.set_xlim(max(0.0, results["test accuracy"].min() - 0.05), 1.0)
ax.set_xlabel("Test accuracy")
for i, (acc, sec) in enumerate(
    zip(results["test accuracy"], results["fit time (s)"], strict=True)
):
    ax.text(acc, i, f" {acc:.4f} ({sec:.0f} s)", va="center")
fig.tight_layout()
plt.show()
