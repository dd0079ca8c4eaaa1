"""``BoolTensor``: bits held as XOR shares between the two parties.

The value of a bit is ``share_0 ^ share_1``.  XOR with another BoolTensor or with
public bits and NOT are local; turning bits into arithmetic shares (B2A) and
multiplying an arithmetic tensor by a shared bit use additive correlated OT
(:mod:`ezprotocols.protocols.convert`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["BoolTensor"]


def _as_bits(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{what}: bits must be integers 0/1, got {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > 1):
        raise ValueError(f"{what}: bits must be 0 or 1")
    return a.astype(np.uint8, copy=False)


class BoolTensor:
    """XOR shares of bits (``share``: uint8 0/1, any shape) with the session attached."""

    __slots__ = ("session", "share")
    __array_ufunc__ = None

    def __init__(self, session, share):
        self.session = session
        self.share = _as_bits(share, "BoolTensor")

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple:
        return self.share.shape

    @property
    def ndim(self) -> int:
        return self.share.ndim

    @property
    def size(self) -> int:
        return int(self.share.size)

    def __len__(self):
        return self.shape[0]

    def _new(self, share) -> "BoolTensor":
        return BoolTensor(self.session, share)

    def __getitem__(self, key) -> "BoolTensor":
        return self._new(self.share[key])

    def reshape(self, *shape) -> "BoolTensor":
        if len(shape) == 1 and not np.isscalar(shape[0]):
            shape = tuple(shape[0])
        return self._new(self.share.reshape(shape))

    def flatten(self) -> "BoolTensor":
        return self._new(self.share.reshape(-1))

    # ------------------------------------------------------------------ local ops
    def __xor__(self, other) -> "BoolTensor":
        if isinstance(other, BoolTensor):
            return self._new(self.share ^ other.share)
        bits = _as_bits(other, "xor")
        if self.session.role == 0:            # a public constant is added by P0 alone
            return self._new(self.share ^ bits)
        return self._new(np.broadcast_to(self.share, np.broadcast_shapes(self.shape, bits.shape)).copy())

    __rxor__ = __xor__

    def __invert__(self) -> "BoolTensor":
        return self ^ np.ones((), np.uint8)

    # ------------------------------------------------------------------ protocols
    def to_arith(self):
        """0/1 arithmetic shares (an ArithTensor at scale 0): B2A, one additive COT per bit."""
        from .convert import b2a_bits
        return b2a_bits(self)

    def reveal(self, to=None):
        """Open the bits to both parties (``to=None``) or to party 0 or 1 (the other gets
        None).  Costs one bit per bit and receiving party."""
        s = self.session
        if to not in (None, 0, 1):
            raise ValueError(f"to must be None, 0 or 1, not {to!r}")
        n = self.size
        mine = np.packbits(self.share.reshape(-1), bitorder="little")
        to_peer = to is None or to == s.peer
        to_me = to is None or to == s.role
        if to_peer:
            s.channel.send("bool.reveal", mine)
        if to_me:
            theirs = s.channel.recv_array("bool.reveal", np.uint8, (mine.size,))
            bits = np.unpackbits(mine ^ theirs, count=n, bitorder="little")
            return bits.reshape(self.shape)
        return None

    def __repr__(self):
        return f"<BoolTensor shape={self.shape} (XOR shares of P{self.session.role})>"
