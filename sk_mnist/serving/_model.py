"""An exported sk-mnist model, checked and run by onnxruntime alone.

``sk-mnist predict MODEL.onnx`` and ``sk-mnist serve`` read models that
anybody may hand them, and onnxruntime runs whatever graph a file holds: an
operator that makes a tensor of any declared shape, an endless ``Loop``,
initializers read from files beside the model, an ``Add`` that broadcasts
each image to millions of values. So the graph is checked first against
what :func:`sk_mnist.onnx.to_onnx` writes: one uint8 image input, the outputs
``label`` and ``probabilities``, the classes as the initializer the labels
are gathered from, every tensor stored in the file, only element-wise,
matrix and reshaping operators, and every tensor's shape, inferred by onnx,
within a bound per image set by the image and the model's weights. The
model then runs once on a blank image and once on noise, and must answer
probabilities. Every run is bounded in time, and its answers are checked
before anybody sees them. A server awaits :meth:`ServedModel.apredict`,
which runs onnxruntime in the model's own thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import threading
import time

import numpy as np

from .._utils._files import read_bounded
from .._utils._text import shorten
from ..exceptions import ModelError
from ._options import ServeOptions, _finite, _in_range, max_threads

#: Seconds a model call may take, as ``sk-mnist serve --timeout`` says.
_TIMEOUT = ServeOptions().timeout

#: The largest model file read: far beyond any MNIST network.
MAX_MODEL_BYTES = 1024**3

# The operators sk_mnist.onnx writes for the flattener, the network and its
# hidden activations, and those skl2onnx writes for the scikit-learn steps a
# pipeline may hold before it (PCA, the scalers, Normalizer). None of them
# loops or makes a tensor of a shape read from data; broadcasting can still
# make one larger than its inputs, which _bound_tensors refuses.
_OPERATORS = {
    "": {
        "Add", "ArgMax", "Cast", "Celu", "Clip", "Div", "Elu", "Erf", "Exp",
        "Gather", "Gemm", "HardSigmoid", "Identity", "LeakyRelu", "LogSoftmax",
        "MatMul", "Mul", "Relu", "Reshape", "Selu", "Sigmoid", "Softmax",
        "Softplus", "Softsign", "Sqrt", "Sub", "Tanh",
    },
    "ai.onnx.ml": {"Normalizer", "Scaler"},
}  # fmt: skip
_OUTPUTS = ["label", "probabilities"]


class ServedModel:
    """A model written by ``sk-mnist export``, run by onnxruntime.

    Parameters
    ----------
    data : bytes
        The ONNX file's content.
    origin : str, default="the model"
        Named in error messages.
    timeout : float, default=10.0
        Seconds one :meth:`predict` or :meth:`apredict` call may take (for
        :meth:`apredict`, waiting for its turn included) before it is stopped;
        the default is ``sk-mnist serve``'s.
    threads : int, default=1
        onnxruntime's threads for one call, 1 to four per core. One serves
        small requests best: a server's event loop and its other processes
        keep the other cores, and the threads never spin waiting for work.

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        The labels, in the order of the probabilities' columns.
    image_shape : tuple of (int, int)
        Height and width of the uint8 images the model reads.
    input_name : str
        The name of the model's input.
    bytes_per_image : int
        The bytes of all the tensors of one image, as if all were alive at
        once: a bound on what each image of a batch costs.

    Raises
    ------
    ModelError
        The file is not an ONNX model, or not one that sk-mnist exports: its
        tensors outgrow its image and weights, or its answers on a blank
        image or on noise are not probabilities over its classes.
    ValueError
        ``timeout`` or ``threads`` out of bounds, named.
    """

    def __init__(
        self, data: bytes, *, origin: str = "the model", timeout=_TIMEOUT, threads=1
    ):
        import onnx
        import onnxruntime

        _check_options(timeout, threads)
        self.origin, self.timeout = origin, float(timeout)
        self._watchdog = _Watchdog()
        # apredict's calls run in one thread of this model's own, in turn.
        # Off the event loop, so that a server answers its other routes while
        # a batch runs; one thread, not Starlette's shared pool of 40, so that
        # one run's tensors are alive at a time (memory is bounded by one
        # batch, and `threads` is what a call uses), while the batcher combines
        # the requests that arrive meanwhile. The standard library's
        # single-worker executor is that thread and its queue, and asyncio
        # awaits its futures; it starts the thread on the first call only.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sk-mnist-onnx"
        )
        self._closed = False
        try:
            model = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf's DecodeError subclasses Exception only
            raise ModelError(
                f"{origin}: not a readable ONNX model ({_brief(exc)})."
            ) from None
        # Before the checker, which would look for the external files.
        _refuse_external_data(model.graph, origin)
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise ModelError(
                f"{origin}: not a valid ONNX model ({_brief(exc)})."
            ) from None
        self.classes = _check_graph(model, origin)
        # Before onnxruntime, which folds constant tensors as it loads.
        self.bytes_per_image = _bound_tensors(model, origin)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnxruntime.InferenceSession(
                data, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's errors subclass Exception only
            raise ModelError(
                f"{origin}: onnxruntime cannot run this model ({_brief(exc)})."
            ) from None
        (image,) = self._session.get_inputs()
        self.input_name = image.name
        self.image_shape = tuple(image.shape[1:])
        try:
            self._probe()
        except ModelError:
            self.close()  # the watchdog's thread
            raise

    @classmethod
    def from_file(cls, path, *, timeout=_TIMEOUT, threads=1) -> ServedModel:
        """Read and check the ONNX file ``path``.

        Raises
        ------
        ModelError
            Not a model ``sk-mnist export`` writes.
        OSError, ValueError
            No such file, a folder, a FIFO or device, or over 1 GiB.
        """
        _check_options(timeout, threads)  # before reading up to 1 GiB
        data = read_bounded(path, MAX_MODEL_BYTES, what="ONNX model")
        return cls(data, origin=str(path), timeout=timeout, threads=threads)

    def predict(self, images: np.ndarray):
        """Labels and probabilities of uint8 ``images`` of :attr:`image_shape`.

        Runs in the calling thread; a server uses :meth:`apredict`.

        Returns
        -------
        labels : ndarray of shape (n,)
        probabilities : ndarray of shape (n, n_classes), float32

        Raises
        ------
        ModelError
            The run failed, took longer than ``timeout`` or gave answers that
            are not one label and one probability row per image; or the
            model is closed.
        """
        return self._run(images)

    async def apredict(self, images: np.ndarray):
        """:meth:`predict` in this model's own thread, awaited.

        Calls run one at a time, in the order they came; ``timeout`` counts
        from the call, so a call that waited its whole time in line does not
        run at all. Cancelling the awaiting task drops a call that has not
        started.
        """
        deadline = time.monotonic() + self.timeout
        try:
            future = self._executor.submit(self._run, images, deadline)
        except RuntimeError:  # the executor is shut down
            raise self._closed_error() from None
        return await asyncio.wrap_future(future)

    def close(self):
        """Stop the run in progress, refuse the calls waiting, end the thread.

        Every later call raises :class:`ModelError`. Returns once the
        model's thread has ended.
        """
        self._closed = True
        self._watchdog.terminate_all()
        self._executor.shutdown(wait=True)
        self._watchdog.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _probe(self):
        """Run the model once on a blank image and once on noise, and check it.

        A model with NaN weights or scores where probabilities belong would
        otherwise start, and fail every request.
        """
        shape = (1, *self.image_shape)
        noise = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        for what, image in (("a blank image", np.zeros(shape, np.uint8)),
                            ("an image of noise", noise)):  # fmt: skip
            try:
                self.predict(image)
            except ModelError as exc:
                raise ModelError(
                    f"{str(exc).rstrip('.')} (tried at load, on {what}); "
                    f"refusing to serve it."
                ) from None

    def _closed_error(self):
        return ModelError(f"{self.origin}: the model is closed")

    def _run(self, images, deadline=None):
        """Run the session; ``deadline`` ends an awaited call, waiting included."""
        import onnxruntime

        if self._closed:
            raise self._closed_error()
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        elif time.monotonic() >= deadline:
            raise ModelError(
                f"{self.origin}: the model was busy for the call's {self.timeout:g} "
                f"s; it did not run"
            )
        images = np.ascontiguousarray(images, dtype=np.uint8)
        options = onnxruntime.RunOptions()
        try:
            with self._watchdog.watching(options, deadline):
                labels, proba = self._session.run(
                    _OUTPUTS, {self.input_name: images}, options
                )
        except Exception as exc:  # onnxruntime's errors subclass Exception only
            if self._closed:
                raise self._closed_error() from None
            raise ModelError(
                f"{self.origin}: the model stopped after {self.timeout:g} s"
                if options.terminate
                else f"{self.origin}: the model failed to run ({_brief(exc)})"
            ) from None
        self._check_answers(len(images), labels, proba)
        return labels, proba

    def _check_answers(self, n, labels, proba):
        k = len(self.classes)
        if (
            not isinstance(labels, np.ndarray)
            or labels.shape != (n,)
            or not isinstance(proba, np.ndarray)
            or proba.shape != (n, k)
            or proba.dtype.kind != "f"
        ):
            raise ModelError(
                f"{self.origin}: the model answered {n} images with labels of shape "
                f"{getattr(labels, 'shape', None)} and probabilities of shape "
                f"{getattr(proba, 'shape', None)}; expected ({n},) and ({n}, {k})."
            )
        # NaN fails every comparison, and an infinity makes its row's sum one.
        if not (proba.min() >= 0 and np.abs(proba.sum(axis=1) - 1).max() <= 1e-3):
            raise ModelError(
                f"{self.origin}: the model's probabilities are not finite rows "
                f"in [0, 1] summing to 1."
            )
        if not np.array_equal(labels, self.classes[proba.argmax(axis=1)]):
            raise ModelError(
                f"{self.origin}: the model's labels are not the classes of its "
                f"highest probabilities."
            )


def _check_options(timeout, threads):
    _finite("timeout", timeout, 0.0, 3600.0, low_open=True)
    _in_range("threads", threads, 1, max_threads())


class _Watchdog:
    """Stops an onnxruntime run that is still going at its deadline.

    onnxruntime ends a run whose ``RunOptions.terminate`` is set from another
    thread; one thread per model sets it, so that a run costs no new thread
    (a ``threading.Timer`` per call would cost more than a small run).
    """

    def __init__(self):
        self._condition = threading.Condition()
        self._running = {}  # id -> (deadline, options)
        self._thread = None
        self._closing = False

    @contextlib.contextmanager
    def watching(self, options, deadline):
        key = id(options)
        with self._condition:
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(
                    target=self._watch, name="sk-mnist-onnx-watchdog", daemon=True
                )
                self._thread.start()
            self._running[key] = (deadline, options)
            self._condition.notify()
        try:
            yield
        finally:
            with self._condition:
                self._running.pop(key, None)

    def terminate_all(self):
        """Stop every run in progress now."""
        with self._condition:
            for _, options in self._running.values():
                options.terminate = True
            self._running.clear()

    def close(self):
        """End the watching thread (a later run starts it again)."""
        with self._condition:
            thread, self._thread = self._thread, None
            self._closing = True
            self._condition.notify()
        if thread is not None:
            thread.join()

    def _watch(self):
        with self._condition:
            while not self._closing:
                if not self._running:
                    self._condition.wait()
                    continue
                now = time.monotonic()
                for key, (deadline, options) in list(self._running.items()):
                    if deadline <= now:
                        options.terminate = True
                        del self._running[key]
                soonest = min((d for d, _ in self._running.values()), default=None)
                self._condition.wait(None if soonest is None else soonest - now)


def _check_graph(model, origin):
    """Check the graph against what ``to_onnx`` writes; return the classes."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    for node in graph.node:
        if node.op_type not in _OPERATORS.get(node.domain, ()):
            raise ModelError(
                f"{origin}: the operator {node.domain or 'ai.onnx'}.{node.op_type} "
                f"is not one sk-mnist export writes; refusing to run it."
            )
    inputs = [
        i for i in graph.input if i.name not in {t.name for t in graph.initializer}
    ]
    shape = _input_shape(inputs)
    if shape is None:
        found = ", ".join(_describe(i) for i in inputs) or "none"
        raise ModelError(
            f"{origin}: expected one input of uint8 images [None, height, width] "
            f"(written by sk-mnist export); its inputs are {_brief(found)}."
        )
    outputs = [o.name for o in graph.output]
    if outputs[:2] != _OUTPUTS:
        raise ModelError(
            f"{origin}: expected the outputs label and probabilities; got "
            f"{_brief(outputs)}."
        )
    producer = {output: node for node in graph.node for output in node.output}
    gather = producer.get("label")
    weights = {t.name: t for t in graph.initializer}
    if gather is None or gather.op_type != "Gather" or gather.input[0] not in weights:
        raise ModelError(
            f"{origin}: its labels are not gathered from a table of classes, as "
            f"sk-mnist export writes them."
        )
    table = weights[gather.input[0]]
    if table.data_type not in (TensorProto.INT64, TensorProto.STRING, TensorProto.BOOL):
        raise ModelError(f"{origin}: its classes are not integers or strings.")
    classes = numpy_helper.to_array(table)
    if classes.dtype.kind in "SO":  # onnx gives strings as bytes or str
        classes = np.array(
            [
                c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c)
                for c in classes.ravel()
            ]
        )
    if classes.ndim != 1 or len(classes) < 2:
        raise ModelError(f"{origin}: its classes are not a list of two or more labels.")
    return classes


