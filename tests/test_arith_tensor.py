"""ArithTensor: ideal functionality of every op (both parties run, the result is
reconstructed and compared with cleartext) on random and edge values, including
empty shapes and batch 1; input/reveal; misuse errors."""
import numpy as np
import pytest

from _arith_helpers import F, U64, enc, floor_shift, pair, raw
from ezprotocols.arith import ArithTensor, concatenate, from_public, stack, where_public
from ezprotocols.errors import ProtocolError

EDGE_INT = np.array([0, -1, 1, 2**62, -(2**62), 2**63 - 1, -(2**63), 12345], dtype=np.int64)
BIG = (2.0 ** 63 - 2.0 ** 10) / 2.0 ** F        # largest fixed-point magnitude


def own(s, owner, x, shape=None, **kw):
    shape = np.shape(x) if shape is None else shape
    return s.input(x if s.role == owner else None, owner, shape=shape, **kw)


# --------------------------------------------------------------------------- input / reveal

@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 4), (2, 0, 3), (1, 1, 1, 5)])
def test_input_reveal_shapes(rng, shape):
    x = rng.normal(size=shape) * 10

    def f(s):
        t0 = own(s, 0, x)
        t1 = own(s, 1, x)
        return (s.reveal(t0), s.reveal(t1, to=0), s.reveal(t1, to=1), t0.shape, t0.scale)

    r0, r1 = pair(f)
    for r in (r0, r1):
        assert r[3] == shape and r[4] == F
        assert np.all(np.abs(r[0] - x) <= 2.0 ** -17)
    assert np.all(np.abs(r0[1] - x) <= 2.0 ** -17) and r1[1] is None
    assert r0[2] is None and np.all(np.abs(r1[2] - x) <= 2.0 ** -17)


def test_input_edge_values_raw_and_fixed():
    fx = np.array([0.0, -1.0, BIG, -BIG, 2.0 ** -16, -(2.0 ** -16)])

    def f(s):
        ti = own(s, 1, EDGE_INT)                         # integers: raw ring elements
        tf = own(s, 0, fx)
        tr = own(s, 0, EDGE_INT.view(U64), raw=True)
        ty = own(s, 0, np.array([3, -7]), fixed=True)    # integers encoded as fixed point
        return (s.reveal(ti), s.reveal(ti, raw=True), s.reveal(tf), s.reveal(tr), ti.scale, tr.scale,
                s.reveal(ty), ty.scale)

    r0, r1 = pair(f)
    assert r0[0].dtype == np.int64 and np.array_equal(r0[0], EDGE_INT)
    assert r0[1].dtype == U64 and np.array_equal(r0[1], EDGE_INT.view(U64))
    assert np.array_equal(r1[2], fx)
    assert np.array_equal(r1[3], EDGE_INT) and r0[4] == 0 and r0[5] == 0
    assert r0[6].tolist() == [3.0, -7.0] and r0[7] == F


def test_input_is_uniformly_masked():
    """The non-owner's share is pseudorandom (not the value); the owner sends a seed, not the value."""
    x = np.zeros(1000)

    def f(s):
        t = own(s, 0, x)
        return t.share.copy(), s.counters("total").bytes_sent

    (a, sent0), (b, _) = pair(f)
    assert np.array_equal(a + b, np.zeros(1000, U64))
    assert len(np.unique(b)) == 1000                      # random-looking, not zeros
    assert sent0 < 1000                                   # a seed and a header, not 8 KB of shares


def test_input_misuse():
    def shape_mismatch(s):
        return s.input(np.ones(3) if s.role == 0 else None, 0, shape=(3,) if s.role == 0 else (4,))

    with pytest.raises(ProtocolError, match="arith.input.*shape"):
        pair(shape_mismatch)

    def fixed_mismatch(s):
        return s.input(np.ones(3) if s.role == 0 else None, 0, shape=(3,), fixed=None if s.role == 0 else False)

    with pytest.raises(ProtocolError, match="arith.input"):
        pair(fixed_mismatch)

    def local_errors(s):
        # misuse detected before anything is sent: checked inside one session, which then goes on
        x = np.ones(3)
        if s.role == 1:
            with pytest.raises(ValueError, match="does not own"):
                s.input(x, 0, shape=(3,))
            with pytest.raises(ValueError, match="must pass the shape"):
                s.input(None, 0)
        else:
            with pytest.raises(TypeError, match="floating"):
                s.input(x, 0, shape=(3,), raw=True)
            with pytest.raises(ValueError, match="must pass a value"):
                s.input(None, 0, shape=(3,))
            with pytest.raises(ValueError, match="shape"):
                s.input(x, 0, shape=(4,))
        return s.reveal(s.input(x if s.role == 0 else None, 0, shape=(3,))).tolist()

    assert pair(local_errors) == ([1.0] * 3, [1.0] * 3)


