"""Conversions and the OT multiplexer: ideal functionality on random and edge values,
and their exact bytes and rounds against the cost formulas."""
import numpy as np
import pytest

from ezprotocols import ArithTensor
from ezprotocols._ext import ot as otk
from ezprotocols.gc.yao import HEADER_BYTES
from ezprotocols.protocols import BoolTensor, a2b, a2y, b2a, b2a_bits, b2y, mux, y2a, y2b
from ezprotocols.protocols import setup
from ezprotocols.testing import run_pair

EDGE = np.array([0, 1, 2**64 - 1, 2**63, 2**63 - 1, 2**62, 2**64 - 2**62, 12345, 2**32], dtype=np.uint64)


def _split(rng, x):
    r = rng.integers(0, 2**64, size=x.shape, dtype=np.uint64)
    return r, x - r




def _values(rng, n):
    x = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    x[:EDGE.size] = EDGE[:n]
    return x


@pytest.mark.parametrize("n", [0, 1, 257])
def test_b2a_bits_and_mux(rng, n):
    bits = rng.integers(0, 2, n).astype(np.uint8)
    b0 = rng.integers(0, 2, n).astype(np.uint8)
    x = _values(rng, n)
    x0, x1 = _split(rng, x)
    sh = [(b0, x0), (bits ^ b0, x1)]

    def party(s):
        b, xs = sh[s.role]
        bt = BoolTensor(s, b)
        xt = ArithTensor(s, xs, 0)
        return bt.to_arith().share, mux(bt, xt).share, b2a_bits(~bt).share

    (a0, m0, n0), (a1, m1, n1) = run_pair(party, party)
    assert np.array_equal(a0 + a1, bits.astype(np.uint64))
    assert np.array_equal(m0 + m1, bits.astype(np.uint64) * x)
    assert np.array_equal(n0 + n1, (1 - bits).astype(np.uint64))


