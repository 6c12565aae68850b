"""What a graph may be: one that :func:`sk_mnist.onnx.to_onnx` writes.

``sk-mnist predict MODEL.onnx`` and ``sk-mnist serve`` read models that
anybody may hand them, and onnxruntime runs whatever graph a file holds: an
operator that makes a tensor of any declared shape, an endless ``Loop``,
initializers read from files beside the model, an ``Add`` that broadcasts
each image to millions of values, a shape computed so that onnx infers one
and onnxruntime makes another. So the graph is checked first against what
:func:`sk_mnist.onnx.to_onnx` writes, before onnx or onnxruntime reads its
tensors: at most 1,000 nodes and initializers, no sparse or external
tensors, one uint8 image input of at most 1024 x 1024 pixels, the outputs
``label`` and ``probabilities``, the classes as the initializer the labels
are gathered from, only element-wise, matrix and reshaping operators, every
Reshape's shape an initializer and every MatMul's weights one. Then every
tensor's shape is inferred by onnx and bounded per image by the image and
the model's weights, and so is each MatMul's work (onnxruntime checks the
timeout between operators only). Then the graph runs on one image and on
three with every tensor an output, each run bounded in time, to check that
onnxruntime makes the inferred shapes. :func:`check_model` does all of it
at load, for :class:`~sk_mnist.serving.ServedModel` (``_model.py``), which
then runs the model itself on those images and checks its answers.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .._utils._text import shorten
from ..exceptions import ModelError

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

#: The most nodes and initializers a graph may hold. ``to_onnx`` writes 3 to
#: 7 nodes and 2 to 5 initializers per Dense layer plus a dozen of each (an
#: eight-layer gelu network: 68 nodes), so this holds networks of over a
#: hundred layers; onnx's checks and inference take time in proportion to
#: the nodes (a graph of 100,000 Relu took 22 s to load).
_MAX_NODES = 1000
_MAX_INITIALIZERS = 1000
#: The oldest IR and opset served: ``to_onnx``'s oldest target_opset, 13
#: (sk_mnist.onnx.MIN_OPSET, not imported here: that module imports
#: skl2onnx), needs IR 7. The newest are what the installed onnx knows.
_MIN_IR, _MIN_OPSET = 7, 13
#: The most pixels an image may have: 1024 x 1024. Exports of MNIST read
#: 28 x 28; one image this large is 1 MiB, and as v2 JSON (at most 4 bytes a
#: pixel) still fits in ``sk-mnist serve``'s default 8 MiB body; a tensor
#: per image then holds at most ``_GROWTH`` x 1 Mi values unless the weights
#: are wider.
_MAX_PIXELS = 1024 * 1024
#: A tensor per image may hold this many times the values of the widest of
#: an image and the model's weights, and a MatMul or Gemm may multiply this
#: many rows per image by its weights. What ``to_onnx`` writes holds one
#: times (its widest tensors are the pixels, PCA's and the first layer's
#: input, or a hidden layer's units) and multiplies one row per image; the
#: margin is for exporters of other pipelines (double precision, a step
#: that pads).
_GROWTH = 4
#: Reshape's shape: an int64 initializer of at most this many dimensions.
_MAX_RANK = 8
#: ai.onnx.ml operators onnx infers no shapes for; each maps a float matrix
#: to a float matrix of the same shape, as Cast to float does.
_LIKE_CAST = {"Normalizer", "Scaler"}
#: Attribute kinds of the allowed operators (Cast's ``to``, Softmax's axis,
#: Scaler's offsets, Normalizer's norm...); none takes a tensor or a graph.
_ATTRIBUTE_KINDS = {"FLOAT", "INT", "STRING", "FLOATS", "INTS"}


def check_model(data, origin, *, timeout, watchdog):
    """Parse ``data``; refuse it unless it is a graph ``to_onnx`` writes.

    Parameters
    ----------
    data : bytes
        The ONNX file's content.
    origin : str
        Named in error messages.
    timeout : float
        Seconds each run of the shape check may take.
    watchdog : _Watchdog
        The served model's (``_model.py``), which stops those runs at their
        deadline.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
        The labels, in the order of the probabilities' columns.
    bytes_per_image : int
        The bytes of all the tensors of one image, as if all were alive at
        once.
    input_name : str
        The name of the model's input.
    image_shape : tuple of (int, int)
        Height and width of the uint8 images the model reads.

    Raises
    ------
    ModelError
        Named in one line: see :class:`~sk_mnist.serving.ServedModel`.
    """
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError subclasses Exception only
        raise ModelError(
            f"{origin}: not a readable ONNX model ({_brief(exc)})."
        ) from None
    # Before the checker and shape inference, which read every tensor
    # (densifying sparse ones, opening the files external data names) and
    # take time in proportion to the nodes.
    _check_container(model, origin)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{origin}: not a valid ONNX model ({_brief(exc)}).") from None
    classes = _check_graph(model, origin)
    # Before onnxruntime, which folds constant tensors as it loads.
    bytes_per_image, shapes, types = _bound_tensors(model, classes, origin)
    (image,) = model.graph.input
    input_name = image.name
    image_shape = tuple(d.dim_value for d in image.type.tensor_type.shape.dim[1:])
    # onnx's inferred shapes, checked against onnxruntime's own.
    _check_shapes_at_run(
        model, shapes, types, input_name, image_shape, origin, timeout, watchdog
    )
    # The parsed model and its tensors go with this call, before onnxruntime
    # copies them again.
    return classes, bytes_per_image, input_name, image_shape


def probe_batches(image_shape):
    """A blank image, then a batch of it and two images of noise."""
    blank = np.zeros((1, *image_shape), np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (2, *image_shape), dtype=np.uint8)
    return [
        ("a blank image", blank),
        ("a blank image and two of noise", np.concatenate([blank, noise])),
    ]


def _check_shapes_at_run(
    model, shapes, types, input_name, image_shape, origin, timeout, watchdog
):
    """Run the graph with every tensor an output; refuse any shape not inferred.

    ``model`` gets those outputs.

    The bounds of :func:`_bound_tensors` hold only if onnxruntime makes
    the shapes onnx inferred. The graph checks leave nothing for them to
    disagree on (no shape is computed), and this makes sure of it, on the
    probe's batches of 1 and 3 images, before the model is served.
    """
    import onnxruntime
    from onnx import helper

    # In place: the model is not read again, and its weights may be large.
    declared = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in declared:
                declared.add(name)
                model.graph.output.append(
                    helper.make_tensor_value_info(name, types[name], None)
                )
    names = [o.name for o in model.graph.output]
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # Every node as written: no fusion or folding between onnx's shapes
    # and the tensors compared with them.
    options.graph_optimization_level = (
        onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    session = _session(model.SerializeToString(), options, origin)
    for what, images in probe_batches(image_shape):
        run = onnxruntime.RunOptions()
        deadline = time.monotonic() + timeout
        try:
            with watchdog.watching(run, deadline):
                tensors = session.run(names, {input_name: images}, run)
        except Exception as exc:  # onnxruntime's errors subclass Exception only
            problem = (
                f"stopped after {timeout:g} s"
                if run.terminate
                else f"failed to run ({_brief(exc)})"
            )
            raise ModelError(
                f"{origin}: the model {problem} (tried at load, on {what}); "
                f"refusing to serve it."
            ) from None
        inferred = shapes[len(images)]
        for name, tensor in zip(names, tensors, strict=True):
            if tuple(np.shape(tensor)) != inferred[name]:
                raise ModelError(
                    f"{origin}: the tensor {_brief(repr(name))} has shape "
                    f"{tuple(np.shape(tensor))} on {what}, where onnx inferred "
                    f"{inferred[name]}; refusing to run it."
                )


def _check_container(model, origin):
    """Refuse what ``to_onnx`` never writes, before onnx reads any tensor.

    Too many nodes or initializers, an IR or opset it cannot write, local
    functions, operators other than element-wise, matrix and reshaping ones,
    sparse tensors (onnx and onnxruntime densify them: an unused 16384 x
    16384 one cost 1 GiB), attributes holding tensors or graphs, and tensors
    stored outside the file (onnxruntime would resolve them against the
    current folder, the model being read from bytes, reading whatever file
    they name).
    """
    import onnx
    from onnx import AttributeProto, TensorProto, helper

    if not model.HasField("graph"):  # an empty file parses as an empty model
        raise ModelError(f"{origin}: not an ONNX model (it holds no graph).")
    graph = model.graph
    for what, count, limit in (
        ("nodes", len(graph.node), _MAX_NODES),
        ("initializers", len(graph.initializer), _MAX_INITIALIZERS),
    ):
        if count > limit:
            raise ModelError(
                f"{origin}: its graph has {count:,} {what}, over the {limit:,} "
                f"sk-mnist serves (export writes dozens); refusing to load it."
            )
    if not _MIN_IR <= model.ir_version <= onnx.IR_VERSION:
        raise ModelError(
            f"{origin}: its IR version is {shorten(str(model.ir_version), 40)}; "
            f"sk-mnist serves {_MIN_IR} to {onnx.IR_VERSION}."
        )
    newest = {
        "": onnx.defs.onnx_opset_version(),
        "ai.onnx.ml": helper.VERSION_TABLE[-1][3],
    }
    oldest = {"": _MIN_OPSET, "ai.onnx.ml": 1}
    seen = set()
    for opset in model.opset_import:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        name = domain or "ai.onnx"
        if domain not in newest or domain in seen:
            raise ModelError(
                f"{origin}: it imports the opset {_brief(repr(opset.domain or name))}"
                f"{' twice' if domain in seen else ''}; sk-mnist export writes "
                f"ai.onnx and ai.onnx.ml, once each."
            )
        seen.add(domain)
        if not oldest[domain] <= opset.version <= newest[domain]:
            raise ModelError(
                f"{origin}: its {name} opset is {shorten(str(opset.version), 40)}; "
                f"sk-mnist serves {oldest[domain]} to {newest[domain]}."
            )
    if "" not in seen:
        raise ModelError(f"{origin}: it imports no ai.onnx opset.")
    if model.functions:
        raise ModelError(
            f"{origin}: it defines functions ({_brief(model.functions[0].name)}), "
            f"which sk-mnist export never writes; refusing to run it."
        )
    for sparse in graph.sparse_initializer:
        raise ModelError(
            f"{origin}: the sparse tensor {_brief(repr(sparse.values.name))} is "
            f"not one sk-mnist export writes; refusing to read it."
        )
    for node in graph.node:
        if node.op_type not in _OPERATORS.get(node.domain, ()):
            raise ModelError(
                f"{origin}: the operator {node.domain or 'ai.onnx'}.{node.op_type} "
                f"is not one sk-mnist export writes; refusing to run it."
            )
    for node in graph.node:
        for attribute in node.attribute:
            kind = AttributeProto.AttributeType.Name(attribute.type)
            if kind not in _ATTRIBUTE_KINDS:
                raise ModelError(
                    f"{origin}: the attribute {_brief(repr(attribute.name))} of a "
                    f"{_brief(node.op_type)} node holds a {kind.lower()}, which "
                    f"sk-mnist export never writes; refusing to run it."
                )
    for tensor in graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
            raise ModelError(
                f"{origin}: the tensor {_brief(repr(tensor.name))} is stored in "
                f"another file (external data); sk-mnist only runs self-contained "
                f"models."
            )


def _check_graph(model, origin):
    """Check the graph against what ``to_onnx`` writes; return the classes.

    Its one image input and two outputs, and where each
    operator reads from: every Reshape's shape is an initializer (so no shape
    is computed, and onnx infers every one as onnxruntime makes it), every
    MatMul and Gemm multiplies a tensor of the image by a matrix of weights,
    Scaler and Normalizer act on the image's floats, Cast makes floats, and
    the one Gather picks the labels from a table of classes.
    """
    from onnx import TensorProto

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    inputs = list(graph.input)
    shape = _input_shape(inputs) if not any(i.name in weights for i in inputs) else None
    if shape is None:
        found = ", ".join(_describe(i) for i in inputs) or "none"
        raise ModelError(
            f"{origin}: expected one input of uint8 images [None, height, width] "
            f"(written by sk-mnist export); its inputs are {_brief(found)}."
        )
    if math.prod(shape) > _MAX_PIXELS:
        raise ModelError(
            f"{origin}: it reads images of {shape[0]:,} x {shape[1]:,} pixels, over "
            f"the {_MAX_PIXELS:,} (1024 x 1024) sk-mnist serves."
        )
    outputs = [o.name for o in graph.output]
    if outputs != _OUTPUTS:
        raise ModelError(
            f"{origin}: expected the outputs label and probabilities; got "
            f"{_brief(outputs)}."
        )
    image = {inputs[0].name}  # the tensors computed from the image
    for node in graph.node:
        if any(name in image for name in node.input):
            image.update(node.output)
        op, what = node.op_type, f"a {node.op_type} node"
        if op == "Reshape" and not _is_shape(weights.get(node.input[1])):
            raise ModelError(
                f"{origin}: {what} reads its shape from the tensor "
                f"{_brief(repr(node.input[1]))}, not from an int64 initializer of "
                f"at most {_MAX_RANK} values as sk-mnist export writes; refusing "
                f"to run it."
            )
        if op in ("MatMul", "Gemm") and (
            node.input[0] not in image
            or node.input[1] not in weights
            or len(weights[node.input[1]].dims) != 2
        ):
            raise ModelError(
                f"{origin}: {what} multiplies {_brief(repr(node.input[0]))} by "
                f"{_brief(repr(node.input[1]))}; sk-mnist export multiplies a "
                f"tensor of the image by a matrix of weights (an initializer)."
            )
        if op in _LIKE_CAST and node.input[0] not in image:
            raise ModelError(
                f"{origin}: {what} reads {_brief(repr(node.input[0]))}, which is "
                f"not computed from the image; refusing to run it."
            )
        if op == "Cast" and _attribute(node, "to") not in (
            TensorProto.FLOAT,
            TensorProto.DOUBLE,
        ):
            to = _attribute(node, "to")
            kind = (
                TensorProto.DataType.Name(to)
                if to in TensorProto.DataType.values()
                else to
            )
            raise ModelError(
                f"{origin}: {what} makes {kind} tensors; sk-mnist export casts "
                f"to floats only."
            )
        if op == "Gather" and list(node.output) != ["label"]:
            raise ModelError(
                f"{origin}: {what} computes {_brief(repr(node.output[0]))}; the "
                f"only Gather sk-mnist export writes picks the labels."
            )
    producer = {output: node for node in graph.node for output in node.output}
    gather = producer.get("label")
    if (
        gather is None
        or gather.op_type != "Gather"
        or gather.input[0] not in weights
        or (_attribute(gather, "axis") or 0) != 0
    ):
        raise ModelError(
            f"{origin}: its labels are not gathered from a table of classes, as "
            f"sk-mnist export writes them."
        )
    classes = _classes(weights[gather.input[0]], origin)
    declared = graph.output[0].type.tensor_type.elem_type
    if declared != weights[gather.input[0]].data_type:
        raise ModelError(
            f"{origin}: its labels are declared {_dtype(declared)}, unlike its "
            f"classes ({_dtype(weights[gather.input[0]].data_type)})."
        )
    return classes


def _classes(table, origin):
    """The labels of the classes' table: integers, booleans or UTF-8 strings."""
    from onnx import TensorProto, numpy_helper

    if table.data_type not in (TensorProto.INT64, TensorProto.STRING, TensorProto.BOOL):
        raise ModelError(
            f"{origin}: its classes are not integers, booleans or strings."
        )
    if len(table.dims) != 1 or table.dims[0] < 2:
        raise ModelError(f"{origin}: its classes are not a list of two or more labels.")
    if table.data_type == TensorProto.STRING:
        if len(table.string_data) != table.dims[0]:
            raise ModelError(
                f"{origin}: its table of classes holds {len(table.string_data):,} "
                f"labels where it declares {table.dims[0]:,}."
            )
        try:
            classes = np.array([label.decode("utf-8") for label in table.string_data])
        except UnicodeDecodeError as exc:
            raise ModelError(
                f"{origin}: its class label {_brief(repr(exc.object))} is not UTF-8 "
                f"text ({exc.reason} at byte {exc.start})."
            ) from None
    else:
        classes = numpy_helper.to_array(table)
    if len(np.unique(classes)) != len(classes):
        raise ModelError(
            f"{origin}: its classes repeat a label ({_brief(classes.tolist())})."
        )
    return classes