def test_reveal_misuse():
    def f(s):
        t = own(s, 0, np.ones(2))
        with pytest.raises(ValueError, match="to must be"):
            s.reveal(t, to=2)
        with pytest.raises(TypeError):
            s.reveal(np.ones(2))
        with pytest.raises(TypeError, match="truth value"):
            bool(t)
        return True

    assert pair(f) == (True, True)


# --------------------------------------------------------------------------- local ops

def test_linear_ops_and_public_constants(rng):
    x = rng.normal(size=(3, 1)) * 5
    y = rng.normal(size=(1, 4)) * 5
    c = rng.normal(size=(3, 4))
    ci = rng.integers(-50, 50, size=(3, 4))

    def f(s):
        tx, ty = own(s, 0, x), own(s, 1, y)
        ti = own(s, 1, ci)
        out = {
            "add": tx + ty, "sub": tx - ty, "neg": -tx, "radd": 2.5 + tx, "rsub": 1 - tx,
            "addarr": tx + c, "raddarr": c + ty, "subint": ty - 3, "int_plus_float": ti + 0.5,
            "int_plus_fixed": ti + tx, "int_times_int": ti * 3, "fixed_times_int": tx * -2,
            "sum": (tx + ty).sum(), "sum0": (tx + ty).sum(axis=0), "sumk": (tx + ty).sum(axis=1, keepdims=True),
            "T": (tx + ty).T, "idx": (tx + ty)[1:, ::2], "reshape": (tx + ty).reshape(2, 6),
            "bcast": tx.broadcast_to((3, 4)), "cat": concatenate([tx, tx], axis=1),
            "stack": stack([ty, ty]), "pad": tx.pad(((1, 0), (0, 2))),
            "where": where_public(c > 0, tx.broadcast_to((3, 4)), ty.broadcast_to((3, 4))),
            "pub": from_public(s, c) + tx, "div": tx / 4,
        }
        return {k: s.reveal(v) for k, v in out.items()}

    r0, r1 = pair(f)
    tol = 2.0 ** -14
    exp = {"add": x + y, "sub": x - y, "neg": -x, "radd": 2.5 + x, "rsub": 1 - x, "addarr": x + c,
           "raddarr": c + y, "subint": y - 3, "int_plus_float": ci + 0.5, "int_plus_fixed": ci + x,
           "int_times_int": ci * 3, "fixed_times_int": x * -2, "sum": (x + y).sum(), "sum0": (x + y).sum(0),
           "sumk": (x + y).sum(1, keepdims=True), "T": (x + y).T, "idx": (x + y)[1:, ::2],
           "reshape": (x + y).reshape(2, 6), "bcast": np.broadcast_to(x, (3, 4)),
           "cat": np.concatenate([x, x], 1), "stack": np.stack([y, y]), "pad": np.pad(x, ((1, 0), (0, 2))),
           "where": np.where(c > 0, np.broadcast_to(x, (3, 4)), np.broadcast_to(y, (3, 4))),
           "pub": c + x, "div": x / 4}
    for k, e in exp.items():
        assert r0[k].shape == np.shape(e), k
        assert np.all(np.abs(r0[k] - e) <= tol * 12), k
        assert np.array_equal(r0[k], r1[k]), k
    assert r0["int_times_int"].dtype == np.int64 and np.array_equal(r0["int_times_int"], ci * 3)


def test_ring_edge_values_exact():
    """Scale-0 tensors are exact ring arithmetic mod 2^64, including the extremes."""
    def f(s):
        a = own(s, 0, EDGE_INT)
        b = own(s, 1, EDGE_INT[::-1].copy())
        return [s.reveal(v, raw=True) for v in (a + b, a - b, -a, a * b, a * -1, a * 3 + 2**62)]

    r0, _ = pair(f)
    A, B = EDGE_INT.view(U64), EDGE_INT[::-1].copy().view(U64)
    for got, e in zip(r0, (A + B, A - B, -A, A * B, A * U64(2**64 - 1), A * U64(3) + U64(2**62))):
        assert np.array_equal(got, e)


def test_setitem_keeps_value():
    x = np.arange(6, dtype=np.float64).reshape(2, 3)

    def f(s):
        t = own(s, 0, x)
        u = own(s, 1, -x)
        t[0, 1] = 9.5
        t[1] = u[0]
        return s.reveal(t)

    r0, _ = pair(f)
    e = x.copy()
    e[0, 1] = 9.5
    e[1] = -x[0]
    assert np.array_equal(r0, e)


