"""Output packing of the HE products (ezprotocols.arith.he, PackLWEs of eprint 2020/015):
Galois-key parameters and key-switching noise, the merge tree on known ciphertexts (clean
result positions, exactly those are sent), exact ring results of packed matmuls against numpy
on random and edge inputs, what the sender receives, and frame-size checks of the keys and
the packed responses."""
import math

import numpy as np
import pytest

from ezprotocols._ext import he as K
from ezprotocols.arith import PrivateLinear, he
from ezprotocols.arith.conv import Conv2dGeom, conv2d_ring
from ezprotocols.errors import ProtocolError
from ezprotocols.testing import run_pair

U64 = np.uint64
N = he.N
QP = np.array(he.PRIMES[:he.PACK_LIMBS], dtype=U64)


def mm(a, b):
    return (a.astype(object) @ b.astype(object)) % (1 << 64)


def _keys():
    """The sender's and the evaluator's key state after a Galois-key set-up."""
    def snd(s):
        return he._setup(s, 0, galois=True)

    def ev(s):
        return he._setup(s, 0, galois=True)
    return run_pair(snd, ev)


def _centered(x, qs):
    """Residues ``uint64[..., L, N]`` -> centred integers (CRT over the primes)."""
    Q = math.prod(int(q) for q in qs)
    acc = np.zeros(x.shape[:-2] + x.shape[-1:], dtype=object)
    for i, q in enumerate(int(v) for v in qs):
        Mi = Q // q
        acc = (acc + x[..., i, :].astype(object) * (Mi * pow(Mi, -1, q))) % Q
    return np.where(acc > Q // 2, acc - Q, acc)


def _phase(ct, sk, qs):
    """``b + a s`` (centred) of coefficient-form ciphertexts ``[..., 2, L, N]``."""
    tb = he._tables()
    s_r = K.to_rns(sk.reshape(1, N), qs)
    a = np.ascontiguousarray(ct[..., 1, :, :]).reshape(-1, len(qs), N).copy()
    tb.forward(s_r)
    tb.forward(a)
    prod = np.zeros_like(a)
    K.mul_acc(prod, a.reshape(-1, 1, len(qs), N), s_r, None, qs)
    tb.inverse(prod)
    b = np.ascontiguousarray(ct[..., 0, :, :]).reshape(prod.shape)
    return _centered((b + prod) % qs[:, None], qs).reshape(ct.shape[:-3] + (N,))


# ---------------------------------------------------------------- parameters

def test_galois_parameters():
    p = he.check_parameters()
    assert p["ok"] and p["log2_Q_bits"] <= he.HE_STANDARD_128[N]
    # packing at Q4 = q0..q3, keys at Q4 P with the special modulus P = q4 q5 q6: the whole
    # chain, within the standard's 218 bits
    assert he.PACK_LIMBS == 4 and he.KS_LIMBS == len(he.PRIMES) == 7
    assert he.P_KS == he.PRIMES[4] * he.PRIMES[5] * he.PRIMES[6]
    assert math.prod(he.PRIMES[:he.KS_LIMBS]).bit_length() <= he.HE_STANDARD_128[N]
    # the digit groups partition the primes of Q4
    assert sorted(i for g in he.KS_GROUPS for i in g) == list(range(he.PACK_LIMBS))
    # every stride S <= 2^LOG_PACK and level k <= log S: a product of key elements in the coset
    # 1 + 2^j mod 2^(j+1) (tau_g fixes X^(2D i), negates X^(2D i + D), D = S / 2^k)
    for s in range(1, he.LOG_PACK + 1):
        for k in range(1, s + 1):
            j = he.LOG_N + k - s
            path = he.galois_path(j)
            assert all(g in he.GALOIS for g in path)
            g = math.prod(path) % (2 * N)
            D = (1 << s) >> k
            assert pow(g, 1, 2 * N) * D % (2 * N) == (D + N) % (2 * N)
    bks = sum((math.prod(he.PRIMES[i] for i in g) - 1) // 2 for g in he.KS_GROUPS) * N * he.ETA
    assert he.B_KS == -(-bks // he.P_KS) + N + 1
    assert he.B_KS < 1.01 * 2 ** 23
    # two key elements; a 64-member tree takes 92 key switches, its noise fits Q4 for the
    # figures' product (B < 2^30: 2^84 flooding, 2^150 < Q4)
    assert he.GALOIS == (257, 3585) and he._ks_count(64, 6) == 92
    assert [len(he.galois_path(j)) for j in range(8, 14)] == [1, 1, 2, 4, 3, 6]
    # the fixed-point matmul of the figures packs 64 ciphertexts at 5 primes (~175 bits);
    # 64-bit operands whole need all 7 (218 bits), split into two 32-bit digits 5
    assert he.level_for_pack(18, 13, 64, 128 * 128, 6)[0] == 5
    assert he.level_for_pack(64, 13, 64, 128 * 128, 6)[0] == 7
    po = he._pack_options(13, 128, 128, 64, 63, 64, 13, 64)
    assert po["split"] and po["L"] == 5 and po["l"] == 6
    assert he.level_for_pack(64, 10**4, N, 10**6, 6) is None


def test_group_digits_exact(rng):
    """The hybrid key-switching digits: centred residues modulo each group (one prime or two),
    reduced modulo every prime of Q4 P, against big integers (incl. 0, -1 and the extremes)."""
    qs = [int(q) for q in he.PRIMES]
    q4 = np.array(qs[:he.PACK_LIMBS], dtype=U64)
    q6 = np.array(qs[:he.KS_LIMBS], dtype=U64)
    n = 64
    a = K.uniform_mod(rng.integers(0, 2**64, size=2 * 2 * he.PACK_LIMBS * n, dtype=U64), q4, (2, he.PACK_LIMBS, n))
    Q4 = math.prod(qs[:he.PACK_LIMBS])
    for j, v in enumerate([0, Q4 - 1, 1, (Q4 - 1) // 2, (Q4 + 1) // 2]):
        a[0, :, j] = [v % q for q in qs[:he.PACK_LIMBS]]
    for groups in (he.KS_GROUPS, ((3, 0), (1, 2)), ((0,), (1,), (2,), (3,))):
        d = K.group_digits(a, q4, groups, q6)
        for gi, g in enumerate(groups):
            Qg = math.prod(qs[i] for i in g)
            x = _centered(a[:, list(g), :], [qs[i] for i in g])
            assert all(abs(int(v)) <= (Qg - 1) // 2 for v in x.reshape(-1))
            for lq, q in enumerate(qs[:he.KS_LIMBS]):
                assert np.array_equal(d[:, gi, lq, :].astype(object), x % q)


def test_key_switching_noise_within_bound(rng):
    (ks_s, ks_e) = _keys()
    tb = he._tables()
    for g in (he.GALOIS[0], he.GALOIS[-1]):
        a = K.uniform_mod(rng.integers(0, 2**64, size=2 * 3 * he.PACK_LIMBS * N, dtype=U64), QP,
                          (3, he.PACK_LIMBS, N))
        kb, ka = he._key_switch(a, ks_e.gk[g], tb)
        # kb + ka s - a tau_g(s) = sum_i d_i e_i
        src, neg = he._aut_index(g)
        ts = np.where(neg, -ks_s.sk[src], ks_s.sk[src])
        ph = _phase(np.stack([kb, ka], axis=1), ks_s.sk, QP)
        zero = np.zeros_like(a)
        ref = _phase(np.stack([zero, a], axis=1), ts, QP)
        err = np.abs((ph - ref).astype(object))
        assert int(err.max()) <= he.B_KS
        assert int(err.max()) > he.B_KS >> 12      # the worst case is not wildly loose


# ---------------------------------------------------------------- the merge tree

@pytest.mark.parametrize("S,l,cnt", [(64, 6, 64), (64, 3, 5), (8, 3, 8), (32, 1, 2)])
def test_pack_tree_clean_positions(rng, S, l, cnt):
    """Members with messages at multiples of S: the packed ciphertext holds 2^l times member m's
    coefficient S a at S a + m S / 2^l (within the noise bound); the other coefficients mix
    (weight-dependent garbage), and the protocol sends b' only at the result positions."""
    (ks_s, ks_e) = _keys()
    tb = he._tables()
    n = 1 << l
    Q = math.prod(he.PRIMES[:he.PACK_LIMBS])
    msg = rng.integers(0, 2**64, size=(cnt, N), dtype=U64)
    # fresh symmetric encryptions at q0..q4 with the precise encoding at t' = 2^(64+l)
    a = K.uniform_mod(rng.integers(0, 2**64, size=2 * cnt * he.PACK_LIMBS * N, dtype=U64), QP,
                      (cnt, he.PACK_LIMBS, N))
    s_r = K.to_rns(ks_s.sk.reshape(1, N), QP)
    tb.forward(s_r)
    an = a.copy()
    tb.forward(an)
    b = np.zeros_like(a)
    K.mul_acc(b, an.reshape(cnt, 1, he.PACK_LIMBS, N), s_r, None, QP)
    tb.inverse(b)
    b = (QP[:, None] - b) % QP[:, None]
    e = rng.integers(-21, 22, size=(cnt, N)).astype(object)
    full = rng.integers(0, 2**62, size=(cnt, N)).astype(object)   # stand-ins for partial sums
    full[:, ::S] = (msg[:, ::S].astype(object) * Q + (1 << (63 + l))) >> (64 + l)
    full += e
    for i, q in enumerate(int(v) for v in QP):
        b[:, i, :] = ((b[:, i, :].astype(object) + full % q) % q).astype(U64)
    ct = np.zeros((n, 2, he.PACK_LIMBS, N), U64)
    ct[:cnt, 0] = b
    ct[:cnt, 1] = a
    pc = he._pack_tree(ct, S, l, ks_e.gk, QP, tb)
    ph = _phase(pc, ks_s.sk, QP)
    pos = he._packed_positions(np.arange(0, N, S), S, 0, n, cnt)
    want = msg[:, ::S].astype(object).reshape(-1)
    got = ((ph[pos] * (1 << 64) + Q // 2) // Q) % (1 << 64)
    assert np.array_equal(got, want)
    # the noise of the packed results stays within the bound of level_for_pack
    d = (ph[pos] * (1 << 64) - want * Q) % (Q << 64)
    noise = np.minimum(d, (Q << 64) - d) >> 64
    assert int(noise.max()) <= (22 << l) + he._ks_count(S, l) * he.B_KS
    # positions outside the result set carry mixed garbage: not sent
    rest = np.setdiff1d(np.arange(N), pos)
    assert rest.size == N - cnt * (N // S)
    if rest.size:
        assert np.mean(np.abs(ph[rest].astype(float)) > 2.0 ** 50) > 0.9


# ---------------------------------------------------------------- exact results

def _packed_pair(m, k, n, L, R, bits, encrypt="L"):
    def a(s):
        he._setup(s, 0, galois=True)
        he._setup(s, 1, galois=True)
        return he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, L=L, nbits_r=bits, encrypt=encrypt)

    def b(s):
        he._setup(s, 0, galois=True)
        he._setup(s, 1, galois=True)
        return he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, R=R, nbits_r=bits, encrypt=encrypt)
    z0, z1 = run_pair(a, b)
    return z0 + z1


def _weights(rng, shape, bits, kind):
    if kind == "zero":
        return np.zeros(shape, U64)
    if kind == "minus1":
        return np.full(shape, 2**64 - 1, U64)
    if kind == "extreme":
        lim = 1 << (bits - 1)
        v = np.where(rng.integers(0, 2, size=shape) == 1, lim - 1, -lim).astype(np.int64)
        return v.view(U64) if bits < 64 else np.where(v > 0, 2**63 - 1, 2**63).astype(U64)
    if bits == 64:
        return rng.integers(0, 2**64, size=shape, dtype=U64)
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=shape).astype(np.int64).view(U64)


@pytest.mark.parametrize("m,k,n,bits,kind", [
    (33, 70, 65, 18, "random"), (1, 300, 50, 18, "random"), (64, 100, 10, 18, "extreme"),
    (20, 50, 30, 18, "zero"), (20, 50, 30, 18, "minus1"), (17, 129, 40, 64, "random"),
    (40, 64, 33, 64, "extreme"), (128, 784, 128, 18, "random")])
def test_packed_matmul_exact(rng, m, k, n, bits, kind):
    plan = he.matmul_plan(m, k, n, bits)
    assert plan["pack"] is not None, plan
    L = rng.integers(0, 2**64, size=(m, k), dtype=U64)
    L.reshape(-1)[:3] = [0, 2**64 - 1, 2**63]
    R = _weights(rng, (k, n), bits, kind)
    assert np.array_equal(_packed_pair(m, k, n, L, R, bits).astype(object), mm(L, R))


def test_packed_transposed_and_private_linear(rng):
    m, k, n = 5, 90, 70
    L = rng.integers(-2**17, 2**17, size=(m, k)).astype(np.int64).view(U64)
    R = rng.integers(0, 2**64, size=(k, n), dtype=U64)
    assert np.array_equal(_packed_pair(m, k, n, L, R, 64, encrypt="R").astype(object), mm(L, R))

    W = rng.normal(size=(60, 40)) * 0.1
    X = rng.normal(size=(50, 60))

    def f(s):
        he._setup(s, 0, galois=True)
        he._setup(s, 1, galois=True)
        lay = PrivateLinear(s, W if s.role == 0 else None, shape=W.shape, weight_bits=18, decompose="he")
        x = s.input(X if s.role == 1 else None, 1, shape=X.shape)
        return s.reveal(lay(x, truncate=False), raw=True)
    r0, _ = run_pair(f, f)
    e = (lambda v: np.round(v * 2**16).astype(np.int64))   # noqa: E731
    assert np.array_equal(np.asarray(r0).astype(np.int64), e(X) @ e(W))


def test_no_packing_without_keys_unless_it_pays():
    """Without Galois keys a small product stays unpacked (the keys cost more than it saves);
    the figures' matmul packs even then."""
    small = he.matmul_costs(20, 50, 30, nbits_r=18, galois=False)["L"]
    assert small == he.matmul_plan(20, 50, 30, 18, False, False)["bytes"]
    big = he.matmul_costs(128, 784, 128, nbits_r=18, galois=False)["L"]
    assert big == he.matmul_plan(128, 784, 128, 18)["bytes"] < 4_000_000
    # packing is never chosen where it costs more
    for shape in [(20, 50, 30), (1, 784, 10), (64, 256, 100), (128, 784, 128), (3, 5, 7)]:
        for bits in (18, 64):
            p, u = he.matmul_plan(*shape, bits), he.matmul_plan(*shape, bits, False, False)
            assert p["bytes"] <= u["bytes"]


# ---------------------------------------------------------------- two-digit (split) products

SPLIT_EDGES = np.array([0, 1, -1, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32, 2**32 - 1, -2**32,
                        2**63 - 1, -2**63, -2**63 + 2**31, 2**63 - 2**31, 12345678901234567], dtype=np.int64)


def test_split_digits_edges(rng):
    w = np.concatenate([SPLIT_EDGES, rng.integers(-2**63, 2**63 - 1, size=1000, dtype=np.int64)])
    lo, hi = he.split_w(w)
    assert np.array_equal((lo + hi).view(U64), w.view(U64))          # w = lo + hi in Z_2^64
    assert np.all(np.abs(lo) <= 2**31) and np.all(hi.view(U64) % (1 << 32) == 0)
    assert he.split_w(np.zeros(0, np.int64))[0].shape == (0,)


@pytest.mark.parametrize("m,k,n,kind", [(64, 600, 20, "random"), (32, 1024, 4, "extreme"),
                                         (100, 700, 3, "edges"), (16, 2048, 2, "minus1")])
def test_split_matmul_exact(rng, m, k, n, kind):
    """64-bit plaintexts split into two 32-bit digits multiplying one input: exact mod 2^64 on
    random, extreme (+-2^63), digit-boundary (2^31, 2^32, ...) and all-ones weights."""
    plan = he.matmul_plan(m, k, n, 64)
    assert plan["pack"]["split"] and plan["pack"]["L"] == 5, plan
    L = rng.integers(0, 2**64, size=(m, k), dtype=U64)
    L.reshape(-1)[:4] = [0, 2**64 - 1, 2**63, 2**32 - 1]
    if kind == "edges":
        R = SPLIT_EDGES.view(U64)[rng.integers(0, len(SPLIT_EDGES), size=(k, n))]
    else:
        R = _weights(rng, (k, n), 64, kind)
    assert np.array_equal(_packed_pair(m, k, n, L, R, 64).astype(object), mm(L, R))


def test_split_sender_sees_uniform_digits(rng, monkeypatch):
    """What the sender decrypts per digit is uniform in its group: the low digit's results
    uniform in Z_2^64, the high digit's uniform multiples of 2^32 (x = 0, extreme weights); the
    frames are the planned sizes."""
    m, k, n = 64, 600, 20
    plan = he.matmul_plan(m, k, n, 64)
    po = plan["pack"]
    seen = {64: [], 32: []}
    raw = []                                    # the high digit's values before the rounding
    real, real_dec = he._open_response, he.K.decrypt2
    cur = [64]

    def spy(data, cnt, pos, ks, tb, tbits=64, step="he"):
        cur[0] = tbits
        v = real(data, cnt, pos, ks, tb, tbits, step)
        seen[tbits].append(v.copy())
        return v

    def spy_dec(*a):
        v = real_dec(*a)
        if cur[0] == 32:
            raw.append(v.copy())
        return v
    monkeypatch.setattr(he, "_open_response", spy)
    monkeypatch.setattr(he.K, "decrypt2", spy_dec)
    R = _weights(rng, (k, n), 64, "extreme")

    def a(s):
        he._setup(s, 0, galois=True)
        with s.phase("p"):
            z = he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, L=np.zeros((m, k), U64), nbits_r=64, encrypt="L")
        return z, s.stats()["p"]

    def b(s):
        he._setup(s, 0, galois=True)
        return he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, R=R, nbits_r=64, encrypt="L")
    (z0, st), z1 = run_pair(a, b)
    assert np.array_equal(z0 + z1, np.zeros((m, n), U64))
    assert st["bytes_recv"] == po["out_bytes"] and st["bytes_sent"] == po["in_bytes"]
    lo, hi = np.concatenate([v.reshape(-1) for v in seen[64]]), np.concatenate([v.reshape(-1) for v in seen[32]])
    assert lo.size == hi.size == m * n
    assert np.all(hi % (1 << 32) == 0)
    # the margin: what the sender decrypts lies well within 2^31 of the multiple of 2^32
    r = np.concatenate([v.reshape(-1) for v in raw])
    dist = np.abs(((r + np.uint64(1 << 31)) % np.uint64(1 << 32)).astype(np.int64) - (1 << 31))
    assert r.size == hi.size and int(dist.max()) < 2**31 - 2**29
    for x, b0 in ((lo, 0), (hi, 32)):
        bits = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")[:, b0:]
        assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 6 * 0.5 / math.sqrt(x.size))


def test_split_response_frames_checked(rng):
    """A high-digit response of the wrong size is refused, naming the step."""
    m, k, n = 64, 600, 20
    plan = he.matmul_plan(m, k, n, 64)
    po = plan["pack"]
    npp = min(plan["nI"] * plan["nJ"], 1 << po["l"]) * plan["mw"] * plan["nw"]
    lo_size, hi_size = he._resp_size(1, npp, 64), he._resp_size(1, npp, 32)
    assert hi_size < lo_size
    _refused_responses(rng, m, k, n, 64, [(lo_size, hi_size - 1), (lo_size, hi_size + 1), (lo_size, lo_size)])
    # frames of the right sizes whose words exceed what q' allows (all bits set): refused too
    _refused_responses(rng, m, k, n, 64, [(lo_size, hi_size)], fill=255, first=lo_size)
    _refused_responses(rng, m, k, n, 64, [(lo_size,)], fill=255, first=K.packed_size(1, N, he.WIDTHS[:2]))


def _refused_responses(rng, m, k, n, bits, frames, fill=0, first=None):
    """An evaluator answering with frames of the sizes in each tuple of ``frames`` (bytes
    ``fill``, except that the first frame is zero before byte ``first``) gets a
    ``ProtocolError`` naming the response step."""
    plan = he.matmul_plan(m, k, n, bits)
    L = rng.integers(0, 2**64, size=(m, k), dtype=U64)

    def sender(s):
        he._setup(s, 0, galois=True)
        return he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, L=L, nbits_r=bits, encrypt="L")

    for sizes in frames:
        def bad(s, sizes=sizes):
            he._setup(s, 0, galois=True)
            s.channel.recv_array("he.cross_matmul.ct", np.uint8, (16,))
            s.channel.recv_array("he.cross_matmul.ct", np.uint8,
                                 (K.packed_size(plan["nI"] * plan["nK"], N, he.WIDTHS[:plan["pack"]["L"]]),))
            for i, size in enumerate(sizes):
                frame = np.full(size, fill, np.uint8)
                if i == 0 and first is not None:
                    frame[:first] = 0
                s.channel.send("he.cross_matmul.resp", frame)
        with pytest.raises(ProtocolError, match="he.cross_matmul.resp"):
            run_pair(sender, bad)


# ---------------------------------------------------------------- what the sender sees

def test_sender_sees_masked_results_only(rng):
    """The packed responses carry a' (every coefficient re-randomized) and b' at the result
    positions only (frame sizes); what the sender decrypts there is x w + r with a fresh
    uniform r (x = 0: uniform bits, two runs differ)."""
    m, k, n = 64, 16, 64
    L = np.zeros((m, k), U64)
    R = _weights(rng, (k, n), 18, "extreme")
    plan = he.matmul_plan(m, k, n, 18)
    po = plan["pack"]
    assert po is not None
    T = plan["nI"] * plan["nJ"]
    npos = plan["mw"] * plan["nw"]
    assert po["out_bytes"] == he._packed_out_bytes(T, npos, 1 << po["l"])

    def run():
        def a(s):
            he._setup(s, 0, galois=True)
            with s.phase("p"):
                z = he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, L=L, nbits_r=18, encrypt="L")
            return z, s.stats()["p"]

        def b(s):
            he._setup(s, 0, galois=True)
            return he.cross_matmul(s, l_owner=0, m=m, k=k, n=n, R=R, nbits_r=18, encrypt="L")
        return run_pair(a, b)[0]
    (x, st), (y, _) = run(), run()
    # received = a' (N coefficients) + b' at exactly the T * npos result positions
    assert st["bytes_recv"] == po["out_bytes"]
    assert np.mean(x == y) < 0.01
    bits = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    sd = 0.5 / math.sqrt(x.size)
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 6 * sd)


