"""Linear ops: Gemm, MatMul, Conv, BatchNormalization and the elementwise
Add/Sub/Mul/Div/Neg."""
from __future__ import annotations

import numpy as np

from .common import OnnxImportError, Act


class LinearOps:
    # -- linear
    def op_Gemm(self, node, ins, a):
        A, Bm = ins[0], ins[1]
        C = ins[2] if len(ins) > 2 else None
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        if not isinstance(A, Act) or not isinstance(Bm, np.ndarray):
            self.fail(node, "only activation x constant weights are supported (the right operand is secret)")
        if a.get("transA", 0):
            self.fail(node, "transA=1 on an activation would move the batch axis")
        if len(self.full(A)) != 2:
            self.fail(node, "Gemm input must be 2-D")
        W = np.asarray(Bm, np.float64)
        W = (W.T if a.get("transB", 0) else W) * alpha
        consts = [self.add_const(W)]
        M = W.shape[1]
        post = None
        if isinstance(C, np.ndarray):
            c = np.asarray(C, np.float64) * beta
            c = self.const_per_sample(node, c, 2)
            if c.shape == (M,):
                consts.append(self.add_const(c))
            else:
                post = c
        out = self.emit("matmul", [A.v], consts)
        if post is not None:
            out = self.emit("add_const", [out.v], [self.add_const(post)])
        if isinstance(C, Act):
            if beta != 1.0:
                C = self.emit("mul_const", [C.v], [self.add_const(np.full((1,) * len(self.act_shape(C)), beta))])
            out = self.emit("add", [out.v, C.v])
        return out

    def op_MatMul(self, node, ins, a):
        A, Bm = ins
        if not isinstance(A, Act) or not isinstance(Bm, np.ndarray):
            self.fail(node, "only activation x constant weights are supported (the right operand is secret)")
        if Bm.ndim != 2 or len(self.full(A)) < 2:
            self.fail(node, "the weight must be 2-D and the activation at least 2-D")
        return self.emit("matmul", [A.v], [self.add_const(Bm)])

    def conv_geometry(self, node, a, spatial, kernel, dil, strides):
        pads = list(a.get("pads", [0] * (2 * len(kernel))))
        ap = a.get("auto_pad", b"NOTSET")
        ap = ap.decode() if isinstance(ap, bytes) else ap
        if ap in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0] * (2 * len(kernel))
            for i, (n, k, d, s) in enumerate(zip(spatial, kernel, dil, strides)):
                out = -(-n // s)
                tot = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
                lo = tot // 2 if ap == "SAME_UPPER" else tot - tot // 2
                pads[i], pads[i + len(kernel)] = lo, tot - lo
        elif ap == "VALID":
            pads = [0] * (2 * len(kernel))
        elif ap != "NOTSET":
            self.fail(node, f"auto_pad={ap}")
        return pads

    def op_Conv(self, node, ins, a):
        X, W = ins[0], ins[1]
        Bv = ins[2] if len(ins) > 2 else None
        if not isinstance(X, Act) or not isinstance(W, np.ndarray) or isinstance(Bv, Act):
            self.fail(node, "weights and bias must be constants")
        nd = W.ndim - 2
        if nd not in (1, 2):
            self.fail(node, f"{nd}-D convolution (1-D and 2-D are supported)")
        xs = self.act_shape(X)
        if len(xs) != nd + 1:
            self.fail(node, "input rank does not match the kernel")
        kernel = list(W.shape[2:])
        if "kernel_shape" in a and list(a["kernel_shape"]) != kernel:
            self.fail(node, "kernel_shape differs from the weight shape")
        strides = list(a.get("strides", [1] * nd))
        dil = list(a.get("dilations", [1] * nd))
        pads = self.conv_geometry(node, a, xs[1:], kernel, dil, strides)
        group = int(a.get("group", 1))
        W = np.asarray(W, np.float64)
        x = X
        if nd == 1:
            x = self.emit("reshape", [X.v], attrs={"shape": (xs[0], 1, xs[1])})
            W = W[:, :, None, :]
            strides, dil, pads = [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
        consts = [self.add_const(W)]
        if Bv is not None:
            consts.append(self.add_const(np.asarray(Bv, np.float64).reshape(-1)))
        out = self.emit("conv", [x.v], consts, {"strides": tuple(strides), "pads": tuple(pads),
                                                "dilations": tuple(dil), "group": group})
        if nd == 1:
            s = self.act_shape(out)
            out = self.emit("reshape", [out.v], attrs={"shape": (s[0], s[2])})
        return out

    # -- elementwise
    def binary(self, node, ins, kind):
        A, Bx = ins
        if isinstance(A, Act) and isinstance(Bx, Act):
            if kind == "div":
                self.fail(node, "division by an activation")
            if len(self.act_shape(A)) != len(self.act_shape(Bx)):
                self.fail(node, "operands of different ranks")
            return self.emit(kind, [A.v, Bx.v])
        act, c, rev = (A, Bx, False) if isinstance(A, Act) else (Bx, A, True)
        c = self.const_per_sample(node, c, len(self.full(act)))
        if kind == "add":
            return self.emit("add_const", [act.v], [self.add_const(c)])
        if kind == "sub":
            if rev:
                n = self.emit("neg", [act.v])
                return self.emit("add_const", [n.v], [self.add_const(c)])
            return self.emit("add_const", [act.v], [self.add_const(-c)])
        if kind == "mul":
            return self.emit("mul_const", [act.v], [self.add_const(c)])
        if rev:
            self.fail(node, "division by an activation")
        if np.any(c == 0):
            raise OnnxImportError(f"node {self.cur_name}: division by zero")
        return self.emit("mul_const", [act.v], [self.add_const(1.0 / c)])

    def op_Add(self, node, ins, a):
        return self.binary(node, ins, "add")

    def op_Sub(self, node, ins, a):
        return self.binary(node, ins, "sub")

    def op_Mul(self, node, ins, a):
        return self.binary(node, ins, "mul")

    def op_Div(self, node, ins, a):
        return self.binary(node, ins, "div")

    def op_Neg(self, node, ins, a):
        return self.emit("neg", [ins[0].v])

    def op_BatchNormalization(self, node, ins, a):
        X = ins[0]
        if a.get("training_mode", 0):
            self.fail(node, "training_mode=1")
        if len([o for o in node.output if o]) > 1:
            self.fail(node, "training outputs (running mean/var) are requested")
        if not all(isinstance(t, np.ndarray) for t in ins[1:5]):
            self.fail(node, "scale, bias, mean and variance must be constants")
        scale, bias, mean, var = (np.asarray(t, np.float64).reshape(-1) for t in ins[1:5])
        eps = float(a.get("epsilon", 1e-5))
        s = scale / np.sqrt(var + eps)
        t = bias - mean * s
        xs = self.act_shape(X)
        if len(xs) < 1 or xs[0] != s.size:
            raise OnnxImportError(f"node {self.cur_name}: {s.size} BatchNorm channels, input {xs}")
        cs = (xs[0],) + (1,) * (len(xs) - 1)
        return self.emit("affine", [X.v], [self.add_const(s.reshape(cs)), self.add_const(t.reshape(cs))])
