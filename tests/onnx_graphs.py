"""Hand-written ONNX graphs shaped as sk-mnist export writes them, hostile or not.

uint8 images ``X`` in; ``label`` (gathered from an initializer ``classes``)
and ``probabilities`` out. Used by the serving and command-line tests.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(
    nodes, initializers=(), *, classes=None, out_width=10, opset=21, ml=False, side=28
):
    """A graph of uint8 images in, label and probabilities out, as export names them.

    ``ml`` imports the ai.onnx.ml opset too; the images are ``side`` x ``side``.
    """
    classes = np.arange(10, dtype=np.int64) if classes is None else classes
    graph = helper.make_graph(
        nodes,
        "hostile",
        [helper.make_tensor_value_info("X", TensorProto.UINT8, [None, side, side])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, [None, out_width]
            ),
        ],
        [numpy_helper.from_array(classes, "classes"), *initializers],
    )
    opsets = [helper.make_opsetid("", opset)]
    if ml:
        opsets.append(helper.make_opsetid("ai.onnx.ml", 3))
    model = helper.make_model(graph, opset_imports=opsets)
    return model.SerializeToString()


def head(width=10, scale=1.0, seed=None):
    """Cast, flatten, one MatMul to ``width`` outputs, Softmax, ArgMax, Gather.

    The weights are all ``scale``, or drawn from a normal distribution of
    that standard deviation with ``seed``.
    """
    weights = (
        np.full((784, width), scale, dtype=np.float32)
        if seed is None
        else np.random.default_rng(seed).normal(0, scale, (784, width))
    ).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["X"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["f", "shape"], ["rows"]),
        helper.make_node("MatMul", ["rows", "W"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["i"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "i"], ["label"], axis=0),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"),
        numpy_helper.from_array(weights, "W"),
    ]
    return nodes, initializers


def constant_of_shape():
    nodes, initializers = head()
    nodes.insert(
        0,
        helper.make_node(
            "ConstantOfShape",
            ["big"],
            ["zeros"],
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]),
        ),
    )
    initializers.append(
        numpy_helper.from_array(np.array([50_000, 50_000], np.int64), "big")
    )
    return model(nodes, initializers)


def endless_loop():
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", ["v_in"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("iter", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.BOOL, []),
        ],
    )
    nodes, initializers = head()
    nodes.insert(0, helper.make_node("Loop", ["", "yes", "yes"], ["v"], body=body))
    initializers.append(numpy_helper.from_array(np.array(True), "yes"))
    return model(nodes, initializers)


def external_data(location="../../etc/passwd"):
    nodes, initializers = head()
    weights = initializers[1]
    weights.ClearField("float_data")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    entry = weights.external_data.add()
    entry.key, entry.value = "location", location
    return model(nodes, initializers)


def narrow_probabilities():
    nodes, initializers = head(width=3)
    return model(nodes, initializers, out_width=3)


def nan_probabilities():
    nodes, initializers = head()
    nodes[2:3] = [
        helper.make_node("MatMul", ["rows", "W"], ["z0"]),
        helper.make_node("Mul", ["z0", "nan"], ["z"]),
    ]
    initializers.append(numpy_helper.from_array(np.array(np.nan, np.float32), "nan"))
    return model(nodes, initializers)


def _tail(nodes, initializers, x, width, side=28):
    """MatMul ``x`` (n, width) to 10 scores, then Softmax, ArgMax and Gather."""
    nodes += [
        helper.make_node("MatMul", [x, "W_out"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["i"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "i"], ["label"], axis=0),
    ]
    initializers.append(
        numpy_helper.from_array(np.full((width, 10), 0.01, np.float32), "W_out")
    )
    return model(nodes, initializers, side=side)


def broadcast_bomb(width=20_000):
    """Issue 27's graph: each image broadcast to 784 x ``width`` floats by an Add.

    Cast -> Reshape [-1, 784, 1] -> Add a [1, 1, width] zero initializer ->
    MatMul back to [n, 784, 1] -> Reshape [-1, 784] -> MatMul, Softmax,
    ArgMax, Gather: allowed operators only, and a small file.
    """
    nodes = [
        helper.make_node("Cast", ["X"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["f", "column"], ["columns"]),
        helper.make_node("Add", ["columns", "zeros"], ["wide"]),
        helper.make_node("MatMul", ["wide", "W_back"], ["narrow"]),
        helper.make_node("Reshape", ["narrow", "rows_shape"], ["rows"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, 784, 1], np.int64), "column"),
        numpy_helper.from_array(np.zeros((1, 1, width), np.float32), "zeros"),
        numpy_helper.from_array(np.zeros((width, 1), np.float32), "W_back"),
        numpy_helper.from_array(np.array([-1, 784], np.int64), "rows_shape"),
    ]
    return _tail(nodes, initializers, "rows", 784)


def outer_product():
    """A tensor of (784 n) x (784 n) values: it grows with the batch's square."""
    nodes = [
        helper.make_node("Cast", ["X"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["f", "column"], ["columns"]),
        helper.make_node("Reshape", ["f", "row"], ["row_vector"]),
        helper.make_node("MatMul", ["columns", "row_vector"], ["square"]),
        helper.make_node("Reshape", ["square", "rows_shape"], ["rows"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, 1], np.int64), "column"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "row"),
        numpy_helper.from_array(np.array([-1, 784], np.int64), "rows_shape"),
    ]
    return _tail(nodes, initializers, "rows", 784)


