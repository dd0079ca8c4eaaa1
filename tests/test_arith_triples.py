"""Correlated randomness: triples satisfy c = a*b (elementwise, matrix, convolution) from
OT and from the dealer; pools and the offline/online split; the vector-OLE bytes match
the formula; the dealer is never used unless chosen."""
import numpy as np
import pytest

from _arith_helpers import U64, pair
from ezprotocols.arith import cross, dealer, ot_source
from ezprotocols.arith.conv import Conv2dGeom, conv2d_ring
from ezprotocols.arith.ole import ole_accumulate, ole_bytes
from ezprotocols.backends import DEFAULTS

TS = DEFAULTS["triples"]          # the default (secure) triple source


@pytest.mark.parametrize("source", ["ot", "he", "dealer"])
def test_mul_triples(source):
    sizes = [0, 1, 127, ot_source.ELEM_CHUNK + 3]

    def f(s):
        return [s.triples.mul(n) for n in sizes]

    r0, r1 = pair(f, triples=source)
    for n, t0, t1 in zip(sizes, r0, r1):
        a, b, c = (x + y for x, y in zip(t0, t1))
        assert a.shape == (n,) and np.array_equal(c, a * b)
        if n > 1:
            assert len(np.unique(a)) == n                 # shares are random, not constant


@pytest.mark.parametrize("source", ["ot", "he", "dealer"])
def test_matmul_triples(source):
    shapes = [(1, 5, 1), (3, 4, 7), (7, 4, 3), (2, 0, 3), (0, 3, 2), (1, 1, 1)]

    def f(s):
        return [s.triples.matmul(*sh) for sh in shapes]

    r0, r1 = pair(f, triples=source)
    for sh, t0, t1 in zip(shapes, r0, r1):
        A, B, C = (x + y for x, y in zip(t0, t1))
        assert A.shape == sh[:2] and B.shape == sh[1:] and np.array_equal(C, A @ B)


@pytest.mark.parametrize("source", ["ot", "he", "dealer"])
def test_conv2d_triples(source):
    geoms = [Conv2dGeom.make((2, 4, 6, 5), (6, 2, 3, 3), 2, 1, 1, 2),
             Conv2dGeom.make((1, 1, 8, 8), (3, 1, 5, 5)),
             Conv2dGeom.make((3, 2, 4, 4), (2, 2, 1, 1), 1, (0, 1, 1, 0))]

    def f(s):
        return [s.triples.conv2d(g) for g in geoms]

    r0, r1 = pair(f, triples=source)
    for g, t0, t1 in zip(geoms, r0, r1):
        A, B, C = (x + y for x, y in zip(t0, t1))
        assert np.array_equal(C, conv2d_ring(A, B, g))


def test_cross_decompositions_agree(rng):
    """Both decompositions of the cross products give the same (correct) result."""
    L = rng.integers(0, 2**64, (3, 5), dtype=U64)
    R = rng.integers(0, 2**64, (5, 4), dtype=U64)
    g = Conv2dGeom.make((2, 2, 5, 5), (4, 1, 3, 3), 1, 1, 1, 2)
    X = rng.integers(0, 2**64, g.x_shape, dtype=U64)
    K = rng.integers(-2000, 2000, g.w_shape).astype(np.int64).view(U64)

    def f(s):
        out = []
        for d in ("L", "R"):
            out.append(cross.cross_matmul(s, l_owner=1, m=3, k=5, n=4, L=L if s.role == 1 else None,
                                          R=R if s.role == 0 else None, decompose=d))
        for d in ("X", "K"):
            out.append(cross.cross_conv2d(s, x_owner=0, geom=g, X=X if s.role == 0 else None,
                                          K=K if s.role == 1 else None, decompose=d))
            out.append(cross.cross_conv2d(s, x_owner=0, geom=g, X=X if s.role == 0 else None,
                                          K=K if s.role == 1 else None, decompose=d, nbits=13, signed=True)
                       if d == "K" else out[-1])
        return out

    r0, r1 = pair(f)
    got = [a + b for a, b in zip(r0, r1)]
    assert np.array_equal(got[0], L @ R) and np.array_equal(got[1], L @ R)
    ref = conv2d_ring(X, K, g)
    for v in got[2:]:
        assert np.array_equal(v, ref)


