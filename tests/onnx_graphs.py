"""Hand-written ONNX graphs shaped as sk-mnist export writes them, hostile or not.

uint8 images ``X`` in; ``label`` (gathered from an initializer ``classes``)
and ``probabilities`` out. Used by the serving and command-line tests.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def model(nodes, initializers=(), *, classes=None, out_width=10, opset=21):
    """A graph of uint8 images in, label and probabilities out, as export names them."""
    classes = np.arange(10, dtype=np.int64) if classes is None else classes
    graph = helper.make_graph(
        nodes,
        "hostile",
        [helper.make_tensor_value_info("X", TensorProto.UINT8, [None, 28, 28])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, [None, out_width]
            ),
        ],
        [numpy_helper.from_array(classes, "classes"), *initializers],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
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


def _tail(nodes, initializers, x, width):
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
    return model(nodes, initializers)


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
