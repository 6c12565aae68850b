"""
Quick start: the classic network, its report and its confusion matrix
=====================================================================

The network of Keras's classic MNIST example, 784 -> 512 relu -> Dropout 0.2
-> 512 relu -> Dropout 0.2 -> 10 softmax, as the last step of a scikit-learn
Pipeline. We train it on the training images, then judge it on the 10,000 test
images with scikit-learn's report and confusion matrix.
"""

# %%
# Load the data
# -------------
# ``fetch_mnist`` returns a scikit-learn ``Bunch``; ``images`` holds the
# 28x28 digits.
import os

import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay, classification_report
from sklearn.pipeline import Pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train, epochs = (6_000, 2) if quick else (60_000, 20)

train, test = fetch_mnist(subset="train"), fetch_mnist(subset="test")
X_train, y_train = train.images[:n_train], train.target[:n_train]
X_test, y_test = test.images, test.target

# %%
# Build and fit the pipeline
# --------------------------
# ``MNISTFlattener`` does the tutorial's ``reshape(60000, 784)``,
# ``astype("float32")`` and ``/= 255``; ``KerasMLPClassifier`` defaults to the
# classic network, RMSprop and batches of 128.
pipe = Pipeline(
    [
        ("flatten", MNISTFlattener()),
        ("mlp", KerasMLPClassifier(epochs=epochs, random_state=0)),
    ]
)
print(pipe["mlp"].summary())
pipe.fit(X_train, y_train)

# %%
# Judge it on the test set
# ------------------------
y_pred = pipe.predict(X_test)
print(f"Test accuracy: {pipe.score(X_test, y_test):.4f}")
print(classification_report(y_test, y_pred, digits=4))

# %%
# The confusion matrix shows which digits are taken for which.
ConfusionMatrixDisplay.from_predictions(y_test, y_pred, colorbar=False)
plt.show()
