"""OT-based comparison backend ("ot"): the millionaires' protocol, msb, and the
non-linear layers on it (ReLU, compare, max, argmax, max pooling, truncation, ring
extension) against cleartext on random and edge inputs at 64 bits and reduced
widths; exact byte and round counts; a view test; malformed frames."""
import numpy as np
import pytest

import ezprotocols as ez
from ezprotocols import ArithTensor
from ezprotocols.errors import ProtocolError
from ezprotocols.protocols import drelu, msb, setup
from ezprotocols.protocols.millionaire import millionaire_costs, millionaire_gt, tree_levels
from ezprotocols.protocols.otcmp import OtCompare, extend, trunc_shares
from ezprotocols.testing import run_pair

U64 = np.uint64


def _split(rng, x):
    x = np.asarray(x).astype(np.int64).astype(U64) if np.asarray(x).dtype != U64 else x
    r = rng.integers(0, 2**64, size=x.shape, dtype=U64)
    return r, x - r


def _signed(u):
    return np.asarray(u, U64).view(np.int64)


def _run(rng, x, fn, scale=0, engine="ot", **kw):
    x0, x1 = _split(rng, x)

    def party(s):
        return fn(s, ArithTensor(s, x0 if s.role == 0 else x1, scale))

    return run_pair(party, party, compare=engine, **kw)


