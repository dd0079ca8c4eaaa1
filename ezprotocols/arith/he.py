"""Homomorphic cross products (RLWE, coefficient encoding): one party's private
matrix/tensor times the other party's, as additive shares in Z_2^64.

Following Cheetah (Huang, Lu, Hong, Chen, Ding, eprint 2022/207, sections 3-4):
the *sender* encrypts its operand under its own secret key, the *evaluator*
multiplies by its plaintext polynomials (coefficient encodings in which one
coefficient of the product is an inner product: no rotations, no key
switching), adds a fresh uniform mask, re-randomizes and floods the noise,
modulus-switches down and returns only the coefficients that carry results
(plus the ``a`` part decryption needs).  Two messages, one round trip.  With output
packing (below) the evaluator first merges up to 64 result ciphertexts into one.

Scheme (own kernels, :mod:`ezprotocols._ext.he`): symmetric BFV with plaintext
modulus ``t = 2^64`` so results land directly in the library's ring; ring
``R_Q = Z_Q[X]/(X^N + 1)``, ``N = 8192``, ``Q`` a product of ``L`` NTT primes
(:data:`PRIMES`), secret ``s`` uniform ternary, errors centered binomial
CBD(21) (standard deviation 3.24, support [-21, 21]; the standard's tables assume
a discrete Gaussian of sigma 3.2: CBD of the same variance is the usual
substitute, as in Kyber).  ``m`` in Z_2^64 is encoded as ``round(Q m / 2^64)``
("precise" BFV encoding): a product with a plaintext integer polynomial ``w``
wraps modulo ``t`` without an error term proportional to ``Q mod t``.

* ``Enc(x) = (b, a)``, ``a`` uniform (expanded from a 16-byte seed, so only ``b``
  is sent: ``L`` residues per coefficient), ``b = -a s + e + round(Q x / t)``.
* The evaluator computes ``sum_k ct_k * w_k``, adds ``(b_pk u + e1, a_pk u + e2)``
  (an encryption of zero under the sender's public key ``pk = (b_pk = -a_pk s
  + e_pk, a_pk)``, ``u`` ternary), ``round(Q r / t)`` for its mask ``r`` and a
  uniform flooding term in ``[-2^f, 2^f)``; then it drops primes down to ``q' =
  q0 q1`` (~2^81) by RNS rounding and sends ``a'`` (all ``N`` coefficients) and
  ``b'`` at the result positions only, without its 15 low bits (they are below the
  decryption margin).  Its share is ``-r``.
* The sender decrypts ``round(2^64 (b' + a' s) / q') mod 2^64 = x w + r``.

Output packing (PackLWEs: Chen, Dai, Kim, Song, "Efficient Homomorphic Conversion Between
(Ring) LWE Ciphertexts", eprint 2020/015, algorithm 2; BumbleBee, eprint 2023/1678, packs
Cheetah's matmul results the same way).  A returned ciphertext carries ``m_w n_w`` results
but ``N`` coefficients of ``a'``; when the results of every product ciphertext lie in one
residue class ``c`` modulo a power of two ``S <= 64`` (matmul blocks with a power-of-two
``k_w``), the evaluator merges ``n = 2^l <= S`` of them:

* the sender encodes with ``t' = 2^(64+l)``: ``round(Q x / t')`` (the kernel adds
  ``round(floor(Q / 2^l) x / 2^64)``, which errs by < 1.5); products still wrap modulo ``t'``;
* the evaluator switches each product down to ``Q4 = q0 .. q3`` (~155.3 bits) if it was
  computed at 5 to 7 primes, multiplies it by ``X^-c`` (results at multiples of ``S``) and runs
  the merge tree (:func:`_pack_tree`): level ``k = 1 .. l`` turns pairs ``(E, O)`` into ``(E +
  X^D O) + tau_g(E - X^D O)``, ``D = S / 2^k``, ``g = 1 + 2^k N / S mod 2^(k+1) N / S``,
  ``tau_g: X -> X^g`` (a product of key elements, each factor followed by key switching back
  to ``s``).  Member ``m``'s result at ``c + S a`` ends at ``S a + m S / n``, multiplied by
  ``2^l``: the message becomes ``2^l (x w mod t') = 2^l (x w mod 2^64)`` in units of ``Q4 /
  t'``, i.e. ``x w mod 2^64`` in units of ``Q4 / 2^64``, so the usual decryption at ``t =
  2^64`` returns the share exactly (no ``2^-l`` needed);
* then, as before, re-randomization with ``pk`` at ``Q4``, flooding, the mask at the result
  positions, switching to ``q'``; ``b'`` is sent at the result positions only.  The other
  coefficients of the packed ciphertext mix partial sums of several members (weight-dependent
  garbage): the tree keeps only the multiples of ``S / n`` clean and none of the rest is sent,
  so no trace (the zeroing half of PackLWEs) is needed.

Key switching is hybrid (the special modulus of Gentry, Halevi, Smart, eprint 2012/099, with
digits that group RNS primes as in Han and Ki, eprint 2019/688): the packing level ``Q4``
(155.3 bits) leaves exactly ``P = q4 q5 q6`` (~62.4 bits) of the standard's 218, and the Galois
keys live at ``Q4 P`` (the whole chain).  Digit ``d_G`` is the centred residue of ``a`` modulo
a group of primes (:data:`KS_GROUPS`: ``q0 q3`` ~69 bits, ``q1``, ``q2``), the key of ``g`` holds
per digit ``b = -a s + e + P E_G tau_g(s)`` with ``E_G`` the CRT idempotent of the group in
``Q4``; ``sum_G d_G key_G`` decrypts to ``P a tau_g(s) + sum_G d_G e_G`` and is divided by ``P``
with rounding, so the key-switching noise is ``B_KS = sum_G (Q_G - 1)/2 N 21 / P + N + 1 <
2^23.01`` (two digits give ``2^40``, which does not fit the room below; four digits
``2^13``, keys 4/3 as large).  Keys exist for two elements only (:data:`GALOIS`: ``257`` and
``3585``); the other automorphisms of the tree are their products, one key switch per factor
(:func:`galois_path`; a 64-member tree: 92 key switches instead of 63).  Keys: 2 elements x 3
digits x ``N`` b-residues at 218 bits, 1.35 MB per direction (before: 6 elements x 5 RNS
digits at ~201 bits without special modulus, 6.24 MB), sent once per session and
direction with the first packed product (or by ``_setup(s, sender, galois=True)``).  A product
without keys in place packs only if that saves more than the keys cost; the network executor
sends the data owner's keys first where a plan's layers together save more
(``nn.secure.Backend.galois_first``, with :meth:`HeProducts.assuming_galois`).  Packing at ``Q4``
rather than higher works because the product's noise is divided by ``q4`` (``q5``, ``q6``) when it
is switched down before packing and the key-switching noise is small; the price is less room
for very large products: a 64-member tree fits up to ``n_rev = 2^19`` results per call (fewer
members or no packing beyond).

Parameters (:func:`check_parameters`, ``tests/test_arith_he.py``): ``log2 Q <=
218`` for ``N = 8192`` in the homomorphicencryption.org standard's table
(Albrecht et al., "Homomorphic Encryption Standard", 2018, table 1, classical
128-bit security, ternary secrets): :data:`HE_STANDARD_128`.  The chain is
two ~40.5-bit primes (the final modulus), then primes of ~45.9, ~28.5, ~19.6, ~26.0 and
~16.8 bits; a call uses the shortest prefix (3 to 7 primes: ~126.9, ~155.4, ~174.9, ~200.9
or ~217.7 bits) whose product clears its noise bound.

Noise (worst case, every term has bounded support so decryption is exact, not
just likely), without packing: let ``W = 2^(wbits-1)`` bound the evaluator's plaintext
coefficients (signed), ``nnz`` the non-zeros of one plaintext polynomial and
``K`` the products summed per output.  The weight-dependent noise is
``|sum_k (e_k + eps_k) w_k| <= B_w = K * nnz * (21 + 1/2) * W``, re-randomization adds
at most ``(2N + 1) * 21`` (it depends on ``u``), the mask encoding 1/2: ``B = B_w +
(2N + 1) 21 + 1``.  Flooding adds ``U[-2^f, 2^f)`` with ``2^f >= 2^40 * n_rev * B``
(``n_rev`` = coefficients returned).  ``Q`` is chosen with ``|noise| < Q / 2^66``; after switching to ``q'`` the
noise is below ``q'/2^66 + (N + 1)/2 * 1.001 + 2^14 < q' / 2^65`` (the last term: the
dropped bits of ``b'``), so rounding recovers ``x w + r`` exactly.

With packing (:func:`level_for_pack`): the encoding errs by < 1.5, so ``B_w = K nnz (21 + 3/2)
W``; each prime ``q`` dropped on the way down to ``Q4`` maps a bound ``n`` to ``n / q + (N + 1)/2 +
2`` (``B_in``; ``B_in = B_w`` for inputs at ``Q4``).  At the result positions (the multiples of
``D`` stay clean) a merge level at most doubles the noise and adds ``r_k B_KS`` (``r_k`` the
factors of its automorphism; the automorphisms permute coefficients up to sign and keep the
bound), so after ``l`` levels it is below ``2^l B_in + sum_k 2^(l-k) r_k B_KS``
(:func:`_ks_count`: ``92 B_KS < 2^29.6`` for a 64-member tree); re-randomization adds ``(2N + 1)
21``, the mask's encoding 1/2: ``B``.  Flooding ``2^f >= 2^40 * n_rev * B`` after packing (it
hides the key-switching noise too, which depends on the weight-dependent intermediate ``a``
parts), and ``(2^f + B) 2^66 < Q4``; the switch to ``q'`` is as above.  The 128x784x128 product
with 18-bit weights packs 64 ciphertexts with ``Q5`` inputs (~174.9 bits; ``B < 2^30``, ``f =
84``, ``2^150 < Q4``); small products (LeNet's 64x256x100) pack with ``Q4`` inputs.

Two digits (:func:`split_w`, chosen by the planner where it moves fewer bytes, for plaintexts
wider than 40 bits such as the uniform 64-bit shares of a shared x shared product): ``w =
w_lo + w_hi`` in Z_2^64 with ``|w_lo| <= 2^31`` and ``w_hi`` a multiple of ``2^32`` (``|w_hi| <=
2^63``).  Both multiply the same input ciphertexts and are packed and returned separately.
The low digit's results are wanted modulo ``2^64`` with ``W = 2^31``; the high digit's results
are multiples of ``2^32``, wanted modulo ``2^64`` too but only their top 32 bits carry
information, so its condition is ``(2^f_hi + B_hi) 2^34 < Q4`` with ``W = 2^63``: each digit needs
~32 bits less modulus than ``w`` whole (the 128x784x128 shared product: inputs at ``Q5``, 174.9
bits, instead of all 218).  The high digit's mask ``r_hi`` is uniform in ``2^32 Z_2^64``, its
flooding ``f_hi`` covers its own ``B_hi``, and it returns ``a'`` and ``b'`` without their low 33
and 46 bits (:data:`DA_HI`, :data:`DB_HI`; the rounding of ``a'`` times the ternary ``s``, at most
``N 2^32``, and of ``b'``, ``2^45``, stay below the ``q'/2^34`` left by the 32-bit message); the
sender rounds what it decrypts to the nearest multiple of ``2^32``.  The two shares add up to
``x w_lo + x w_hi = x w`` mod 2^64.

What each party sees (semi-honest, simulatable):

* Evaluator: the public key and the ``b`` parts of fresh symmetric encryptions
  under ``s``: pseudorandom under RLWE (``N = 8192``, ``log Q <= 218``).
* Sender: ``(b', a')``.  ``a' = a w + a_pk u + e2`` where ``a_pk u + e2`` is an
  RLWE sample with the fresh secret ``u``: pseudorandom, so ``a'`` hides ``a w``
  (circuit privacy of the ``a`` part).  Given ``a'`` and ``s``, ``b'`` is fixed by
  the decryption equation: the message ``x w + r`` is uniform in Z_2^64 at each
  returned position (fresh mask ``r``), and the noise is ``n_w + n_u + F`` with ``n_w``
  the weight-dependent term and ``n_u`` the re-randomization term, ``|n_w + n_u| <= B``.
  Flooding ``F`` uniform on ``2^(f+1)`` values hides both: statistical distance ``<= n_rev
  * B / 2^(f+1) <= 2^-41`` per response (sigma = 40 per product call, whose one or two
  responses stay within ``2^-40``; a session of ``c`` calls is within ``c 2^-40``).  Modulus switching is a public post-processing.  So
  the sender's view is simulated from its own output share.
* Two-digit products: the sender receives two packed responses per group, each as above: the
  low digit's decrypted values are ``x w_lo + r_lo`` with ``r_lo`` uniform in Z_2^64, the high
  digit's ``x w_hi + r_hi`` with ``r_hi`` uniform in ``2^32 Z_2^64`` (where ``x w_hi`` lies), each
  with its own flooding (statistical distance ``<= 2^-41`` per digit, ``2^-40`` per call).  The
  sender's output share is ``z = x w + r_lo + r_hi`` (uniform; the evaluator holds ``-r_lo -
  r_hi``); the simulator draws ``v_hi`` uniform in ``2^32 Z_2^64`` and sets ``v_lo = z - v_hi``,
  which is exactly the joint distribution of the two decrypted values.  The dropped low bits are a public
  post-processing.  That ``w`` is split, ``l``, ``L`` and the floods are public (from shapes).
* Packed products: the evaluator additionally sees the Galois keys, RLWE samples under ``s``
  whose messages ``P E_G tau_g(s)`` depend on ``s`` itself: pseudorandom under RLWE with the
  usual circular-security assumption for key-switching keys (as for every relinearization
  or rotation key: SEAL, eprint 2020/015 section 2, BFV/CKKS key switching); ``N = 8192``,
  ``log (Q4 P) <= 218`` (the special modulus counts: the keys are samples modulo the
  whole chain), the same secret and error distributions.  The sender sees per
  packed ciphertext ``a'`` and ``b'`` at the result positions.  ``a' = a_pack + a_pk u + e2``
  with a fresh ``u``: pseudorandom, whatever ``a_pack`` (a function of ``a w`` and the key
  switching) is.  At each result position the decrypted value is ``x w + r`` with a fresh
  uniform ``r`` and the noise is ``2^l n_w + n_ks + n_u + F`` with ``|...| <= B`` (the
  key-switching noise ``n_ks`` depends on the intermediate ``a`` parts, so on ``w``): the
  flooding ``F`` hides it with statistical distance ``<= n_rev B / 2^(f+1) <= 2^-41`` per call.
  The other coefficients of the packed ciphertext (mixed weight-dependent partial sums) are not
  sent: the sender holds ``b'`` only at result positions (``tests/test_he_pack.py`` checks the
  frame sizes and that the decrypted values are uniformly masked).  So the sender's view is
  again simulated from its output share.
* Neither learns anything else: the shapes, ``wbits`` and the encoding and packing
  parameters are public (computed by both from public shapes, and whether this direction's
  Galois keys were already sent).

Coefficient encoding gives products of *polynomials*, not elementwise products:
elementwise products (and Beaver triples) use SIMD batching with three CRT plaintext
primes instead (:mod:`ezprotocols.arith.he_simd`), chosen by the cost functions where it
moves fewer bytes than OT (:mod:`ezprotocols.arith.ot_source`).  A per-channel scale (BatchNorm)
*is* covered: it is a block-diagonal matmul (:func:`cross_scale`).

Costs (:func:`matmul_costs`, :func:`conv2d_costs`, :func:`scale_costs`) are
computed by both parties from public shapes and pick the encoding block sizes
that move the fewest bytes; ``None`` means infeasible (the noise bound does not
fit the largest modulus).  :class:`HeProducts` (``linear="he"``, the default) offers
this next to the OT options and takes the fewest bytes per product.

Randomness: the secret key, errors, ``u``, masks and flooding come from the session's
AES-CTR PRG (``s.prg``) as 64-bit words turned into samples in C (ternary:
``floor(3 r / 2^64)``; CBD(21): two popcounts); the public ``a`` polynomials expand a
fresh 16-byte ``secrets`` seed with the AES PRG, 128 bits per residue
(``floor(r q / 2^128)``: statistical distance ``q / 2^128`` from uniform).

Why own kernels and t = 2^64 (measured, see DESIGN.md): SEAL's BFV caps the plaintext
modulus at 60 bits, so Z_2^64 shares would need a narrower activation ring with exact
extension/truncation protocols at every layer boundary (Cheetah's route); with
``t = 2^64`` and the precise encoding the results are shares of the library's ring as
they are.  The negacyclic NTT uses Shoup multiplication, AVX-512 IFMA (52-bit) when
present (``_ext/include/ezp_he.h``; the last three stages in registers, inputs with a short
support such as plaintext encodings skip the copy stages), and the evaluator's independent
responses run on two threads.  With IFMA the packed evaluator runs fused kernels: a
member's encoding, products, inverse NTT, switch to ``Q4`` and ``X^-c`` (:func:`K.members`),
and the merge tree in place (:func:`K.pack_pre_inplace`, :func:`K.key_switch` with the
automorphism of a composed path, the keys' 52-bit Shoup quotients computed once per
session) over per-thread workspaces; every result equals the step-by-step kernels bit for bit.  Without packing, what dominates the bytes at small batch sizes is the ``a``
part of each returned ciphertext (``N`` x 81 bits for ``m_w n_w`` results); output packing
(above) is chosen per product by the cost functions.  Convolutions pack through a
channel-interleaved encoding (:func:`conv2d_plan`: channel ``c`` of a tile at ``(i Wt + j) Cw +
c``, ``Cw`` a power of two, results at one class modulo ``Cw``).  It trades bytes for compute
(smaller tiles, more result ciphertexts, key switching): several times fewer bytes at about the
same compute on small feature maps (DenseNet's 7x7 and 14x14 layers), a few per cent fewer bytes
at several times the compute on large ones (the ResNet 3x3 layer on 56x56: 12.17 -> 10.99 MB).
:data:`CONV_PACK` (``"auto"`` by default, public, the same on both sides) packs a convolution
where the bytes saved outweigh the estimated extra compute (:func:`conv_seconds`) at 100 Mbit/s.
"""
from __future__ import annotations

