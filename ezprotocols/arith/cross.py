"""Products of one party's private matrix (or kernel) with the other party's, as
additive shares, through OT (:func:`ezprotocols.arith.ole.ole_accumulate`).

``cross_matmul``: ``L @ R`` with ``L[m, k]`` held by ``l_owner`` and ``R[k, n]`` by
the other party.  Two decompositions (Gilboa on the bits of one operand, the
other operand's rows as vector correlations):

* ``"R"``: the bits of each ``R[t, j]``; correlation ``L[:, t]`` (``m`` values);
  ``k n nbits`` OTs.
* ``"L"``: the bits of each ``L[i, t]``; correlation ``R[t, :]`` (``n`` values);
  ``m k nbits`` OTs.

``cross_conv2d``: ``conv2d(X, K)`` with the input ``X`` held by one party and the
kernel ``K`` by the other:

* ``"K"``: the bits of each kernel entry ``K[o, t]``; correlation: row ``t`` of
  ``im2col(X)`` (``N*HO*WO`` values); ``O * C/G*KH*KW * nbits`` OTs.
* ``"X"``: the bits of each input entry ``X[n, c, y, x]``; correlation:
  ``K[group(c), c, :, :]`` (``O/G*KH*KW`` values); the vectors are then summed
  into the output positions they touch; ``N*C*H*W * nbits`` OTs.

The decomposed operand is either full 64-bit ring elements (``nbits=64``) or,
with ``signed=True``, signed integers of ``nbits`` bits (fixed-point weights
are small: ``|w| < 2^(nbits-1)``): they are offset by ``2^(nbits-1)`` to be
non-negative and the offset's contribution is removed locally by the other
party, so only ``nbits`` OTs per entry are needed.

Both parties compute the same costs from public shapes (:func:`matmul_costs`,
:func:`conv2d_costs`, bytes from :func:`ezprotocols.arith.ole.ole_bytes`) and
``decompose="auto"`` picks the cheaper one.
"""
from __future__ import annotations

import numpy as np

from .conv import Conv2dGeom
from .ole import OT_BYTES, ole_accumulate, ole_bytes

__all__ = ["cross_matmul", "cross_conv2d", "matmul_costs", "conv2d_costs", "pick", "offset_signed"]

U64 = np.uint64


def matmul_costs(m: int, k: int, n: int, *, nbits_l: int = 64, nbits_r: int = 64,
                 ot_bytes: int = OT_BYTES) -> dict:
    """Bytes (both directions) of ``cross_matmul`` for each decomposition."""
    return {"L": ole_bytes(m * k, n, nbits_l, ot_bytes), "R": ole_bytes(k * n, m, nbits_r, ot_bytes)}


