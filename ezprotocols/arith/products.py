"""The product interface (``session.linear``): one party's private operand times the
other party's, as additive shares in Z_2^64.  Beaver triples, the masks of the
layers with one party's weights and any other cross term are built on it.

:class:`Products` is the interface; :class:`OtProducts` (``"ot"``, the default) is
Gilboa's OT multiplication (CRYPTO 1999; SecureML, eprint 2017/396, section 4.1):
matrices and convolutions through :mod:`ezprotocols.arith.cross` (oblivious linear
evaluation with vector correlations, :mod:`ezprotocols.arith.ole`), elementwise
products through additive correlated OT (``s.ot.send_acot``/``recv_acot``).  What
each party sees: the OT messages of :mod:`ezprotocols.ot` (simulatable from its
own input and output) and, at the receiver, corrections masked by hashes of OT
keys it does not hold; its output share is uniformly random.

Operands are ring elements (``uint64``); ``nbits_*`` bounds an operand's size
(``64``: any ring element; fewer: a signed integer ``|v| < 2^(nbits-1)``, e.g.
fixed-point weights), which an implementation may use to send less.  Costs are
computable by both parties from public shapes: ``{option: {"bytes": .., "rounds":
..}}``, one entry per way the implementation can compute the product (``decompose=``
picks one, ``"auto"`` the fewest bytes).

>>> import numpy as np
>>> from ezprotocols.runner import run_pair
>>> L, R = np.arange(6, dtype=np.uint64).reshape(2, 3), np.arange(12, dtype=np.uint64).reshape(3, 4)
>>> f = lambda s: s.linear.cross_matmul(l_owner=0, m=2, k=3, n=4, L=L if s.role == 0 else None,
...                                      R=R if s.role == 1 else None)
>>> z0, z1 = run_pair(f, f)
>>> bool(((z0 + z1) == L @ R).all())
True
>>> a, b = np.array([3, 2**64 - 1], np.uint64), np.array([5, 7], np.uint64)
>>> g = lambda s: s.linear.cross_mul(owner=1, n=2, a=a if s.role == 1 else None, b=b if s.role == 0 else None)
>>> z0, z1 = run_pair(g, g)
>>> (z0 + z1).tolist() == (a * b).tolist()
True
"""
from __future__ import annotations

import math

import numpy as np

from .._ext import ring
from .conv import Conv2dGeom
from .cross import conv2d_costs, cross_conv2d, cross_matmul, matmul_costs, pick
from .ole import ROT_BATCH, bits_of

__all__ = ["Products", "OtProducts", "cheapest", "ELEM_CHUNK"]

U64 = np.uint64
ELEM_CHUNK = 1 << 16          # elementwise products per OT batch (2^22 OTs)
_WIDTHS: list = []


class Products:
    """Interface of the product engines (``Session(..., linear=name)``).  All methods
    are collective: both parties call them in the same order with the same public
    arguments; each passes its own operand (``None`` for the other's)."""

    def __init__(self, session):
        self.session = session

    def setup(self) -> None:
        """One-time set-up (keys, base OTs) now rather than on first use."""

    def matmul_costs(self, m: int, k: int, n: int, *, nbits_l: int = 64, nbits_r: int = 64,
                     l_owner: int | None = None) -> dict:
        """``{option: {"bytes", "rounds"}}`` of :meth:`cross_matmul`; ``l_owner`` (if known) may
        refine engines whose costs depend on per-party state (the HE engine's Galois keys)."""
        raise NotImplementedError

    def cross_matmul(self, *, l_owner: int, m: int, k: int, n: int, L=None, R=None, nbits_l: int = 64,
                     nbits_r: int = 64, decompose: str = "auto", step: str = "arith.cross_matmul") -> np.ndarray:
        """This party's share (``uint64[m, n]``) of ``L @ R``, ``L[m, k]`` held by ``l_owner``,
        ``R[k, n]`` by the other party."""
        raise NotImplementedError

    def conv2d_costs(self, geom: Conv2dGeom, *, nbits_x: int = 64, nbits_k: int = 64,
                     x_owner: int | None = None) -> dict:
        """``{option: {"bytes", "rounds"}}`` of :meth:`cross_conv2d` (``x_owner`` as ``l_owner``
        of :meth:`matmul_costs`)."""
        raise NotImplementedError

    def cross_conv2d(self, *, x_owner: int, geom: Conv2dGeom, X=None, K=None, nbits_x: int = 64,
                     nbits_k: int = 64, decompose: str = "auto", step: str = "arith.cross_conv2d") -> np.ndarray:
        """This party's share (``uint64[N, O, HO, WO]``) of ``conv2d(X, K)``, the input ``X``
        held by ``x_owner``, the kernel ``K`` by the other party."""
        raise NotImplementedError

    def mul_costs(self, n: int) -> dict:
        raise NotImplementedError

    def cross_mul(self, *, owner: int, n: int, a=None, b=None, step: str = "arith.cross_mul",
                  decompose: str = "auto") -> np.ndarray:
        """This party's share (``uint64[n]``) of ``a * b`` elementwise, ``a`` held by
        ``owner``, ``b`` by the other party (``decompose``: an option of :meth:`mul_costs`,
        ``"auto"`` the fewest bytes)."""
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} P{self.session.role}>"


