"""max, argmax (ties -> lowest index) and max pooling against numpy."""
import numpy as np
import pytest

import ezprotocols as ez
from ezprotocols import ArithTensor
from ezprotocols.testing import run_pair

LO, HI = -(2**62), 2**62 - 1


def _split(rng, x):
    x = np.asarray(x, np.int64).astype(np.uint64)
    r = rng.integers(0, 2**64, size=x.shape, dtype=np.uint64)
    return r, x - r


def _shared(rng, x, fn):
    x0, x1 = _split(rng, x)

    def party(s):
        return fn(s, ArithTensor(s, x0 if s.role == 0 else x1, 0))

    r0, r1 = run_pair(party, party)
    return r0, r1


def _open(r0, r1):
    return (r0 + r1).view(np.int64)


@pytest.mark.parametrize("shape,axis", [((1, 1), -1), ((7, 10), 1), ((10, 7), 0), ((3, 5, 9), -1),
                                        ((3, 5, 9), 1), ((4, 3), None), ((2, 1, 3), 1)])
def test_max_argmax_random(rng, shape, axis):
    x = rng.integers(-50, 50, size=shape, dtype=np.int64)      # small range: many ties
    r0, r1 = _shared(rng, x, lambda s, t: (ez.max(t, axis=axis).share, ez.argmax(t, axis=axis).share))
    assert np.array_equal(_open(r0[0], r1[0]), np.max(x, axis=axis))
    assert np.array_equal(_open(r0[1], r1[1]), np.argmax(x, axis=axis))


def test_argmax_ties_and_extremes(rng):
    x = np.array([[5, 5, 5, 5],
                  [LO, LO, LO, LO],
                  [HI, LO, HI, 0],
                  [LO, HI, HI, HI],
                  [0, -1, 0, -1],
                  [-1, -1, -1, 0],
                  [3, 2, 1, 3]], dtype=np.int64)
    r0, r1 = _shared(rng, x, lambda s, t: (ez.argmax(t).share, ez.max(t, axis=1).share,
                                          ez.argmax(t, axis=-1, keepdims=True).shape))
    assert np.array_equal(_open(r0[0], r1[0]), np.argmax(x, axis=1))
    assert np.array_equal(_open(r0[1], r1[1]), np.max(x, axis=1))
    assert r0[2] == (7, 1)


def test_argmax_1000x10_fixed_point(rng):
    x = rng.normal(size=(1000, 10)) * 4
    x[:20, 3] = x[:20, 7] = 100.0        # exact ties between columns 3 and 7

    def party(s):
        t = s.input(x if s.role == 1 else None, owner=1, shape=x.shape)
        return s.reveal(ez.argmax(t, axis=-1), raw=True)

    r0, r1 = run_pair(party, party)
    assert np.array_equal(np.asarray(r0).astype(np.int64), np.argmax(x, axis=1))
    assert np.array_equal(r0, r1)


def _ref_maxpool(x, k, s, p, d=(1, 1), ceil=False):
    import math
    N, C, H, W = x.shape
    pt, pl, pb, pr = p
    fill = -(2**62)
    ekh, ekw = (k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1
    rnd = math.ceil if ceil else math.floor
    Ho = rnd((H + pt + pb - ekh) / s[0]) + 1
    Wo = rnd((W + pl + pr - ekw) / s[1]) + 1
    if ceil:
        if (Ho - 1) * s[0] >= H + pt:
            Ho -= 1
        if (Wo - 1) * s[1] >= W + pl:
            Wo -= 1
    xp = np.full((N, C, H + pt + pb + 8, W + pl + pr + 8), fill, np.int64)
    xp[:, :, pt:pt + H, pl:pl + W] = x
    out = np.empty((N, C, Ho, Wo), np.int64)
    for i in range(Ho):
        for j in range(Wo):
            win = xp[:, :, i * s[0]:i * s[0] + ekh:d[0], j * s[1]:j * s[1] + ekw:d[1]]
            out[:, :, i, j] = win.max(axis=(2, 3))
    return out


@pytest.mark.parametrize("shape,kw,ref", [
    ((1, 16, 24, 24), dict(kernel=2), dict(k=(2, 2), s=(2, 2), p=(0, 0, 0, 0))),
    ((2, 3, 7, 9), dict(kernel=3, stride=2, padding=1), dict(k=(3, 3), s=(2, 2), p=(1, 1, 1, 1))),
    ((1, 2, 6, 5), dict(kernel=(2, 3), stride=(1, 2)), dict(k=(2, 3), s=(1, 2), p=(0, 0, 0, 0))),
    ((1, 1, 7, 7), dict(kernel=2, stride=2, dilation=2), dict(k=(2, 2), s=(2, 2), p=(0, 0, 0, 0), d=(2, 2))),
    ((1, 2, 5, 5), dict(kernel=2, stride=2, ceil_mode=True), dict(k=(2, 2), s=(2, 2), p=(0, 0, 0, 0), ceil=True)),
    ((1, 1, 4, 4), dict(kernel=2, padding=(0, 1, 1, 0)), dict(k=(2, 2), s=(2, 2), p=(0, 1, 1, 0))),
])
def test_maxpool2d(rng, shape, kw, ref):
    x = rng.integers(-1000, 1000, size=shape, dtype=np.int64)
    x.reshape(-1)[:2] = [LO, HI]
    r0, r1 = _shared(rng, x, lambda s, t: ez.maxpool2d(t, **kw).share)
    assert np.array_equal(_open(r0, r1), _ref_maxpool(x, **ref))


def test_maxpool_3d_input_and_misuse(rng):
    x = rng.integers(-9, 9, size=(2, 4, 4), dtype=np.int64)

    def fn(s, t):
        with pytest.raises(ValueError):
            ez.maxpool2d(t.reshape(32), 2)
        with pytest.raises(ValueError):
            ez.maxpool2d(t, 5)
        return ez.maxpool2d(t, 2).share

    r0, r1 = _shared(rng, x, fn)
    assert np.array_equal(_open(r0, r1), _ref_maxpool(x[None], (2, 2), (2, 2), (0, 0, 0, 0))[0])
