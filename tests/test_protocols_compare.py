"""Sign bit, comparison and ReLU: ideal functionality on random and edge inputs,
exact costs, and a view test (what P1 receives does not depend on P0's share)."""
import numpy as np
import pytest

import ezprotocols as ez
from ezprotocols import ArithTensor
from ezprotocols._ext import ot as otk
from ezprotocols.gc.yao import HEADER_BYTES
from ezprotocols.protocols import compare, drelu, msb, relu
from ezprotocols.protocols import setup
from ezprotocols.testing import run_pair

LO, HI = -(2**62), 2**62 - 1          # the fixed-point range (ring units)


def _ring(v):
    return np.asarray(v, dtype=np.int64).astype(np.uint64) if np.asarray(v).dtype != np.uint64 else v


def _split(rng, x):
    x = np.asarray(x).astype(np.uint64)
    r = rng.integers(0, 2**64, size=x.shape, dtype=np.uint64)
    return r, x - r


def _signed(u):
    return np.asarray(u, np.uint64).view(np.int64)


def _ring_edges():
    return np.array([0, 1, -1, 2**63 - 1, -(2**63), 2**62, -(2**62), LO, HI, 7, -7], dtype=np.int64)


def _run(rng, x, fn, scale=0, **kw):
    x0, x1 = _split(rng, x)

    def party(s):
        t = ArithTensor(s, x0 if s.role == 0 else x1, scale)
        return fn(s, t)

    return run_pair(party, party, **kw)


@pytest.mark.parametrize("n", [0, 1, 333])
def test_msb_whole_ring(rng, n):
    x = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
    e = _ring_edges()
    x[:min(n, e.size)] = e[:n]
    r0, r1 = _run(rng, x, lambda s, t: msb(t).share)
    assert np.array_equal(r0 ^ r1, (x < 0).astype(np.uint8))


@pytest.mark.parametrize("bits", [1, 2, 17, 40, 63])
def test_msb_reduced_width(rng, bits):
    lim = 2 ** (bits - 1)
    x = rng.integers(-lim, lim, size=200, dtype=np.int64)
    x[:4] = [0, -1, -lim, lim - 1] if bits > 1 else [0, -1, -1, 0]
    r0, r1 = _run(rng, x, lambda s, t: msb(t, bits=bits).share)
    assert np.array_equal(r0 ^ r1, (x < 0).astype(np.uint8))


@pytest.mark.parametrize("shape", [(0,), (1,), (5, 7), (2, 3, 4)])
def test_relu_ideal(rng, shape):
    x = rng.integers(-(2**63), 2**63 - 1, size=shape, dtype=np.int64)
    flat = x.reshape(-1)
    e = _ring_edges()
    flat[:min(flat.size, e.size)] = e[:flat.size]
    r0, r1 = _run(rng, x, lambda s, t: (relu(t).share, relu(t).scale, relu(t).shape), scale=16)
    got = _signed(r0[0] + r1[0])
    assert r0[1] == 16 and r0[2] == shape
    assert np.array_equal(got, np.maximum(x, 0))


def test_relu_fixed_point_values():
    vals = np.array([-3.5, -1e-5, 0.0, 1e-5, 2.25, -30000.0, 30000.0, 2.0**40, -(2.0**40)])

    def party(s):
        t = s.input(vals if s.role == 0 else None, owner=0, shape=vals.shape)
        return s.reveal(ez.relu(t))

    r0, r1 = run_pair(party, party)
    assert np.allclose(r0, np.maximum(vals, 0), atol=2**-16)
    assert np.array_equal(r0, r1)


def test_compare_and_operators(rng):
    n = 300
    x = rng.integers(LO, HI, size=n, dtype=np.int64)
    y = rng.integers(LO, HI, size=n, dtype=np.int64)
    y[:50] = x[:50]                                   # ties
    x[50:56] = [LO, HI, LO, HI, 0, -1]
    y[50:56] = [HI, LO, LO, HI, -1, 0]
    x0, x1 = _split(rng, x)
    y0, y1 = _split(rng, y)

    def party(s):
        xt = ArithTensor(s, x0 if s.role == 0 else x1, 0)
        yt = ArithTensor(s, y0 if s.role == 0 else y1, 0)
        return ((xt > yt).reveal(), (xt < yt).reveal(), (xt >= yt).reveal(), (xt <= yt).reveal(),
                s.reveal(compare(xt, yt, arith=True), raw=True), (xt > 0).reveal(), (xt < 5).reveal(),
                compare(3, yt).reveal())

    r0, r1 = run_pair(party, party)
    gt, lt, ge, le, gta, gt0, lt5, c3 = r0
    assert np.array_equal(gt, x > y) and np.array_equal(lt, x < y)
    assert np.array_equal(ge, x >= y) and np.array_equal(le, x <= y)
    assert np.array_equal(np.asarray(gta).astype(np.int64), (x > y).astype(np.int64))
    assert np.array_equal(gt0, x > 0) and np.array_equal(lt5, x < 5) and np.array_equal(c3, 3 > y)
    for a, b in zip(r0, r1):
        assert np.array_equal(a, b)


def test_drelu_and_fixed_point_compare():
    a = np.array([1.5, -2.0, 0.0, 3.25, -0.5])
    b = np.array([1.0, -2.0, 0.0, 4.0, -1.0])

    def party(s):
        x = s.input(a if s.role == 0 else None, owner=0, shape=a.shape)
        y = s.input(b if s.role == 1 else None, owner=1, shape=b.shape)
        return (x > y).reveal(), drelu(x).reveal(), (x > 1.25).reveal()

    (g, d, c), _ = run_pair(party, party)
    assert np.array_equal(g, a > b) and np.array_equal(d, a >= 0) and np.array_equal(c, a > 1.25)


