"""Plan passes after translation: folding of biases, affine ops and scalings into
neighbouring linear ops, ReLU/max-pool reordering, compaction."""
from __future__ import annotations

import numpy as np

from ..plan import Op, Plan, check_plan
from .common import OnnxImportError, Act, Post


class Passes:
    # ------------------------------------------------------------------ finish
    def finish(self, res, encode) -> Plan:
        if isinstance(res, Post):
            post, axis, keep, last = res.kind, res.axis, res.keepdims, res.src
        else:
            post, axis, keep, last = "logits", -1, False, res
        if not isinstance(last, Act):
            raise OnnxImportError("the model's final op is not applied to an activation")
        self.fold_linear()
        self.fold_affine()
        self.fold_into_next_matmul()
        self.fold_relu_scale(last.v)
        self.swap_relu_maxpool()
        ops, consts, last_v = self.compact(last.v)
        plan = Plan(input_shape=self.input_ps, ops=ops, const_shapes=[c.shape for c in consts], consts=consts,
                    frac_bits=self.f, post=post, post_axis=axis, post_keepdims=keep,
                    input_name=self.inp.name, output_name=self.out_name, class_labels=self.class_labels)
        check_plan(plan, OnnxImportError)
        return plan.encode() if encode else plan

    def fold_linear(self):
        """Fold affine / add_const / mul_const that follow a conv or matmul along its
        output-channel axis into that op's weight and bias."""
        uses = {}
        for op in self.ops:
            for v in op.inputs:
                uses[v] = uses.get(v, 0) + 1
        for j, op in enumerate(self.ops):
            if op.kind not in ("affine", "add_const", "mul_const"):
                continue
            src = op.inputs[0]
            if src == 0 or uses.get(src, 0) != 1:
                continue
            lin = self.ops[src - 1]
            if lin.kind not in ("conv", "matmul") or lin.shape != op.shape:
                continue
            chan_axis = 0 if lin.kind == "conv" else len(lin.shape) - 1
            vecs = []
            ok = True
            for c in op.consts:
                arr = self.consts[c]
                if any(d != 1 for i, d in enumerate(arr.shape) if i != chan_axis):
                    ok = False
                    break
                n = lin.shape[chan_axis]
                vecs.append(np.broadcast_to(arr.reshape(-1), (n,)) if arr.size in (1, n) else None)
            if not ok or any(v is None for v in vecs):
                continue
            if op.kind == "affine":
                s, t = vecs
            elif op.kind == "mul_const":
                s, t = vecs[0], np.zeros_like(vecs[0])
            else:
                s, t = np.ones_like(vecs[0]), vecs[0]
            W = self.consts[lin.consts[0]]
            n = s.size
            b = self.consts[lin.consts[1]] if len(lin.consts) > 1 else np.zeros(n)
            W2 = W * (s.reshape(-1, *([1] * (W.ndim - 1))) if lin.kind == "conv" else s.reshape(1, -1))
            self.consts[lin.consts[0]] = W2
            if len(lin.consts) > 1:
                self.consts[lin.consts[1]] = b * s + t
            else:
                lin.consts.append(self.add_const(b * s + t))
            # op j becomes an identity of its input
            op.kind, op.consts, op.attrs = "identity", [], {}

    def _uses(self):
        uses = {}
        for op in self.ops:
            for v in op.inputs:
                uses[v] = uses.get(v, 0) + 1
        return uses

    def fold_affine(self):
        """mul_const followed by add_const (x * s + t, e.g. a normalisation) becomes one
        affine op: one private product and one truncation instead of two ops."""
        uses = self._uses()
        for op in self.ops:
            if op.kind == "mul_const" and op.inputs[0] != 0 and uses.get(op.inputs[0], 0) == 1:
                src = self.ops[op.inputs[0] - 1]
                if src.kind == "affine" and src.shape == op.shape:
                    c = self.consts[op.consts[0]]
                    sc, tc = self.consts[src.consts[0]], self.consts[src.consts[1]]
                    if sc.ndim == tc.ndim == c.ndim:
                        s_new, t_new = self.add_const(sc * c), self.add_const(tc * c)
                        op.kind, op.inputs, op.consts, op.attrs = "affine", list(src.inputs), [s_new, t_new], {}
                        src.kind, src.consts, src.attrs = "identity", [], {}
                        uses = self._uses()
                continue
            if op.kind != "add_const" or op.inputs[0] == 0 or uses.get(op.inputs[0], 0) != 1:
                continue
            src = self.ops[op.inputs[0] - 1]
            if src.kind != "mul_const" or src.shape != op.shape:
                continue
            sc, tc = self.consts[src.consts[0]], self.consts[op.consts[0]]
            if sc.ndim != tc.ndim:
                continue
            shp = tuple(max(a, b) for a, b in zip(sc.shape, tc.shape))
            s_new = self.add_const(np.broadcast_to(sc, shp).copy())
            t_new = self.add_const(np.broadcast_to(tc, shp).copy())
            op.kind, op.inputs, op.consts, op.attrs = "affine", list(src.inputs), [s_new, t_new], {}
            src.kind, src.consts, src.attrs = "identity", [], {}
            uses = self._uses()

    def fold_into_next_matmul(self):
        """A per-feature affine map (x * s + t along the last axis, e.g. a scaler) whose
        only user is a matmul folds into that matmul: (x * s + t) @ W + b =
        x @ (diag(s) W) + (t @ W + b): one product and one truncation fewer."""
        changed = True
        while changed:
            changed = False
            uses = self._uses()
            for lin in self.ops:
                if lin.kind != "matmul" or lin.inputs[0] == 0 or uses.get(lin.inputs[0], 0) != 1:
                    continue
                op = self.ops[lin.inputs[0] - 1]
                if op.kind not in ("affine", "mul_const", "add_const") or \
                        op.shape != self.act_shape(Act(op.inputs[0])):
                    continue
                W = self.consts[lin.consts[0]]
                K = W.shape[0]
                vecs = []
                for c in op.consts:
                    arr = self.consts[c]
                    if any(d != 1 for d in arr.shape[:-1]) or (arr.ndim and arr.shape[-1] not in (1, K)):
                        break
                    vecs.append(np.broadcast_to(arr.reshape(-1), (K,)))
                else:
                    if op.kind == "affine":
                        sc, t = vecs
                    elif op.kind == "mul_const":
                        sc, t = vecs[0], np.zeros(K)
                    else:
                        sc, t = np.ones(K), vecs[0]
                    b = self.consts[lin.consts[1]] if len(lin.consts) > 1 else np.zeros(W.shape[1])
                    # the affine op's t is at scale 2f in an affine op, f in add_const: both are floats here
                    self.consts[lin.consts[0]] = sc[:, None] * W
                    nb = b + t @ W
                    if len(lin.consts) > 1:
                        self.consts[lin.consts[1]] = nb
                    else:
                        lin.consts.append(self.add_const(nb))
                    lin.inputs = [op.inputs[0]]
                    changed = True
                    break

    #: smallest nonzero |s| of an affine op that :meth:`fold_relu_scale` rewrites: below,
    #: t / |s| and W * |s| would lose too much precision at the plan's fixed-point scale
    RELU_SCALE_MIN = 2.0 ** -6

    def fold_relu_scale(self, last_v):
        """A per-channel affine op (a BatchNorm that could not be folded into a preceding
        conv, e.g. after a DenseNet concatenation) whose only user is a ReLU whose users
        are all convs (group 1) or all matmuls, along the channel axis they contract:
        ReLU is positively homogeneous, so with ``c = |s|`` (1 where s = 0)::

            relu(x * s + t) = c * relu(x * sign(s) + t / c)

        ``c`` goes into those layers' weights along their input-channel axis and the
        affine op becomes ``affine_sign`` (signs in {-1, 0, 1}, exact, no truncation):
        a product with 2-bit weights instead of ~17.  Applied only when every nonzero
        |s| is at least :attr:`RELU_SCALE_MIN` and |t / c| stays a quarter of the
        activation range (``act_bits``); otherwise the op stays as it was.  A public,
        deterministic pass: the architecture shows that it applied, not the scales."""
        users = {}
        for j, op in enumerate(self.ops):
            for v in op.inputs:
                users.setdefault(v, []).append(j)
        f = self.f
        act_bits = getattr(self, "act_bits", 64)
        for j, op in enumerate(self.ops):
            v = j + 1
            if op.kind != "affine" or op.inputs[0] == 0 or v == last_v or len(users.get(v, ())) != 1:
                continue
            r = users[v][0]
            R = self.ops[r]
            if R.kind != "relu" or r + 1 == last_v or R.inputs != [v]:
                continue
            cons = [self.ops[i] for i in users.get(r + 1, ())]
            if not cons or any(c.inputs != [r + 1] for c in cons):
                continue
            xs = tuple(op.shape)
            if tuple(self.act_shape(Act(op.inputs[0]))) != xs or not xs:
                continue
            if all(c.kind == "conv" and c.attrs.get("group", 1) == 1 for c in cons) and len(xs) == 3:
                axis = 0
            elif all(c.kind == "matmul" for c in cons):
                axis = len(xs) - 1
            else:
                continue
            n = xs[axis]
            vecs = []
            for ci in op.consts:
                arr = np.asarray(self.consts[ci], dtype=np.float64)
                off = len(xs) - arr.ndim
                if off < 0 or any(d != 1 for i, d in enumerate(arr.shape) if i + off != axis) or \
                        (axis - off >= 0 and arr.shape[axis - off] not in (1, n)):
                    break
                vecs.append(np.broadcast_to(arr.reshape(-1), (n,)).copy())
            if len(vecs) != 2:
                continue
            s, t = vecs
            a = np.abs(s)
            if np.any((a > 0) & (a < self.RELU_SCALE_MIN)):
                continue
            c = np.where(a > 0, a, 1.0)
            t2 = t / c
            if t2.size and float(np.max(np.abs(t2))) >= 2.0 ** (act_bits - 3 - f):
                continue
            cshape = [1] * len(xs)
            cshape[axis] = n
            for L in cons:
                W = np.asarray(self.consts[L.consts[0]], dtype=np.float64)
                W2 = W * (c.reshape(1, -1, *([1] * (W.ndim - 2))) if L.kind == "conv" else c.reshape(-1, 1))
                L.consts = [self.add_const(W2)] + list(L.consts[1:])
            op.kind = "affine_sign"
            op.consts = [self.add_const(np.sign(s).reshape(cshape)), self.add_const(t2.reshape(cshape))]

    def swap_relu_maxpool(self):
        """maxpool(relu(x)) == relu(maxpool(x)) exactly (max is monotone and every
        window holds at least one input element): run the ReLU on the pooled,
        smaller tensor."""
        uses = self._uses()
        for j, op in enumerate(self.ops):
            if op.kind != "maxpool" or op.inputs[0] == 0 or uses.get(op.inputs[0], 0) != 1:
                continue
            r = self.ops[op.inputs[0] - 1]
            if r.kind != "relu":
                continue
            # value r (index i) becomes maxpool(x), value j+1 becomes relu(value i+1)
            i = op.inputs[0] - 1
            x = r.inputs[0]
            self.ops[i] = Op("maxpool", [x], [], op.attrs, op.shape, op.name)
            self.ops[j] = Op("relu", [i + 1], [], {}, op.shape, r.name)

    def compact(self, last_v):
        """Drop identities and ops not needed for value ``last_v``; renumber values and constants."""
        alias = {0: 0}
        keep_idx = []
        need = set()
        stack = [last_v]
        while stack:
            v = stack.pop()
            if v == 0 or v in need:
                continue
            need.add(v)
            stack.extend(self.ops[v - 1].inputs)
        ops, consts, cmap = [], [], {}
        for i, op in enumerate(self.ops):
            v = i + 1
            if v not in need:
                continue
            if op.kind == "identity":
                alias[v] = alias[op.inputs[0]]
                continue
            new_c = []
            for c in op.consts:
                cmap[c] = len(consts)
                consts.append(self.consts[c])
                new_c.append(cmap[c])
            ops.append(Op(op.kind, [alias[x] for x in op.inputs], new_c, op.attrs, op.shape, op.name))
            alias[v] = len(ops)
            keep_idx.append(i)
        if alias[last_v] != len(ops):
            raise OnnxImportError("internal: the logits are not the last op")
        return ops, consts, alias[last_v]
