"""Linear and convolution layers with one party's weights: ideal functionality for both
OT decompositions, either owner, bias, batch shapes; the cost model against the
measured bytes; setup checks."""
import numpy as np
import pytest

from _arith_helpers import F, enc, floor_shift, pair, raw
from ezprotocols.arith import PrivateConv2d, PrivateLinear, conv2d_p0, linear, linear_p0
from ezprotocols.errors import ProtocolError
from test_arith_tensor import ref_conv_f


def own(s, owner, x):
    return s.input(x if s.role == owner else None, owner, shape=np.shape(x))


@pytest.mark.parametrize("owner", [0, 1])
@pytest.mark.parametrize("xshape", [(4, 6), (1, 6), (2, 3, 6), (0, 6)])
def test_private_linear(rng, owner, xshape):
    X = rng.normal(size=xshape) * 4
    W = rng.normal(size=(6, 5)) * 0.5
    b = rng.normal(size=5)

    def f(s):
        x = own(s, 1 - owner, X)
        out = {}
        for dec in ("mask", "weights", "auto"):
            layer = PrivateLinear(s, W if s.role == owner else None, shape=W.shape, owner=owner,
                                  bias=b if s.role == owner else None, decompose=dec)
            layer.prepare(xshape)
            out[dec] = s.reveal(layer(x, truncate=False), raw=True)
            out[dec + "_t"] = s.reveal(layer(x))                 # second call: on-demand mask
        return out

    r0, r1 = pair(f)
    exact = enc(X) @ enc(W) + enc(b, 2 * F)
    for dec in ("mask", "weights", "auto"):
        assert np.array_equal(raw(r0[dec]), exact), dec
        d = np.round(r0[dec + "_t"] * 2**F).astype(np.int64) - floor_shift(exact)
        assert np.all((d == 0) | (d == 1)), dec
        assert np.array_equal(r0[dec], r1[dec])


@pytest.mark.parametrize("dec", ["mask", "weights"])
def test_private_conv2d(rng, dec):
    X = rng.normal(size=(2, 4, 7, 6))
    W = rng.normal(size=(6, 2, 3, 3)) * 0.5
    b = rng.normal(size=6)
    cases = [dict(stride=2, padding=1, groups=2), dict(dilation=2, groups=1, stride=1, padding=0),
             dict(padding=(0, 1, 1, 0), groups=2)]

    def f(s):
        x = own(s, 1, X)
        out = []
        for c in cases:
            g = c.get("groups", 1)
            w = W if g == 2 else np.concatenate([W, W], axis=1)
            layer = PrivateConv2d(s, w if s.role == 0 else None, shape=w.shape, owner=0, decompose=dec,
                                  bias=b if s.role == 0 else None, **c)
            out.append(s.reveal(layer(x)))
        return out

    r0, _ = pair(f)
    for c, got in zip(cases, r0):
        g = c.get("groups", 1)
        w = W if g == 2 else np.concatenate([W, W], axis=1)
        pad = c.get("padding", 0)
        xx = np.pad(X, ((0, 0), (0, 0), (0, 1), (1, 0))) if isinstance(pad, tuple) else X
        e = ref_conv_f(xx, w, c.get("stride", 1), 0 if isinstance(pad, tuple) else pad, c.get("dilation", 1), g)
        assert np.max(np.abs(got - (e + b[None, :, None, None]))) < 2e-3


def test_cost_model_matches_measured_bytes(rng):
    X = rng.normal(size=(8, 40))
    W = rng.normal(size=(40, 30)) * 0.3
    Xc = rng.normal(size=(1, 3, 10, 10))
    Wc = rng.normal(size=(4, 3, 3, 3)) * 0.3

    def f(s):
        s.ot.setup()
        x = own(s, 1, X)
        xc = own(s, 1, Xc)
        res = {}
        for dec in ("mask", "weights"):
            lin = PrivateLinear(s, W if s.role == 0 else None, shape=W.shape, decompose=dec)
            cv = PrivateConv2d(s, Wc if s.role == 0 else None, shape=Wc.shape, padding=1, decompose=dec)
            with s.phase("lin" + dec):
                lin.prepare(X.shape)
            with s.phase("cv" + dec):
                cv.prepare(Xc.shape)
            with s.phase("online" + dec):
                lin(x)
            res[dec] = (lin.costs(X.shape), cv.costs(Xc.shape))
        auto = PrivateLinear(s, W if s.role == 0 else None, shape=W.shape).costs(X.shape)
        return res, s.stats(), auto

    (res, st, auto), _ = pair(f)
    assert auto["chosen"] == min(("mask", "weights", "he"), key=lambda k: auto[k])
    for dec in ("mask", "weights"):
        lc, cc = res[dec]
        assert lc["chosen"] == dec
        for measured, predicted in ((st["lin" + dec]["bytes"], lc[dec]), (st["cv" + dec]["bytes"], cc[dec])):
            assert abs(measured - predicted) <= 0.001 * predicted + 4096, (dec, measured, predicted)
        assert st["online" + dec]["bytes"] == lc["online"]         # one masked input, nothing else
        assert st["online" + dec]["rounds"] == 1


