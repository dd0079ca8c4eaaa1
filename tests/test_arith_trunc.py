"""Truncation: SecureML local truncation within its documented error bound (a
statistical test where the failure probability |x|/2^64 is large enough to be
measured), the faithful protocol exact on random and edge values, and its pieces
(millionaires' comparison, B2A of bits)."""
import numpy as np
import pytest

from _arith_helpers import F, U64, pair, raw
from ezprotocols.arith import ArithTensor
from ezprotocols.protocols.boolean import BoolTensor, b2a_bits, millionaire_gt


def share_raw(s, owner, v):
    """Share int64 ring values at scale F (uniformly random shares)."""
    t = s.input(v.view(U64) if s.role == owner else None, owner, shape=v.shape, raw=True)
    return ArithTensor.from_share(s, t.share, F)


def test_local_truncation_error_bound(rng):
    """Output in {floor, floor+1} except with probability |x|/2^64 (then off by ~2^(64-f))."""
    n = 40000
    mag = rng.integers(2**57, 2**59, n, dtype=np.int64)
    x = np.where(rng.integers(0, 2, n) == 1, mag, -mag)
    small = rng.integers(-2**40, 2**40, n, dtype=np.int64)

    def f(s):
        t = share_raw(s, 0, x).truncate(F, method="local")
        u = share_raw(s, 1, small).truncate(F, method="local")
        return s.reveal(t, raw=True), s.reveal(u, raw=True)

    (got, got_small), _ = pair(f)
    d = raw(got) - (x >> F)
    ok = (d == 0) | (d == 1)
    bad = ~ok
    # failures are wrap-arounds: off by +-2^(64-f) (plus the carry)
    wrap = np.abs(np.abs(d[bad].astype(np.float64)) - 2.0 ** (64 - F)) <= 1
    assert wrap.all()
    p = np.abs(x.astype(np.float64)) / 2.0 ** 64
    mean, sd = p.sum(), np.sqrt((p * (1 - p)).sum())
    assert abs(bad.sum() - mean) < 6 * sd + 3, (bad.sum(), mean, sd)
    # small values (|x| < 2^40): failure probability < 2^-24 per element, so none here
    d2 = raw(got_small) - (small >> F)
    assert np.all((d2 == 0) | (d2 == 1))
    # both outcomes of the carry occur (the +1 is real, not a bias of the test)
    assert 0 < (d2 == 1).sum() < n


EDGE = np.array([0, -1, 1, 2**62 - 1, -(2**62), 2**16, -(2**16), 2**16 - 1, -(2**16) + 1, -(2**16) - 1,
                 2**40 + 2**16 - 1, -(2**40), 12345678901234, -98765432109876], dtype=np.int64)


@pytest.mark.parametrize("f", [1, 4, 13, 16, 20, 31])
def test_faithful_truncation_exact(rng, f):
    r = rng.integers(-(2**62), 2**62, 300, dtype=np.int64)
    x = np.concatenate([EDGE, r, np.array([0], np.int64)[:0]])

    def fn(s):
        t = s.input(x.view(U64) if s.role == 1 else None, 1, shape=x.shape, raw=True)
        t = ArithTensor.from_share(s, t.share, f).truncate(f, method="faithful")
        return s.reveal(t, raw=True)

    got, _ = pair(fn)
    assert np.array_equal(raw(got), x >> f)


def test_faithful_default_and_shapes(rng):
    x = rng.normal(size=(3, 4)) * 50
    y = rng.normal(size=(4,)) * 50

    def fn(s):
        s.arith.trunc = "faithful"
        with pytest.raises(ValueError):
            s.arith.trunc = "nearest"
        a = s.input(x if s.role == 0 else None, 0, shape=x.shape)
        b = s.input(y if s.role == 1 else None, 1, shape=y.shape)
        e = s.input(np.zeros((0, 4)) if s.role == 1 else None, 1, shape=(0, 4))
        return s.reveal(a * b, raw=True), s.reveal(a @ b, raw=True), (e * b).shape

    (prod, mm, eshape), _ = pair(fn)
    ex = np.rint(x * 2**F).astype(np.int64)
    ey = np.rint(y * 2**F).astype(np.int64)
    assert np.array_equal(raw(prod), (ex * ey) >> F)
    assert np.array_equal(raw(mm), (ex @ ey) >> F)
    assert eshape == (0, 4)


@pytest.mark.parametrize("nbits", [1, 3, 4, 16, 17, 32])
def test_millionaire(rng, nbits):
    hi = 2**nbits
    a = rng.integers(0, hi, 500, dtype=np.uint64)
    b = rng.integers(0, hi, 500, dtype=np.uint64)
    b[:100] = a[:100]                                   # ties
    a[100:110], b[100:110] = hi - 1, 0
    a[110:120], b[110:120] = 0, hi - 1

    def fn(s):
        return millionaire_gt(s, a if s.role == 0 else b, nbits)

    g0, g1 = pair(fn)
    assert np.array_equal(g0 ^ g1, (a > b).astype(np.uint8))


def test_b2a(rng):
    b0 = rng.integers(0, 2, 1000).astype(np.uint8)
    b1 = rng.integers(0, 2, 1000).astype(np.uint8)

    def fn(s):
        return b2a_bits(BoolTensor(s, b0 if s.role == 0 else b1)).share

    a0, a1 = pair(fn)
    assert np.array_equal(a0 + a1, (b0 ^ b1).astype(U64))


def test_local_truncation_error_is_a_function_of_the_openers_share(rng):
    """Why a local truncation must not be opened: the error bit e of the opened result is
    [x mod 2^f + ((-x1) mod 2^f) >= 2^f], fixed by P1's own share and the discarded low
    bits of x, so P1 (seeing the opening and its share) tells apart two secrets with the
    same floor(x / 2^f)."""
    from ezprotocols.arith.trunc import trunc_local
    f, n = 16, 20000
    x0 = rng.integers(0, 2**63, n, dtype=np.uint64) * U64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    seen = {}
    for low in (1, 2**f - 1):                       # same floor(x / 2^f) = 5, different low bits
        x = U64(5 * 2**f + low)
        x1 = x - x0                                 # P1's share (uniform: x0 uniform)
        y = trunc_local(x0, f, 0) + trunc_local(x1, f, 1)
        e = (y - U64(5)).astype(np.int64)
        l1 = (U64(0) - x1) & U64(2**f - 1)
        assert set(np.unique(e)) <= {0, 1}          # no wrap at this |x|
        assert np.array_equal(e, (int(low) + l1.astype(np.int64) >= 2**f).astype(np.int64))
        seen[low] = (l1, e)
    # P1's view (its share's low bits, opened result): for the same share threshold the
    # two secrets give different opened values with overwhelming frequency
    (l1a, ea), (l1b, eb) = seen[1], seen[2**f - 1]
    mid_a = (l1a > 1) & (l1a < 2**f - 1)
    mid_b = (l1b > 1) & (l1b < 2**f - 1)
    assert ea[mid_a].max() == 0 and eb[mid_b].min() == 1


def test_serve_warns_when_logits_are_opened_after_a_probabilistic_truncation():
    from ezprotocols.party.serve import logits_warning
    for trunc in ("local", "onebit"):
        w = logits_warning(True, trunc)
        assert w and "--trunc faithful" in w and trunc in w
    assert logits_warning(True, "faithful") is None and logits_warning(True, "exact") is None
    assert logits_warning(False, "local") is None