import math
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .._ext import he as K
from .._ext.crypto import Prg
from ..errors import ProtocolError
from .conv import Conv2dGeom

__all__ = ["N", "PRIMES", "HE_STANDARD_128", "SIGMA", "check_parameters", "matmul_costs",
           "conv2d_costs", "scale_costs", "cross_matmul", "cross_conv2d", "cross_scale",
           "shared_matmul", "shared_conv2d", "run_concurrent", "matmul_plan", "conv2d_plan",
           "level_for", "HeProducts", "HeTriples"]

U64 = np.uint64
N = 8192
LOG_N = 13
ETA = 21                    # CBD(21): sigma = sqrt(10.5) = 3.24
SIGMA = 40                  # statistical security of the flooding
T_BITS = 64
FINAL_LIMBS = 2
MIN_LIMBS, MAX_LIMBS = 3, 7
#: homomorphicencryption.org standard, table 1: max log2(Q) for 128-bit classical security,
#: uniform ternary secret, error sigma 3.2.
HE_STANDARD_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}


# ------------------------------------------------------------------ parameters

def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):   # deterministic below 3.3e24
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _primes_below(bound: int, count: int, step: int) -> list:
    out = []
    c = (bound - 1) // step * step + 1
    while len(out) < count:
        if c < bound and _is_prime(c):
            out.append(c)
        c -= step
    return out


