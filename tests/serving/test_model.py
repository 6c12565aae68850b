"""ServedModel: exported models run by onnxruntime, hostile ones refused first."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import onnx
import onnx_graphs
import pytest
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, Normalizer, StandardScaler

from sk_mnist import KerasMLPClassifier, MNISTFlattener
from sk_mnist.onnx import to_onnx
from sk_mnist.serving import ModelError, ServedModel, _graph, _model
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
        (lambda: b"", r"not an ONNX model \(it holds no graph\)"),
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
            "classes are not integers, booleans or strings",
        ),
    ],
    ids=[
        "garbage",
        "empty",
        "constant-of-shape",
        "endless-loop",
        "external-data",
        "classes",
    ],  # fmt: skip
)
def test_a_hostile_graph_is_refused_before_onnxruntime_runs_it(make, message):
    with pytest.raises(ModelError, match=message):
        ServedModel(make(), origin="the file")


def _opset(version, domain=""):
    def change(model):
        model.opset_import.append(onnx.helper.make_opsetid(domain, version))
        if not domain:
            del model.opset_import[0]

    return onnx_graphs.edited(change)


def _input(model):
    model.graph.input.append(
        onnx.helper.make_tensor_value_info("classes", onnx.TensorProto.INT64, [10])
    )


def _large_images(model):
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value, dims[2].dim_value = 2048, 1024


def _function(model):
    model.functions.append(
        onnx.helper.make_function(
            "local", "Twice", ["x"], ["y"],
            [onnx.helper.make_node("Add", ["x", "x"], ["y"])],
            [onnx.helper.make_opsetid("", 21)],
        )
    )  # fmt: skip


def _graph_attribute(model):
    body = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["a"], ["b"])], "body",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [1])],
    )  # fmt: skip
    model.graph.node[0].attribute.append(onnx.helper.make_attribute("body", body))


def _initializers(count):
    def change(model):
        model.graph.initializer.extend(
            onnx.numpy_helper.from_array(np.zeros(1, np.float32), f"unused{i}")
            for i in range(count)
        )

    return change


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # Finding 1: shapes onnx's data propagation inferred and onnxruntime
        # did not make; every shape must now be an initializer.
        (
            onnx_graphs.computed_shape,
            r"a Reshape node reads its shape from the tensor 'shape_sum', not from "
            r"an int64 initializer of at most 8 values",
        ),
        (
            onnx_graphs.bool_cast_lie,
            "a Cast node makes BOOL tensors; sk-mnist export casts to floats only",
        ),  # fmt: skip
        (onnx_graphs.shape_from_pixels, "a Cast node makes INT64 tensors"),
        (
            onnx_graphs.scaler_lie,
            "a Scaler node reads 't48', which is not computed from the image",
        ),
        (
            onnx_graphs.scaler_on_integers,
            "a Scaler node reads 'i', which is not floats",
        ),
        (
            onnx_graphs.outer_product,
            r"a MatMul node multiplies 'columns' by 'row_vector'; sk-mnist export "
            r"multiplies a tensor of the image by a matrix of weights",
        ),
        # Findings 2 and 3: sparse tensors, their indices in another file too.
        (
            onnx_graphs.sparse_initializer,
            "the sparse tensor 'sp' is not one sk-mnist export writes; refusing to "
            "read it",
        ),
        (
            lambda: onnx_graphs.sparse_initializer((10,), external_indices="idx.bin"),
            "the sparse tensor 'sp' is not one sk-mnist export writes",
        ),
        # Finding 4.
        (
            onnx_graphs.non_utf8_classes,
            r"its class label b'\\xff\\xfe' is not UTF-8 text \(invalid "
            r"start byte at byte 0\)",
        ),
        (
            lambda: onnx_graphs.model(
                *onnx_graphs.head(), classes=np.repeat([1, 2], 5).astype(np.int64)
            ),
            r"its classes repeat a label \(\[1, 1, 1, 1, 1, 2, 2, 2, 2, 2\]\)",
        ),
        # Finding 6: graphs far larger than export writes, refused at once.
        (
            onnx_graphs.relu_chain,
            "its graph has 1,008 nodes, over the 1,000 sk-mnist serves",
        ),
        (
            lambda: onnx_graphs.edited(_initializers(999)),
            "its graph has 1,002 initializers, over the 1,000 sk-mnist serves",
        ),
        (lambda: _opset(7), "its ai.onnx opset is 7; sk-mnist serves 13 to "),
        (
            lambda: _opset(1, "com.microsoft"),
            "it imports the opset 'com.microsoft'; sk-mnist export writes ai.onnx "
            "and ai.onnx.ml, once each",
        ),
        (lambda: _opset(21, "ai.onnx"), "it imports the opset 'ai.onnx' twice"),
        (
            lambda: onnx_graphs.edited(
                lambda model: model.opset_import.append(
                    onnx.helper.make_opsetid("", 21)
                )
            ),
            "it imports the opset 'ai.onnx' twice",
        ),
        (lambda: onnx_graphs.edited(_function), r"it defines functions \(Twice\)"),
        (
            lambda: onnx_graphs.edited(_graph_attribute),
            "the attribute 'body' of a Cast node holds a graph",
        ),
        (
            lambda: onnx_graphs.edited(_large_images),
            r"it reads images of 2,048 x 1,024 pixels, over the 1,048,576 "
            r"\(1024 x 1024\) sk-mnist serves",
        ),
        (
            lambda: onnx_graphs.edited(_input),
            "expected one input of uint8 images",
        ),
        (
            lambda: onnx_graphs.edited(
                lambda model: model.graph.output.append(model.graph.output[0])
            ),
            r"expected the outputs label and probabilities; got \['label', "
            r"'probabilities', 'label'\]",
        ),
        # Finding 7, and answers of the wrong shape, from the shapes alone.
        (
            onnx_graphs.constant_probabilities,
            r"for a batch of 2, onnx infers labels of shape \(1,\) and float32 "
            r"probabilities of shape \(1, 10\); expected \(2,\) and float32 "
            r"\(2, 10\)\.$",
        ),
        (
            onnx_graphs.narrow_probabilities,
            r"for a batch of 1, onnx infers labels of shape \(1,\) and float32 "
            r"probabilities of shape \(1, 3\); expected \(1,\) and float32 "
            r"\(1, 10\)\.$",
        ),
    ],
    ids=[
        "computed-shape",
        "bool-cast-lie",
        "shape-from-pixels",
        "scaler-lie",
        "scaler-on-integers",
        "outer-product",
        "sparse",
        "sparse-external-indices",
        "non-utf8-classes",
        "repeated-classes",
        "nodes",
        "initializers",
        "opset-7",
        "opset-com.microsoft",
        "opset-twice",
        "opset-twice-unnamed",
        "functions",
        "graph-attribute",
        "large-images",
        "classes-as-input",
        "outputs",
        "batch-of-one",
        "odd-shapes",
    ],  # fmt: skip
)
def test_a_graph_unlike_what_export_writes_is_refused_before_onnxruntime(
    make, message, monkeypatch, tmp_path
):
    data = make()
    # onnxruntime is never asked; and a file the model names beside the
    # current folder is never read.
    monkeypatch.setattr(_graph, "_session", _never, raising=False)
    monkeypatch.chdir(tmp_path)
    np.array([5], np.int64).tofile("idx.bin")
    with pytest.raises(ModelError, match=message) as info:
        ServedModel(data, origin="the file")
    assert str(info.value).startswith("the file: ")
    assert "\n" not in str(info.value)


def _never(*args):
    raise AssertionError("onnxruntime was asked to load a refused model")


def test_a_graph_as_large_as_allowed_loads(exported):
    _, _, test = exported
    data = onnx_graphs.relu_chain(993)  # 1,000 nodes
    labels, _ = ServedModel(data).predict(test[:3])
    assert labels.shape == (3,)


def test_onnxruntime_must_make_the_shapes_onnx_inferred(monkeypatch):
    """The shapes are inferred by onnx and checked against onnxruntime's at load."""
    bound = _graph._bound_tensors

    def lying(*args):
        per_image, shapes, types = bound(*args)
        shapes[3]["z"] = (3, 11)  # as if onnx had inferred this
        return per_image, shapes, types

    monkeypatch.setattr(_graph, "_bound_tensors", lying)
    with pytest.raises(ModelError) as info:
        ServedModel(onnx_graphs.model(*onnx_graphs.head()), origin="the file")
    assert str(info.value) == (
        "the file: the tensor 'z' has shape (3, 10) on a blank image and two of "
        "noise, where onnx inferred (3, 11); refusing to run it."
    )