def test_ole_bytes_match_formula(rng):
    P, m, nbits = 40, 9, 17
    vals = rng.integers(0, 2**nbits, P, dtype=U64)
    corr = rng.integers(0, 2**64, (6, m), dtype=U64)
    ci = rng.integers(0, 6, P)
    ai = rng.integers(0, 3, P)

    def f(s):
        s.ot.setup()
        with s.phase("rot"):
            if s.role == 0:
                s.ot.recv_rot(np.zeros(P * nbits, np.uint8))
            else:
                s.ot.send_rot(P * nbits)
        with s.phase("ole"):
            acc = ole_accumulate(s, receiver=0, nbits=nbits, ci=ci, ai=ai, n_acc=3, m=m,
                                 values=vals if s.role == 0 else None, corr=corr if s.role == 1 else None)
        st = s.stats()
        return acc, st["rot"]["bytes"], st["ole"]["bytes"]

    (a0, rot, ole), (a1, _, _) = pair(f)
    exp = np.zeros((3, m), U64)
    for p in range(P):
        exp[ai[p]] += vals[p] * corr[ci[p]]
    assert np.array_equal(a0 + a1, exp)
    width_bits = P * m * sum(64 - b for b in range(nbits))
    assert ole - rot == (width_bits + 63) // 64 * 8          # corrections: exactly 64-b bits per value
    assert ole_bytes(P, m, nbits, 0) == (width_bits + 7) // 8


def test_pools_and_offline_online_split():
    n = 1000

    def f(s):
        x = s.input(np.ones(n) * 2 if s.role == 0 else None, 0, shape=(n,))
        y = s.input(np.ones(n) * 3 if s.role == 1 else None, 1, shape=(n,))
        with s.phase("offline"):
            s.triples.prepare([("mul", 400), ("mul", 700), ("matmul", (2, 3), (3, 2))])
            avail = s.triples.available()
        with s.phase("online"):
            z = x * y                                        # spans both prepared chunks
            w = x[:6].reshape(2, 3) @ y[:6].reshape(3, 2)
        with s.phase("more"):
            z2 = z * y[:1]                                   # 100 left + on-demand generation
        st = s.stats()
        return s.reveal(z), s.reveal(w), s.reveal(z2), avail, st, s.triples.report()

    (z, w, z2, avail, st, rep), _ = pair(f)
    assert np.all(np.abs(z - 6) < 1e-3) and np.all(np.abs(w - 18) < 1e-3) and np.all(np.abs(z2 - 18) < 1e-3)
    assert avail["mul"] == 1100 and avail["matmul"] == {(2, 3, 2): 1}
    # online: only the openings (e, f) of the 1000 products and of the matrix triple, nothing else
    assert st["online"]["bytes_sent"] == 8 * 2 * n + 8 * (6 + 6)
    assert f"online/triples.{TS}" not in st
    assert st[f"more/triples.{TS}"]["bytes"] > 0             # the on-demand part is attributed to the triple source
    assert rep["generated"]["mul"] == 1100 + 900 and rep["consumed"]["mul"] == 2000


def test_dealer_never_used_unless_chosen(monkeypatch):
    def boom(self, s):
        raise AssertionError("the trusted dealer was used without being chosen")

    monkeypatch.setattr(dealer.DealerSource, "__init__", boom)
    from ezprotocols.arith import PrivateConv2d, PrivateLinear

    def f(s):
        assert s.triples_source == TS and not s.triples.trusted_dealer
        with pytest.raises(RuntimeError, match="dealer"):
            s.triples.dealer()
        x = s.input(np.ones((2, 1, 4, 4)) if s.role == 0 else None, 0, shape=(2, 1, 4, 4))
        w = s.input(np.ones((2, 1, 3, 3)) if s.role == 1 else None, 1, shape=(2, 1, 3, 3))
        s.triples.prepare([("mul", 5), ("matmul", (2, 16), (16, 2)), ("conv2d", x.shape, w.shape)])
        y = x * x
        y = y.reshape(2, 16) @ x.reshape(16, 2)
        c = x.conv2d(w)
        lin = PrivateLinear(s, np.ones((16, 3)) if s.role == 0 else None, shape=(16, 3))
        lin(x.reshape(2, 16))
        cv = PrivateConv2d(s, np.ones((2, 1, 3, 3)) if s.role == 0 else None, shape=(2, 1, 3, 3))
        cv(x)
        return s.stats(), s.triples.report(), s.reveal(c)

    for r in pair(f):
        st, rep, c = r
        assert rep["source"] == TS and rep["trusted_dealer"] is False
        assert not any("dealer" in k for k in st)
        assert f"triples.{TS}" in st and st[f"triples.{TS}"]["bytes"] > 0
        assert np.allclose(c, 9.0)


def test_dealer_mode_is_labelled():
    def f(s):
        s.triples.prepare_mul(10)
        x = s.input(np.ones(10) if s.role == 0 else None, 0, shape=(10,))
        return s.stats(), s.triples.report(), repr(s.triples), s.reveal(x * x)

    for st, rep, rp, v in pair(f, triples="dealer"):
        assert rep["trusted_dealer"] is True and rep["phase"] == "triples.dealer"
        assert "triples.dealer" in st and "TRUSTED-DEALER" in rp
        assert not any(k.startswith(f"triples.{TS}") for k in st)
        assert np.allclose(v, 1.0)
