"""Elementwise cross products by batched (SIMD) BFV with CRT plaintext primes.

:mod:`ezprotocols.arith.he` encodes coefficients with ``t = 2^64``: products of polynomials,
no elementwise products.  Here the plaintext moduli are three primes ``t_j = 1 mod 2N``
(:data:`PT_PRIMES`, just below ``2^57``; ``T = t_1 t_2 t_3 > 2^170.9``): the negacyclic NTT
modulo ``t_j`` is a ring isomorphism ``Z_t[X]/(X^N + 1) -> Z_t^N``, so a plaintext polynomial
holds ``N = 8192`` slots and the product of an encryption with a plaintext polynomial is a
slotwise product.  The ciphertext side (ring, prime chain, keys, errors, re-randomization,
flooding, RNS rescaling) is that of :mod:`ezprotocols.arith.he`.

Protocol (one round trip; the *key owner* ``P_o`` holds ``x_1 .. x_K``, the evaluator
``P_e`` holds ``w_1 .. w_K``, all ``uint64[n]``; result: additive shares of ``sum_k x_k w_k mod
2^64``; ``K = 2`` gives both cross terms of a shared x shared product ``x0 y1 + y0 x1`` with
``P_o = P0``, ``K = 1`` one cross term)

* ``P_o``: per prime ``t_j`` and ``k``, the slots ``x_k mod t_j`` (``N`` per ciphertext,
  zero-padded) are turned into coefficients by the inverse NTT modulo ``t_j`` and encrypted
  symmetrically at level ``L = 6`` (``Q = q0 .. q5`` ~200.9 bits) with the precise encoding ``round(Q m /
  t_j)`` (:func:`K.add_delta_t`); ``a`` from a 16-byte seed, only ``b`` is sent.
* ``P_e``: per prime and ciphertext, ``sum_k ct_k * p_k`` with ``p_k`` the centred coefficients
  (``|p| <= (t_j - 1)/2``) of ``w_k mod t_j`` encoded the same way; adds an encryption of zero
  under ``P_o``'s public key (fresh ternary ``u``), uniform flooding in ``[-2^f, 2^f)`` on all
  ``N`` coefficients of ``b``, and ``round(Q rho_j / t_j)`` for the coefficients ``rho_j`` of a
  slotwise mask ``r_j`` uniform modulo ``t_j`` (``r = CRT(r_1, r_2, r_3)`` is uniform modulo
  ``T``); switches to ``q' = q0 q1`` and sends ``a'`` and ``b'`` (all ``N`` coefficients of each)
  without their :data:`DROP_A` / :data:`DROP_B` low bits.  Its share: ``-r mod 2^64``.
* ``P_o`` decrypts ``round(t_j (b' + a' s) / q') mod t_j`` (:func:`K.decrypt2_t`), the forward
  NTT modulo ``t_j`` gives the slots ``V_j = (X + r) mod t_j`` with ``X = sum_k x_k w_k`` as an
  integer (``X < K 2^128 <= 2^129``); Garner's CRT (:func:`K.crt_u64`) gives ``V = (X + r)
  mod T`` reduced mod 2^64: its share.  ``V - r = X - T [X + r >= T]``: the shares are exact
  unless ``X + r`` wraps modulo ``T``, which happens with probability ``X / T < 2^129 / T <
  2^-41.9`` per element.

Masking: uniform modulo ``T`` rather than the statistical masking ``r < T - 2^130`` (no wrap,
statistical distance ``2^129 / T`` *per element*, so ``n 2^-42`` for a call of ``n`` elements,
not ``2^-40`` per call): with ``r`` uniform modulo ``T``, ``V`` is uniform and independent of
``X``, so ``P_o``'s decrypted values reveal nothing (perfectly), and the ``2^-42`` per element
becomes a correctness error (the result is off by ``T mod 2^64``) instead of a leak; it is
negligible beside the failure probability of the local truncation that follows a fixed-point
product (``|v| / 2^64`` per element: ``>= 2^-32`` for a product at scale ``2f = 32``).  In the
simulation-based sense the two options have the same bound (the joint distance of view and
output is the wrap probability); the uniform mask keeps the view exact.

Noise (worst case, every term bounded, decryption exact): the encoding errs by ``|eps| <= 1/2``
per coefficient, the fresh errors are CBD(21), so ``|(e + eps) p| <= N (21 + 1/2) (t_j - 1)/2``
per product and ``B_w = K N 21.5 (t - 1)/2`` (``2^74.4`` for ``K = 2``); re-randomization adds
``(2N + 1) 21``, the mask's encoding ``1/2``: ``B``.  Flooding ``2^f >= 2^40 n_rev B`` with
``n_rev = 3 n_ct N`` the coefficients returned by the call (:func:`params`: ``f <= 138`` for a
call of up to 2^20 elements).  ``Q_6`` must satisfy: after switching to ``q'`` the noise
``(2^f + B) q' / Q_6 + (N + 1)/2 * 1.001`` (the flooded noise scaled, the rounding of the
four RNS drops) plus the rounding of the dropped bits, ``2^(DROP_B - 1)`` on ``b'`` and ``N
2^(DROP_A - 1)`` on ``a' s`` (ternary ``s``), stays below ``q' / (2 t_j) - 1``: with ``t_j <
2^57``, ``q' / 2t > 2^22.99``, the scaled noise ``< 2^17.1``, and ``DROP_A = 9``, ``DROP_B =
22`` take ``2^21 + 2^21``: 31 bits per slot per prime fewer in the response
(:func:`check_noise`).  Five primes (``Q_5`` ~174.9 bits) do not fit ``(2^f + B) 2 t``.

Bytes per element (``K = 2``, ``n`` a multiple of ``N``): per prime ``2 x 203`` input bits
(``b`` only, residues packed at 41 + 41 + 46 + 29 + 20 + 26 bits) and ``(81 - 9) + (81 - 22) = 131``
output bits: ``3 (406 + 131) / 8 = 201.4 B`` for both cross terms of a shared x shared product
(no triple, no opening; a Beaver triple through it adds the 32-byte opening); ``K = 1``:
``3 (203 + 131) / 8 = 125.3 B`` for one cross term (additive COT over Ferret: ~262 B).  A call
pads ``n`` to a multiple of ``N`` (10^6 elements: 123 ciphertexts per prime, 202.9 B).

Security (semi-honest, simulatable; sigma = 40 per call as for :mod:`ezprotocols.arith.he`):

* ``P_e`` sees the ``b`` parts of fresh symmetric RLWE encryptions under ``P_o``'s key (and the
  public key): pseudorandom under RLWE with the parameters of :func:`he.check_parameters` (``N =
  8192``, ``log Q <= 218``, ternary secret, CBD(21) errors).  The plaintext modulus plays no
  role in RLWE hardness.
* ``P_o`` sees ``(a', b')``.  ``a' = sum_k a_k p_k + a_pk u + e2`` is pseudorandom (fresh RLWE
  sample with secret ``u``).  Given ``a'`` and ``s``, ``b'`` is determined by the decrypted
  message and the noise.  The message's slots are ``V = (X + r) mod T``, uniform and independent
  of ``X`` (fresh ``r`` uniform mod ``T``); the noise is ``n_w + n_u + F`` with ``|n_w + n_u| <=
  B`` (``n_w`` depends on ``p_k``, i.e. on ``w_k``), hidden by the uniform flooding ``F`` with
  statistical distance ``<= n_rev B / 2^(f+1) <= 2^-41`` per call.  Switching to ``q'`` and
  dropping low bits are public post-processing.  So ``P_o``'s view is simulated from a uniform
  ``V``; with the correctness error above, the joint distance is ``2^-41 + n 2^-41.9``.
* Sizes, ``n``, the primes and the parameters are public; both parties compute them.

Kernels: every per-coefficient loop is a nogil kernel of :mod:`ezprotocols._ext.he` (encoding
``add_delta_t``, ``decrypt2_t``, the CRT ``crt_u64``, NTTs with :class:`K.NttTables` built for
the plaintext primes, the products, rescaling and bit dropping of :mod:`he`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .._ext import he as K
from .._ext.crypto import Prg
from ..errors import ProtocolError
from . import he

__all__ = ["PT_PRIMES", "params", "check_noise", "simd_bytes", "simd_gen", "simd_product",
           "shared_mul", "cross_mul", "encode_slots", "decode_slots"]

U64 = np.uint64
N = he.N
ETA = he.ETA
LEVEL = 6                                       # Q_6 = q0 .. q5, ~200.9 bits
CT_CHUNK = 16                                   # ciphertexts per prime in one message (memory)
MAX_CT = 128                                    # ciphertexts per prime in one call (2^20 elements)
PT_BITS = 57
PT_PRIMES = tuple(he._primes_below(1 << PT_BITS, 3, 2 * N))
PT_ROOTS = tuple(he._root(t, 2 * N) for t in PT_PRIMES)
T_PROD = math.prod(PT_PRIMES)
DROP_A = 9
DROP_B = 22
QF = he.QF


@lru_cache(maxsize=None)
def _pt_tables(j: int):
    return K.NttTables(N, [PT_PRIMES[j]], [PT_ROOTS[j]])


@lru_cache(maxsize=None)
def _enc_consts(j: int):
    """``floor(Q/t_j) mod q_l`` and ``Q mod t_j`` at :data:`LEVEL`."""
    ps = he.PRIMES[:LEVEL]
    Q = math.prod(ps)
    t = PT_PRIMES[j]
    return np.array([(Q // t) % q for q in ps], dtype=U64), Q % t


def _B(Kn: int) -> int:
    t = max(PT_PRIMES)
    return Kn * N * (2 * ETA + 1) * (t - 1) // 4 + 1 + (2 * N + 1) * ETA + 1


@lru_cache(maxsize=None)
def params(Kn: int, n_ct: int) -> int:
    """The flooding exponent ``f`` of a call with ``K = Kn`` products per slot and ``n_ct``
    ciphertexts per prime (``n_rev = 3 n_ct N``); ``ValueError`` if the noise does not fit."""
    B = _B(Kn)
    f = B.bit_length() + he.SIGMA + (3 * max(n_ct, 1) * N).bit_length()
    if not check_noise(Kn, n_ct, f):
        raise ValueError(f"he_simd: the noise bound does not fit (K={Kn}, {n_ct} ciphertexts)")
    return f


def check_noise(Kn: int, n_ct: int, f: int | None = None) -> bool:
    """The decryption condition of the module docstring (worst case) for every plaintext prime."""
    B = _B(Kn)
    if f is None:
        f = B.bit_length() + he.SIGMA + (3 * max(n_ct, 1) * N).bit_length()
    Q = math.prod(he.PRIMES[:LEVEL])
    for t in PT_PRIMES:
        if ((1 << f) + B) * 2 * t >= Q:
            return False
        # scaled noise + rescale rounding + dropped bits < q'/(2t) - 1, in integers (x 2000 Q t)
        lhs = (((1 << f) + B) * QF * 2000 * t + (N + 1) * 1001 * Q * t
               + ((1 << (DROP_B - 1)) + N * (1 << (DROP_A - 1)) + 1) * 2000 * Q * t)
        if not lhs < QF * 1000 * Q:
            return False
    return True


WA = he._widths(DROP_A)
WB = he._widths(DROP_B)
_IN_BITS = sum(he.WIDTHS[:LEVEL])


def _in_bytes(cnt: int) -> int:
    return K.packed_size(cnt, N, he.WIDTHS[:LEVEL])


def _out_bytes(cnt: int) -> tuple:
    return K.packed_size(cnt, N, WA), K.packed_size(cnt, N, WB)


def _chunks(n_ct: int) -> list:
    return [(c, min(c + CT_CHUNK, n_ct)) for c in range(0, n_ct, CT_CHUNK)]


def _calls(n: int) -> list:
    """Element ranges of the calls (at most ``MAX_CT`` ciphertexts per prime each)."""
    step = MAX_CT * N
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def simd_bytes(n: int, Kn: int) -> int:
    """Bytes both directions move for ``n`` elements with ``K = Kn`` products per slot."""
    tot = 0
    for i0, i1 in _calls(int(n)):
        n_ct = -(-(i1 - i0) // N)
        for c0, c1 in _chunks(n_ct):
            cnt = c1 - c0
            a, b = _out_bytes(3 * cnt)
            tot += 16 + _in_bytes(3 * Kn * cnt) + a + b
    return tot


# ------------------------------------------------------------------ slots <-> coefficients

def encode_slots(v: np.ndarray, j: int) -> np.ndarray:
    """``uint64[cnt, N]`` slot values (any ``uint64``, reduced mod ``t_j``) -> coefficients mod
    ``t_j`` (inverse NTT)."""
    t = U64(PT_PRIMES[j])
    x = np.ascontiguousarray(v % t).reshape(-1, 1, N)
    _pt_tables(j).inverse(x)
    return x.reshape(-1, N)


def decode_slots(c: np.ndarray, j: int) -> np.ndarray:
    """Coefficients mod ``t_j`` -> slots (forward NTT)."""
    x = np.ascontiguousarray(c, dtype=U64).reshape(-1, 1, N).copy()
    _pt_tables(j).forward(x)
    return x.reshape(-1, N)


def _slots(v: np.ndarray, i0: int, i1: int, c0: int, c1: int) -> np.ndarray:
    """Elements of ciphertexts ``c0 .. c1`` of a call starting at ``i0`` (zero-padded)."""
    out = np.zeros((c1 - c0) * N, U64)
    a, b = i0 + c0 * N, min(i0 + c1 * N, i1)
    if b > a:
        out[:b - a] = v[a:b]
    return out.reshape(c1 - c0, N)


# ------------------------------------------------------------------ the protocol

def simd_product(s, **kw) -> np.ndarray:
    return he._drive(simd_gen(s, **kw))


def simd_gen(s, *, owner: int, n: int, Kn: int, X=None, W=None, step: str = "he.simd"):
    """Generator (yields once at the key owner after its ciphertexts are sent): this party's
    share ``uint64[n]`` of ``sum_k X[k] * W[k]`` (elementwise, mod 2^64); ``owner`` (the key
    owner) passes ``X uint64[Kn, n]``, the other party ``W uint64[Kn, n]``."""
    n = int(n)
    mine = s.role == owner
    V = np.ascontiguousarray(X if mine else W, dtype=U64)
    if V.shape != (Kn, n):
        raise ValueError(f"{step}: operands of shape {V.shape}, expected {(Kn, n)}")
    out = np.empty(n, U64)
    if n == 0:
        return out
    ks = he._setup(s, owner)
    gens = [_call(s, ks, mine, V[:, i0:i1], i0, i1, Kn, f"{step}") for i0, i1 in _calls(n)]
    if mine:
        for g in gens:
            next(g)
        yield "sent"
    for g, (i0, i1) in zip(gens, _calls(n)):
        out[i0:i1] = he._drive(g)
    return out


def _call(s, ks, mine: bool, V: np.ndarray, i0: int, i1: int, Kn: int, step: str):
    n = i1 - i0
    n_ct = -(-n // N)
    f = params(Kn, n_ct)
    lev = he._level(LEVEL)
    qs = lev.primes
    L = LEVEL
    tb = he._tables()
    q2 = np.array(he.PRIMES[:2], dtype=U64)
    chunks = _chunks(n_ct)
    if mine:
        # ---- key owner: encrypt every chunk, send, then decrypt the responses
        for c0, c1 in chunks:
            cnt = c1 - c0
            m = 3 * Kn * cnt
            seed, b = he.encrypt_zero(s, ks, m, L, qs)
            b = b.reshape(3, Kn * cnt, L, N)
            for j in range(3):
                msg = np.concatenate([encode_slots(_slots(V[k], 0, n, c0, c1), j) for k in range(Kn)])
                dfl, qt = _enc_consts(j)
                K.add_delta_t(b[j], msg, qs, dfl, qt, PT_PRIMES[j])
            s.channel.send(step + ".ct", np.frombuffer(seed, np.uint8))
            s.channel.send(step + ".ct", K.pack(b.reshape(m, L, N), he.WIDTHS[:L]))
            del b
        yield "sent"
        share = np.empty(n, U64)
        sq = ks.s_ntt[:2].reshape(1, 2, N)
        sqp = ks.s_ntt_p[:2].reshape(1, 2, N)
        for c0, c1 in chunks:
            cnt = c1 - c0
            m = 3 * cnt
            ab, bb = _out_bytes(m)
            data = s.channel.recv_array(step + ".resp", np.uint8, (ab + bb,))
            ac, _ = K.unpack(data[:ab], (m, 2, N), WA, np.zeros(2, U64))
            bc, _ = K.unpack(data[ab:], (m, 2, N), WB, np.zeros(2, U64))
            ap = K.crt2_expand(ac, he.PRIMES[0], he.PRIMES[1], DROP_A)
            bp = K.crt2_expand(bc, he.PRIMES[0], he.PRIMES[1], DROP_B)
            tb.forward(ap)
            acc = np.zeros((m, 2, N), U64)
            K.mul_acc(acc, ap.reshape(m, 1, 2, N), sq, sqp, q2)
            tb.inverse(acc)
            x = (acc + bp) % q2[:, None]
            x = x.reshape(3, cnt, 2, N)
            vs = np.empty((3, cnt * N), U64)
            for j in range(3):
                coef = K.decrypt2_t(np.ascontiguousarray(x[j]), he.PRIMES[0], he.PRIMES[1], he.Q0INV,
                                    PT_PRIMES[j])
                vs[j] = decode_slots(coef, j).reshape(-1)
            a0, a1 = c0 * N, min(c1 * N, n)
            share[a0:a1] = K.crt_u64(vs, PT_PRIMES)[:a1 - a0]
        return share
    # ---- evaluator
    pk = np.ascontiguousarray(ks.pk[:, :L])
    pkp = np.ascontiguousarray(ks.pk_p[:, :L])
    share = np.empty(n, U64)
    for c0, c1 in chunks:
        cnt = c1 - c0
        m = 3 * Kn * cnt
        seed = s.channel.recv_array(step + ".ct", np.uint8, (16,)).tobytes()
        data = s.channel.recv_array(step + ".ct", np.uint8, (_in_bytes(m),))
        b, ok = K.unpack(data, (m, L, N), he.WIDTHS[:L], qs)
        if not ok:
            raise ProtocolError(f"{step}.ct: ciphertext residues out of range")
        del data
        tb.forward(b)
        a = K.uniform_mod(Prg(seed).random_uint64(2 * m * L * N), qs, (m, L, N))
        # ciphertext (j, k, i) at row (j Kn + k) cnt + i; regroup to [j, i, k]
        cb = np.ascontiguousarray(b.reshape(3, Kn, cnt, L, N).transpose(0, 2, 1, 3, 4))
        ca = np.ascontiguousarray(a.reshape(3, Kn, cnt, L, N).transpose(0, 2, 1, 3, 4))
        del a, b
        m3 = 3 * cnt
        rnd = {"u": s.prg.random_uint64((m3, N)), "e2": s.prg.random_uint64((m3, N)),
               "e1": s.prg.random_uint64((m3, N)), "flood": s.prg.random_uint64((m3, N, 3)),
               "r": [K.uniform_mod(s.prg.random_uint64(2 * cnt * N), np.array([t], U64), (cnt, 1, N))
                     .reshape(cnt, N) for t in PT_PRIMES]}
        acc_b = np.zeros((3, cnt, L, N), U64)
        acc_a = np.zeros((3, cnt, L, N), U64)
        for j in range(3):
            t = PT_PRIMES[j]
            half = U64(t // 2)
            for k in range(Kn):
                p = encode_slots(_slots(V[k], 0, n, c0, c1), j)
                pc = np.where(p > half, p.view(np.int64) - np.int64(t), p.view(np.int64))
                wr = K.encode_ntt(np.ascontiguousarray(pc), tb, L)
                for i in range(cnt):
                    K.mul_acc(acc_b[j, i:i + 1], cb[j, i:i + 1, k:k + 1], wr[i:i + 1], None, qs)
                    K.mul_acc(acc_a[j, i:i + 1], ca[j, i:i + 1, k:k + 1], wr[i:i + 1], None, qs)
        del cb, ca
        acc_b = acc_b.reshape(m3, L, N)
        acc_a = acc_a.reshape(m3, L, N)
        u = K.to_rns(K.ternary(rnd["u"]), qs)
        tb.forward(u)
        K.mul_acc(acc_b, u.reshape(m3, 1, L, N), pk[0:1], pkp[0:1], qs)
        K.mul_acc(acc_a, u.reshape(m3, 1, L, N), pk[1:2], pkp[1:2], qs)
        del u
        tb.inverse(acc_b)
        tb.inverse(acc_a)
        he._add_signed(acc_a, K.cbd(rnd["e2"], ETA), qs)
        he._add_signed(acc_b, K.cbd(rnd["e1"], ETA), qs)
        K.add_flood(acc_b, rnd["flood"], qs, f)
        acc_b = acc_b.reshape(3, cnt, L, N)
        for j in range(3):
            dfl, qt = _enc_consts(j)
            K.add_delta_t(acc_b[j], encode_slots(rnd["r"][j], j), qs, dfl, qt, PT_PRIMES[j])
        both = np.concatenate([acc_a, acc_b.reshape(m3, L, N)], axis=0)
        del acc_a, acc_b
        for i, top in enumerate(range(L - 1, 1, -1)):
            both = K.rescale(np.ascontiguousarray(both), qs[:top + 1], lev.qinv[i])
        both = np.ascontiguousarray(both)
        ad = K.crt2_drop(np.ascontiguousarray(both[:m3]), he.PRIMES[0], he.PRIMES[1], he.Q0INV, DROP_A)
        bd = K.crt2_drop(np.ascontiguousarray(both[m3:]), he.PRIMES[0], he.PRIMES[1], he.Q0INV, DROP_B)
        s.channel.send(step + ".resp", np.concatenate([K.pack(ad, WA), K.pack(bd, WB)]))
        a0, a1 = c0 * N, min(c1 * N, n)
        r64 = K.crt_u64(np.stack([r.reshape(-1) for r in rnd["r"]]), PT_PRIMES)
        share[a0:a1] = (U64(0) - r64)[:a1 - a0]
    return share


# ------------------------------------------------------------------ products

def shared_mul(s, x: np.ndarray, y: np.ndarray, step: str = "he.simd.shared_mul") -> np.ndarray:
    """Shares of ``x * y`` (flat ``uint64[n]`` shares): ``x_i y_i`` locally, the cross terms
    ``x0 y1 + y0 x1`` by one SIMD call with P0 as the key owner."""
    x = np.ascontiguousarray(x, dtype=U64).reshape(-1)
    y = np.ascontiguousarray(y, dtype=U64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{step}: shapes {x.shape} and {y.shape}")
    n = x.shape[0]
    ops = np.stack([x, y]) if s.role == 0 else np.stack([y, x])
    cross = simd_product(s, owner=0, n=n, Kn=2, X=ops if s.role == 0 else None,
                         W=ops if s.role == 1 else None, step=step)
    return x * y + cross


def cross_mul(s, *, owner: int, n: int, a=None, b=None, step: str = "he.simd.cross_mul") -> np.ndarray:
    """Shares of ``a * b`` elementwise, ``a`` held by ``owner`` (the key owner)."""
    mine = s.role == owner
    v = np.ascontiguousarray(a if mine else b, dtype=U64).reshape(1, -1)
    if v.shape[1] != int(n):
        raise ValueError(f"{step}: {v.shape[1]} values for n={n}")
    return simd_product(s, owner=owner, n=int(n), Kn=1, X=v if mine else None, W=None if mine else v,
                        step=step)