def test_the_model_is_tried_on_one_image_and_on_three(monkeypatch):
    sizes = []
    run = ServedModel._run

    def recording(self, images, *args):
        sizes.append(len(images))
        return run(self, images, *args)

    monkeypatch.setattr(ServedModel, "_run", recording)
    ServedModel(onnx_graphs.model(*onnx_graphs.head()))
    assert sizes == [1, 3]


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
            onnx_graphs.constant_bomb,
            r"the tensor 'square' holds 16,000,000 values, more than its largest "
            r"initializer \(7,840\)",
        ),
        (
            onnx_graphs.slow_product,
            r"a MatMul node multiplies 128 rows of 'a' per image by its 32 x 32 "
            r"weights, over the 4 sk-mnist serves \(export multiplies one\)",
        ),
    ],
    ids=["broadcast-bomb", "constant-bomb", "slow-product"],
)
def test_a_graph_whose_tensors_outgrow_its_input_and_weights_is_refused(make, message):
    with pytest.raises(ModelError, match=message) as info:
        ServedModel(make(), origin="the file")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (onnx_graphs.nan_probabilities, "not finite rows in \\[0, 1\\] summing to 1"),
        (onnx_graphs.nan_weights, "not finite rows in \\[0, 1\\] summing to 1"),
        (onnx_graphs.unnormalised, "not finite rows in \\[0, 1\\] summing to 1"),
    ],
    ids=["nan", "nan-weights", "unnormalised"],
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


