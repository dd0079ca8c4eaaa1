"""Tiny ONNX models built with onnx.helper for the metrics / sharding tests."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper


def multilabel_mlp(d=6, h=8, k=3, seed=0, sigmoid=True):
    """x (N, d) -> Gemm -> Relu -> Gemm -> Sigmoid: K independent findings."""
    r = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(r.standard_normal((d, h)).astype(np.float32) * 0.6, "W1"),
             numpy_helper.from_array(r.standard_normal(h).astype(np.float32) * 0.1, "b1"),
             numpy_helper.from_array(r.standard_normal((h, k)).astype(np.float32) * 0.6, "W2"),
             numpy_helper.from_array(r.standard_normal(k).astype(np.float32) * 0.1, "b2")]
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["a1"]),
             helper.make_node("Gemm", ["a1", "W2", "b2"], ["z" if sigmoid else "y"])]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["y"]))
    g = helper.make_graph(nodes, "ml", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", k])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
