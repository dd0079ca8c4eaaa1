"""Hash tweaks never repeat under one delta within a session.

Every hash of a value that may be correlated with a party's global offset ``delta``
is the tweakable circular correlation-robust hash of fixed-key AES (eprint 2019/074)
with a 128-bit tweak (high word, low word).  The top byte of the high word names the
use (domain); bits 48..55 hold the sending party where a domain has both directions;
the low word is a counter.  The domains and where their counters live:

====  =====================================  =============================================
byte  use                                    low-word counter
====  =====================================  =============================================
'G'   half-gates garbling (gc/halfgates.py)  ``YaoEngine.tweak``, one per session (s.gc)
'O'   IKNP's fused hashing (ot/iknp.py)      the IKNP tile counter (128 per tile) of that
                                             source's own delta (own base OTs)
'S'   derived flavours (ot/source.py)        ``Session.take_tweaks('S', sender)``
'R'   Ferret's derived flavours              ``Session.take_tweaks('R', sender)``
'F'   Ferret's tree levels (ot/ferret.py)    ``Session.take_tweaks('F', sender)`` (+ the
                                             iteration in the high word)
'M'   millionaires' random OTs               ``Session.take_tweaks('M', sender)``
'A'   OLE seed expansion (arith/ole.py)      ``ArithContext.next_tweak`` (CR hash of fresh,
                                             independent random-OT keys, not of delta-
                                             correlated values; distinct per call anyway)
====  =====================================  =============================================

The first test checks the constants; the second runs every hashing site in one
session (Ferret over the session's IKNP, so 'O', 'R', 'F', 'M', 'G' and 'S' all hash
under the *same* delta), records every tweak each sender hashes with, per delta, and
checks that no (tweak, delta) pair occurs twice, including for two wrapper sources
around one IKNP and a second Ferret instance on the same IKNP (both shared per-object
counters before the session-wide allocator).
"""
from __future__ import annotations

import numpy as np

from ezprotocols import backends
from ezprotocols._ext import ot as otk
from ezprotocols._ext import ring
from ezprotocols.arith import ole
from ezprotocols.gc import halfgates
from ezprotocols.ot import ferret, iknp, source
from ezprotocols.ot.ferret import Ferret
from ezprotocols.protocols import millionaire
from ezprotocols.runner import run_pair

from _cot_only import CotOnly          # the session's IKNP COTs (same delta), flavours derived in 'S'

DOMAINS = {
    "G": halfgates.TWEAK_HI >> 56,
    "O": iknp.TWEAK_DOMAIN,
    "S": source.TWEAK_DOMAIN,
    "R": Ferret.tweak_domain,
    "F": ferret.EXT_DOMAIN,
    "M": millionaire.TWEAK_DOMAIN,
    "A": ole.TWEAK_DOMAIN >> 56,
}


def test_domain_constants_are_distinct_bytes_in_the_top_byte():
    assert sorted(DOMAINS) == sorted(chr(v) for v in DOMAINS.values())   # byte = the ASCII letter
    assert len(set(DOMAINS.values())) == len(DOMAINS)
    assert halfgates.TWEAK_HI & ((1 << 56) - 1) == 0
    assert ole.TWEAK_DOMAIN & ((1 << 56) - 1) == 0
    for role in (0, 1):
        # the sender sits in bits 48..55, below the domain byte
        assert iknp._tweak_hi(role) == (ord("O") << 56) | (role << 48)
        assert millionaire._tweak_hi(role) == (ord("M") << 56) | (role << 48)


def _ot_flavours(s, src, sender, n, rng_seed):
    """rot, chosen (40-byte messages: 3 pad blocks) and additive OT from ``src``, ``sender``
    sending; returns a check value (the receiver's results must match)."""
    rng = np.random.default_rng(rng_seed)
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    m0 = rng.integers(0, 256, (n, 40), dtype=np.uint8)
    m1 = rng.integers(0, 256, (n, 40), dtype=np.uint8)
    c = rng.integers(0, 2**63, n, dtype=np.uint64)
    if s.role == sender:
        k0, k1 = src.send_rot(n)
        src.send(m0, m1)
        x = src.send_acot(c)
        return ("s", k0, k1, x)
    kb = src.recv_rot(bits)
    m = src.recv(bits, 40)
    y = src.recv_acot(bits)
    return ("r", bits, kb, m, y)


def _check_flavours(a, b, n, rng_seed):
    snd, rcv = (a, b) if a[0] == "s" else (b, a)
    _, k0, k1, x = snd
    _, bits, kb, m, y = rcv
    rng = np.random.default_rng(rng_seed)
    rng.integers(0, 2, n, dtype=np.uint8)
    m0 = rng.integers(0, 256, (n, 40), dtype=np.uint8)
    m1 = rng.integers(0, 256, (n, 40), dtype=np.uint8)
    c = rng.integers(0, 2**63, n, dtype=np.uint64)
    sel = bits.astype(bool)
    assert np.array_equal(kb, np.where(sel[:, None], k1, k0))
    assert np.array_equal(m, np.where(sel[:, None], m1, m0))
    assert np.array_equal(y - x, np.where(sel, c, 0).astype(np.uint64))