# ---------------------------------------------------------------- frames

def test_galois_key_frames_checked():
    ks = K.packed_size(len(he.GALOIS) * len(he.KS_GROUPS), N, he.WIDTHS[:he.KS_LIMBS])
    assert ks + 16 == he._gk_bytes() < 1_400_000

    def evaluator(s):
        he._setup(s, 0, galois=True)

    for size, fill in ((ks - 1, 0), (ks + 1, 0), (ks, 255)):
        def bad(s, size=size, fill=fill):
            he._setup(s, 0)
            step = "he.setup.galois.P0"
            s.channel.send(step, np.zeros(16, np.uint8))
            s.channel.send(step, np.full(size, fill, np.uint8))
        with pytest.raises(ProtocolError, match="he.setup.galois.P0"):
            run_pair(bad, evaluator)


def test_packed_response_frames_checked(rng):
    m, k, n = 20, 50, 30
    plan = he.matmul_plan(m, k, n, 18)
    po = plan["pack"]
    first = K.packed_size(1, N, he.WIDTHS[:2]) + K.packed_size(1, min(T := plan["nI"] * plan["nJ"], 1 << po["l"])
                                                                 * plan["mw"] * plan["nw"], he.B_WIDTHS)
    _refused_responses(rng, m, k, n, 18, [(first - 1,), (first + 1,)])
    assert T >= 2


