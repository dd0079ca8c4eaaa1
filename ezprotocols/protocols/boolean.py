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
``millionaire_gt``  ``[a > b]`` for ``a`` held by P0 and ``b`` by P1 (CrypTFlow2, Rathee
              et al., eprint 2020/1002, section 3.1): 4-bit digits, one 1-out-of-16
              OT per digit (built from 4 random OTs, the pads taken from the random-OT
              keys) giving XOR shares of ``[a_j > b_j]`` and ``[a_j = b_j]``, then a
              tree of ANDs from the most significant digit.

What each party sees: random-OT outputs (simulatable from its own choices), the
opened ``d, e`` of each AND (one-time padded by the triple) and, at P1, the
1-out-of-16 messages, each padded by a random-OT key it does not hold except the
chosen one, which carries a bit pair masked by P0's random output shares.  All
outputs are XOR (or additive) shares, uniformly random on their own.
"""
from __future__ import annotations

import numpy as np

from ..arith.tensor import ArithTensor
from ..errors import ProtocolError

__all__ = ["BoolTensor", "b2a_bits", "bit_triples", "and_bits", "millionaire_gt"]

U64 = np.uint64
DIGIT = 4


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


def millionaire_gt(s, value: np.ndarray, nbits: int, step: str = "arith.cmp") -> np.ndarray:
    """XOR shares (``uint8`` 0/1) of ``[a > b]`` where P0 passes ``a`` and P1 passes ``b``
    (``uint64`` arrays of the same length, values below ``2^nbits``); see the module
    docstring for the construction."""
    value = np.ascontiguousarray(value, dtype=U64).reshape(-1)
    n = value.shape[0]
    q = max(1, -(-nbits // DIGIT))
    if n == 0:
        return np.zeros(0, np.uint8)
    digits = np.stack([(value >> U64(DIGIT * j)) & U64(15) for j in range(q)], axis=1).astype(np.uint8)  # [n, q]
    # ---- leaves: 1-out-of-16 OT per digit, P0 sends, P1 receives with its digit
    if s.role == 0:
        k0, k1 = s.ot.send_rot(n * q * DIGIT)
        K = np.stack([_lo64(k0), _lo64(k1)], axis=1).reshape(n, q, DIGIT, 2)
        r = s.prg.random_bits(2 * n * q).reshape(2, n, q)
        gt_share, eq_share = r[0], r[1]
        E = np.zeros((n, q), dtype=U64)
        for v in range(16):
            pad = np.zeros((n, q), dtype=U64)
            for i in range(DIGIT):
                pad ^= K[:, :, i, (v >> i) & 1] >> U64(2 * v)
            msg = ((digits > v).astype(U64) ^ gt_share) | (((digits == v).astype(U64) ^ eq_share) << U64(1))
            E |= ((msg ^ pad) & U64(3)) << U64(2 * v)
        s.channel.send(step + ".leaf", E.astype(np.uint32))
        gt, eq = gt_share.astype(np.uint8), eq_share.astype(np.uint8)
    else:
        choice = np.unpackbits(digits.reshape(-1, 1), axis=1, bitorder="little")[:, :DIGIT].reshape(-1)
        kb = s.ot.recv_rot(np.ascontiguousarray(choice))
        Kb = _lo64(kb).reshape(n, q, DIGIT)
        if Kb.size != n * q * DIGIT:
            raise ProtocolError(f"{step}: random OT returned the wrong number of keys")
        E = s.channel.recv_array(step + ".leaf", np.uint32, (n, q)).astype(U64)
        sh = U64(2) * digits.astype(U64)
        pad = np.zeros((n, q), dtype=U64)
        for i in range(DIGIT):
            pad ^= Kb[:, :, i] >> sh
        msg = ((E >> sh) ^ pad) & U64(3)
        gt, eq = (msg & U64(1)).astype(np.uint8), (msg >> U64(1)).astype(np.uint8)
    # ---- combine digits from the most significant: gt = gt_hi ^ eq_hi & gt_lo, eq = eq_hi & eq_lo
    levels = []
    cnt = q
    while cnt > 1:
        pairs = cnt // 2
        levels.append(pairs)
        cnt = pairs + (cnt % 2)
    n_and = n * sum(2 * p for p in levels)
    trip = bit_triples(s, n_and, step + ".triples")
    pos = 0
    gt_l = [gt[:, j] for j in range(q)]
    eq_l = [eq[:, j] for j in range(q)]
    lvl = 0
    while len(gt_l) > 1:
        pairs = len(gt_l) // 2
        lo_g = np.concatenate([gt_l[2 * p] for p in range(pairs)])
        hi_e = np.concatenate([eq_l[2 * p + 1] for p in range(pairs)])
        lo_e = np.concatenate([eq_l[2 * p] for p in range(pairs)])
        m = pairs * n
        t = tuple(a[pos:pos + 2 * m] for a in trip)
        pos += 2 * m
        prod = and_bits(s, np.concatenate([hi_e, hi_e]), np.concatenate([lo_g, lo_e]), t, f"{step}.and{lvl}")
        new_g, new_e = [], []
        for p in range(pairs):
            new_g.append(gt_l[2 * p + 1] ^ prod[p * n:(p + 1) * n])
            new_e.append(prod[m + p * n:m + (p + 1) * n])
        if len(gt_l) % 2:
            new_g.append(gt_l[-1])
            new_e.append(eq_l[-1])
        gt_l, eq_l = new_g, new_e
        lvl += 1
    return np.ascontiguousarray(gt_l[0])
