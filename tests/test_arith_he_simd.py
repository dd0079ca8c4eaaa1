"""Batched (SIMD) BFV elementwise products (ezprotocols.arith.he_simd): parameters and noise
bound, the kernels against Python big integers, exact products against numpy on random and edge
inputs, what the key owner decrypts (uniformly masked), frame checks, and the wiring into
HeProducts / HeTriples / ArithTensor."""
import math
import secrets

import numpy as np
import pytest

from ezprotocols._ext import he as K
from ezprotocols.arith import he
from ezprotocols.arith import he_simd as H
from ezprotocols.arith.tensor import ArithTensor
from ezprotocols.errors import ProtocolError
from ezprotocols.testing import run_pair

U64 = np.uint64
N = he.N
EDGE = [0, 1, 2**64 - 1, 2**63, 2**63 - 1, 2**64 - 2, 12345]


# ---------------------------------------------------------------- parameters
def test_parameters():
    assert len(set(H.PT_PRIMES)) == 3
    for t in H.PT_PRIMES:
        assert he._is_prime(t) and (t - 1) % (2 * N) == 0 and t < 2**57
    assert H.T_PROD > 2**170
    assert H.check_noise(1, H.MAX_CT) and H.check_noise(2, H.MAX_CT)
    # the bound is worst case and not loose by much: a few more flooding bits no longer fit
    f = H.params(2, H.MAX_CT)
    assert not H.check_noise(2, H.MAX_CT, f + 6)
    # the response words fit q' after dropping the low bits
    assert sum(H.WA) == (he.QF >> H.DROP_A).bit_length() and sum(H.WB) == (he.QF >> H.DROP_B).bit_length()
    # below SPU cheetah's 226 B per shared x shared product (both cross terms)
    assert H.simd_bytes(1 << 20, 2) / (1 << 20) < 202
    assert H.simd_bytes(0, 2) == 0


# ---------------------------------------------------------------- kernels
def test_crt_against_big_integers():
    T = H.T_PROD
    vals = [0, 1, T - 1, T // 2, 2**64, 2**128 + 5] + [int.from_bytes(secrets.token_bytes(22), "little") % T
                                                       for _ in range(2000)]
    v = np.array([[x % t for x in vals] for t in H.PT_PRIMES], dtype=U64)
    got = K.crt_u64(v, H.PT_PRIMES)
    assert [int(g) for g in got] == [x % 2**64 for x in vals]
    two = (H.PT_PRIMES[0], he.PRIMES[2])
    v2 = np.array([[x % t for x in vals[:50]] for t in two], dtype=U64)
    assert [int(g) for g in K.crt_u64(v2, two)] == [(x % (two[0] * two[1])) % 2**64 for x in vals[:50]]
    with pytest.raises(ValueError):
        K.crt_u64(v[:2], H.PT_PRIMES)


