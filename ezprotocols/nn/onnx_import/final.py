"""Final monotone ops: Softmax, LogSoftmax, Sigmoid, ArgMax (evaluated as an argmax
when only the class is revealed)."""
from __future__ import annotations

import math

from .common import MONOTONE, UnsupportedOp, Post


class FinalOps:
    # -- final ops
    def op_Softmax(self, node, ins, a, kind="softmax"):
        X = ins[0]
        full = self.full(X)
        r = len(full)
        default = -1 if self.opset >= 13 else 1
        ax = a.get("axis", default)
        ax = ax + r if ax < 0 else ax
        if ax == 0:
            self.fail(node, "softmax over the batch axis")
        if self.opset < 13 and ax != r - 1:
            # opset < 13 coerces the input to 2-D at `axis`
            X = self.reshape_to(node, X, (math.prod(full[ax:]),) if ax == 1 else self.fail(
                node, "opset < 13 softmax with 1 < axis < rank-1"))
            ax = 1
        return Post(kind, X, ax, op_type=node.op_type, node=self.cur_name)

    def op_LogSoftmax(self, node, ins, a):
        return self.op_Softmax(node, ins, a, "logsoftmax")

    def op_Sigmoid(self, node, ins, a):
        """Sigmoid as the final op (e.g. a binary classifier): monotone, so the class is
        the argmax of the logits (one logit z: class [z > 0]); P1 evaluates it in the
        clear on revealed logits when the model owner allows them."""
        X = ins[0]
        return Post("sigmoid", X, len(self.full(X)) - 1, op_type="Sigmoid", node=self.cur_name)

    def op_ArgMax(self, node, ins, a):
        X = ins[0]
        if a.get("select_last_index", 0):
            self.fail(node, "select_last_index=1")
        src = X.src if isinstance(X, Post) else X
        r = len(self.full(src))
        ax = a.get("axis", 0)
        ax = ax + r if ax < 0 else ax
        if ax == 0:
            self.fail(node, "argmax over the batch axis")
        if isinstance(X, Post):
            # argmax of a monotone row-wise transform = argmax of the logits along the same axis
            if X.kind not in MONOTONE or (X.kind != "sigmoid" and X.axis != ax):
                raise UnsupportedOp(X.op_type, X.node, f"{X.op_type} must be the last op; it is followed by an "
                                    f"ArgMax along another axis at node {self.cur_name}")
            if X.kind == "sigmoid" and self.full(src)[ax] == 1:
                self.fail(node, "argmax over a single sigmoid output")
        return Post("argmax", src, ax, bool(a.get("keepdims", 1)), op_type="ArgMax", node=self.cur_name)
