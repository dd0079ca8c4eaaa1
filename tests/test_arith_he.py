"""Homomorphic cross products (ezprotocols.arith.he): parameters against the HE standard,
kernels against schoolbook arithmetic, ideal functionality of matmul / conv2d / per-channel
scale / shared x shared against numpy mod 2^64 (random and edge inputs, odd shapes, empty
batches), uniform masking of what the data owner decrypts, peer frame checks."""
import math

import numpy as np
import pytest

from ezprotocols._ext import he as K
from ezprotocols.arith import PrivateConv2d, PrivateLinear, PrivateScale, he
from ezprotocols.arith.conv import Conv2dGeom, conv2d_ring
from ezprotocols.errors import ProtocolError
from ezprotocols.testing import run_pair

U64 = np.uint64
EXTREMES = np.array([0, 1, 2**64 - 1, 2**63, 2**63 - 1, 2**62], dtype=U64)


def mm(a, b):
    return (a.astype(object) @ b.astype(object)) % (1 << 64)


def rand_signed(rng, shape, bits):
    if bits == 64:
        v = rng.integers(0, 2**64, size=shape, dtype=U64)
        flat = v.reshape(-1)
        flat[:min(len(EXTREMES), flat.size)] = EXTREMES[:flat.size]
        return v
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1))
    v = rng.integers(lo, hi, size=shape).astype(np.int64)
    flat = v.reshape(-1)
    ex = np.array([lo, hi - 1, 0, -1], dtype=np.int64)
    flat[:min(4, flat.size)] = ex[:flat.size]
    return v.view(U64)


# ---------------------------------------------------------------- parameters and kernels

def test_parameters_in_standard_table():
    p = he.check_parameters()
    assert p["ok"]
    # homomorphicencryption.org, table 1 (classical, 128 bits, ternary secret)
    assert he.HE_STANDARD_128 == {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
    Q = math.prod(he.PRIMES)
    assert Q.bit_length() <= he.HE_STANDARD_128[he.N]
    assert all((q - 1) % (2 * he.N) == 0 and q < 2**50 for q in he.PRIMES)
    assert he.PRIMES[0] * he.PRIMES[1] > 2**80          # final modulus: decryption margin
    # every level a call may pick stays inside the table
    for L in range(he.MIN_LIMBS, he.MAX_LIMBS + 1):
        assert math.prod(he.PRIMES[:L]).bit_length() <= 218


def test_ntt_negacyclic_product_matches_schoolbook(rng):
    tb = he._tables()
    n = he.N
    qs = np.array(he.PRIMES, dtype=U64)
    L = len(he.PRIMES)
    a = (rng.integers(0, 2**62, size=(1, L, n), dtype=U64) % qs[:, None]).astype(U64)
    w = np.zeros((1, n), np.int64)
    w[0, [0, 1, n - 1, 77]] = [3, -1, 5, -(2**40)]
    wr = K.to_rns(w, qs)
    A = a.copy()
    tb.forward(A)
    B = A.copy()
    tb.inverse(B)
    assert np.array_equal(B, a)                          # round trip
    tb.forward(wr)
    out = np.zeros((1, L, n), U64)
    K.mul_acc(out, A.reshape(1, 1, L, n), wr, K.shoup(wr, qs), qs)
    out2 = np.zeros((1, L, n), U64)
    K.mul_acc(out2, A.reshape(1, 1, L, n), wr, None, qs)        # floating-point quotient path
    assert np.array_equal(out, out2)
    tb.inverse(out)
    for li, q in enumerate(he.PRIMES):
        exp = np.zeros(n, dtype=object)
        av = a[0, li].astype(object)
        for j, c in zip([0, 1, n - 1, 77], [3, -1, 5, -(2**40)]):
            r = np.roll(av, j) * c
            r[:j] *= -1
            exp = exp + r
        assert np.array_equal(out[0, li].astype(object), exp % q)


def test_pack_unpack_and_range_check(rng):
    qs = np.array(he.PRIMES[:3], dtype=U64)
    x = (rng.integers(0, 2**62, size=(2, 3, 33), dtype=U64) % qs[:, None]).astype(U64)
    data = K.pack(x, he.WIDTHS[:3])
    y, ok = K.unpack(data, x.shape, he.WIDTHS[:3], qs)
    assert ok and np.array_equal(x, y)
    bad, ok = K.unpack(np.full(data.shape, 255, np.uint8), x.shape, he.WIDTHS[:3], qs)
    assert not ok


def test_product_single_pair_exact(rng):
    """enc / multiply / decrypt through the core against negacyclic ring math."""
    n = he.N
    X = rng.integers(0, 2**64, size=(1, 2, n), dtype=U64)
    W = np.zeros((1, 2, n), np.int64)
    W[0, :, :3] = [[1, -1, 2**20], [-(2**20), 5, 0]]
    pos = np.array([0, 2, 5, n - 1])

    def f0(s):
        return he.product(s, sender=0, nI=1, nK=2, nJ=1, pos=pos, wbits=22, nnz=3, X=X)

    def f1(s):
        return he.product(s, sender=0, nI=1, nK=2, nJ=1, pos=pos, wbits=22, nnz=3,
                          pt_fn=lambda j: (W[j], np.arange(2)))
    r0, r1 = run_pair(f0, f1)
    exp = np.zeros(n, dtype=object)
    for k in range(2):
        for j in range(3):
            r = np.roll(X[0, k].astype(object), j) * int(W[0, k, j])
            r[:j] *= -1
            exp = exp + r
    assert np.array_equal((r0 + r1)[0, 0].astype(object), exp[pos] % (1 << 64))


# ---------------------------------------------------------------- matmul

@pytest.mark.parametrize("m,k,n,bits", [(3, 5, 4, 64), (1, 1, 1, 2), (17, 300, 9, 64), (40, 33, 70, 18),
                                        (2, 9000, 3, 12)])
@pytest.mark.parametrize("encrypt", ["L", "R"])
def test_cross_matmul(rng, m, k, n, bits, encrypt):
    L = rand_signed(rng, (m, k), 64)
    R = rand_signed(rng, (k, n), bits)
    r0, r1 = run_pair(
        lambda s: he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, L=L, nbits_r=bits, encrypt=encrypt),
        lambda s: he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, R=R, nbits_r=bits, encrypt=encrypt))
    assert r0.shape == (m, n)
    assert np.array_equal((r0 + r1).astype(object), mm(L, R.view(np.int64)))


