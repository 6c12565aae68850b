"""
Cross-validation scores
=======================

``cross_val_score`` fits a fresh clone of the pipeline on each fold. With a
fixed ``random_state`` each fold's network starts from the same seeds, so the
scores differ only because the data differ.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train, epochs = (6_000, 2) if quick else (60_000, 10)

X, y = fetch_mnist(subset="train", return_X_y=True)
X, y = X[:n_train], y[:n_train]

pipe = make_pipeline(
    MNISTFlattener(), KerasMLPClassifier(epochs=epochs, random_state=0)
)
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
scores = cross_val_score(pipe, X, y, cv=cv)
print("Fold accuracies:", np.round(scores, 4))
print(f"Mean {scores.mean():.4f}, standard deviation {scores.std():.4f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(np.arange(1, len(scores) + 1), scores, color="tab:green")
ax.axhline(scores.mean(), color="black", linestyle="--", label="mean")
ax.set_ylim(scores.min() - 0.01, min(1.0, scores.max() + 0.01))
ax.set_xlabel("Fold")
ax.set_ylabel("Accuracy")
ax.legend()
fig.tight_layout()
plt.show()