def test_weight_bits_announcement_and_checks(rng):
    W = np.array([[0.5, -0.25], [1.75, -2.0]])            # -2^17 <= W * 2^16 < 2^17: 18 signed bits

    def f(s):
        lay = PrivateLinear(s, W if s.role == 0 else None, shape=(2, 2))
        return lay.weight_bits

    assert pair(f) == (18, 18)

    def too_few(s):
        return PrivateLinear(s, W if s.role == 0 else None, shape=(2, 2), weight_bits=10)

    with pytest.raises(ValueError, match="weight_bits"):
        pair(too_few)

    def wrong_shape(s):
        return PrivateLinear(s, W if s.role == 0 else None, shape=(2, 2) if s.role == 0 else (2, 3))

    with pytest.raises(ProtocolError, match="arith.linear.setup.*shape"):
        pair(wrong_shape)

    def disagree(s):
        return PrivateLinear(s, W if s.role == 0 else None, shape=(2, 2), weight_bits=20 if s.role == 0 else 21)

    with pytest.raises(ProtocolError, match="weight_bits"):
        pair(disagree)


def test_functional_wrappers_raw(rng):
    """``linear_p0``/``conv2d_p0`` on raw (scale-0) tensors as the nn executor uses them."""
    X = rng.integers(-1000, 1000, (3, 5))
    W = rng.integers(-300, 300, (5, 2))
    Xc = rng.integers(-1000, 1000, (1, 2, 5, 5))
    Wc = rng.integers(-300, 300, (3, 2, 3, 3))

    def f(s):
        x = s.input(X if s.role == 1 else None, 1, shape=X.shape)
        xc = s.input(Xc if s.role == 1 else None, 1, shape=Xc.shape)
        a = linear_p0(x, W if s.role == 0 else None, wshape=W.shape)
        c = conv2d_p0(xc, Wc if s.role == 0 else None, wshape=Wc.shape, stride=1, padding=(1, 1, 1, 1))
        d = linear(x, W.astype(float) if s.role == 0 else None, shape=W.shape)
        return s.reveal(a), s.reveal(c), s.reveal(d)

    (a, c, d), _ = pair(f)
    assert np.array_equal(a, X @ W)
    assert np.array_equal(c, np.rint(ref_conv_f(Xc.astype(float), Wc.astype(float), 1, 1)).astype(np.int64))
    assert np.allclose(d, X @ W, atol=1e-3)


def test_owner_view_is_independent_of_the_input(rng):
    """What the weight owner receives online (E = X_m - R) looks uniform whatever X is:
    per-bit frequencies of E for an all-zero input and for a large input are both ~1/2."""
    W = rng.normal(size=(64, 8)) * 0.3
    seen = {}

    def f(s, X):
        x = s.input(X if s.role == 1 else None, 1, shape=X.shape)
        layer = PrivateLinear(s, W if s.role == 0 else None, shape=W.shape)
        if s.role == 0:
            orig = s.channel.recv_array

            def spy(step, dtype, shape, out=None):
                a = orig(step, dtype, shape, out=out)
                if step == "arith.linear.open":
                    seen.setdefault(X[0, 0], []).append(a.copy())
                return a
            s.channel.recv_array = spy
        layer(x)
        return True

    for X in (np.zeros((200, 64)), np.full((200, 64), 1000.0)):
        pair(lambda s: f(s, X))
    for k, arrs in seen.items():
        bits = np.unpackbits(np.concatenate(arrs).view(np.uint8))
        assert abs(bits.mean() - 0.5) < 0.005, k          # 819200 bits: 0.005 is 9 standard deviations