@pytest.mark.parametrize("m,k,n", [(0, 4, 3), (3, 0, 2), (2, 3, 0)])
def test_cross_matmul_empty(m, k, n):
    L = np.zeros((m, k), U64)
    R = np.zeros((k, n), U64)
    r0, r1 = run_pair(lambda s: he.cross_matmul(s, l_owner=1, m=m, k=k, n=n, R=R),
                      lambda s: he.cross_matmul(s, l_owner=1, m=m, k=k, n=n, L=L))
    assert r0.shape == (m, n) and not (r0 + r1).any()


def test_shared_matmul_and_conv(rng):
    X0, X1 = rng.integers(0, 2**64, size=(2, 7, 9), dtype=U64)
    Y0, Y1 = rng.integers(0, 2**64, size=(2, 9, 5), dtype=U64)
    r0, r1 = run_pair(lambda s: he.shared_matmul(s, X0, Y0), lambda s: he.shared_matmul(s, X1, Y1))
    assert np.array_equal((r0 + r1).astype(object), mm(X0 + X1, Y0 + Y1))
    geom = Conv2dGeom.make((1, 2, 5, 6), (3, 2, 3, 3), 1, 1, 1, 1)
    A0, A1 = rng.integers(0, 2**64, size=(2,) + geom.x_shape, dtype=U64)
    B0, B1 = rng.integers(0, 2**64, size=(2,) + geom.w_shape, dtype=U64)
    r0, r1 = run_pair(lambda s: he.shared_conv2d(s, A0, B0, geom), lambda s: he.shared_conv2d(s, A1, B1, geom))
    assert np.array_equal(r0 + r1, conv2d_ring(A0 + A1, B0 + B1, geom))


