"""The millionaires' protocol over OT: XOR shares of ``[a > b]`` for P0's ``a`` and P1's
``b`` (``nbits``-bit unsigned values), batched over any number of pairs.

Construction (CrypTFlow2, Rathee et al., eprint 2020/1002, section 3.1 / Algorithm 1,
with the leaner variants of Cheetah, Huang et al., eprint 2022/207):

1. Leaves.  One party, the *leaf sender* S (:func:`leaf_sender`: P1 for an even number
   of tree levels, P0 for an odd one), holds ``A`` and the other, R, holds ``B``, with
   ``[a > b] = [A > B]``: ``A = a, B = b`` when S is P0, ``A = ~b, B = ~a`` (complements
   within ``nbits``) when S is P1.  Both are cut into ``q = ceil(nbits / m)`` digits of
   ``m`` bits (least significant first; the top digit may be narrower); per digit one
   1-out-of-2^w OT with S sending and R choosing with its digit ``B_j``: S draws random
   bits ``r_gt, r_eq`` (its shares) and offers, for every ``v``, ``[A_j > v] ^ r_gt``
   and ``[A_j = v] ^ r_eq``; R obtains its shares of ``gt_j = [A_j > B_j]`` and
   ``eq_j = [A_j = B_j]``.  The 1-out-of-2^w OT is built from ``w`` random 1-out-of-2
   OTs with choice bits = the bits of ``B_j`` (Naor-Pinkas style, each entry padded by
   one key bit pair per OT; see ``_ext/millionaire.pyx``).  Digit 0 needs no equality
   bit (lean leaf: 2^w instead of 2^(w+1) message bits).  S's leaf shares are its own
   random bits, so it opens the first tree level in the message with the tables.
2. Tree.  ``gt(hi, lo) = gt_hi ^ eq_hi gt_lo`` and ``eq(hi, lo) = eq_hi eq_lo`` (the two
   cases are exclusive, so XOR is OR), pairing adjacent nodes level by level:
   ``ceil(log2 q)`` levels, ``q - 1`` nodes.  The two ANDs of a node share the operand
   ``eq_hi``: one *correlated* bit triple ``(a; b, b'; ab, ab')`` serves both (Cheetah's
   correlated triples; 3 opened bits instead of 4).  The node holding digit 0 never
   needs its equality bit (1 AND).
3. Bit triples from random OT (Asharov et al., eprint 2013/552; Gilboa-style cross
   terms): ``(a0 ^ a1)(b0 ^ b1) = a0 b0 ^ a1 b1 ^ a1 b0 ^ a0 b1``;
   for ``a_R b_S`` a random OT with S sending (S's ``b_S`` = the XOR of its two keys'
   low two bits, R choosing with ``a_R``), for ``a_S b_R`` one with R sending.
   Two ROTs per node whatever the width of ``b``; the choices are random, so a
   silent-OT source serves them from its native random COTs (no choice bits sent).

Rounds (no matter how many pairs): R -> S (random OTs of the leaves and of one
triple direction), S -> R (the other triple direction, the leaf tables, S's
level-0 opening), then the levels with *pipelined openings*: each one-way message
carries the sender's openings of two consecutive levels (the one the receiver needs
to finish level ``k - 1`` and the next), so ``L = ceil(log2 q)`` levels take ``L``
more one-way messages instead of ``L`` exchanges: ``L + 2`` direction runs in all
(6 at 63 bits) on both sides.  Large batches stream in chunks of
``chunk_elements(...)`` pairs inside that same structure (memory stays bounded: only
the shares, 2 bits per digit, outlive a chunk).

Costs (:func:`millionaire_costs`): ``nbits`` leaf ROTs + ``2 (q - 1)`` triple ROTs per
pair, ``sum_j c_j 2^w_j`` leaf message bits (``c_0 = 1``, else 2) and
``2 (3 (q - 1) - L)`` opened bits (``L`` = levels) per pair.  With IKNP a ROT
costs 16 bytes: at ``nbits = 63`` that is 1008 + 480 + 60 + 10 = 1558 bytes with ``m = 4`` and
1008 + 384 + 94 + 8 = 1494 with ``m = 5`` (:func:`best_digit` picks the cheaper).

Security (semi-honest, simulatable views): R receives the leaf table, every entry
of which except the chosen one is masked by a key bit pair of a random OT it did
not choose (uniform given its view), and the chosen one is masked by S's fresh
share bits; S receives only OT-extension messages (simulatable by the OT's
security); both receive opened values ``x ^ a`` with uniformly random triple shares
``a`` (one-time pads; pipelining changes only when they are sent).  Outputs are XOR shares, uniform to each
party on its own.
"""
from __future__ import annotations

import numpy as np