def constant_bomb(size=4000):
    """Two small initializers broadcast to a constant of ``size`` x ``size``."""
    nodes, initializers = head()
    nodes.append(helper.make_node("Add", ["across", "down"], ["square"]))
    initializers += [
        numpy_helper.from_array(np.zeros((1, size), np.float32), "across"),
        numpy_helper.from_array(np.zeros((size, 1), np.float32), "down"),
    ]
    return model(nodes, initializers)


def shape_from_pixels():
    """A Reshape whose shape is read from the image's pixels."""
    nodes, initializers = head()
    nodes[1:2] = [
        helper.make_node("Cast", ["X"], ["xi"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["xi", "flat"], ["pixels"]),
        helper.make_node("Gather", ["pixels", "first_two"], ["data_shape"], axis=0),
        helper.make_node("Reshape", ["f", "data_shape"], ["rows"]),
    ]
    initializers += [
        numpy_helper.from_array(np.array([-1], np.int64), "flat"),
        numpy_helper.from_array(np.array([0, 1], np.int64), "first_two"),
    ]
    return model(nodes, initializers)


def unnormalised():
    """Scores where probabilities belong: no Softmax."""
    nodes, initializers = head()
    nodes[3] = helper.make_node("Identity", ["z"], ["probabilities"])
    return model(nodes, initializers)


def nan_weights():
    """One weight of the network is NaN, as a diverged training leaves them."""
    nodes, initializers = head(scale=0.01, seed=0)
    weights = numpy_helper.to_array(initializers[1]).copy()
    weights[400, 3] = np.nan
    initializers[1] = numpy_helper.from_array(weights, "W")
    return model(nodes, initializers)


def nan_on_white():
    """Sound on blank and noisy images; NaN once the ink passes ``K``.

    The probabilities are multiplied by sqrt(K - ink) / sqrt(K - ink), with ink
    the sum of the pixels and K one less than an all-white image's.
    """
    nodes, initializers = head(scale=0.01, seed=0)
    nodes[3:4] = [
        helper.make_node("Softmax", ["z"], ["p"], axis=1),
        helper.make_node("MatMul", ["rows", "ones"], ["ink"]),
        helper.make_node("Sub", ["K", "ink"], ["room"]),
        helper.make_node("Sqrt", ["room"], ["root"]),
        helper.make_node("Div", ["root", "root"], ["one"]),
        helper.make_node("Mul", ["p", "one"], ["probabilities"]),
    ]
    initializers += [
        numpy_helper.from_array(np.ones((784, 1), np.float32), "ones"),
        numpy_helper.from_array(np.array(784 * 255 - 1, np.float32), "K"),
    ]
    return model(nodes, initializers)


def computed_shape():
    """A Reshape whose shape is computed (Add of two int64 initializers).

    onnx's data propagation adds them; were the addends cast first, through
    a Cast to bool or int8 as onnxruntime converts and onnx does not, the
    inferred shape would lie (tester T1's finding 1).
    """
    nodes, initializers = head()
    nodes[1:2] = [
        helper.make_node("Add", ["minus1", "pixels"], ["shape_sum"]),
        helper.make_node("Reshape", ["f", "shape_sum"], ["rows"]),
    ]
    initializers[0:1] = [
        numpy_helper.from_array(np.array([-1, 0], np.int64), "minus1"),
        numpy_helper.from_array(np.array([0, 784], np.int64), "pixels"),
    ]
    return model(nodes, initializers)


def bool_cast_lie():
    """T1's boolcast_lie_28x28: a shape [-1, 784] to onnx, [-1, 1] to onnxruntime.

    784 cast to bool and back is 1 in onnxruntime, still 784 to onnx's data
    propagation; the Add then broadcasts each image to 784 x 784 floats, and
    a Gather of n zero indices makes the batch's rows again: it loaded, and
    512 images took 1.3 GB.
    """
    nodes = [
        helper.make_node("Cast", ["X"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["t784"], ["tb"], to=TensorProto.BOOL),
        helper.make_node("Cast", ["tb"], ["ti"], to=TensorProto.INT64),
        helper.make_node("Add", ["minus1", "ti"], ["shape_lie"]),
        helper.make_node("Reshape", ["f", "shape_lie"], ["cols"]),
        helper.make_node("Add", ["cols", "row"], ["wide"]),
        helper.make_node("Reshape", ["f", "flat2"], ["xr"]),
        helper.make_node("MatMul", ["xr", "zcol"], ["zc"]),
        helper.make_node("Reshape", ["zc", "flat1"], ["zf"]),
        helper.make_node("Cast", ["zf"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["wide", "idx"], ["picked"], axis=0),
    ]
    initializers = [
        numpy_helper.from_array(np.array([0, 784], np.int64), "t784"),
        numpy_helper.from_array(np.array([-1, 0], np.int64), "minus1"),
        numpy_helper.from_array(np.array([-1, 784], np.int64), "flat2"),
        numpy_helper.from_array(np.array([-1], np.int64), "flat1"),
        numpy_helper.from_array(np.zeros((784, 1), np.float32), "zcol"),
        numpy_helper.from_array(np.zeros((1, 784), np.float32), "row"),
    ]
    return _tail(nodes, initializers, "picked", 784)


def scaler_lie():
    """T1's lie_48_k4, one stage: Scalers turn shapes [-1, 48] and [-1, 1] round.

    The old bound took Scaler for a Cast to float, which keeps the values;
    onnxruntime subtracts the offsets. So onnx inferred [n, 48] tensors
    where each image became 48 x 48 floats (and 48**5 with four stages: 1.16
    GB at load, from a 3.4 KB file).
    """

    def scaler(source, target, offset):
        return [
            helper.make_node("Scaler", [source], [f"{target}f"], domain="ai.onnx.ml",
                             offset=[0.0, offset], scale=[1.0, 1.0]),
            helper.make_node("Cast", [f"{target}f"], [target], to=TensorProto.INT64),
        ]  # fmt: skip

    nodes = [
        helper.make_node("Cast", ["X"], ["f"], to=TensorProto.FLOAT),
        *scaler("t48", "T1", 47.0),  # inferred [-1, 48], made [-1, 1]
        *scaler("t1", "T3", -47.0),  # inferred [-1, 1], made [-1, 48]
        helper.make_node("Reshape", ["f", "T1"], ["cols"]),
        helper.make_node("Add", ["cols", "row"], ["wide"]),
        helper.make_node("MatMul", ["wide", "W_down"], ["down"]),
        helper.make_node("Reshape", ["down", "T3"], ["back"]),
        helper.make_node("Add", ["back", "row"], ["rows"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, 48], np.int64), "t48"),
        numpy_helper.from_array(np.array([-1, 1], np.int64), "t1"),
        numpy_helper.from_array(np.zeros((1, 48), np.float32), "row"),
        numpy_helper.from_array(np.full((48, 1), 1e-3, np.float32), "W_down"),
    ]
    onnx_model = onnx.load_model_from_string(
        _tail(nodes, initializers, "rows", 48, side=48)
    )
    # 6 x 8 images, as T1's.
    dims = onnx_model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value, dims[2].dim_value = 6, 8
    onnx_model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    return onnx_model.SerializeToString()


def scaler_on_integers():
    """A Scaler on the image's int64 labels, off the float data path."""
    nodes, initializers = head()
    nodes += [
        helper.make_node("Scaler", ["i"], ["scaled"], domain="ai.onnx.ml",
                         offset=[0.0], scale=[1.0]),
    ]  # fmt: skip
    return model(nodes, initializers, ml=True)


def sparse_initializer(dims=(1000, 1000), external_indices=None):
    """An unused sparse initializer of ``dims`` (T1: onnxruntime densified 1 GiB).

    ``external_indices`` stores its indices in that file instead.
    """
    onnx_model = onnx.load_model_from_string(model(*head()))
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.0], np.float32), "sp"),
        numpy_helper.from_array(np.array([5], np.int64), "sp_idx"),
        list(dims),
    )
    if external_indices is not None:
        sparse.indices.ClearField("int64_data")
        sparse.indices.ClearField("raw_data")
        sparse.indices.data_location = TensorProto.EXTERNAL
        entry = sparse.indices.external_data.add()
        entry.key, entry.value = "location", external_indices
    onnx_model.graph.sparse_initializer.append(sparse)
    return onnx_model.SerializeToString()