# ---------------------------------------------------------------- conv2d

CONV_CASES = [
    ((1, 3, 8, 8), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 4, 9, 7), (6, 2, 3, 2), 2, (1, 0, 2, 1), (2, 1), 2),      # stride, asym. padding, dilation, groups
    ((1, 5, 5, 5), (2, 5, 1, 1), 1, 0, 1, 1),                        # 1x1
    ((1, 2, 11, 13), (3, 2, 3, 3), (3, 2), 1, 1, 1),                 # odd sizes, unequal strides
    ((1, 4, 6, 6), (4, 1, 3, 3), 1, 1, 1, 4),                        # depthwise
    ((2, 3, 5, 5), (2, 3, 5, 5), 1, 0, 1, 1),                        # kernel = input
    ((1, 3, 100, 90), (2, 3, 3, 3), 1, 1, 1, 1),                     # several spatial tiles
    ((0, 3, 5, 5), (2, 3, 3, 3), 1, 1, 1, 1),                        # empty batch
    ((8, 2, 6, 5), (3, 2, 3, 3), 2, (1, 0, 2, 1), 1, 1),             # batch stacked into one image
    ((16, 2, 7, 7), (4, 1, 3, 3), 3, 1, (2, 2), 2),
    ((1, 3, 100, 100), (4, 3, 7, 7), 2, 3, 1, 1),                    # strided: polyphase form (stem-like)
    ((1, 2, 90, 90), (4, 1, 3, 3), 2, 1, 1, 2),
    ((1, 4, 64, 63), (4, 4, 3, 2), (2, 3), (1, 0, 2, 1), (1, 2), 1),
]


def test_polyphase_is_used_for_strides():
    for xs, ws, st, pd, dl, g in CONV_CASES[-3:]:
        assert he._conv_choice(Conv2dGeom.make(xs, ws, st, pd, dl, g), 18)[0]


def test_batch_stacking_is_used():
    for xs, ws, st, pd, dl, g in CONV_CASES[-5:-3]:
        assert he._conv_choice(Conv2dGeom.make(xs, ws, st, pd, dl, g), 18)[1]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bits", [18, 64])
def test_cross_conv2d(rng, case, bits):
    xs, ws, st, pd, dl, g = case
    geom = Conv2dGeom.make(xs, ws, st, pd, dl, g)
    X = rand_signed(rng, xs, 64)
    Kr = rand_signed(rng, ws, bits)
    r0, r1 = run_pair(lambda s: he.cross_conv2d(s, x_owner=1, geom=geom, K=Kr, nbits=bits),
                      lambda s: he.cross_conv2d(s, x_owner=1, geom=geom, X=X, nbits=bits))
    assert r0.shape == geom.out_shape
    assert np.array_equal(r0 + r1, conv2d_ring(X, Kr, geom))


def test_cross_scale(rng):
    for xs in [(2, 5, 3, 3), (4, 7), (1, 1, 200, 90)]:
        x = rand_signed(rng, xs, 64)
        g = rand_signed(rng, (xs[1],), 16)
        r0, r1 = run_pair(lambda s: he.cross_scale(s, x_owner=1, x_shape=xs, gamma=g, nbits=16),
                          lambda s: he.cross_scale(s, x_owner=1, x_shape=xs, X=x, nbits=16))
        bshape = (1, -1) + (1,) * (len(xs) - 2)
        assert np.array_equal(r0 + r1, x * g.reshape(bshape))


# ---------------------------------------------------------------- layers with one party's weights

