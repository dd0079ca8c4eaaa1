"""The fold_relu_scale pass: a BatchNorm after a concatenation (no conv to fold into)
followed by ReLU -> Conv becomes an ``affine_sign`` op (signs of gamma, 2-bit weights)
with |scale| folded into the next conv; negative and zero gammas included; a layer
with a tiny |scale| stays an ``affine`` op.  Plaintext fixed point within the error
bound of the exact arithmetic, which agrees with onnxruntime; securely within 0.01."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ezprotocols.nn import load_onnx, run_plaintext
from ezprotocols.nn.plan import parse_architecture
from ezprotocols.nn.secure import query_session, serve_session
from ezprotocols.testing import run_pair

from _nn_bound import check_model


def _model(gamma, matmul=False, two_convs=False):
    rng = np.random.default_rng(7)
    C = len(gamma)
    inits = [numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "Wa"),
             numpy_helper.from_array(rng.standard_normal((C - 3, 2, 1, 1)).astype(np.float32), "Wb"),
             numpy_helper.from_array(np.asarray(gamma, np.float32), "g"),
             numpy_helper.from_array(rng.normal(0, 0.3, C).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(0, 0.5, C).astype(np.float32), "m"),
             numpy_helper.from_array((rng.random(C) + 0.5).astype(np.float32), "v"),
             numpy_helper.from_array(rng.standard_normal((4, C, 3, 3)).astype(np.float32), "Wc"),
             numpy_helper.from_array(rng.standard_normal((2, C, 1, 1)).astype(np.float32), "Wd"),
             numpy_helper.from_array(rng.standard_normal((C * 25, 3)).astype(np.float32), "M")]
    nodes = [helper.make_node("Conv", ["x", "Wa"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "Wb"], ["bb"]),
             helper.make_node("Concat", ["a", "bb"], ["cat"], axis=1),
             helper.make_node("BatchNormalization", ["cat", "g", "b", "m", "v"], ["bn"], epsilon=1e-5),
             helper.make_node("Relu", ["bn"], ["r"])]
    if matmul:
        nodes.append(helper.make_node("Flatten", ["cat"], ["fl"]))
        nodes[3:5] = []
        inits[2:6] = [numpy_helper.from_array(np.repeat(np.asarray(gamma, np.float32), 25), "g"),
                      numpy_helper.from_array(rng.normal(0, 0.3, C * 25).astype(np.float32), "b")]
        nodes += [helper.make_node("Mul", ["fl", "g"], ["sc"]), helper.make_node("Add", ["sc", "b"], ["bn"]),
                  helper.make_node("Relu", ["bn"], ["r"]), helper.make_node("MatMul", ["r", "M"], ["y"])]
    elif two_convs:
        nodes += [helper.make_node("Conv", ["r", "Wc"], ["c1"], pads=[1, 1, 1, 1]),
                  helper.make_node("Conv", ["r", "Wd"], ["c2"]),
                  helper.make_node("Concat", ["c1", "c2"], ["y"], axis=1)]
    else:
        nodes.append(helper.make_node("Conv", ["r", "Wc"], ["y"], pads=[1, 1, 1, 1]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "d1"] if matmul else ["N", "d1", "d2", "d3"])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])


def _ort(m, x):
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


GAMMA = [1.3, -0.7, 0.0, 2.5, -0.05, 0.4]


@pytest.mark.parametrize("kw", [{}, {"two_convs": True}, {"matmul": True}])
def test_relu_scale_folded(kw, rng):
    m = _model(GAMMA, **kw)
    plan = load_onnx(m)
    kinds = [op.kind for op in plan.ops]
    assert "affine_sign" in kinds and "affine" not in kinds and "mul_const" not in kinds
    sg = plan.consts[plan.ops[kinds.index("affine_sign")].consts[0]]
    assert set(np.unique(sg)) <= {-1, 0, 1} and (sg == 0).sum() == 1 * (sg.size // len(GAMMA))
    parse_architecture(plan.architecture())                    # P1 accepts the rewritten plan
    x = rng.standard_normal((3, 2, 5, 5)).astype(np.float32)
    check_model(m, x, _ort(m, x), plan=plan)
    fplan = load_onnx(m, encode=False)
    assert [op.kind for op in fplan.ops] == kinds              # the float reference sees the same plan


def test_tiny_scale_left_unchanged(rng):
    m = _model([1.3, -0.7, 0.001, 2.5, 0.5, 0.4])
    plan = load_onnx(m)
    assert "affine" in [op.kind for op in plan.ops] and "affine_sign" not in [op.kind for op in plan.ops]
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    check_model(m, x, _ort(m, x), plan=plan)


def test_relu_scale_folded_secure(rng):
    m = _model(GAMMA, two_convs=True)
    plan = load_onnx(m, act_bits=32)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    r = run_pair(lambda s: serve_session(s, plan, allow_logits=True),
                 lambda s: query_session(s, x, want_logits=True), timeout=300)[1]
    assert np.abs(r["output"] - _ort(m, x)).max() < 0.01
    assert np.abs(r["output"] - run_plaintext(plan, x)).max() < 1e-3
    assert "affine_sign" in r["offline_per_op"]