def non_utf8_classes():
    """String classes that are not UTF-8 text."""
    onnx_model = onnx.load_model_from_string(model(*head()))
    table = helper.make_tensor(
        "classes",
        TensorProto.STRING,
        [10],
        [b"\xff\xfe" + bytes([i]) for i in range(10)],
    )
    onnx_model.graph.initializer[0].CopyFrom(table)
    onnx_model.graph.output[0].type.tensor_type.elem_type = TensorProto.STRING
    return onnx_model.SerializeToString()


def slow_product(side=64, depth=32):
    """T1's slow_one_node, small: a MatMul of ``side**2 / depth`` rows per image.

    Its tensors stay within the bound (as wide as the image), but the one
    MatMul does ``side**2 x depth`` multiplications per image, where export's
    do one row of the weights' size; onnxruntime checks the timeout only
    between operators.
    """
    rows = side * side // depth
    nodes = [
        helper.make_node("Cast", ["X"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["f", "blocks"], ["a"]),
        helper.make_node("MatMul", ["a", "W_mix"], ["b"]),
        helper.make_node("Reshape", ["b", "flat"], ["rows"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, rows, depth], np.int64), "blocks"),
        numpy_helper.from_array(np.full((depth, depth), 1e-3, np.float32), "W_mix"),
        numpy_helper.from_array(np.array([-1, side * side], np.int64), "flat"),
    ]
    return _tail(nodes, initializers, "rows", side * side, side=side)