def _ole_rounds(P: int, nbits: int) -> int:
    """Message flights of one :func:`~ezprotocols.arith.ole.ole_accumulate` (random OT
    batch out, corrections back), excluding the one-time base OTs."""
    return 2 * math.ceil(P / max(1, ROT_BATCH // nbits)) if P else 0


def _widths(nn: int) -> np.ndarray:
    """Per-OT message widths 64, 63, ..., 1 repeated for ``nn`` elements (a cached view)."""
    if not _WIDTHS:
        _WIDTHS.append(np.tile((64 - np.arange(64)).astype(np.uint8), ELEM_CHUNK))
    return _WIDTHS[0][:nn * 64]


class OtProducts(Products):
    """Products through OT (``"ot"``); see the module docstring.  Options: matmul
    ``"L"``/``"R"``, conv2d ``"X"``/``"K"`` (the operand whose bits choose the OTs)."""

    @property
    def _ot_bytes(self) -> int:
        return self.session.arith.ot_bytes

    def matmul_costs(self, m, k, n, *, nbits_l=64, nbits_r=64, l_owner=None) -> dict:
        b = matmul_costs(m, k, n, nbits_l=nbits_l, nbits_r=nbits_r, ot_bytes=self._ot_bytes)
        return {"L": {"bytes": b["L"], "rounds": _ole_rounds(m * k, nbits_l)},
                "R": {"bytes": b["R"], "rounds": _ole_rounds(k * n, nbits_r)}}

    def cross_matmul(self, *, l_owner, m, k, n, L=None, R=None, nbits_l=64, nbits_r=64, decompose="auto",
                     step="arith.cross_matmul"):
        if decompose == "auto":
            decompose = cheapest(self.matmul_costs(m, k, n, nbits_l=nbits_l, nbits_r=nbits_r))
        nbits = nbits_l if decompose == "L" else nbits_r
        return cross_matmul(self.session, l_owner=l_owner, m=m, k=k, n=n, L=L, R=R, decompose=decompose,
                            nbits=nbits, signed=nbits < 64, step=step)

    def conv2d_costs(self, geom, *, nbits_x=64, nbits_k=64, x_owner=None) -> dict:
        b = conv2d_costs(geom, nbits_x=nbits_x, nbits_k=nbits_k, ot_bytes=self._ot_bytes)
        N, C, H, W = geom.x_shape
        return {"K": {"bytes": b["K"], "rounds": _ole_rounds(geom.w_shape[0] * geom.k, nbits_k)},
                "X": {"bytes": b["X"], "rounds": _ole_rounds(N * C * H * W, nbits_x)}}

    def cross_conv2d(self, *, x_owner, geom, X=None, K=None, nbits_x=64, nbits_k=64, decompose="auto",
                     step="arith.cross_conv2d"):
        if decompose == "auto":
            decompose = cheapest(self.conv2d_costs(geom, nbits_x=nbits_x, nbits_k=nbits_k))
        nbits = nbits_x if decompose == "X" else nbits_k
        return cross_conv2d(self.session, x_owner=x_owner, geom=geom, X=X, K=K, decompose=decompose,
                            nbits=nbits, signed=nbits < 64, step=step)

    def mul_costs(self, n: int) -> dict:
        acot = sum((w + 7) // 8 for w in range(1, 65))          # corrections of widths 64..1
        return {"acot": {"bytes": int(n) * (64 * self._ot_bytes + acot),
                         "rounds": 2 * math.ceil(int(n) / ELEM_CHUNK)}}

    def cross_mul(self, *, owner, n, a=None, b=None, step="arith.cross_mul", decompose="auto"):
        """64 additive COTs per element: the other party chooses with bit ``t`` of ``b``,
        ``owner``'s correlation is ``a``, OT ``t`` carries only ``64 - t`` bits."""
        if decompose not in ("auto", "acot"):
            raise ValueError(f"{step}: unknown option {decompose!r}")
        s = self.session
        n = int(n)
        mine = s.role == owner
        v = np.ascontiguousarray(a if mine else b, dtype=U64).reshape(-1)
        if v.shape[0] != n:
            raise ValueError(f"{step}: {v.shape[0]} values for n={n}")
        out = np.empty(n, dtype=U64)
        for i0 in range(0, n, ELEM_CHUNK):
            i1 = min(n, i0 + ELEM_CHUNK)
            nn = i1 - i0
            if mine:
                x = s.ot.send_acot(np.repeat(v[i0:i1], 64), bits=_widths(nn))
                out[i0:i1] = ring.shift_sum(np.asarray(x, dtype=U64).reshape(nn, 64), negate=True)
            else:
                y = s.ot.recv_acot(bits_of(v[i0:i1], 64), bits=_widths(nn))
                out[i0:i1] = ring.shift_sum(np.asarray(y, dtype=U64).reshape(nn, 64))
        return out


def cheapest(costs: dict) -> str:
    """The option of a ``{option: {"bytes", "rounds"}}`` table that moves the fewest bytes
    (ties: the first listed)."""
    return pick({k: v["bytes"] for k, v in costs.items()})