#: A tensor per image may hold this many times the values of the widest of
#: an image and the model's weights. What ``to_onnx`` writes holds at most
#: one times (its widest tensors are the pixels, PCA's and the first layer's
#: input, or a hidden layer's units); the margin is for exporters of other
#: pipelines (double precision, a step that pads).
_GROWTH = 4
#: Initializers up to this many values are kept for shape inference (the
#: shapes Reshape reads); larger ones (weights) are given as typed inputs.
_SMALL = 1024
#: ai.onnx.ml operators onnx infers no shapes for; each maps a float matrix
#: to a float matrix of the same shape, as Cast to float does.
_LIKE_CAST = {"Normalizer", "Scaler"}


def _bound_tensors(model, origin):
    """Refuse a graph whose tensors are larger than its input and weights allow.

    Element-wise operators broadcast: ``[n, 784, 1] + [1, 1, 20000]`` is
    784 x 20,000 floats an image from a 20,000-value initializer. So every
    tensor's shape is inferred by onnx (strict, with data propagation) for
    batches of 1, 2 and 3 images. onnx names the ``-1`` of a Reshape of a
    symbolic batch a new symbol (``unk__0``), unrelated to the batch, so a
    symbolic batch could not say how a reshaped tensor grows; concrete
    batches can. A tensor must hold the same number of values for each
    batch (a constant, bounded by the largest initializer) or that many
    times the values of one image (bounded by ``_GROWTH`` times the widest
    of the image and the MatMul/Gemm weights); anything else, a tensor whose
    shape cannot be inferred included, is refused.

    Returns the bytes that the tensors of one image hold at most, all alive.
    """
    from onnx import TensorProto, helper, shape_inference

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    (image,) = [i for i in graph.input if i.name not in weights]
    pixels = math.prod(d.dim_value for d in image.type.tensor_type.shape.dim[1:])
    widest = max(
        (
            max(weights[name].dims, default=0)
            for node in graph.node
            if node.op_type in ("MatMul", "Gemm")
            for name in node.input
            if name in weights
        ),
        default=0,
    )
    bound = _GROWTH * max(pixels, widest)
    largest = max((math.prod(t.dims) for t in graph.initializer), default=0)
    nodes = []
    for node in graph.node:
        if node.domain == "ai.onnx.ml" and node.op_type in _LIKE_CAST:
            node = helper.make_node(
                "Cast", node.input, node.output, node.name, to=TensorProto.FLOAT
            )
        nodes.append(node)
    small = [t for t in graph.initializer if math.prod(t.dims) <= _SMALL]
    large = [
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in graph.initializer
        if math.prod(t.dims) > _SMALL
    ]
    shapes = []
    for batch in (1, 2, 3):
        sized = type(image)()
        sized.CopyFrom(image)
        sized.type.tensor_type.shape.dim[0].dim_value = batch
        probe = helper.make_model(
            helper.make_graph(nodes, "bound", [sized, *large], graph.output, small),
            opset_imports=model.opset_import,
            ir_version=model.ir_version,
        )
        try:
            inferred = shape_inference.infer_shapes(
                probe, strict_mode=True, data_prop=True
            )
        except Exception as exc:  # onnx's InferenceError subclasses Exception only
            raise ModelError(
                f"{origin}: onnx cannot infer the shapes of its tensors "
                f"({_brief(exc)}); refusing to run it."
            ) from None
        shapes.append(
            {
                v.name: _size(v)
                for v in (*inferred.graph.value_info, *inferred.graph.output)
            }
        )
    per_image = 0
    for name in dict.fromkeys(o for node in graph.node for o in node.output if o):
        sizes = [s.get(name, (None, 0)) for s in shapes]
        (one, item), (two, _), (three, _) = sizes
        if None in (one, two, three):
            raise ModelError(
                f"{origin}: the shape of the tensor {_brief(repr(name))} cannot be "
                f"inferred; refusing to run it."
            )
        if one == two == three:
            if one > largest:
                raise ModelError(
                    f"{origin}: the tensor {_brief(repr(name))} holds {one:,} "
                    f"values, more than its largest initializer ({largest:,}); "
                    f"refusing to run it."
                )
        elif two == 2 * one and three == 3 * one:
            if one > bound:
                raise ModelError(
                    f"{origin}: the tensor {_brief(repr(name))} holds {one:,} "
                    f"values per image, over the bound of {bound:,} ({_GROWTH} x "
                    f"{max(pixels, widest):,}, the widest of an image's {pixels:,} "
                    f"pixels and the model's weights); refusing to run it."
                )
            per_image += one * item
        else:
            raise ModelError(
                f"{origin}: the tensor {_brief(repr(name))} grows faster than the "
                f"batch ({one:,}, {two:,} and {three:,} values for 1, 2 and 3 "
                f"images); refusing to run it."
            )
    return per_image


