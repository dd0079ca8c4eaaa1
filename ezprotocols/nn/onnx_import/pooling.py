"""Pooling and reductions: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool,
ReduceMax, ReduceMean, ReduceSum."""
from __future__ import annotations

from .common import OnnxImportError


class PoolingOps:
    # -- pooling
    def pool(self, node, ins, a, kind):
        X = ins[0]
        xs = self.act_shape(X)
        kernel = list(a["kernel_shape"])
        nd = len(kernel)
        if nd not in (1, 2) or len(xs) != nd + 1:
            self.fail(node, f"{nd}-D pooling (1-D and 2-D are supported)")
        if len(node.output) > 1 and node.output[1] and self.used(node.output[1]):
            self.fail(node, "the Indices output is used")
        strides = list(a.get("strides", [1] * nd))
        dil = list(a.get("dilations", [1] * nd))
        if kind == "avgpool" and any(d != 1 for d in dil):
            self.fail(node, "dilated average pooling")
        pads = self.conv_geometry(node, a, xs[1:], kernel, dil, strides)
        ceil = bool(a.get("ceil_mode", 0))
        x = X
        if nd == 1:
            x = self.emit("reshape", [X.v], attrs={"shape": (xs[0], 1, xs[1])})
            kernel, strides, dil, pads = [1] + kernel, [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
        at = {"kernel": tuple(kernel), "strides": tuple(strides), "pads": tuple(pads), "ceil_mode": ceil}
        if kind == "maxpool":
            at["dilations"] = tuple(dil)
        else:
            at["count_include_pad"] = bool(a.get("count_include_pad", 0))
        try:
            out = self.emit(kind, [x.v], attrs=at)
        except OnnxImportError as e:
            self.fail(node, str(e))
        if nd == 1:
            s = self.act_shape(out)
            out = self.emit("reshape", [out.v], attrs={"shape": (s[0], s[2])})
        return out

    def op_MaxPool(self, node, ins, a):
        return self.pool(node, ins, a, "maxpool")

    def op_AveragePool(self, node, ins, a):
        return self.pool(node, ins, a, "avgpool")

    def op_GlobalAveragePool(self, node, ins, a):
        return self.emit("gap", [ins[0].v])

    def _reduce_axes(self, node, ins, a):
        """Sorted non-negative reduction axes, or None for a no-op (noop_with_empty_axes)."""
        r = len(self.full(ins[0]))
        axes = self.axes_of(node, ins, a)
        if axes is None or len(axes) == 0:
            if a.get("noop_with_empty_axes", 0):
                return None
            axes = list(range(r))
        axes = sorted({x + r if x < 0 else x for x in axes})
        if 0 in axes:
            self.fail(node, "reduction over the batch axis")
        return tuple(axes)

    def reduce(self, node, ins, a, mean):
        axes = self._reduce_axes(node, ins, a)
        if axes is None:
            return ins[0]
        return self.emit("reduce", [ins[0].v], attrs={"axes": axes, "keepdims": bool(a.get("keepdims", 1)),
                                                      "mean": mean})

    def op_ReduceMax(self, node, ins, a):
        axes = self._reduce_axes(node, ins, a)
        if axes is None:
            return ins[0]
        return self.emit("reduce_max", [ins[0].v], attrs={"axes": axes, "keepdims": bool(a.get("keepdims", 1))})

    def op_GlobalMaxPool(self, node, ins, a):
        X = ins[0]
        r = len(self.full(X))
        if r < 3:
            self.fail(node, "input without spatial axes")
        return self.emit("reduce_max", [X.v], attrs={"axes": tuple(range(2, r)), "keepdims": True})

    def op_ReduceMean(self, node, ins, a):
        return self.reduce(node, ins, a, True)

    def op_ReduceSum(self, node, ins, a):
        return self.reduce(node, ins, a, False)
