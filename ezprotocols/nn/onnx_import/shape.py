"""Pass-through and shape ops: Identity, Dropout, Cast, Pad, Slice, Flatten, Reshape,
Squeeze, Unsqueeze, Transpose, Concat."""
from __future__ import annotations

import math

import numpy as np

from .common import FLOAT_TYPES, OnnxImportError, Act


class ShapeOps:
    # -- pass-through
    def op_Identity(self, node, ins, a):
        return ins[0]

    def op_Dropout(self, node, ins, a):
        if len(node.output) > 1 and node.output[1] and self.used(node.output[1]):
            self.fail(node, "the dropout mask output is used")
        if a.get("is_test", 1) == 0 and self.opset < 7:
            pass  # inference: dropout is the identity
        if len(ins) > 2 and isinstance(ins[2], np.ndarray) and bool(ins[2]):
            self.fail(node, "training_mode=True")
        return ins[0]

    def used(self, name):
        return any(name in n.input for n in self.model.graph.node) or \
            any(o.name == name for o in self.model.graph.output)

    def op_Cast(self, node, ins, a):
        if a.get("to") not in FLOAT_TYPES:
            self.fail(node, "only casts between floating-point types are supported")
        return ins[0]

    def op_Pad(self, node, ins, a):
        X = ins[0]
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            self.fail(node, f"mode={mode} (only constant zero padding)")
        pads = a.get("pads", a.get("paddings"))
        if len(ins) > 1 and ins[1] is not None:
            if not isinstance(ins[1], np.ndarray):
                self.fail(node, "pads must be a constant")
            pads = ins[1]
        value = a.get("value", 0.0)
        if len(ins) > 2 and ins[2] is not None:
            if not isinstance(ins[2], np.ndarray):
                self.fail(node, "the pad value must be a constant")
            value = float(np.asarray(ins[2]).reshape(-1)[0]) if np.asarray(ins[2]).size else 0.0
        if float(value) != 0.0:
            self.fail(node, "non-zero pad value")
        r = len(self.full(X))
        pads = [int(v) for v in np.asarray(pads).reshape(-1)]
        if len(ins) > 3 and ins[3] is not None:             # opset 18 axes
            axes = [int(v) + r if int(v) < 0 else int(v) for v in np.asarray(ins[3]).reshape(-1)]
            full = [0] * (2 * r)
            for k, ax in enumerate(axes):
                full[ax], full[ax + r] = pads[k], pads[k + len(axes)]
            pads = full
        if len(pads) != 2 * r or any(v < 0 for v in pads):
            self.fail(node, "negative or malformed pads")
        if pads[0] or pads[r]:
            self.fail(node, "padding the batch axis")
        ps = pads[1:r] + pads[r + 1:]
        if not any(ps):
            return X
        return self.emit("pad", [X.v], attrs={"pads": tuple(ps)})

    def op_Slice(self, node, ins, a):
        X = ins[0]
        full = self.full(X)
        r = len(full)
        if self.opset < 10:
            starts, ends = list(a["starts"]), list(a["ends"])
            axes = list(a.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        else:
            if not all(isinstance(t, np.ndarray) for t in ins[1:] if t is not None):
                self.fail(node, "starts, ends, axes and steps must be constants")
            starts = [int(v) for v in np.asarray(ins[1]).reshape(-1)]
            ends = [int(v) for v in np.asarray(ins[2]).reshape(-1)]
            axes = [int(v) for v in np.asarray(ins[3]).reshape(-1)] if len(ins) > 3 and ins[3] is not None \
                else list(range(len(starts)))
            steps = [int(v) for v in np.asarray(ins[4]).reshape(-1)] if len(ins) > 4 and ins[4] is not None \
                else [1] * len(starts)
        st, sp, sz = [0] * r, [1] * r, list(full)
        for s0, e0, ax, stp in zip(starts, ends, axes, steps):
            ax = ax + r if ax < 0 else ax
            if stp < 1:
                self.fail(node, "negative or zero steps")
            idx = range(full[ax])[slice(s0, e0, stp)]
            if ax == 0:
                if len(idx) == full[0] and stp == 1:
                    continue                                      # the whole batch axis
                self.fail(node, "slicing the batch axis")
            if len(idx) == 0:
                self.fail(node, "empty slice")
            st[ax], sp[ax], sz[ax] = idx.start, idx.step, len(idx)
        if st[1:] == [0] * (r - 1) and sz[1:] == list(full[1:]):
            return X
        return self.emit("slice", [X.v], attrs={"starts": tuple(st[1:]), "steps": tuple(sp[1:]),
                                                "sizes": tuple(sz[1:])})

    # -- layout
    def to_per_sample(self, node, full_out):
        if len(full_out) < 1 or full_out[0] != self.B:
            self.fail(node, f"target shape {tuple(full_out)} would mix the batch axis")
        return tuple(int(d) for d in full_out[1:])

    def reshape_to(self, node, X, ps):
        if ps == self.act_shape(X):
            return X
        return self.emit("reshape", [X.v], attrs={"shape": ps})

    def op_Flatten(self, node, ins, a):
        X = ins[0]
        full = self.full(X)
        ax = a.get("axis", 1)
        ax = ax + len(full) if ax < 0 else ax
        if ax == 0 or any(d != 1 for d in full[1:ax]):
            if not (ax == 0 and self.B == 1):
                self.fail(node, f"axis={a.get('axis', 1)} would mix the batch axis")
        return self.reshape_to(node, X, (math.prod(full[ax:]) if ax else math.prod(full[1:]),))

    def op_Reshape(self, node, ins, a):
        X, shp = ins
        if not isinstance(shp, np.ndarray):
            self.fail(node, "the target shape must be a constant")
        full = self.full(X)
        tgt = [int(d) for d in np.asarray(shp).reshape(-1)]
        allowzero = a.get("allowzero", 0)
        out = [full[i] if (d == 0 and not allowzero and i < len(full)) else d for i, d in enumerate(tgt)]
        if out.count(-1) > 1:
            raise OnnxImportError(f"node {self.cur_name}: several -1 in the target shape")
        if -1 in out:
            rest = math.prod(d for d in out if d != -1)
            if rest == 0 or math.prod(full) % rest:
                raise OnnxImportError(f"node {self.cur_name}: cannot reshape {full} to {tgt}")
            out[out.index(-1)] = math.prod(full) // rest
        return self.reshape_to(node, X, self.to_per_sample(node, out))

    def axes_of(self, node, ins, a):
        if len(ins) > 1 and ins[1] is not None:
            if not isinstance(ins[1], np.ndarray):
                self.fail(node, "axes must be a constant")
            return [int(x) for x in np.asarray(ins[1]).reshape(-1)]
        return list(a["axes"]) if "axes" in a else None

    def op_Squeeze(self, node, ins, a):
        X = ins[0]
        full = self.full(X)
        axes = self.axes_of(node, ins, a)
        if axes is None:
            axes = [i for i in range(1, len(full)) if full[i] == 1]
        axes = [x + len(full) if x < 0 else x for x in axes]
        if 0 in axes:
            self.fail(node, "squeezing the batch axis")
        return self.reshape_to(node, X, tuple(d for i, d in enumerate(full) if i not in axes)[1:])

    def op_Unsqueeze(self, node, ins, a):
        X = ins[0]
        full = list(self.full(X))
        axes = self.axes_of(node, ins, a)
        r = len(full) + len(axes)
        axes = sorted(x + r if x < 0 else x for x in axes)
        if 0 in axes:
            self.fail(node, "unsqueezing before the batch axis")
        for x in axes:
            full.insert(x, 1)
        return self.reshape_to(node, X, tuple(full[1:]))

    def op_Transpose(self, node, ins, a):
        X = ins[0]
        r = len(self.full(X))
        perm = list(a.get("perm", list(range(r))[::-1]))
        if perm[0] != 0:
            self.fail(node, f"perm {perm} moves the batch axis")
        if perm == list(range(r)):
            return X
        return self.emit("transpose", [X.v], attrs={"perm": tuple(perm)})

    def op_Concat(self, node, ins, a):
        if not all(isinstance(x, Act) for x in ins):
            self.fail(node, "concatenating an activation with a constant")
        r = len(self.full(ins[0]))
        ax = a["axis"] + r if a["axis"] < 0 else a["axis"]
        if ax == 0:
            self.fail(node, "concatenation along the batch axis")
        if len(ins) == 1:
            return ins[0]
        return self.emit("concat", [x.v for x in ins], attrs={"axis": ax})
