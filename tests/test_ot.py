"""IKNP OT extension (ALSZ, eprint 2013/552) and its flavours: ideal-functionality
tests for every size and both directions, continuation across calls, the sender's
view, misuse and malformed peers, exact communication, the kernels against a
numpy/`cryptography` model of IKNP."""
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from ezprotocols.ot.checks import check_widths
from ezprotocols._ext import ot as K
from ezprotocols.errors import ProtocolError
from ezprotocols.ot import iknp
from ezprotocols.testing import run_pair

SIZES = [0, 1, 127, 128, 129, 10 ** 6]
BIG = 10 ** 6


def _bits(rng, n):
    return rng.integers(0, 2, n, dtype=np.uint8)


def _run(sender_role, f_send, f_recv, **kw):
    """Run with P<sender_role> as the OT sender; returns (sender result, receiver result)."""
    if sender_role == 0:
        return run_pair(f_send, f_recv, **kw)
    r_recv, r_send = run_pair(f_recv, f_send, **kw)
    return r_send, r_recv


# ----------------------------------------------------------------------------- ideal functionality

@pytest.mark.parametrize("sender", [0, 1])
def test_cot_all_sizes(rng, sender):
    bits = {n: _bits(rng, n) for n in SIZES}

    def fs(s):
        return [s.ot.send_cot(n) for n in SIZES] + [s.ot.delta.copy()]

    def fr(s):
        return [s.ot.recv_cot(bits[n]) for n in SIZES]

    rs, rr = _run(sender, fs, fr)
    delta = rs[-1]
    assert delta.shape == (16,) and delta.dtype == np.uint8 and delta[0] & 1 == 1
    seen = set()
    for n, (q, d), t in zip(SIZES, rs, rr):
        assert q.shape == t.shape == (n, 16) and q.dtype == t.dtype == np.uint8
        assert np.array_equal(d, delta)                               # one global delta per direction
        assert np.array_equal(t, q ^ (bits[n][:, None] * delta)), n
        if n:
            seen.update(bytes(r) for r in q[:1000])
    # every call continues the PRG: no row repeats across calls (2 x 10^6 rows would collide w.p. 2^-88)
    assert len(seen) == sum(min(n, 1000) for n in SIZES)


@pytest.mark.parametrize("sender", [0, 1])
def test_rot_all_sizes(rng, sender):
    bits = {n: _bits(rng, n) for n in SIZES}
    rs, rr = _run(sender, lambda s: [s.ot.send_rot(n) for n in SIZES],
                  lambda s: [s.ot.recv_rot(bits[n]) for n in SIZES])
    for n, (m0, m1), mb in zip(SIZES, rs, rr):
        assert m0.shape == m1.shape == mb.shape == (n, 16)
        assert np.array_equal(mb, np.where(bits[n][:, None] == 1, m1, m0)), n
        if n:
            # hashed: m0 ^ m1 is not the constant delta of the COT
            assert len({bytes(r) for r in (m0 ^ m1)[:100]}) == min(n, 100)


@pytest.mark.parametrize("sender", [0, 1])
@pytest.mark.parametrize("L", [16, 1, 33])
def test_chosen_all_sizes(rng, sender, L):
    sizes = SIZES if L == 16 else [0, 1, 129, 70000]
    bits = {n: _bits(rng, n) for n in sizes}
    msgs = {n: (rng.integers(0, 256, (n, L), dtype=np.uint8), rng.integers(0, 256, (n, L), dtype=np.uint8))
            for n in sizes}

    def fs(s):
        for n in sizes:
            assert s.ot.send(*msgs[n]) is None

    rs, rr = _run(sender, fs, lambda s: [s.ot.recv(bits[n], L) for n in sizes])
    for n, m in zip(sizes, rr):
        assert m.shape == (n, L) and m.dtype == np.uint8
        assert np.array_equal(m, np.where(bits[n][:, None] == 1, msgs[n][1], msgs[n][0])), n


@pytest.mark.parametrize("L", [0, 15, 17, 40])
def test_chosen_message_lengths(rng, L):
    n = 300
    b = _bits(rng, n)
    m0 = rng.integers(0, 256, (n, L), dtype=np.uint8)
    m1 = rng.integers(0, 256, (n, L), dtype=np.uint8)
    _, m = run_pair(lambda s: s.ot.send(m0, m1), lambda s: s.ot.recv(b, L))
    assert np.array_equal(m, np.where(b[:, None] == 1, m1, m0))