def test_no_tweak_repeats_under_one_delta_in_a_session(monkeypatch):
    used = []           # (delta bytes, hi, lo, count): every sender-side hash under a delta
    ole_hi = []         # tweak_hi of every OLE expansion call (sender side)

    def spy(name, rec):
        real = getattr(otk, name)

        def f(*a):
            rec(*a)
            return real(*a)
        monkeypatch.setattr(otk, name, f)

    def rec_hash2(x, delta, hi, lo, *rest):
        used.append((bytes(delta), hi, lo, x.shape[0]))

    def rec_chosen(q, delta, hi, lo, m0, m1, y):
        for k in range((y.shape[2] + 15) // 16):        # pad block k: tweak (hi | k, lo + j)
            used.append((bytes(delta), hi | k, lo, q.shape[0]))

    spy("hash2_rows", rec_hash2)
    spy("chosen_send", rec_chosen)
    spy("acot_send", rec_hash2)

    real_garble = halfgates.garble

    def garble(circuit, batch, inputs, delta, tweak, send, **kw):
        used.append((bytes(np.asarray(delta, np.uint8)), halfgates.TWEAK_HI, tweak, 2 * circuit.n_and * batch))
        return real_garble(circuit, batch, inputs, delta, tweak, send, **kw)
    monkeypatch.setattr(halfgates, "garble", garble)

    real_vole_send = ring.vole_send

    def vole_send(*a):
        ole_hi.append(a[-1])
        return real_vole_send(*a)
    monkeypatch.setattr(ring, "vole_send", vole_send)

    backends.register("ot", "wrap-a", CotOnly)
    backends.register("ot", "wrap-b", CotOnly)
    n = 3000

    def party(s):
        checks = []
        second = Ferret(s, iknp=s.engine("ot", "iknp"))        # another Ferret on the same delta
        srcs = [s.ot, s.engine("ot", "iknp"), s.engine("ot", "wrap-a"), s.engine("ot", "wrap-b"), second]
        for sender in (0, 1):
            for i, src in enumerate(srcs):
                checks.append(_ot_flavours(s, src, sender, n, 10 * sender + i))
            # millionaires (random OTs hashed in 'M', both directions inside) and garbling
            share = s.prg.random_uint64(500)
            s.compare.msb(share, 64)
            s.engine("compare", "gc").msb(share, 64, garbler=sender)
            # OLE over the session's OT ('R' random OTs, 'A' expansion)
            ole.ole_accumulate(s, receiver=1 - sender, nbits=8, ci=np.arange(4), ai=np.arange(4), n_acc=4,
                               m=3, values=np.arange(4, dtype=np.uint64) if s.role != sender else None,
                               corr=np.ones((4, 3), np.uint64) if s.role == sender else None)
        deltas = (bytes(np.asarray(s.ot.delta, np.uint8)), bytes(np.asarray(second.delta, np.uint8)),
                  bytes(np.asarray(s.engine("ot", "iknp").delta, np.uint8)))
        return checks, deltas

    try:
        (c0, d0), (c1, d1) = run_pair(party, party, ot="ferret", compare="ot", timeout=600)
    finally:
        del backends.KINDS["ot"]["wrap-a"], backends.KINDS["ot"]["wrap-b"]
    for a, b, i in zip(c0, c1, range(len(c0))):
        _check_flavours(a, b, n, 10 * (i // 5) + i % 5)
    # Ferret, the second Ferret and the wrappers all hash under the IKNP delta of each party
    assert len(set(d0)) == 1 and len(set(d1)) == 1 and d0[0] != d1[0]

    for delta in (d0[0], d1[0]):
        mine = [u for u in used if u[0] == delta]
        assert {chr(hi >> 56) for _, hi, _, _ in mine} == set("GORSFM"), "every domain hashed under this delta"
        spans: dict[int, list[tuple[int, int]]] = {}
        for _, hi, lo, cnt in mine:
            assert cnt > 0 and lo + cnt <= 1 << 64
            spans.setdefault(hi, []).append((lo, lo + cnt))
        for hi, sp in spans.items():
            sp.sort()
            overlaps = [(a, b) for a, b in zip(sp, sp[1:]) if b[0] < a[1]]
            assert not overlaps, f"tweak (hi={hi:#x}) reused under one delta: {overlaps[:3]}"
        # the 'F' tree hashes of both Ferret instances share (hi = F, sender, iteration) words
        assert any(len(sp) > 1 for hi, sp in spans.items() if hi >> 56 == ord("F"))
    assert len(ole_hi) == 2 and len(set(ole_hi)) == 2 and all(h >> 56 == ord("A") for h in ole_hi)