def _values(rng, bits, n):
    """n signed values representable at ``bits`` with the edges first."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    x = rng.integers(lo, hi, size=n, dtype=np.int64, endpoint=True)
    e = np.clip(np.array([0, -1, 1, lo, hi, lo + 1, hi - 1], dtype=np.int64), lo, hi)
    x[:min(n, e.size)] = e[:n]
    return x


# ---------------------------------------------------------------------- millionaires

@pytest.mark.parametrize("nbits", [1, 2, 4, 5, 9, 16, 36, 63, 64])
@pytest.mark.parametrize("m", [1, 3, 4, 5])
def test_millionaire_ideal(rng, nbits, m):
    n = 150
    top = 2**nbits - 1
    a = rng.integers(0, 2**64, size=n, dtype=U64) & U64(top)
    b = rng.integers(0, 2**64, size=n, dtype=U64) & U64(top)
    b[:40] = a[:40]                                   # ties
    b[40:50] = a[40:50] ^ U64(1)                      # differ in the lowest digit only
    b[50:55] = a[50:55] ^ U64(1 << (nbits - 1))       # differ in the top bit only
    a[55], b[55], a[56], b[56], a[57], b[57] = 0, top, top, 0, top, top
    r0, r1 = run_pair(lambda s: millionaire_gt(s, a, nbits, m=m), lambda s: millionaire_gt(s, b, nbits, m=m))
    assert r0.dtype == np.uint8 and r0.shape == (n,)
    assert np.array_equal(r0 ^ r1, (a > b).astype(np.uint8))


def test_millionaire_empty_and_range():
    r0, r1 = run_pair(lambda s: millionaire_gt(s, np.zeros(0, U64), 20),
                      lambda s: millionaire_gt(s, np.zeros(0, U64), 20))
    assert r0.shape == r1.shape == (0,)
    with pytest.raises(ValueError):
        run_pair(lambda s: millionaire_gt(s, np.array([16], U64), 4), lambda s: millionaire_gt(s, np.array([1], U64), 4))
    with pytest.raises(ValueError):
        run_pair(lambda s: millionaire_gt(s, np.array([1], U64), 4, m=6),
                 lambda s: millionaire_gt(s, np.array([1], U64), 4, m=6))


def test_millionaire_streams_in_chunks(rng, monkeypatch):
    """Several streamed chunks give the same result and the same round structure."""
    import ezprotocols.protocols.millionaire as M
    monkeypatch.setattr(M, "ROT_CHUNK", 1000)
    n, nbits = 700, 37
    a = rng.integers(0, 2**nbits, size=n, dtype=U64)
    b = rng.integers(0, 2**nbits, size=n, dtype=U64)
    b[:100] = a[:100]

    def party(v):
        def f(s):
            setup(s)
            with s.phase("m"):
                r = millionaire_gt(s, v, nbits)
            c = s.counters("m")
            return r, c.bytes_sent, c.rounds
        return f

    (r0, b0, k0), (r1, b1, k1) = run_pair(party(a), party(b))
    assert np.array_equal(r0 ^ r1, (a > b).astype(np.uint8))
    cost = M.millionaire_costs(n, nbits)
    assert M.chunk_elements(nbits) < n
    assert (b0, b1) == (cost["bytes_p0"], cost["bytes_p1"])
    assert (k0, k1) == (cost["rounds_p0"], cost["rounds_p1"])


@pytest.mark.parametrize("n,nbits", [(1, 63), (1000, 63), (513, 36), (300, 19), (7, 4), (9, 1)])
def test_millionaire_exact_costs(rng, n, nbits):
    a = rng.integers(0, 2**nbits, size=n, dtype=U64)
    counts = {}

    def party(s):
        setup(s)
        ot = s.ot

        def counting(name, side, size):
            real = getattr(ot, name)

            def f(arg, **kw):
                counts[(s.role, side)] = counts.get((s.role, side), 0) + size(arg)
                return real(arg, **kw)
            setattr(ot, name, f)

        for name, side, size in (("send_rot", "send", int), ("send_rcot", "send", int),
                                 ("recv_rot", "recv", len), ("recv_rcot", "recv", int)):
            if hasattr(ot, name):
                counting(name, side, size)
        with s.phase("m"):
            millionaire_gt(s, a, nbits)
        c = s.counters("m")
        return c.bytes_sent, c.bytes_recv, c.rounds

    (s0, r0, k0), (s1, r1, k1) = run_pair(party, party)
    cost = millionaire_costs(n, nbits)
    q = -(-nbits // 4)
    S = cost["leaf_sender"]
    assert S == (0 if len(tree_levels(q)) % 2 else 1)
    assert counts.get((S, "send"), 0) == cost[f"rot_p{S}_sends"] == n * (nbits + q - 1)
    assert counts.get((1 - S, "send"), 0) == cost[f"rot_p{1 - S}_sends"] == n * (q - 1)
    assert (s0, s1) == (cost["bytes_p0"], cost["bytes_p1"]) and (r0, r1) == (s1, s0)
    assert (k0, k1) == (cost["rounds_p0"], cost["rounds_p1"])
    assert cost["levels"] == len(tree_levels(q))
    # per-pair formula at 63 bits: 16-byte ROTs, 480 leaf bits, 3 (q-1) - levels opened bits
    if nbits == 63 and n == 1000:
        assert cost["leaf_bytes"] == 60 * n
        assert cost["open_bytes"] == sum((n * (3 * p - 1) + 7) // 8 for p in tree_levels(16))


# ---------------------------------------------------------------------- msb and friends

@pytest.mark.parametrize("bits", [64, 63, 37, 20, 2, 1])
@pytest.mark.parametrize("n", [0, 1, 257])
def test_msb_ot(rng, bits, n):
    x = _values(rng, bits, n)
    r0, r1 = _run(rng, x, lambda s, t: msb(t, bits=bits).share)
    assert np.array_equal(r0 ^ r1, (x < 0).astype(np.uint8))


def test_engine_interface(rng):
    """``OtCompare.msb(share, bits)`` on any shape returns uint8 XOR shares of that shape."""
    x = _values(rng, 30, 24).reshape(2, 3, 4)
    x0, x1 = _split(rng, x)

    def party(s):
        eng = OtCompare(s)
        eng.setup()
        with s.phase("m"):
            out = eng.msb(x0 if s.role == 0 else x1, 30)
        return out, eng.msb_costs(24, 30), s.counters("m").bytes_sent

    (r0, c0, b0), (r1, c1, b1) = run_pair(party, party)
    assert r0.shape == (2, 3, 4) and r0.dtype == np.uint8 and c0 == c1
    assert (b0, b1) == (c0["bytes_p0"], c0["bytes_p1"])
    assert np.array_equal(r0 ^ r1, (x < 0).astype(np.uint8))


@pytest.mark.parametrize("bits", [64, 37, 20])
def test_relu_drelu_compare_ot(rng, bits):
    x = _values(rng, bits, 301)
    cb = min(bits, 63)                                   # compare: operands at cb bits, difference at cb + 1
    xc, yc = _values(rng, cb, 301), _values(rng, cb, 301)[::-1].copy()
    yc[:20] = xc[:20]                                    # ties
    (xc0, xc1), (yc0, yc1) = _split(rng, xc), _split(rng, yc)

    def fn(s, t):
        a = ArithTensor(s, xc0 if s.role == 0 else xc1, 0)
        b = ArithTensor(s, yc0 if s.role == 0 else yc1, 0)
        return (ez.relu(t, bits=bits).share, drelu(t, bits=bits).share,
                ez.compare(a, b, bits=cb + 1).share, ez.compare(a, 5, bits=cb + 1).share)

    r0, r1 = _run(rng, x, fn)
    assert np.array_equal(_signed(r0[0] + r1[0]), np.maximum(x, 0))
    assert np.array_equal(r0[1] ^ r1[1], (x >= 0).astype(np.uint8))
    assert np.array_equal(r0[2] ^ r1[2], (xc > yc).astype(np.uint8))
    assert np.array_equal(r0[3] ^ r1[3], (xc > 5).astype(np.uint8))


def test_relu_empty_ot(rng):
    r0, r1 = _run(rng, np.zeros((0, 3), np.int64), lambda s, t: ez.relu(t, bits=20).share)
    assert r0.shape == (0, 3)


@pytest.mark.parametrize("engine", ["ot", "gc"])
@pytest.mark.parametrize("bits", [64, 37, 20])
def test_max_argmax_reduced_width(rng, engine, bits):
    """Values anywhere in the ``bits``-bit range, including both extremes in one row:
    the difference needs bits + 1 bits."""
    lim = 2 ** (bits - 1) if bits < 64 else 2**62
    x = rng.integers(-lim, lim, size=(40, 7), dtype=np.int64)
    x[0] = [-lim, lim - 1, -lim, 0, -1, lim - 1, 3]             # extremes, tie on the max
    x[1] = -lim                                                 # all equal
    x[2] = [lim - 1, -lim, 0, 0, 0, 0, 0]
    r0, r1 = _run(rng, x, lambda s, t: (ez.max(t, axis=-1, bits=bits).share,
                                         ez.argmax(t, axis=-1, bits=bits).share), engine=engine)
    assert np.array_equal(_signed(r0[0] + r1[0]), x.max(axis=-1))
    assert np.array_equal(_signed(r0[1] + r1[1]), x.argmax(axis=-1))


@pytest.mark.parametrize("engine", ["ot", "gc"])
@pytest.mark.parametrize("bits", [64, 21])
def test_maxpool_padding_reduced_width(rng, engine, bits):
    """Padding must lose against every representable value, the bottom one included."""
    lim = 2 ** (bits - 1) if bits < 64 else 2**62
    x = rng.integers(-lim, lim, size=(2, 5, 5), dtype=np.int64)
    x[0, 0, :] = -lim
    x[1, :, 0] = lim - 1
    r0, r1 = _run(rng, x, lambda s, t: ez.maxpool2d(t, 3, stride=2, padding=1, bits=bits).share, engine=engine)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=-lim)
    want = np.array([[[xp[c, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max() for j in range(3)] for i in range(3)]
                     for c in range(2)])
    assert np.array_equal(_signed(r0 + r1), want)


# ---------------------------------------------------------------------- truncation, extension

@pytest.mark.parametrize("f", [1, 12, 16, 40])
def test_trunc_exact_and_one_bit(rng, f):
    n = 400
    x = rng.integers(-(2**62), 2**62, size=n, dtype=np.int64)
    x[:8] = [0, -1, 1, -(2**62), 2**62 - 1, 2**f, -(2**f), (2**f) - 1]
    x[8:60] = rng.integers(-(2**(f + 3)), 2**(f + 3), size=52)
    x0, x1 = _split(rng, x)

    def party(s):
        sh = x0 if s.role == 0 else x1
        return trunc_shares(s, sh, f, exact=True), trunc_shares(s, sh, f, exact=False)

    (e0, o0), (e1, o1) = run_pair(party, party)
    want = x >> f
    assert np.array_equal(_signed(e0 + e1), want)
    diff = want - _signed(o0 + o1)
    assert set(np.unique(diff)) <= {0, 1}


def test_trunc_tensor_and_empty(rng):
    from ezprotocols.protocols.otcmp import trunc
    x = np.array([[3 << 20, -(5 << 20)], [7, -7]], np.int64)
    r0, r1 = _run(rng, x, lambda s, t: (lambda o: (o.share, o.scale))(trunc(t, 16)), scale=32)
    assert r0[1] == 16 and np.array_equal(_signed(r0[0] + r1[0]), x >> 16)
    e0, e1 = run_pair(lambda s: trunc_shares(s, np.zeros((0, 2), U64), 5),
                      lambda s: trunc_shares(s, np.zeros((0, 2), U64), 5))
    assert e0.shape == (0, 2)


@pytest.mark.parametrize("l", [1, 2, 20, 37, 63])
def test_extend(rng, l):
    x = _values(rng, l, 300)
    xr = x.astype(U64) & U64((1 << l) - 1)
    r = rng.integers(0, 2**64, size=x.shape, dtype=U64) & U64((1 << l) - 1)
    x0, x1 = r, (xr - r) & U64((1 << l) - 1)
    r0, r1 = run_pair(lambda s: extend(s, x0, l), lambda s: extend(s, x1, l))
    assert np.array_equal(_signed(r0 + r1), x)


# ---------------------------------------------------------------------- view, malformed frames

def _capture_recv(ch, log):
    orig = ch.recv_array

    def ra(step, dtype, shape, out=None):
        a = orig(step, dtype, shape, out=out)
        log.append((step, a.tobytes()))
        return a

    ch.recv_array = ra


def _chi2(ma, mb):
    ha = np.bincount(np.frombuffer(ma, np.uint8), minlength=256).astype(float)
    hb = np.bincount(np.frombuffer(mb, np.uint8), minlength=256).astype(float)
    tot = ha + hb
    keep = tot > 0
    ea = tot * ha.sum() / tot.sum()
    eb = tot * hb.sum() / tot.sum()
    return (((ha - ea) ** 2 / np.where(keep, ea, 1)) + ((hb - eb) ** 2 / np.where(keep, eb, 1)))[keep].sum()


@pytest.mark.parametrize("viewer", [0, 1])
def test_view_does_not_depend_on_peer_input(rng, viewer):
    """What one party receives for two very different inputs of the other: the same
    public parts (headers, sizes) and indistinguishable byte distributions (chi-square
    with 255 degrees of freedom, threshold far in the tail)."""
    n, nbits = 4000, 31
    mine = rng.integers(0, 2**nbits, size=n, dtype=U64)
    views = []
    for other in (np.zeros(n, U64), np.full(n, 2**nbits - 1, U64)):
        log = []

        def me(s):
            setup(s)
            _capture_recv(s.channel, log)
            millionaire_gt(s, mine, nbits)

        def peer(s):
            setup(s)
            millionaire_gt(s, other, nbits)

        run_pair(me if viewer == 0 else peer, peer if viewer == 0 else me)
        views.append(log)
    a, b = views
    assert [(st, len(m)) for st, m in a] == [(st, len(m)) for st, m in b]
    for (st, ma), (_, mb) in zip(a, b):
        if len(ma) < 256:
            assert ma == mb or ".open" in st, st         # OT headers are public and equal
            continue
        assert _chi2(ma, mb) < 600, (st, _chi2(ma, mb))


@pytest.mark.parametrize("nbits", [20, 63])
@pytest.mark.parametrize("bad_step", ["mill.leaf", "mill.open0", "mill.open1", "mill.open2"])
def test_malformed_frames_name_the_step(rng, bad_step, nbits):
    """Both parties shorten every message of one step; the first to receive one raises
    ProtocolError naming that step (20 bits: P0 sends the tables, 63 bits: P1)."""
    a = rng.integers(0, 2**nbits, size=50, dtype=U64)

    def lying(s):
        real = s.channel.send

        def send(step, data):
            if step == bad_step:
                data = np.asarray(data)[:-1]
            return real(step, data)

        s.channel.send = send
        return millionaire_gt(s, a, nbits)

    with pytest.raises(ProtocolError, match=bad_step.replace(".", r"\.")):
        run_pair(lying, lying, timeout=20)


def test_over_ferret_silent_ot(rng):
    """With Ferret as the OT source the triples take native random COTs (no choice bits
    sent) and the leaves use 3-bit digits; results are unchanged."""
    n, bits = 3000, 64
    x = _values(rng, bits, n)
    x0, x1 = _split(rng, x)

    def party(s):
        s.compare.setup()
        t = ArithTensor(s, x0 if s.role == 0 else x1, 0)
        with s.phase("relu"):
            y = ez.relu(t).share
        c = s.counters("relu")
        from ezprotocols.protocols.otcmp import digit_for
        return y, msb(t, bits=37).share, digit_for(s, 63), c.bytes_sent + c.bytes_recv

    r0, r1 = run_pair(party, party, timeout=120, ot="ferret", compare="ot")
    assert r0[2] == 3
    assert np.array_equal(_signed(r0[0] + r1[0]), np.maximum(x, 0))
    x37 = (x.astype(U64) >> U64(36)) & U64(1)
    assert np.array_equal(r0[1] ^ r1[1], x37.astype(np.uint8))
    assert r0[3] < 800 * n            # 1,600 bytes per ReLU over IKNP; Ferret iterations are coarse at small n


def test_truncate_methods_through_arith(rng):
    """``ArithTensor.truncate(method=...)``: "faithful" is exact, "onebit" (Cheetah) at
    most one unit low, both through the OT millionaires / additive COTs."""
    f = 16
    x = rng.integers(-(2**50), 2**50, size=500, dtype=np.int64)
    x[:4] = [0, -1, 2**f - 1, -(2**f)]
    x0, x1 = _split(rng, x)

    def party(s):
        t = ArithTensor.from_share(s, x0 if s.role == 0 else x1, 2 * f)
        return (t.truncate(f, method="faithful").share, t.truncate(f, method="onebit").share,
                t.truncate(f, method="exact").share)

    (a0, b0, c0), (a1, b1, c1) = run_pair(party, party)
    assert np.array_equal(_signed(a0 + a1), x >> f)
    assert set(np.unique((x >> f) - _signed(b0 + b1))) <= {0, 1}
    assert np.array_equal(_signed(c0 + c1), x >> f)


@pytest.mark.parametrize("f", [1, 16, 61])
def test_trunc_exact_whole_ring(rng, f):
    """``known_msb=False``: exact for every value of the ring, the extremes included."""
    x = rng.integers(-(2**63), 2**63 - 1, size=300, dtype=np.int64, endpoint=True)
    x[:8] = [0, -1, 1, -(2**63), 2**63 - 1, 2**62, -(2**62) - 1, 2**f]
    x0, x1 = _split(rng, x)

    def party(s):
        return trunc_shares(s, x0 if s.role == 0 else x1, f, known_msb=False)

    r0, r1 = run_pair(party, party)
    assert np.array_equal(_signed(r0 + r1), x >> f)
    with pytest.raises(ValueError):
        run_pair(lambda s: trunc_shares(s, x0, f, exact=False, known_msb=False),
                 lambda s: trunc_shares(s, x1, f, exact=False, known_msb=False))


def test_cost_table_ot_engine():
    """``python -m ezprotocols.costs --compare ot``: the counts follow the construction."""
    from ezprotocols.costs import measure
    rows = {r["op"]: r for r in measure(400, "ot")}
    relu = rows["relu (64-bit)"]
    assert relu["and_gates"] == 0 and relu["cots"] == 0
    # over IKNP 5-bit digits (best_digit): 13 digits at 63 bits, 7 at 31
    assert relu["rots"] == 63 + 2 * 12 and relu["additive_cots"] == 2
    assert rows["msb (32-bit bound)"]["rots"] == 31 + 2 * 6
    assert relu["rounds_p0"] == relu["rounds_p1"] == 8
    assert rows["msb (32-bit bound)"]["rounds_p0"] == 5 and rows["relu (32-bit bound)"]["rounds_p1"] == 7
