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
