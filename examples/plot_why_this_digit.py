"""
Why this digit: the weights and the pixels that decided
=======================================================

Two pictures explain a trained network. The first hidden layer's weights,
drawn in the shape of the image, show what each unit looks for (scikit-learn's
gallery draws them for an ``MLPClassifier``). Occlusion attributions (Zeiler &
Fergus, 2014) show, for one digit, which pixels pushed a class up or down:
each 2x2 window of the digit is blanked in turn and the drop in the class's
log-odds is spread over the window's pixels. Occlusion needs only
``predict_proba``, so it explains any pipeline, and the server computes the
same map from its ONNX model.

A map is only worth drawing if it passes sanity checks: blanking the pixels it
marks must hurt the class more than blanking others (deletion), and the map of
a network whose weights were re-drawn at random must look different
(randomisation, Adebayo et al., 2018).
"""

# %%
import copy
import os

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import spearmanr
from sklearn.pipeline import make_pipeline

from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist
from sk_mnist.inspection import (
    AttributionDisplay,
    FirstLayerWeightsDisplay,
    occlusion_attributions,
)

quick = os.environ.get("SK_MNIST_EXAMPLES_QUICK") == "1"
n_train, epochs = (6_000, 2) if quick else (60_000, 20)

train, test = fetch_mnist(subset="train"), fetch_mnist(subset="test")
pipe = make_pipeline(
    MNISTFlattener(), KerasMLPClassifier(epochs=epochs, random_state=0)
)
pipe.fit(train.images[:n_train], train.target[:n_train])
print(f"Test accuracy: {pipe.score(test.images, test.target):.4f}")

# %%
# What the first hidden layer looks for
# -------------------------------------
# The default network's first layer has 512 units, each a 28x28 image of
# weights: red pixels excite the unit, blue ones inhibit it, on one scale for
# all panels. The border pixels are blank in every training image, so their
# weights never receive a gradient and keep their random initial values.
FirstLayerWeightsDisplay.from_estimator(pipe, n_units=16)
plt.show()

# %%
# Why a misread digit was misread
# -------------------------------
# Six test digits the network gets wrong. First, what made it answer as it
# did: red ink pushed the wrong class up, blue ink held it down.
predicted = pipe.predict(test.images)
wrong = np.flatnonzero(predicted != test.target)[:6]
AttributionDisplay.from_estimator(pipe, test.images[wrong], test.target[wrong], ncols=3)
plt.show()

# %%
# The same digits, explaining the true class: the blue strokes are those
# that argued against the right answer.
AttributionDisplay.from_estimator(
    pipe,
    test.images[wrong],
    test.target[wrong],
    target=test.target[wrong],
    ncols=3,
)
plt.show()

# %%
# Sanity check 1: deletion
# ------------------------
# Over 200 test digits, blank each digit's 20 most important pixels, or 20 of
# its inked pixels drawn at random, and measure how much the probability of
# the predicted class drops.
images = test.images[:200]
explained = occlusion_attributions(pipe, images)
rng = np.random.default_rng(0)
top, random = images.copy(), images.copy()
for i, image in enumerate(images):
    inked = np.flatnonzero(image.ravel())
    top[i].ravel()[np.argsort(-explained.attributions[i].ravel())[:20]] = 0
    random[i].ravel()[rng.choice(inked, 20, replace=False)] = 0
rows = np.arange(len(images))
columns = np.searchsorted(pipe.classes_, explained.target)
drop_top = explained.target_proba - pipe.predict_proba(top)[rows, columns]
drop_random = explained.target_proba - pipe.predict_proba(random)[rows, columns]
print(f"Mean drop, 20 most important pixels blanked: {drop_top.mean():.3f}")
print(f"Mean drop, 20 random inked pixels blanked:   {drop_random.mean():.3f}")
hurt_more = np.mean(drop_top > drop_random)
print(f"Digits where the marked pixels hurt more:    {hurt_more:.1%}")

# %%
# Sanity check 2: randomisation
# -----------------------------
# The same network with its Dense layers re-drawn as Keras initialises them
# (Glorot-uniform kernels, zero biases). If the maps only traced the digit's
# strokes, the two networks' maps would rank the inked pixels alike.
randomised = copy.deepcopy(pipe)
for layer in randomised[-1].model_.layers:
    weights = layer.get_weights()
    if weights:
        kernel, bias = weights
        limit = np.sqrt(6 / sum(kernel.shape))
        fresh = rng.uniform(-limit, limit, kernel.shape).astype(kernel.dtype)
        layer.set_weights([fresh, np.zeros_like(bias)])
random_maps = occlusion_attributions(
    randomised, images, target=explained.target
).attributions
signed, absolute = [], []
for image, trained, other in zip(
    images, explained.attributions, random_maps, strict=True
):
    inked = image > 0
    signed.append(spearmanr(trained[inked], other[inked])[0])
    absolute.append(spearmanr(np.abs(trained[inked]), np.abs(other[inked]))[0])
print(f"Median Spearman, trained vs re-initialised (signed):   {np.median(signed):.3f}")
print(
    f"Median Spearman, trained vs re-initialised (absolute): {np.median(absolute):.3f}"
)

# %%
# Side by side, the first three digits: the trained network's maps on top,
# the re-initialised network's below.
fig, axes = plt.subplots(2, 3, figsize=(6.6, 4.8))
AttributionDisplay.from_attributions(
    images[:3], explained.attributions[:3], target=explained.target[:3], ax=axes[0]
)
AttributionDisplay.from_attributions(
    images[:3], random_maps[:3], target=explained.target[:3], ax=axes[1]
)
plt.show()