from .._ext import millionaire as _mk
from .._ext import ot as _otk
from ..errors import ProtocolError
from ..ot.iknp import CHUNK as IKNP_CHUNK   # OTs per u-matrix message of a one-way IKNP flavour

__all__ = ["millionaire_gt", "millionaire_costs", "pair_bytes", "best_digit", "tree_levels", "DIGIT", "ROT_CHUNK"]

U64 = np.uint64
_MASK64 = U64(0xFFFFFFFFFFFFFFFF)
DIGIT = 4                  # m: bits per leaf digit (1-out-of-16 OT)
ROT_CHUNK = 1 << 21        # random OTs per streamed chunk (two 32 MiB key arrays at the sender; large
                           # enough to move a silent-OT source to its main parameter set at once)
IKNP_HEADER = 32           # bytes of an IKNP batch header (uint64[4])


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


def pair_bytes(nbits: int, m: int, cot_bytes: float = 16.0) -> float:
    """Bytes per compared pair (both directions, large batches) at digit width ``m`` when
    a random OT costs ``cot_bytes``; with a silent source (``cot_bytes < 4``) a chosen
    leaf choice costs one more bit (derandomisation)."""
    nbits, m = _check(nbits, m)
    q = -(-nbits // m)
    ots = nbits + 2 * (q - 1)
    opened = 2 * sum(3 * p - 1 for p in tree_levels(q)) / 8
    derand = nbits / 8 if cot_bytes < 4 else 0.0
    return cot_bytes * ots + _mk.leaf_bits_per_element(nbits, m) / 8 + opened + derand


def best_digit(nbits: int, cot_bytes: float = 16.0) -> int:
    """The digit width in 3..5 that moves the fewest bytes (ties: fewer tree levels);
    both parties compute it from public values."""
    return min((3, 4, 5), key=lambda m: (round(pair_bytes(nbits, m, cot_bytes), 6),
                                         len(tree_levels(-(-nbits // m)))))


def millionaire_costs(n: int, nbits: int, m: int = DIGIT) -> dict:
    """Exact counts of one :func:`millionaire_gt` call on ``n`` pairs, computable by both
    parties: random OTs per sender, leaf message bytes, opened bits, and the bytes
    both ways with IKNP as the random-OT source (``bytes_p0``: sent by P0,
    ``bytes_p1``: by P1); ``rounds_p0``/``rounds_p1``: direction runs as each party
    counts them (the same for any ``n > 0``)."""
    nbits, m = _check(nbits, m)
    q = -(-nbits // m)
    lv = tree_levels(q)
    T = q - 1
    L = len(lv)
    S = leaf_sender(q)
    R = 1 - S
    out = {"leaf_sender": S, "rot_p0_sends": 0, "rot_p1_sends": 0, "leaf_bytes": 0, "open_bytes": 0,
           "bytes_p0": 0, "bytes_p1": 0, "levels": L, "rounds_p0": 0, "rounds_p1": 0}
    if n == 0:
        return out
    ch = chunk_elements(nbits, m)
    for off in range(0, n, ch):
        c = min(ch, n - off)
        out[f"rot_p{S}_sends"] += c * (nbits + T)
        out[f"rot_p{R}_sends"] += c * T
        out["leaf_bytes"] += int(_mk.leaf_bytes(c, nbits, m))
        out[f"bytes_p{R}"] += _iknp_rot_bytes(c * nbits) + (_iknp_rot_bytes(c * T) if T else 0)
        out[f"bytes_p{S}"] += _iknp_rot_bytes(c * T) if T else 0
    out[f"bytes_p{S}"] += out["leaf_bytes"]
    for p in lv:
        out["open_bytes"] += (n * (3 * p - 1) + 7) // 8
    out["bytes_p0"] += out["open_bytes"]
    out["bytes_p1"] += out["open_bytes"]
    # R -> S (random OTs) | S -> R (random OTs, tables, level-0 opening) | then one
    # one-way message per level, alternating (see _pingpong): L + 2 runs on both sides
    out["rounds_p0"] = out["rounds_p1"] = L + 2 if L else 2
    return out


# ---------------------------------------------------------------------- random OT, random choices

TWEAK_DOMAIN = 0x4D        # 'M': hashing of random COTs into random OTs here (eprint 2019/074 tweaks)


def _next_index(s, sender_role: int, n: int) -> int:
    """Running hash index of one direction in session ``s`` (the session-wide counter of
    this domain, the same on both sides: both call in the same order), so no (tweak,
    delta) pair repeats, whichever OT source of the session (or wrapper around it)
    produced the COTs."""
    return s.take_tweaks(TWEAK_DOMAIN, sender_role, n)


def _tweak_hi(sender_role: int) -> int:
    return (TWEAK_DOMAIN << 56) | (sender_role << 48)


def _native_rcot(ot) -> bool:
    """Whether random-choice COTs are the source's cheap native output (silent OT: its
    ``cot_bytes`` is small); IKNP derives them at the price of a COT, and its fused
    random-OT kernel is then the faster way to the same bytes."""
    return hasattr(ot, "send_rcot") and getattr(ot, "cot_bytes", 16) < 4


def random_rot_send(s, n: int):
    """``n`` random OTs with random choices, as sender: ``(k0, k1)`` uint8[n, 16].  From the
    source's native random-choice COTs (``send_rcot``: free with silent OT) hashed
    with TCCR when it has them (:func:`_native_rcot`), else its random OTs."""
    ot = s.ot
    if not _native_rcot(ot):
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
    if not _native_rcot(ot):
        r = s.prg.random_bits(n)
        return r, ot.recv_rot(r)
    r, t = ot.recv_rcot(n)
    kb = np.empty((n, 16), np.uint8)
    if n:
        _otk.tccr_rows(np.ascontiguousarray(t), None, _tweak_hi(s.peer), _next_index(s, s.peer, n), kb)
    return np.ascontiguousarray(r, dtype=np.uint8), kb


def _low2(keys: np.ndarray) -> np.ndarray:
    return keys[:, 0] & np.uint8(3)


class _Tree:
    """The AND tree of one run, level by level: :meth:`opening` gives this party's
    opened bits of level ``k`` (Beaver: ``d = eq_hi ^ a``, ``e = gt_lo ^ b``,
    ``e' = eq_lo ^ b'``; no ``e'`` for node 0), :meth:`finish` combines them with the
    peer's.  Level ``k``'s opening needs level ``k - 1`` finished."""

    def __init__(self, role, gt, eq, ta, tb, tc):
        self.role = role
        self.G, self.E = gt, eq
        self.ta, self.tb, self.tc = ta, tb, tc
        self.levels = tree_levels(gt.shape[1])
        self.col = np.concatenate([[0], np.cumsum(self.levels)]).astype(int)
        self.mine = {}

    def nbytes(self, k: int) -> int:
        return (self.G.shape[0] * (3 * self.levels[k] - 1) + 7) // 8

    def _operands(self, k):
        p = self.levels[k]
        c0 = self.col[k]
        a, b, c = (t[:, c0:c0 + p] for t in (self.ta, self.tb, self.tc))
        x = self.E[:, 1:2 * p:2]
        y = self.G[:, 0:2 * p:2]
        y2 = self.E[:, 2:2 * p:2]          # eq of the low node, nodes 1.. (node 0 needs none)
        return p, a, b, c, x, y, y2

    def opening(self, k: int) -> np.ndarray:
        p, a, b, c, x, y, y2 = self._operands(k)
        flat = np.concatenate([(x ^ a).reshape(-1), (y ^ (b & 1)).reshape(-1), (y2 ^ (b[:, 1:] >> 1)).reshape(-1)])
        packed = np.packbits(flat, bitorder="little")
        self.mine[k] = packed
        return packed

    def finish(self, k: int, theirs: np.ndarray) -> None:
        p, a, b, c, x, y, y2 = self._operands(k)
        n = self.G.shape[0]
        opened = np.unpackbits(self.mine[k] ^ theirs, count=n * (3 * p - 1), bitorder="little")
        D = opened[:n * p].reshape(n, p)
        E1 = opened[n * p:2 * n * p].reshape(n, p)
        E2 = np.zeros((n, p), np.uint8)
        E2[:, 1:] = opened[2 * n * p:].reshape(n, p - 1)
        z = (c & 1) ^ (D & (b & 1)) ^ (E1 & a)
        z2 = (c >> 1) ^ (D & (b >> 1)) ^ (E2 & a)
        if self.role == 0:
            z ^= D & E1
            z2 ^= D & E2
        z2[:, 0] = 0
        cnt = self.G.shape[1]
        nG, nE = self.G[:, 1:2 * p:2] ^ z, z2
        if cnt % 2:
            nG = np.concatenate([nG, self.G[:, cnt - 1:]], axis=1)
            nE = np.concatenate([nE, self.E[:, cnt - 1:]], axis=1)
        self.G, self.E = nG, nE


def leaf_sender(q: int) -> int:
    """The party that sends the leaf tables (and opens level 0 first): chosen so that P0
    receives the last opening (it then answers at once, e.g. in the multiplexer that
    follows a sign bit) and, in a chain of comparisons, P1's first message follows its
    last one: P1 with an even number of levels, P0 with an odd one."""
    return 0 if len(tree_levels(q)) % 2 else 1


def _pingpong(s, tree: _Tree, step: str, first: int) -> None:
    """Run the tree's levels with pipelined openings: message ``i`` (from ``first`` for
    even ``i``, the other party for odd ``i``) carries the sender's openings of levels
    ``i - 1`` and ``i``; on receiving it a party finishes level ``i - 1``, opens and
    finishes level ``i`` and opens level ``i + 1``.  ``L + 1`` one-way messages for ``L``
    levels instead of ``L`` exchanges.  ``first`` must already have sent level 0."""
    L = len(tree.levels)
    ch = s.channel
    for i in range(1, L + 1):
        receiver_of_prev = s.role != (first if (i - 1) % 2 == 0 else 1 - first)
        if not receiver_of_prev:
            continue
        # we received message i - 1 (levels i - 2 and i - 1 of the peer) and send message i
        for k in (i - 2, i - 1):
            if 0 <= k < L:
                theirs = ch.recv_array(f"{step}.open{k}", np.uint8, (tree.nbytes(k),))
                if k not in tree.mine:
                    tree.opening(k)
                tree.finish(k, theirs)
        for k in (i - 1, i):
            if 0 <= k < L:
                if k not in tree.mine:
                    tree.opening(k)
                ch.send(f"{step}.open{k}", tree.mine[k])
    # the receiver of the last message finishes the last level
    if L and s.role != (first if L % 2 == 0 else 1 - first):
        k = L - 1
        theirs = ch.recv_array(f"{step}.open{k}", np.uint8, (tree.nbytes(k),))
        tree.finish(k, theirs)


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
    S = leaf_sender(q)
    if S == 1:
        # [a > b] = [~b > ~a] (complements within nbits): P1 offers [~b_j > v], P0 chooses with ~a_j
        v = (_MASK64 >> U64(64 - nbits)) - v
    ch = chunk_elements(nbits, m)
    spans = [(off, min(ch, n - off)) for off in range(0, n, ch)]
    gt = np.empty((n, q), np.uint8)
    eq = np.empty((n, q), np.uint8)
    ta = np.empty((n, T), np.uint8)        # triple a (1 bit), b (2 bits), c (2 bits), per node
    tb = np.empty((n, T), np.uint8)
    tc = np.empty((n, T), np.uint8)
    ot = s.ot
    if s.role != S:
        # phase 1 (receiver -> sender): random OTs of the leaves (choices: the bits of the
        # receiver's value) and of one triple cross term
        pads = np.empty(n * q, np.uint8)     # pads of the chosen entries, taken at once (keys freed)
        for off, c in spans:
            mine = v[off:off + c]
            choice = np.unpackbits(mine.view(np.uint8).reshape(c, 8), axis=1, bitorder="little")[:, :nbits]
            kb = ot.recv_rot(np.ascontiguousarray(choice).reshape(-1))
            _mk.leaf_pads(mine, nbits, m, kb, pads[off * q:(off + c) * q])
            del kb
            if T:
                a_r, kc = random_rot_recv(s, c * T)
                ta[off:off + c] = a_r.reshape(c, T)
                tc[off:off + c] = _low2(kc).reshape(c, T)                     # share of a_R b_S
        # phase 2 (sender -> receiver): the other triple direction, the leaf tables, the
        # sender's level-0 opening
        if T:
            for off, c in spans:
                k0, k1 = random_rot_send(s, c * T)
                tb[off:off + c] = (_low2(k0) ^ _low2(k1)).reshape(c, T)        # b_R
                tc[off:off + c] ^= _low2(k0).reshape(c, T)                     # share of a_S b_R
        gflat, eflat = gt.reshape(-1), eq.reshape(-1)
        for off, c in spans:
            nb = int(_mk.leaf_bytes(c, nbits, m))
            msg = s.channel.recv_array(step + ".leaf", np.uint8, (nb,))
            _mk.leaf_recv(v[off:off + c], nbits, m, pads[off * q:(off + c) * q], msg,
                          gflat[off * q:(off + c) * q], eflat[off * q:(off + c) * q])
        if T:
            tc ^= ta * tb
        tree = _Tree(s.role, gt, eq, ta, tb, tc)
    else:
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
                tb[off:off + c] = (_low2(k0) ^ _low2(k1)).reshape(c, T)        # b_S
                tc[off:off + c] = _low2(k0).reshape(c, T)                      # share of a_R b_S
        if T:
            for off, c in spans:
                a_s, kc = random_rot_recv(s, c * T)
                ta[off:off + c] = a_s.reshape(c, T)
                tc[off:off + c] ^= _low2(kc).reshape(c, T)                    # share of a_S b_R
        for msg in tables:
            s.channel.send(step + ".leaf", msg)
        del tables
        if T:
            tc ^= ta * tb
        tree = _Tree(s.role, gt, eq, ta, tb, tc)
        if T:
            s.channel.send(f"{step}.open0", tree.opening(0))
    _pingpong(s, tree, step, first=S)
    G = tree.G
    if G.shape != (n, 1):                                   # pragma: no cover - internal invariant
        raise ProtocolError(f"{step}: tree did not reduce to one node")
    return np.ascontiguousarray(G[:, 0])
