"""ServedModel: exported models run by onnxruntime, hostile ones refused first."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import onnx_graphs
import pytest
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, Normalizer, StandardScaler

from sk_mnist import KerasMLPClassifier, MNISTFlattener
from sk_mnist.onnx import to_onnx
from sk_mnist.serving import ModelError, ServedModel
from sk_mnist.serving._options import ServeOptions, max_threads


@pytest.fixture(scope="module")
def exported(small_mnist):
    X, y, Xt, _ = small_mnist
    images = (X * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    pipe = make_pipeline(
        MNISTFlattener(),
        KerasMLPClassifier(hidden_layer_sizes=(16,), epochs=1, random_state=0),
    ).fit(images, y)
    test = (Xt * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    return pipe, to_onnx(pipe, images=True).SerializeToString(), test


def test_an_exported_model_answers_as_its_pipeline(exported):
    pipe, data, test = exported
    model = ServedModel(data)
    labels, proba = model.predict(test)
    np.testing.assert_array_equal(labels, pipe.predict(test))
    np.testing.assert_allclose(proba, pipe.predict_proba(test), atol=1e-5)
    np.testing.assert_array_equal(model.classes, pipe.classes_)
    assert model.image_shape == (28, 28)


def _network(activation="relu", layers=(8,)):
    return KerasMLPClassifier(
        hidden_layer_sizes=layers, activation=activation, epochs=1, random_state=0
    )


@pytest.mark.parametrize(
    ("steps", "labels"),
    [
        (lambda: [PCA(20, random_state=0), StandardScaler(), _network("gelu")], int),
        (lambda: [Normalizer(), MinMaxScaler(), _network("mish")], str),
        (lambda: [_network("relu6", (8, 6))], bool),
        (lambda: [StandardScaler(), _network("log_softmax", (8, 6))], int),
    ],
    ids=["pca-gelu", "normalizer-mish-str", "relu6-bool", "scaler-log-softmax"],
)
def test_every_kind_of_graph_export_writes_loads_within_its_bound(
    small_mnist, steps, labels
):
    X, y, Xt, _ = small_mnist
    images = (X[:300] * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    test = (Xt[:50] * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    targets = {int: y[:300], str: np.array(list("abcdefghij"))[y[:300]],
               bool: y[:300] > 4}[labels]  # fmt: skip
    pipe = make_pipeline(MNISTFlattener(), *steps()).fit(images, targets)
    model = ServedModel(to_onnx(pipe, images=True).SerializeToString())
    found, _ = model.predict(test)
    np.testing.assert_array_equal(found, pipe.predict(test))
    assert {type(label) for label in found.tolist()} == {labels}
    # Its tensors hold at most the pixels and the widest layer a few times.
    assert 0 < model.bytes_per_image <= 40 * 784 * 4


def test_a_hand_written_graph_of_the_exporters_operators_runs(exported):
    _, _, test = exported
    labels, proba = ServedModel(onnx_graphs.model(*onnx_graphs.head())).predict(
        test[:5]
    )
    assert labels.shape == (5,)
    np.testing.assert_allclose(proba, 0.1, atol=1e-6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: b"\x00garbage", "not a readable ONNX model"),
        (
            onnx_graphs.constant_of_shape,
            "ConstantOfShape is not one sk-mnist export writes",
        ),
        (onnx_graphs.endless_loop, "ai.onnx.Loop is not one sk-mnist export writes"),
        (onnx_graphs.external_data, "stored in another file"),
        (
            lambda: onnx_graphs.model(
                *onnx_graphs.head(), classes=np.array([1.5] * 10, np.float32)
            ),
            "classes are not integers or strings",
        ),
    ],
    ids=["garbage", "constant-of-shape", "endless-loop", "external-data", "classes"],
)
def test_a_hostile_graph_is_refused_before_onnxruntime_runs_it(make, message):
    with pytest.raises(ModelError, match=message):
        ServedModel(make(), origin="the file")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            onnx_graphs.broadcast_bomb,
            r"the tensor 'wide' holds 15,680,000 values per image, over the bound "
            r"of 80,000 \(4 x 20,000, the widest of an image's 784 pixels and the "
            r"model's weights\); refusing to run it\.$",
        ),
        (
            onnx_graphs.outer_product,
            r"the tensor 'square' grows faster than the batch \(614,656, "
            r"2,458,624 and 5,531,904 values for 1, 2 and 3 images\)",
        ),
        (
            onnx_graphs.constant_bomb,
            r"the tensor 'square' holds 16,000,000 values, more than its largest "
            r"initializer \(7,840\)",
        ),
        (
            onnx_graphs.shape_from_pixels,
            "the shape of the tensor 'rows' cannot be inferred",
        ),
    ],
    ids=["broadcast-bomb", "outer-product", "constant-bomb", "shape-from-pixels"],
)
def test_a_graph_whose_tensors_outgrow_its_input_and_weights_is_refused(make, message):
    with pytest.raises(ModelError, match=message) as info:
        ServedModel(make(), origin="the file")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            onnx_graphs.narrow_probabilities,
            r"probabilities of shape \(1, 3\); expected \(1,\) and \(1, 10\) "
            r"\(tried at load, on a blank image\); refusing to serve it\.$",
        ),
        (onnx_graphs.nan_probabilities, "not finite rows in \\[0, 1\\] summing to 1"),
        (onnx_graphs.nan_weights, "not finite rows in \\[0, 1\\] summing to 1"),
        (onnx_graphs.unnormalised, "not finite rows in \\[0, 1\\] summing to 1"),
    ],
    ids=["odd-shapes", "nan", "nan-weights", "unnormalised"],
)
def test_a_model_whose_answers_are_not_probabilities_is_refused_at_load(make, message):
    with pytest.raises(ModelError, match=message) as info:
        ServedModel(make(), origin="the file")
    assert str(info.value).startswith("the file: ")
    assert "tried at load, on a blank image" in str(info.value)


def test_answers_that_go_wrong_after_load_are_still_refused():
    model = ServedModel(onnx_graphs.nan_on_white(), origin="the file")
    images = np.zeros((3, 28, 28), np.uint8)
    assert model.predict(images)[1].shape == (3, 10)
    images[1] = 255  # more ink than the model copes with
    with pytest.raises(ModelError, match="not finite rows in \\[0, 1\\] summing to 1"):
        model.predict(images)


def test_a_run_over_its_time_is_stopped(exported):
    _, data, test = exported
    model = ServedModel(data)
    model.timeout = 1e-6  # after load, whose check runs the model too
    with pytest.raises(ModelError, match=r"the model stopped after 1e-06 s"):
        model.predict(np.repeat(test, 20, axis=0))


class _Recording:
    """A session that records when onnxruntime's run starts and ends."""

    def __init__(self, session, events, gate=None):
        self.session, self.events, self.gate = session, events, gate

    def run(self, *args):
        self.events.append("start")
        if self.gate is not None:
            self.gate.wait(30)
        try:
            return self.session.run(*args)
        finally:
            self.events.append("end")


