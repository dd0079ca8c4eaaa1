"""Piecewise-linear activations: Relu, Clip (two ReLUs), LeakyRelu and PRelu (one ReLU)."""
from __future__ import annotations

import numpy as np

from .common import OnnxImportError, Act


class ActivationOps:
    def _relu_of_shift(self, X, shift):
        """relu(x + shift) for a constant scalar shift (0: plain relu)."""
        v = X
        if shift != 0:
            v = self.emit("add_const", [X.v], [self.add_const(np.full((1,) * len(self.act_shape(X)), shift))])
        return self.emit("relu", [v.v])

    def op_Clip(self, node, ins, a):
        """clip(x, lo, hi) = lo + relu(x - lo) - relu(x - hi) (two ReLUs), e.g. ReLU6."""
        X = ins[0]
        lo, hi = a.get("min"), a.get("max")
        if len(ins) > 1 and ins[1] is not None:
            lo = ins[1]
        if len(ins) > 2 and ins[2] is not None:
            hi = ins[2]
        if isinstance(lo, Act) or isinstance(hi, Act):
            self.fail(node, "the bounds must be constants")
        lo = None if lo is None else float(np.asarray(lo).reshape(-1)[0])
        hi = None if hi is None else float(np.asarray(hi).reshape(-1)[0])
        one = (1,) * len(self.act_shape(X))
        if lo is not None and hi is not None and lo > hi:
            raise OnnxImportError(f"node {self.cur_name}: Clip with min > max")
        if lo is None and hi is None:
            return X
        if lo is not None:
            y = self._relu_of_shift(X, -lo)                     # relu(x - lo)
        else:
            y = X
        if hi is not None:
            r2 = self._relu_of_shift(X, -hi)                    # relu(x - hi)
            y = self.emit("sub", [y.v, r2.v])
            if lo is None:
                return y                                        # x - relu(x - hi) = min(x, hi)
        if lo is not None and lo != 0:
            y = self.emit("add_const", [y.v], [self.add_const(np.full(one, lo))])
        return y

    def op_LeakyRelu(self, node, ins, a):
        """leaky(x) = alpha * x + (1 - alpha) * relu(x)."""
        X = ins[0]
        alpha = float(a.get("alpha", 0.01))
        return self._leaky(X, np.full((1,) * len(self.act_shape(X)), alpha))

    def op_PRelu(self, node, ins, a):
        X, slope = ins
        if not isinstance(slope, np.ndarray):
            self.fail(node, "the slope must be a constant")
        sl = np.asarray(slope, np.float64)
        xs = self.act_shape(X)
        if self.opset < 7 and sl.ndim == 1 and len(xs) >= 1 and sl.size == xs[0]:
            sl = sl.reshape((-1,) + (1,) * (len(xs) - 1))       # opset 6: per channel
        return self._leaky(X, self.const_per_sample(node, sl, len(xs) + 1))

    def _leaky(self, X, alpha):
        r = self.emit("relu", [X.v])
        r = self.emit("mul_const", [r.v], [self.add_const(1.0 - alpha)])
        ax = self.emit("mul_const", [X.v], [self.add_const(alpha)])
        return self.emit("add", [ax.v, r.v])

    def op_Relu(self, node, ins, a):
        return self.emit("relu", [ins[0].v])
