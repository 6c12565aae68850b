"""ONNX parity over generated architectures, activations and label sets."""

from __future__ import annotations

import numpy as np
import onnxruntime
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from sklearn.pipeline import make_pipeline
from strategies import budget, label_sets, unit_images

from sk_mnist import KerasMLPClassifier, MNISTFlattener
from sk_mnist.exceptions import TrainingDivergedError
from sk_mnist.onnx import ACTIVATIONS, to_onnx

_HIDDEN = st.lists(st.integers(1, 12), min_size=1, max_size=3).map(tuple)


@settings(max_examples=budget(12))
@given(
    images=unit_images(),
    hidden=_HIDDEN,
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    labels=label_sets(),
    data=st.data(),
)
def test_onnxruntime_answers_as_the_pipeline(images, hidden, activation, labels, data):
    kind, classes = labels
    # Every class at least once, the rest drawn.
    picks = data.draw(
        st.lists(
            st.integers(0, len(classes) - 1),
            min_size=len(images) - len(classes),
            max_size=len(images) - len(classes),
        )
    )
    y = classes[np.r_[np.arange(len(classes)), picks]]
    pipe = make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(
            hidden_layer_sizes=hidden,
            activation=activation,
            epochs=1,
            batch_size=16,
            random_state=0,
        ),
    )
    try:
        pipe.fit(images, y)
    except TrainingDivergedError:  # "exponential" may overflow: nothing to export
        reject()
    session = onnxruntime.InferenceSession(
        to_onnx(pipe, images=True).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    label, proba = session.run(None, {"X": images})
    expected = pipe.predict_proba(images)
    np.testing.assert_allclose(proba, expected, atol=1e-5, rtol=1e-4)
    # Labels follow the probabilities; where two are equal to float32
    # precision, either is the argmax.
    top = np.sort(expected, axis=1)[:, -2:]
    clear = top[:, 1] - top[:, 0] > 1e-5
    np.testing.assert_array_equal(label[clear], pipe.predict(images)[clear])
    if kind == "bool":
        assert label.dtype == np.bool_
    elif kind == "str":
        assert label.dtype.kind in "OU"
    else:
        assert label.dtype == np.int64