def test_private_layers_he(rng):
    X = rng.normal(size=(3, 40))
    W = rng.normal(size=(40, 6)) * 0.5
    Xc = rng.normal(size=(1, 3, 6, 6))
    Wc = rng.normal(size=(4, 3, 3, 3)) * 0.5
    g = rng.normal(size=3)
    b = rng.normal(size=3)

    def f(s):
        own = (lambda v: s.input(v if s.role == 1 else None, 1, shape=v.shape))
        x, xc = own(X), own(Xc)
        lin = PrivateLinear(s, W if s.role == 0 else None, shape=W.shape, decompose="he")
        conv = PrivateConv2d(s, Wc if s.role == 0 else None, shape=Wc.shape, padding=1, decompose="he")
        sc = PrivateScale(s, g if s.role == 0 else None, shape=g.shape, bias=b if s.role == 0 else None,
                          decompose="he")
        sc_ot = PrivateScale(s, g if s.role == 0 else None, shape=g.shape, decompose="weights")
        return (s.reveal(lin(x, truncate=False), raw=True), s.reveal(conv(xc, truncate=False), raw=True),
                s.reveal(sc(xc, truncate=False), raw=True), s.reveal(sc_ot(xc, truncate=False), raw=True),
                lin.costs(X.shape), sc.costs(Xc.shape))
    r0, r1 = run_pair(f, f)
    F = 16
    e = lambda v: np.round(v * 2**F).astype(np.int64)   # noqa: E731
    assert np.array_equal(np.asarray(r0[0]).astype(np.int64), e(X) @ e(W))
    ref_c = conv2d_ring(e(Xc).view(U64), e(Wc).view(U64), Conv2dGeom.make(Xc.shape, Wc.shape, 1, 1, 1, 1))
    assert np.array_equal(np.asarray(r0[1]).astype(np.int64), ref_c.view(np.int64))
    exp_s = e(Xc) * e(g).reshape(1, -1, 1, 1) + np.round(b * 2**(2 * F)).astype(np.int64).reshape(1, -1, 1, 1)
    assert np.array_equal(np.asarray(r0[2]).astype(np.int64), exp_s)
    assert np.array_equal(np.asarray(r0[3]).astype(np.int64), e(Xc) * e(g).reshape(1, -1, 1, 1))
    c = r0[4]
    assert c["he"] is not None and c["mask"] > 0 and c["weights"] > 0 and c["chosen"] == "he"
    assert r0[5]["he"] is not None


def test_auto_picks_he_for_large_layers():
    def f(s):
        lay = PrivateLinear(s, np.zeros((784, 128)) if s.role == 0 else None, shape=(784, 128), weight_bits=18)
        conv = PrivateConv2d(s, np.zeros((64, 64, 3, 3)) if s.role == 0 else None, shape=(64, 64, 3, 3),
                             padding=1, weight_bits=18)
        return lay.costs((128, 784)), conv.costs((1, 64, 56, 56))
    (c1, c2), _ = run_pair(f, f)
    for c in (c1, c2):
        assert c["chosen"] == "he" and c["he"] < min(c["mask"], c["weights"]) / 100


# ---------------------------------------------------------------- privacy and peer checks

