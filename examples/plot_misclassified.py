"""
The digits the network gets wrong
=================================

The tutorials' 3x3 grid of digits titled "Predicted: p Label: l", here with
only the mistakes and the probability the network gave its answer.
"""

# %%
import os

import matplotlib.pyplot as plt
from sklearn.pipeline import make_pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist
from sk_mnist.plotting import DigitGridDisplay

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train, epochs = (6_000, 2) if quick else (60_000, 20)

train, test = fetch_mnist(subset="train"), fetch_mnist(subset="test")
pipe = make_pipeline(
    MNISTFlattener(), KerasMLPClassifier(epochs=epochs, random_state=0)
)
pipe.fit(train.images[:n_train], train.target[:n_train])

# %%
# A first grid: nine test digits, mistakes in red
# -----------------------------------------------
DigitGridDisplay.from_estimator(pipe, test.images, test.target)
plt.show()

# %%
# Only the mistakes, with probabilities
# -------------------------------------
DigitGridDisplay.from_estimator(
    pipe, test.images, test.target, only_errors=True, show_proba=True, random_state=0
)
plt.show()
