"""Beaver triples from oblivious transfer, no third party: the triple source ``"ot"``
(:class:`OtTriples`, the default), built on the OT products of
:class:`~ezprotocols.arith.products.OtProducts`.

Elementwise (Gilboa, CRYPTO 1999; as in SecureML, Mohassel and Zhang, eprint
2017/396, section 4.1 "OT-based generation"): each party draws its shares
``a_i, b_i``; ``c = a b = a0 b0 + a1 b1 + a0 b1 + a1 b0`` and each cross term
``a_i b_j`` is shared with 64 additive correlated OTs (``s.ot.send_acot`` /
``recv_acot``): P_j chooses with bit ``t`` of ``b_j``, P_i's correlation is
``a_i`` and OT ``t`` carries only ``64 - t`` bits.  128 OTs per triple, one batch
in each direction.

Matrix triples ``C = A B`` (SecureML section 4.1) and convolution triples
``C = conv(A, B)``: the two cross terms ``A0 B1`` and ``A1 B0`` are products of
one party's matrix with the other's, computed with oblivious linear evaluation from random OT
(:mod:`ezprotocols.arith.cross`), with the decomposition that moves the fewest
bytes for the shapes.
"""
from __future__ import annotations

import numpy as np

from .._ext import ring
from .conv import Conv2dGeom, conv2d_ring
from .products import ELEM_CHUNK, cheapest
from .triples import TripleSource

__all__ = ["OtTriples", "ELEM_CHUNK"]

U64 = np.uint64


class OtTriples(TripleSource):
    """Triples from the OT products (``Session(..., triples="ot")``, the default).
    What each party sees is what the OT products show it (simulatable, see
    :mod:`ezprotocols.arith.products`); its triple shares are its own random draws
    plus a uniformly random share of the cross terms."""

    @property
    def products(self):
        """The OT product engine (whatever ``linear`` backend the session chose)."""
        return self.session.engine("linear", "ot")

    def mul_triples(self, n: int):
        s = self.session
        a = s.prg.random_uint64(n)
        b = s.prg.random_uint64(n)
        c = a * b
        for i0 in range(0, n, ELEM_CHUNK):          # both cross terms a_i b_j, chunk by chunk
            i1 = min(n, i0 + ELEM_CHUNK)
            for owner in (0, 1):
                mine = s.role == owner
                c[i0:i1] += self.products.cross_mul(owner=owner, n=i1 - i0, a=a[i0:i1] if mine else None,
                                                    b=None if mine else b[i0:i1], step="arith.triples.mul")
        return a, b, c

    def matmul_triple(self, m: int, k: int, n: int):
        s = self.session
        A = s.prg.random_uint64((m, k))
        B = s.prg.random_uint64((k, n))
        C = ring.matmul(A, B)
        if m and n and k:
            p = self.products
            dec = cheapest(p.matmul_costs(m, k, n))
            for l_owner in (0, 1):          # cross terms A_0 B_1 and A_1 B_0
                mine = s.role == l_owner
                C += p.cross_matmul(l_owner=l_owner, m=m, k=k, n=n, L=A if mine else None,
                                    R=None if mine else B, decompose=dec, step="arith.triples.matmul")
        return A, B, C

    def conv2d_triple(self, geom: Conv2dGeom):
        s = self.session
        A = s.prg.random_uint64(geom.x_shape)
        B = s.prg.random_uint64(geom.w_shape)
        C = conv2d_ring(A, B, geom)
        if C.size and A.size:
            p = self.products
            dec = cheapest(p.conv2d_costs(geom))
            for x_owner in (0, 1):
                mine = s.role == x_owner
                C += p.cross_conv2d(x_owner=x_owner, geom=geom, X=A if mine else None,
                                    K=None if mine else B, decompose=dec, step="arith.triples.conv2d")
        return A, B, C
