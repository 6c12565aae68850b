"""
Training curves and early stopping
==================================

With ``validation_fraction`` the classifier records the validation loss and
accuracy after every epoch, like Keras's ``validation_split``. With
``early_stopping=True`` it stops when the validation accuracy has not improved
for ``n_iter_no_change`` epochs and keeps the weights of the best epoch.
``TrainingHistoryDisplay`` draws the tutorial's accuracy and loss curves.
"""

# %%
import os

import matplotlib.pyplot as plt
from sklearn.pipeline import make_pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist
from sk_mnist.plotting import TrainingHistoryDisplay

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train, epochs = (6_000, 3) if quick else (60_000, 40)

X, y = fetch_mnist(subset="train", return_X_y=True)
X_test, y_test = fetch_mnist(subset="test", return_X_y=True)
X, y = X[:n_train], y[:n_train]

mlp = KerasMLPClassifier(
    epochs=epochs,
    validation_fraction=0.1,
    early_stopping=True,
    n_iter_no_change=5,
    random_state=0,
)
pipe = make_pipeline(MNISTFlattener(), mlp).fit(X, y)
print(f"Trained {mlp.n_iter_} of {epochs} epochs")
print(f"Best validation accuracy: {mlp.best_validation_score_:.4f}")
print(f"Test accuracy with the restored weights: {pipe.score(X_test, y_test):.4f}")

# %%
# Accuracy and loss per epoch
# ---------------------------
TrainingHistoryDisplay.from_estimator(pipe)
plt.show()
