"""TRUSTED DEALER of correlated randomness -- for research comparisons only.

Chosen only with ``Session(..., triples="dealer")``; never used otherwise.  The
dealer is simulated by P0, in the "trusted first party" style of CrypTen: P0
sends P1 a 16-byte seed once; P1's shares of every triple (``a1, b1``, masks)
are derived from it, so P0 knows them, computes the product and sends P1 only
the correction ``c1 = a b - c0`` (one ring element per triple entry).

This is NOT secure against P0: P0 knows P1's triple shares and can therefore
recover every value P1 opens (and for layers with one party's weights, the
masks are known to both parties).  All traffic runs in phases named
``triples.dealer`` (and ``dealer.setup``) and ``session.triples.report()`` says
``trusted_dealer: True``, so no report can mistake it for the OT source.
"""
from __future__ import annotations

import numpy as np

from .._ext import ring
from .._ext.crypto import Prg
from .conv import Conv2dGeom, conv2d_ring
from .triples import TripleSource

__all__ = ["DealerSource"]

U64 = np.uint64


class DealerSource(TripleSource):
    """P0 plays the dealer (``Session(..., triples="dealer")``); see the module
    docstring.  Not secure against P0."""

    trusted_dealer = True

    def __init__(self, session):
        super().__init__(session)
        self.s = session
        self._p1: Prg | None = None

    def setup(self) -> None:
        """P0 sends P1 the seed of P1's triple shares (once, on first use)."""
        if self._p1 is not None:
            return
        s = self.s
        with s.phase("dealer.setup"):
            if s.role == 0:
                seed = s.prg.random_bytes(16)
                s.channel.send("arith.dealer.seed", np.frombuffer(seed, dtype=np.uint8))
            else:
                seed = s.channel.recv_array("arith.dealer.seed", np.uint8, (16,)).tobytes()
        self._p1 = Prg(seed)

    @property
    def p1(self) -> Prg:
        """P1's randomness, known to the dealer (P0)."""
        self.setup()
        return self._p1

    def _correct(self, step: str, prod: np.ndarray | None, shape) -> np.ndarray:
        """P0: sends ``prod - c0`` to P1 and returns its share ``c0``; P1: receives ``c1``."""
        s = self.s
        if s.role == 0:
            c0 = s.prg.random_uint64(shape)
            s.channel.send(step, prod - c0)
            return c0
        return s.channel.recv_array(step, U64, shape)

    def mul_triples(self, n: int):
        s = self.s
        a1 = self.p1.random_uint64(n)
        b1 = self.p1.random_uint64(n)
        if s.role == 1:
            return a1, b1, self._correct("arith.dealer.mul", None, (n,))
        a0 = s.prg.random_uint64(n)
        b0 = s.prg.random_uint64(n)
        return a0, b0, self._correct("arith.dealer.mul", (a0 + a1) * (b0 + b1), (n,))

    def matmul_triple(self, m: int, k: int, n: int):
        s = self.s
        A1 = self.p1.random_uint64((m, k))
        B1 = self.p1.random_uint64((k, n))
        if s.role == 1:
            return A1, B1, self._correct("arith.dealer.matmul", None, (m, n))
        A0 = s.prg.random_uint64((m, k))
        B0 = s.prg.random_uint64((k, n))
        return A0, B0, self._correct("arith.dealer.matmul", ring.matmul(A0 + A1, B0 + B1), (m, n))

    def conv2d_triple(self, geom: Conv2dGeom):
        s = self.s
        A1 = self.p1.random_uint64(geom.x_shape)
        B1 = self.p1.random_uint64(geom.w_shape)
        if s.role == 1:
            return A1, B1, self._correct("arith.dealer.conv2d", None, geom.out_shape)
        A0 = s.prg.random_uint64(geom.x_shape)
        B0 = s.prg.random_uint64(geom.w_shape)
        return A0, B0, self._correct("arith.dealer.conv2d", conv2d_ring(A0 + A1, B0 + B1, geom),
                                     geom.out_shape)

    def private_mask(self, layer, geom):
        """Mask for a layer whose weights ``layer.owner`` knows: the non-owner's random mask
        ``R`` (input-shaped) and shares of the layer applied to ``R``.

        ``R`` comes from the dealer stream, so *both* parties know it (this is the dealer
        model: whoever plays the dealer sees the masks); the owner computes the layer on
        ``R`` and sends the non-owner its share.  Returns ``(R or None, share)``."""
        s = self.s
        owner, out_shape = layer.owner, layer.out_shape(geom)
        R = self.p1.random_uint64(layer.in_shape(geom))
        if s.role == owner:
            prod = layer.apply(R, geom)
            z = s.prg.random_uint64(prod.shape)
            s.channel.send("arith.dealer.linear", prod - z)
            return None, z
        return R, s.channel.recv_array("arith.dealer.linear", U64, tuple(out_shape))