def test_decrypt_and_encode_kernels(rng):
    q0, q1 = he.PRIMES[0], he.PRIMES[1]
    for t in H.PT_PRIMES:
        xs = [0, 1, q0 * q1 - 1, q0 * q1 // 2] + [int.from_bytes(secrets.token_bytes(11), "little") % (q0 * q1)
                                                  for _ in range(500)]
        x = np.array([[[v % q0 for v in xs], [v % q1 for v in xs]]], dtype=U64)
        got = K.decrypt2_t(x, q0, q1, he.Q0INV, t)[0]
        assert [int(g) for g in got] == [((2 * t * v + q0 * q1) // (2 * q0 * q1)) % t for v in xs]
    ps = he.PRIMES[:H.LEVEL]
    Q = math.prod(ps)
    for j, t in enumerate(H.PT_PRIMES):
        m = np.array([[0, 1, t - 1, t // 2] + [int(v) for v in rng.integers(0, t, 12, dtype=U64)]], dtype=U64)
        b = np.array(rng.integers(0, 2**40, (1, H.LEVEL, 16), dtype=U64))
        b0 = b.copy()
        dfl, qt = H._enc_consts(j)
        K.add_delta_t(b, m, np.array(ps, U64), dfl, qt, t)
        for i in range(16):
            e = (Q * int(m[0, i]) + t // 2) // t
            assert [int(b[0, l, i]) for l in range(H.LEVEL)] == [(int(b0[0, l, i]) + e) % q for l, q in enumerate(ps)]
        with pytest.raises(ValueError):
            K.add_delta_t(b, m + U64(t), np.array(ps, U64), dfl, qt, t)


def test_slots_roundtrip(rng):
    v = rng.integers(0, 2**64, (2, N), dtype=U64)
    for j, t in enumerate(H.PT_PRIMES):
        c = H.encode_slots(v, j)
        assert int(c.max()) < t
        assert (H.decode_slots(c, j) == v % U64(t)).all()


# ---------------------------------------------------------------- protocol
def _shares(rng, v):
    a = rng.integers(0, 2**64, v.shape, dtype=U64)
    return a, v - a


@pytest.mark.parametrize("n", [0, 1, 7, N + 3])
def test_shared_mul_exact(rng, n):
    x = rng.integers(0, 2**64, n, dtype=U64)
    y = rng.integers(0, 2**64, n, dtype=U64)
    k = min(n, len(EDGE))
    x[:k] = EDGE[:k]
    y[:k] = EDGE[::-1][:k]
    if n > 10:
        x[7:10] = 2**64 - 1
        y[7:10] = 2**64 - 1
    x0, x1 = _shares(rng, x)
    y0, y1 = _shares(rng, y)
    # edge shares too: both parties' shares at 2^64 - 1 (the largest cross terms)
    if n > 12:
        x0[10:12] = 2**64 - 1
        y1[10:12] = 2**64 - 1
        x1[10:12] = x[10:12] - x0[10:12]
        y0[10:12] = y[10:12] - y1[10:12]

    def f(s):
        return H.shared_mul(s, x0 if s.role == 0 else x1, y0 if s.role == 0 else y1)
    z0, z1 = run_pair(f, f)
    assert z0.shape == (n,) and ((z0 + z1) == x * y).all()


@pytest.mark.parametrize("owner", [0, 1])
def test_cross_mul_exact(rng, owner):
    n = 300
    a = rng.integers(0, 2**64, n, dtype=U64)
    b = rng.integers(0, 2**64, n, dtype=U64)
    a[:len(EDGE)] = EDGE
    b[:len(EDGE)] = EDGE

    def f(s):
        mine = s.role == owner
        return H.cross_mul(s, owner=owner, n=n, a=a if mine else None, b=None if mine else b)
    z0, z1 = run_pair(f, f)
    assert ((z0 + z1) == a * b).all()


def test_owner_view_is_masked():
    """The key owner's share is V = (X + r) mod T mod 2^64 with r uniform mod T: for the same
    (zero) inputs two runs differ and every bit is balanced."""
    n = 4096
    z = np.zeros(n, U64)

    def run():
        def f(s):
            mine = s.role == 0
            return H.cross_mul(s, owner=0, n=n, a=z if mine else None, b=None if mine else z)
        z0, z1 = run_pair(f, f)
        assert ((z0 + z1) == 0).all()
        return z0
    a, b = run(), run()
    assert np.mean(a == b) < 0.01
    bits = np.unpackbits(a.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    sd = 0.5 / math.sqrt(n)
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 6 * sd)


def test_frames_checked(rng):
    n = 5
    w = rng.integers(0, 2**64, (2, n), dtype=U64)
    m = 3 * 2

    def evaluator(s):
        return H.simd_product(s, owner=0, n=n, Kn=2, W=w)

    for size in (H._in_bytes(m) - 1, H._in_bytes(m) + 1):
        def short(s, size=size):
            he._setup(s, 0)
            s.channel.send("he.simd.ct", np.zeros(16, np.uint8))
            s.channel.send("he.simd.ct", np.zeros(size, np.uint8))
        with pytest.raises(ProtocolError, match="he.simd.ct"):
            run_pair(short, evaluator)

    def garbage(s):
        he._setup(s, 0)
        s.channel.send("he.simd.ct", np.zeros(16, np.uint8))
        s.channel.send("he.simd.ct", np.full(H._in_bytes(m), 255, np.uint8))
    with pytest.raises(ProtocolError, match="he.simd.ct"):
        run_pair(garbage, evaluator)

    def owner(s):
        return H.simd_product(s, owner=0, n=n, Kn=2, X=w)
    ab, bb = H._out_bytes(3)
    for size in (ab + bb - 1, ab + bb + 1):
        def bad(s, size=size):
            he._setup(s, 0)
            s.channel.recv_array("he.simd.ct", np.uint8, (16,))
            s.channel.recv_array("he.simd.ct", np.uint8, (H._in_bytes(m),))
            s.channel.send("he.simd.resp", np.zeros(size, np.uint8))
        with pytest.raises(ProtocolError, match="he.simd.resp"):
            run_pair(owner, bad)


# ---------------------------------------------------------------- wiring
def test_costs_choose_by_bytes():
    def f(s):
        small, large = s.linear.mul_costs(1), s.linear.mul_costs(1 << 16)
        ss = s.linear.shared_mul_costs(1 << 16)
        return small, large, ss
    (small, large, ss), _ = run_pair(f, f)
    assert small["acot"]["bytes"] < small["he"]["bytes"]
    assert large["he"]["bytes"] < large["acot"]["bytes"]
    assert ss["he"]["bytes"] < ss["acot"]["bytes"] and ss["he"]["rounds"] == 2


def test_tensor_and_triples(rng):
    n = 3000
    x = rng.integers(-2**20, 2**20, n).astype(np.int64).view(U64)
    y = rng.integers(-2**20, 2**20, n).astype(np.int64).view(U64)
    x0, x1 = _shares(rng, x)
    y0, y1 = _shares(rng, y)

    def f(s):
        X = ArithTensor(s, x0 if s.role == 0 else x1, 0)
        Y = ArithTensor(s, y0 if s.role == 0 else y1, 0)
        with s.phase("mul"):
            z = X.mul(Y, truncate=False)
        a, b, c = s.triples.impl.mul_triples(n)
        return z.share, s.counters("mul").rounds, (a, b, c)
    (z0, r0, t0), (z1, r1, t1) = run_pair(f, f)
    assert ((z0 + z1) == x * y).all() and r0 == 2
    a, b, c = (p + q for p, q in zip(t0, t1))
    assert (c == a * b).all()

    def g(s):      # prepared triples are used first (no direct product)
        s.triples.prepare_mul(4)
        X = ArithTensor(s, x0[:4] if s.role == 0 else x1[:4], 0)
        Y = ArithTensor(s, y0[:4] if s.role == 0 else y1[:4], 0)
        z = X.mul(Y, truncate=False)
        return z.share, s.triples.report()["consumed"]["mul"]
    (z0, c0), (z1, _) = run_pair(g, g)
    assert ((z0 + z1) == x[:4] * y[:4]).all() and c0 == 4