# --------------------------------------------------------------------------- multiplication

def _check_fixed_product(raw_result, exact_scaled):
    """Local truncation: floor or floor+1 of the exact product (overwhelming probability)."""
    d = raw(raw_result) - floor_shift(exact_scaled)
    assert np.all((d == 0) | (d == 1)), d[(d != 0) & (d != 1)]


@pytest.mark.parametrize("shape_x,shape_y", [((5,), (5,)), ((1,), (1,)), ((0,), (0,)), ((3, 1), (1, 4)),
                                             ((2, 3, 4), (4,)), ((), (7,))])
def test_mul_shared(rng, shape_x, shape_y):
    x = rng.normal(size=shape_x) * 30
    y = rng.normal(size=shape_y) * 30

    def f(s):
        tx, ty = own(s, 0, x), own(s, 1, y)
        return s.reveal(tx * ty, raw=True), s.reveal(ty * tx), (tx * ty).scale

    r0, r1 = pair(f)
    assert r0[0].shape == np.broadcast_shapes(np.shape(x), np.shape(y)) and r0[2] == F
    _check_fixed_product(r0[0], enc(x) * enc(y))
    assert np.all(np.abs(r1[1] - x * y) <= 2.0 ** -16 * (np.abs(x) + np.abs(y) + 2))


def test_mul_edge_values():
    """0, -1, the largest magnitude (times an integer or by 0), +-2^62 in the ring."""
    fx = np.array([0.0, -1.0, BIG, -BIG, 1.0, 123.25])
    k = np.array([5, 0, 1, -1, -1, 0])

    def f(s):
        tf = own(s, 0, fx)
        ti = own(s, 1, k)                 # shared integers: no truncation needed
        tz = own(s, 1, np.zeros(6))
        tm = own(s, 1, -np.ones(6))
        return s.reveal(tf * ti), s.reveal(tf * tz), s.reveal((tf[:2] * tm[:2])), s.reveal(tf[4:] * tm[4:])

    r0, _ = pair(f)
    assert np.array_equal(r0[0], fx * k)
    assert np.array_equal(r0[1], np.zeros(6))
    assert np.array_equal(r0[2], [0.0, 1.0])
    assert np.array_equal(r0[3], [-1.0, -123.25])


def test_mul_public_and_methods(rng):
    x = rng.normal(size=50) * 4
    c = rng.normal(size=50)

    def f(s):
        tx = own(s, 1, x)
        return (s.reveal(tx * c, raw=True), s.reveal(tx.mul(c, method="faithful"), raw=True),
                s.reveal(tx * 0.5, raw=True), s.reveal(tx.mul(tx, truncate=False), raw=True),
                s.reveal(tx.mul_raw(c), raw=True))

    r0, _ = pair(f)
    ex = enc(x) * enc(c)
    _check_fixed_product(r0[0], ex)
    assert np.array_equal(raw(r0[1]), floor_shift(ex))
    _check_fixed_product(r0[2], enc(x) * enc(0.5))
    assert np.array_equal(raw(r0[3]), enc(x) * enc(x))
    assert np.array_equal(raw(r0[4]), ex)


# --------------------------------------------------------------------------- matmul

@pytest.mark.parametrize("sa,sb", [((4, 6), (6, 3)), ((6,), (6, 3)), ((4, 6), (6,)), ((6,), (6,)),
                                   ((2, 4, 6), (6, 3)), ((1, 1), (1, 1)), ((0, 5), (5, 2)), ((3, 0), (0, 2))])
def test_matmul_shared(rng, sa, sb):
    a = rng.normal(size=sa) * 3
    b = rng.normal(size=sb) * 3

    def f(s):
        ta, tb = own(s, 1, a), own(s, 0, b)
        return s.reveal(ta @ tb, raw=True), s.reveal(ta @ b, raw=True), s.reveal(a @ tb, raw=True)

    r0, _ = pair(f)
    ex = enc(a) @ enc(b)
    for got in r0:
        assert got.shape == np.shape(a @ b)
        _check_fixed_product(got, ex)


def test_matmul_misuse():
    def f(s):
        ta = own(s, 0, np.ones((2, 3)))
        with pytest.raises(ValueError, match="align"):
            ta @ np.ones((2, 3))
        with pytest.raises(ValueError, match="align"):
            ta @ ta
        return True

    assert pair(f) == (True, True)


# --------------------------------------------------------------------------- conv2d / pooling