def _new_threads(before):
    return [
        t for t in set(threading.enumerate()) - before if t.name.startswith("sk-mnist")
    ]


def test_the_event_loop_runs_while_the_model_does(exported):
    _, data, test = exported
    big = np.repeat(test, 20, axis=0)  # 20,000 images
    events, before = [], set(threading.enumerate())
    with ServedModel(data) as model:
        expected = model.predict(big)
        model._session = _Recording(model._session, events)

        async def main():
            task = asyncio.create_task(model.apredict(big))
            while not task.done():
                events.append("tick")
                await asyncio.sleep(0)
            return await task

        labels, proba = asyncio.run(main())
    # The loop ticked while onnxruntime ran, in the model's own thread.
    assert "tick" in events[events.index("start") : events.index("end")]
    np.testing.assert_array_equal(labels, expected[0])
    np.testing.assert_array_equal(proba, expected[1])
    assert not _new_threads(before)


def test_close_refuses_the_calls_waiting_and_ends_the_thread(exported):
    _, data, test = exported
    before = set(threading.enumerate())
    model = ServedModel(data)
    gate, events = threading.Event(), []
    model._session = _Recording(model._session, events, gate)

    async def main():
        first = asyncio.create_task(model.apredict(test[:3]))
        while "start" not in events:  # the first call is in onnxruntime
            await asyncio.sleep(0.001)
        second = asyncio.create_task(model.apredict(test[:3]))
        closing = asyncio.create_task(asyncio.to_thread(model.close))
        while not model._closed:
            await asyncio.sleep(0.001)
        gate.set()
        await closing
        return await asyncio.gather(first, second, return_exceptions=True)

    _, second = asyncio.run(main())
    assert isinstance(second, ModelError)
    assert "the model is closed" in str(second)
    assert events.count("start") == 1  # the waiting call never ran
    assert not _new_threads(before)
    with pytest.raises(ModelError, match="the model is closed"):
        asyncio.run(model.apredict(test[:1]))


def test_a_call_that_waited_its_whole_timeout_in_line_does_not_run(exported):
    _, data, test = exported
    gate, events = threading.Event(), []
    with ServedModel(data, timeout=0.05) as model:
        model._session = _Recording(model._session, events, gate)

        async def main():
            first = asyncio.create_task(model.apredict(test[:3]))
            second = asyncio.create_task(model.apredict(test[:3]))
            await asyncio.sleep(0.3)  # both deadlines pass while the first is held
            gate.set()
            return await asyncio.gather(first, second, return_exceptions=True)

        first, second = asyncio.run(main())
    assert "the model stopped after 0.05 s" in str(first)
    assert "the model was busy for the call's 0.05 s; it did not run" in str(second)
    assert events.count("start") == 1


def test_the_default_timeout_is_serves_and_threads_are_bounded(exported, tmp_path):
    _, data, _ = exported
    assert ServedModel(data).timeout == ServeOptions().timeout
    for threads in (0, max_threads() + 1, 100_000, 2.0):
        with pytest.raises(ValueError, match=rf"threads must be .*; got {threads!r}"):
            ServedModel(data, threads=threads)
    with pytest.raises(ValueError, match=r"timeout must be .*; got nan"):
        ServedModel(data, timeout=float("nan"))
    # Checked before the file is read.
    with pytest.raises(ValueError, match=r"threads must be .*; got 100000"):
        ServedModel.from_file(tmp_path / "missing.onnx", threads=100_000)