def _size(value_info):
    """``(values, bytes a value)`` of a tensor of known shape, else ``(None, 0)``."""
    from onnx import helper

    tensor = value_info.type.tensor_type
    dims = tensor.shape.dim
    if (
        not value_info.type.HasField("tensor_type")
        or not tensor.HasField("shape")
        or not all(d.HasField("dim_value") for d in dims)
    ):
        return None, 0
    try:
        item = helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
    except Exception:  # an element type numpy has no dtype for
        item = 8
    return math.prod(d.dim_value for d in dims), item


def _describe(value_info):
    """``X: float [None, 6]``: an input's name, element type and shape."""
    from onnx import helper

    tensor = value_info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    kind = (
        helper.tensor_dtype_to_np_dtype(tensor.elem_type) if tensor.elem_type else "?"
    )
    return f"{value_info.name}: {kind} {dims}"


def _input_shape(inputs):
    from onnx import TensorProto

    if len(inputs) != 1:
        return None
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if (
        tensor.elem_type != TensorProto.UINT8
        or len(dims) != 3
        or dims[0] is not None
        or not all(isinstance(d, int) and 0 < d <= 4096 for d in dims[1:])
    ):
        return None
    return dims[1:]


def _refuse_external_data(graph, origin):
    """Refuse tensors stored outside the file, here and in any subgraph.

    onnxruntime would resolve them against the current folder (the model is
    read from bytes), reading whatever file they name; ``to_onnx`` never
    writes them.
    """
    from onnx import AttributeProto, TensorProto

    tensors = list(graph.initializer) + [s.values for s in graph.sparse_initializer]
    subgraphs = []
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.TENSOR:
                tensors.append(attribute.t)
            tensors.extend(attribute.tensors)
            if attribute.type == AttributeProto.GRAPH:
                subgraphs.append(attribute.g)
            subgraphs.extend(attribute.graphs)
    for tensor in tensors:
        if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
            raise ModelError(
                f"{origin}: the tensor {_brief(tensor.name)} is stored in another "
                f"file (external data); sk-mnist only runs self-contained models."
            )
    for subgraph in subgraphs:
        _refuse_external_data(subgraph, origin)


def _brief(value):
    """onnxruntime's messages span lines: one line of them."""
    return shorten(" ".join(str(value).split()), 200)