def test_the_watchdog_thread_ends_when_idle_and_comes_back(exported, monkeypatch):
    # A model dropped without close() must not leave its watchdog thread.
    monkeypatch.setattr(_model, "_WATCHDOG_IDLE_SECONDS", 0.05)
    _, data, test = exported

    def watchdogs():
        return [t for t in threading.enumerate() if t.name == "sk-mnist-onnx-watchdog"]

    before = len(watchdogs())
    model = ServedModel(data)
    model.predict(test[:3])
    thread = model._watchdog._thread
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(watchdogs()) == before
    # The next run starts another, and it still stops a run over its time.
    model.timeout = 1e-6
    with pytest.raises(ModelError, match=r"the model stopped after 1e-06 s"):
        model.predict(np.repeat(test, 20, axis=0))
    model.close()
    assert len(watchdogs()) == before


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


def test_close_ends_its_watchdog_though_a_run_starts_another_meanwhile(monkeypatch):
    # A run that starts while close() waits for the watching thread starts
    # a new one; the old one must still end at once, not keep watching
    # beside it (close() then waited its whole idle time, and the old
    # thread's idle exit dropped the new one's reference).
    monkeypatch.setattr(_model, "_WATCHDOG_IDLE_SECONDS", 30.0)

    class Options:
        terminate = False

    def watchdogs():
        return {t for t in threading.enumerate() if t.name == "sk-mnist-onnx-watchdog"}

    before, far = watchdogs(), time.monotonic() + 60
    watchdog = _model._Watchdog()
    with watchdog.watching(Options(), far):
        pass
    first = watchdog._thread
    join = first.join

    def a_run_then_join(timeout=None):
        # close() has let go of the lock, which the test still holds, so the
        # thread cannot wake before this run has started another.
        with watchdog.watching(Options(), far):
            pass
        watchdog._condition.release()
        join(timeout=5)

    first.join = a_run_then_join
    watchdog._condition.acquire()
    watchdog.close()
    assert not first.is_alive()
    assert watchdogs() - before == {watchdog._thread}
    watchdog.close()
    assert watchdogs() == before