def test_chosen_long_messages_stream_in_small_chunks(rng):
    """L = 20000: a reply chunk holds only 128 OTs (<= 4 MiB), so 600 OTs take 5 chunks and
    the receiver's lagged read of the replies is exercised."""
    n, L = 600, 20000
    assert iknp._chunk_ots(2 * L) == 128
    b = _bits(rng, n)
    m0 = rng.integers(0, 256, (n, L), dtype=np.uint8)
    m1 = rng.integers(0, 256, (n, L), dtype=np.uint8)

    def fr(s):
        with s.phase("x"):
            m = s.ot.recv(b, L)
        return m, s.counters("x").bytes_recv - s.counters("x/ot_base").bytes_recv   # minus first-use setup

    _, (m, nrecv) = run_pair(lambda s: s.ot.send(m0, m1), fr)
    assert np.array_equal(m, np.where(b[:, None] == 1, m1, m0))
    assert nrecv == 2 * n * L


@pytest.mark.parametrize("sender", [0, 1])
def test_acot_all_sizes(rng, sender):
    bits = {n: _bits(rng, n) for n in SIZES}
    cs = {n: rng.integers(0, 2 ** 64, n, dtype=np.uint64) for n in SIZES}
    rs, rr = _run(sender, lambda s: [s.ot.send_acot(cs[n]) for n in SIZES],
                  lambda s: [s.ot.recv_acot(bits[n]) for n in SIZES])
    for n, x, y in zip(SIZES, rs, rr):
        assert x.shape == y.shape == (n,) and x.dtype == y.dtype == np.uint64
        assert np.array_equal(y, x + bits[n].astype(np.uint64) * cs[n]), n      # mod 2^64 by wrap-around


@pytest.mark.parametrize("width", [1, 7, 8, 13, 32, 63, 64])
def test_acot_widths(rng, width):
    n = 2000
    b = _bits(rng, n)
    c = rng.integers(0, 2 ** 64, n, dtype=np.uint64)
    c[:4] = [0, 2 ** 64 - 1, 2 ** 63, 1]                                   # ring extremes
    x, y = run_pair(lambda s: s.ot.send_acot(c, bits=width), lambda s: s.ot.recv_acot(b, bits=width))
    mask = np.uint64(2 ** width - 1) if width < 64 else np.uint64(2 ** 64 - 1)
    assert (x <= mask).all() and (y <= mask).all()
    assert np.array_equal(y, (x + b.astype(np.uint64) * c) & mask)
    if width >= 8:
        assert x.max() > mask // 2                                          # outputs use the full width


def test_acot_per_ot_widths_gilboa_pattern(rng):
    """Gilboa multiplication: OT i of a 64-bit product only needs 64 - i bits."""
    k = 500
    n = 64 * k
    widths = np.tile(64 - np.arange(64, dtype=np.uint8), k)
    b = _bits(rng, n)
    c = rng.integers(-2 ** 63, 2 ** 63, n, dtype=np.int64)                # signed input wraps mod 2^64

    def fs(s):
        with s.phase("acot"):
            return s.ot.send_acot(c, bits=widths), s.counters("acot").bytes_sent

    def fr(s):
        s.ot.setup()
        return s.ot.recv_acot(b, bits=widths)

    def fs2(s):
        s.ot.setup()
        return fs(s)

    (x, sent), y = run_pair(fs2, fr)
    masks = np.where(widths == 64, np.uint64(2 ** 64 - 1), (np.uint64(1) << widths.astype(np.uint64)) - np.uint64(1))
    assert np.array_equal(y, (x + b.astype(np.uint64) * c.astype(np.uint64)) & masks)
    assert (x <= masks).all()
    # only ceil(w/8) bytes per OT travel: sum over the 64 widths = 8 * (1 + ... + 8) = 288 per product
    assert sent == 288 * k