@pytest.mark.parametrize("width", [1, 8, 33, 63, 64])
def test_a2y_y2a_a2b_b2y_roundtrip(rng, width):
    n = 40
    x = _values(rng, n)
    x0, x1 = _split(rng, x)
    mask = np.uint64((1 << width) - 1) if width < 64 else np.uint64(2**64 - 1)

    def party(s):
        xt = ArithTensor(s, x0 if s.role == 0 else x1, 0)
        y = a2y(xt, width)
        opened = s.gc.reveal(y.reshape(n * width) if False else y, to="both")
        back = y2a(y, s)
        bools = a2b(xt, width)
        y2 = b2y(bools)
        back2 = y2a(y2, s)
        return opened, back.share, back2.share, bools.share, y2b(y, s).share

    (o0, r0, q0, b0, c0), (o1, r1, q1, b1, c1) = run_pair(party, party)
    want_bits = ((x[:, None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    assert np.array_equal(o0, want_bits) and np.array_equal(o1, want_bits)
    assert np.array_equal(r0 + r1, x & mask)
    assert np.array_equal(q0 + q1, x & mask)
    assert np.array_equal(b0 ^ b1, want_bits)
    assert np.array_equal(c0 ^ c1, want_bits)


def test_b2a_words_scale_and_shapes(rng):
    x = _values(rng, 24).reshape(2, 3, 4)
    bits = ((x[..., None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    r = rng.integers(0, 2, bits.shape).astype(np.uint8)

    def party(s):
        t = b2a(BoolTensor(s, r if s.role == 0 else bits ^ r), scale=16)
        return t.share, t.scale, t.shape

    (s0, sc, sh), (s1, _, _) = run_pair(party, party)
    assert sc == 16 and sh == (2, 3, 4)
    assert np.array_equal(s0 + s1, x)


# ---------------------------------------------------------------------- exact costs

def _ub(m):
    return otk.ubytes(m)


def _measure(fn, n, rng, **kw):
    x = _values(rng, n)
    x0, x1 = _split(rng, x)
    b = rng.integers(0, 2, n).astype(np.uint8)

    def party(s):
        setup(s)
        xt = ArithTensor(s, x0 if s.role == 0 else x1, 0)
        bt = BoolTensor(s, b if s.role == 0 else np.zeros(n, np.uint8))
        with s.phase("op"):
            fn(s, xt, bt)
        c = s.counters("op")
        return c.bytes_sent, c.bytes_recv, c.rounds

    return run_pair(party, party)


@pytest.mark.parametrize("n", [1, 300])
def test_cost_b2a_bits(rng, n):
    (s0, r0, k0), (s1, r1, k1) = _measure(lambda s, x, b: b.to_arith(), n, rng)
    assert (s0, r0) == (8 * n, 32 + _ub(n))                 # P0 sends the corrections
    assert (s1, r1) == (r0, s0)
    assert (k0, k1) == (2, 2)


@pytest.mark.parametrize("n", [1, 300])
def test_cost_mux(rng, n):
    (s0, r0, k0), (s1, r1, k1) = _measure(lambda s, x, b: mux(b, x), n, rng)
    one = 32 + _ub(n)                                         # header + u matrix of one direction
    assert s0 == 8 * n + one and r0 == one + 8 * n
    assert (s1, r1) == (r0, s0)
    assert (k0, k1) == (3, 3)     # u(P1) | d(P0), u(P0) | d(P1)


@pytest.mark.parametrize("n,l", [(1, 64), (300, 64), (50, 20)])
def test_cost_b2a_words(rng, n, l):
    def op(s, x, b):
        bits = ((x.share[:, None] >> np.arange(l, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
        b2a(BoolTensor(s, bits))

    (s0, r0, _), (s1, r1, _) = _measure(op, n, rng)
    k = min(l, 63)
    corr = n * sum((63 - i + 7) // 8 for i in range(k))
    assert (s0, r0) == (corr, 32 + _ub(n * k))
    assert (s1, r1) == (r0, s0)


@pytest.mark.parametrize("n,w", [(1, 64), (200, 64), (100, 17)])
def test_cost_a2y(rng, n, w):
    (s0, r0, k0), (s1, r1, k1) = _measure(lambda s, x, b: a2y(x, w), n, rng)
    assert s0 == HEADER_BYTES + 32 * (w - 1) * n             # garbler: header + tables, no input labels
    assert r0 == 32 + _ub(n * w) + HEADER_BYTES              # P1's share bits by COT + header
    assert (s1, r1) == (r0, s0)
    assert (k0, k1) == (4, 2)


def test_cost_table_is_measured():
    from ezprotocols.costs import measure
    rows = {r["op"]: r for r in measure(400)}
    relu = rows["relu (64-bit)"]
    assert relu["and_gates"] == 63 and relu["cots"] == 63 and relu["additive_cots"] == 2
    assert rows["mux (bit * value)"]["bytes"] > 48            # 48 + amortised headers
    assert rows["b2y (64-bit)"]["and_gates"] == 0
    assert rows["argmax over 10"]["and_gates"] == 9 * 63


@pytest.mark.parametrize("n,w", [(1, 64), (100, 13)])
def test_cost_b2y_and_y2a(rng, n, w):
    def op(s, x, b):
        bits = BoolTensor(s, ((x.share[:, None] >> np.arange(w, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8))
        with s.phase("b2y"):
            y = b2y(bits)
        with s.phase("y2a"):
            y2a(y, s)

    x = _values(rng, n)
    x0, x1 = _split(rng, x)

    def party(s):
        setup(s)
        op(s, ArithTensor(s, x0 if s.role == 0 else x1, 0), None)
        return s.counters("b2y"), s.counters("y2a")

    (b0, a0), (b1, a1) = run_pair(party, party)
    assert (b0.bytes_sent, b0.bytes_recv) == (0, 32 + _ub(n * w))       # one COT per bit, nothing else
    k = min(w, 63)
    corr = n * sum((63 - i + 7) // 8 for i in range(k))
    assert (a0.bytes_sent, a0.bytes_recv) == (corr, 32 + _ub(n * k))      # y2b free, then b2a
    assert (b0.rounds, a0.rounds, b1.rounds, a1.rounds) == (1, 2, 1, 2)
