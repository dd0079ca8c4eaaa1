"""Truncation of fixed-point shares: dividing a shared ``x`` by ``2^f``.

``local`` (default) -- SecureML local truncation (Mohassel and Zhang, eprint
2017/396, section 3.1, Theorem 1), no communication: P0 outputs
``x0 >> f`` (logical shift of the ring element), P1 outputs ``-((-x1) >> f)``.

  Error bound (two parties, ring Z_2^64).  Let ``x`` be the signed value,
  ``x = x0 + x1 mod 2^64`` with ``x0`` uniformly random.  Then with probability
  at least ``1 - |x| / 2^64`` the output is ``floor(x / 2^f)`` or
  ``floor(x / 2^f) + 1`` (so within one unit in the last place of the exact
  ``x / 2^f``); otherwise (the shares wrapped around the ring across the sign of
  ``x``) it is off by about ``2^(64-f)``, a catastrophic error.  For
  ``|x| < 2^l_x`` the failure probability is below ``2^(l_x - 64)``: a product of
  two values of magnitude below ``2^k`` (real) at ``f = 16`` has
  ``l_x = 2k + 32``, e.g. ``|x|, |y| < 2^8`` fail with probability below
  ``2^-16`` per element, ``< 1`` below ``2^-32``.  (When ``x0`` is uniform only on
  the multiples of ``2^s``, e.g. after multiplying by a public even constant, the
  bound is ``(|x| + 2^s) / 2^64``.)  Derivation: write ``x1' = -x1``; if
  ``x0 - x1'`` does not wrap, ``x0 - x1' = x`` over the integers and
  ``floor(x0/2^f) - floor(x1'/2^f)`` is ``floor(x/2^f)`` plus a carry in
  ``{0, 1}``; it wraps exactly when ``x0 < x`` (``x >= 0``) or
  ``x0 >= 2^64 - |x|`` (``x < 0``), probability ``|x| / 2^64``.

``faithful`` -- exact ``floor(x / 2^f)`` (arithmetic shift) for ``|x| < 2^62``,
through OT, no third party.  With ``x' = x + 2^62`` (so ``0 <= x' < 2^63``) and
shares ``x'_i = h_i 2^f + l_i``:

  ``floor(x' / 2^f) = h0 + h1 + c - w 2^(64-f)``

where ``w`` is the wrap bit of ``x'0 + x'1`` and ``c = [l0 + l1 >= 2^f]`` the carry
of the low bits.  Because the top bit of ``x'`` is known to be 0,
``w = msb(x'0) OR msb(x'1)`` (the "known MSB" observation of Cheetah, Huang et al.,
USENIX Security 2022, and SiRnn, Rathee et al., eprint 2020/1002): one
additive correlated OT of ``f`` bits shares ``w 2^(64-f)``.  The carry is a
millionaires' comparison ``l0 > 2^f - 1 - l1`` of ``f``-bit values held by the two
parties, computed as in CrypTFlow2 (Rathee et al., eprint 2020/1002, section
3.1): 4-bit digits, one 1-out-of-16 OT per digit (built from 4 random OTs, the
pads taken from the random-OT keys) giving XOR shares of ``[a_j > b_j]`` and
``[a_j = b_j]``, then a tree of ANDs with bit triples from random OT (two ROTs per
triple, Asharov et al., eprint 2013/552); the final bit becomes arithmetic with
one correlated OT.  Per element at ``f = 16``: 16 leaf ROTs + 12 triple ROTs
+ 2 ACOTs, about 0.5 KB.
"""
from __future__ import annotations

import numpy as np

from ..errors import ProtocolError

__all__ = ["trunc_local", "trunc_faithful", "truncate_shares", "millionaire_gt"]

U64 = np.uint64
DIGIT = 4


def trunc_local(share: np.ndarray, f: int, role: int) -> np.ndarray:
    """SecureML local truncation of this party's share (no communication)."""
    if f == 0:
        return share.copy()
    sh = np.uint64(f)
    if role == 0:
        return share >> sh
    return -((-share) >> sh)


# ---------------------------------------------------------------------- boolean helpers

def _lo64(keys: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(keys, dtype=np.uint8).reshape(-1, 16)[:, :8].copy().view(U64).reshape(-1)


def _bit_triples(s, n: int, step: str):
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


def _and(s, x: np.ndarray, y: np.ndarray, triples, step: str) -> np.ndarray:
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
    (``uint64`` arrays of the same length, values below ``2^nbits``)."""
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
    trip = _bit_triples(s, n_and, step + ".triples")
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
        prod = _and(s, np.concatenate([hi_e, hi_e]), np.concatenate([lo_g, lo_e]), t, f"{step}.and{lvl}")
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


def b2a_bits(s, bits: np.ndarray, step: str = "arith.b2a") -> np.ndarray:
    """Arithmetic shares mod 2^64 of XOR-shared bits (one correlated OT per bit)."""
    bits = np.ascontiguousarray(bits, dtype=np.uint8)
    b = bits.astype(U64)
    if bits.shape[0] == 0:
        return b
    if s.role == 0:
        x = np.asarray(s.ot.send_acot(b, bits=64), dtype=U64)
        return b + U64(2) * x
    y = np.asarray(s.ot.recv_acot(bits, bits=64), dtype=U64)
    return b - U64(2) * y


def trunc_faithful(s, share: np.ndarray, f: int, step: str = "arith.trunc") -> np.ndarray:
    """Exact ``floor(x / 2^f)`` of a shared signed ``x`` with ``|x| < 2^62`` (see module doc)."""
    if f == 0:
        return share.copy()
    if not 0 < f < 62:
        raise ValueError("faithful truncation needs 0 < f < 62")
    shape = share.shape
    xs = np.ascontiguousarray(share, dtype=U64).reshape(-1)
    if s.role == 0:
        xs = xs + U64(1 << 62)
    n = xs.shape[0]
    if n == 0:
        return np.zeros(shape, U64)
    msb = (xs >> U64(63)).astype(np.uint8)
    lo = xs & U64((1 << f) - 1)
    hi = xs >> U64(f)
    # wrap bit w = msb0 OR msb1 = msb0 + msb1 - msb0 msb1, kept mod 2^f then shifted up
    if s.role == 0:
        x = np.asarray(s.ot.send_acot(msb.astype(U64), bits=f), dtype=U64)
        w = msb.astype(U64) + x
    else:
        y = np.asarray(s.ot.recv_acot(msb, bits=f), dtype=U64)
        w = msb.astype(U64) - y
    w_hi = w << U64(64 - f)
    # carry c = [l0 + l1 >= 2^f] = [l0 > 2^f - 1 - l1]
    cmp_in = lo if s.role == 0 else U64((1 << f) - 1) - lo
    c_bool = millionaire_gt(s, cmp_in, f, step + ".carry")
    c = b2a_bits(s, c_bool, step + ".b2a")
    out = hi + c - w_hi
    if s.role == 0:
        out -= U64(1 << (62 - f))
    return out.reshape(shape)


def truncate_shares(s, share: np.ndarray, f: int, method: str | None = None) -> np.ndarray:
    """Truncate this party's share by ``f`` bits with ``method`` (default: ``s.arith.trunc``)."""
    method = method or s.arith.trunc
    a = np.asarray(share, dtype=U64)
    flat = a.reshape(-1)
    if method == "local":
        out = trunc_local(flat, f, s.role)
    elif method == "faithful":
        out = trunc_faithful(s, flat, f)
    else:
        raise ValueError(f"unknown truncation method {method!r} (use 'local' or 'faithful')")
    return out.reshape(a.shape)