def test_both_directions_interleaved_and_setup(rng):
    n = 1000
    b0, b1 = _bits(rng, n), _bits(rng, n)

    def p0(s):
        s.ot.setup()
        base_bytes = s.counters("ot_base").bytes
        q, d = s.ot.send_cot(n)
        t = s.ot.recv_cot(b0)
        q2, _ = s.ot.send_cot(n)
        return q, d, t, q2, base_bytes

    def p1(s):
        s.ot.setup()
        t = s.ot.recv_cot(b1)
        q, d = s.ot.send_cot(n)
        t2 = s.ot.recv_cot(b1[::-1].copy())
        return t, q, d, t2

    (q0, d0, t0, q02, base_bytes), (t1, q1, d1, t12) = run_pair(p0, p1)
    assert np.array_equal(t1, q0 ^ (b1[:, None] * d0))
    assert np.array_equal(t0, q1 ^ (b0[:, None] * d1))
    assert np.array_equal(t12, q02 ^ (b1[::-1, None] * d0))
    assert not np.array_equal(d0, d1)                                      # one delta per direction
    assert d0[0] & 1 and d1[0] & 1
    # each direction: A one way, 128 B's back: (1 + 128) points in each direction
    # (Ed25519 base OT by default: 32-byte points; MODP-3072: 384-byte elements)
    assert base_bytes == 2 * 129 * 32


def test_delta_property_triggers_setup(rng):
    b = _bits(rng, 10)

    def fs(s):
        d = s.ot.delta.copy()
        q, d2 = s.ot.send_cot(10)
        return d, q, d2

    def fr(s):
        return s.ot.recv_cot(b)

    (d, q, d2), t = run_pair(fs, fr)
    assert np.array_equal(d, d2) and d[0] & 1
    assert np.array_equal(t, q ^ (b[:, None] * d))


def test_outputs_into_preallocated_buffers(rng):
    n = 5000
    b = _bits(rng, n)
    qo, to = np.zeros((n, 16), np.uint8), np.zeros((n, 16), np.uint8)
    r0, r1 = np.zeros((n, 16), np.uint8), np.zeros((n, 16), np.uint8)
    mo = np.zeros((n, 16), np.uint8)
    co = np.zeros((n, 7), np.uint8)
    m0, m1 = np.ones((n, 7), np.uint8), np.full((n, 7), 2, np.uint8)

    def fs(s):
        q, d = s.ot.send_cot(n, out=qo)
        s.ot.send_rot(n, out=(r0, r1))
        s.ot.send(m0, m1)
        return d

    def fr(s):
        s.ot.recv_cot(b, out=to)
        s.ot.recv_rot(b, out=mo)
        s.ot.recv(b, 7, out=co)

    d, _ = run_pair(fs, fr)
    assert np.array_equal(to, qo ^ (b[:, None] * d))
    assert np.array_equal(mo, np.where(b[:, None] == 1, r1, r0))
    assert np.array_equal(co, np.where(b[:, None] == 1, m1, m0))


def test_tcp_two_processes(rng):
    n = 200_000
    b = _bits(rng, n)
    (q, d), t = run_pair(lambda s: s.ot.send_cot(n), lambda s: s.ot.recv_cot(b), transport="tcp")
    assert np.array_equal(t, q ^ (b[:, None] * d))


# ----------------------------------------------------------------------------- communication

def test_exact_communication(rng):
    n, L = 1000, 20
    b = _bits(rng, n)
    m = rng.integers(0, 256, (2, n, L), dtype=np.uint8)

    def fs(s):
        s.ot.setup()
        out = {}
        for name, f in (("cot", lambda: s.ot.send_cot(n)), ("rot", lambda: s.ot.send_rot(n)),
                        ("chosen", lambda: s.ot.send(m[0], m[1])),
                        ("acot", lambda: s.ot.send_acot(np.arange(n, dtype=np.uint64), bits=20))):
            with s.phase(name):
                f()
            c = s.counters(name)
            out[name] = (c.bytes_recv, c.bytes_sent, c.rounds)
        return out

    def fr(s):
        s.ot.setup()
        out = {}
        for name, f in (("cot", lambda: s.ot.recv_cot(b)), ("rot", lambda: s.ot.recv_rot(b)),
                        ("chosen", lambda: s.ot.recv(b, L)), ("acot", lambda: s.ot.recv_acot(b, bits=20))):
            with s.phase(name):
                f()
            c = s.counters(name)
            out[name] = (c.bytes_sent, c.bytes_recv, c.rounds)
        return out

    hdr = 32
    u = K.ubytes(n)
    assert u == 16 * n                                                    # n % 8 == 0: exactly 16 B/OT
    expected = {"cot": (hdr + u, 0, 1), "rot": (hdr + u, 0, 1), "chosen": (hdr + u, 2 * n * L, 2),
                "acot": (hdr + u, 3 * n, 2)}
    s_view, r_view = run_pair(fs, fr)
    assert s_view == expected
    assert r_view == expected
    assert K.ubytes(129) == 16 * 128 + 128 * 1 and K.ubytes(1) == 128 and K.ubytes(0) == 0