def test_misuse():
    def party(s):
        with pytest.raises(ValueError):
            msb(ArithTensor(s, np.zeros(3, np.uint64), 0), bits=0)
        with pytest.raises(TypeError):
            relu(np.zeros(3))
        with pytest.raises(TypeError):
            compare(1, 2)
        return True

    assert run_pair(party, party) == (True, True)




@pytest.mark.parametrize("n,bits", [(1, 64), (300, 64), (100, 32)])
def test_relu_cost_formula(rng, n, bits):
    x = rng.integers(-(2**31), 2**31, size=n, dtype=np.int64)

    def fn(s, t):
        setup(s)
        with s.phase("op"):
            relu(t, bits=bits)
        c = s.counters("op")
        return c.bytes_sent, c.bytes_recv, c.rounds

    (s0, r0, k0), (s1, r1, k1) = _run(rng, x, fn, compare="gc")
    ub = otk.ubytes
    mux_one = 32 + ub(n)
    assert s0 == HEADER_BYTES + 32 * (bits - 1) * n + 8 * n + mux_one
    assert r0 == 32 + ub(n * (bits - 1)) + HEADER_BYTES + mux_one + 8 * n
    assert (s1, r1) == (r0, s0)
    assert (k0, k1) == (7, 5)     # P0: cot | hdr | hdr | tables, then u | d,u | d; P1: cot,hdr | hdr,tables, then u | d,u | d


def _capture_recv(ch, log):
    orig_a, orig_b = ch.recv_array, ch.recv_bytes

    def ra(step, dtype, shape, out=None):
        a = orig_a(step, dtype, shape, out=out)
        log.append((step, a.tobytes()))
        return a

    def rb(step, nbytes=None, **kw):
        b = orig_b(step, nbytes, **kw)
        log.append((step, b))
        return b

    ch.recv_array, ch.recv_bytes = ra, rb


def test_view_of_p1_in_relu_does_not_depend_on_p0_share(rng):
    """P1's received messages for two very different P0 shares: identical public parts,
    indistinguishable byte distributions elsewhere (chi-square, 255 dof, threshold far
    in the tail: false-failure probability below 1e-12)."""
    n = 3000
    x1 = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    views = []
    for x0 in (np.zeros(n, np.uint64), np.full(n, 0x5555555555555555, np.uint64)):
        log = []

        def p0(s):
            setup(s)
            relu(ArithTensor(s, x0, 0))

        def p1(s):
            setup(s)
            _capture_recv(s.channel, log)
            relu(ArithTensor(s, x1, 0))

        run_pair(p0, p1)
        views.append(log)
    a, b = views
    assert [(st, len(m)) for st, m in a] == [(st, len(m)) for st, m in b]
    for (st, ma), (_, mb) in zip(a, b):
        if len(ma) < 256:
            assert ma == mb or "d" in st or "input" in st, st      # headers are public and equal
            continue
        ha = np.bincount(np.frombuffer(ma, np.uint8), minlength=256).astype(float)
        hb = np.bincount(np.frombuffer(mb, np.uint8), minlength=256).astype(float)
        tot = ha + hb
        keep = tot > 0
        ea = tot * ha.sum() / tot.sum()
        eb = tot * hb.sum() / tot.sum()
        chi2 = (((ha - ea) ** 2 / np.where(keep, ea, 1)) + ((hb - eb) ** 2 / np.where(keep, eb, 1)))[keep].sum()
        assert chi2 < 600, (st, chi2)


def test_garbling_tweaks_never_repeat_across_chunks(rng, monkeypatch):
    """Every (AND gate, copy, half) gets a fresh tweak under one delta: the label-free
    garbler inputs rely on it (review note W1)."""
    import ezprotocols.protocols.sign as C
    monkeypatch.setattr(C, "CHUNK", 64)
    n, bits = 200, 20
    x = rng.integers(-(2**18), 2**18, size=n, dtype=np.int64)

    def fn(s, t):
        ranges = []
        real = s.gc._take_tweaks

        def take(k):
            start = real(k)
            ranges.append((start, start + k))
            return start

        s.gc._take_tweaks = take
        out = msb(t, bits=bits).share
        relu(t, bits=bits)
        return out, ranges

    (o0, g0), (o1, g1) = _run(rng, x, fn, compare="gc")
    assert np.array_equal(o0 ^ o1, (x < 0).astype(np.uint8))
    assert g0 == g1 and len(g0) == 2 * 4                       # 4 chunks of 64 elements, twice
    spans = sorted(g0)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # disjoint
    assert sum(b - a for a, b in spans) == 2 * 2 * (bits - 1) * n   # 2 tweaks per AND and copy


def test_session_reveal_opens_bool_tensors():
    vals = np.array([-1.0, 0.0, 2.5])

    def party(s):
        x = s.input(vals if s.role == 0 else None, owner=0, shape=(3,))
        return s.reveal(x > 0), s.reveal(x > 0, to=1), s.reveal(x)

    (a0, b0, c0), (a1, b1, c1) = run_pair(party, party)
    assert a0.tolist() == a1.tolist() == [0, 0, 1]
    assert b0 is None and b1.tolist() == [0, 0, 1]
    assert np.allclose(c0, vals)
