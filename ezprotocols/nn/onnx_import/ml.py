"""``ai.onnx.ml`` ops of scikit-learn models converted by skl2onnx: LinearClassifier,
LinearRegressor, Scaler, Normalizer."""
from __future__ import annotations

import numpy as np

from .common import OnnxImportError, Act, Post


class MlOps:
    # -- ai.onnx.ml (scikit-learn models converted by skl2onnx)
    def _ml_linear(self, node, X, coef, intercepts, n_out):
        if not isinstance(X, Act) or len(self.full(X)) != 2:
            self.fail(node, "the input must be a 2-D activation")
        K = self.act_shape(X)[0]
        coef = np.asarray(coef, np.float64)
        if coef.size != n_out * K:
            raise OnnxImportError(f"node {self.cur_name}: {coef.size} coefficients for {n_out} outputs of "
                                  f"{K} features")
        W = coef.reshape(n_out, K).T
        b = np.zeros(n_out) if intercepts is None or len(intercepts) == 0 else \
            np.broadcast_to(np.asarray(intercepts, np.float64), (n_out,)).copy()
        return W, b

    def ml_LinearClassifier(self, node, ins, a):
        """scores = X @ coefficients^T + intercepts, then post_transform (NONE,
        LOGISTIC, SOFTMAX); the label output is classes[argmax(scores)].  One
        coefficient row with two classes (LOGISTIC only) is the binary case:
        logits [-s, s], probabilities [1 - sigmoid(s), sigmoid(s)]."""
        X = ins[0]
        classes = a.get("classlabels_ints", a.get("classlabels_strings"))
        if classes is None:
            self.fail(node, "no class labels")
        n_cls = len(classes)
        n_rows = len(a.get("intercepts", [])) or (len(a["coefficients"]) // max(1, self.act_shape(X)[0]))
        W, b = self._ml_linear(node, X, a["coefficients"], a.get("intercepts"), n_rows)
        pt = a.get("post_transform", b"NONE")
        pt = pt.decode() if isinstance(pt, bytes) else pt
        if n_rows == 1 and n_cls == 2:
            if pt != "LOGISTIC":
                # onnxruntime's scores are then [1 - s, s], whose argmax is not the label [s > 0]
                self.fail(node, f"one coefficient row for two classes with post_transform={pt} "
                          "(only LOGISTIC: probabilities [1 - p, p])")
            W, b = np.concatenate([-W, W], axis=1), np.concatenate([-b, b])
        elif n_rows != n_cls:
            self.fail(node, f"{n_rows} coefficient rows for {n_cls} classes")
        z = self.emit("matmul", [X.v], [self.add_const(W), self.add_const(b)])
        if pt == "NONE":
            out = z
        elif pt == "LOGISTIC":
            out = Post("sigmoid", z, 1, op_type="ai.onnx.ml.LinearClassifier", node=self.cur_name)
        elif pt == "SOFTMAX":
            out = Post("softmax", z, 1, op_type="ai.onnx.ml.LinearClassifier", node=self.cur_name)
        else:
            self.fail(node, f"post_transform={pt} (NONE, LOGISTIC and SOFTMAX are supported)")
        self.env[node.output[1]] = out
        self.acts[node.output[1]] = z
        return None

    def ml_LinearRegressor(self, node, ins, a):
        pt = a.get("post_transform", b"NONE")
        pt = pt.decode() if isinstance(pt, bytes) else pt
        if pt != "NONE":
            self.fail(node, f"post_transform={pt}")
        W, b = self._ml_linear(node, ins[0], a["coefficients"], a.get("intercepts"), int(a.get("targets", 1)))
        return self.emit("matmul", [ins[0].v], [self.add_const(W), self.add_const(b)])

    def ml_Scaler(self, node, ins, a):
        """(x - offset) * scale, per feature or one value for all."""
        X = ins[0]
        if not isinstance(X, Act) or len(self.full(X)) != 2:
            self.fail(node, "the input must be a 2-D activation")
        K = self.act_shape(X)[0]
        vals = {}
        for key, default in (("offset", 0.0), ("scale", 1.0)):
            v = np.asarray(a.get(key, []), np.float64).reshape(-1)
            if v.size not in (0, 1, K):
                raise OnnxImportError(f"node {self.cur_name}: {v.size} {key} values for {K} features")
            vals[key] = np.broadcast_to(v if v.size else np.array([default]), (K,)).copy()
        sc, off = vals["scale"], vals["offset"]
        if np.all(off == 0) and np.all(sc == 1):
            return X
        return self.emit("affine", [X.v], [self.add_const(sc), self.add_const(-off * sc)])

    def ml_Normalizer(self, node, ins, a):
        self.fail(node, "normalising an activation needs a division (supported only as the L1 normalisation "
                  "of softmax or sigmoid outputs)")
