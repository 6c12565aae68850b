"""ONNX graphs of the form ``to_onnx(..., images=True)`` writes, without Keras.

The serving tests need models quickly (no fit) and of sizes no fit would
give: a network of random weights, written node for node as
:func:`sk_mnist.onnx.to_onnx` writes a flattener and a Dense network
(Reshape, Cast, Div, MatMul/Add/Relu per layer, Softmax, ArgMax, Gather of
the classes).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def mlp_graph(hidden=(16,), classes=tuple(range(10)), *, seed=0) -> bytes:
    """The ONNX bytes of a random ``hidden`` network over 28x28 uint8 images."""
    rng = np.random.default_rng(seed)
    classes = np.asarray(classes)
    if classes.dtype.kind in "iu":
        classes = classes.astype(np.int64)
    initializers = [
        numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"),
        numpy_helper.from_array(np.array(255, np.float32), "const"),
        numpy_helper.from_array(classes, "classes"),
    ]
    nodes = [
        helper.make_node("Reshape", ["X", "shape"], ["rows"]),
        helper.make_node("Cast", ["rows"], ["floats"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["floats", "const"], ["h0"]),
    ]
    width = 784
    sizes = [*hidden, len(classes)]
    for i, size in enumerate(sizes):
        weights = rng.normal(0, 1 / np.sqrt(width), (width, size)).astype(np.float32)
        initializers += [
            numpy_helper.from_array(weights, f"W{i}"),
            numpy_helper.from_array(np.zeros(size, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [f"h{i}", f"W{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"d{i}"]),
        ]
        if i < len(sizes) - 1:
            nodes.append(helper.make_node("Relu", [f"d{i}"], [f"h{i + 1}"]))
        width = size
    last = len(sizes) - 1
    nodes += [
        helper.make_node("Softmax", [f"d{last}"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["index"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "index"], ["label"], axis=0),
    ]
    label_type = {
        "b": TensorProto.BOOL,
        "i": TensorProto.INT64,
    }.get(classes.dtype.kind, TensorProto.STRING)
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.UINT8, [None, 28, 28])],
        [
            helper.make_tensor_value_info("label", label_type, [None]),
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, [None, len(classes)]
            ),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model.SerializeToString()