def conv2d_costs(geom: Conv2dGeom, *, nbits_x: int = 64, nbits_k: int = 64, ot_bytes: int = OT_BYTES) -> dict:
    N, C, H, W = geom.x_shape
    O, Cg, KH, KW = geom.w_shape
    return {"K": ole_bytes(O * geom.k, geom.ncols, nbits_k, ot_bytes),
            "X": ole_bytes(N * C * H * W, (O // geom.groups) * KH * KW, nbits_x, ot_bytes)}


def pick(costs: dict) -> str:
    """The cheapest option (ties: the first in the dict's order)."""
    return min(costs, key=lambda k: costs[k])


def offset_signed(v: np.ndarray, nbits: int, step: str) -> np.ndarray:
    """Signed ring elements with ``|v| < 2^(nbits-1)`` shifted to ``[0, 2^nbits)``."""
    off = np.uint64(1 << (nbits - 1))
    u = np.asarray(v, dtype=U64) + off
    if u.size and int(u.max()) >> nbits:
        raise ValueError(f"{step}: values do not fit in {nbits} signed bits "
                         f"(|v| must be below 2^{nbits - 1})")
    return u


def cross_matmul(s, *, l_owner: int, m: int, k: int, n: int, L=None, R=None, decompose: str = "auto",
                 nbits: int = 64, signed: bool = False, step: str = "arith.cross_matmul") -> np.ndarray:
    """This party's share of ``L @ R`` (``uint64[m, n]``); ``L`` at ``l_owner``, ``R`` at the
    other party; ``nbits``/``signed`` describe the decomposed operand."""
    if decompose == "auto":
        costs = matmul_costs(m, k, n, nbits_l=nbits, nbits_r=nbits, ot_bytes=s.arith.ot_bytes)
        decompose = pick(costs)
    if decompose not in ("L", "R"):
        raise ValueError(f"{step}: decompose must be 'L', 'R' or 'auto'")
    mine_l = s.role == l_owner
    if mine_l:
        if L is None:
            raise ValueError(f"{step}: P{s.role} owns L and must pass it")
        L = np.ascontiguousarray(L, dtype=U64)
        if L.shape != (m, k):
            raise ValueError(f"{step}: L has shape {L.shape}, expected {(m, k)}")
    else:
        if R is None:
            raise ValueError(f"{step}: P{s.role} owns R and must pass it")
        R = np.ascontiguousarray(R, dtype=U64)
        if R.shape != (k, n):
            raise ValueError(f"{step}: R has shape {R.shape}, expected {(k, n)}")
    off = (1 << (nbits - 1)) if signed else 0
    if decompose == "R":
        # receiver: R's owner; values R[t, j] at p = t*n + j; corr row t = L[:, t]; acc row j
        ci = np.repeat(np.arange(k, dtype=np.int64), n)
        ai = np.tile(np.arange(n, dtype=np.int64), k)
        if mine_l:
            acc = ole_accumulate(s, receiver=1 - l_owner, nbits=nbits, ci=ci, ai=ai, n_acc=n, m=m,
                                 corr=np.ascontiguousarray(L.T), step=step)
            share = np.ascontiguousarray(acc.T)
            if off:   # L @ (R + off J) = L @ R + off * rowsum(L)
                share -= (L.sum(axis=1, dtype=U64) * np.uint64(off))[:, None]
            return share
        vals = offset_signed(R, nbits, step).reshape(-1) if signed else R.reshape(-1)
        acc = ole_accumulate(s, receiver=1 - l_owner, nbits=nbits, ci=ci, ai=ai, n_acc=n, m=m,
                             values=vals, step=step)
        return np.ascontiguousarray(acc.T)
    # decompose L: receiver: L's owner; values L[i, t] at p = i*k + t; corr row t = R[t, :]; acc row i
    ci = np.tile(np.arange(k, dtype=np.int64), m)
    ai = np.repeat(np.arange(m, dtype=np.int64), k)
    if mine_l:
        vals = offset_signed(L, nbits, step).reshape(-1) if signed else L.reshape(-1)
        return ole_accumulate(s, receiver=l_owner, nbits=nbits, ci=ci, ai=ai, n_acc=m, m=n,
                              values=vals, step=step)
    acc = ole_accumulate(s, receiver=l_owner, nbits=nbits, ci=ci, ai=ai, n_acc=m, m=n, corr=R, step=step)
    if off:       # (L + off J) @ R = L @ R + off * colsum(R)
        acc -= (R.sum(axis=0, dtype=U64) * np.uint64(off))[None, :]
    return acc


def _gather_out(Z: np.ndarray, geom: Conv2dGeom) -> np.ndarray:
    """Sum per-input-pixel contributions into the outputs.

    ``Z[n, g, y, x, o', u, v]`` is input pixel ``(y, x)``'s contribution through kernel
    tap ``(u, v)`` to output channel ``g*O/G + o'``; output ``(i, j)`` reads input
    ``(i*sh - pt + u*dh, j*sw - pl + v*dw)``."""
    N, G, H, W, Og, KH, KW = Z.shape
    t, l, b, r = geom.padding
    sh, sw = geom.stride
    dh, dw = geom.dilation
    ho, wo = geom.out_hw
    Zp = np.zeros((N, G, H + t + b, W + l + r, Og, KH, KW), dtype=U64)
    Zp[:, :, t:t + H, l:l + W] = Z
    out = np.zeros((N, G, ho, wo, Og), dtype=U64)
    for u in range(KH):
        for v in range(KW):
            y0, x0 = u * dh, v * dw
            out += Zp[:, :, y0:y0 + sh * (ho - 1) + 1:sh, x0:x0 + sw * (wo - 1) + 1:sw, :, u, v]
    return np.ascontiguousarray(out.transpose(0, 1, 4, 2, 3).reshape(N, G * Og, ho, wo))


def cross_conv2d(s, *, x_owner: int, geom: Conv2dGeom, X=None, K=None, decompose: str = "auto",
                 nbits: int = 64, signed: bool = False, step: str = "arith.cross_conv2d") -> np.ndarray:
    """This party's share of ``conv2d(X, K)`` (``uint64[N, O, HO, WO]``); ``X`` at ``x_owner``,
    ``K`` at the other party; ``nbits``/``signed`` describe the decomposed operand."""
    if decompose == "auto":
        costs = conv2d_costs(geom, nbits_x=nbits, nbits_k=nbits, ot_bytes=s.arith.ot_bytes)
        decompose = pick(costs)
    if decompose not in ("X", "K"):
        raise ValueError(f"{step}: decompose must be 'X', 'K' or 'auto'")
    mine_x = s.role == x_owner
    N, C, H, W = geom.x_shape
    O, Cg, KH, KW = geom.w_shape
    G = geom.groups
    Og = O // G
    kg = geom.k
    if mine_x:
        if X is None:
            raise ValueError(f"{step}: P{s.role} owns the input and must pass it")
        X = np.ascontiguousarray(X, dtype=U64)
        if X.shape != geom.x_shape:
            raise ValueError(f"{step}: input shape {X.shape}, expected {geom.x_shape}")
    else:
        if K is None:
            raise ValueError(f"{step}: P{s.role} owns the kernel and must pass it")
        K = np.ascontiguousarray(K, dtype=U64)
        if K.shape != geom.w_shape:
            raise ValueError(f"{step}: kernel shape {K.shape}, expected {geom.w_shape}")
    off = (1 << (nbits - 1)) if signed else 0
    if decompose == "K":
        # receiver: K's owner; values K[o, t]; corr row (group(o)*kg + t) of im2col(X); acc row o
        o_idx = np.repeat(np.arange(O, dtype=np.int64), kg)
        ci = (o_idx // Og) * kg + np.tile(np.arange(kg, dtype=np.int64), O)
        ai = o_idx
        if mine_x:
            cols = geom.im2col(X)
            acc = ole_accumulate(s, receiver=1 - x_owner, nbits=nbits, ci=ci, ai=ai, n_acc=O,
                                 m=geom.ncols, corr=cols, step=step)
            if off:   # conv(X, K + off) = conv(X, K) + off * (window sums of X per group)
                csum = cols.reshape(G, kg, -1).sum(axis=1, dtype=U64)           # [G, ncols]
                acc -= np.repeat(csum, Og, axis=0) * np.uint64(off)
            return geom.cols_to_out(acc)
        vals = offset_signed(K, nbits, step).reshape(-1) if signed else K.reshape(-1)
        acc = ole_accumulate(s, receiver=1 - x_owner, nbits=nbits, ci=ci, ai=ai, n_acc=O,
                             m=geom.ncols, values=vals, step=step)
        return geom.cols_to_out(acc)
    # decompose X: receiver: X's owner; values X[n, c, y, x]; corr row c = K[group(c) block, c % Cg]
    # flattened (Og*KH*KW); acc row ((n*G + group(c))*H + y)*W + x
    n_i, c_i, y_i, x_i = np.indices((N, C, H, W), dtype=np.int64).reshape(4, -1)
    ci = c_i
    ai = ((n_i * G + c_i // Cg) * H + y_i) * W + x_i
    vec = Og * KH * KW
    if mine_x:
        vals = offset_signed(X, nbits, step).reshape(-1) if signed else X.reshape(-1)
        acc = ole_accumulate(s, receiver=x_owner, nbits=nbits, ci=ci, ai=ai, n_acc=N * G * H * W, m=vec,
                             values=vals, step=step)
    else:
        corr = np.ascontiguousarray(
            K.reshape(G, Og, Cg, KH, KW).transpose(0, 2, 1, 3, 4).reshape(C, vec))
        acc = ole_accumulate(s, receiver=x_owner, nbits=nbits, ci=ci, ai=ai, n_acc=N * G * H * W, m=vec,
                             corr=corr, step=step)
    out = _gather_out(acc.reshape(N, G, H, W, Og, KH, KW), geom)
    if off and not mine_x:
        # conv(X + off, K) = conv(X, K) + off * conv(1_valid, K): the kernel owner removes it
        ones = np.ones(geom.x_shape, dtype=U64)
        from .conv import conv2d_ring
        out -= conv2d_ring(ones, K, geom) * np.uint64(off)
    return out
