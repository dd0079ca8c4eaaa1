"""scikit-learn models converted by skl2onnx (ai.onnx.ml LinearClassifier,
LinearRegressor, Normalizer, Scaler, ZipMap, ArrayFeatureExtractor label outputs,
a final Sigmoid) against onnxruntime: the same class label, and probabilities /
regression values within the documented bound (tests/_nn_bound.py)."""
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import skl2onnx
from onnx import TensorProto, helper

from ezprotocols.nn import (OnnxImportError, UnsupportedOp, class_labels, error_bound, load_onnx, predict_classes,
                            run_float, run_plaintext)

from _nn_bound import assert_same_decisions, check_model



def _ort_all(model, x):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return {o.name: r for o, r in zip(s.get_outputs(), s.run(None, {s.get_inputs()[0].name: x}))}


def _convert(est, X, zipmap=True, **kw):
    opts = {} if zipmap else {id(est): {"zipmap": False}}
    from skl2onnx.common.data_types import FloatTensorType
    return skl2onnx.to_onnx(est, initial_types=[("input", FloatTensorType([None, X.shape[1]]))], options=opts, **kw)


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import make_classification
    X, y = make_classification(n_samples=300, n_features=10, n_informative=6, n_classes=4, random_state=0)
    return X.astype(np.float32), y


def _check_classifier(model, X, n_classes):
    """Label as onnxruntime's; probabilities within the bound of the exact ones,
    which agree with onnxruntime's (ZipMap outputs compared as a matrix)."""
    outs = _ort_all(model, X)
    names = list(outs)
    label = np.asarray(outs[names[0]]).reshape(-1)
    proba = outs[names[1]]
    if isinstance(proba, list):                                  # ZipMap: a list of {class: p}
        keys = list(proba[0])
        proba = np.array([[d[k] for k in keys] for d in proba], dtype=np.float32)
    plan, *_ = check_model(model, X, proba)
    assert plan.n_classes == n_classes and plan.class_labels is not None
    lg = run_plaintext(plan, X, logits=True)
    fplan = load_onnx(model, encode=False)
    clear = assert_same_decisions(plan, lg, run_float(fplan, X), error_bound(plan, X))
    assert clear >= 0.95 * len(X)
    ours = class_labels(plan, predict_classes(plan, lg))
    assert (ours == label).mean() >= clear / len(X)
    assert np.array_equal(class_labels(plan, predict_classes(plan, run_float(fplan, X))), label)
    return plan


@pytest.mark.parametrize("zipmap", [False, True])
@pytest.mark.parametrize("binary", [False, True])
def test_logistic_regression(data, binary, zipmap):
    from sklearn.linear_model import LogisticRegression
    X, y = data
    y = (y > 1).astype(int) if binary else y
    clf = LogisticRegression(max_iter=500).fit(X, y)
    m = _convert(clf, X, zipmap)
    plan = _check_classifier(m, X, 2 if binary else 4)
    assert [op.kind for op in plan.ops] == ["matmul"]
    assert plan.post == ("sigmoid" if binary else "softmax") and plan.class_labels == sorted(set(y.tolist()))


def test_logistic_regression_string_labels_and_scaler_pipeline(data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = data
    names = np.array(["cat", "dog", "owl", "yak"])[y]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X * 3 + 1, names)
    m = _convert(pipe, X, True)
    assert "Scaler" in [n.op_type for n in m.graph.node]
    plan = _check_classifier(m, X * 3 + 1, 4)
    assert plan.class_labels == ["cat", "dog", "owl", "yak"]
    assert [op.kind for op in plan.ops] == ["matmul"]     # the scaler folds into the linear layer


@pytest.mark.parametrize("offset,scale", [([1.0, -2.0, 0.5], [2.0, 0.25, -1.0]), ([0.5], [3.0])])
def test_scaler_alone(offset, scale, rng):
    n = helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", offset=offset, scale=scale)
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])
    X = rng.standard_normal((20, 3)).astype(np.float32)
    plan, *_ = check_model(m, X, _ort_all(m, X)["y"])
    assert [op.kind for op in plan.ops] == ["affine"]