# ----------------------------------------------------------------------------- the sender's view

def _wilson_hilferty(df, z):
    """Chi-square quantile by the Wilson-Hilferty approximation (z: standard normal quantile)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * np.sqrt(a)) ** 3


def test_sender_view_independent_of_choices():
    """The u matrix the sender receives is distributed the same for all-0, all-1 and
    alternating choice vectors: per-column bit frequencies and a two-sample chi-square
    on byte values.  Thresholds: |z| < 7 per column (128 columns x 3 views, false
    failure < 1e-9) and chi-square quantile at 1 - 1e-9 (z = 6.0)."""
    n = 1 << 16
    choices = {"zeros": np.zeros(n, np.uint8), "ones": np.ones(n, np.uint8),
               "alternating": (np.arange(n) & 1).astype(np.uint8)}
    views = {}

    def fs(s):
        got = {}
        orig = s.channel.recv_array

        def spy(step, dtype, shape, out=None):
            a = orig(step, dtype, shape, out=out)
            if step.endswith(".u"):
                got.setdefault(cur[0], []).append(a.copy())
            return a

        s.channel.recv_array = spy
        cur = [None]
        for name in choices:
            cur[0] = name
            s.ot.send_cot(n)
        return {k: np.concatenate(v) for k, v in got.items()}

    def fr(s):
        for name in choices:
            s.ot.recv_cot(choices[name])

    views, _ = run_pair(fs, fr)
    hist = {}
    for name, u in views.items():
        assert u.size == 16 * n
        tiles = u.reshape(n // 128, 128, 16)                         # tile-major: column block i of each tile
        ones = np.unpackbits(tiles, axis=2).reshape(n // 128, 128, 128).sum(axis=(0, 2))   # per column
        z = (ones - n / 2) / np.sqrt(n / 4)
        assert np.abs(z).max() < 7, (name, np.abs(z).max())
        hist[name] = np.bincount(u, minlength=256).astype(np.float64)
    crit = _wilson_hilferty(255, 6.0)
    names = list(hist)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = hist[names[i]], hist[names[j]]
            chi2 = (((a - b) ** 2) / (a + b)).sum()                  # equal sample sizes
            assert chi2 < crit, (names[i], names[j], chi2, crit)
    # and u does not reveal the choices directly: it is not r, nor r in every column
    assert not np.array_equal(views["zeros"], views["ones"])


# ----------------------------------------------------------------------------- misuse / malformed peers

def _idle(s):
    """A peer that does nothing: argument errors are raised before any traffic."""
    return None


def test_bits_must_be_zero_or_one():
    bad = np.array([0, 1, 2, 0], np.uint8)
    with pytest.raises(ValueError, match=r"bits\[2\] = 2"):
        run_pair(_idle, lambda s: s.ot.recv_cot(bad))
    with pytest.raises(ValueError, match="0 or 1"):
        run_pair(_idle, lambda s: s.ot.recv_rot(np.array([1, -1])))
    with pytest.raises(ValueError, match="0 or 1"):
        run_pair(_idle, lambda s: s.ot.recv(np.array([0, 3], np.uint8), 4))
    with pytest.raises(ValueError, match="0 or 1"):
        run_pair(_idle, lambda s: s.ot.recv_acot(np.array([0, 1, 255], np.uint8)))
    with pytest.raises(ValueError, match="1-d"):
        run_pair(_idle, lambda s: s.ot.recv_cot(np.zeros((2, 2), np.uint8)))
    # nothing was sent: the session's OT state is untouched
    s0 = run_pair(lambda s: (s.ot._sender, s.ot._receiver), _idle)[0]
    assert s0 == (None, None)
    # bool arrays and plain int arrays of 0/1 are fine
    b = np.array([True, False, True])
    (q, d), t = run_pair(lambda s: s.ot.send_cot(3), lambda s: s.ot.recv_cot(b))
    assert np.array_equal(t, q ^ (b.astype(np.uint8)[:, None] * d))
    b = np.array([1, 0, 1], np.int64)
    (q, d), t = run_pair(lambda s: s.ot.send_cot(3), lambda s: s.ot.recv_cot(b))
    assert np.array_equal(t, q ^ (b.astype(np.uint8)[:, None] * d))


def test_bad_n():
    with pytest.raises(ValueError, match="non-negative"):
        run_pair(lambda s: s.ot.send_cot(-1), _idle)
    with pytest.raises(TypeError, match="n must be an int"):
        run_pair(lambda s: s.ot.send_rot(2.0), _idle)


def test_pack_bits_kernel(rng):
    for n in (0, 1, 15, 16, 17, 100, 4099):
        b = _bits(rng, n)
        _, p = K.pack_bits(b)
        assert np.array_equal(p, np.packbits(b, bitorder="little"))
        if n:
            b2 = b.copy()
            b2[n // 2] = 3
            with pytest.raises(ValueError, match=rf"bits\[{n // 2}\] = 3"):
                K.pack_bits(b2)


def test_mismatched_n_raises_protocol_error(rng):
    with pytest.raises(ProtocolError, match=r"ot\.s0\.hdr: the receiver runs cot\(n=10\).*cot\(n=11\)"):
        run_pair(lambda s: s.ot.send_cot(11), lambda s: s.ot.recv_cot(_bits(rng, 10)))
    with pytest.raises(ProtocolError, match=r"ot\.s1\.hdr"):
        run_pair(lambda s: s.ot.recv_rot(_bits(rng, 300)), lambda s: s.ot.send_rot(299))


def test_mismatched_flavour_raises_protocol_error(rng):
    with pytest.raises(ProtocolError, match=r"ot\.s0\.hdr: the receiver runs rot"):
        run_pair(lambda s: s.ot.send_cot(8), lambda s: s.ot.recv_rot(_bits(rng, 8)))


def test_chosen_wrong_L(rng):
    n = 50
    m = np.zeros((n, 16), np.uint8)
    # both sides valid on their own, but L differs: the sender sees it in the header
    with pytest.raises(ProtocolError, match=r"L=17.*L=16"):
        run_pair(lambda s: s.ot.send(m, m), lambda s: s.ot.recv(_bits(rng, n), 17))
    with pytest.raises(ValueError, match="same shape"):
        run_pair(lambda s: s.ot.send(m, m[:, :15]), _idle)
    with pytest.raises(ValueError, match="L must be >= 0"):
        run_pair(_idle, lambda s: s.ot.recv(_bits(rng, n), -1))
    with pytest.raises(TypeError, match="L must be an int"):
        run_pair(_idle, lambda s: s.ot.recv(_bits(rng, n), 16.0))
    with pytest.raises(ValueError, match="uint8"):
        run_pair(lambda s: s.ot.send(m.astype(np.int32), m), _idle)
    with pytest.raises(ValueError, match=r"uint8\[n, L\]"):
        run_pair(lambda s: s.ot.send(m[0], m[0]), _idle)


def test_wrong_out_shapes(rng):
    with pytest.raises(ValueError, match=r"uint8\[5, 16\]"):
        run_pair(lambda s: s.ot.send_cot(5, out=np.zeros((5, 8), np.uint8)), _idle)
    with pytest.raises(ValueError, match=r"uint8\[5, 16\]"):
        run_pair(_idle, lambda s: s.ot.recv_rot(_bits(rng, 5), out=np.zeros((4, 16), np.uint8)))
    with pytest.raises(ValueError, match=r"uint8\[5, 16\]"):
        run_pair(lambda s: s.ot.send_rot(5, out=(np.zeros((5, 16), np.uint8), np.zeros((5, 16), np.int8))), _idle)
    with pytest.raises(ValueError, match=r"uint8\[5, 3\]"):
        run_pair(_idle, lambda s: s.ot.recv(_bits(rng, 5), 3, out=np.zeros((5, 4), np.uint8)))


def test_acot_width_checks(rng):
    c = np.zeros(4, np.uint64)
    b = _bits(rng, 4)
    for bad in (0, 65):
        with pytest.raises(ValueError, match=r"\[1, 64\]"):
            run_pair(lambda s: s.ot.send_acot(c, bits=bad), _idle)
        with pytest.raises(ValueError, match=r"\[1, 64\]"):
            run_pair(_idle, lambda s: s.ot.recv_acot(b, bits=np.array([8, bad, 8, 8])))
    with pytest.raises(ValueError, match="one entry per OT"):
        run_pair(lambda s: s.ot.send_acot(c, bits=np.full(3, 8, np.uint8)), _idle)
    with pytest.raises(ValueError, match="integer array"):
        run_pair(lambda s: s.ot.send_acot(c.astype(np.float64)), _idle)
    # widths differ between the parties: the sender sees it in the header
    with pytest.raises(ProtocolError, match=r"ot\.s0\.hdr.*bits=16.*bits=8"):
        run_pair(lambda s: s.ot.send_acot(c, bits=8), lambda s: s.ot.recv_acot(b, bits=16))
    w1 = np.array([8, 8, 16, 8], np.uint8)
    w2 = np.array([8, 16, 8, 8], np.uint8)
    with pytest.raises(ProtocolError, match=r"ot\.s0\.hdr"):
        run_pair(lambda s: s.ot.send_acot(c, bits=w1), lambda s: s.ot.recv_acot(b, bits=w2))


def test_wrong_length_u_matrix_raises_protocol_error(rng):
    """A receiver that announces n = 1000 but sends a u matrix for 992 OTs."""
    n = 1000

    def fake_receiver(s):
        s.ot.recv_cot(_bits(rng, 8))                  # a real call first: sets up the extension
        s.channel.send("ot.s0.hdr", iknp._header(n, "cot"))
        s.channel.send("ot.s0.u", np.zeros(K.ubytes(n - 8), np.uint8))
        s.channel.recv_bytes("never", 1)

    def sender(s):
        s.ot.send_cot(8)
        s.ot.send_cot(n)

    with pytest.raises(ProtocolError, match=r"ot\.s0\.u: expected shape \(16000,\), the peer sent \(15872,\)"):
        run_pair(sender, fake_receiver)


def test_wrong_length_reply_raises_protocol_error(rng):
    """A sender whose y message does not have the announced size."""
    n = 40

    def fake_sender(s):
        s.ot.send_cot(8)
        s.channel.recv_array("ot.s0.hdr", np.uint64, (4,))
        s.channel.recv_array("ot.s0.u", np.uint8, (K.ubytes(n),))
        s.channel.send("ot.s0.y", np.zeros((2, n, 15), np.uint8))
        s.channel.recv_bytes("never", 1)

    def receiver(s):
        s.ot.recv_cot(_bits(rng, 8))
        s.ot.recv(_bits(rng, n), 16)

    with pytest.raises(ProtocolError, match=r"ot\.s0\.y: expected shape"):
        run_pair(fake_sender, receiver)


# ----------------------------------------------------------------------------- kernels vs a reference model

def _aes_ecb(key, data):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(data)


def _ref_columns(seeds, ctr, ntiles):
    """[ntiles, 128, 16]: AES_{seed_i}(ctr + t) with the counter in the low 64 bits."""
    ctrs = np.zeros((ntiles, 16), np.uint8)
    ctrs[:, :8] = (np.uint64(ctr) + np.arange(ntiles, dtype=np.uint64)).view(np.uint8).reshape(ntiles, 8)
    cols = [np.frombuffer(_aes_ecb(seeds[i].tobytes(), ctrs.tobytes()), np.uint8).reshape(ntiles, 16)
            for i in range(128)]
    return np.stack(cols, axis=1)


def _ref_rows(cols, n):
    bits = np.unpackbits(cols, axis=2, bitorder="little")          # [tiles, 128 columns, 128 OTs]
    rows = bits.transpose(0, 2, 1).reshape(-1, 128)[:n]
    return np.packbits(rows, axis=1, bitorder="little")


def test_transpose128_matches_numpy(rng):
    for _ in range(20):
        x = rng.integers(0, 256, (128, 16), dtype=np.uint8)
        ref = np.packbits(np.unpackbits(x, axis=1, bitorder="little").T, axis=1, bitorder="little")
        assert np.array_equal(K.transpose128(x), ref)
    eye = np.packbits(np.eye(128, dtype=np.uint8), axis=1, bitorder="little")
    assert np.array_equal(K.transpose128(eye), eye)
    many = rng.integers(0, 256, (5, 128, 16), dtype=np.uint8)
    assert np.array_equal(K.transpose128(many), np.stack([K.transpose128(t) for t in many]))


@pytest.mark.parametrize("n", [1, 8, 127, 128, 129, 1023, 1024, 1025, 5000])
def test_extension_kernels_match_reference(rng, n):
    seeds0 = rng.integers(0, 256, (128, 16), dtype=np.uint8)
    seeds1 = rng.integers(0, 256, (128, 16), dtype=np.uint8)
    s = rng.integers(0, 2, 128, dtype=np.uint8)
    s[0] = 1
    ks = np.where(s[:, None] == 1, seeds1, seeds0)
    delta = np.packbits(s, bitorder="little")
    mask = np.repeat(s * np.uint8(255), 16).astype(np.uint8)
    b = _bits(rng, n)
    _, packed = K.pack_bits(b)
    ctr = 7
    u = np.empty(K.ubytes(n), np.uint8)
    t = np.empty((n, 16), np.uint8)
    K.recv_extend(K.ColumnKeys(seeds0), K.ColumnKeys(seeds1), ctr, packed, 0, n, u, t, 0, K.Scratch())
    q = np.empty((n, 16), np.uint8)
    K.send_extend(K.ColumnKeys(ks), mask, ctr, u, n, q, 0, K.Scratch())
    nt = (n + 127) // 128
    c0, c1 = _ref_columns(seeds0, ctr, nt), _ref_columns(seeds1, ctr, nt)
    assert np.array_equal(t, _ref_rows(c0, n))                       # t_j = rows of G(k0)
    assert np.array_equal(t, q ^ (b[:, None] * delta))
    # u on the wire: column blocks of G(k0) ^ G(k1) ^ r, tile-major, last tile truncated
    rpad = np.zeros(nt * 128, np.uint8)
    rpad[:n] = b
    r_tiles = np.packbits(rpad.reshape(nt, 128), axis=1, bitorder="little")       # [nt, 16]
    full = c0 ^ c1 ^ r_tiles[:, None, :]
    nfull = n // 128
    assert np.array_equal(u[:2048 * nfull], full[:nfull].reshape(-1))
    m = n % 128
    if m:
        mb = (m + 7) // 8
        last = full[nfull, :, :mb].copy()
        if m % 8:
            last[:, -1] &= (1 << (m % 8)) - 1
        assert np.array_equal(u[2048 * nfull:].reshape(128, mb), last)


def test_hash_kernels_match_tccr_definition(rng):
    from ezprotocols._ext import crypto
    n = 700
    x = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    d = rng.integers(0, 256, 16, dtype=np.uint8)
    hi, lo = (0x4F << 56) | (1 << 48), 2 ** 64 - 300                      # low word wraps
    tw = (hi << 64) | lo
    out = np.empty((n, 16), np.uint8)
    K.tccr_rows(x, None, hi, lo, out)
    assert np.array_equal(out, crypto.tccr_hash(x, tweak=tw))
    K.tccr_rows(x, d, hi, lo, out)
    assert np.array_equal(out, crypto.tccr_hash(x ^ d, tweak=tw))
    # chosen-message pads: block k of a long message uses tweak (hi | k, lo + j)
    L = 40
    m0 = rng.integers(0, 256, (n, L), dtype=np.uint8)
    m1 = rng.integers(0, 256, (n, L), dtype=np.uint8)
    y = np.empty((2, n, L), np.uint8)
    K.chosen_send(x, d, hi, lo, m0, m1, y)
    pad0 = np.concatenate([crypto.tccr_hash(x, tweak=((hi | k) << 64) | lo) for k in range(3)], axis=1)[:, :L]
    pad1 = np.concatenate([crypto.tccr_hash(x ^ d, tweak=((hi | k) << 64) | lo) for k in range(3)], axis=1)[:, :L]
    assert np.array_equal(y[0], m0 ^ pad0) and np.array_equal(y[1], m1 ^ pad1)
    # L = 16 takes the fused two-hash path; n not a multiple of 16 exercises its tail
    m0, m1 = m0[:, :16].copy(), m1[:, :16].copy()
    y = np.empty((2, n, 16), np.uint8)
    K.chosen_send(x, d, hi, lo, m0, m1, y)
    assert np.array_equal(y[0], m0 ^ crypto.tccr_hash(x, tweak=tw)) and np.array_equal(y[1], m1 ^ crypto.tccr_hash(x ^ d, tweak=tw))
    o0, o1 = np.empty((n, 16), np.uint8), np.empty((n, 16), np.uint8)
    K.hash2_rows(x, d, hi, lo, o0, o1)
    assert np.array_equal(o0, crypto.tccr_hash(x, tweak=tw)) and np.array_equal(o1, crypto.tccr_hash(x ^ d, tweak=tw))


def test_sse_fallback_paths():
    """The same kernels and a protocol run with VAES/AVX-512 disabled (EZP_NO_VAES=1)."""
    code = (
        "import numpy as np, ezprotocols.ot\n"
        "from ezprotocols._ext import ot as K\n"
        "from ezprotocols.testing import run_pair\n"
        "assert not K.gfni_transpose_enabled() and not K.vaes_enabled()\n"
        "rng = np.random.default_rng(3)\n"
        "for _ in range(5):\n"
        "    x = rng.integers(0, 256, (128, 16), dtype=np.uint8)\n"
        "    ref = np.packbits(np.unpackbits(x, axis=1, bitorder='little').T, axis=1, bitorder='little')\n"
        "    assert np.array_equal(K.transpose128(x), ref)\n"
        "b = rng.integers(0, 2, 3000, dtype=np.uint8)\n"
        "(q, d), t = run_pair(lambda s: s.ot.send_cot(3000), lambda s: s.ot.recv_cot(b))\n"
        "assert np.array_equal(t, q ^ (b[:, None] * d))\n"
        "for L in (16, 20):\n"
        "    m0 = rng.integers(0, 256, (3000, L), dtype=np.uint8); m1 = m0 ^ 1\n"
        "    _, m = run_pair(lambda s: s.ot.send(m0, m1), lambda s: s.ot.recv(b, L))\n"
        "    assert np.array_equal(m, np.where(b[:, None] == 1, m1, m0))\n"
        "c = rng.integers(0, 2**64, 3000, dtype=np.uint64)\n"
        "x, y = run_pair(lambda s: s.ot.send_acot(c), lambda s: s.ot.recv_acot(b))\n"
        "assert np.array_equal(y, x + b * c)\n"
        "(m0, m1), mb = run_pair(lambda s: s.ot.send_rot(3000), lambda s: s.ot.recv_rot(b))\n"
        "assert np.array_equal(mb, np.where(b[:, None] == 1, m1, m0))\n"
        "print('ok')\n")
    env = dict(os.environ, EZP_NO_VAES="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_vaes_without_gfni_transpose(rng):
    """VAES PRG with the SSE transpose (a CPU with VAES but without GFNI/VBMI): EZP_NO_GFNI=1."""
    code = ("import numpy as np, ezprotocols.ot\n"
            "from ezprotocols._ext import ot as K\n"
            "from ezprotocols.testing import run_pair\n"
            "assert not K.gfni_transpose_enabled()\n"
            "b = np.random.default_rng(4).integers(0, 2, 5000, dtype=np.uint8)\n"
            "(q, d), t = run_pair(lambda s: s.ot.send_cot(5000), lambda s: s.ot.recv_cot(b))\n"
            "assert np.array_equal(t, q ^ (b[:, None] * d))\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, EZP_NO_GFNI="1"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_sse_and_vaes_agree(rng):
    """Kernel outputs are identical with and without the wide paths (same seeds, same counters)."""
    seeds = rng.integers(0, 256, (128, 16), dtype=np.uint8)
    code = ("import sys, numpy as np\nfrom ezprotocols._ext import ot as K\n"
            "seeds = np.frombuffer(bytes.fromhex(sys.argv[1]), np.uint8).reshape(128, 16)\n"
            "print(K.ColumnKeys(seeds).columns(3, 9).tobytes().hex())\n")
    outs = []
    for flag in ("0", "1"):
        env = dict(os.environ, EZP_NO_VAES=flag)
        r = subprocess.run([sys.executable, "-c", code, seeds.tobytes().hex()], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.strip())
    assert outs[0] == outs[1]
    assert bytes.fromhex(outs[0]) == _ref_columns(seeds, 3, 9).tobytes()


def test_docstring_examples():
    import doctest
    from ezprotocols.ot import engine
    assert doctest.testmod(engine).failed == 0


def test_widths_checksum_is_crc32(rng):
    w = np.array([8, 64, 1], np.uint8)
    assert check_widths(w, 3)[3] == zlib.crc32(w.tobytes())
