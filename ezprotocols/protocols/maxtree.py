"""Maximum, argmax and max pooling on arithmetic shares.

A tournament over the reduced axis: each level compares adjacent pairs (a, b) with
one batched sign-bit circuit, [b > a] = msb(a - b), and selects with the OT
multiplexer: max = a + [b > a] (b - a), index = i_a + [b > a] (i_b - i_a).  Ties
keep a, which always holds the lower indices, so argmax returns the lowest index
of the maximum, as numpy does.  k values take ceil(log2 k) levels and k - 1
comparisons; one call on a tensor of any size is ceil(log2 k) batched protocol
runs, never a Python loop over elements.

``bits < 64`` is the caller's promise that every value lies in
``[-2^(bits-1), 2^(bits-1))`` (ring units); the difference of two such values needs
``bits + 1`` bits, so the comparisons run at that width, and max pooling pads with
``-2^(bits-1)``, the smallest representable value (at ``bits = 64`` the values must lie
in the fixed-point range ``[-2^62, 2^62)`` and the padding is ``NEG_FILL = -2^62``).
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from ..arith.tensor import ArithTensor
from .comparison import msb
from .convert import mux

__all__ = ["max", "argmax", "maxpool2d", "NEG_FILL"]

# Padding value of max pooling: the bottom of the fixed-point range [-2^62, 2^62).
NEG_FILL = np.uint64((1 << 64) - (1 << 62))


def _diff_bits(bits: int) -> int:
    """Width at which the difference of two ``bits``-bit values has the right sign."""
    return bits + 1 if bits < 64 else 64


def fill_value(bits: int) -> np.uint64:
    """Padding of max pooling: the smallest value representable at ``bits``."""
    return NEG_FILL if bits >= 64 else np.uint64((1 << 64) - (1 << (bits - 1)))


def _mux_many(bit, tensors):
    """``bit * t`` for several tensors of the same shape with one multiplexer run."""
    s = tensors[0].session
    shares = np.concatenate([t.share.reshape(-1) for t in tensors])
    bb = np.concatenate([np.broadcast_to(bit.share, t.shape).reshape(-1) for t in tensors])
    from .boolean import BoolTensor
    out = mux(BoolTensor(s, bb), ArithTensor(s, shares, 0))
    res, off = [], 0
    for t in tensors:
        res.append(ArithTensor(s, out.share[off:off + t.size].reshape(t.shape), t.scale))
        off += t.size
    return res


def _cat_last(a: ArithTensor, b: ArithTensor) -> ArithTensor:
    return ArithTensor(a.session, np.concatenate([a.share, b.share], axis=-1), a.scale)


def _tournament(v: ArithTensor, with_index: bool, bits: int):
    """Reduce the last axis of v: returns (max, index or None), both without that axis."""
    s = v.session
    k = v.shape[-1]
    if k == 0:
        raise ValueError("max/argmax of an empty axis")
    idx = None
    if with_index:
        pub = np.broadcast_to(np.arange(k, dtype=np.uint64), v.shape)
        idx = ArithTensor(s, pub.copy() if s.role == 0 else np.zeros(v.shape, np.uint64), 0)
    while k > 1:
        h = k // 2
        a, b = v[..., 0:2 * h:2], v[..., 1:2 * h:2]
        gt = msb(a - b, _diff_bits(bits))           # [b > a]; ties keep a (lower index)
        if idx is None:
            (dm,) = _mux_many(gt, [b - a])
            nv = a + dm
        else:
            ia, ib = idx[..., 0:2 * h:2], idx[..., 1:2 * h:2]
            dm, di = _mux_many(gt, [b - a, ib - ia])
            nv, ni = a + dm, ia + di
            if k % 2:
                ni = _cat_last(ni, idx[..., k - 1:k])
            idx = ni
        if k % 2:
            nv = _cat_last(nv, v[..., k - 1:k])
        v = nv
        k = h + k % 2
    return v[..., 0], (idx[..., 0] if idx is not None else None)


def _move_last(x: ArithTensor, axis):
    if axis is None:
        return x.reshape(-1), None
    ax = axis % x.ndim if x.ndim else 0
    return x.transpose(*(i for i in range(x.ndim) if i != ax), ax), ax


def max(x: ArithTensor, axis=None, keepdims: bool = False, bits: int = 64) -> ArithTensor:  # noqa: A001
    """Maximum along ``axis`` (all elements when None), same scale.  Exact for values in
    the fixed-point range [-2^62, 2^62) (ring units)."""
    if not isinstance(x, ArithTensor):
        raise TypeError("max: x must be an ArithTensor")
    s = x.session
    v, ax = _move_last(x, axis)
    with s.phase("max"):
        m, _ = _tournament(v, False, bits)
    if keepdims:
        m = m.reshape(tuple(1 if (ax is None or i == ax) else d for i, d in enumerate(x.shape)))
    return m


def argmax(x: ArithTensor, axis=-1, keepdims: bool = False, bits: int = 64) -> ArithTensor:
    """Index of the maximum along ``axis`` (flattened when None) as arithmetic shares at
    scale 0; ties give the lowest index, as numpy does."""
    if not isinstance(x, ArithTensor):
        raise TypeError("argmax: x must be an ArithTensor")
    s = x.session
    v, ax = _move_last(x, axis)
    with s.phase("argmax"):
        _, i = _tournament(v, True, bits)
    if keepdims:
        i = i.reshape(tuple(1 if (ax is None or j == ax) else d for j, d in enumerate(x.shape)))
    return i


def _pair(v, name):
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    t = tuple(int(a) for a in v)
    if len(t) != 2:
        raise ValueError(f"maxpool2d: {name} must be an int or a pair")
    return t


def maxpool2d(x: ArithTensor, kernel, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
              bits: int = 64) -> ArithTensor:
    """2-D max pooling of x with shape (N, C, H, W) or (C, H, W).  ``padding``: int, pair
    (both sides) or 4-tuple (top, left, bottom, right); padded positions hold the
    smallest value representable at ``bits`` (:func:`fill_value`)."""
    if not isinstance(x, ArithTensor):
        raise TypeError("maxpool2d: x must be an ArithTensor")
    if x.ndim not in (3, 4):
        raise ValueError(f"maxpool2d: x must have shape (N, C, H, W) or (C, H, W), got {x.shape}")
    squeeze = x.ndim == 3
    sh = x.share[None] if squeeze else x.share
    kh, kw = _pair(kernel, "kernel")
    sy, sx = _pair(stride if stride is not None else (kh, kw), "stride")
    dy, dx = _pair(dilation, "dilation")
    if isinstance(padding, (int, np.integer)):
        pt = pl = pb = pr = int(padding)
    else:
        p = tuple(int(a) for a in padding)
        if len(p) == 2:
            pt = pb = p[0]
            pl = pr = p[1]
        elif len(p) == 4:
            pt, pl, pb, pr = p
        else:
            raise ValueError("maxpool2d: padding must be an int, a pair or (top, left, bottom, right)")
    if min(kh, kw, sy, sx, dy, dx) < 1 or min(pt, pl, pb, pr) < 0:
        raise ValueError("maxpool2d: kernel, stride, dilation must be >= 1 and padding >= 0")
    N, C, H, W = sh.shape
    ekh, ekw = (kh - 1) * dy + 1, (kw - 1) * dx + 1
    rnd = math.ceil if ceil_mode else math.floor
    Ho = rnd((H + pt + pb - ekh) / sy) + 1
    Wo = rnd((W + pl + pr - ekw) / sx) + 1
    if ceil_mode:                       # a window must start inside the input or the top/left padding
        if (Ho - 1) * sy >= H + pt:
            Ho -= 1
        if (Wo - 1) * sx >= W + pl:
            Wo -= 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"maxpool2d: kernel {kh}x{kw} does not fit the input {H}x{W} with this padding")
    need_h = (Ho - 1) * sy + ekh
    need_w = (Wo - 1) * sx + ekw
    s = x.session
    fill = fill_value(bits) if s.role == 0 else np.uint64(0)
    xp = np.pad(sh, ((0, 0), (0, 0), (pt, builtins.max(0, need_h - H - pt)), (pl, builtins.max(0, need_w - W - pl))),
                constant_values=fill)
    r = (np.arange(Ho) * sy)[:, None] + (np.arange(kh) * dy)[None, :]
    c = (np.arange(Wo) * sx)[:, None] + (np.arange(kw) * dx)[None, :]
    win = xp[:, :, r[:, None, :, None], c[None, :, None, :]]            # N, C, Ho, Wo, kh, kw
    win = np.ascontiguousarray(win.reshape(N, C, Ho, Wo, kh * kw))
    with s.phase("maxpool"):
        m, _ = _tournament(ArithTensor(s, win, x.scale), False, bits)
    return m[0] if squeeze else m
