"""The millionaires' protocol over OT: XOR shares of ``[a > b]`` for P0's ``a`` and P1's
``b`` (``nbits``-bit unsigned values), batched over any number of pairs.

Construction (CrypTFlow2, Rathee et al., eprint 2020/1002, section 3.1 / Algorithm 1,
with the leaner variants of Cheetah, Huang et al., eprint 2022/207, section 5):

1. Leaves.  ``a`` and ``b`` are cut into ``q = ceil(nbits / m)`` digits of ``m`` bits
   (least significant first; the top digit may be narrower).  Per digit one
   1-out-of-2^w OT with P0 as sender and P1 choosing with its digit ``b_j``: P0
   draws random bits ``r_gt, r_eq`` (its shares) and offers, for every ``v``,
   ``[a_j > v] ^ r_gt`` and ``[a_j = v] ^ r_eq``; P1 obtains its shares of
   ``gt_j = [a_j > b_j]`` and ``eq_j = [a_j = b_j]``.  The 1-out-of-2^w OT is built
   from ``w`` random 1-out-of-2 OTs with choice bits = the bits of ``b_j`` (Naor-Pinkas
   style, each entry padded by one key bit pair per OT; see ``_ext/millionaire.pyx``).
   Digit 0 needs no equality bit (lean leaf: 2^w instead of 2^(w+1) message bits).
2. Tree.  ``gt(hi, lo) = gt_hi ^ eq_hi gt_lo`` and ``eq(hi, lo) = eq_hi eq_lo`` (the two
   cases are exclusive, so XOR is OR), pairing adjacent nodes level by level:
   ``ceil(log2 q)`` levels, ``q - 1`` nodes.  The two ANDs of a node share the operand
   ``eq_hi``: one *correlated* bit triple ``(a; b, b'; ab, ab')`` serves both (Cheetah's
   correlated triples; 3 opened bits instead of 4).  The node holding digit 0 never
   needs its equality bit (1 AND).  A level is one exchange of the opened bits.
3. Bit triples from random OT (Asharov et al., eprint 2013/552, section 4.1 /
   Gilboa-style cross terms): ``(a0 ^ a1)(b0 ^ b1) = a0 b0 ^ a1 b1 ^ a1 b0 ^ a0 b1``;
   for ``a1 b0`` a random OT with P0 sending (P0's ``b0`` = the XOR of its two keys'
   low two bits, P1 choosing with ``a1``), for ``a0 b1`` one with P1 sending.
   Two ROTs per node whatever the width of ``b``.

Rounds (no matter how many pairs): P1 -> P0 (random-OT extension for the leaves and
one triple direction), P0 -> P1 (the other triple direction, the leaf table, the
first opening), then one exchange per remaining tree level: ``2 + 2 ceil(log2 q)``
direction runs as P1's channel counts them (``1 + 2 ceil(log2 q)`` for P0).  Large batches stream in chunks of
``chunk_elements(...)`` pairs inside that same structure (memory stays bounded: only
the shares, 2 bits per digit, outlive a chunk).

Costs (:func:`millionaire_costs`): ``nbits`` leaf ROTs + ``2 (q - 1)`` triple ROTs per
pair, ``sum_j c_j 2^w_j`` leaf message bits (``c_0 = 1``, else 2) and
``2 (3 (q - 1) - L)`` opened bits (``L`` = levels) per pair.  With IKNP a ROT
costs 16 bytes: at ``nbits = 63, m = 4`` that is 1008 + 480 + 60 + 11 = 1559 bytes.

Security (semi-honest, simulatable views): P1 receives the leaf table, every entry
of which except the chosen one is masked by a key bit pair of a random OT it did
not choose (uniform given its view), and the chosen one is masked by P0's fresh
share bits; P0 receives only OT-extension messages (simulatable by the OT's
security) and opened values ``x ^ a`` with uniformly random triple shares ``a``
(one-time pads), and vice versa for P1.  Outputs are XOR shares, uniform to each
party on its own.
"""
from __future__ import annotations

import weakref

import numpy as np

from .._ext import millionaire as _mk
from .._ext import ot as _otk
from ..errors import ProtocolError

__all__ = ["millionaire_gt", "millionaire_costs", "tree_levels", "DIGIT", "ROT_CHUNK"]

