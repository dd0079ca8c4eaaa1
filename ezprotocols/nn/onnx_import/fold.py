"""Constant folding: ops whose inputs are all constants are evaluated at import
(P0's own computation) with the onnx reference evaluator, at the model's own opset."""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from .common import OnnxImportError


def _tensor_type(v: np.ndarray) -> int:
    if v.dtype.kind in "OUS":
        return onnx.TensorProto.STRING
    return onnx.helper.np_dtype_to_tensor_dtype(v.dtype)


def _legacy_fold(node, opset, ins):
    """Ops whose older versions the onnx reference evaluator does not implement
    (it runs the latest semantics): evaluated here.  Returns the outputs or None."""
    if node.domain not in ("", "ai.onnx"):
        return None
    op = node.op_type
    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
    if op in ("Softmax", "LogSoftmax", "Hardmax") and opset < 13:
        x = np.asarray(ins[0])
        ax = a.get("axis", 1)
        ax = ax + x.ndim if ax < 0 else ax
        z = x.reshape(math.prod(x.shape[:ax]), -1)          # coerced to 2-D at axis
        if op == "Hardmax":
            y = np.zeros_like(z)
            y[np.arange(z.shape[0]), z.argmax(axis=1)] = 1
        else:
            z = z - z.max(axis=1, keepdims=True)
            lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
            y = z - lse if op == "LogSoftmax" else np.exp(z - lse)
        return [y.astype(x.dtype).reshape(x.shape)]
    if (op == "Resize" and opset < 11) or op == "Upsample":
        x = np.asarray(ins[0])
        scales = a["scales"] if "scales" in a else ins[1]
        scales = [float(v) for v in np.asarray(scales).reshape(-1)]
        mode = a.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "nearest":
            return None                                   # linear: asymmetric coordinates, below
        y = x
        for axis, sc in enumerate(scales):               # Upsample-7..9 / Resize-10 nearest
            n = x.shape[axis]
            out = int(math.floor(n * sc))
            pos = np.arange(out) / sc
            idx = np.floor(pos) if sc >= 1 else np.ceil(pos)
            y = np.take(y, np.minimum(idx.astype(np.int64), n - 1), axis=axis)
        return [y]
    return None


class ConstantFolding:
    def constant(self, node, attrs):
        if "value" in attrs:
            return numpy_helper.to_array(attrs["value"])
        for k, dt in (("value_float", np.float32), ("value_floats", np.float32),
                      ("value_int", np.int64), ("value_ints", np.int64)):
            if k in attrs:
                return np.array(attrs[k], dtype=dt)
        self.fail(node, "only dense tensor, float(s) and int(s) constants are supported")

    def fold(self, node):
        """Evaluate an op whose inputs are all constants (P0's own computation).

        The node is wrapped in a one-node model that imports the model's own opsets
        (all domains) and local functions, so the reference evaluator runs the op
        version the model was written for (e.g. Unsqueeze-11 with an ``axes``
        attribute, not Unsqueeze-13 with an ``axes`` input)."""
        from onnx.reference import ReferenceEvaluator
        legacy = _legacy_fold(node, self.opset, [self.env[i] if i else None for i in node.input])
        if legacy is not None:
            for nm, v in zip([o for o in node.output if o], legacy):
                self.env[nm] = np.asarray(v)
            return
        feeds, vin, vout = {}, [], []
        n2 = onnx.NodeProto()
        n2.CopyFrom(node)
        for k, nm in enumerate(node.input):
            if nm:
                key = f"in{k}"
                n2.input[k] = key
                v = np.asarray(self.env[nm])
                feeds[key] = v
                vin.append(onnx.helper.make_tensor_value_info(key, _tensor_type(v), list(v.shape)))
        for k, nm in enumerate(node.output):
            if nm:
                n2.output[k] = f"out{k}"
                vout.append(onnx.helper.make_tensor_value_info(f"out{k}", onnx.TensorProto.UNDEFINED, None))
        default_opset = None
        if node.domain in ("", "ai.onnx") and (node.op_type == "Upsample" or
                                               node.op_type == "Resize" and self.opset < 11):
            # linear Upsample-7..9 / Resize-10 = Resize-11 with asymmetric coordinates
            at = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
            sc = np.asarray(at["scales"] if "scales" in at else feeds.pop("in1"), np.float32).reshape(-1)
            n2 = onnx.helper.make_node("Resize", ["in0", "", "sc"], list(n2.output), mode="linear",
                                       coordinate_transformation_mode="asymmetric")
            feeds["sc"] = sc
            vin = vin[:1] + [onnx.helper.make_tensor_value_info("sc", onnx.TensorProto.FLOAT, [sc.size])]
            default_opset = 11
        g = onnx.helper.make_graph([n2], "fold", vin, vout)
        opsets = {}
        for imp in self.model.opset_import:
            d = "" if imp.domain == "ai.onnx" else imp.domain
            opsets[d] = max(opsets.get(d, 0), imp.version)
        if default_opset is not None:
            opsets[""] = default_opset
        m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()],
                                   functions=list(self.model.functions))
        m.ir_version = max(self.model.ir_version, 3)
        try:
            outs = ReferenceEvaluator(m).run(None, feeds)
        except Exception as e:
            raise OnnxImportError(f"node {self.cur_name}: constant folding of {node.op_type} "
                                  f"(opset {opsets.get(node.domain or '', self.opset)}) failed: {e}") from None
        for nm, v in zip([o for o in node.output if o], outs):
            self.env[nm] = np.asarray(v)