def _root(q: int, n2: int) -> int:
    """A primitive ``n2``-th root of unity mod ``q`` (n2 a power of two dividing q - 1)."""
    for g in range(2, 1000):
        r = pow(g, (q - 1) // n2, q)
        if pow(r, n2 // 2, q) == q - 1:
            return r
    raise ValueError("no root")


@lru_cache(maxsize=None)
def _chain():
    """Two ~40.5-bit primes (the final modulus ~2^81), then a ~45.9-, a ~28.5-, a ~19.6-, a
    ~26.3- and a ~16.8-bit prime: the levels (products of the first 3 .. 7) are ~126.9, ~155.3,
    ~174.9, ~200.9 and ~217.7 bits, spaced so that typical noise bounds waste few bits: fixed-point
    weights need ~150-175 bits, a 64-bit operand split into two 32-bit digits (:func:`split_w`)
    ~170-175, batched elementwise products (:mod:`ezprotocols.arith.he_simd`) ~201, whole 64-bit
    operands ~201-218."""
    step = 2 * N
    low = _primes_below(int(2 ** 40.5), 2, step)
    mid = _primes_below(int(2 ** 28.5), 1, step)
    tiny = _primes_below(1 << 17, 1, step)
    split = _primes_below(1 << 20, 2, step)[1]             # 786433, ~19.6 bits
    rest_bits = (HE_STANDARD_128[N] - math.log2(low[0] * low[1] * mid[0] * tiny[0])) / 2
    high = _primes_below(int(2 ** rest_bits), 1, step)
    top = _primes_below(1 << 26, 1, step)                  # 26 bits: Q6 ~200.9 packs in 203 bits
    primes = low + [high[0], mid[0], split, top[0], tiny[0]]
    return tuple(primes), tuple(_root(q, step) for q in primes)


PRIMES = _chain()[0]
WIDTHS = tuple(q.bit_length() for q in PRIMES)
# the whole chain (special primes included) within the standard's 128-bit bound
assert math.prod(PRIMES).bit_length() <= HE_STANDARD_128[N] and len(PRIMES) == 7


def check_parameters() -> dict:
    """The parameter set and its security check against :data:`HE_STANDARD_128`.

    >>> p = check_parameters()
    >>> p["ok"], p["N"], p["log2_Q_bits"] <= HE_STANDARD_128[p["N"]]
    (True, 8192, True)
    """
    Q = math.prod(PRIMES)
    ok = (Q.bit_length() <= HE_STANDARD_128[N] and all((q - 1) % (2 * N) == 0 and _is_prime(q) for q in PRIMES))
    return {"N": N, "primes": PRIMES, "log2_Q": math.log2(Q), "log2_Q_bits": Q.bit_length(),
            "max_log2_Q_128": HE_STANDARD_128[N], "final_log2_q": math.log2(PRIMES[0] * PRIMES[1]),
            "eta": ETA, "secret": "uniform ternary", "ok": ok}


@lru_cache(maxsize=None)
def _tables():
    primes, roots = _chain()
    return K.NttTables(N, primes, roots)


@dataclass(frozen=True)
class _Level:
    L: int
    primes: np.ndarray
    delta: np.ndarray
    qlow: int
    qinv: tuple          # qinv[i]: inverses for dropping prime L-1-i (from level L-i)


@lru_cache(maxsize=None)
def _level(L: int) -> _Level:
    ps = PRIMES[:L]
    Q = math.prod(ps)
    delta = np.array([(Q >> 64) % q for q in ps], dtype=U64)
    qinv = []
    for top in range(L - 1, FINAL_LIMBS - 1, -1):
        qinv.append(np.array([pow(ps[top], -1, ps[l]) for l in range(top)], dtype=U64))
    return _Level(L, np.array(ps, dtype=U64), delta, Q & ((1 << 64) - 1), tuple(qinv))


def level_for(wbits: int, nK: int, nnz: int, n_rev: int):
    """``(limbs, f)`` for a product: the fewest primes whose modulus clears the noise
    bound (module docstring), and the flooding exponent; ``None`` if none does."""
    return _level_for(wbits, nK, nnz, max(n_rev, 1).bit_length())


@lru_cache(maxsize=65536)
def _level_for(wbits: int, nK: int, nnz: int, rbits: int):
    """:func:`level_for`; ``n_rev`` enters only through ``rbits``, its bit length."""
    B_w = max(nK, 1) * max(nnz, 1) * (2 * ETA + 1) * (1 << (wbits - 1)) // 2 + 1
    # flooded: the weight-dependent noise and the re-randomization noise (it depends on u,
    # the RLWE secret hiding a w in a'), both visible to the key owner after decryption
    B = B_w + (2 * N + 1) * ETA + 1
    f = B.bit_length() + SIGMA + rbits
    bound = (1 << f) + B
    for L in range(MIN_LIMBS, MAX_LIMBS + 1):
        if bound * (1 << (T_BITS + 2)) < math.prod(PRIMES[:L]):
            return L, f
    return None


QF = PRIMES[0] * PRIMES[1]
DROP = 15                                        # low bits of b' not sent
#: A 64-bit plaintext ``w`` (a uniform share) splits into ``w_lo`` (its low 32 bits, signed) and
#: ``w - w_lo`` (a multiple of 2^32): the products with one input ciphertext carry noise ~2^31 and
#: ~2^63 but are wanted modulo 2^64 and 2^32, so both need ~32 bits less modulus than ``w`` whole
#: (the input is sent once, at ~175 instead of ~218 bits; two packed outputs come back).
SPLIT = 32
#: Low bits of ``a'`` and ``b'`` not sent for the high digit (results modulo 2^32): the scaled
#: flooded noise < q'/2^34, the switching rounding, ``2^(DB_HI-1)`` and ``N 2^(DA_HI-1)`` (the
#: rounding of ``a'`` times the ternary ``s``) stay below ``q'/2^33`` (:func:`_final_ok`).
DA_HI, DB_HI = 33, 46


B_HI = ((QF + (1 << (DROP - 1))) >> DROP).bit_length() - 64
B_WIDTHS = (64, B_HI)
Q0INV = pow(PRIMES[0], -1, PRIMES[1])


def _final_ok(tbits: int = T_BITS, da: int = 0, db: int = DROP) -> bool:
    """After switching to ``q'``: the flooded noise (< q'/2^(tbits+2)), the switching rounding (at
    most (N+1)/2 * 1.001), the dropped bits of b' (at most 2^(db-1)) and of a' (times the ternary
    s: at most N 2^(da-1)) stay below q'/2^(tbits+1); for ``tbits < 64`` also less the
    rounding of the decryption at ``2^64`` before the rounding to ``2^(64 - tbits)``."""
    room = (QF >> (tbits + 1)) - (QF >> (tbits + 2)) - 2 - ((QF >> T_BITS) + 1 if tbits < T_BITS else 0)
    return room > (N + 1) * 1001 // 2000 + 1 + (1 << (db - 1)) + ((N << da) >> 1 if da else 0)


def _widths(d: int) -> tuple:
    """Bit widths of the ``(lo, hi)`` words of ``round(x / 2^d)``, ``x < q'``."""
    bits = ((QF + (1 << (d - 1))) >> d).bit_length()
    return (min(bits, 64), max(bits - 64, 0))


assert _final_ok() and _final_ok(T_BITS - SPLIT, DA_HI, DB_HI)
#: ``tbits -> (a' drop, b' drop, a' widths, b' widths)`` of a returned ciphertext
_OUT = {T_BITS: (0, DROP, WIDTHS[:FINAL_LIMBS], B_WIDTHS),
        T_BITS - SPLIT: (DA_HI, DB_HI, _widths(DA_HI), _widths(DB_HI))}


_IN_BITS = tuple(sum(WIDTHS[:L]) for L in range(MAX_LIMBS + 1))


def _in_bytes(n_ct: int, L: int) -> int:
    return (n_ct * N * _IN_BITS[L] + 7) // 8 + 16


def _out_bytes(n_ct: int, npos: int) -> int:
    return n_ct * (K.packed_size(1, N, WIDTHS[:FINAL_LIMBS]) + K.packed_size(1, npos, B_WIDTHS))


# ------------------------------------------------------------------ keys (per session)

class _Keys:
    """The sender's secret key / the evaluator's copy of the peer's public key."""

    def __init__(self):
        self.s_ntt = None
        self.s_ntt_p = None
        self.pk = None          # [2, L, N] NTT: (b_pk, a_pk)
        self.pk_p = None
        self.sk = None          # int64[N] coefficients (sender)
        self.gk = None          # Galois keys: {g: (b [D, PACK_LIMBS, N], a, b_shoup, a_shoup)} NTT (evaluator)


def _state(s) -> dict:
    st = s.__dict__.get("_he_keys")
    if st is None:
        st = {}
        s.__dict__["_he_keys"] = st
    return st


def _setup(s, sender: int, galois: bool = False):
    """Key generation (once per session and direction): the sender samples ``s`` and
    sends ``b_pk`` (``a_pk`` from a seed); with ``galois``, also the Galois keys of output
    packing (:func:`_galois_setup`; otherwise they follow on the first packed product)."""
    if galois:
        return _galois_setup(s, sender)
    st = _state(s)
    key = ("send" if s.role == sender else "eval", sender)
    if key in st:
        return st[key]
    tb = _tables()
    qs = np.array(PRIMES, dtype=U64)
    step = f"he.setup.P{sender}"
    ks = _Keys()
    with s.phase("he.setup"):
        if s.role == sender:
            sk = K.ternary(s.prg.random_uint64(N))
            ks.sk = sk
            s_r = K.to_rns(sk.reshape(1, N), qs)
            tb.forward(s_r)
            ks.s_ntt = s_r[0]
            ks.s_ntt_p = K.shoup(ks.s_ntt, qs)
            seed = secrets.token_bytes(16)
            a_pk = K.uniform_mod(Prg(seed).random_uint64(2 * MAX_LIMBS * N), qs, (1, MAX_LIMBS, N))[0]
            e = K.to_rns(K.cbd(s.prg.random_uint64((1, N)), ETA), qs)
            tb.forward(e)
            b_pk = e[0]
            neg = np.zeros((1, MAX_LIMBS, N), U64)
            K.mul_acc(neg, a_pk.reshape(1, 1, MAX_LIMBS, N), ks.s_ntt.reshape(1, MAX_LIMBS, N),
                      ks.s_ntt_p.reshape(1, MAX_LIMBS, N), qs)
            b_pk = (b_pk + (qs[:, None] - neg[0])) % qs[:, None]
            s.channel.send(step, np.frombuffer(seed, np.uint8))
            s.channel.send(step, K.pack(b_pk.reshape(1, MAX_LIMBS, N), WIDTHS))
        else:
            seed = s.channel.recv_array(step, np.uint8, (16,)).tobytes()
            data = s.channel.recv_array(step, np.uint8, (K.packed_size(1, N, WIDTHS),))
            b_pk, ok = K.unpack(data, (1, MAX_LIMBS, N), WIDTHS, qs)
            if not ok:
                raise ProtocolError(f"{step}: public key residues out of range")
            a_pk = K.uniform_mod(Prg(seed).random_uint64(2 * MAX_LIMBS * N), qs, (1, MAX_LIMBS, N))[0]
            ks.pk = np.ascontiguousarray(np.stack([b_pk[0], a_pk]))
            ks.pk_p = K.shoup(ks.pk, qs)
    st[key] = ks
    return ks


# ------------------------------------------------------------------ output packing (PackLWEs)

#: Packing, re-randomization and flooding after packing run at ``Q4 = q0 .. q3`` (~155.3 bits).
PACK_LIMBS = 4
#: Hybrid key switching: the Galois keys live at ``Q4 P`` with the special modulus ``P = q4 q5 q6``
#: (~62.4 bits), i.e. at the whole chain (218 bits, the standard's limit for N = 8192).
KS_LIMBS = 7
P_KS = math.prod(PRIMES[PACK_LIMBS:KS_LIMBS])
#: Key-switching digits: the centred residues of ``a`` modulo ``q0 q3`` (~69 bits), ``q1``, ``q2``.
KS_GROUPS = ((0, 3), (1,), (2,))
#: At most ``2^LOG_PACK`` returned ciphertexts are merged into one.
LOG_PACK = 6
#: The merge levels need automorphisms ``tau_g`` with ``g = 1 + 2^j mod 2^(j+1)`` for ``j`` in
#: ``GALOIS_J`` (every stride ``S <= 2^LOG_PACK``).  Keys exist for :data:`GALOIS` only; the
#: other levels compose key elements (one key switch per factor, :func:`galois_path`).  Two keys
#: (``257 = 1 + 2^8``, ``3585 = 1 + 7 2^9``, the pair with the fewest key switches, found by
#: exhaustive search over the 64 elements ``= 1 mod 2^8``) reach the six levels with paths of
#: 1, 1, 2, 4, 3, 6 factors: a 64-member tree takes 92 key switches instead of 63 with six keys,
#: and the keys cost 1.35 MB instead of 4.06 MB per direction (one key, ``257``: 192 switches,
#: 0.68 MB).
GALOIS_J = tuple(range(LOG_N + 1 - LOG_PACK, LOG_N + 1))
GALOIS = (257, 3585)
#: worst-case key-switching noise: balanced digits |d_g| <= (Q_g - 1)/2 times key errors |e| <=
#: ETA, summed over N coefficients and the digits, divided by P; plus the rounding of the division
#: by P (two roundings: < 1 on b, < 1 per coefficient of a times the ternary s: N)
B_KS = -(-sum((math.prod(PRIMES[i] for i in g) - 1) // 2 for g in KS_GROUPS) * N * ETA // P_KS) + N + 1


@lru_cache(maxsize=None)
def galois_path(j: int) -> tuple:
    """The fewest key elements (:data:`GALOIS`) whose product ``g`` (mod ``2N``) satisfies ``g = 1 +
    2^j mod 2^(j+1)``: ``tau_g`` fixes ``X^i`` for ``i = 0 mod 2^(LOG_N+1-j)`` and negates it for
    ``i = 2^(LOG_N-j) mod 2^(LOG_N+1-j)``, as a merge level needs (breadth-first over products)."""
    m2 = 2 * N
    want = lambda g: g % (1 << (j + 1)) == (1 + (1 << j)) % (1 << (j + 1))   # noqa: E731
    seen = {1: ()}
    front = [1]
    while front:
        nxt = []
        for g in front:
            for k in GALOIS:
                h = g * k % m2
                if h in seen:
                    continue
                seen[h] = seen[g] + (k,)
                if want(h):
                    return seen[h]
                nxt.append(h)
        front = nxt
    raise ValueError(f"no product of the Galois keys reaches level j={j}")


@lru_cache(maxsize=None)
def _ks_count(S: int, l: int) -> int:
    """Key switchings of one merge tree (``2^l`` members, stride ``S``), weighted by how often
    their noise doubles afterwards: ``sum_k 2^(l-k) |path_k|``."""
    return sum(len(galois_path(LOG_N + k - (S.bit_length() - 1))) << (l - k) for k in range(1, l + 1))


def _have_galois(s, sender: int) -> bool:
    ks = _state(s).get(("send" if s.role == sender else "eval", sender))
    return ks is not None and ks.gk is not None


def _gk_bytes() -> int:
    return K.packed_size(len(GALOIS) * len(KS_GROUPS), N, WIDTHS[:KS_LIMBS]) + 16


@lru_cache(maxsize=None)
def _aut_index(g: int):
    """``tau_g: X -> X^g`` on coefficient vectors as a gather: ``out[j] = sign[j] * x[src[j]]``
    (``g`` odd; ``X^(g i) = X^(g i mod N) * (-1)^floor(g i / N mod 2)``)."""
    i = np.arange(N, dtype=np.int64)
    d = (g * i) % (2 * N)
    src = np.empty(N, np.int64)
    neg = np.empty(N, bool)
    src[d % N] = i
    neg[d % N] = d >= N
    return src, neg


def _neg_where(x: np.ndarray, mask: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """``-x mod q`` where ``mask`` (broadcast over the last axis), ``x`` elsewhere (residues)."""
    q = qs.reshape(-1, 1)
    return np.where(mask & (x != 0), q - x, x)


def _automorph(x: np.ndarray, g: int, qs: np.ndarray) -> np.ndarray:
    """``tau_g`` of RNS coefficient vectors ``x[..., L, N]``."""
    src, neg = _aut_index(g)
    return _neg_where(np.take(x, src, axis=-1), neg, qs)


def _monomial(x: np.ndarray, e: int, qs: np.ndarray) -> np.ndarray:
    """``X^e * x`` in ``Z_q[X]/(X^N + 1)`` for RNS coefficient vectors (``0 <= e < 2N``)."""
    e %= 2 * N
    flip = e >= N
    e %= N
    r = np.roll(x, e, axis=-1)
    mask = np.zeros(N, bool)
    mask[:e] = True
    if flip:
        mask = ~mask
    return _neg_where(r, mask, qs)


def _add_mod(x, y, qs):
    q = qs.reshape(-1, 1)
    r = x + y
    return np.where(r >= q, r - q, r)


def _sub_mod(x, y, qs):
    q = qs.reshape(-1, 1)
    return np.where(x >= y, x - y, x + q - y)


def _galois_setup(s, sender: int) -> _Keys:
    """The Galois keys of :data:`GALOIS` (once per session and direction, on the first packed
    product or from :meth:`HeProducts.setup`): for each element ``g`` and each digit group ``G``
    of :data:`KS_GROUPS` an RLWE encryption under ``s`` at ``Q4 P`` (the whole chain) of ``P E_G
    tau_g(s)``, with ``E_G`` the CRT idempotent of the group's primes in ``Q4`` (``1`` modulo
    them, ``0`` modulo the other primes of ``Q4``): ``b = -a s + e + P E_G tau_g(s)``.  Only the
    ``b`` parts are sent (the ``a`` parts expand a 16-byte seed)."""
    ks = _setup(s, sender)
    if ks.gk is not None:
        return ks
    tb = _tables()
    qs = np.array(PRIMES[:KS_LIMBS], dtype=U64)
    D = len(KS_GROUPS)
    ng = len(GALOIS)
    step = f"he.setup.galois.P{sender}"
    shape = (ng * D, KS_LIMBS, N)
    with s.phase("he.setup"):
        if s.role == sender:
            seed = secrets.token_bytes(16)
            a = K.uniform_mod(Prg(seed).random_uint64(2 * ng * D * KS_LIMBS * N), qs, shape)
            sn = np.ascontiguousarray(ks.s_ntt[:KS_LIMBS])
            snp = np.ascontiguousarray(ks.s_ntt_p[:KS_LIMBS])
            neg = np.zeros(shape, U64)
            K.mul_acc(neg, a.reshape(ng * D, 1, KS_LIMBS, N), sn.reshape(1, KS_LIMBS, N),
                      snp.reshape(1, KS_LIMBS, N), qs)
            e = K.to_rns(K.cbd(s.prg.random_uint64((ng * D, N)), ETA), qs)
            tb.forward(e)
            b = _sub_mod(e, neg, qs).reshape(ng, D, KS_LIMBS, N)
            pm = np.array([P_KS % int(q) for q in qs], dtype=U64)
            for gi, g in enumerate(GALOIS):
                src, sg = _aut_index(g)
                ts = np.where(sg, -ks.sk[src], ks.sk[src]).reshape(1, N)
                tr = K.to_rns(np.ascontiguousarray(ts), qs)
                tb.forward(tr)
                ptr = np.zeros((1, KS_LIMBS, N), U64)       # P tau_g(s)
                K.mul_acc(ptr, tr.reshape(1, 1, KS_LIMBS, N),
                          np.ascontiguousarray(np.broadcast_to(pm[:, None], (KS_LIMBS, N))).reshape(1, KS_LIMBS, N),
                          None, qs)
                for di, grp in enumerate(KS_GROUPS):
                    for i in grp:       # at the group's primes, 0 elsewhere
                        b[gi, di, i] = _add_mod(b[gi, di, i:i + 1], ptr[0, i:i + 1], qs[i:i + 1])
            s.channel.send(step, np.frombuffer(seed, np.uint8))
            s.channel.send(step, K.pack(np.ascontiguousarray(b.reshape(shape)), WIDTHS[:KS_LIMBS]))
            ks.gk = True
        else:
            seed = s.channel.recv_array(step, np.uint8, (16,)).tobytes()
            data = s.channel.recv_array(step, np.uint8, (K.packed_size(ng * D, N, WIDTHS[:KS_LIMBS]),))
            b, ok = K.unpack(data, shape, WIDTHS[:KS_LIMBS], qs)
            if not ok:
                raise ProtocolError(f"{step}: Galois key residues out of range")
            a = K.uniform_mod(Prg(seed).random_uint64(2 * ng * D * KS_LIMBS * N), qs, shape)
            b = b.reshape(ng, D, KS_LIMBS, N)
            a = a.reshape(ng, D, KS_LIMBS, N)
            # (b, a, Shoup quotients of b and a; with IFMA, their 52-bit quotients for the fused
            # kernel), once per session
            fused = K.key_switch_available(tb)
            ks.gk = {}
            for i, g in enumerate(GALOIS):
                bi, ai = np.ascontiguousarray(b[i]), np.ascontiguousarray(a[i])
                ks.gk[g] = ((bi, ai, None, None, K.shoup52(bi, qs), K.shoup52(ai, qs)) if fused else
                            (bi, ai, K.shoup(bi, qs), K.shoup(ai, qs), None, None))
    return ks


@lru_cache(maxsize=None)
def _ks_qinv() -> np.ndarray:
    """``uint64[KS_LIMBS - PACK_LIMBS, KS_LIMBS]``: row ``r`` the inverses of ``q_(KS_LIMBS-1-r)``
    modulo the primes below it (the drops of the division by ``P``, for :func:`K.key_switch`)."""
    top = _level(KS_LIMBS)
    out = np.zeros((KS_LIMBS - PACK_LIMBS, KS_LIMBS), U64)
    for r in range(KS_LIMBS - PACK_LIMBS):
        out[r, :top.qinv[r].shape[0]] = top.qinv[r]
    return out


def _switch(t: np.ndarray, key, tb) -> np.ndarray:
    """``(b + kb, ka)`` for coefficient-form ciphertexts ``t[cnt, 2, PACK_LIMBS, N]`` decrypting
    under ``tau_g(s)`` (:func:`_key_switch` of ``a``, added to ``b``): one fused kernel with IFMA."""
    if key[4] is not None:
        return K.key_switch(t, key[0], key[1], key[4], key[5], tb, KS_GROUPS, _ks_qinv())
    kb, ka = _key_switch_steps(np.ascontiguousarray(t[:, 1]), key, tb)
    K.add_rows(kb, np.ascontiguousarray(t[:, 0]), _level(PACK_LIMBS).primes)
    return np.stack([kb, ka], axis=1)


def _key_switch(a: np.ndarray, key, tb):
    """``(kb, ka)`` at ``Q4`` with ``kb + ka s = a tau_g(s) + n_ks``, ``|n_ks| <= B_KS``, for
    ``a[cnt, PACK_LIMBS, N]`` (coefficients) decrypting under ``tau_g(s)``: hybrid key switching
    (digits ``d_G`` = centred residues of ``a`` modulo the groups of :data:`KS_GROUPS`, lifted to
    ``Q4 P``; ``sum_G d_G key_G`` decrypts to ``P a tau_g(s) + sum_G d_G e_G``; divided by ``P``
    with rounding: the drops of ``q6``, ``q5``, ``q4``).  With IFMA one fused kernel
    (:func:`K.key_switch`), else the steps below, bit for bit the same."""
    if key[4] is not None:
        t = np.zeros((a.shape[0], 2) + a.shape[1:], U64)
        t[:, 1] = a
        r = _switch(t, key, tb)
        return np.ascontiguousarray(r[:, 0]), np.ascontiguousarray(r[:, 1])
    return _key_switch_steps(a, key, tb)


def _key_switch_steps(a: np.ndarray, key, tb):
    """:func:`_key_switch` step by step (digits, NTTs, products with the key's Shoup quotients,
    inverse NTTs, the rescales)."""
    cnt = a.shape[0]
    top = _level(KS_LIMBS)
    if key[2] is None:
        key = (key[0], key[1], K.shoup(key[0], top.primes), K.shoup(key[1], top.primes))
    dig = K.group_digits(a, top.primes[:PACK_LIMBS], KS_GROUPS, top.primes)
    tb.forward(dig)
    kk = np.zeros((2, cnt, KS_LIMBS, N), U64)
    K.mul_acc(kk[0], dig, key[0], key[2], top.primes)
    K.mul_acc(kk[1], dig, key[1], key[3], top.primes)
    kk = kk.reshape(2 * cnt, KS_LIMBS, N)
    tb.inverse(kk)
    for i in range(KS_LIMBS - PACK_LIMBS):
        kk = K.rescale(kk, top.primes[:KS_LIMBS - i], top.qinv[i])
    kk = kk.reshape(2, cnt, PACK_LIMBS, N)
    return kk[0], kk[1]


def _pack_tree(ct: np.ndarray, S: int, l: int, gk, qs: np.ndarray, tb) -> np.ndarray:
    """PackLWEs (Chen, Dai, Kim, Song, eprint 2020/015, algorithm 2) on RLWE ciphertexts whose
    wanted coefficients sit at multiples of ``S``: ``ct[2^l, 2, PACK_LIMBS, N]`` (coefficient form,
    ``(b, a)``) -> one ciphertext ``[2, PACK_LIMBS, N]`` whose coefficient ``S a + m S / 2^l`` is
    ``2^l`` times coefficient ``S a`` of member ``m``.  Level ``k = 1 .. l`` merges members
    ``m`` and ``m + 2^(l-k)`` as ``(E + X^D O) + tau_g(E - X^D O)`` with ``D = S / 2^k`` and ``g =
    1 + 2^k N / S mod 2^(k+1) N / S`` (:func:`galois_path`: a product of key elements, one key
    switch each): ``tau_g`` fixes ``X^j`` for ``j = 0 mod 2D`` and negates it for ``j = D mod
    2D``, so the multiples of ``D`` stay clean (the other coefficients mix).

    With IFMA (keys carrying 52-bit quotients) the tree runs in place in ``ct`` (which it
    overwrites): the merge, the automorphisms and the key switches are fused kernels over a
    per-thread scratch, no large temporaries."""
    if l and gk[GALOIS[0]][4] is not None and ct.flags.c_contiguous:
        n = ct.shape[0]
        scratch = _workspace("ks", (2 * KS_LIMBS + 2 + 2 * PACK_LIMBS) * N)
        for k in range(1, l + 1):
            half = n >> k
            E, O = ct[:half], ct[half:2 * half]
            path = galois_path(LOG_N + k - (S.bit_length() - 1))
            K.pack_pre_inplace(E, O, qs, S >> k, path[0], scratch)
            for i, g in enumerate(path):
                key = gk[g]
                K.key_switch(O, key[0], key[1], key[4], key[5], tb, KS_GROUPS, _ks_qinv(), g if i else 1,
                             out=O, scratch=scratch)
            K.add_rows(E, O, qs)
        return ct[0]
    for k in range(1, l + 1):
        half = ct.shape[0] // 2
        path = galois_path(LOG_N + k - (S.bit_length() - 1))
        sm, t = K.pack_pre(ct[:half], ct[half:], qs, S >> k, path[0])
        for i, g in enumerate(path):
            if i:
                t = _automorph(t, g, qs)
            t = _switch(t, gk[g], tb)
        K.add_rows(sm, t, qs)
        ct = sm
    return ct[0]


def _pack_stride(pos: np.ndarray) -> tuple:
    """``(S, c)``: the largest power of two ``S <= 2^LOG_PACK`` with every position ``= c mod S``."""
    if pos.shape[0] == 0:
        return 1, 0
    d = np.bitwise_or.reduce((pos - pos[0]).astype(np.int64)) if pos.shape[0] > 1 else 0
    v = LOG_PACK if d == 0 else min(LOG_PACK, (int(d) & -int(d)).bit_length() - 1)
    S = 1 << v
    return S, int(pos[0]) % S


def level_for_pack(wbits: int, nK: int, nnz: int, n_rev: int, l: int, S: int = 1 << LOG_PACK):
    """``(limbs, f)`` for a packed product (:func:`_pack_tree` with ``l`` levels, stride ``S``): the
    product at 4 .. 7 primes (then switched to ``Q4``), packing, re-randomization and flooding
    at ``Q4 = q0 .. q3``; ``None`` if the noise does not fit (module docstring)."""
    rbits = max(n_rev - 1, 1).bit_length()
    for L in range(PACK_LIMBS, MAX_LIMBS + 1):
        f = _pack_flood(wbits, nK, nnz, rbits, l, S, L, T_BITS)
        if f is not None:
            return L, f
    return None


@lru_cache(maxsize=65536)
def _pack_flood(wbits: int, nK: int, nnz: int, rbits: int, l: int, S: int, L: int, tbits: int):
    """The flooding exponent of a packed product computed at ``L`` primes whose results are
    wanted modulo ``2^tbits`` (multiples of ``2^(64 - tbits)`` in Z_2^64: the high digit of
    :func:`split_w` has ``tbits = 32``), or ``None`` if its noise does not fit; ``rbits`` is the
    bit length of ``n_rev - 1``."""
    # t' = 2^(64+l): the encoding round(Q_L 2^-l x / 2^64) errs by < 1.5
    B_w = max(nK, 1) * max(nnz, 1) * (2 * ETA + 3) * (1 << (wbits - 1)) // 2 + 1
    B_in = B_w
    for q in PRIMES[PACK_LIMBS:L][::-1]:    # one prime dropped: n / q + 1/2 (b) + N/2 (a s) + 1/2
        B_in = B_in // q + 1 + (N + 1) // 2 + 1
    # packing: n_k <= 2 n_(k-1) + |path_k| B_KS; then re-randomization and the mask's rounding
    B = (B_in << l) + _ks_count(S, l) * B_KS + (2 * N + 1) * ETA + 1
    f = B.bit_length() + SIGMA + rbits
    return f if ((1 << f) + B) << (tbits + 2) < math.prod(PRIMES[:PACK_LIMBS]) else None


def split_w(w: np.ndarray) -> tuple:
    """``(w_lo, w_hi)`` int64 with ``w = w_lo + w_hi`` in Z_2^64, ``|w_lo| <= 2^31`` and ``w_hi`` a
    multiple of ``2^32`` (``|w_hi| <= 2^63`` as int64)."""
    w = np.ascontiguousarray(w, dtype=np.int64)
    lo = (w.view(np.uint64) << np.uint64(SPLIT)).view(np.int64) >> np.int64(SPLIT)
    return lo, w - lo


@lru_cache(maxsize=None)
def _delta_t(L: int, l: int):
    """``(delta, qlow)`` for :func:`K.add_delta` encoding at ``t' = 2^(64+l)``: the kernel adds
    ``round(C m / 2^64)`` with ``C = floor(Q_L / 2^l)``, which is ``Q_L m / t'`` up to < 1.5."""
    Q = math.prod(PRIMES[:L])
    C = Q >> l
    return np.array([(C >> 64) % q for q in PRIMES[:L]], dtype=U64), C & ((1 << 64) - 1)


def _packed_out_bytes(T: int, npos: int, n: int, tbits: int = T_BITS) -> int:
    """Bytes of ``T`` results ciphertexts with ``npos`` results each, merged ``n`` at a time
    (:func:`K.packed_size` in integers: the planners call this thousands of times); results
    wanted modulo ``2^tbits`` (:data:`_OUT`)."""
    _, _, wa, wb = _OUT[tbits]
    G, last = divmod(T, n)
    a1 = (N * sum(wa) + 7) // 8
    out = G * (a1 + (n * npos * sum(wb) + 7) // 8)
    if last:
        out += a1 + (last * npos * sum(wb) + 7) // 8
    return out


def pack_options(n_in: int, T: int, pos, wbits: int, nsum: int, nnz: int):
    """The cheapest packing of a product with ``n_in`` input and ``T`` result ciphertexts with
    results at ``pos``: ``{"l", "S", "c", "L", "f", "split", "f_hi", "in_bytes", "out_bytes",
    "bytes"}`` or ``None`` (no power-of-two stride, a single result ciphertext, or the noise does
    not fit).  ``split``: the plaintexts are split into two digits (:func:`split_w`), ``f`` and
    ``f_hi`` flood the low and the high digit's results."""
    pos = np.asarray(pos, dtype=np.int64)
    S, c = _pack_stride(pos)
    return _pack_options(n_in, T, pos.shape[0], S, c, wbits, nsum, nnz)


#: Plaintexts wider than this are offered the two-digit split (:func:`split_w`).
SPLIT_MIN_BITS = 40


@lru_cache(maxsize=65536)
def _pack_options(n_in, T, npos, S, c, wbits, nsum, nnz):
    best = None
    rbits = max(T * npos - 1, 1).bit_length()
    for l in range(1, LOG_PACK + 1):
        if (1 << l) > S or (1 << (l - 1)) >= T:
            break
        cands = []
        lv = level_for_pack(wbits, nsum, nnz, T * npos, l, S)
        if lv is not None:
            cands.append((lv[0], lv[1], None, _packed_out_bytes(T, npos, 1 << l)))
        if wbits > SPLIT_MIN_BITS:
            for L in range(PACK_LIMBS, MAX_LIMBS + 1):
                f = _pack_flood(SPLIT, nsum, nnz, rbits, l, S, L, T_BITS)
                fh = _pack_flood(T_BITS, nsum, nnz, rbits, l, S, L, T_BITS - SPLIT)
                if f is not None and fh is not None:
                    cands.append((L, f, fh, _packed_out_bytes(T, npos, 1 << l)
                                  + _packed_out_bytes(T, npos, 1 << l, T_BITS - SPLIT)))
                    break
        for L, f, fh, ob in cands:
            ib = _in_bytes(n_in, L)
            cand = {"l": l, "S": S, "c": c, "L": L, "f": f, "split": fh is not None, "f_hi": fh,
                    "in_bytes": ib, "out_bytes": ob, "bytes": ib + ob}
            if best is None or (ib + ob, l) < (best["bytes"], best["l"]):
                best = cand
    return best


# ------------------------------------------------------------------ the core product

def _neg_mod(x: np.ndarray, qs: np.ndarray) -> np.ndarray:
    q = qs.reshape((-1,) + (1,) * 1)
    return np.where(x == 0, x, q - x)


def _add_signed(x: np.ndarray, v: np.ndarray, qs: np.ndarray) -> None:
    """``x[cnt, L, n] += v[cnt, n]`` (int64) mod q_l in place."""
    r = K.to_rns(np.ascontiguousarray(v, dtype=np.int64), qs)
    x += r
    x %= qs[:, None]


def _drive(g):
    """Run a protocol generator (see :func:`product_gen`) to its end; its return value."""
    try:
        while True:
            next(g)
    except StopIteration as e:
        return e.value


def run_concurrent(items) -> list:
    """Run several protocol generators ``[(this party is the sender, generator), ...]`` with
    overlapping messages: every sender first sends its ciphertexts, then every evaluator
    answers, then the senders decrypt.  Both parties pass the products in the same order, so
    the two directions of a shared x shared product take two message flights, not four, and
    the two evaluators work at the same time."""
    res = [None] * len(items)
    started = []
    for i, (snd, g) in enumerate(items):
        if snd:
            try:
                next(g)
                started.append(i)
            except StopIteration as e:
                res[i] = e.value
    for i, (snd, g) in enumerate(items):
        if not snd:
            res[i] = _drive(g)
    for i in started:
        res[i] = _drive(items[i][1])
    return res


def product(s, **kw) -> np.ndarray:
    """The HE product (:func:`product_gen`) run to its end."""
    return _drive(product_gen(s, **kw))


def encrypt_zero(s, ks, n: int, L: int, qs) -> tuple:
    """``n`` fresh symmetric encryptions of zero at level ``L`` under the sender's key (the
    callers add their message encodings to ``b``): ``(seed of the a parts, b uint64[n, L, N])``,
    coefficient domain, ``b = -a s + e``."""
    seed = secrets.token_bytes(16)
    a = K.uniform_mod(Prg(seed).random_uint64(2 * n * L * N), qs, (n, L, N))
    b = np.zeros((n, L, N), U64)
    if n:
        K.mul_acc(b, a.reshape(n, 1, L, N), ks.s_ntt[:L].reshape(1, L, N), ks.s_ntt_p[:L].reshape(1, L, N), qs)
    del a
    _tables().inverse(b)
    b = _neg_mod(b, qs)
    _add_signed(b, K.cbd(s.prg.random_uint64((n, N)), ETA), qs)
    return seed, b


def _seal_response(acc_a, bsel, rnd, qs, lev: _Level, f: int, tbits: int = T_BITS) -> np.ndarray:
    """The evaluator's last steps on one response at level ``lev`` (both product paths): the
    errors of the encryption of zero (``e2`` on ``a``, ``e1`` on the returned ``b``
    coefficients ``bsel``), flooding and the mask's encoding on ``bsel``, the switch to ``q'``,
    ``a'`` and ``b'`` without their low bits (:data:`_OUT` for results modulo ``2^tbits``), and the
    packed frame."""
    da, db, wa, wb = _OUT[tbits]
    _add_signed(acc_a, K.cbd(rnd["e2"], ETA), qs)
    _add_signed(bsel, K.cbd(rnd["e1"], ETA), qs)
    K.add_flood(bsel, rnd["flood"], qs, f)
    K.add_delta(bsel, rnd["r"], qs, lev.delta, lev.qlow)
    both = np.concatenate([acc_a, bsel], axis=2)
    for i, top in enumerate(range(lev.L - 1, FINAL_LIMBS - 1, -1)):
        both = K.rescale(np.ascontiguousarray(both), qs[:top + 1], lev.qinv[i])
    both = np.ascontiguousarray(both)
    bc = K.crt2_drop(np.ascontiguousarray(both[:, :, N:]), PRIMES[0], PRIMES[1], Q0INV, db)
    ac = both[:, :, :N]
    if da:
        ac = K.crt2_drop(np.ascontiguousarray(ac), PRIMES[0], PRIMES[1], Q0INV, da)
    return np.concatenate([K.pack(np.ascontiguousarray(ac), wa), K.pack(bc, wb)])


def _check_dropped(w: np.ndarray, d: int, step: str) -> None:
    """``(lo, hi)`` words ``w[..., 2, n]`` of values ``round(x / 2^d)``, ``x < q'``: refuse any above
    the largest such value (a frame no honest evaluator sends)."""
    top = (QF - 1 + (1 << (d - 1))) >> d
    lo, hi = np.uint64(top & ((1 << 64) - 1)), np.uint64(top >> 64)
    if w.size and bool(np.any((w[:, 1] > hi) | ((w[:, 1] == hi) & (w[:, 0] > lo)))):
        raise ProtocolError(f"{step}: values out of range")


def _open_response(data, cnt: int, pos: np.ndarray, ks, tb, tbits: int = T_BITS, step: str = "he") -> np.ndarray:
    """The sender's decryption of ``cnt`` returned ciphertexts (frame of :func:`_seal_response`,
    already of the expected size) at the coefficients ``pos``: ``uint64[cnt, len(pos)]``, the
    results modulo ``2^tbits`` as multiples of ``2^(64 - tbits)``."""
    da, db, wa, wb = _OUT[tbits]
    q2 = np.array(PRIMES[:FINAL_LIMBS], dtype=U64)
    a_bytes = K.packed_size(cnt, N, wa)
    if da:
        ac, _ = K.unpack(data[:a_bytes], (cnt, 2, N), wa, np.zeros(2, U64))
        _check_dropped(ac, da, f"{step}.resp")
        ap = K.crt2_expand(ac, PRIMES[0], PRIMES[1], da)
    else:
        ap, ok = K.unpack(data[:a_bytes], (cnt, FINAL_LIMBS, N), wa, q2)
        if not ok:
            raise ProtocolError(f"{step}.resp: residues out of range")
    bc, _ = K.unpack(data[a_bytes:], (cnt, 2, pos.shape[0]), wb, np.zeros(2, U64))
    _check_dropped(bc, db, f"{step}.resp")
    bp = K.crt2_expand(bc, PRIMES[0], PRIMES[1], db)
    tb.forward(ap)
    acc = np.zeros((cnt, FINAL_LIMBS, N), U64)
    K.mul_acc(acc, ap.reshape(cnt, 1, FINAL_LIMBS, N), ks.s_ntt[:FINAL_LIMBS].reshape(1, FINAL_LIMBS, N),
              ks.s_ntt_p[:FINAL_LIMBS].reshape(1, FINAL_LIMBS, N), q2)
    tb.inverse(acc)
    x = (acc[:, :, pos] + bp) % q2[:, None]
    v = K.decrypt2(np.ascontiguousarray(x), PRIMES[0], PRIMES[1], Q0INV)
    if tbits < T_BITS:      # the nearest multiple of 2^(64 - tbits): the noise is below half of it
        sh = np.uint64(T_BITS - tbits)
        v = ((v + (np.uint64(1) << (sh - np.uint64(1)))) >> sh) << sh
    return v


def _resp_size(cnt: int, npos: int, tbits: int = T_BITS) -> int:
    """Bytes of a frame of :func:`_seal_response` (``cnt`` ciphertexts, ``npos`` results each)."""
    _, _, wa, wb = _OUT[tbits]
    return K.packed_size(cnt, N, wa) + K.packed_size(cnt, npos, wb)


def _send_inputs(s, ks, X, nI: int, nK: int, L: int, qs, delta, qlow, step: str) -> None:
    """The sender's first message of a product: ``X`` (``uint64[nI, nK, N]``) encrypted at ``L``
    primes with the encoding constants ``delta``/``qlow`` (the seed of the ``a`` parts, then ``b``)."""
    X = np.ascontiguousarray(X, dtype=U64)
    if X.shape != (nI, nK, N):
        raise ValueError(f"{step}: X has shape {X.shape}, expected {(nI, nK, N)}")
    seed, b = encrypt_zero(s, ks, nI * nK, L, qs)
    K.add_delta(b, X.reshape(nI * nK, N), qs, delta, qlow)
    s.channel.send(step + ".ct", np.frombuffer(seed, np.uint8))
    s.channel.send(step + ".ct", K.pack(b, WIDTHS[:L]))


def _recv_inputs(s, nI: int, nK: int, L: int, qs, tb, step: str) -> tuple:
    """The evaluator's side of :func:`_send_inputs`: ``(cb, ca)`` ``uint64[nI, nK, L, N]`` in NTT
    form (``b`` checked residue by residue, ``a`` expanded from the seed)."""
    n_in = nI * nK
    shape = (n_in, L, N)
    seed = s.channel.recv_array(step + ".ct", np.uint8, (16,)).tobytes()
    data = s.channel.recv_array(step + ".ct", np.uint8, (K.packed_size(n_in, N, WIDTHS[:L]),))
    b, ok = K.unpack(data, shape, WIDTHS[:L], qs)
    if not ok:
        raise ProtocolError(f"{step}.ct: ciphertext residues out of range")
    tb.forward(b)
    a = K.uniform_mod(Prg(seed).random_uint64(2 * n_in * L * N), qs, shape)
    return b.reshape(nI, nK, L, N), a.reshape(nI, nK, L, N)


def _checked_plaintexts(pt_fn, j: int, nsum: int, wbits: int, step: str) -> tuple:
    """``pt_fn(j)`` as ``(w int64[nP, N], kidx int64[nP])``, its shapes and (below 64 bits) its
    entries checked: the noise bound and the flooding assume ``|w| <= 2^(wbits-1)``."""
    w, kidx = pt_fn(j)
    w = np.ascontiguousarray(w, dtype=np.int64)
    kidx = np.ascontiguousarray(kidx, dtype=np.int64)
    if w.ndim != 2 or w.shape[1] != N or kidx.shape != (w.shape[0],) or w.shape[0] > nsum:
        raise ValueError(f"{step}: plaintexts of shape {w.shape} for blocks {kidx.shape}")
    if wbits < 64 and w.size:
        lim = 1 << (wbits - 1)
        if int(w.max()) > lim or int(w.min()) < -lim:
            raise ValueError(f"{step}: plaintext entries exceed {wbits} signed bits")
    return w, kidx


def product_gen(s, *, sender: int, nI: int, nK: int, nJ: int, pos: np.ndarray, wbits: int, nnz: int,
                nsum: int | None = None, X=None, pt_fn=None, step: str = "he.product", pack=None):
    """A generator (yields once at the sender, after its ciphertexts are sent) returning the
    shares ``uint64[nI, nJ, len(pos)]`` of the coefficients ``pos`` of
    ``sum_k X[i, k] * W[k, j]`` (negacyclic products in ``Z_2^64[X]/(X^N+1)``).

    The sender passes ``X`` (``uint64[nI, nK, N]``); the evaluator ``pt_fn(j) -> (w, kidx)``
    with ``w int64[nP, N]`` (``|w| <= 2^(wbits-1)``, at most ``nnz`` non-zeros per polynomial)
    and ``kidx int64[nP]`` (the ``k`` they multiply; ``nP <= nsum``, default ``nK``)."""
    pos = np.ascontiguousarray(pos, dtype=np.int64)
    npos = pos.shape[0]
    if nI * nJ * npos == 0:
        return np.zeros((nI, nJ, npos), U64)
    nsum = nK if nsum is None else int(nsum)
    if pack is not None:
        return (yield from _packed_gen(s, sender=sender, nI=nI, nK=nK, nJ=nJ, pos=pos, wbits=wbits, nnz=nnz,
                                       nsum=nsum, X=X, pt_fn=pt_fn, step=step, pack=pack))
    lv = level_for(wbits, nsum, nnz, nI * nJ * npos)
    if lv is None:
        raise ValueError(f"{step}: the noise bound does not fit the largest modulus "
                         f"(wbits={wbits}, {nsum} blocks); use the OT backend")
    L, f = lv
    lev = _level(L)
    qs = lev.primes
    tb = _tables()
    ks = _setup(s, sender)
    if s.role == sender:
        _send_inputs(s, ks, X, nI, nK, L, qs, lev.delta, lev.qlow, step)
        yield "sent"
        out = np.empty((nI, nJ, npos), U64)
        for j in range(nJ):
            data = s.channel.recv_array(step + ".resp", np.uint8, (_resp_size(nI, npos),))
            out[:, j, :] = _open_response(data, nI, pos, ks, tb, step=step)
        return out
    # ---- evaluator
    if pt_fn is None:
        raise ValueError(f"{step}: the evaluator must pass pt_fn")
    cb, ca = _recv_inputs(s, nI, nK, L, qs, tb, step)
    pk = np.ascontiguousarray(ks.pk[:, :L])
    pkp = np.ascontiguousarray(ks.pk_p[:, :L])
    share = np.empty((nI, nJ, npos), U64)

    def respond(j, rnd):
        w, kidx = _checked_plaintexts(pt_fn, j, nsum, wbits, step)
        wr = K.encode_ntt(w, tb, L)
        acc_b = np.zeros((nI, L, N), U64)
        acc_a = np.zeros((nI, L, N), U64)
        K.mul_acc(acc_b, cb, wr, None, qs, kidx)      # used once per i: no Shoup precomputation
        K.mul_acc(acc_a, ca, wr, None, qs, kidx)
        # re-randomize with an encryption of zero under pk
        u = K.to_rns(K.ternary(rnd["u"]), qs)
        tb.forward(u)
        K.mul_acc(acc_b, u.reshape(nI, 1, L, N), pk[0:1], pkp[0:1], qs)
        K.mul_acc(acc_a, u.reshape(nI, 1, L, N), pk[1:2], pkp[1:2], qs)
        tb.inverse(acc_b)
        tb.inverse(acc_a)
        return _seal_response(acc_a, np.ascontiguousarray(acc_b[:, :, pos]), rnd, qs, lev, f)

    # the responses are independent: computed on both cores (the kernels release the GIL),
    # drawn from the session PRG in order, sent in order
    pending = []
    pool = _pool()
    for j in range(nJ + 1):
        if j < nJ:
            rnd = {"u": s.prg.random_uint64((nI, N)), "e2": s.prg.random_uint64((nI, N)),
                   "e1": s.prg.random_uint64((nI, npos)), "flood": s.prg.random_uint64((nI, npos, 3)),
                   "r": s.prg.random_uint64((nI, npos))}
            share[:, j, :] = np.uint64(0) - rnd["r"]
            pending.append(pool.submit(respond, j, rnd) if pool else respond(j, rnd))
        while pending and (j == nJ or len(pending) > 2 or pool is None):
            fut = pending.pop(0)
            s.channel.send(step + ".resp", fut.result() if pool else fut)
    return share


def _groups(T: int, n: int) -> list:
    """Result ciphertexts ``t = j nI + i`` merged ``n`` at a time: ``[(t0, t1), ...]``."""
    return [(t, min(t + n, T)) for t in range(0, T, n)]


def _packed_positions(pos: np.ndarray, S: int, c: int, n: int, cnt: int) -> np.ndarray:
    """Positions of the results of members ``0 .. cnt-1`` in the packed ciphertext (member-major)."""
    return (((pos - c)[None, :] + (np.arange(cnt) * (S // n))[:, None])).reshape(-1)


def _packed_gen(s, *, sender, nI, nK, nJ, pos, wbits, nnz, nsum, X, pt_fn, step, pack):
    """:func:`product_gen` with the results merged by :func:`_pack_tree` before they are
    returned (``pack`` from :func:`pack_options`).  With ``pack["split"]`` every plaintext is split
    into two digits (:func:`split_w`) that multiply the same input ciphertexts: each group of
    results comes back twice, modulo 2^64 for the low digit and modulo 2^32 (as multiples of
    2^32) for the high one, and the shares add up."""
    npos = pos.shape[0]
    L, f, l, S, c = (pack[x] for x in ("L", "f", "l", "S", "c"))
    if np.any((pos - c) % S) or not 1 <= (1 << l) <= S <= 1 << LOG_PACK:
        raise ValueError(f"{step}: results not in one class modulo {S}; cannot pack")
    # (results modulo 2^tbits, flooding exponent) per digit
    digits = [(T_BITS, f)] + ([(T_BITS - SPLIT, pack["f_hi"])] if pack.get("split") else [])
    n = 1 << l
    T = nI * nJ
    groups = _groups(T, n)
    lev = _level(L)
    qs = lev.primes
    tb = _tables()
    ks = _galois_setup(s, sender)
    if s.role == sender:
        _send_inputs(s, ks, X, nI, nK, L, qs, *_delta_t(L, l), step)
        yield "sent"
        out = np.zeros((T, npos), U64)
        for t0, t1 in groups:
            cnt = t1 - t0
            pp = _packed_positions(pos, S, c, n, cnt)
            for tbits, _ in digits:
                data = s.channel.recv_array(step + ".resp", np.uint8, (_resp_size(1, pp.shape[0], tbits),))
                out[t0:t1] += _open_response(data, 1, pp, ks, tb, tbits, step).reshape(cnt, npos)
        return np.ascontiguousarray(out.reshape(nJ, nI, npos).transpose(1, 0, 2))
    # ---- evaluator
    if pt_fn is None:
        raise ValueError(f"{step}: the evaluator must pass pt_fn")
    cb, ca = _recv_inputs(s, nI, nK, L, qs, tb, step)
    levp = _level(PACK_LIMBS)       # the packing level Q4
    qp = levp.primes
    pk = np.ascontiguousarray(ks.pk[:, :PACK_LIMBS])
    pkp = np.ascontiguousarray(ks.pk_p[:, :PACK_LIMBS])
    share = np.zeros((T, npos), U64)

    def plaintexts(j, d):
        w, kidx = _checked_plaintexts(pt_fn, j, nsum, wbits, step)
        if len(digits) > 1:
            w = split_w(w)[d]
        if fused:       # encoded inside K.members
            return w, kidx
        return K.encode_ntt(w, tb, L), kidx

    fused = K.key_switch_available(tb)
    e_c = (2 * N - c) % (2 * N)
    qinv_L = np.zeros((L - PACK_LIMBS, L), U64)
    for i in range(L - PACK_LIMBS):
        qinv_L[i, :lev.qinv[i].shape[0]] = lev.qinv[i]

    def members(full, t0, t1, d):
        """``full[m]`` = member ``t0 + m`` (digit ``d``) at ``Q4`` times ``X^-c`` (coefficient form)."""
        t = t0
        while t < t1:
            j, i0 = divmod(t, nI)
            i1 = min(nI, i0 + t1 - t)
            wr, kidx = plaintexts(j, d)
            m = t - t0
            if fused:       # products, inverse NTT, switch to Q4 and X^-c in one kernel
                K.members(full[m:m + i1 - i0], cb[i0:i1], ca[i0:i1], wr, kidx, tb, qinv_L, e_c)
            else:
                live = np.zeros((i1 - i0, 2, L, N), U64)
                accb = np.zeros((i1 - i0, L, N), U64)
                acca = np.zeros((i1 - i0, L, N), U64)
                K.mul_acc(accb, cb[i0:i1], wr, None, qs, kidx)
                K.mul_acc(acca, ca[i0:i1], wr, None, qs, kidx)
                live[:, 0] = accb
                live[:, 1] = acca
                live = live.reshape(-1, L, N)
                tb.inverse(live)
                for i in range(L - PACK_LIMBS):        # switch down to Q4
                    live = K.rescale(np.ascontiguousarray(live), qs[:L - i], lev.qinv[i])
                full[m:m + i1 - i0] = K.monomial(np.ascontiguousarray(live.reshape(-1, 2, PACK_LIMBS, N)), qp, e_c)
            t += i1 - i0

    def respond(t0, t1, d, rnd):
        cnt = t1 - t0
        # the tree's input, reused by this thread's next response (first touches of fresh pages
        # cost more than the kernels here)
        full = _workspace("full", n * 2 * PACK_LIMBS * N).reshape(n, 2, PACK_LIMBS, N)
        full[cnt:] = 0
        members(full, t0, t1, d)
        pc = _pack_tree(full, S, l, ks.gk, qp, tb)
        # re-randomize with an encryption of zero under pk, flood and mask the results
        u = K.to_rns(K.ternary(rnd["u"]), qp)
        tb.forward(u)
        rr = np.zeros((2, PACK_LIMBS, N), U64)
        K.mul_acc(rr[0:1], u.reshape(1, 1, PACK_LIMBS, N), pk[0:1], pkp[0:1], qp)
        K.mul_acc(rr[1:2], u.reshape(1, 1, PACK_LIMBS, N), pk[1:2], pkp[1:2], qp)
        tb.inverse(rr)
        K.add_rows(pc, rr, qp)
        pp = _packed_positions(pos, S, c, n, cnt)
        tbits, fd = digits[d]
        return _seal_response(np.ascontiguousarray(pc[1:2]), np.ascontiguousarray(pc[0:1][:, :, pp]), rnd, qp,
                              levp, fd, tbits)

    pending = []
    pool = _pool()
    jobs = [(t0, t1, d) for t0, t1 in groups for d in range(len(digits))]
    for gi in range(len(jobs) + 1):
        if gi < len(jobs):
            t0, t1, d = jobs[gi]
            m = (t1 - t0) * npos
            rnd = {"u": s.prg.random_uint64((1, N)), "e2": s.prg.random_uint64((1, N)),
                   "e1": s.prg.random_uint64((1, m)), "flood": s.prg.random_uint64((1, m, 3)),
                   "r": s.prg.random_uint64((1, m))}
            if digits[d][0] < T_BITS:       # a mask in 2^(64 - tbits) Z_2^64: the results' group
                rnd["r"] &= ~np.uint64((1 << (T_BITS - digits[d][0])) - 1)
            share[t0:t1] -= rnd["r"].reshape(t1 - t0, npos)
            pending.append(pool.submit(respond, t0, t1, d, rnd) if pool else respond(t0, t1, d, rnd))
        while pending and (gi == len(jobs) or len(pending) > 2 or pool is None):
            fut = pending.pop(0)
            s.channel.send(step + ".resp", fut.result() if pool else fut)
    return np.ascontiguousarray(share.reshape(nJ, nI, npos).transpose(1, 0, 2))


_POOL: dict = {}
_WS = threading.local()


def _workspace(name: str, size: int) -> np.ndarray:
    """A per-thread ``uint64[size]`` buffer kept between calls (contents undefined)."""
    d = _WS.__dict__.setdefault("bufs", {})
    b = d.get(name)
    if b is None or b.shape[0] < size:
        b = np.empty(size, U64)
        d[name] = b
    return b[:size]


def _pool():
    """A two-thread pool for the evaluator's responses (None on a single core or with
    ``EZP_HE_THREADS=1``).  One per process: a pool inherited through ``fork`` has no
    threads, so a forked child makes its own."""
    import os
    n = int(os.environ.get("EZP_HE_THREADS", min(2, os.cpu_count() or 1)))
    if n <= 1:
        return None
    pid = os.getpid()
    if _POOL.get("pid") != pid:
        from concurrent.futures import ThreadPoolExecutor
        _POOL["pid"] = pid
        _POOL["pool"] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="ezp-he")
    return _POOL["pool"]


# ------------------------------------------------------------------ matmul encoding

@lru_cache(maxsize=65536)
def _cands(d: int, cap: int) -> tuple:
    """Block sizes worth trying for a dimension ``d``: balanced splits into 1, 2, 3, ... blocks
    (distinct values), capped at ``cap``."""
    out = set()
    if d <= 0:
        return [1]
    nb = 1
    while True:
        b = -(-d // nb)
        if b <= cap:
            out.add(b)
        if b == 1:
            break
        nb = max(nb + 1, -(-d // (b - 1))) if b > 1 else nb + 1
    return tuple(sorted(out))


@lru_cache(maxsize=4096)
def matmul_plan(m: int, k: int, n: int, wbits: int, diag: bool = False, pack: bool = True):
    """Block sizes ``(mw, kw, nw)`` (``mw kw nw <= N``) for ``X[m, k] @ W[k, n]`` with ``X``
    encrypted (Cheetah's matmul encoding: ``X[i, t]`` at ``i kw nw + t``, ``W[t, j]`` at
    ``j kw + kw - 1 - t``, results at ``i kw nw + j kw + kw - 1``) that move the fewest bytes;
    ``diag``: ``W`` is diagonal (``k == n``, a per-column scale; then ``kw == nw`` and only the
    diagonal blocks are multiplied).  ``None`` if no block size fits the noise bound."""
    best = None
    if m == 0 or k == 0 or n == 0:
        return {"mw": 1, "kw": 1, "nw": 1, "nI": 0, "nK": 0, "nJ": 0, "L": MIN_LIMBS, "f": 0,
                "bytes": 0, "in_bytes": 0, "out_bytes": 0, "rounds": 0, "pack": None}
    for mw in _cands(m, N):
        if diag:
            pairs = [(c, c) for c in _cands(k, int(math.isqrt(N // mw)))]
        else:
            pairs = []
            for nw in _cands(n, N // mw):
                kmax = N // (mw * nw)
                if kmax >= 1:
                    pairs.append((_cands(k, kmax)[-1], nw))
                    # power-of-two blocks: the results then share a residue class modulo a
                    # power of two, which output packing needs
                    p2 = 1 << (kmax.bit_length() - 1)
                    while p2 >= 2 and pack:
                        if p2 < 2 * k:
                            pairs.append((p2, nw))
                        p2 //= 2
        for kw, nw in dict.fromkeys(pairs):
            if mw * kw * nw > N:
                continue
            nI, nK, nJ = -(-m // mw), -(-k // kw), -(-n // nw)
            npos = mw * nw
            nsum = 1 if diag else nK
            nnz = nw if diag else kw * nw
            opts = []
            lv = level_for(wbits, nsum, nnz, nI * nJ * npos)
            if lv is not None:
                ib = _in_bytes(nI * nK, lv[0])
                opts.append((ib + _out_bytes(nI * nJ, npos), ib, lv[0], lv[1], None))
            if pack:
                # results at i kw nw + j kw + kw - 1: one class modulo the power of two dividing kw
                S = min(kw & -kw, 1 << LOG_PACK) if mw * nw > 1 else 1 << LOG_PACK
                po = _pack_options(nI * nK, nI * nJ, npos, S, (kw - 1) % S, wbits, nsum, nnz)
                if po is not None:
                    opts.append((po["bytes"], po["in_bytes"], po["L"], po["f"], po))
            for tot, ib, L, f, po in opts:
                ncts = nI * nK + (nI * nJ if po is None else -(-nI * nJ // (1 << po["l"])))
                key = (tot, ncts, po is not None)
                if best is None or key < best[0]:
                    best = (key, {"mw": mw, "kw": kw, "nw": nw, "nI": nI, "nK": nK, "nJ": nJ, "L": L,
                                  "f": f, "bytes": tot, "in_bytes": ib, "out_bytes": tot - ib, "rounds": 1,
                                  "pack": po})
    return None if best is None else best[1]


def _plan_keys(planner, args: tuple, pack: bool, have_keys: bool):
    """The cheapest plan (``planner(*args, pack)``), except that without Galois keys a packed
    plan is taken only if it saves more than the keys cost."""
    p = planner(*args, pack)
    if p is not None and p.get("pack") is not None and not have_keys:
        u = planner(*args, False)
        if u is not None and u["bytes"] <= p["bytes"] + _gk_bytes():
            return u
    return p


def _plan_now(s, sender: int, planner, args: tuple, pack: bool):
    """The plan a product runs with (:func:`_plan_keys`; both parties know whether the Galois
    keys of this direction were sent)."""
    return _plan_keys(planner, args, pack, _have_galois(s, sender))


def _matmul_core(s, **kw) -> np.ndarray:
    return _drive(_matmul_gen(s, **kw))


def _matmul_gen(s, *, sender: int, m: int, k: int, n: int, X=None, W=None, wbits: int = 64,
                diag: bool = False, pack: bool = True, step: str = "he.matmul"):
    """Shares of ``X @ W`` (``uint64[m, n]``), ``X[m, k]`` at ``sender``, ``W`` at the other party
    (``W[k, n]``, or ``W[k]`` the diagonal when ``diag``).  ``pack``: allow output packing (the
    plan uses it where it moves fewer bytes)."""
    plan = _plan_now(s, sender, matmul_plan, (m, k, n, wbits, diag), pack)
    if plan is None:
        raise ValueError(f"{step}: no HE parameters fit {m}x{k}x{n} at {wbits}-bit plaintexts")
    mw, kw, nw, nI, nK, nJ = (plan[x] for x in ("mw", "kw", "nw", "nI", "nK", "nJ"))
    if m * n == 0:
        return np.zeros((m, n), U64)
    if k == 0:
        return np.zeros((m, n), U64)
    ii, jj = np.meshgrid(np.arange(mw), np.arange(nw), indexing="ij")
    pos = (ii * kw * nw + jj * kw + kw - 1).reshape(-1)
    Xp = None
    pt_fn = None
    if s.role == sender:
        X = np.ascontiguousarray(X, dtype=U64)
        if X.shape != (m, k):
            raise ValueError(f"{step}: X has shape {X.shape}, expected {(m, k)}")
        buf = np.zeros((nI * mw, nK * kw), U64)
        buf[:m, :k] = X
        blk = buf.reshape(nI, mw, nK, kw).transpose(0, 2, 1, 3)
        poly = np.zeros((nI, nK, mw, kw * nw), U64)
        poly[..., :kw] = blk
        Xp = np.zeros((nI, nK, N), U64)
        Xp[:, :, :mw * kw * nw] = poly.reshape(nI, nK, -1)
    else:
        Wa = np.ascontiguousarray(W, dtype=U64).view(np.int64)
        if diag:
            if Wa.shape != (k,) or k != n:
                raise ValueError(f"{step}: diagonal of shape {Wa.shape}, expected {(k,)}")
            dpad = np.zeros(nK * kw, np.int64)
            dpad[:k] = Wa
        else:
            if Wa.shape != (k, n):
                raise ValueError(f"{step}: W has shape {Wa.shape}, expected {(k, n)}")
            Wp = np.zeros((nK * kw, nJ * nw), np.int64)
            Wp[:k, :n] = Wa

        def pt_fn(j):
            if diag:
                poly = np.zeros((1, N), np.int64)
                t = np.arange(kw)
                poly[0, t * kw + kw - 1 - t] = dpad[j * kw:(j + 1) * kw]
                return poly, np.array([j])
            blk = Wp[:, j * nw:(j + 1) * nw].reshape(nK, kw, nw)[:, ::-1, :].transpose(0, 2, 1)
            poly = np.zeros((nK, N), np.int64)
            poly[:, :kw * nw] = blk.reshape(nK, -1)
            return poly, np.arange(nK)
    sh = yield from product_gen(s, sender=sender, nI=nI, nK=nK, nJ=nJ, pos=pos, wbits=wbits,
                                nnz=nw if diag else kw * nw, nsum=1 if diag else nK, X=Xp, pt_fn=pt_fn, step=step,
                                pack=plan["pack"])
    out = sh.reshape(nI, nJ, mw, nw).transpose(0, 2, 1, 3).reshape(nI * mw, nJ * nw)
    return np.ascontiguousarray(out[:m, :n])


def matmul_costs(m: int, k: int, n: int, *, nbits_l: int = 64, nbits_r: int = 64, galois: bool = True) -> dict:
    """Bytes (both directions) of :func:`cross_matmul` encrypting ``L`` (``"L"``: ``R`` is the
    plaintext, ``nbits_r`` signed bits) or ``R`` (``"R"``); ``None`` where infeasible.
    ``galois``: the Galois keys of output packing are in place (one-time bytes not counted);
    without them a product packs only when that saves more than the keys cost."""
    pl = _plan_keys(matmul_plan, (m, k, n, nbits_r, False), True, galois)
    pr = _plan_keys(matmul_plan, (n, k, m, nbits_l, False), True, galois)
    return {"L": None if pl is None else pl["bytes"], "R": None if pr is None else pr["bytes"]}


def _encrypt_choice(m, k, n, nbits_l, nbits_r, encrypt, step, s=None, l_owner=0):
    if encrypt == "auto":
        c = matmul_costs(m, k, n, nbits_l=nbits_l, nbits_r=nbits_r)
        if s is not None:       # the runtime plans: packing only pays once the keys are in place
            c = {"L": matmul_costs(m, k, n, nbits_l=nbits_l, nbits_r=nbits_r,
                                   galois=_have_galois(s, l_owner))["L"],
                 "R": matmul_costs(m, k, n, nbits_l=nbits_l, nbits_r=nbits_r,
                                   galois=_have_galois(s, 1 - l_owner))["R"]}
        opts = [x for x in ("L", "R") if c[x] is not None]
        if not opts:
            raise ValueError(f"{step}: no HE parameters fit this product")
        encrypt = min(opts, key=lambda x: c[x])
    if encrypt not in ("L", "R"):
        raise ValueError(f"{step}: encrypt must be 'L', 'R' or 'auto'")
    return encrypt


def cross_matmul(s, *, l_owner: int, m: int, k: int, n: int, L=None, R=None, nbits_l: int = 64,
                 nbits_r: int = 64, encrypt: str = "auto", step: str = "he.cross_matmul") -> np.ndarray:
    """This party's share of ``L @ R`` (``uint64[m, n]``), ``L[m, k]`` at ``l_owner``, ``R[k, n]``
    at the other party.  ``nbits_*``: the operands' signed bit widths (64: any ring element).
    ``encrypt``: which operand is encrypted (``"L"``, ``"R"`` or ``"auto"``: fewer bytes)."""
    return _drive(cross_matmul_gen(s, l_owner=l_owner, m=m, k=k, n=n, L=L, R=R, nbits_l=nbits_l,
                                   nbits_r=nbits_r, encrypt=encrypt, step=step)[1])


def cross_matmul_gen(s, *, l_owner, m, k, n, L=None, R=None, nbits_l=64, nbits_r=64, encrypt="auto",
                     step="he.cross_matmul"):
    """``(sender, generator)`` of :func:`cross_matmul` (for :func:`run_concurrent`)."""
    encrypt = _encrypt_choice(m, k, n, nbits_l, nbits_r, encrypt, step, s, l_owner)
    mine_l = s.role == l_owner
    if encrypt == "L":
        return l_owner, _matmul_gen(s, sender=l_owner, m=m, k=k, n=n, X=L if mine_l else None,
                                    W=None if mine_l else R, wbits=nbits_r, step=step)

    def transposed():
        Xt = None if mine_l else np.ascontiguousarray(np.asarray(R, dtype=U64).T)
        Wt = np.ascontiguousarray(np.asarray(L, dtype=U64).T) if mine_l else None
        out = yield from _matmul_gen(s, sender=1 - l_owner, m=n, k=k, n=m, X=Xt, W=Wt, wbits=nbits_l, step=step)
        return np.ascontiguousarray(out.T)
    return 1 - l_owner, transposed()


def scale_costs(x_shape, *, nbits: int = 64) -> dict:
    """Bytes of :func:`cross_scale` (``{"he": bytes or None}``)."""
    C = int(x_shape[1]) if len(x_shape) > 1 else 1
    m = int(np.prod(x_shape, dtype=np.int64)) // max(C, 1)
    p = matmul_plan(m, C, C, nbits, True)
    return {"he": None if p is None else p["bytes"]}


def cross_scale(s, *, x_owner: int, x_shape, X=None, gamma=None, nbits: int = 64,
                step: str = "he.cross_scale") -> np.ndarray:
    """Shares of ``X * gamma[c]`` per channel (axis 1 of ``x_shape``; a 1-D ``x_shape`` is one
    channel): ``X`` at ``x_owner``, ``gamma uint64[C]`` (signed ``nbits``) at the other party."""
    x_shape = tuple(int(v) for v in x_shape)
    C = x_shape[1] if len(x_shape) > 1 else 1
    perm = (0,) + tuple(range(2, len(x_shape))) + (1,) if len(x_shape) > 1 else (0,)
    m = int(np.prod(x_shape, dtype=np.int64)) // max(C, 1)
    Xm = None
    if s.role == x_owner:
        X = np.asarray(X, dtype=U64)
        if X.shape != x_shape:
            raise ValueError(f"{step}: X has shape {X.shape}, expected {x_shape}")
        Xm = np.ascontiguousarray(X.transpose(perm).reshape(m, C))
    g = None if s.role == x_owner else np.asarray(gamma, dtype=U64).reshape(-1)
    out = _matmul_core(s, sender=x_owner, m=m, k=C, n=C, X=Xm, W=g, wbits=nbits, diag=True, step=step)
    shp = tuple(x_shape[i] for i in perm)
    return np.ascontiguousarray(out.reshape(shp).transpose(np.argsort(perm)))


# ------------------------------------------------------------------ conv2d encoding

def _tile_cands(Hs: int, kh: int, sh: int, cap: int) -> list:
    """Input tile heights: the stride-1 output rows per tile are a multiple of the stride,
    balanced over 1, 2, ... tiles (distinct values), tile <= cap."""
    out = set()
    for nt in range(1, Hs + 1):
        ho = -(-Hs // nt)
        ho = -(-ho // sh) * sh
        ht = ho + kh - 1
        if ht <= cap:
            out.add(ht)
        if ho <= sh:
            break
    return sorted(out)


@lru_cache(maxsize=4096)
def conv2d_plan(geom: Conv2dGeom, wbits: int, pack=True, weight: float = 0.0):
    """Tiling of Cheetah's convolution encoding for ``geom`` (input encrypted, kernel plaintext)
    that moves the fewest bytes (with ``weight``: the least ``bytes + weight *``
    :func:`conv_seconds`), or ``None``.  ``pack``: ``False`` (no packed encodings), ``True``
    (both) or ``"il"`` (only the packed channel-interleaved encodings).

    The (explicitly padded) input is cut into overlapping tiles of ``Ht x Wt`` pixels and
    ``Cw`` channels (``Cw Ht Wt <= N``); ``x[c, i, j]`` sits at ``c Ht Wt + i Wt + j``, the
    (dilated) kernel ``k[c, u, v]`` at ``O - c Ht Wt - u Wt - v`` with ``O = (Cw-1) Ht Wt +
    (kh-1) Wt + kw - 1``; the stride-1 output ``(i, j)`` of the tile is coefficient ``O + i Wt
    + j`` (no other product term lands there, wrapped terms land below ``O``).  Strides keep
    every ``sh``-th row/column (tiles are aligned to the stride); groups restrict the
    channel blocks an output channel sums over.

    With ``pack``, also the channel-interleaved encoding (``"il"``) with ``Cw`` a power of two
    (up to 64 slots even for fewer channels, which then leave slots empty: a 1-channel 28x28 image
    in 8 slots fits one ciphertext and its results pack 8 to one):
    ``x[c, i, j]`` at ``(i Wt + j) Cw + c``, ``k[c, u, v]`` at ``O - (u Wt + v) Cw - c`` with ``O =
    ((kh-1) Wt + kw - 1) Cw + Cw - 1``; the output ``(i, j)`` is coefficient ``O + (i Wt + j) Cw``
    (a product term ``x[c] k[c']`` lands at ``O + (..) Cw + c - c'``, a multiple of ``Cw`` away
    from ``O`` only when ``c = c'``; the row/column argument and the wrapped terms are as
    above), so every result is ``= Cw - 1 mod Cw`` and the returned ciphertexts can be packed
    (:func:`pack_options`, stride ``min(Cw, 64)``)."""
    Nb, C, H, W = geom.x_shape
    O, Cg, KH, KW = geom.w_shape
    G = geom.groups
    if Nb * O * C == 0:
        return {"Ht": 1, "Wt": 1, "Cw": 1, "nI": 0, "nK": 0, "nJ": 0, "bytes": 0, "in_bytes": 0,
                "out_bytes": 0, "rounds": 0, "L": MIN_LIMBS, "f": 0, "il": False, "pack": None}
    dh, dw = geom.dilation
    sh, sw = geom.stride
    kh, kw = (KH - 1) * dh + 1, (KW - 1) * dw + 1
    Hp, Wp = geom.padded_hw
    Hs, Ws = Hp - kh + 1, Wp - kw + 1
    ho, wo = geom.out_hw
    best = None
    for Ht in _tile_cands(Hs, kh, sh, N):
        for Wt in _tile_cands(Ws, kw, sw, N // Ht):
            cmax = N // (Ht * Wt)
            if cmax < 1:
                continue
            nkg = -(-Cg // cmax)
            cws = [] if pack == "il" else [(-(-Cg // nkg), False)]
            if pack:
                p2 = 2
                while p2 <= cmax and p2 < max(2 * Cg, 2 << LOG_PACK):
                    cws.append((p2, True))
                    p2 *= 2
            hot, wot = Ht - kh + 1, Wt - kw + 1
            nth, ntw = -(-Hs // hot), -(-Ws // wot)
            rows = -(-hot // sh)
            cols = -(-wot // sw)
            npos = rows * cols
            nI = Nb * nth * ntw
            for Cw, il in cws:
                nkg = -(-Cg // Cw)
                nK = G * nkg
                nnz = Cw * KH * KW
                opts = []
                if not il:
                    lv = level_for(wbits, nkg, nnz, nI * O * npos)
                    if lv is not None:
                        ib = _in_bytes(nI * nK, lv[0])
                        opts.append((ib + _out_bytes(nI * O, npos), ib, lv[0], lv[1], None))
                else:
                    S = min(Cw, 1 << LOG_PACK)
                    po = _pack_options(nI * nK, nI * O, npos, S, (Cw - 1) % S, wbits, nkg, nnz)
                    if po is not None:
                        opts.append((po["bytes"], po["in_bytes"], po["L"], po["f"], po))
                for tot, ib, L, f, po in opts:
                    ncts = nI * nK + (nI * O if po is None else -(-nI * O // (1 << po["l"])))
                    cand = {"Ht": Ht, "Wt": Wt, "Cw": Cw, "nkg": nkg, "nth": nth, "ntw": ntw,
                            "rows": rows, "cols": cols, "nI": nI, "nK": nK, "nJ": O, "L": L,
                            "f": f, "bytes": tot, "in_bytes": ib, "out_bytes": tot - ib, "rounds": 1,
                            "il": il, "pack": po}
                    key = (tot + weight * conv_seconds(cand) if weight else tot, ncts, il)
                    if best is None or key < best[0]:
                        best = (key, cand)
    return None if best is None else best[1]


#: Packing of convolutions (the channel-interleaved encoding, :func:`conv2d_plan`, whose results
#: are merged by PackLWEs): ``"off"``; ``"bytes"``, wherever it moves fewer bytes; or ``"auto"``
#: (the default), where the bytes it saves outweigh the evaluator's extra compute at a link of
#: :data:`CONV_PACK_BPS` (:func:`conv_seconds`).  Measured (TCP loopback, 18-bit weights, bytes and
#: seconds unpacked -> packed): DenseNet's 1x1 conv on 960x7x7 11.8 -> 1.7 MB at 0.16 -> 0.15 s,
#: on 512x14x14 13.0 -> 3.4 MB at 0.20 -> 0.25 s; a 1x1 conv on 256x56x56 34.6 -> 28.3 MB at 1.5 ->
#: 3.3 s (``"auto"`` keeps it unpacked).  The mode is public and both parties must use the same
#: (it changes the encoding); the network executor takes it from the plan (``serve --conv-pack``).
CONV_PACK = "auto"
CONV_PACK_MODES = ("off", "auto", "bytes")
#: The link speed (bytes per second) at which ``"auto"`` weighs compute against bytes: 100 Mbit/s,
#: the class of link the executor's round budget (``ROUND_BYTES``) assumes too.
CONV_PACK_BPS = 12.5e6
#: :func:`conv_seconds`: both parties' wall time on this 2-core machine, fitted (non-negative least
#: squares) to 14 measured convolutions, packed and not: per member-limb product and per key switch.
_T_MEMBER, _T_KS = 22.8e-6, 163e-6


def conv_seconds(plan: dict) -> float:
    """Estimated compute of a convolution plan (:func:`conv2d_plan`): ``_T_MEMBER`` per result
    member, limb and summed product (plus two for the inverse transforms) and ``_T_KS`` per key
    switch of the merge trees.  Public (from the plan only), so both parties choose alike."""
    R = plan["nI"] * plan["nJ"]
    po = plan.get("pack")
    ks = -(-R // (1 << po["l"])) * _ks_count(po["S"], po["l"]) if po else 0
    return _T_MEMBER * R * plan["L"] * (plan["nK"] + 2) + _T_KS * ks


def conv_pack_mode(mode=None) -> str:
    """``mode`` (``None``: :data:`CONV_PACK`; ``True``/``False`` for ``"bytes"``/``"off"``) checked."""
    mode = CONV_PACK if mode is None else mode
    if isinstance(mode, bool):
        mode = "bytes" if mode else "off"
    if mode not in CONV_PACK_MODES:
        raise ValueError(f"conv packing mode {mode!r} (use one of {', '.join(CONV_PACK_MODES)})")
    return mode


def _stacked(geom: Conv2dGeom):
    """The batch stacked into one tall image: each (explicitly padded) image takes ``Hb`` rows,
    ``Hp`` rounded up to the stride, so the strided outputs of image ``b`` are rows
    ``b Hb / sh + [0, HO)`` of the stacked convolution.  ``None`` for a batch of one."""
    Nb, C, H, W = geom.x_shape
    if Nb <= 1:
        return None
    Hp, Wp = geom.padded_hw
    Hb = -(-Hp // geom.stride[0]) * geom.stride[0]
    return Conv2dGeom.make((1, C, Nb * Hb, Wp), geom.w_shape, geom.stride, 0, geom.dilation, geom.groups), Hb


def _polyphase(geom: Conv2dGeom):
    """A strided convolution as a stride-1 one (polyphase decomposition): input phase
    ``(pu, pv)`` of channel ``c`` (rows ``s i + pu``, columns ``s j + pv`` of the padded input)
    becomes channel ``c sh sw + pu sw + pv``, the (dilated) kernel splits the same way into
    ``ceil(kh / sh) x ceil(kw / sw)`` taps; the output is exactly ``[N, O, HO, WO]``.  Only
    the outputs that are kept are computed, so the result ciphertexts are not wasted on
    the skipped positions.  ``None`` without a stride."""
    sh, sw = geom.stride
    if sh == 1 and sw == 1:
        return None
    Nb, C, H, W = geom.x_shape
    O, Cg, KH, KW = geom.w_shape
    dh, dw = geom.dilation
    kh2, kw2 = -(-((KH - 1) * dh + 1) // sh), -(-((KW - 1) * dw + 1) // sw)
    ho, wo = geom.out_hw
    return Conv2dGeom.make((Nb, C * sh * sw, ho - 1 + kh2, wo - 1 + kw2), (O, Cg * sh * sw, kh2, kw2),
                           1, 0, 1, geom.groups)


def _poly_x(X, geom: Conv2dGeom, g2: Conv2dGeom) -> np.ndarray:
    Nb, C, H, W = geom.x_shape
    sh, sw = geom.stride
    t, l, _, _ = geom.padding
    H2, W2 = sh * g2.x_shape[2], sw * g2.x_shape[3]
    buf = np.zeros((Nb, C, H2, W2), U64)
    hh, ww = max(0, min(H, H2 - t)), max(0, min(W, W2 - l))
    buf[:, :, t:t + hh, l:l + ww] = X[:, :, :hh, :ww]
    return np.ascontiguousarray(buf.reshape(Nb, C, H2 // sh, sh, W2 // sw, sw).transpose(0, 1, 3, 5, 2, 4)
                                .reshape(g2.x_shape))


def _poly_k(Kr, geom: Conv2dGeom, g2: Conv2dGeom) -> np.ndarray:
    O, Cg, KH, KW = geom.w_shape
    sh, sw = geom.stride
    dh, dw = geom.dilation
    kh2, kw2 = g2.w_shape[2:]
    kd = np.zeros((O, Cg, kh2 * sh, kw2 * sw), U64)
    kd[:, :, :(KH - 1) * dh + 1:dh, :(KW - 1) * dw + 1:dw] = Kr
    return np.ascontiguousarray(kd.reshape(O, Cg, kh2, sh, kw2, sw).transpose(0, 1, 3, 5, 2, 4)
                                .reshape(g2.w_shape))


@lru_cache(maxsize=4096)
def _conv_choice(geom: Conv2dGeom, nbits: int, pack=True, weight: float = 0.0):
    """``(polyphase, stacked, plan)``: the cheapest of the per-image and stacked-batch
    encodings, of the convolution itself or (strided) of its polyphase form (``pack`` and
    ``weight`` as in :func:`conv2d_plan`)."""
    best, key = (False, False, None), None
    g2 = _polyphase(geom)
    for poly, g in ((False, geom), (True, g2)):
        if g is None:
            continue
        st = _stacked(g)
        for stacked, gg in ((False, g), (True, None if st is None else st[0])):
            if gg is None:
                continue
            p = conv2d_plan(gg, nbits, pack, weight)
            k = None if p is None else p["bytes"] + (weight * conv_seconds(p) if weight else 0)
            if p is not None and (key is None or k < key):
                best, key = (poly, stacked, p), k
    return best


def _conv_choice_mode(geom: Conv2dGeom, nbits: int, mode: str):
    """:func:`_conv_choice` under a packing mode (:data:`CONV_PACK`): ``"auto"`` takes the packed
    encoding only if its bytes plus :data:`CONV_PACK_BPS` times its estimated compute are below the
    unpacked encoding's."""
    if mode != "auto":
        return _conv_choice(geom, nbits, mode == "bytes")
    u = _conv_choice(geom, nbits, False)
    p = _conv_choice(geom, nbits, "il", CONV_PACK_BPS)
    if p[2] is None or (u[2] is not None and u[2]["bytes"] + CONV_PACK_BPS * conv_seconds(u[2])
                        <= p[2]["bytes"] + CONV_PACK_BPS * conv_seconds(p[2])):
        return u
    return p


def _conv_choice_keys(geom: Conv2dGeom, nbits: int, have_keys: bool, mode=None):
    """:func:`_conv_choice_mode`, except that without Galois keys a packed encoding is taken only if
    it saves more than the keys cost."""
    c = _conv_choice_mode(geom, nbits, conv_pack_mode(mode))
    if c[2] is not None and c[2].get("pack") is not None and not have_keys:
        u = _conv_choice(geom, nbits, False)
        if u[2] is not None and u[2]["bytes"] <= c[2]["bytes"] + _gk_bytes():
            return u
    return c


def conv2d_costs(geom: Conv2dGeom, *, nbits: int = 64, galois: bool = True, mode=None) -> dict:
    """Bytes of :func:`cross_conv2d` (``{"X": bytes or None}``: the input is encrypted);
    ``galois`` as in :func:`matmul_costs`, ``mode`` the packing mode (:data:`CONV_PACK`)."""
    p = _conv_choice_keys(geom, nbits, galois, mode)[2]
    return {"X": None if p is None else p["bytes"]}


def cross_conv2d(s, *, x_owner: int, geom: Conv2dGeom, X=None, K=None, nbits: int = 64,
                 step: str = "he.cross_conv2d") -> np.ndarray:
    """This party's share of ``conv2d(X, K)`` (``uint64[N, O, HO, WO]``): ``X`` at ``x_owner``
    (encrypted), ``K`` (signed ``nbits``-bit entries) at the other party.  A batch is stacked
    into one tall image, and a strided convolution takes its polyphase form, when that moves
    fewer bytes (:func:`_conv_choice`)."""
    return _drive(cross_conv2d_gen(s, x_owner=x_owner, geom=geom, X=X, K=K, nbits=nbits, step=step))


def session_conv_pack(s) -> str:
    """The session's convolution packing mode: ``s.he_conv_pack`` if set (the network executor
    sets it from the plan on both sides), else :data:`CONV_PACK`."""
    return conv_pack_mode(getattr(s, "he_conv_pack", None))


def cross_conv2d_gen(s, *, x_owner, geom, X=None, K=None, nbits=64, step="he.cross_conv2d"):
    """Generator form of :func:`cross_conv2d` (the sender is ``x_owner``)."""
    poly, stacked, plan = _conv_choice_keys(geom, nbits, _have_galois(s, x_owner), session_conv_pack(s))
    if plan is None:
        raise ValueError(f"{step}: no HE parameters fit this convolution at {nbits}-bit kernels")
    if s.role == x_owner:
        X = np.ascontiguousarray(X, dtype=U64)
        if X.shape != geom.x_shape:
            raise ValueError(f"{step}: input shape {X.shape}, expected {geom.x_shape}")
    else:
        K = np.ascontiguousarray(K, dtype=U64)
        if K.shape != geom.w_shape:
            raise ValueError(f"{step}: kernel shape {K.shape}, expected {geom.w_shape}")
    if poly:
        g2 = _polyphase(geom)
        X = _poly_x(X, geom, g2) if s.role == x_owner else None
        K = None if s.role == x_owner else _poly_k(K, geom, g2)
        geom = g2
    if not stacked:
        return (yield from _conv_gen(s, x_owner=x_owner, geom=geom, X=X, K=K, nbits=nbits, step=step, plan=plan))
    gst, Hb = _stacked(geom)
    Nb, C, H, W = geom.x_shape
    Xs = None
    if s.role == x_owner:
        X = _owned_input(X, geom, step)
        t, l, b, r = geom.padding
        Hp, Wp = geom.padded_hw
        buf = np.zeros((Nb, C, Hb, Wp), U64)
        buf[:, :, t:t + H, l:l + W] = X
        Xs = np.ascontiguousarray(buf.transpose(1, 0, 2, 3).reshape(1, C, Nb * Hb, Wp))
    y = yield from _conv_gen(s, x_owner=x_owner, geom=gst, X=Xs, K=K, nbits=nbits, step=step, plan=plan)
    ho, wo = geom.out_hw
    rows = (np.arange(Nb) * (Hb // geom.stride[0]))[:, None] + np.arange(ho)[None, :]
    return np.ascontiguousarray(y[0][:, rows, :wo].transpose(1, 0, 2, 3))


def _owned_input(X, geom: Conv2dGeom, step: str) -> np.ndarray:
    """The input owner's convolution input as contiguous ring words of the geometry's shape."""
    X = np.ascontiguousarray(X, dtype=U64)
    if X.shape != geom.x_shape:
        raise ValueError(f"{step}: input shape {X.shape}, expected {geom.x_shape}")
    return X


def _conv_gen(s, *, x_owner: int, geom: Conv2dGeom, X=None, K=None, nbits: int = 64,
              step: str = "he.cross_conv2d", plan=None):
    """The product of :func:`cross_conv2d_gen` for ``geom`` with its ``plan`` (:func:`conv2d_plan`)."""
    if plan is None:
        raise ValueError(f"{step}: no HE parameters fit this convolution at {nbits}-bit kernels")
    Nb, C, H, W = geom.x_shape
    O, Cg, KH, KW = geom.w_shape
    G = geom.groups
    Og = O // G
    ho, wo = geom.out_hw
    if Nb * O * ho * wo * C == 0:
        return np.zeros(geom.out_shape, U64)
    dh, dw = geom.dilation
    sh, sw = geom.stride
    kh, kw = (KH - 1) * dh + 1, (KW - 1) * dw + 1
    Ht, Wt, Cw, nkg, nth, ntw = (plan[x] for x in ("Ht", "Wt", "Cw", "nkg", "nth", "ntw"))
    hot, wot = Ht - kh + 1, Wt - kw + 1
    rows, cols = plan["rows"], plan["cols"]
    nI, nK = plan["nI"], plan["nK"]
    il = plan.get("il", False)
    ri, ci = np.meshgrid(np.arange(rows) * sh, np.arange(cols) * sw, indexing="ij")
    if il:      # channel-interleaved: x[c, i, j] at (i Wt + j) Cw + c
        off = ((kh - 1) * Wt + kw - 1) * Cw + Cw - 1
        pos = (off + (ri * Wt + ci) * Cw).reshape(-1)
    else:
        off = (Cw - 1) * Ht * Wt + (kh - 1) * Wt + (kw - 1)
        pos = (off + ri * Wt + ci).reshape(-1)
    Xp = None
    pt_fn = None
    if s.role == x_owner:
        X = _owned_input(X, geom, step)
        t, l, _, _ = geom.padding
        # padded input big enough for every tile: rows nth*hot + kh - 1
        HH, WW = nth * hot + kh - 1, ntw * wot + kw - 1
        buf = np.zeros((Nb, G, nkg * Cw, HH, WW), U64)
        Hp, Wp = geom.padded_hw
        hh, ww = min(H, HH - t), min(W, WW - l)
        buf[:, :, :Cg, t:t + hh, l:l + ww] = X.reshape(Nb, G, Cg, H, W)[:, :, :, :hh, :ww]
        # tiles: [Nb, nth, ntw, G, nkg, Cw, Ht, Wt]
        iy = (np.arange(nth) * hot)[:, None] + np.arange(Ht)[None, :]          # [nth, Ht]
        ix = (np.arange(ntw) * wot)[:, None] + np.arange(Wt)[None, :]          # [ntw, Wt]
        b5 = buf.reshape(Nb, G, nkg, Cw, HH, WW)
        tiles = b5[:, :, :, :, iy[:, None, :, None], ix[None, :, None, :]]    # [Nb,G,nkg,Cw,nth,ntw,Ht,Wt]
        if il:
            tiles = tiles.transpose(0, 4, 5, 1, 2, 6, 7, 3).reshape(nI, nK, Cw * Ht * Wt)
        else:
            tiles = tiles.transpose(0, 4, 5, 1, 2, 3, 6, 7).reshape(nI, nK, Cw * Ht * Wt)
        Xp = np.zeros((nI, nK, N), U64)
        Xp[:, :, :Cw * Ht * Wt] = tiles
    else:
        Ka = np.ascontiguousarray(K, dtype=U64).view(np.int64)
        if Ka.shape != geom.w_shape:
            raise ValueError(f"{step}: kernel shape {Ka.shape}, expected {geom.w_shape}")
        Kd = np.zeros((O, nkg * Cw, kh, kw), np.int64)
        Kd[:, :Cg, ::dh, ::dw] = Ka
        cc, uu, vv = np.meshgrid(np.arange(Cw), np.arange(kh), np.arange(kw), indexing="ij")
        kpos = (off - ((uu * Wt + vv) * Cw + cc) if il else off - cc * Ht * Wt - uu * Wt - vv).reshape(-1)

        def pt_fn(o):
            g = o // Og
            poly = np.zeros((nkg, N), np.int64)
            poly[:, kpos] = Kd[o].reshape(nkg, Cw * kh * kw)
            return poly, g * nkg + np.arange(nkg)
    sh_ = yield from product_gen(s, sender=x_owner, nI=nI, nK=nK, nJ=O, pos=pos, wbits=nbits, nnz=Cw * KH * KW,
                                 nsum=nkg, X=Xp, pt_fn=pt_fn, step=step, pack=plan.get("pack"))
    # [nI=(Nb, nth, ntw), O, rows, cols] -> [Nb, O, nth*rows, ntw*cols] -> crop
    y = sh_.reshape(Nb, nth, ntw, O, rows, cols).transpose(0, 3, 1, 4, 2, 5).reshape(Nb, O, nth * rows, ntw * cols)
    return np.ascontiguousarray(y[:, :, :ho, :wo])


# ------------------------------------------------------------------ shared x shared

def shared_matmul(s, X: np.ndarray, Y: np.ndarray, step: str = "he.shared_matmul") -> np.ndarray:
    """Shares of ``X @ Y`` for shared ``X[m, k]``, ``Y[k, n]`` (this party's shares): the local
    product plus the two cross terms ``X0 Y1`` and ``X1 Y0`` computed homomorphically, both
    directions at once (no Beaver opening, no triple)."""
    X = np.ascontiguousarray(X, dtype=U64)
    Y = np.ascontiguousarray(Y, dtype=U64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[0]:
        raise ValueError(f"{step}: shapes {X.shape} and {Y.shape} do not align")
    from .._ext import ring
    m, k = X.shape
    n = Y.shape[1]
    out = ring.matmul(X, Y) if X.size and Y.size else np.zeros((m, n), U64)
    items = []
    for l_owner in (0, 1):
        mine = s.role == l_owner
        snd, g = cross_matmul_gen(s, l_owner=l_owner, m=m, k=k, n=n, L=X if mine else None,
                                  R=None if mine else Y, step=f"{step}.{l_owner}")
        items.append((s.role == snd, g))
    for z in run_concurrent(items):
        out += z
    return out


def shared_conv2d(s, X: np.ndarray, Wk: np.ndarray, geom: Conv2dGeom,
                  step: str = "he.shared_conv2d") -> np.ndarray:
    """Shares of ``conv2d(X, W)`` for a shared input and a shared kernel (cross terms by HE,
    both directions at once)."""
    from .conv import conv2d_ring
    out = conv2d_ring(X, Wk, geom)
    items = []
    for x_owner in (0, 1):
        mine = s.role == x_owner
        items.append((mine, cross_conv2d_gen(s, x_owner=x_owner, geom=geom, X=X if mine else None,
                                             K=None if mine else Wk, step=f"{step}.{x_owner}")))
    for z in run_concurrent(items):
        out += z
    return out


def shared_matmul_costs(m: int, k: int, n: int) -> dict:
    c = matmul_costs(m, k, n)
    opts = [v for v in c.values() if v is not None]
    return {"bytes": 2 * min(opts) if opts else None, "rounds": 2}


# ------------------------------------------------------------------ engines (backends "he")

from .ot_source import OtTriples      # noqa: E402  (engine classes below build on the interfaces)
from .products import Products, cheapest  # noqa: E402

HE_ROUNDS = 2          # message flights of one product: ciphertexts out, responses back


class HeProducts(Products):
    """The product engine ``"he"`` (``Session(..., linear="he")``, the default): every
    product offers the homomorphic option ``"he"`` next to the OT options of
    :class:`~ezprotocols.arith.products.OtProducts`, and ``decompose="auto"`` takes the one
    that moves the fewest bytes (tiny products stay with OT).  Elementwise products
    (``cross_mul``, ``shared_mul``) take batched BFV with CRT plaintext primes
    (:mod:`ezprotocols.arith.he_simd`) when it moves fewer bytes than OT.
    Extras: per-channel scales (``scale_costs``/``cross_scale``) and shared x shared
    products on the actual shares (``shared_matmul``/``shared_conv2d``)."""

    @property
    def ot(self):
        return self.session.engine("linear", "ot")

    def setup(self) -> None:
        _setup(self.session, 0)
        _setup(self.session, 1)

    @staticmethod
    def _he(b):
        return {"he": {"bytes": b, "rounds": HE_ROUNDS}} if b is not None else {}

    #: senders whose Galois keys the cost functions assume (None: the keys in place)
    galois_assumed = None

    def _keys(self, sender) -> bool:
        """Whether products with ``sender`` encrypting pack with keys in place (``sender`` None:
        unknown, so both directions' keys are needed)."""
        if sender is None:
            return self._keys(0) and self._keys(1)
        if self.galois_assumed is not None:
            return sender in self.galois_assumed
        return _have_galois(self.session, sender)

    @contextmanager
    def assuming_galois(self, senders):
        """Cost queries within assume Galois keys of exactly ``senders`` (what-if planning)."""
        old = self.galois_assumed
        self.galois_assumed = frozenset(senders)
        try:
            yield self
        finally:
            self.galois_assumed = old

    def matmul_costs(self, m, k, n, *, nbits_l=64, nbits_r=64, l_owner=None) -> dict:
        kl = self._keys(l_owner)
        kr = self._keys(None if l_owner is None else 1 - l_owner)
        h = [v for v in (matmul_costs(m, k, n, nbits_l=nbits_l, nbits_r=nbits_r, galois=kl)["L"],
                         matmul_costs(m, k, n, nbits_l=nbits_l, nbits_r=nbits_r, galois=kr)["R"]) if v is not None]
        return {**self.ot.matmul_costs(m, k, n, nbits_l=nbits_l, nbits_r=nbits_r), **self._he(min(h) if h else None)}

    def cross_matmul(self, *, l_owner, m, k, n, L=None, R=None, nbits_l=64, nbits_r=64, decompose="auto",
                     step="arith.cross_matmul"):
        if decompose == "auto":
            decompose = cheapest(self.matmul_costs(m, k, n, nbits_l=nbits_l, nbits_r=nbits_r, l_owner=l_owner))
        if decompose == "he":
            return cross_matmul(self.session, l_owner=l_owner, m=m, k=k, n=n, L=L, R=R, nbits_l=nbits_l,
                                nbits_r=nbits_r, step=step + ".he")
        return self.ot.cross_matmul(l_owner=l_owner, m=m, k=k, n=n, L=L, R=R, nbits_l=nbits_l, nbits_r=nbits_r,
                                    decompose=decompose, step=step)

    def conv2d_costs(self, geom, *, nbits_x=64, nbits_k=64, x_owner=None) -> dict:
        keys = self._keys(x_owner)
        return {**self.ot.conv2d_costs(geom, nbits_x=nbits_x, nbits_k=nbits_k),
                **self._he(conv2d_costs(geom, nbits=nbits_k, galois=keys, mode=session_conv_pack(self.session))["X"])}

    def cross_conv2d(self, *, x_owner, geom, X=None, K=None, nbits_x=64, nbits_k=64, decompose="auto",
                     step="arith.cross_conv2d"):
        if decompose == "auto":
            decompose = cheapest(self.conv2d_costs(geom, nbits_x=nbits_x, nbits_k=nbits_k, x_owner=x_owner))
        if decompose == "he":
            return cross_conv2d(self.session, x_owner=x_owner, geom=geom, X=X, K=K, nbits=nbits_k, step=step + ".he")
        return self.ot.cross_conv2d(x_owner=x_owner, geom=geom, X=X, K=K, nbits_x=nbits_x, nbits_k=nbits_k,
                                    decompose=decompose, step=step)

    def mul_costs(self, n: int) -> dict:
        """The OT option and the batched-BFV option (:mod:`ezprotocols.arith.he_simd`, one cross
        term per slot) for ``n`` elementwise products."""
        from . import he_simd
        return {**self.ot.mul_costs(n), **self._he(he_simd.simd_bytes(int(n), 1) if int(n) else None)}

    def cross_mul(self, *, owner, n, a=None, b=None, step="arith.cross_mul", decompose="auto"):
        if decompose == "auto":
            decompose = cheapest(self.mul_costs(n))
        if decompose == "he":
            from . import he_simd
            return he_simd.cross_mul(self.session, owner=owner, n=n, a=a, b=b, step=step + ".he")
        return self.ot.cross_mul(owner=owner, n=n, a=a, b=b, step=step)

    def shared_mul_costs(self, n: int) -> dict:
        """Both cross terms ``x0 y1 + y0 x1`` of ``n`` shared x shared elementwise products: two
        OT cross products, or one batched-BFV call with both terms in each returned ciphertext."""
        from . import he_simd
        ot = self.ot.mul_costs(n)["acot"]
        return {"acot": {"bytes": 2 * ot["bytes"], "rounds": ot["rounds"]},
                **self._he(he_simd.simd_bytes(int(n), 2) if int(n) else None)}

    def shared_mul(self, x, y, step: str = "arith.shared_mul") -> np.ndarray:
        """Shares of ``x * y`` elementwise for shared flat operands (the local products plus both
        cross terms, no triple, no opening): batched BFV when it moves fewer bytes, else OT."""
        x = np.ascontiguousarray(x, dtype=U64).reshape(-1)
        y = np.ascontiguousarray(y, dtype=U64).reshape(-1)
        if x.shape != y.shape:
            raise ValueError(f"{step}: shapes {x.shape} and {y.shape}")
        n = x.shape[0]
        if n and cheapest(self.shared_mul_costs(n)) == "he":
            from . import he_simd
            return he_simd.shared_mul(self.session, x, y, step=step + ".he")
        out = x * y
        for owner in (0, 1):
            mine = self.session.role == owner
            out += self.ot.cross_mul(owner=owner, n=n, a=x if mine else None, b=None if mine else y,
                                     step=f"{step}.{owner}")
        return out

    def scale_costs(self, x_shape, *, nbits: int = 64) -> dict:
        return self._he(scale_costs(x_shape, nbits=nbits)["he"])

    def cross_scale(self, *, x_owner, x_shape, X=None, gamma=None, nbits=64, step="arith.cross_scale"):
        return cross_scale(self.session, x_owner=x_owner, x_shape=x_shape, X=X, gamma=gamma, nbits=nbits,
                           step=step + ".he")

    def shared_matmul(self, X, Y, step: str = "arith.shared_matmul") -> np.ndarray:
        """Shares of ``X @ Y`` for shared operands: the local product plus both cross terms,
        no opening (HE in both directions at once when it is the cheapest, else OT)."""
        X = np.ascontiguousarray(X, dtype=U64)
        Y = np.ascontiguousarray(Y, dtype=U64)
        m, k = X.shape
        n = Y.shape[1]
        if cheapest(self.matmul_costs(m, k, n)) == "he":
            return shared_matmul(self.session, X, Y, step=step + ".he")
        from .._ext import ring
        out = ring.matmul(X, Y) if X.size and Y.size else np.zeros((m, n), U64)
        for l_owner in (0, 1):
            mine = self.session.role == l_owner
            out += self.cross_matmul(l_owner=l_owner, m=m, k=k, n=n, L=X if mine else None,
                                     R=None if mine else Y, step=f"{step}.{l_owner}")
        return out

    def shared_conv2d(self, X, Wk, geom, step: str = "arith.shared_conv2d") -> np.ndarray:
        if cheapest(self.conv2d_costs(geom)) == "he":
            return shared_conv2d(self.session, X, Wk, geom, step=step + ".he")
        from .conv import conv2d_ring
        out = conv2d_ring(X, Wk, geom)
        for x_owner in (0, 1):
            mine = self.session.role == x_owner
            out += self.cross_conv2d(x_owner=x_owner, geom=geom, X=X if mine else None,
                                     K=None if mine else Wk, step=f"{step}.{x_owner}")
        return out


class HeTriples(OtTriples):
    """The triple source ``"he"`` (the default): matrix and convolution triples through
    :class:`HeProducts` (the cheaper of HE and OT per shape); elementwise triples through
    :meth:`HeProducts.shared_mul` (batched BFV with both cross terms per returned ciphertext,
    :mod:`ezprotocols.arith.he_simd`, when it moves fewer bytes than OT)."""

    @property
    def products(self):
        return self.session.engine("linear", "he")

    def mul_triples(self, n: int):
        s = self.session
        n = int(n)
        a = s.prg.random_uint64(n)
        b = s.prg.random_uint64(n)
        return a, b, self.products.shared_mul(a, b, step="arith.triples.mul")