U64 = np.uint64
DIGIT = 4                  # m: bits per leaf digit (1-out-of-16 OT)
ROT_CHUNK = 1 << 21        # random OTs per streamed chunk (two 32 MiB key arrays at the sender; large
                           # enough to move a silent-OT source to its main parameter set at once)
IKNP_HEADER = 32           # bytes of an IKNP batch header
IKNP_CHUNK = 1 << 16       # OTs per u-matrix message of a one-way IKNP flavour


def tree_levels(q: int) -> list[int]:
    """Nodes (pairs combined) per tree level for ``q`` leaves."""
    out = []
    while q > 1:
        out.append(q // 2)
        q = q // 2 + q % 2
    return out


def _check(nbits, m):
    if isinstance(nbits, bool) or not 1 <= int(nbits) <= 64:
        raise ValueError(f"nbits must be in [1, 64], got {nbits!r}")
    if isinstance(m, bool) or not 1 <= int(m) <= 5:
        raise ValueError(f"digit width m must be in [1, 5], got {m!r}")
    return int(nbits), int(m)


def chunk_elements(nbits: int, m: int = DIGIT) -> int:
    q = -(-nbits // m)
    return max(1, ROT_CHUNK // (nbits + 2 * (q - 1)))


def _iknp_rot_bytes(n_rot: int) -> int:
    """Bytes of one IKNP random-OT batch of ``n_rot`` (receiver -> sender, header + u)."""
    tot = IKNP_HEADER
    for off in range(0, n_rot, IKNP_CHUNK):
        tot += int(_otk.ubytes(min(IKNP_CHUNK, n_rot - off)))
    return tot


def millionaire_costs(n: int, nbits: int, m: int = DIGIT) -> dict:
    """Exact counts of one :func:`millionaire_gt` call on ``n`` pairs, computable by both
    parties: random OTs per sender, leaf message bytes, opened bits, and the bytes
    both ways with IKNP as the random-OT source (``bytes_p0``: sent by P0,
    ``bytes_p1``: by P1); ``rounds``: direction runs as P1 counts them."""
    nbits, m = _check(nbits, m)
    q = -(-nbits // m)
    lv = tree_levels(q)
    T = q - 1
    L = len(lv)
    out = {"rot_p0_sends": 0, "rot_p1_sends": 0, "leaf_bytes": 0, "open_bytes": 0,
           "bytes_p0": 0, "bytes_p1": 0, "levels": L, "rounds_p0": 0, "rounds_p1": 0}
    if n == 0:
        return out
    ch = chunk_elements(nbits, m)
    for off in range(0, n, ch):
        c = min(ch, n - off)
        out["rot_p0_sends"] += c * (nbits + T)
        out["rot_p1_sends"] += c * T
        out["leaf_bytes"] += int(_mk.leaf_bytes(c, nbits, m))
        out["bytes_p1"] += _iknp_rot_bytes(c * nbits) + (_iknp_rot_bytes(c * T) if T else 0)
        out["bytes_p0"] += _iknp_rot_bytes(c * T) if T else 0
    out["bytes_p0"] += out["leaf_bytes"]
    for p in lv:
        ob = (n * (3 * p - 1) + 7) // 8
        out["open_bytes"] += ob
    out["bytes_p0"] += out["open_bytes"]
    out["bytes_p1"] += out["open_bytes"]
    # P1: send (ROTs) | recv (triple ROTs, leaves, P0's opening 1) | then send, recv per
    # level (its openings of levels k and k + 1 share a run); P0: recv | send | recv,
    # then send, recv per further level
    out["rounds_p0"] = 2 * L + 1 if L else 2
    out["rounds_p1"] = 2 * L + 2 if L else 2
    return out


# ---------------------------------------------------------------------- random OT, random choices

TWEAK_DOMAIN = 0x4D        # 'M': hashing of random COTs into random OTs here (eprint 2019/074 tweaks)
_HASH_INDEX: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _next_index(s, sender_role: int, n: int) -> int:
    """Running hash index of one direction in session ``s`` (the same on both sides: both
    call in the same order), so no (tweak, delta) pair repeats, whichever OT source of
    the session (or wrapper around it) produced the COTs."""
    d = _HASH_INDEX.setdefault(s, {})
    i = d.get(sender_role, 0)
    d[sender_role] = i + n
    return i


def _tweak_hi(sender_role: int) -> int:
    return (TWEAK_DOMAIN << 56) | (sender_role << 48)


def random_rot_send(s, n: int):
    """``n`` random OTs with random choices, as sender: ``(k0, k1)`` uint8[n, 16].  From the
    source's native random-choice COTs (``send_rcot``: free with silent OT) hashed
    with TCCR when it has them, else its random OTs."""
    ot = s.ot
    if not hasattr(ot, "send_rcot"):
        return ot.send_rot(n)
    q, delta = ot.send_rcot(n)
    k0, k1 = np.empty((n, 16), np.uint8), np.empty((n, 16), np.uint8)
    if n:
        _otk.hash2_rows(np.ascontiguousarray(q), np.ascontiguousarray(delta, np.uint8).reshape(-1),
                        _tweak_hi(s.role), _next_index(s, s.role, n), k0, k1)
    return k0, k1


def random_rot_recv(s, n: int):
    """Receiver side of :func:`random_rot_send`: ``(r, k_r)`` with random choice bits ``r``."""
    ot = s.ot
    if not hasattr(ot, "recv_rcot"):
        r = s.prg.random_bits(n)
        return r, ot.recv_rot(r)
    r, t = ot.recv_rcot(n)
    kb = np.empty((n, 16), np.uint8)
    if n:
        _otk.tccr_rows(np.ascontiguousarray(t), None, _tweak_hi(s.peer), _next_index(s, s.peer, n), kb)
    return np.ascontiguousarray(r, dtype=np.uint8), kb


def _low2(keys: np.ndarray) -> np.ndarray:
    return keys[:, 0] & np.uint8(3)


def _open_and(s, step, x, ys, trip, first_only_one):
    """XOR-shared ``x & y`` for each y in ``ys`` (2 at most) with a correlated triple
    (a; b bit0, b' bit1; c, c').  ``x``: uint8[n, p]; ``ys``: list of uint8[n, p]; with
    ``first_only_one`` column 0 of the second product is not computed (not opened)."""
    a, b, c = trip
    n, p = x.shape
    d = x ^ a
    e = ys[0] ^ (b & 1)
    parts = [d.reshape(-1), e.reshape(-1)]
    if len(ys) > 1:
        e2 = ys[1] ^ (b >> 1)
        parts.append((e2[:, 1:] if first_only_one else e2).reshape(-1))
    flat = np.concatenate(parts)
    packed = np.packbits(flat, bitorder="little")
    other = s.channel.exchange(step, packed)
    opened = np.unpackbits(packed ^ other, count=flat.size, bitorder="little")
    D = opened[:n * p].reshape(n, p)
    E = opened[n * p:2 * n * p].reshape(n, p)
    z = (c & 1) ^ (D & (b & 1)) ^ (E & a)
    if s.role == 0:
        z ^= D & E
    res = [z]
    if len(ys) > 1:
        if first_only_one:
            E2 = np.zeros((n, p), np.uint8)
            E2[:, 1:] = opened[2 * n * p:].reshape(n, p - 1)
        else:
            E2 = opened[2 * n * p:].reshape(n, p)
        z2 = (c >> 1) ^ (D & (b >> 1)) ^ (E2 & a)
        if s.role == 0:
            z2 ^= D & E2
        res.append(z2)
    return res


def millionaire_gt(s, value, nbits: int, step: str = "mill", *, m: int = DIGIT) -> np.ndarray:
    """XOR shares (uint8 0/1, shape ``(n,)``) of ``[a > b]``: P0 passes ``a``, P1 passes
    ``b`` (uint64 arrays of the same length ``n``, values below ``2^nbits``; both parties
    pass the same ``nbits`` and ``m``).  One batched run (see the module doc)."""
    nbits, m = _check(nbits, m)
    v = np.ascontiguousarray(value, dtype=U64).reshape(-1)
    n = v.shape[0]
    if nbits < 64 and n and int(v.max()) >> nbits:
        raise ValueError(f"millionaire: values must be below 2^{nbits}")
    if n == 0:
        return np.zeros(0, np.uint8)
    q = -(-nbits // m)
    T = q - 1
    ch = chunk_elements(nbits, m)
    spans = [(off, min(ch, n - off)) for off in range(0, n, ch)]
    gt = np.empty((n, q), np.uint8)
    eq = np.empty((n, q), np.uint8)
    ta = np.empty((n, T), np.uint8)        # triple a (1 bit), b (2 bits), c (2 bits), per node
    tb = np.empty((n, T), np.uint8)
    tc = np.empty((n, T), np.uint8)
    ot = s.ot
    if s.role == 0:
        # phase A: receive P1's random-OT extensions (leaves; triple cross term a1 b0)
        tables = []
        for off, c in spans:
            k0, k1 = ot.send_rot(c * nbits)
            masks = s.prg.random_uint8(c * q) & np.uint8(3)
            msg = np.zeros(int(_mk.leaf_bytes(c, nbits, m)), np.uint8)
            _mk.leaf_send(v[off:off + c], nbits, m, k0, k1, masks, msg)
            tables.append(msg)
            gt[off:off + c] = (masks & 1).reshape(c, q)
            eq[off:off + c] = (masks >> 1).reshape(c, q)
            if T:
                k0, k1 = random_rot_send(s, c * T)
                tb[off:off + c] = (_low2(k0) ^ _low2(k1)).reshape(c, T)        # b0
                tc[off:off + c] = _low2(k0).reshape(c, T)                      # share of a1 b0
        # phase B: extend the other triple direction, send the leaf tables
        if T:
            for off, c in spans:
                a0, kc = random_rot_recv(s, c * T)
                ta[off:off + c] = a0.reshape(c, T)
                tc[off:off + c] ^= _low2(kc).reshape(c, T)                    # share of a0 b1
        for msg in tables:
            s.channel.send(step + ".leaf", msg)
        del tables
    else:
        pads = np.empty(n * q, np.uint8)     # the pads are taken at once (keys freed), tables come later
        for off, c in spans:
            mine = v[off:off + c]
            choice = np.unpackbits(mine.view(np.uint8).reshape(c, 8), axis=1, bitorder="little")[:, :nbits]
            kb = ot.recv_rot(np.ascontiguousarray(choice).reshape(-1))
            _mk.leaf_pads(mine, nbits, m, kb, pads[off * q:(off + c) * q])
            del kb
            if T:
                a1, kc = random_rot_recv(s, c * T)
                ta[off:off + c] = a1.reshape(c, T)
                tc[off:off + c] = _low2(kc).reshape(c, T)                     # share of a1 b0
        if T:
            for off, c in spans:
                k0, k1 = random_rot_send(s, c * T)
                tb[off:off + c] = (_low2(k0) ^ _low2(k1)).reshape(c, T)        # b1
                tc[off:off + c] ^= _low2(k0).reshape(c, T)                     # share of a0 b1
        gflat, eflat = gt.reshape(-1), eq.reshape(-1)
        for off, c in spans:
            nb = int(_mk.leaf_bytes(c, nbits, m))
            msg = s.channel.recv_array(step + ".leaf", np.uint8, (nb,))
            _mk.leaf_recv(v[off:off + c], nbits, m, pads[off * q:(off + c) * q], msg,
                          gflat[off * q:(off + c) * q], eflat[off * q:(off + c) * q])
    # own part of the triple products: c_i ^= a_i b_i
    if T:
        tc ^= ta * tb
    # tree: combine adjacent nodes, digit 0 always in node 0 (no equality bit there)
    G, E = gt, eq
    col = 0
    for lvl, p in enumerate(tree_levels(q)):
        cnt = G.shape[1]
        lo, hi = slice(0, 2 * p, 2), slice(1, 2 * p, 2)
        trip = (ta[:, col:col + p], tb[:, col:col + p], tc[:, col:col + p])
        col += p
        z, z2 = _open_and(s, f"{step}.and{lvl}", np.ascontiguousarray(E[:, hi]),
                          [np.ascontiguousarray(G[:, lo]), np.ascontiguousarray(E[:, lo])], trip, True)
        nG = G[:, hi] ^ z
        nE = z2
        nE[:, 0] = 0
        if cnt % 2:
            nG = np.concatenate([nG, G[:, cnt - 1:]], axis=1)
            nE = np.concatenate([nE, E[:, cnt - 1:]], axis=1)
        G, E = nG, nE
    if G.shape != (n, 1):                                   # pragma: no cover - internal invariant
        raise ProtocolError(f"{step}: tree did not reduce to one node")
    return np.ascontiguousarray(G[:, 0])