# ---------------------------------------------------------------- packed convolutions
@pytest.fixture
def conv_pack(monkeypatch):
    """Packed convolutions are off by default (compute); these tests turn them on."""
    monkeypatch.setattr(he, "CONV_PACK", True)


def _conv_cases():
    import importlib.util
    import os
    spec = importlib.util.spec_from_file_location("_t_arith_he", os.path.join(os.path.dirname(__file__),
                                                                              "test_arith_he.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CONV_CASES


CONV_CASES = _conv_cases() + [
    ((1, 7, 9, 11), (5, 7, 2, 3), 1, (0, 1, 1, 0), (3, 1), 1),       # odd sizes, dilated, 7 -> 8 channels
    ((3, 16, 6, 6), (16, 16, 3, 3), 1, 1, 1, 1),                     # 16 channels: Cw 16
    ((1, 64, 12, 12), (8, 64, 3, 3), 1, 1, 1, 1),                     # several channel blocks
    ((1, 1, 28, 28), (6, 1, 5, 5), 1, 0, 1, 1),                       # 1 channel in 8 slots (LeNet, batch 1)
    ((1, 6, 12, 12), (16, 6, 5, 5), 1, 0, 1, 1),                      # 6 channels in 32 slots
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bits,kind", [(18, "random"), (64, "random"), (18, "extreme"), (64, "extreme")])
def test_packed_conv2d_exact(rng, case, bits, kind, conv_pack):
    """With the input owner's Galois keys in place, the channel-interleaved packed encoding is
    chosen where it moves fewer bytes; results are exact (against numpy) either way."""
    xs, ws, st, pd, dl, g = case
    geom = Conv2dGeom.make(xs, ws, st, pd, dl, g)
    X = rng.integers(0, 2**64, size=xs, dtype=U64)
    X.reshape(-1)[:3] = [0, 2**64 - 1, 2**63][:X.size]
    Kr = _weights(rng, ws, bits, kind)

    def a(s):
        he._setup(s, 1, galois=True)
        return he.cross_conv2d(s, x_owner=1, geom=geom, K=Kr, nbits=bits)

    def b(s):
        he._setup(s, 1, galois=True)
        return he.cross_conv2d(s, x_owner=1, geom=geom, X=X, nbits=bits)
    r0, r1 = run_pair(a, b)
    assert r0.shape == geom.out_shape
    assert np.array_equal(r0 + r1, conv2d_ring(X, Kr, geom))


def test_packed_conv_plans(conv_pack):
    """The interleaved packed encoding is chosen for most cases once keys are in place, never
    where it costs more, and the figures' layers get cheaper (ResNet 3x3, LeNet's second conv)."""
    used = 0
    for case in CONV_CASES:
        geom = Conv2dGeom.make(*case)
        for bits in (18, 64):
            p = he._conv_choice(geom, bits, True)[2]
            u = he._conv_choice(geom, bits, False)[2]
            assert p["bytes"] <= u["bytes"]
            used += bool(p["il"])
            if p["il"] and p["nI"]:
                assert p["pack"] is not None and p["Cw"] & (p["Cw"] - 1) == 0
    assert used >= len(CONV_CASES)
    for xs, ws, pd in [((1, 64, 56, 56), (64, 64, 3, 3), 1), ((64, 6, 12, 12), (16, 6, 5, 5), 0),
                       ((1, 1, 28, 28), (6, 1, 5, 5), 0), ((1, 6, 12, 12), (16, 6, 5, 5), 0)]:
        geom = Conv2dGeom.make(xs, ws, 1, pd, 1, 1)
        assert he.conv2d_costs(geom, nbits=18)["X"] < he._conv_choice(geom, 18, False)[2]["bytes"]
    # few channels pack through more channel slots than channels (LeNet at batch 1: 2.5x, 6x fewer)
    for xs, ws in [((1, 1, 28, 28), (6, 1, 5, 5)), ((1, 6, 12, 12), (16, 6, 5, 5))]:
        p = he._conv_choice(Conv2dGeom.make(xs, ws, 1, 0, 1, 1), 18, True)[2]
        assert p["il"] and p["Cw"] > xs[1]


def test_packed_conv_bytes_match_cost_model(rng, conv_pack):
    geom = Conv2dGeom.make((4, 6, 12, 12), (16, 6, 5, 5), 1, 0, 1, 1)
    assert he._conv_choice(geom, 18, True)[2]["il"]
    Kr = _weights(rng, geom.w_shape, 18, "random")

    def a(s):
        he._setup(s, 1, galois=True)
        with s.phase("cv"):
            he.cross_conv2d(s, x_owner=1, geom=geom, K=Kr, nbits=18)
        return s.stats()["cv"]["bytes"]

    def b(s):
        he._setup(s, 1, galois=True)
        he.cross_conv2d(s, x_owner=1, geom=geom, X=np.ones(geom.x_shape, U64), nbits=18)
    assert run_pair(a, b)[0] == he.conv2d_costs(geom, nbits=18)["X"]


# ---------------------------------------------------------------- fused kernels (IFMA)

def test_ntt_short_support_matches_dense(rng):
    """The forward NTT skips the copy stages of short-support inputs (plaintext encodings; a block
    kernel for supports <= 64): by linearity, NTT(a) = NTT(a + e) - NTT(e) with e dense."""
    tb = he._tables()
    qs = np.array(he.PRIMES, dtype=U64)
    e = np.zeros((1, len(qs), N), U64)
    e[0, :, N - 1] = 1
    e[0, :, 5] = 7
    E = e.copy()
    tb.forward(E)
    for sup in (0, 1, 2, 3, 8, 63, 64, 65, 128, 4096, N):
        a = np.zeros((1, len(qs), N), U64)
        a[0, :, :sup] = rng.integers(0, 2**62, size=(len(qs), sup), dtype=U64) % qs[:, None]
        A = a.copy()
        tb.forward(A)
        ref = (a + e) % qs[:, None]
        tb.forward(ref)
        assert np.array_equal(A, (ref + qs[:, None] - E) % qs[:, None]), sup
        w = np.zeros((2, N), np.int64)
        w[0, :sup] = rng.integers(-2**63, 2**63, size=sup, dtype=np.int64)
        wr = K.to_rns(w, qs)
        tb.forward(wr)
        assert np.array_equal(K.encode_ntt(w, tb, len(qs)), wr)


def test_fused_kernels_match_steps(rng):
    """The fused IFMA kernels of the packed products equal, bit for bit, the step-by-step kernels:
    key switching (with the automorphism of a composed path first), the in-place merge, the
    members (encoding, products, inverse NTT, switch to Q4, X^-c)."""
    tb = he._tables()
    if not K.key_switch_available(tb):
        pytest.skip("no AVX-512 IFMA")
    q6 = np.array(he.PRIMES[:he.KS_LIMBS], dtype=U64)
    kb = rng.integers(0, 2**62, size=(3, he.KS_LIMBS, N), dtype=U64) % q6[:, None]
    ka = rng.integers(0, 2**62, size=(3, he.KS_LIMBS, N), dtype=U64) % q6[:, None]
    t = rng.integers(0, 2**62, size=(3, 2, he.PACK_LIMBS, N), dtype=U64) % QP[:, None]
    t[0, 1, :, :9] = 0
    t[1, 1, 0, :] = QP[0] - 1
    steps = (kb, ka, K.shoup(kb, q6), K.shoup(ka, q6))
    for g in (1, 257, 3585, 2 * N - 1):
        src = he._automorph(t, g, QP) if g != 1 else t
        kb2, ka2 = he._key_switch_steps(np.ascontiguousarray(src[:, 1]), steps, tb)
        K.add_rows(kb2, np.ascontiguousarray(src[:, 0]), QP)
        got = K.key_switch(t, kb, ka, K.shoup52(kb, q6), K.shoup52(ka, q6), tb, he.KS_GROUPS, he._ks_qinv(), g)
        assert np.array_equal(got[:, 0], kb2) and np.array_equal(got[:, 1], ka2), g
        inplace = t.copy()
        K.key_switch(inplace, kb, ka, K.shoup52(kb, q6), K.shoup52(ka, q6), tb, he.KS_GROUPS, he._ks_qinv(), g,
                     out=inplace)
        assert np.array_equal(inplace, got)
    for D in (1, 4, 32):
        for g in (257, 3585, 257 * 3585 % (2 * N)):
            E, O = t[:2].copy(), t[1:].copy()
            sm, tt = K.pack_pre(E, O, QP, D, g)
            K.pack_pre_inplace(E, O, QP, D, g)
            assert np.array_equal(E, sm) and np.array_equal(O, tt)
    for L, cnt in ((4, 1), (5, 3), (6, 2)):
        qs = np.array(he.PRIMES[:L], dtype=U64)
        lev = he._level(L)
        cb = rng.integers(0, 2**62, size=(cnt, 3, L, N), dtype=U64) % qs[:, None]
        ca = rng.integers(0, 2**62, size=(cnt, 3, L, N), dtype=U64) % qs[:, None]
        w = np.zeros((2, N), np.int64)
        w[0, :64] = rng.integers(-2**17, 2**17, size=64)
        w[1, :300] = rng.integers(-2**63, 2**63, size=300, dtype=np.int64)
        kidx = np.array([2, 0])
        qinv = np.zeros((L - he.PACK_LIMBS, L), U64)
        for i in range(L - he.PACK_LIMBS):
            qinv[i, :lev.qinv[i].shape[0]] = lev.qinv[i]
        out = np.empty((cnt, 2, he.PACK_LIMBS, N), U64)
        K.members(out, cb, ca, w, kidx, tb, qinv, 2 * N - 63)
        wr = K.to_rns(w, qs)
        tb.forward(wr)
        acc = np.zeros((2, cnt, L, N), U64)
        K.mul_acc(acc[0], cb, wr, None, qs, kidx)
        K.mul_acc(acc[1], ca, wr, None, qs, kidx)
        live = np.ascontiguousarray(acc.transpose(1, 0, 2, 3)).reshape(cnt * 2, L, N)
        tb.inverse(live)
        for i in range(L - he.PACK_LIMBS):
            live = K.rescale(np.ascontiguousarray(live), qs[:L - i], lev.qinv[i])
        ref = K.monomial(np.ascontiguousarray(live.reshape(cnt, 2, he.PACK_LIMBS, N)), QP, 2 * N - 63)
        assert np.array_equal(out, ref), L


def test_conv_pack_modes():
    """``auto`` packs a convolution where the bytes saved outweigh the estimated extra compute at
    100 Mbit/s: DenseNet's small-spatial layers pack (several times fewer bytes, little compute),
    a 56x56 1x1 layer does not (18% fewer bytes for twice the compute); ``bytes`` packs wherever
    it saves bytes, ``off`` never; bad modes are refused."""
    small = Conv2dGeom.make((1, 960, 7, 7), (128, 960, 1, 1), 1, 0, 1, 1)
    big = Conv2dGeom.make((1, 256, 56, 56), (128, 256, 1, 1), 1, 0, 1, 1)
    for g, auto_packs in ((small, True), (big, False)):
        off = he._conv_choice_mode(g, 18, "off")[2]
        auto = he._conv_choice_mode(g, 18, "auto")[2]
        most = he._conv_choice_mode(g, 18, "bytes")[2]
        assert off["pack"] is None and most["pack"] is not None and most["bytes"] < off["bytes"]
        assert (auto["pack"] is not None) == auto_packs
        cost = lambda p: p["bytes"] + he.CONV_PACK_BPS * he.conv_seconds(p)   # noqa: E731
        assert cost(auto) <= min(cost(off), cost(most))
    assert he._conv_choice_mode(small, 18, "auto")[2]["bytes"] * 4 < he._conv_choice_mode(small, 18, "off")[2]["bytes"]
    assert he.CONV_PACK == "auto" and he.conv_pack_mode(True) == "bytes" and he.conv_pack_mode(False) == "off"
    for bad in ("on", 1, ""):
        with pytest.raises(ValueError, match="conv packing mode"):
            he.conv_pack_mode(bad)
    # the session's mode wins over the module's; costs follow it
    assert he.conv2d_costs(small, nbits=18, mode="off")["X"] == he._conv_choice(small, 18, False)[2]["bytes"]


def test_conv_pack_session_mode_exact(rng):
    """A session's mode (``s.he_conv_pack``, as the executor sets it from the plan) decides the
    encoding on both sides; the products are exact either way."""
    geom = Conv2dGeom.make((1, 64, 7, 7), (32, 64, 1, 1), 1, 0, 1, 1)
    X = rng.integers(0, 2**64, size=geom.x_shape, dtype=U64)
    Kw = rng.integers(-2**17, 2**17, size=geom.w_shape).astype(np.int64).view(U64)
    want = conv2d_ring(X, Kw, geom)
    seen = {}
    for mode in ("off", "auto"):
        def f(s, mode=mode):
            s.he_conv_pack = mode
            he._setup(s, 1, galois=True)
            with s.phase("c"):
                z = he.cross_conv2d(s, x_owner=1, geom=geom, X=X if s.role == 1 else None,
                                    K=Kw if s.role == 0 else None, nbits=18)
            return z, s.stats()["c"]["bytes"]
        (z0, b0), (z1, _) = run_pair(f, f)
        assert np.array_equal(z0 + z1, want)
        assert b0 == he.conv2d_costs(geom, nbits=18, mode=mode)["X"]
        seen[mode] = b0
    assert seen["auto"] < seen["off"]


def test_conv_pack_disagreement_is_a_protocol_error(rng):
    """he.CONV_PACK is a module switch both parties must share (review HE-P1): if only one
    side packs, the other side's frame-size checks stop the product with a ProtocolError."""
    from ezprotocols.errors import ProtocolError
    geom = Conv2dGeom.make((4, 6, 12, 12), (16, 6, 5, 5), 1, 0, 1, 1)
    Kr = _weights(rng, geom.w_shape, 18, "random")

    def a(s):                                  # separate processes: each has its own module state
        he.CONV_PACK = True
        he._setup(s, 1, galois=True)
        return he.cross_conv2d(s, x_owner=1, geom=geom, K=Kr, nbits=18)

    def b(s):
        he.CONV_PACK = False
        he._setup(s, 1, galois=True)
        return he.cross_conv2d(s, x_owner=1, geom=geom, X=np.ones(geom.x_shape, U64), nbits=18)

    with pytest.raises(ProtocolError, match="he"):
        run_pair(a, b, transport="tcp", timeout=60)