def _is_shape(tensor):
    from onnx import TensorProto

    return (
        tensor is not None
        and tensor.data_type == TensorProto.INT64
        and len(tensor.dims) == 1
        and tensor.dims[0] <= _MAX_RANK
    )


def _attribute(node, name):
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None


def _bound_tensors(model, classes, origin):
    """Refuse tensors and products larger than the image and weights allow.

    Element-wise operators broadcast: ``[n, 784, 1] + [1, 1, 20000]`` is
    784 x 20,000 floats an image from a 20,000-value initializer. So every
    tensor's shape is inferred by onnx for batches of 1, 2 and 3 images, from
    the shapes alone: :func:`_check_graph` leaves no shape computed, so onnx's
    data propagation (which carries values through Cast and Scaler unlike
    onnxruntime) is not needed. A symbolic batch could not say how a
    reshaped tensor grows (onnx names the ``-1`` of a Reshape a new symbol);
    concrete batches can. A tensor must hold the same number of values for
    each batch (a constant, bounded by the largest initializer) or that many
    times the values of one image (bounded by ``_GROWTH`` times the widest of
    the image and the MatMul/Gemm weights); anything else, a tensor whose
    shape cannot be inferred included, is refused. A MatMul or Gemm may
    multiply at most ``_GROWTH`` rows per image by its weights, so that one
    operator's work per image is a few times its weights' size: onnxruntime
    checks the timeout between operators only. Labels and probabilities must
    be ``(n,)`` and ``(n, n_classes)`` floats.

    Returns the bytes that the tensors of one image hold at most, all alive,
    the inferred shape of every tensor for 1 and 3 images, and each tensor's
    element type.
    """
    from onnx import TensorProto, helper, shape_inference

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    (image,) = graph.input
    pixels = math.prod(d.dim_value for d in image.type.tensor_type.shape.dim[1:])
    products = [node for node in graph.node if node.op_type in ("MatMul", "Gemm")]
    widest = max((max(weights[node.input[1]].dims) for node in products), default=0)
    bound = _GROWTH * max(pixels, widest)
    largest = max((math.prod(t.dims) for t in graph.initializer), default=0)
    nodes = []
    for node in graph.node:
        if node.domain == "ai.onnx.ml" and node.op_type in _LIKE_CAST:
            node = helper.make_node(
                "Cast", node.input, node.output, node.name, to=TensorProto.FLOAT
            )
        nodes.append(node)
    # Only the shapes Reshape reads are given as data; the weights as typed
    # inputs, which onnx does not copy.
    shapes_read = {node.input[1] for node in graph.node if node.op_type == "Reshape"}
    kept = [t for t in graph.initializer if t.name in shapes_read]
    typed = [
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in graph.initializer
        if t.name not in shapes_read
    ]
    shapes, types = {}, {}
    for batch in (1, 2, 3):
        sized = type(image)()
        sized.CopyFrom(image)
        sized.type.tensor_type.shape.dim[0].dim_value = batch
        probe = helper.make_model(
            helper.make_graph(nodes, "bound", [sized, *typed], graph.output, kept),
            opset_imports=model.opset_import,
            ir_version=model.ir_version,
        )
        try:
            inferred = shape_inference.infer_shapes(probe, strict_mode=True)
        except Exception as exc:  # onnx's InferenceError subclasses Exception only
            raise ModelError(
                f"{origin}: onnx cannot infer the shapes of its tensors "
                f"({_brief(exc)}); refusing to run it."
            ) from None
        values = (*inferred.graph.value_info, *inferred.graph.output)
        shapes[batch] = {v.name: _dims(v) for v in values}
        types.update((v.name, v.type.tensor_type.elem_type) for v in values)
    k = len(classes)
    for n in (1, 2, 3):
        label, proba = shapes[n].get("label"), shapes[n].get("probabilities")
        if (
            label != (n,)
            or proba != (n, k)
            or types.get("probabilities") != TensorProto.FLOAT
        ):
            raise ModelError(
                f"{origin}: for a batch of {n}, onnx infers labels of shape "
                f"{label} and {_dtype(types.get('probabilities'))} probabilities "
                f"of shape {proba}; expected ({n},) and float32 ({n}, {k})."
            )
    per_image, sizes = 0, {}
    for node in graph.node:
        for name in node.output:
            if not name:
                continue
            dims = [shapes[batch].get(name) for batch in (1, 2, 3)]
            if None in dims:
                raise ModelError(
                    f"{origin}: the shape of the tensor {_brief(repr(name))} cannot "
                    f"be inferred; refusing to run it."
                )
            one, two, three = (math.prod(d) for d in dims)
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
                        f"values per image, over the bound of {bound:,} ({_GROWTH} "
                        f"x {max(pixels, widest):,}, the widest of an image's "
                        f"{pixels:,} pixels and the model's weights); refusing to "
                        f"run it."
                    )
                per_image += one * _itemsize(types.get(name))
            else:
                raise ModelError(
                    f"{origin}: the tensor {_brief(repr(name))} grows faster than "
                    f"the batch ({one:,}, {two:,} and {three:,} values for 1, 2 "
                    f"and 3 images); refusing to run it."
                )
            sizes[name] = one
        if node.op_type in _LIKE_CAST and types.get(node.input[0]) not in (
            TensorProto.FLOAT,
            TensorProto.DOUBLE,
        ):
            raise ModelError(
                f"{origin}: a {node.op_type} node reads "
                f"{_brief(repr(node.input[0]))}, which is not floats; refusing to "
                f"run it."
            )
        if node in products:
            _bound_product(node, weights[node.input[1]], sizes, origin)
    return per_image, {1: shapes[1], 3: shapes[3]}, types


