"""Boolean (XOR) sharing: :class:`BoolTensor`, AND with bit triples, B2A of bits,
and the millionaires' comparison of two parties' private values.  Truncation
(:func:`ezprotocols.arith.trunc.trunc_faithful`) and comparison both use it.

The value of a bit is ``share_0 ^ share_1``.  XOR with another BoolTensor or with
public bits and NOT are local.

``b2a_bits``  ``b = b0 + b1 - 2 b0 b1``: one additive COT per bit, P0 sending the
              correlation ``-2 b0``, P1 choosing with ``b1`` (16 + 8 bytes per bit;
              ABY, Demmler, Schneider, Zohner, NDSS 2015).
``bit_triples``  AND triples ``(u, v, w = u v)`` over XOR shares from two random OTs
              each (Asharov et al., eprint 2013/552): in the OT sent by party i the
              peer chooses with its ``u``; the sender's ``v`` is the XOR of its two key
              bits, so the peer learns ``l_0 ^ u v`` and the sender keeps ``l_0``.
``and_bits``  ``x AND y`` with one bit triple per AND (Beaver): both open
              ``d = x ^ u``, ``e = y ^ v`` (uniform, one exchange).
``millionaire_gt``  ``[a > b]`` for ``a`` held by P0 and ``b`` by P1: re-exported from
              :mod:`.millionaire` (CrypTFlow2, eprint 2020/1002, with Cheetah's leaner
              leaves and correlated triples, eprint 2022/207; one batched run).

What each party sees: random-OT outputs (simulatable from its own choices), the
opened ``d, e`` of each AND (one-time padded by the triple); the millionaires'
protocol's views are described in :mod:`.millionaire`.  All outputs are XOR (or
additive) shares, uniformly random on their own.
"""
from __future__ import annotations

import numpy as np

from ..arith.tensor import ArithTensor
from ..errors import ProtocolError
from .millionaire import millionaire_gt  # noqa: F401  (the one millionaires' protocol, re-exported)

__all__ = ["BoolTensor", "b2a_bits", "bit_triples", "and_bits", "millionaire_gt"]

U64 = np.uint64


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
    def to_arith(self) -> ArithTensor:
        """0/1 arithmetic shares (an ArithTensor at scale 0): B2A, one additive COT per bit."""
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


def b2a_bits(b: BoolTensor) -> ArithTensor:
    """0/1 arithmetic shares (scale 0) of XOR-shared bits: one additive COT per bit."""
    s = b.session
    bits = b.share.reshape(-1)
    if s.role == 0:
        x = s.ot.send_acot((U64(0) - U64(2) * bits.astype(U64)))
        share = bits.astype(U64) - x
    else:
        y = s.ot.recv_acot(bits)
        share = bits.astype(U64) + y
    return ArithTensor(s, share.reshape(b.shape), 0)


def _lo64(keys: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(keys, dtype=np.uint8).reshape(-1, 16)[:, :8].copy().view(U64).reshape(-1)


def bit_triples(s, n: int, step: str):
    """``n`` AND triples (u, v, w) over XOR shares from 2 random OTs each."""
    if n == 0:
        z = np.zeros(0, np.uint8)
        return z, z, z
    u = s.prg.random_bits(n)
    parts = {}
    for sender in (0, 1):
        if s.role == sender:
            k0, k1 = s.ot.send_rot(n)
            l0 = (_lo64(k0) & U64(1)).astype(np.uint8)
            l1 = (_lo64(k1) & U64(1)).astype(np.uint8)
            parts[sender] = (l0 ^ l1, l0)          # (my v, my share of u_peer * v)
        else:
            kb = s.ot.recv_rot(u)
            lb = (_lo64(kb) & U64(1)).astype(np.uint8)
            if lb.shape[0] != n:
                raise ProtocolError(f"{step}: random OT returned {lb.shape[0]} keys for {n}")
            parts[sender] = (None, lb)               # share of u_mine * v_peer
    mine = s.role
    v, cross_a = parts[mine]
    _, cross_b = parts[1 - mine]
    w = (u & v) ^ cross_a ^ cross_b
    return u, v, w


def and_bits(s, x: np.ndarray, y: np.ndarray, triples, step: str) -> np.ndarray:
    """XOR-shared ``x AND y`` (uint8 0/1 arrays) with Beaver bit triples; one exchange."""
    u, v, w = triples
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, np.uint8)
    de = np.concatenate([x ^ u, y ^ v])
    packed = np.packbits(de, bitorder="little")
    other = s.channel.exchange(step, packed)
    de_all = np.unpackbits(packed ^ other, count=2 * n, bitorder="little")
    d, e = de_all[:n], de_all[n:]
    z = w ^ (d & v) ^ (e & u)
    if s.role == 0:
        z ^= d & e
    return z
