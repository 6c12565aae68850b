"""
Grid search over the hidden layer sizes
=======================================

``GridSearchCV`` over ``hidden_layer_sizes`` of the classifier inside a
Pipeline, with the results drawn by ``SearchResultsDisplay``: mean
cross-validated accuracy with a band of one standard deviation, and the fit
time of each candidate.
"""

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist
from sk_mnist.plotting import SearchResultsDisplay

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train, epochs = (3_000, 2) if quick else (20_000, 5)

X, y = fetch_mnist(subset="train", return_X_y=True)
X, y = X[:n_train], y[:n_train]

pipe = Pipeline(
    [
        ("flatten", MNISTFlattener()),
        ("mlp", KerasMLPClassifier(epochs=epochs, random_state=0)),
    ]
)
grid = {"mlp__hidden_layer_sizes": [(64,), (256,), (512,), (256, 256), (512, 512)]}
search = GridSearchCV(pipe, grid, cv=3, n_jobs=1).fit(X, y)

# %%
# The ranked candidates
# ---------------------
table = pd.DataFrame(search.cv_results_)[
    [
        "param_mlp__hidden_layer_sizes",
        "mean_test_score",
        "std_test_score",
        "mean_fit_time",
    ]
].sort_values("mean_test_score", ascending=False)
print(table.to_string(index=False))

# %%
# Scores and fit times
# --------------------
SearchResultsDisplay.from_search(search, param="mlp__hidden_layer_sizes")
plt.show()