def ref_conv_f(x, w, stride=1, pad=0, dil=1, groups=1):
    """Plain numpy float reference convolution (cross-correlation, NCHW)."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    HO = (H + 2 * pad - dil * (KH - 1) - 1) // stride + 1
    WO = (W + 2 * pad - dil * (KW - 1) - 1) // stride + 1
    out = np.zeros((N, O, HO, WO))
    Og = O // groups
    for o in range(O):
        g = o // Og
        for i in range(KH):
            for j in range(KW):
                patch = xp[:, g * Cg:(g + 1) * Cg, i * dil:i * dil + stride * (HO - 1) + 1:stride,
                           j * dil:j * dil + stride * (WO - 1) + 1:stride]
                out[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, i, j])
    return out


def test_conv2d_public_and_shared_kernel(rng):
    x = rng.normal(size=(2, 4, 7, 6))
    w = rng.normal(size=(6, 2, 3, 3)) * 0.5
    b = rng.normal(size=6)

    def f(s):
        tx = own(s, 1, x)
        tw = own(s, 0, w)
        return (s.reveal(tx.conv2d(w, stride=2, padding=1, groups=2)),
                s.reveal(tx.conv2d(tw, bias=b, stride=1, padding=0, dilation=2, groups=2)),
                s.reveal(tx[:1].conv2d(tw[:, :, :1, :1], groups=2)),
                s.reveal(tx.conv2d(tw, bias=own(s, 0, b), padding=(0, 1, 1, 0), groups=2)))

    r0, _ = pair(f)
    assert np.max(np.abs(r0[0] - ref_conv_f(x, w, 2, 1, 1, 2))) < 1e-3
    assert np.max(np.abs(r0[1] - (ref_conv_f(x, w, 1, 0, 2, 2) + b[None, :, None, None]))) < 1e-3
    assert np.max(np.abs(r0[2] - ref_conv_f(x[:1], w[:, :, :1, :1], groups=2))) < 1e-3
    xp = np.pad(x, ((0, 0), (0, 0), (0, 1), (1, 0)))                   # asymmetric (top, left, bottom, right)
    assert np.max(np.abs(r0[3] - (ref_conv_f(xp, w, groups=2) + b[None, :, None, None]))) < 1e-3


def test_avg_pool(rng):
    x = rng.normal(size=(1, 3, 6, 6)) * 4

    def f(s):
        tx = own(s, 0, x)
        return s.reveal(tx.avg_pool2d(2)), s.reveal(tx.avg_pool2d(3, stride=1, padding=1)), \
            s.reveal(tx.sum_pool2d(2)), s.reveal(tx.mean(axis=(2, 3)))

    r0, _ = pair(f)
    e2 = x.reshape(1, 3, 3, 2, 3, 2).mean(axis=(3, 5))
    assert np.max(np.abs(r0[0] - e2)) < 1e-3
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    e3 = np.stack([xp[:, :, i:i + 6, j:j + 6] for i in range(3) for j in range(3)]).sum(0) / 9
    assert np.max(np.abs(r0[1] - e3)) < 1e-3
    assert np.max(np.abs(r0[2] - x.reshape(1, 3, 3, 2, 3, 2).sum(axis=(3, 5)))) < 1e-3
    assert np.max(np.abs(r0[3] - x.mean(axis=(2, 3)))) < 1e-2


def test_from_share_and_truncate_helpers(rng):
    import ezprotocols.arith as A
    x = rng.normal(size=10)

    def f(s):
        tx = own(s, 0, x)
        p = tx.mul_raw(tx)                                   # scale 2F
        q = ArithTensor.from_share(s, p.share, 0)            # the nn executor's raw view
        return s.reveal(A.truncate(q, F), raw=True), s.reveal(A.truncate(p, F))

    r0, _ = pair(f)
    _check_fixed_product(r0[0], enc(x) * enc(x))
    assert np.all(np.abs(r0[1] - x * x) < 1e-3)


def test_conv2d_empty_batch_and_batch1(rng):
    x1 = rng.normal(size=(1, 2, 5, 5))
    w = rng.normal(size=(3, 2, 3, 3)) * 0.5

    def f(s):
        out = []
        for x in (x1, np.zeros((0, 2, 5, 5))):
            tx = own(s, 0, x)
            tw = own(s, 1, w)
            out.append((s.reveal(tx.conv2d(tw, padding=1)), s.reveal(tx.conv2d(w)), s.reveal(tx.avg_pool2d(2))))
        return out

    r0, _ = pair(f)
    (a, b, c), (ea, eb, ec) = r0
    assert np.max(np.abs(a - ref_conv_f(x1, w, 1, 1))) < 1e-3
    assert np.max(np.abs(b - ref_conv_f(x1, w))) < 1e-3
    assert c.shape == (1, 2, 2, 2)
    assert ea.shape == (0, 3, 5, 5) and eb.shape == (0, 3, 3, 3) and ec.shape == (0, 2, 2, 2)
