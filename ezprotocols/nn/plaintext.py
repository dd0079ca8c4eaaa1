"""Plaintext fixed-point executor of a :class:`~ezprotocols.nn.plan.Plan`.

It computes exactly what the secure executor computes (same encoding, same
scales, truncation = arithmetic shift right), over int64 with wrap-around
(Z_2^64), so it is the reference for the secure executor and the "plaintext"
column of the demo.  The secure executor's probabilistic truncation may differ
by one unit in the last place per truncation.

Error bound (what the tests check).  Let ``u = 2^-f`` (``f`` = frac_bits).
Compared with the model's exact arithmetic (:func:`run_float`: the float
weights, no rounding), the fixed-point logits carry three kinds of error:

* rounding of the input, ``u/2`` per element, and of every constant: weights
  and scales ``u/2`` (biases at scale ``2f``: ``u^2/2``);
* one truncation per product (matmul, conv, mul, affine, averages): below
  ``u`` in magnitude, for the plaintext floor and for the secure local
  truncation alike (floor or floor + 1), which only fails catastrophically
  with probability below ``|value| / 2^64`` per element;
* propagation: an error ``E`` of a layer's input comes out multiplied by the
  absolute weights.

For a linear layer ``y = x @ W + b`` with ``K`` inputs and an input error bound
``E`` (per element) this gives, per output ``j``::

    E_y[j] = sum_i |W~[i, j]| E[i]  +  (u/2) sum_i |x[i]|  +  u^2/2  +  u
             (propagated)             (weight rounding)     (bias)   (truncation)

so for a chain of linear layers with ReLUs (which, like max-pooling, reshapes
and concatenations, do not increase the bound), with ``E_0 = u/2``::

    E_l <= ||W~_l||_1 E_(l-1)  +  (u/2) (||x_(l-1)||_1 + K_l E_(l-1))  +  u^2/2  +  u

where ``||W~_l||_1`` is the largest absolute column sum of the rounded weights
and ``||x_(l-1)||_1 <= K_l max|x_(l-1)|`` is the L1 norm of the layer's exact
input.  The weight-rounding term grows with the input magnitude and the layer
width, and every term is amplified by the later layers' weights: a
784-wide first layer fed raw 0..255 pixels has ``(u/2) ||x||_1`` of order 0.2
by itself.  :func:`error_bound` evaluates this propagation per sample and per
element for every op kind (averages: ``r~ sum E + (u/2) sum |x| + u`` with
``r~ = round(2^f / count) / 2^f``; elementwise products:
``E_a |b| + |a| E_b + u``; adding a constant: ``E + u/2``; softmax / sigmoid
outputs by interval evaluation of the final op).  It is a worst case:
rounding errors have random signs, so actual errors are typically 10 to 100
times smaller (measured: a 20-16-16-5 MLP on N(0, 1) inputs, max error 4e-5 for
a bound of 1e-3; the MNIST LeNet, 1.2e-3 for 0.7; 784-32-10 on raw pixels, 2.4e-2
for 3.5).  The class is the exact one wherever the exact top two logits are
further apart than the sum of their bounds.  Against onnxruntime (float32)
add float32 rounding (relative 1e-5 here).

>>> import numpy as np
>>> from ezprotocols.nn.plan import Plan, Op
>>> p = Plan(input_shape=(2,), ops=[Op("relu", [0], [], {}, (2,))], const_shapes=[], consts=[]).encode()
>>> run_plaintext(p, np.array([[1.5, -2.0]])).tolist()
[[1.5, 0.0]]
>>> error_bound(p, np.array([[1.5, -2.0]])).tolist()     # input rounding only: u/2 = 2^-17
[[7.62939453125e-06, 7.62939453125e-06]]
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..arith import fixed
from .plan import BOUND_BITS, Plan, pool_out_size

__all__ = ["run_plaintext", "run_fixed", "run_float", "error_bound", "encode", "decode", "postprocess", "predict_classes", "class_scores",
           "class_labels",
           "window_view", "window_counts", "conv_cols", "MIN_FIXED"]

#: The value padding takes in a max-pooling window (far below any activation).
MIN_FIXED = -(1 << 62)


def encode(x, f: int, what: str = "input") -> np.ndarray:
    """Fixed-point encoding of reals, ``round(x * 2^f)``, as int64 (two's complement of
    Z_2^64), with the executor's headroom ``|round(x * 2^f)| < 2^62`` (:data:`~ezprotocols.nn.plan.BOUND_BITS`)
    (:func:`ezprotocols.arith.fixed.encode`)."""
    return fixed.encode_signed(x, f, bound_bits=BOUND_BITS, what=what)


def decode(v, f: int) -> np.ndarray:
    """Fixed-point values (int64 or ring elements) at scale ``f`` as float64."""
    return fixed.to_signed(v).astype(np.float64) / float(1 << f)


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
    return _execute(plan, np.asarray(x, dtype=np.int64), True)[-1]


def run_float(plan: Plan, x) -> np.ndarray:
    """Run a plan with float weights (``load_onnx(..., encode=False)``) in float64,
    without any rounding or truncation: the model's exact arithmetic (up to float64
    rounding), the reference of :func:`error_bound`.  Returns the logits."""
    if plan.encoded:
        raise ValueError("run_float needs the float weights: load_onnx(..., encode=False)")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == len(plan.input_shape):
        x = x[None]
    return _execute(plan, x, False)[-1]


def _execute(plan: Plan, x: np.ndarray, fixed: bool) -> list:
    """Every value of the plan: fixed point (int64, truncations = arithmetic shift)
    or float64 (exact arithmetic)."""
    f = plan.frac_bits
    if x.shape[1:] != tuple(plan.input_shape):
        raise ValueError(f"input shape {x.shape[1:]} != the model's {tuple(plan.input_shape)} (per sample)")
    N = x.shape[0]
    vals = [x]
    C = plan.consts
    if fixed:
        def tr(v):
            return v >> f

        def scaled(cnt):
            return recip(cnt, f)
        bits, low = plan.act_bits, MIN_FIXED
    else:
        def tr(v):
            return v

        def scaled(cnt):
            return 1.0 / np.asarray(cnt, dtype=np.float64)
        bits, low = 64, -np.inf
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
                y = tr(y)
            elif k == "conv":
                w = c[0]
                cols, OH, OW = conv_cols(a[0], w.shape[2:], at["strides"], at["pads"], at["dilations"], at["group"])
                y = conv_out(np.matmul(cols, conv_weight_mat(w, at["group"])), N, OH, OW)
                if len(c) > 1:
                    y = y + c[1].reshape(1, -1, 1, 1)
                y = tr(y)
            elif k == "add":
                y = a[0] + a[1]
            elif k == "sub":
                y = a[0] - a[1]
            elif k == "mul":
                y = tr(a[0] * a[1])
            elif k == "neg":
                y = -a[0]
            elif k == "add_const":
                y = a[0] + c[0]
            elif k == "mul_const":
                y = tr(a[0] * c[0])
            elif k == "affine":
                y = tr(a[0] * c[0] + c[1])
            elif k == "affine_sign":
                y = a[0] * c[0] + c[1]
            elif k == "relu":
                _check_bits(a[0], bits, f"op {len(vals) - 1} (relu)")
                y = np.maximum(a[0], 0)
            elif k == "maxpool":
                _check_bits(a[0], bits, f"op {len(vals) - 1} (maxpool)")
                v = window_view(a[0], at["kernel"], at["strides"], at["pads"], at["dilations"], at["ceil_mode"], low)
                y = v.max(axis=(-1, -2))
            elif k == "avgpool":
                v = window_view(a[0], at["kernel"], at["strides"], at["pads"], (1, 1), at["ceil_mode"], 0)
                s = v.sum(axis=(-1, -2))
                cnt = window_counts(a[0].shape[2], a[0].shape[3], at["kernel"], at["strides"], at["pads"],
                                    at["ceil_mode"], at["count_include_pad"])
                y = tr(s * scaled(cnt))
            elif k == "gap":
                axes = tuple(range(2, a[0].ndim))
                cnt = int(np.prod(a[0].shape[2:]))
                y = tr(a[0].sum(axis=axes, keepdims=True) * scaled(cnt))
            elif k == "reduce":
                y = a[0].sum(axis=tuple(at["axes"]), keepdims=at["keepdims"])
                if at["mean"]:
                    cnt = int(np.prod([a[0].shape[i] for i in at["axes"]]))
                    y = tr(y * scaled(cnt))
            elif k == "reduce_max":
                _check_bits(a[0], bits, f"op {len(vals) - 1} (reduce_max)")
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
    _check_bits(vals[-1], bits, "logits")
    return vals


# ---------------------------------------------------------------------- error bound
def error_bound(plan: Plan, x, *, output: bool = False) -> np.ndarray:
    """A rigorous per-element bound on |fixed-point logits - exact logits| for the
    float input ``x`` (N, *input_shape), where "exact" is the model's arithmetic
    without rounding (:func:`run_float` on the float weights).  It holds for
    :func:`run_plaintext` and for the secure executor alike (both truncate with an
    error below one unit; the secure local truncation fails catastrophically only
    with probability below |value| / 2^64 per truncation).  ``output=True``: the bound
    on the model's output instead (after softmax / sigmoid, by interval evaluation).

    Propagation (u = 2^-f; E = the bound of a value, |x| <= |x^| + E its magnitude):
    input u/2; matmul/conv ``E|W~| + (u/2)(|x^| + E) 1 + u^2/2 + u`` (rounded weights
    W~, weight rounding u/2 times the input magnitude, bias rounding, truncation);
    mul_const/affine likewise elementwise; affine_sign ``E |s| + u/2``; add_const ``E + u/2``; add/sub ``E_a + E_b``;
    mul ``E_a|b^| + (|a^| + E_a)E_b + u``; averages ``r~ sum(E) + (u/2) sum(|x^| + E) + u``
    (r~ = round(2^f/count)/2^f); relu, max and pooling by max, layout ops: unchanged."""
    if not plan.encoded:
        raise ValueError("the plan's weights are not encoded (call plan.encode())")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == len(plan.input_shape):
        x = x[None]
    f = plan.frac_bits
    u = 2.0 ** -f
    vals = [decode(v, f) for v in _execute(plan, encode(x, f), True)]
    C = [np.asarray(c, dtype=np.float64) for c in plan.consts]
    E = [np.full(x.shape, u / 2)]
    N = x.shape[0]
    # ring overflow: the bound (and the result) only hold while every value fits the
    # ring, products before their truncation included (scale 2f) and compared values
    # within act_bits; checked op by op on magnitudes derived from correct inputs
    lim1, lim2, limc = 2.0 ** (63 - f), 2.0 ** (63 - 2 * f), 2.0 ** (plan.act_bits - 1 - f)

    def overflow(i, kind, mag, lim, what):
        if np.size(mag) and float(np.max(mag)) >= lim:
            raise OverflowError(f"the error bound does not hold: op {i} ({kind}) {what} reaches |value| "
                                f"{float(np.max(mag)):.3g}, beyond the fixed-point range {lim:.3g} "
                                f"(ring overflow: the secure result would be silently wrong); use inputs of "
                                f"smaller magnitude or fewer fractional bits")

    overflow(0, "input", np.abs(x) + u, lim1, "the input")
    for i, op in enumerate(plan.ops):
        e = [E[j] for j in op.inputs]
        m = [np.abs(vals[j]) + E[j] for j in op.inputs]           # bounds on the exact magnitudes
        k, at = op.kind, op.attrs
        if k in ("relu", "maxpool", "reduce_max"):
            overflow(i + 1, k, m[0], limc, "compares a value that")
        if k == "matmul":
            W = np.abs(C[op.consts[0]]) * u                          # |W~| in real units
            overflow(i + 1, k, m[0] @ W, lim2, "before truncation")
            y = e[0] @ W + (u / 2) * m[0].sum(axis=-1, keepdims=True) + (u * u / 2 + u)
        elif k == "conv":
            W = np.abs(C[op.consts[0]]) * u
            g = at["group"]
            ce, OH, OW = conv_cols(e[0], W.shape[2:], at["strides"], at["pads"], at["dilations"], g)
            cm, _, _ = conv_cols(m[0], W.shape[2:], at["strides"], at["pads"], at["dilations"], g)
            overflow(i + 1, k, np.matmul(cm, conv_weight_mat(W, g)), lim2, "before truncation")
            y = conv_out(np.matmul(ce, conv_weight_mat(W, g)), N, OH, OW)
            ones = np.ones((1,) + W.shape[1:])
            y = y + (u / 2) * conv_out(np.matmul(cm, conv_weight_mat(np.broadcast_to(ones, W.shape), g)), N, OH, OW)
            y = y + (u * u / 2 + u)
        elif k in ("add", "sub"):
            y = e[0] + e[1]
        elif k == "neg":
            y = e[0]
        elif k == "mul":
            overflow(i + 1, k, m[0] * m[1], lim2, "before truncation")
            y = e[0] * np.abs(vals[op.inputs[1]]) + m[0] * e[1] + u
        elif k == "add_const":
            y = e[0] + u / 2
        elif k == "mul_const":
            overflow(i + 1, k, m[0] * np.abs(C[op.consts[0]] * u), lim2, "before truncation")
            y = e[0] * np.abs(C[op.consts[0]] * u) + (u / 2) * m[0] + u
        elif k == "affine":
            overflow(i + 1, k, m[0] * np.abs(C[op.consts[0]] * u), lim2, "before truncation")
            y = e[0] * np.abs(C[op.consts[0]] * u) + (u / 2) * m[0] + (u * u / 2 + u)
        elif k == "affine_sign":                                   # exact signs; t rounded at scale f
            overflow(i + 1, k, m[0] * np.abs(C[op.consts[0]]), lim1, "")
            y = e[0] * np.abs(C[op.consts[0]]) + u / 2
        elif k == "relu":
            y = e[0]
        elif k == "maxpool":
            y = window_view(e[0], at["kernel"], at["strides"], at["pads"], at["dilations"], at["ceil_mode"],
                            0.0).max(axis=(-1, -2))
        elif k in ("avgpool", "gap", "reduce"):
            if k == "avgpool":
                def wsum(v):
                    return window_view(v, at["kernel"], at["strides"], at["pads"], (1, 1), at["ceil_mode"],
                                       0.0).sum(axis=(-1, -2))
                cnt = window_counts(e[0].shape[2], e[0].shape[3], at["kernel"], at["strides"], at["pads"],
                                    at["ceil_mode"], at["count_include_pad"])
            else:
                axes = tuple(range(2, e[0].ndim)) if k == "gap" else tuple(at["axes"])
                keep = True if k == "gap" else at["keepdims"]

                def wsum(v):
                    return v.sum(axis=axes, keepdims=keep)
                cnt = int(np.prod([e[0].shape[j] for j in axes]))
            if k == "reduce" and not at["mean"]:
                y = wsum(e[0])
            else:
                r = recip(cnt, f) * u
                y = r * wsum(e[0]) + (u / 2) * wsum(m[0]) + u
        elif k == "reduce_max":
            y = e[0].max(axis=tuple(at["axes"]), keepdims=at["keepdims"])
        elif k == "slice":
            y = e[0][(slice(None),) + slice_index(at)]
        elif k == "pad":
            r = e[0].ndim - 1
            y = np.pad(e[0], [(0, 0)] + [(at["pads"][j], at["pads"][j + r]) for j in range(r)])
        elif k == "reshape":
            y = e[0].reshape((N,) + tuple(at["shape"]))
        elif k == "transpose":
            y = e[0].transpose(at["perm"])
        elif k == "concat":
            y = np.concatenate(e, axis=at["axis"])
        else:  # pragma: no cover - plans are checked
            raise ValueError(f"unknown op {k}")
        E.append(np.asarray(y, dtype=np.float64))
        overflow(i + 1, k, np.abs(vals[i + 1]) + E[-1], lim1, "output")
    if not output or plan.post in ("logits", "argmax"):
        return E[-1]
    return _output_bound(plan, vals[-1], E[-1])


def _output_bound(plan: Plan, z: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Interval evaluation of the final op: each output is monotone (increasing in its
    own logit, decreasing in the others), so the exact output lies between the
    values at the two corners of the logits' error box, as does ours."""
    ax = plan.post_axis

    def sig(v):
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-v))
    if plan.post == "sigmoid":
        return sig(z + e) - sig(z - e)
    if plan.post == "sigmoid_l1":
        hi_own, lo_own = sig(z + e), sig(z - e)
        hi_rest = hi_own.sum(axis=ax, keepdims=True) - hi_own
        lo_rest = lo_own.sum(axis=ax, keepdims=True) - lo_own
        return hi_own / (hi_own + lo_rest) - lo_own / (lo_own + hi_rest)
    zmax = z.max(axis=ax, keepdims=True)
    hi_own, lo_own = np.exp(z + e - zmax), np.exp(z - e - zmax)
    hi_rest = hi_own.sum(axis=ax, keepdims=True) - hi_own
    lo_rest = lo_own.sum(axis=ax, keepdims=True) - lo_own
    hi, lo = hi_own / (hi_own + lo_rest), lo_own / (lo_own + hi_rest)
    if plan.post == "logsoftmax":
        return np.log(hi) - np.log(lo)
    return hi - lo