def relu_chain(length=1001):
    """T1's relu_chain_100k, shorter: ``length`` Relu nodes after the Cast."""
    nodes, initializers = head()
    chain = [helper.make_node("Relu", [f"r{i}"], [f"r{i + 1}"]) for i in range(length)]
    nodes[0:1] = [
        helper.make_node("Cast", ["X"], ["r0"], to=TensorProto.FLOAT),
        *chain,
        helper.make_node("Identity", [f"r{length}"], ["f"]),
    ]
    return model(nodes, initializers)


def constant_probabilities():
    """T1's constant_batch1_only: probabilities one [1, 10] row, whatever the batch."""
    nodes = [
        helper.make_node("Cast", ["X"], ["unused"], to=TensorProto.FLOAT),
        helper.make_node("Identity", ["P"], ["probabilities"]),
        helper.make_node("ArgMax", ["probabilities"], ["i"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "i"], ["label"], axis=0),
    ]
    p = numpy_helper.from_array(np.full((1, 10), 0.1, np.float32), "P")
    return model(nodes, [p])


def edited(change):
    """:func:`head`'s model after ``change(onnx_model)`` edits it in place."""
    onnx_model = onnx.load_model_from_string(model(*head()))
    change(onnx_model)
    return onnx_model.SerializeToString()
