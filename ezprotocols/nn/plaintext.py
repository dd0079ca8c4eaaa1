"""Plaintext fixed-point executor of a :class:`~ezprotocols.nn.plan.Plan`.

It computes exactly what the secure executor computes (same encoding, same
scales, truncation = arithmetic shift right), over int64 with wrap-around
(Z_2^64), so it is the reference for the secure executor and the "plaintext"
column of the demo.  The secure executor's probabilistic truncation may differ
by one unit in the last place per truncation.

Tolerance against a float runtime (onnxruntime), checked by the tests at
``frac_bits = 16`` on models of a few layers: logits within 2e-3 + 1e-3 * |y|
(inputs and weights are rounded to 2^-16, each truncation floors, and later
layers amplify both by their weights); the argmax agrees wherever the top two
float logits are further apart than that.  The secure executor adds at most one
unit (2^-16) per truncation before amplification (tests allow 256 units).

>>> import numpy as np
>>> from ezprotocols.nn.plan import Plan, Op
>>> p = Plan(input_shape=(2,), ops=[Op("relu", [0], [], {}, (2,))], const_shapes=[], consts=[])
>>> run_plaintext(p, np.array([[1.5, -2.0]])).tolist()
[[1.5, 0.0]]
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .plan import Plan, pool_out_size

__all__ = ["run_plaintext", "run_fixed", "encode", "decode", "postprocess", "predict_classes",
           "window_view", "window_counts", "conv_cols", "MIN_FIXED"]

#: The value padding takes in a max-pooling window (far below any activation).
MIN_FIXED = -(1 << 62)


def encode(x, f: int) -> np.ndarray:
    """Fixed-point encoding: round(x * 2^f) as int64 (two's complement of Z_2^64)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("input has non-finite values")
    v = np.rint(x * float(1 << f))
    if v.size and np.max(np.abs(v)) >= 2.0 ** 62:
        raise ValueError("input overflows the fixed-point range")
    return v.astype(np.int64)


def decode(v, f: int) -> np.ndarray:
    return np.asarray(v).view(np.int64).astype(np.float64) / float(1 << f)


# ---------------------------------------------------------------------- geometry
def _pad_amounts(n, k, s, pb, pe, d, ceil_mode):
    out = pool_out_size(n, k, s, pb, pe, d, ceil_mode)
    need = (out - 1) * s + (k - 1) * d + 1
    extra = max(0, need - (n + pb + pe))
    return out, extra


def window_view(x: np.ndarray, kernel, strides, pads, dilations=(1, 1), ceil_mode=False, pad_value=0):
    """Windows of an (N, C, H, W) array: returns (N, C, OH, OW, kh, kw) (a copy if
    padding is needed, else a strided view).  Linear in ``x``: works on shares too
    (with ``pad_value`` 0 for every share but one)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = kernel, strides, pads, dilations
    oh, eh = _pad_amounts(H, kh, sh, pt, pb, dh, ceil_mode)
    ow, ew = _pad_amounts(W, kw, sw, pl, pr, dw, ceil_mode)
    if pt or pb or pl or pr or eh or ew:
        xp = np.full((N, C, H + pt + pb + eh, W + pl + pr + ew), pad_value, dtype=x.dtype)
        xp[:, :, pt:pt + H, pl:pl + W] = x
    else:
        xp = x
    effh, effw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    v = sliding_window_view(xp, (effh, effw), axis=(2, 3))
    return v[:, :, : (oh - 1) * sh + 1: sh, : (ow - 1) * sw + 1: sw, ::dh, ::dw]


def window_counts(H, W, kernel, strides, pads, ceil_mode, include_pad) -> np.ndarray:
    """Per output position, how many elements the average divides by (ONNX semantics)."""
    (pt, pl, pb, pr) = pads
    m = np.zeros((1, 1, H + pt + pb, W + pl + pr), dtype=np.int64)
    if include_pad:
        m[...] = 1
    else:
        m[:, :, pt:pt + H, pl:pl + W] = 1
    # windows over the explicitly padded mask; ceil-mode overhang counts as 0
    (kh, kw), (sh, sw) = kernel, strides
    oh = pool_out_size(H, kh, sh, pt, pb, 1, ceil_mode)
    ow = pool_out_size(W, kw, sw, pl, pr, 1, ceil_mode)
    need_h, need_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    mp = np.zeros((1, 1, max(need_h, m.shape[2]), max(need_w, m.shape[3])), dtype=np.int64)
    mp[:, :, :m.shape[2], :m.shape[3]] = m
    v = sliding_window_view(mp, (kh, kw), axis=(2, 3))[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw]
    return v.sum(axis=(-1, -2))[0, 0]


def conv_cols(x: np.ndarray, kshape, strides, pads, dilations, group):
    """im2col of (N, C, H, W) for a grouped conv: (group, N*OH*OW, C/group*kh*kw), OH, OW."""
    N, C = x.shape[:2]
    v = window_view(x, kshape, strides, pads, dilations)        # N, C, OH, OW, kh, kw
    OH, OW = v.shape[2], v.shape[3]
    g = group
    v = v.reshape(N, g, C // g, OH, OW, kshape[0], kshape[1])
    cols = np.ascontiguousarray(v.transpose(1, 0, 3, 4, 2, 5, 6)).reshape(g, N * OH * OW, -1)
    return cols, OH, OW


def conv_weight_mat(Wt: np.ndarray, group: int) -> np.ndarray:
    """(O, C/g, kh, kw) -> (g, C/g*kh*kw, O/g) matching :func:`conv_cols`."""
    O = Wt.shape[0]
    return np.ascontiguousarray(Wt.reshape(group, O // group, -1).transpose(0, 2, 1))


def conv_out(y: np.ndarray, N, OH, OW) -> np.ndarray:
    """(g, N*OH*OW, O/g) -> (N, O, OH, OW)."""
    g, _, og = y.shape
    return np.ascontiguousarray(y.reshape(g, N, OH, OW, og).transpose(1, 0, 4, 2, 3).reshape(N, g * og, OH, OW))


# ---------------------------------------------------------------------- executor
def _check_bits(v, bits, where):
    if bits < 64 and v.size:
        lim = 1 << (bits - 1)
        if v.min() < -lim or v.max() >= lim:
            raise OverflowError(f"{where}: an activation does not fit in act_bits={bits} bits "
                                f"(|x| < 2^{bits - 1} units); raise act_bits")


def run_fixed(plan: Plan, x: np.ndarray) -> np.ndarray:
    """Run the plan on fixed-point input ``x`` (int64, shape (N,) + input_shape);
    returns the fixed-point logits (int64).  With ``plan.act_bits < 64`` every input
    of a comparison (relu, maxpool, the logits) is checked against that bound
    (OverflowError), so a model owner can validate a bound on its own data."""
    if not plan.encoded:
        raise ValueError("the plan's weights are not encoded (call plan.encode())")
    f = plan.frac_bits
    x = np.asarray(x, dtype=np.int64)
    if x.shape[1:] != tuple(plan.input_shape):
        raise ValueError(f"input shape {x.shape[1:]} != the model's {tuple(plan.input_shape)} (per sample)")
    N = x.shape[0]
    vals = [x]
    C = plan.consts
    with np.errstate(over="ignore"):
        for op in plan.ops:
            a = [vals[i] for i in op.inputs]
            c = [C[i] for i in op.consts]
            k = op.kind
            at = op.attrs
            if k == "matmul":
                y = a[0] @ c[0]
                if len(c) > 1:
                    y = y + c[1]
                y = y >> f
            elif k == "conv":
                w = c[0]
                cols, OH, OW = conv_cols(a[0], w.shape[2:], at["strides"], at["pads"], at["dilations"], at["group"])
                y = conv_out(np.matmul(cols, conv_weight_mat(w, at["group"])), N, OH, OW)
                if len(c) > 1:
                    y = y + c[1].reshape(1, -1, 1, 1)
                y = y >> f
            elif k == "add":
                y = a[0] + a[1]
            elif k == "sub":
                y = a[0] - a[1]
            elif k == "mul":
                y = (a[0] * a[1]) >> f
            elif k == "neg":
                y = -a[0]
            elif k == "add_const":
                y = a[0] + c[0]
            elif k == "mul_const":
                y = (a[0] * c[0]) >> f
            elif k == "affine":
                y = (a[0] * c[0] + c[1]) >> f
            elif k == "relu":
                _check_bits(a[0], plan.act_bits, f"op {len(vals) - 1} (relu)")
                y = np.maximum(a[0], 0)
            elif k == "maxpool":
                _check_bits(a[0], plan.act_bits, f"op {len(vals) - 1} (maxpool)")
                v = window_view(a[0], at["kernel"], at["strides"], at["pads"], at["dilations"], at["ceil_mode"],
                                MIN_FIXED)
                y = v.max(axis=(-1, -2))
            elif k == "avgpool":
                v = window_view(a[0], at["kernel"], at["strides"], at["pads"], (1, 1), at["ceil_mode"], 0)
                s = v.sum(axis=(-1, -2))
                cnt = window_counts(a[0].shape[2], a[0].shape[3], at["kernel"], at["strides"], at["pads"],
                                    at["ceil_mode"], at["count_include_pad"])
                y = (s * recip(cnt, f)) >> f
            elif k == "gap":
                axes = tuple(range(2, a[0].ndim))
                cnt = int(np.prod(a[0].shape[2:]))
                y = (a[0].sum(axis=axes, keepdims=True) * recip(cnt, f)) >> f
            elif k == "reduce":
                y = a[0].sum(axis=tuple(at["axes"]), keepdims=at["keepdims"])
                if at["mean"]:
                    cnt = int(np.prod([a[0].shape[i] for i in at["axes"]]))
                    y = (y * recip(cnt, f)) >> f
            elif k == "reduce_max":
                _check_bits(a[0], plan.act_bits, f"op {len(vals) - 1} (reduce_max)")
                y = a[0].max(axis=tuple(at["axes"]), keepdims=at["keepdims"])
            elif k == "slice":
                y = a[0][(slice(None),) + slice_index(at)]
            elif k == "pad":
                r = a[0].ndim - 1
                y = np.pad(a[0], [(0, 0)] + [(at["pads"][i], at["pads"][i + r]) for i in range(r)])
            elif k == "reshape":
                y = a[0].reshape((N,) + tuple(at["shape"]))
            elif k == "transpose":
                y = np.ascontiguousarray(a[0].transpose(at["perm"]))
            elif k == "concat":
                y = np.concatenate(a, axis=at["axis"])
            else:  # pragma: no cover - plans are checked
                raise ValueError(f"unknown op {k}")
            vals.append(y)
    _check_bits(vals[-1], plan.act_bits, "logits")
    return vals[-1]


def slice_index(at) -> tuple:
    return tuple(slice(a, a + (c - 1) * b + 1, b) for a, b, c in zip(at["starts"], at["steps"], at["sizes"]))


def recip(cnt, f: int):
    """Fixed-point reciprocal of a public count: round(2^f / cnt) (int64)."""
    cnt = np.asarray(cnt, dtype=np.int64)
    return ((np.int64(1 << f) * 2 + cnt) // (2 * np.maximum(cnt, 1))).astype(np.int64)


def postprocess(plan: Plan, logits: np.ndarray) -> np.ndarray:
    """Apply the plan's final op (softmax, logsoftmax, argmax or nothing) to float logits."""
    ax = plan.post_axis
    if plan.post == "logits":
        return logits
    if plan.post == "argmax":
        return np.argmax(logits, axis=ax, keepdims=plan.post_keepdims).astype(np.int64)
    z = logits - logits.max(axis=ax, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=ax, keepdims=True))
    return z - lse if plan.post == "logsoftmax" else np.exp(z - lse)


def predict_classes(plan: Plan, logits: np.ndarray) -> np.ndarray:
    """Predicted class per sample (argmax along the class axis; lowest index on ties)."""
    return np.argmax(logits, axis=plan.class_axis + 1).astype(np.int64)


def run_plaintext(plan: Plan, x, *, logits: bool = False) -> np.ndarray:
    """Encode float input ``x`` (N, *input_shape), run the plan in fixed point and
    return the model's output (after softmax/argmax as the ONNX model does), or the
    float logits with ``logits=True``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == len(plan.input_shape):
        x = x[None]
    lg = decode(run_fixed(plan, encode(x, plan.frac_bits)), plan.frac_bits)
    return lg if logits else postprocess(plan, lg)
