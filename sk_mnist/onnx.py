"""Export fitted pipelines to ONNX, to serve them with onnxruntime alone.

Importing this module registers skl2onnx converters (a shape calculator and
a converter each) for :class:`~sk_mnist.MNISTFlattener` and
:class:`~sk_mnist.KerasMLPClassifier`, so that skl2onnx's own
:func:`skl2onnx.to_onnx` converts any pipeline of scikit-learn steps it
supports plus these two. :func:`to_onnx` is the convenience on top: it picks
the input type, turns the ZipMap off and can write the file.

The classifier's converter writes the trained network as ONNX operators:
``MatMul``, ``Add`` and the activation per hidden Dense layer (Dropout is the
identity at inference), ``Softmax`` for the output, then ``ArgMax`` and
``Gather`` for the labels, which are ``classes_`` (integers or strings).
Nothing here imports TensorFlow; reading the weights of a fitted
classifier's ``model_`` uses Keras, which that classifier already loaded.

Needs the ``onnx`` extra: ``pip install "sk-mnist[onnx]"``.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import (
    BooleanTensorType,
    FloatTensorType,
    Int64TensorType,
    StringTensorType,
    UInt8TensorType,
)
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._classifier import KerasMLPClassifier
from ._flattener import MNISTFlattener

# One ONNX activation (or a few operators) per Keras activation name. Each
# entry writes the nodes computing the activation of `x` into `y`.
_SELU_ALPHA, _SELU_GAMMA = 1.6732632423543772, 1.0507009873554805


def _single(op_type, **attrs):
    def write(graph, x, y):
        graph.container.add_node(op_type, [x], [y], name=graph.name(op_type), **attrs)

    return write


def _times(inner):
    """x * inner(x): swish/silu, mish, hard_silu."""

    def write(graph, x, y):
        mid = graph.name("act")
        inner(graph, x, mid)
        graph.container.add_node("Mul", [x, mid], [y], name=graph.name("Mul"))

    return write


def _gelu(graph, x, y):
    # Keras's "gelu" is the exact one: x * (1 + erf(x / sqrt(2))) / 2.
    scaled, erf, one_plus = (graph.name(n) for n in ("scaled", "erf", "one_plus"))
    add = graph.container.add_node
    add("Mul", [x, graph.const(1 / math.sqrt(2))], [scaled], name=graph.name("Mul"))
    add("Erf", [scaled], [erf], name=graph.name("Erf"))
    add("Add", [erf, graph.const(1.0)], [one_plus], name=graph.name("Add"))
    half = graph.name("half")
    add("Mul", [x, graph.const(0.5)], [half], name=graph.name("Mul"))
    add("Mul", [half, one_plus], [y], name=graph.name("Mul"))


def _mish_inner(graph, x, y):
    soft = graph.name("softplus")
    graph.container.add_node("Softplus", [x], [soft], name=graph.name("Softplus"))
    graph.container.add_node("Tanh", [soft], [y], name=graph.name("Tanh"))


def _relu6(graph, x, y):
    graph.container.add_node(
        "Clip", [x, graph.const(0.0), graph.const(6.0)], [y], name=graph.name("Clip")
    )


ACTIVATIONS = {
    "linear": _single("Identity"),
    "relu": _single("Relu"),
    "relu6": _relu6,
    "sigmoid": _single("Sigmoid"),
    "tanh": _single("Tanh"),
    "elu": _single("Elu", alpha=1.0),
    "selu": _single("Selu", alpha=_SELU_ALPHA, gamma=_SELU_GAMMA),
    "celu": _single("Celu", alpha=1.0),
    "softplus": _single("Softplus"),
    "softsign": _single("Softsign"),
    "exponential": _single("Exp"),
    "hard_sigmoid": _single("HardSigmoid", alpha=1 / 6, beta=0.5),
    "leaky_relu": _single("LeakyRelu", alpha=0.2),
    "gelu": _gelu,
    "silu": _times(_single("Sigmoid")),
    "swish": _times(_single("Sigmoid")),
    "hard_silu": _times(_single("HardSigmoid", alpha=1 / 6, beta=0.5)),
    "hard_swish": _times(_single("HardSigmoid", alpha=1 / 6, beta=0.5)),
    "mish": _times(_mish_inner),
    "softmax": _single("Softmax", axis=-1),
    "log_softmax": _single("LogSoftmax", axis=-1),
}


class _Graph:
    """Names and float constants for one converter call."""

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def name(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def const(self, value):
        name = self.name("const")
        self.container.add_initializer(name, TensorProto.FLOAT, [], [float(value)])
        return name

    def array(self, hint, array):
        name = self.name(hint)
        kind = {
            "f": TensorProto.FLOAT,
            "i": TensorProto.INT64,
            "b": TensorProto.BOOL,
        }.get(array.dtype.kind, TensorProto.STRING)
        content = (
            array.ravel()
            if kind != TensorProto.STRING
            else [str(v).encode() for v in array.ravel()]
        )
        self.container.add_initializer(name, kind, list(array.shape), content)
        return name


def network_layers(clf):
    """The trained ``(weights, bias, activation)`` of each Dense layer of ``clf``.

    Raises
    ------
    ValueError
        A hidden activation ONNX cannot express, named.
    """
    from ._keras import network

    layers = network.dense_layers(clf.model_)
    for _, _, activation in layers[:-1]:
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation={activation!r} cannot be exported to ONNX; the "
                f"activations that can are {sorted(ACTIVATIONS)}."
            )
    return layers


def _classifier_shapes(operator):
    clf = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _label_type(clf.classes_)([n])
    operator.outputs[1].type = FloatTensorType([n, len(clf.classes_)])


def _label_type(classes):
    if classes.dtype.kind == "b":
        return BooleanTensorType
    if classes.dtype.kind in "iu":
        if classes.max() > np.iinfo(np.int64).max:
            raise ValueError(
                f"ONNX labels are at most int64; classes_ holds "
                f"{classes.max()}, which would wrap around. Encode the labels "
                f"first (for example with LabelEncoder)."
            )
        return Int64TensorType
    if all(isinstance(c, str) for c in classes.tolist()):
        return StringTensorType
    raise ValueError(
        f"ONNX labels are integers, booleans or strings; classes_ has dtype "
        f"{classes.dtype}."
    )


def _convert_classifier(scope, operator, container):
    clf = operator.raw_operator
    graph = _Graph(scope, container)
    x = _as_float(graph, operator.inputs[0])
    layers = network_layers(clf)
    for i, (weights, bias, activation) in enumerate(layers):
        product, biased = graph.name(f"matmul{i}"), graph.name(f"dense{i}")
        container.add_node(
            "MatMul",
            [x, graph.array("W", weights)],
            [product],
            name=graph.name("MatMul"),
        )
        container.add_node(
            "Add", [product, graph.array("b", bias)], [biased], name=graph.name("Add")
        )
        if i == len(layers) - 1:
            x = operator.outputs[1].full_name
            container.add_node(
                "Softmax", [biased], [x], name=graph.name("Softmax"), axis=1
            )
        else:
            x = graph.name(f"hidden{i}")
            ACTIVATIONS[activation](graph, biased, x)
    index = graph.name("index")
    container.add_node(
        "ArgMax", [x], [index], name=graph.name("ArgMax"), axis=1, keepdims=0
    )
    classes = clf.classes_
    classes = classes.astype(np.int64) if classes.dtype.kind in "iu" else classes
    container.add_node(
        "Gather",
        [graph.array("classes", np.asarray(classes)), index],
        [operator.outputs[0].full_name],
        name=graph.name("Gather"),
        axis=0,
    )


def _as_float(graph, variable):
    if isinstance(variable.type, FloatTensorType):
        return variable.full_name
    cast = graph.name("cast")
    graph.container.add_node(
        "Cast",
        [variable.full_name],
        [cast],
        name=graph.name("Cast"),
        to=TensorProto.FLOAT,
    )
    return cast


def _flattener_shapes(operator):
    flattener = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([n, flattener.n_features_in_])


def _convert_flattener(scope, operator, container):
    flattener = operator.raw_operator
    graph = _Graph(scope, container)
    rows = graph.name("rows")
    container.add_node(
        "Reshape",
        [
            operator.inputs[0].full_name,
            graph.array("shape", np.array([-1, flattener.n_features_in_], np.int64)),
        ],
        [rows],
        name=graph.name("Reshape"),
    )
    floats = graph.name("floats")
    container.add_node(
        "Cast", [rows], [floats], name=graph.name("Cast"), to=TensorProto.FLOAT
    )
    container.add_node(
        "Div",
        [floats, graph.const(np.float32(flattener.scale_))],
        [operator.outputs[0].full_name],
        name=graph.name("Div"),
    )


update_registered_converter(
    MNISTFlattener, "SkMnistFlattener", _flattener_shapes, _convert_flattener
)
update_registered_converter(
    KerasMLPClassifier,
    "SkMnistKerasMLPClassifier",
    _classifier_shapes,
    _convert_classifier,
    options={"zipmap": [True, False, "columns"], "nocl": [False, True]},
)


def to_onnx(estimator, path=None, *, images=False, zipmap=False, target_opset=None):
    """Convert a fitted pipeline (or estimator) to an ONNX model.

    Parameters
    ----------
    estimator : estimator
        Fitted: sk-mnist's estimators and the scikit-learn steps skl2onnx
        converts (``PCA``, ``StandardScaler``...), fitted on a float matrix.
    path : str or path-like, default=None
        Where to write the model (atomically); ``None`` only returns it.
    images : bool, default=False
        Take uint8 images ``(n, h, w)`` as input instead of float32 rows of
        ``n_features_in_`` pixels; the pipeline must start with
        :class:`~sk_mnist.MNISTFlattener`.
    zipmap : bool or "columns", default=False
        skl2onnx's ZipMap after the classifier: ``False`` gives the
        probabilities as a float matrix, in ``classes_`` order.
    target_opset : int, default=None
        ONNX opset, from ``MIN_OPSET`` (13) to the newest the installed onnx
        knows; skl2onnx's newest by default.

    Returns
    -------
    onnx.ModelProto
        Inputs: ``X``. Outputs: ``label`` (``classes_``: int64 for integer
        labels, bool for booleans, strings otherwise) and ``probabilities``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The estimator is not fitted.
    ValueError
        No KerasMLPClassifier in it, a step skl2onnx cannot convert, an
        activation ONNX cannot express, labels beyond int64, ``images=True``
        without a leading flattener, an estimator fitted on named DataFrame
        columns, or a ``target_opset`` out of range. No file is written.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sk_mnist import KerasMLPClassifier, MNISTFlattener
    >>> from sk_mnist.onnx import to_onnx
    >>> X, y = load_digits(return_X_y=True)
    >>> pipe = make_pipeline(
    ...     MNISTFlattener(scale=16.0),
    ...     KerasMLPClassifier(hidden_layer_sizes=(32,), epochs=2, random_state=0),
    ... ).fit(X, y)
    >>> model = to_onnx(pipe)
    >>> [o.name for o in model.graph.output]
    ['label', 'probabilities']
    """
    import skl2onnx
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    check_is_fitted(estimator)
    target_opset = _check_opset(target_opset)
    if not _classifiers(estimator):
        raise ValueError(
            f"to_onnx exports a pipeline that ends in KerasMLPClassifier; got a "
            f"{type(estimator).__name__} without one."
        )
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        raise ValueError(
            f"{type(estimator).__name__} was fitted on a DataFrame with named "
            f"columns; ONNX export takes one float matrix of n_features_in_ columns. "
            f"Fit it on a numpy array."
        )
    first = estimator[0] if isinstance(estimator, Pipeline) else estimator
    if images:
        if not isinstance(first, MNISTFlattener):
            raise ValueError(
                "images=True needs a pipeline that starts with MNISTFlattener, "
                f"which turns images into rows; it starts with {type(first).__name__}."
            )
        initial = [("X", UInt8TensorType([None, *first.image_shape_]))]
    else:
        initial = [("X", FloatTensorType([None, estimator.n_features_in_]))]
    options = {id(c): {"zipmap": zipmap} for c in _classifiers(estimator)}
    try:
        model = skl2onnx.to_onnx(
            estimator,
            initial_types=initial,
            options=options,
            target_opset=target_opset,
        )
    except (MissingShapeCalculator, MissingConverter, RuntimeError) as exc:
        # skl2onnx raises RuntimeError for steps it knows but cannot convert
        # as configured, such as FunctionTransformer(np.sqrt).
        raise ValueError(
            f"skl2onnx cannot convert a step of this pipeline: {exc}".split("\n")[0]
        ) from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ValueError(
            f"the converted model is not valid ONNX at target_opset={target_opset} "
            f"({str(exc).splitlines()[0]})."
        ) from None
    if path is not None:
        from ._utils._files import atomic_write

        with atomic_write(path) as file:
            file.write(model.SerializeToString())
    return model


#: Softmax over one axis, Clip with bound inputs and the other operators the
#: converters write need opset 13.
MIN_OPSET = 13


def _check_opset(target_opset):
    """None, or an opset between ``MIN_OPSET`` and what onnx itself knows."""
    if target_opset is None:
        return None
    newest = onnx.defs.onnx_opset_version()
    if (
        not isinstance(target_opset, int)
        or isinstance(target_opset, bool)
        or not MIN_OPSET <= target_opset <= newest
    ):
        raise ValueError(
            f"target_opset must be an integer from {MIN_OPSET} to {newest} (the "
            f"newest this onnx knows), or None; got {target_opset!r}."
        )
    return target_opset


def _classifiers(estimator):
    steps = estimator.steps if isinstance(estimator, Pipeline) else [(None, estimator)]
    return [step for _, step in steps if isinstance(step, KerasMLPClassifier)]


__all__ = ["ACTIVATIONS", "MIN_OPSET", "to_onnx"]