def _bound_product(node, weights, sizes, origin):
    """Refuse a MatMul or Gemm that multiplies many rows per image by its weights.

    Its work per image is its input's rows per image times its weights'
    size; ``to_onnx``'s multiply one row per image.
    """
    transposed = node.op_type == "Gemm" and _attribute(node, "transB")
    depth = weights.dims[1] if transposed else weights.dims[0]
    values = sizes.get(node.input[0])
    if values is None:  # the image itself: a Gemm or MatMul of uint8 fails anyway
        return
    rows = values / max(depth, 1)
    if rows > _GROWTH:
        raise ModelError(
            f"{origin}: a {node.op_type} node multiplies {rows:,.0f} rows of "
            f"{_brief(repr(node.input[0]))} per image by its "
            f"{weights.dims[0]:,} x {weights.dims[1]:,} weights, over the "
            f"{_GROWTH} sk-mnist serves (export multiplies one); refusing to run "
            f"it."
        )


def _session(data, options, origin):
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(
            data, options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime's errors subclass Exception only
        raise ModelError(
            f"{origin}: onnxruntime cannot run this model ({_brief(exc)})."
        ) from None


def _dims(value_info):
    """A tensor's shape, or ``None`` where onnx could not infer it all."""
    tensor = value_info.type.tensor_type
    if (
        not value_info.type.HasField("tensor_type")
        or not tensor.HasField("shape")
        or not all(d.HasField("dim_value") for d in tensor.shape.dim)
    ):
        return None
    return tuple(d.dim_value for d in tensor.shape.dim)


def _itemsize(elem_type):
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except Exception:  # an element type numpy has no dtype for
        return 8


def _dtype(elem_type):
    """``float32``: onnx's element type as numpy names it."""
    from onnx import helper

    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # an element type numpy has no dtype for
        return f"type {elem_type}"


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
        or not all(isinstance(d, int) and d > 0 for d in dims[1:])
    ):
        return None
    return dims[1:]


def _brief(value):
    """onnxruntime's messages span lines: one line of them."""
    return shorten(" ".join(str(value).split()), 200)