@pytest.mark.parametrize("zipmap", [False, True])
@pytest.mark.parametrize("binary", [False, True])
def test_mlp_classifier(data, binary, zipmap):
    from sklearn.neural_network import MLPClassifier
    X, y = data
    y = (y > 1).astype(int) * 5 + 2 if binary else y              # binary labels 2 and 7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((16, 8), max_iter=300, random_state=0).fit(X, y)
    m = _convert(clf, X, zipmap)
    plan = _check_classifier(m, X, 2 if binary else 4)
    assert plan.class_labels == ([2, 7] if binary else [0, 1, 2, 3])
    # binary: Sigmoid, 1 - p and Concat become logits [-z, z] with a sigmoid post
    assert plan.post == ("sigmoid" if binary else "softmax")


@pytest.mark.parametrize("targets", [1, 2])
def test_linear_regression(data, targets):
    from sklearn.linear_model import LinearRegression
    X, _ = data
    t = X @ np.arange(10) + 0.5
    reg = LinearRegression().fit(X, t if targets == 1 else np.stack([t, -2 * t + X[:, 0]], axis=1))
    m = _convert(reg, X)
    ref = _ort_all(m, X)["variable"]
    plan, *_ = check_model(m, X, ref)
    assert plan.post == "logits" and plan.class_labels is None and plan.output_shape == (targets,)


def _linear_classifier(post, rows=2, **kw):
    labels = kw.pop("labels", [3, 7])
    coef = [0.5, -1.0, 2.0] * rows
    icpt = [0.25, -0.25][:rows]
    lab = {"classlabels_ints": labels} if isinstance(labels[0], int) else {"classlabels_strings": labels}
    n = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml", name="lc",
                         coefficients=coef, intercepts=icpt, post_transform=post, **lab)
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_tensor_value_info("label", TensorProto.INT64 if lab.get("classlabels_ints")
                                                         else TensorProto.STRING, ["N"]),
                           helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])


@pytest.mark.parametrize("post,rows,labels", [("LOGISTIC", 1, [3, 7]), ("LOGISTIC", 1, ["no", "yes"]),
                                              ("NONE", 2, [3, 7]), ("SOFTMAX", 2, ["no", "yes"]),
                                              ("LOGISTIC", 2, [0, 1])])
def test_linear_classifier_variants(post, rows, labels, rng):
    m = _linear_classifier(post, rows, labels=labels)
    X = rng.standard_normal((100, 3)).astype(np.float32)
    _check_classifier(m, X, 2)


@pytest.mark.parametrize("post,rows", [("NONE", 1), ("SOFTMAX", 1), ("SOFTMAX_ZERO", 2), ("PROBIT", 2)])
def test_linear_classifier_refused_variants(post, rows):
    with pytest.raises(UnsupportedOp, match=f"^unsupported ONNX op ai.onnx.ml.LinearClassifier at node lc: "):
        load_onnx(_linear_classifier(post, rows))


def test_output_selection(data):
    from sklearn.linear_model import LogisticRegression
    X, y = data
    clf = LogisticRegression(max_iter=500).fit(X, y)
    m = _convert(clf, X, False)
    default = load_onnx(m)
    assert default.output_name == "probabilities"
    by_label = load_onnx(m, output="label")           # the label's scores, with the labels
    assert by_label.class_labels == [0, 1, 2, 3] and by_label.post == "softmax"
    with pytest.raises(OnnxImportError, match="no graph output named 'nope'"):
        load_onnx(m, output="nope")
    # two floating-point outputs: the message names the API argument and the CLI flag
    g = m.graph
    extra = helper.make_node("Identity", ["probabilities"], ["copy"])
    g2 = helper.make_graph(list(g.node) + [extra], "g", list(g.input),
                           list(g.output) + [helper.make_tensor_value_info("copy", TensorProto.FLOAT, ["N", 4])],
                           list(g.initializer))
    m2 = helper.make_model(g2, opset_imports=list(m.opset_import))
    with pytest.raises(OnnxImportError, match=r"several outputs .* output= \(CLI: --output-name\)"):
        load_onnx(m2)
    assert load_onnx(m2, output="copy").output_name == "copy"


def test_normalizer_of_an_activation_is_refused():
    n = helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", name="nrm", norm="L1")
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])
    with pytest.raises(UnsupportedOp, match="^unsupported ONNX op ai.onnx.ml.Normalizer at node nrm: "):
        load_onnx(m)


def test_unsupported_ml_op_is_named(data):
    from sklearn.tree import DecisionTreeClassifier
    X, y = data
    m = _convert(DecisionTreeClassifier(max_depth=3).fit(X, y), X, False)
    with pytest.raises(UnsupportedOp, match=r"^unsupported ONNX op ai.onnx.ml.TreeEnsembleClassifier at node "):
        load_onnx(m)
