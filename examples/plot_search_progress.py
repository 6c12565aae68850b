"""
Watching a search: one progress view and a validation curve per candidate
=========================================================================

scikit-learn 1.9 added callbacks (:mod:`sklearn.callback`), and
``KerasMLPClassifier`` reports to them: each fit is a task whose subtasks
are its epochs. Two of scikit-learn's own callbacks do the rest:

- a ``ProgressBar`` set on the search draws one nested view of the search,
  each fit (also those run in worker processes) and each epoch, instead of
  Keras's bar repeated for every fit;
- a ``ScoringMonitor`` set on the classifier scores the network after every
  epoch of every fit; here on held-out images, which gives a validation
  curve for every candidate of the search at no extra fit.
"""

# %%
import os

import matplotlib.pyplot as plt
from sklearn.callback import ProgressBar, ScoringMonitor
from sklearn.model_selection import GridSearchCV

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train, n_valid, epochs = (3_000, 1_000, 3) if quick else (20_000, 10_000, 10)
sizes = [(64,), (256,)] if quick else [(64,), (256,), (512,), (512, 512)]

images, labels = fetch_mnist(subset="train", return_X_y=True)
flattener = MNISTFlattener().fit(images)
X, y = flattener.transform(images[:n_train]), labels[:n_train]
# The last images of the training set, never trained on: the validation set.
X_valid, y_valid = flattener.transform(images[-n_valid:]), labels[-n_valid:]

# %%
# A score after every epoch
# -------------------------
# ``ScoringMonitor`` calls a scorer with the network as it stands after the
# epoch and that fit's training data; this scorer looks at the held-out
# images instead. It rides along with every clone the search makes.


def validation_accuracy(estimator, X, y):
    return estimator.score(X_valid, y_valid)


monitor = ScoringMonitor(scoring={"validation accuracy": validation_accuracy})
clf = KerasMLPClassifier(epochs=epochs, random_state=0).set_callbacks(monitor)

# %%
# One progress view
# -----------------
# ``max_propagation_depth=None`` shows every level: the search, each
# candidate-split fit and the refit with the best parameters, each drawn as
# its epochs complete.
os.environ.setdefault("COLUMNS", "110")  # rich draws 80 columns off a terminal
search = GridSearchCV(clf, {"hidden_layer_sizes": sizes}, cv=2, n_jobs=1)
search.set_callbacks(ProgressBar(max_propagation_depth=None))
search.fit(X, y)
print(f"best: {search.best_params_}, mean CV accuracy {search.best_score_:.4f}")

# %%
# Validation curves
# -----------------
# Each row of the log is one task; the epochs of the search's fits sit
# under its ``candidate-split-evaluation`` tasks, numbered candidate by
# candidate, each over the ``cv`` splits.
log = monitor.get_logs().data_as_pandas
epochs_log = log[log["task_name"] == "epoch"].copy()
evaluation = epochs_log["parent_task_id_path"].map(lambda path: path[:2] == (0, 0))
epochs_log = epochs_log[evaluation]
n_splits = search.n_splits_
epochs_log["candidate"] = epochs_log["parent_task_id_path"].map(
    lambda path: path[-1] // n_splits
)
epochs_log["epoch"] = epochs_log["task_id"] + 1
curves = epochs_log.groupby(["candidate", "epoch"])["validation accuracy"].mean()
print(f"{len(epochs_log)} epoch rows: {epochs} epochs x {len(sizes) * n_splits} fits")

fig, ax = plt.subplots(figsize=(6, 4))
for candidate, params in enumerate(search.cv_results_["params"]):
    curve = curves.loc[candidate]
    label = str(params["hidden_layer_sizes"])
    ax.plot(curve.index, curve.values, marker="o", label=label)
ax.set_xlabel("epoch")
ax.set_xticks(range(1, epochs + 1))
ax.set_ylabel(f"validation accuracy (mean of {n_splits} fits)")
ax.set_title("Every candidate of the search, epoch by epoch")
ax.legend(title="hidden_layer_sizes")
plt.show()
