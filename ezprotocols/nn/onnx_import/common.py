"""Shared pieces of the ONNX importer: errors, the value markers the op handlers
pass around, constants."""
from __future__ import annotations

import onnx

MIN_OPSET = 6


FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}



class OnnxImportError(ValueError):
    """The model cannot be used (malformed, wrong input, shapes, opset...)."""



class UnsupportedOp(OnnxImportError):
    """``unsupported ONNX op X at node Y``: the model uses an op (or a variant of an
    op) the secure executor does not implement."""

    def __init__(self, op_type: str, node: str, reason: str = ""):
        self.op_type = op_type
        self.node = node
        self.reason = reason
        super().__init__(f"unsupported ONNX op {op_type} at node {node}" + (f": {reason}" if reason else ""))



class Act:
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v



class Post:
    """A final, monotone op (softmax, logsoftmax, sigmoid, argmax...) of the
    activation ``src``: evaluated as an argmax when only the class is revealed,
    in the clear by P1 on revealed logits otherwise.  ``op_type``/``node``: the
    ONNX node it came from (for error messages)."""
    __slots__ = ("kind", "src", "axis", "keepdims", "op_type", "node")

    def __init__(self, kind, src, axis, keepdims=False, op_type="", node=""):
        self.kind, self.src, self.axis, self.keepdims = kind, src, axis, keepdims
        self.op_type, self.node = op_type, node



#: post kinds whose argmax along their axis is the argmax of the logits
MONOTONE = ("softmax", "logsoftmax", "sigmoid", "sigmoid_l1")
#: ops (default domain) that only pass a value through
PASS_THROUGH = ("Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten")


def node_name(node, idx):
    return node.name or f"#{idx}"