def slice_index(at) -> tuple:
    return tuple(slice(a, a + (c - 1) * b + 1, b) for a, b, c in zip(at["starts"], at["steps"], at["sizes"]))


def recip(cnt, f: int):
    """Fixed-point reciprocal of a public count: round(2^f / cnt) (int64)."""
    cnt = np.asarray(cnt, dtype=np.int64)
    return ((np.int64(1 << f) * 2 + cnt) // (2 * np.maximum(cnt, 1))).astype(np.int64)


def postprocess(plan: Plan, logits: np.ndarray) -> np.ndarray:
    """Apply the plan's final op (softmax, logsoftmax, sigmoid, argmax or nothing) to float logits."""
    ax = plan.post_axis
    if plan.post == "logits":
        return logits
    if plan.post == "argmax":
        return np.argmax(class_scores(plan, logits, move=False), axis=ax,
                         keepdims=plan.post_keepdims).astype(np.int64)
    if plan.post in ("sigmoid", "sigmoid_l1"):
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
        return p if plan.post == "sigmoid" else p / p.sum(axis=ax, keepdims=True)
    z = logits - logits.max(axis=ax, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=ax, keepdims=True))
    return z - lse if plan.post == "logsoftmax" else np.exp(z - lse)


def class_scores(plan: Plan, logits: np.ndarray, move: bool = True) -> np.ndarray:
    """The values whose argmax along the class axis is the class: the logits, with a
    zero column in front for a single sigmoid logit (class [z > 0]).  Works on float
    logits, fixed-point integers and additive shares (zero is a sharing of zero).
    ``move``: the class axis becomes the last one."""
    ax = plan.class_axis + 1
    z = np.asarray(logits)
    if plan.binary:
        z = np.concatenate([np.zeros_like(z), z], axis=ax)
    return np.moveaxis(z, ax, -1) if move else z


def predict_classes(plan: Plan, logits: np.ndarray) -> np.ndarray:
    """Predicted class index per sample (argmax along the class axis; lowest index
    on ties; for a single sigmoid logit z: [z > 0])."""
    return np.argmax(class_scores(plan, logits), axis=-1).astype(np.int64)


def class_labels(plan: Plan, classes: np.ndarray) -> np.ndarray:
    """Class indices to the model's class labels (identity when it declares none)."""
    classes = np.asarray(classes, dtype=np.int64)
    if plan.class_labels is None:
        return classes
    return np.asarray(plan.class_labels)[classes]


def run_plaintext(plan: Plan, x, *, logits: bool = False) -> np.ndarray:
    """Encode float input ``x`` (N, *input_shape), run the plan in fixed point and
    return the model's output (after softmax/argmax as the ONNX model does), or the
    float logits with ``logits=True``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == len(plan.input_shape):
        x = x[None]
    lg = decode(run_fixed(plan, encode(x, plan.frac_bits)), plan.frac_bits)
    return lg if logits else postprocess(plan, lg)