def test_data_owner_sees_uniform_mask(rng):
    """What the sender decrypts (its share) is x w + r with a fresh uniform r: with x w = 0 every
    bit of the decrypted values is balanced, and two runs differ everywhere."""
    m, k, n = 64, 16, 64
    L = np.zeros((m, k), U64)
    R = rand_signed(rng, (k, n), 18)

    def run():
        return run_pair(lambda s: he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, L=L, nbits_r=18, encrypt="L"),
                        lambda s: he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, R=R, nbits_r=18, encrypt="L"))[0]
    a, b = run(), run()
    assert np.mean(a == b) < 0.01
    bits = np.unpackbits(a.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    freq = bits.mean(axis=0)
    sd = 0.5 / math.sqrt(a.size)
    assert np.all(np.abs(freq - 0.5) < 6 * sd), freq


def test_peer_frames_checked():
    def honest(s):
        return he.cross_matmul(s, l_owner=0, m=4, k=3, n=2, L=np.ones((4, 3), U64), encrypt="L")

    def wrong_shape(s):
        return he.cross_matmul(s, l_owner=0, m=5, k=3, n=2, R=np.ones((3, 2), U64), encrypt="L")
    with pytest.raises(ProtocolError, match="he.cross_matmul"):
        run_pair(honest, wrong_shape)

    def garbage(s):
        he._setup(s, 0)
        s.channel.send("he.cross_matmul.ct", np.zeros(16, np.uint8))
        s.channel.send("he.cross_matmul.ct", np.full(K.packed_size(1, he.N, he.WIDTHS[:3]), 255, np.uint8))

    def evaluator(s):
        return he._matmul_core(s, sender=0, m=1, k=1, n=1, W=np.ones((1, 1), U64), wbits=2,
                               step="he.cross_matmul")
    assert he.matmul_plan(1, 1, 1, 2)["L"] == 3
    with pytest.raises(ProtocolError, match="he.cross_matmul.ct"):
        run_pair(garbage, evaluator)


def test_infeasible_noise_is_refused():
    assert he.level_for(64, 10**6, he.N, 10**6) is None
    c = he.matmul_costs(2, 3, 4)
    assert c["L"] and c["R"]


def test_cost_model_matches_measured_bytes(rng):
    geom = Conv2dGeom.make((1, 3, 12, 12), (4, 3, 3, 3), 2, 1, 1, 1)

    def f(s):
        he._setup(s, 0, galois=True)
        he._setup(s, 1, galois=True)
        with s.phase("mm"):
            he.cross_matmul(s, l_owner=0, m=20, k=50, n=30, L=np.ones((20, 50), U64) if s.role == 0 else None,
                            R=None if s.role == 0 else np.ones((50, 30), U64), nbits_r=18)
        with s.phase("cv"):
            he.cross_conv2d(s, x_owner=1, geom=geom, X=np.ones(geom.x_shape, U64) if s.role == 1 else None,
                            K=np.ones(geom.w_shape, U64) if s.role == 0 else None, nbits=18)
        return s.stats()
    st, _ = run_pair(f, f)
    c = he.matmul_costs(20, 50, 30, nbits_r=18)
    assert st["mm"]["bytes"] == min(c.values())
    assert st["cv"]["bytes"] == he.conv2d_costs(geom, nbits=18)["X"]


def test_shared_product_runs_both_directions_at_once(rng):
    X0, X1 = rng.integers(0, 2**64, size=(2, 30, 40), dtype=U64)
    Y0, Y1 = rng.integers(0, 2**64, size=(2, 40, 20), dtype=U64)

    def f(X, Y):
        def run(s):
            s.linear.setup()
            with s.phase("ss"):
                z = s.linear.shared_matmul(X, Y)
            return z, s.stats()["ss"]
        return run
    (z0, st0), (z1, st1) = run_pair(f(X0, Y0), f(X1, Y1))
    assert np.array_equal((z0 + z1).astype(object), mm(X0 + X1, Y0 + Y1))
    # each party: send its ciphertexts, receive the peer's, respond, receive the responses (the
    # two flights of each direction overlap; the counter sees four same-direction runs)
    assert st0["rounds"] == 4 and st1["rounds"] == 4
    assert st0["bytes"] == 2 * min(he.matmul_costs(30, 40, 20, galois=False).values())


def test_forked_parties_after_threads_were_used():
    """The response pool is per process: parties forked after the parent used it still work."""
    L = np.ones((3, 4), U64)
    R = np.ones((4, 2), U64)
    f = (lambda s: he.cross_matmul(s, l_owner=0, m=3, k=4, n=2, L=L if s.role == 0 else None,
                                   R=None if s.role == 0 else R, encrypt="L"))
    run_pair(f, f)                                        # threads in this process
    r0, r1 = run_pair(f, f, transport="tcp", timeout=120)
    assert np.array_equal(r0 + r1, L @ R)


def test_plaintexts_wider_than_declared_are_refused():
    L = np.ones((2, 3), U64)
    R = np.full((3, 2), 1 << 10, U64)                     # needs 12 signed bits
    f = (lambda s: he.cross_matmul(s, l_owner=0, m=2, k=3, n=2, L=L if s.role == 0 else None,
                                   R=None if s.role == 0 else R, nbits_r=10, encrypt="L"))
    with pytest.raises(ValueError, match="exceed 10 signed bits"):
        run_pair(f, f)
    assert he.level_for(2, 1, 1, 1)[1] >= ((2 * he.N + 1) * he.ETA).bit_length() + he.SIGMA
