"""ONNX front end across opsets 9..20: ops whose signature changed between opset
versions (attributes that became inputs: Squeeze/Unsqueeze, Reduce*, Split, Slice,
Pad, Clip, Resize/Upsample...; Softmax's axis semantics), both when P0 folds them
on constants and when they act on the activation, against onnxruntime."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ezprotocols.nn import load_onnx, run_plaintext

OPSETS = list(range(9, 21))
F = TensorProto.FLOAT


def _ort(model, x):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def _i64(name, v):
    return numpy_helper.from_array(np.asarray(v, dtype=np.int64), name)


def _f32(name, v):
    return numpy_helper.from_array(np.asarray(v, dtype=np.float32), name)


_C = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7.0 - 1.5      # the folded constant operand


def _axes(op, opset, axes, input_from):
    """Node kwargs / extra inputs for an op whose axes became an input at ``input_from``."""
    if opset >= input_from:
        return {}, ["axes"], [_i64("axes", axes)]
    return {"axes": axes}, [], []


# each case: opset -> (nodes computing "c" from constants, initializers, number of elements of c) or None
def _unsqueeze(o):
    kw, ins, inits = _axes("Unsqueeze", o, [0, 3], 13)
    return [helper.make_node("Unsqueeze", ["k"] + ins, ["c"], **kw)], [_f32("k", _C)] + inits, 24


def _squeeze(o):
    kw, ins, inits = _axes("Squeeze", o, [0, 2], 13)
    return [helper.make_node("Squeeze", ["k"] + ins, ["c"], **kw)], [_f32("k", _C.reshape(1, 6, 1, 4))] + inits, 24


def _reduce(op, input_from):
    def case(o):
        kw, ins, inits = _axes(op, o, [0, 2], input_from)
        return ([helper.make_node(op, ["k"] + ins, ["c"], keepdims=0, **kw)], [_f32("k", _C)] + inits, 3)
    return case


def _split(o):
    if o >= 18:                                   # uneven: sizes 2 and 1
        return [helper.make_node("Split", ["k"], ["a", "c"], axis=1, num_outputs=2)], [_f32("k", _C)], 8
    if o >= 13:
        return [helper.make_node("Split", ["k", "sp"], ["a", "c"], axis=1)], [_f32("k", _C), _i64("sp", [1, 2])], 16
    return [helper.make_node("Split", ["k"], ["a", "c"], axis=1, split=[1, 2])], [_f32("k", _C)], 16


def _slice(o):
    if o < 10:
        return ([helper.make_node("Slice", ["k"], ["c"], starts=[1, 0], ends=[3, 3], axes=[1, 2])],
                [_f32("k", _C)], 12)
    return ([helper.make_node("Slice", ["k", "s", "e", "a", "p"], ["c"])],
            [_f32("k", _C), _i64("s", [0, 3]), _i64("e", [3, 0]), _i64("a", [1, 2]), _i64("p", [2, -1])], 12)


def _pad(o):
    if o < 11:
        return ([helper.make_node("Pad", ["k"], ["c"], pads=[0, 1, 0, 0, 0, 2], value=1.5)], [_f32("k", _C)], 2 * 4 * 6)
    ins, inits = ["k", "p", "v"], [_f32("k", _C), _i64("p", [0, 1, 0, 0, 0, 2]), _f32("v", 1.5)]
    if o >= 18:
        ins.append("ax")
        inits[1] = _i64("p", [1, 0, 0, 2])
        inits.append(_i64("ax", [1, 2]))
    return [helper.make_node("Pad", ins, ["c"])], inits, 2 * 4 * 6


def _clip(o):
    if o < 11:
        return [helper.make_node("Clip", ["k"], ["c"], min=-0.5, max=0.75)], [_f32("k", _C)], 24
    return [helper.make_node("Clip", ["k", "lo", "hi"], ["c"])], [_f32("k", _C), _f32("lo", -0.5), _f32("hi", 0.75)], 24


def _resize(o):
    k = _f32("k", _C.reshape(1, 2, 3, 4))
    if o < 10:
        return ([helper.make_node("Upsample", ["k", "sc"], ["c"], mode="nearest")],
                [k, _f32("sc", [1, 1, 2, 1])], 48)
    if o == 10:
        return [helper.make_node("Resize", ["k", "sc"], ["c"], mode="nearest")], [k, _f32("sc", [1, 1, 2, 1])], 48
    return ([helper.make_node("Resize", ["k", "roi", "sc"], ["c"], mode="nearest")],
            [k, _f32("roi", []), _f32("sc", [1, 1, 2, 1])], 48)


def _resize_linear(o):
    k = _f32("k", _C.reshape(1, 2, 3, 4))
    if o < 10:
        return ([helper.make_node("Upsample", ["k", "sc"], ["c"], mode="linear")],
                [k, _f32("sc", [1, 1, 2, 1.5])], 72)
    if o == 10:
        return [helper.make_node("Resize", ["k", "sc"], ["c"], mode="linear")], [k, _f32("sc", [1, 1, 2, 1.5])], 72
    return ([helper.make_node("Resize", ["k", "roi", "sc"], ["c"], mode="linear")],
            [k, _f32("roi", []), _f32("sc", [1, 1, 2, 1.5])], 72)


def _softmax(op):    # opset < 13 coerces to 2-D at axis; 13+ is per axis
    def case(o):
        return [helper.make_node(op, ["k"], ["c"], axis=1)], [_f32("k", _C)], 24
    return case


def _topk(o):
    if o < 10:
        return [helper.make_node("TopK", ["k"], ["c", "i"], axis=-1, k=2)], [_f32("k", _C)], 12
    return [helper.make_node("TopK", ["k", "kk"], ["c", "i"], axis=-1)], [_f32("k", _C), _i64("kk", [2])], 12


FOLD_CASES = {"Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "ReduceSum": _reduce("ReduceSum", 13),
              "ReduceMean": _reduce("ReduceMean", 18), "ReduceMax": _reduce("ReduceMax", 18),
              "ReduceL2": _reduce("ReduceL2", 18), "Split": _split, "Slice": _slice, "Pad": _pad,
              "Clip": _clip, "Resize": _resize, "ResizeLinear": _resize_linear, "Softmax": _softmax("Softmax"),
              "LogSoftmax": _softmax("LogSoftmax"), "Hardmax": _softmax("Hardmax"), "TopK": _topk}


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("op", sorted(FOLD_CASES))
def test_constant_folding_uses_the_models_opset(op, opset, rng):
    nodes, inits, n = FOLD_CASES[op](opset)
    nodes = nodes + [helper.make_node("Reshape", ["c", "flat"], ["cf"]), helper.make_node("Add", ["x", "cf"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, ["N", n])],
                          [helper.make_tensor_value_info("y", F, ["N", n])], inits + [_i64("flat", [-1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    x = rng.standard_normal((3, n)).astype(np.float32)
    plan = load_onnx(m)
    assert [op.kind for op in plan.ops] == ["add_const"]
    np.testing.assert_allclose(run_plaintext(plan, x), _ort(m, x), atol=1e-4)


def _view_model(opset):
    """torch's legacy export of x.view(x.size(0), -1) after a conv: Shape, Gather,
    Unsqueeze (axes an attribute before opset 13), Concat, Reshape."""
    W = np.random.default_rng(1).standard_normal((2, 1, 3, 3)).astype(np.float32)
    W2 = np.random.default_rng(2).standard_normal((3, 32)).astype(np.float32)
    kw, ins, inits = _axes("Unsqueeze", opset, [0], 13)
    nodes = [helper.make_node("Conv", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n"] + ins, ["n1"], name="/Unsqueeze", **kw),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["r", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W2", "b2"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, ["N", 1, 6, 6])],
                          [helper.make_tensor_value_info("y", F, ["N", 3])],
                          [_f32("W", W), _f32("W2", W2), _f32("b2", [0.5, -1, 2]), _i64("minus1", [-1])] + inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", OPSETS)
def test_view_flatten_pattern_every_opset(opset, rng):
    m = _view_model(opset)
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    plan = load_onnx(m)
    assert [op.kind for op in plan.ops] == ["conv", "relu", "reshape", "matmul"]
    np.testing.assert_allclose(run_plaintext(plan, x), _ort(m, x), atol=2e-3)


# the same opset-dependent ops on the activation (not folded)
def _act_case(op, o):
    if op == "Unsqueeze":
        kw, ins, inits = _axes(op, o, [1, 3], 13)
        return [helper.make_node(op, ["x"] + ins, ["u"], **kw), helper.make_node("Flatten", ["u"], ["y"])], inits
    if op == "Squeeze":
        kw, ins, inits = _axes(op, o, [2], 13)
        return [helper.make_node("Unsqueeze", ["x", "a0"] if o >= 13 else ["x"], ["u"],
                                 **({} if o >= 13 else {"axes": [2]})),
                helper.make_node(op, ["u"] + ins, ["y"], **kw)], inits + [_i64("a0", [2])]
    if op in ("ReduceSum", "ReduceMean", "ReduceMax"):
        kw, ins, inits = _axes(op, o, [1], 13 if op == "ReduceSum" else 18)
        return [helper.make_node(op, ["x"] + ins, ["y"], keepdims=1, **kw)], inits
    if op == "Slice":
        if o < 10:
            return [helper.make_node(op, ["x"], ["y"], starts=[1], ends=[5], axes=[1])], []
        return [helper.make_node(op, ["x", "s", "e", "a", "p"], ["y"])], [_i64("s", [1]), _i64("e", [6]),
                                                                          _i64("a", [1]), _i64("p", [2])]
    if op == "Pad":
        if o < 11:
            return [helper.make_node(op, ["x"], ["y"], pads=[0, 1, 0, 2])], []
        return [helper.make_node(op, ["x", "p"], ["y"])], [_i64("p", [0, 1, 0, 2])]
    if op == "Clip":
        if o < 11:
            return [helper.make_node(op, ["x"], ["y"], min=-0.3, max=0.6)], []
        return [helper.make_node(op, ["x", "lo", "hi"], ["y"])], [_f32("lo", -0.3), _f32("hi", 0.6)]
    raise AssertionError(op)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("op", ["Unsqueeze", "Squeeze", "ReduceSum", "ReduceMean", "ReduceMax", "Slice", "Pad",
                                "Clip"])
def test_opset_dependent_ops_on_the_activation(op, opset, rng):
    nodes, inits = _act_case(op, opset)
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, ["N", 6])],
                          [helper.make_tensor_value_info("y", F, ["N", "M"])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    x = rng.standard_normal((3, 6)).astype(np.float32)
    ref = _ort(m, x)
    out = run_plaintext(load_onnx(m), x)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-4)
