"""Beaver triples from oblivious transfer: no third party.

Elementwise (Gilboa, CRYPTO 1999; as in SecureML, Mohassel and Zhang, eprint
2017/396, section 4.1 "OT-based generation"): each party draws its shares
``a_i, b_i``; ``c = a b = a0 b0 + a1 b1 + a0 b1 + a1 b0`` and each cross term
``a_i b_j`` is shared with 64 additive correlated OTs (``s.ot.send_acot`` /
``recv_acot``): P_j chooses with bit ``t`` of ``b_j``, P_i's correlation is
``a_i`` and OT ``t`` carries only ``64 - t`` bits.  128 OTs per triple, one batch
in each direction.

Matrix triples ``C = A B`` (SecureML section 4.1) and convolution triples
``C = conv(A, B)``: the two cross terms ``A0 B1`` and ``A1 B0`` are products of
one party's matrix with the other's, computed with vector-OLE from random OT
(:mod:`ezprotocols.arith.cross`), with the decomposition that moves the fewest
bytes for the shapes.
"""
from __future__ import annotations

import numpy as np

from .._ext import ring
from .conv import Conv2dGeom, conv2d_ring
from .cross import conv2d_costs, cross_conv2d, cross_matmul, matmul_costs, pick
from .vole import bits_of

__all__ = ["mul_triples", "matmul_triple", "conv2d_triple", "ELEM_CHUNK"]

U64 = np.uint64
ELEM_CHUNK = 1 << 16          # triples per OT batch (2^22 OTs per direction)
_WIDTHS: list = []


def _widths(nn: int) -> np.ndarray:
    """Per-OT message widths 64, 63, ..., 1 repeated for ``nn`` elements (a cached view)."""
    if not _WIDTHS:
        _WIDTHS.append(np.tile((64 - np.arange(64)).astype(np.uint8), ELEM_CHUNK))
    return _WIDTHS[0][:nn * 64]


def _gilboa_elementwise(s, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shares of ``a0 b1 + a1 b0`` (both cross terms) for this party's ``a``, ``b``."""
    n = a.shape[0]
    out = np.zeros(n, dtype=U64)
    for i0 in range(0, n, ELEM_CHUNK):
        i1 = min(n, i0 + ELEM_CHUNK)
        nn = i1 - i0
        widths = _widths(nn)
        for sender in (0, 1):
            if s.role == sender:
                x = s.ot.send_acot(np.repeat(a[i0:i1], 64), bits=widths)
                out[i0:i1] += ring.shift_sum(np.asarray(x, dtype=U64).reshape(nn, 64), negate=True)
            else:
                y = s.ot.recv_acot(bits_of(b[i0:i1], 64), bits=widths)
                out[i0:i1] += ring.shift_sum(np.asarray(y, dtype=U64).reshape(nn, 64))
    return out


def mul_triples(s, n: int):
    """``n`` elementwise triples: this party's ``(a, b, c)`` shares, ``uint64[n]`` each."""
    a = s.prg.random_uint64(n)
    b = s.prg.random_uint64(n)
    c = a * b
    if n:
        c += _gilboa_elementwise(s, a, b)
    return a, b, c


def matmul_triple(s, m: int, k: int, n: int):
    """A matrix triple ``A[m, k]``, ``B[k, n]``, ``C = A B``: this party's shares."""
    A = s.prg.random_uint64((m, k))
    B = s.prg.random_uint64((k, n))
    C = ring.matmul(A, B)
    if m and n and k:
        dec = pick(matmul_costs(m, k, n, ot_bytes=s.arith.ot_bytes))
        for l_owner in (0, 1):          # cross terms A_0 B_1 and A_1 B_0
            mine = s.role == l_owner
            C += cross_matmul(s, l_owner=l_owner, m=m, k=k, n=n, L=A if mine else None,
                              R=None if mine else B, decompose=dec, step="arith.triples.matmul")
    return A, B, C


def conv2d_triple(s, geom: Conv2dGeom):
    """A convolution triple ``A`` (input-shaped), ``B`` (kernel-shaped), ``C = conv(A, B)``."""
    A = s.prg.random_uint64(geom.x_shape)
    B = s.prg.random_uint64(geom.w_shape)
    C = conv2d_ring(A, B, geom)
    if C.size and A.size:
        dec = pick(conv2d_costs(geom, ot_bytes=s.arith.ot_bytes))
        for x_owner in (0, 1):
            mine = s.role == x_owner
            C += cross_conv2d(s, x_owner=x_owner, geom=geom, X=A if mine else None,
                              K=None if mine else B, decompose=dec, step="arith.triples.conv2d")
    return A, B, C
