"""
Grid search on a Dask cluster
=============================

scikit-learn's searches run their fits through joblib, and joblib can hand
them to a Dask cluster. Nothing in the model changes: the same ``GridSearchCV``
runs on a ``LocalCluster`` here, and on a cluster of many machines by pointing
``Client`` at its scheduler. Because every fit is seeded from
``random_state``, the scores equal those of the serial search.
"""

# %%
import os

import joblib
import numpy as np
import pandas as pd
from distributed import Client
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist
from sk_mnist.dask import local_cluster

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train, epochs = (2_000, 1) if quick else (20_000, 3)

X, y = fetch_mnist(subset="train", return_X_y=True)
X, y = X[:n_train], y[:n_train]
pipe = Pipeline(
    [
        ("flatten", MNISTFlattener()),
        ("mlp", KerasMLPClassifier(epochs=epochs, random_state=0)),
    ]
)
grid = {"mlp__hidden_layer_sizes": [(128,), (256,)], "mlp__dropout": [0.0, 0.2]}

# %%
# The cluster
# -----------
# ``local_cluster`` starts one process per worker with one thread each, gives
# each worker room for TensorFlow (3 GiB), and leaves TensorFlow's thread
# count as it is here, so that the scores equal the serial search's
# (``tf_threads=`` sets it in the workers' environment before they import it).
# To use an existing cluster, replace it with
# ``Client("tcp://scheduler-address:8786")``.
# ``scatter=[X, y]`` sends the data to the workers once, not with every fit.
with (
    local_cluster(n_workers=2) as cluster,
    Client(cluster),
    joblib.parallel_backend("dask", scatter=[X, y]),
):
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)

results = pd.DataFrame(search.cv_results_)[
    ["params", "mean_test_score", "mean_fit_time"]
]
print(results.to_string(index=False))

# %%
# The same search, serially
# -------------------------
serial = GridSearchCV(pipe, grid, cv=2, n_jobs=1).fit(X, y)
same = np.array_equal(
    serial.cv_results_["mean_test_score"], search.cv_results_["mean_test_score"]
)
print("Identical scores on Dask and serially:", same)
