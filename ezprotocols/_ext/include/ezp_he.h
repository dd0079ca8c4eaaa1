/* RLWE kernels for the homomorphic linear layers (ezprotocols.arith.he).
 *
 * Polynomials live in Z_q[X]/(X^N + 1) for NTT-friendly primes q < 2^50
 * (q = 1 mod 2N), in RNS form: an array [L][N] of residues, limb l modulo
 * prime l of the chain.  Everything is scalar C on uint64_t with
 * __uint128_t products; multiplications by a fixed operand use Shoup's
 * precomputed quotient w' = floor(w 2^64 / q) (Harvey, "Faster arithmetic for
 * number-theoretic transforms", 2014), so no division happens in the hot loops.
 *
 *  - ezp_ntt_fwd / ezp_ntt_inv: negacyclic NTT (Cooley-Tukey forward with the
 *    powers of a primitive 2N-th root psi in bit-reversed order, Gentleman-Sande
 *    inverse), values kept in [0, q).
 *  - ezp_mul_acc: out += a (.) w (pointwise, Shoup).
 *  - ezp_uniform_mod: 128 random bits -> [0, q) as floor(r q / 2^128)
 *    (statistical distance q / 2^128 from uniform).
 *  - ezp_cbd: centered binomial CBD(eta) from one random 64-bit word
 *    (popcount of eta bits minus popcount of eta bits, eta <= 32).
 *  - ezp_ternary: uniform {-1, 0, 1} as floor(3 r / 2^64).
 *  - ezp_signed_to_rns: int64 -> residues.
 *  - ezp_add_delta: b += round(Q m / 2^64) mod q_l for m in Z_2^64
 *    (= floor(Q/2^64) m + round((Q mod 2^64) m / 2^64)).
 *  - ezp_add_flood: b += r - 2^f for r uniform in [0, 2^(f+1)) (three words).
 *  - ezp_rescale: drop the last prime: x_l <- (x_l - [x]_{q_L}) q_L^{-1} with the
 *    centered residue [x]_{q_L} (rounding of x / q_L).
 *  - ezp_decrypt2: the message round(2^64 x / (q0 q1)) mod 2^64 of x given by
 *    its two residues (mixed radix x = v0 + v1 q0).
 *  - ezp_pack / ezp_unpack: residues at per-limb bit widths, LSB first.
 *  - AVX-512 IFMA (below): the NTTs, and the fused kernels of output packing (members of a
 *    packed product, hybrid key switching, the in-place merge with the automorphism as a gather).
 */
#ifndef EZP_HE_H
#define EZP_HE_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>

typedef unsigned __int128 ezp_u128;

static inline uint64_t ezp_shoup_pre(uint64_t w, uint64_t q) {
    return (uint64_t)(((ezp_u128)w << 64) / q);
}

static inline uint64_t ezp_mul_shoup(uint64_t a, uint64_t w, uint64_t wp, uint64_t q) {
    uint64_t qh = (uint64_t)(((ezp_u128)a * wp) >> 64);
    uint64_t r = a * w - qh * q;
    return r >= q ? r - q : r;
}

static inline uint64_t ezp_add_mod(uint64_t a, uint64_t b, uint64_t q) {
    uint64_t r = a + b;
    return r >= q ? r - q : r;
}

static inline uint64_t ezp_sub_mod(uint64_t a, uint64_t b, uint64_t q) {
    return a >= b ? a - b : a + q - b;
}

/* Support of the forward transform's input: when a[j] = 0 for j >= 2^r, the stages with span
 * t >= 2^r only copy (their y halves are zero), and afterwards a[j + b 2^r] = a[j]: do that
 * replication at once and return 2^r, the span below which the butterflies start (N when dense;
 * plaintext encodings have a short support: a matmul block's kw nw coefficients). */
static size_t ezp__ntt_support(const uint64_t *a, size_t N) {
    size_t hi = N;
    while (hi > 0 && a[hi - 1] == 0) hi--;
    size_t p = 1;
    while (p < hi) p <<= 1;
    return p;
}

static size_t ezp__ntt_fwd_sparse(uint64_t *a, size_t N) {
    size_t p = ezp__ntt_support(a, N);
    if (p >= N) return N;
    for (size_t b = p; b < N; b += p) memcpy(a + b, a, p * sizeof(uint64_t));
    return p;
}

/* tables: psi[N], psip[N] (Shoup), ipsi[N], ipsip[N], ninv, ninvp */
static void ezp_ntt_fwd(uint64_t *a, size_t N, uint64_t q, const uint64_t *psi, const uint64_t *psip) {
    size_t p = ezp__ntt_fwd_sparse(a, N), t = N, m = 1;   /* spans >= p only copy */
    while (t > p) { t >>= 1; m <<= 1; }
    for (; m < N; m <<= 1) {
        t >>= 1;
        for (size_t i = 0; i < m; i++) {
            size_t j1 = 2 * i * t;
            uint64_t S = psi[m + i], Sp = psip[m + i];
            uint64_t *x = a + j1, *y = a + j1 + t;
            for (size_t j = 0; j < t; j++) {
                uint64_t U = x[j];
                uint64_t V = ezp_mul_shoup(y[j], S, Sp, q);
                x[j] = ezp_add_mod(U, V, q);
                y[j] = ezp_sub_mod(U, V, q);
            }
        }
    }
}

/* one Gentleman-Sande stage: h groups of span t */
static void ezp__inv_stage(uint64_t *a, size_t h, size_t t, uint64_t q, const uint64_t *ipsi, const uint64_t *ipsip) {
    size_t j1 = 0;
    for (size_t i = 0; i < h; i++) {
        uint64_t S = ipsi[h + i], Sp = ipsip[h + i];
        uint64_t *x = a + j1, *y = a + j1 + t;
        for (size_t j = 0; j < t; j++) {
            uint64_t U = x[j], V = y[j];
            x[j] = ezp_add_mod(U, V, q);
            y[j] = ezp_mul_shoup(ezp_sub_mod(U, V, q), S, Sp, q);
        }
        j1 += 2 * t;
    }
}

static void ezp_ntt_inv(uint64_t *a, size_t N, uint64_t q, const uint64_t *ipsi, const uint64_t *ipsip,
                        uint64_t ninv, uint64_t ninvp) {
    size_t t = 1;
    for (size_t m = N; m > 1; m >>= 1) {
        ezp__inv_stage(a, m >> 1, t, q, ipsi, ipsip);
        t <<= 1;
    }
    for (size_t j = 0; j < N; j++) a[j] = ezp_mul_shoup(a[j], ninv, ninvp, q);
}

static void ezp_mul_acc(uint64_t *out, const uint64_t *a, const uint64_t *w, const uint64_t *wp,
                        size_t n, uint64_t q) {
    for (size_t j = 0; j < n; j++) out[j] = ezp_add_mod(out[j], ezp_mul_shoup(a[j], w[j], wp[j], q), q);
}

/* a * b mod q for a, b < q < 2^50 with a floating-point quotient estimate (|error| <= 2),
 * no precomputation: qinv = 1.0 / q. */
static inline uint64_t ezp_mul_fp(uint64_t a, uint64_t b, uint64_t q, double qinv) {
    uint64_t qh = (uint64_t)((double)a * (double)b * qinv);
    int64_t r = (int64_t)(a * b - qh * q);
    r += (r >> 63) & (int64_t)q;
    r += (r >> 63) & (int64_t)q;
    r -= (int64_t)q;
    r += (r >> 63) & (int64_t)q;
    r -= (int64_t)q;
    r += (r >> 63) & (int64_t)q;
    return (uint64_t)r;
}

static void ezp_mul_acc_fp(uint64_t *out, const uint64_t *a, const uint64_t *w, size_t n, uint64_t q) {
    double qinv = 1.0 / (double)q;
    for (size_t j = 0; j < n; j++) out[j] = ezp_add_mod(out[j], ezp_mul_fp(a[j], w[j], q, qinv), q);
}

static void ezp_uniform_mod(const uint64_t *words, size_t n, uint64_t q, uint64_t *out) {
    for (size_t j = 0; j < n; j++) {
        uint64_t r0 = words[2 * j], r1 = words[2 * j + 1];
        ezp_u128 lo = (ezp_u128)r0 * q;
        ezp_u128 hi = (ezp_u128)r1 * q + (uint64_t)(lo >> 64);
        out[j] = (uint64_t)(hi >> 64);
    }
}

static void ezp_cbd(const uint64_t *words, size_t n, int eta, int64_t *out) {
    uint64_t mask = eta >= 32 ? 0xFFFFFFFFull : ((1ull << eta) - 1);
    for (size_t j = 0; j < n; j++) {
        uint64_t w = words[j];
        out[j] = (int64_t)__builtin_popcountll(w & mask) - (int64_t)__builtin_popcountll((w >> 32) & mask);
    }
}

static void ezp_ternary(const uint64_t *words, size_t n, int64_t *out) {
    for (size_t j = 0; j < n; j++) out[j] = (int64_t)(((ezp_u128)words[j] * 3) >> 64) - 1;
}

static inline uint64_t ezp_reduce_signed(int64_t v, uint64_t q) {
    if (v >= 0 && (uint64_t)v < q) return (uint64_t)v;
    if (v < 0 && (uint64_t)(-(v + 1)) < q - 1) return (uint64_t)((int64_t)q + v);
    if (v >= 0) return (uint64_t)v % q;
    uint64_t r = (uint64_t)(-(v + 1)) % q;     /* -(v) - 1 without overflow */
    return q - 1 - r;
}

/* x: int64[cnt][n] -> out: uint64[cnt][L][n] */
static void ezp_signed_to_rns(const int64_t *x, size_t cnt, size_t n, const uint64_t *qs, size_t L,
                              uint64_t *out) {
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l < L; l++) {
            uint64_t q = qs[l];
            const int64_t *src = x + c * n;
            uint64_t *dst = out + (c * L + l) * n;
            for (size_t j = 0; j < n; j++) dst[j] = ezp_reduce_signed(src[j], q);
        }
}

/* b[cnt][L][n] += round(Q m / 2^64); delta[l] = floor(Q / 2^64) mod q_l, qlow = Q mod 2^64 */
static void ezp_add_delta(uint64_t *b, const uint64_t *m, size_t cnt, size_t n, const uint64_t *qs,
                          size_t L, const uint64_t *delta, uint64_t qlow) {
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l < L; l++) {
            uint64_t q = qs[l], d = delta[l], dp = ezp_shoup_pre(delta[l], q);
            uint64_t *dst = b + (c * L + l) * n;
            const uint64_t *src = m + c * n;
            for (size_t j = 0; j < n; j++) {
                uint64_t v = src[j];
                uint64_t fr = (uint64_t)(((ezp_u128)qlow * v + ((ezp_u128)1 << 63)) >> 64);
                uint64_t t = ezp_add_mod(ezp_mul_shoup(v, d, dp, q), fr % q, q);
                dst[j] = ezp_add_mod(dst[j], t, q);
            }
        }
}

/* b[cnt][L][n] += r - 2^f, r = w0 + w1 2^64 + w2 2^128 (words[cnt][n][3], masked to f+1 bits by caller) */
static void ezp_add_flood(uint64_t *b, const uint64_t *words, size_t cnt, size_t n, const uint64_t *qs,
                          size_t L, int f) {
    for (size_t l = 0; l < L; l++) {
        uint64_t q = qs[l];
        uint64_t c64 = (uint64_t)(((ezp_u128)1 << 64) % q);
        uint64_t c128 = (uint64_t)(((ezp_u128)c64 << 64) % q);
        uint64_t pf = 1 % q;
        for (int i = 0; i < f; i++) pf = (uint64_t)(((ezp_u128)pf * 2) % q);
        for (size_t c = 0; c < cnt; c++) {
            uint64_t *dst = b + (c * L + l) * n;
            const uint64_t *w = words + c * n * 3;
            for (size_t j = 0; j < n; j++) {
                ezp_u128 acc = (ezp_u128)(w[3 * j] % q) + (ezp_u128)(w[3 * j + 1] % q) * c64
                             + (ezp_u128)(w[3 * j + 2] % q) * c128;
                uint64_t r = (uint64_t)(acc % q);
                dst[j] = ezp_add_mod(dst[j], ezp_sub_mod(r, pf, q), q);
            }
        }
    }
}

/* x[cnt][L][n] (coefficients) -> out[cnt][L-1][n]; qinv[l] = q_{L-1}^{-1} mod q_l */
static void ezp_rescale(const uint64_t *x, size_t cnt, size_t L, size_t n, const uint64_t *qs,
                        const uint64_t *qinv, uint64_t *out) {
    uint64_t qt = qs[L - 1], half = qt >> 1;
    for (size_t c = 0; c < cnt; c++) {
        const uint64_t *top = x + (c * L + L - 1) * n;
        for (size_t l = 0; l + 1 < L; l++) {
            uint64_t q = qs[l], iv = qinv[l], ivp = ezp_shoup_pre(qinv[l], q);
            const uint64_t *src = x + (c * L + l) * n;
            uint64_t *dst = out + (c * (L - 1) + l) * n;
            uint64_t qtm = qt % q;
            for (size_t j = 0; j < n; j++) {
                uint64_t r = top[j];                        /* centered: r or r - qt */
                uint64_t rm = r % q;
                if (r > half) rm = ezp_sub_mod(rm, qtm, q);
                dst[j] = ezp_mul_shoup(ezp_sub_mod(src[j], rm, q), iv, ivp, q);
            }
        }
    }
}

/* x[cnt][2][n] residues mod (q0, q1) -> round(2^64 x / (q0 q1)) mod 2^64 */
static void ezp_decrypt2(const uint64_t *x, size_t cnt, size_t n, uint64_t q0, uint64_t q1,
                         uint64_t q0inv_mod_q1, uint64_t *out) {
    uint64_t ivp = ezp_shoup_pre(q0inv_mod_q1, q1);
    double s1 = 18446744073709551616.0 / (double)q1, iq0 = 1.0 / (double)q0, iq1 = 1.0 / (double)q1;
    for (size_t c = 0; c < cnt; c++) {
        const uint64_t *x0 = x + c * 2 * n, *x1 = x0 + n;
        uint64_t *o = out + c * n;
        for (size_t j = 0; j < n; j++) {
            uint64_t v0 = x0[j];
            uint64_t v1 = ezp_mul_shoup(ezp_sub_mod(x1[j], v0 % q1, q1), q0inv_mod_q1, ivp, q1);
            ezp_u128 num = (ezp_u128)v1 << 64;
            uint64_t ip = (uint64_t)(num / q1);
            uint64_t rem = (uint64_t)(num - (ezp_u128)ip * q1);
            double fr = (double)rem * iq1 + (double)v0 * iq0 * s1;   /* in [0, 1 + 2^64/q1) */
            int64_t adj = (int64_t)(fr + 0.5);
            o[j] = ip + (uint64_t)adj;
        }
    }
}

/* Compression of the returned b' values: x given by residues mod (q0, q1) -> the integer
 * round(x / 2^d) as lo/hi words (out[cnt][2][n]); and back: y 2^d -> residues. */
static void ezp_crt2_drop(const uint64_t *x, size_t cnt, size_t n, uint64_t q0, uint64_t q1,
                          uint64_t q0inv_mod_q1, int d, uint64_t *out) {
    uint64_t ivp = ezp_shoup_pre(q0inv_mod_q1, q1);
    for (size_t c = 0; c < cnt; c++) {
        const uint64_t *x0 = x + c * 2 * n, *x1 = x0 + n;
        uint64_t *lo = out + c * 2 * n, *hi = lo + n;
        for (size_t j = 0; j < n; j++) {
            uint64_t v0 = x0[j];
            uint64_t v1 = ezp_mul_shoup(ezp_sub_mod(x1[j], v0 % q1, q1), q0inv_mod_q1, ivp, q1);
            ezp_u128 v = (ezp_u128)v1 * q0 + v0;
            if (d > 0) v = (v + ((ezp_u128)1 << (d - 1))) >> d;
            lo[j] = (uint64_t)v;
            hi[j] = (uint64_t)(v >> 64);
        }
    }
}

static void ezp_crt2_expand(const uint64_t *y, size_t cnt, size_t n, uint64_t q0, uint64_t q1, int d,
                            uint64_t *out) {
    for (size_t c = 0; c < cnt; c++) {
        const uint64_t *lo = y + c * 2 * n, *hi = lo + n;
        uint64_t *o0 = out + c * 2 * n, *o1 = o0 + n;
        for (size_t j = 0; j < n; j++) {
            ezp_u128 v = (((ezp_u128)(hi[j] & 0xFFFFull) << 64) | lo[j]) << d;
            o0[j] = (uint64_t)(v % q0);
            o1[j] = (uint64_t)(v % q1);
        }
    }
}

/* Pack x[cnt][L][n] at widths w[l] (bits) into a little-endian bit stream. */
static void ezp_pack(const uint64_t *x, size_t cnt, size_t L, size_t n, const uint8_t *w, uint8_t *out,
                     size_t nbytes) {
    memset(out, 0, nbytes);
    size_t bit = 0;
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l < L; l++) {
            const uint64_t *src = x + (c * L + l) * n;
            unsigned wl = w[l];
            for (size_t j = 0; j < n; j++) {
                uint64_t v = src[j];
                unsigned done = 0;
                while (done < wl) {
                    size_t byte = bit >> 3;
                    unsigned off = bit & 7, take = 8 - off;
                    if (take > wl - done) take = wl - done;
                    out[byte] |= (uint8_t)(((v >> done) & ((1u << take) - 1)) << off);
                    done += take;
                    bit += take;
                }
            }
        }
}

/* Inverse of ezp_pack; returns 1 if some value is >= its prime (qs), else 0. */
static int ezp_unpack(const uint8_t *in, size_t cnt, size_t L, size_t n, const uint8_t *w,
                      const uint64_t *qs, uint64_t *x) {
    size_t bit = 0;
    int bad = 0;
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l < L; l++) {
            uint64_t *dst = x + (c * L + l) * n;
            unsigned wl = w[l];
            uint64_t q = qs[l];
            for (size_t j = 0; j < n; j++) {
                uint64_t v = 0;
                unsigned done = 0;
                while (done < wl) {
                    size_t byte = bit >> 3;
                    unsigned off = bit & 7, take = 8 - off;
                    if (take > wl - done) take = wl - done;
                    v |= (uint64_t)((in[byte] >> off) & ((1u << take) - 1)) << done;
                    done += take;
                    bit += take;
                }
                bad |= q != 0 && v >= q;
                dst[j] = v;
            }
        }
    return bad;
}

/* ==================================================================== AVX-512 IFMA
 * Shoup multiplication with 52-bit quotients (w' = floor(w 2^52 / q), q < 2^50):
 * qh = hi52(a w'), r = lo52(a w) - lo52(qh q) mod 2^52 in [0, 2q).  Butterfly stages with
 * a span >= 8 run 8 lanes at a time; the three stages with spans 1, 2, 4 stay scalar. */
#include <immintrin.h>

static int ezp_he_have_ifma = 0;

static inline void ezp_he_init(void) {
    const char *no = getenv("EZP_NO_AVX512");
    __builtin_cpu_init();
    ezp_he_have_ifma = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma")
                       && __builtin_cpu_supports("avx512dq") && !(no && no[0] && no[0] != '0');
}

#define EZP_IFMA __attribute__((target("avx512f,avx512dq,avx512ifma,avx512vl")))

EZP_IFMA static inline __m512i ezp_v_mul52(__m512i a, __m512i w, __m512i wp, __m512i q, __m512i m52) {
    __m512i z = _mm512_setzero_si512();
    __m512i qh = _mm512_madd52hi_epu64(z, a, wp);
    __m512i r = _mm512_sub_epi64(_mm512_madd52lo_epu64(z, a, w), _mm512_madd52lo_epu64(z, qh, q));
    r = _mm512_and_si512(r, m52);
    return _mm512_min_epu64(r, _mm512_sub_epi64(r, q));
}

EZP_IFMA static inline __m512i ezp_v_addm(__m512i a, __m512i b, __m512i q) {
    __m512i s = _mm512_add_epi64(a, b);
    return _mm512_min_epu64(s, _mm512_sub_epi64(s, q));
}

EZP_IFMA static inline __m512i ezp_v_subm(__m512i a, __m512i b, __m512i q) {
    __m512i d = _mm512_sub_epi64(a, b);
    return _mm512_min_epu64(d, _mm512_add_epi64(d, q));
}

/* The forward stages with spans 4, 2, 1 (they stay inside each block of 8 coefficients) on 16
 * coefficients A = a[16k .. 16k+8), B = a[16k+8 .. 16k+16) in registers: lanes are regrouped with
 * permutes so that every stage is one 8-lane butterfly (X + w Y, X - w Y). */
EZP_IFMA static inline void ezp__fwd_tail3_chunk(__m512i *pA, __m512i *pB, size_t k, size_t N, const uint64_t *psi,
                                                const uint64_t *psip52, __m512i vq, __m512i m52) {
    const __m512i i4 = _mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i i2 = _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i x4 = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0), y4 = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
    const __m512i x2 = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0), y2 = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    const __m512i x1 = _mm512_set_epi64(14, 6, 12, 4, 10, 2, 8, 0), y1 = _mm512_set_epi64(15, 7, 13, 5, 11, 3, 9, 1);
    const __m512i oa = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0), ob = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
    const uint64_t *w4 = psi + N / 8, *w4p = psip52 + N / 8, *w2 = psi + N / 4, *w2p = psip52 + N / 4;
    const uint64_t *w1 = psi + N / 2, *w1p = psip52 + N / 2;
    __m512i A = *pA, B = *pB;
    /* span 4: X = (A0..3, B0..3), Y = (A4..7, B4..7); twiddles of groups 2k, 2k+1 */
    __m512i X = _mm512_permutex2var_epi64(A, x4, B), Y = _mm512_permutex2var_epi64(A, y4, B);
    __m512i S = _mm512_permutexvar_epi64(i4, _mm512_loadu_si512(w4 + 2 * k));
    __m512i Sp = _mm512_permutexvar_epi64(i4, _mm512_loadu_si512(w4p + 2 * k));
    __m512i V = ezp_v_mul52(Y, S, Sp, vq, m52);
    __m512i X1 = ezp_v_addm(X, V, vq), Y1 = ezp_v_subm(X, V, vq);
    /* X1 = (A0 A1 A2 A3 B0 B1 B2 B3), Y1 = (A4 .. A7 B4 .. B7) after span 4;
     * span 2: X = (A0 A1 A4 A5 B0 B1 B4 B5), Y = (A2 A3 A6 A7 B2 B3 B6 B7); groups 4k .. 4k+3 */
    X = _mm512_permutex2var_epi64(X1, x2, Y1);
    Y = _mm512_permutex2var_epi64(X1, y2, Y1);
    S = _mm512_permutexvar_epi64(i2, _mm512_loadu_si512(w2 + 4 * k));
    Sp = _mm512_permutexvar_epi64(i2, _mm512_loadu_si512(w2p + 4 * k));
    V = ezp_v_mul52(Y, S, Sp, vq, m52);
    X1 = ezp_v_addm(X, V, vq);
    Y1 = ezp_v_subm(X, V, vq);
    /* span 1: X = (A0 A2 A4 A6 B0 B2 B4 B6), Y = the odd ones; groups 8k .. 8k+7 */
    X = _mm512_permutex2var_epi64(X1, x1, Y1);
    Y = _mm512_permutex2var_epi64(X1, y1, Y1);
    V = ezp_v_mul52(Y, _mm512_loadu_si512(w1 + 8 * k), _mm512_loadu_si512(w1p + 8 * k), vq, m52);
    X1 = ezp_v_addm(X, V, vq);
    Y1 = ezp_v_subm(X, V, vq);
    *pA = _mm512_permutex2var_epi64(X1, oa, Y1);
    *pB = _mm512_permutex2var_epi64(X1, ob, Y1);
}

EZP_IFMA static void ezp__fwd_tail3_ifma(uint64_t *a, size_t N, const uint64_t *psi, const uint64_t *psip52,
                                        __m512i vq, __m512i m52) {
    for (size_t k = 0; k < N / 16; k++) {
        __m512i A = _mm512_loadu_si512(a + 16 * k), B = _mm512_loadu_si512(a + 16 * k + 8);
        ezp__fwd_tail3_chunk(&A, &B, k, N, psi, psip52, vq, m52);
        _mm512_storeu_si512(a + 16 * k, A);
        _mm512_storeu_si512(a + 16 * k + 8, B);
    }
}

EZP_IFMA static inline void ezp__bfly(__m512i *x, __m512i *y, __m512i S, __m512i Sp, __m512i vq, __m512i m52) {
    __m512i V = ezp_v_mul52(*y, S, Sp, vq, m52);
    __m512i U = *x;
    *x = ezp_v_addm(U, V, vq);
    *y = ezp_v_subm(U, V, vq);
}

/* The forward NTT of an input supported on a[0 .. 64) (N >= 128): after the copy stages every block
 * of 64 starts from the same 64 values, so each block is transformed in eight registers from them
 * (spans 32, 16, 8, then 4, 2, 1 as above): no replication pass, one store per coefficient. */
EZP_IFMA static void ezp__ntt_fwd_sup64_ifma(uint64_t *a, size_t N, const uint64_t *psi, const uint64_t *psip52,
                                            __m512i vq, __m512i m52) {
    __m512i in[8];
    for (int r = 0; r < 8; r++) in[r] = _mm512_loadu_si512(a + 8 * r);
    for (size_t b = 0; b < N / 64; b++) {
        __m512i V[8];
        for (int r = 0; r < 8; r++) V[r] = in[r];
        __m512i S = _mm512_set1_epi64((long long)psi[N / 64 + b]), Sp = _mm512_set1_epi64((long long)psip52[N / 64 + b]);
        for (int r = 0; r < 4; r++) ezp__bfly(&V[r], &V[r + 4], S, Sp, vq, m52);
        for (int h = 0; h < 2; h++) {
            S = _mm512_set1_epi64((long long)psi[N / 32 + 2 * b + h]);
            Sp = _mm512_set1_epi64((long long)psip52[N / 32 + 2 * b + h]);
            ezp__bfly(&V[4 * h], &V[4 * h + 2], S, Sp, vq, m52);
            ezp__bfly(&V[4 * h + 1], &V[4 * h + 3], S, Sp, vq, m52);
        }
        for (int h = 0; h < 4; h++) {
            S = _mm512_set1_epi64((long long)psi[N / 16 + 4 * b + h]);
            Sp = _mm512_set1_epi64((long long)psip52[N / 16 + 4 * b + h]);
            ezp__bfly(&V[2 * h], &V[2 * h + 1], S, Sp, vq, m52);
        }
        for (int h = 0; h < 4; h++) ezp__fwd_tail3_chunk(&V[2 * h], &V[2 * h + 1], 4 * b + h, N, psi, psip52, vq, m52);
        for (int r = 0; r < 8; r++) _mm512_storeu_si512(a + 64 * b + 8 * r, V[r]);
    }
}

/* The inverse stages with spans 1, 2, 4, in registers as above (Gentleman-Sande: X + Y, w (X - Y)). */
EZP_IFMA static void ezp__inv_head3_ifma(uint64_t *a, size_t N, const uint64_t *ipsi, const uint64_t *ipsip52,
                                        __m512i vq, __m512i m52) {
    const __m512i i4 = _mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i i2 = _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i ev = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), od = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i x2 = _mm512_set_epi64(14, 6, 12, 4, 10, 2, 8, 0), y2 = _mm512_set_epi64(15, 7, 13, 5, 11, 3, 9, 1);
    const __m512i x4 = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0), y4 = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    const __m512i oa = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0), ob = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
    const uint64_t *w4 = ipsi + N / 8, *w4p = ipsip52 + N / 8, *w2 = ipsi + N / 4, *w2p = ipsip52 + N / 4;
    const uint64_t *w1 = ipsi + N / 2, *w1p = ipsip52 + N / 2;
    for (size_t k = 0; k < N / 16; k++) {
        __m512i A = _mm512_loadu_si512(a + 16 * k), B = _mm512_loadu_si512(a + 16 * k + 8);
        /* span 1: X = even (A0 A2 A4 A6 B0 B2 B4 B6), Y = odd; groups 8k .. 8k+7 */
        __m512i X = _mm512_permutex2var_epi64(A, ev, B), Y = _mm512_permutex2var_epi64(A, od, B);
        __m512i X1 = ezp_v_addm(X, Y, vq);
        __m512i Y1 = ezp_v_mul52(ezp_v_subm(X, Y, vq), _mm512_loadu_si512(w1 + 8 * k),
                                 _mm512_loadu_si512(w1p + 8 * k), vq, m52);
        /* X1 = (A0 A2 A4 A6 B0 B2 B4 B6), Y1 = (A1 A3 A5 A7 B1 B3 B5 B7);
         * span 2: X = (A0 A1 A4 A5 B0 B1 B4 B5), Y = (A2 A3 A6 A7 B2 B3 B6 B7); groups 4k .. 4k+3 */
        X = _mm512_permutex2var_epi64(X1, x2, Y1);
        Y = _mm512_permutex2var_epi64(X1, y2, Y1);
        __m512i S = _mm512_permutexvar_epi64(i2, _mm512_loadu_si512(w2 + 4 * k));
        __m512i Sp = _mm512_permutexvar_epi64(i2, _mm512_loadu_si512(w2p + 4 * k));
        X1 = ezp_v_addm(X, Y, vq);
        Y1 = ezp_v_mul52(ezp_v_subm(X, Y, vq), S, Sp, vq, m52);
        /* span 4: X = (A0 A1 A2 A3 B0 B1 B2 B3), Y = (A4 .. A7 B4 .. B7); groups 2k, 2k+1 */
        X = _mm512_permutex2var_epi64(X1, x4, Y1);
        Y = _mm512_permutex2var_epi64(X1, y4, Y1);
        S = _mm512_permutexvar_epi64(i4, _mm512_loadu_si512(w4 + 2 * k));
        Sp = _mm512_permutexvar_epi64(i4, _mm512_loadu_si512(w4p + 2 * k));
        X1 = ezp_v_addm(X, Y, vq);
        Y1 = ezp_v_mul52(ezp_v_subm(X, Y, vq), S, Sp, vq, m52);
        _mm512_storeu_si512(a + 16 * k, _mm512_permutex2var_epi64(X1, oa, Y1));
        _mm512_storeu_si512(a + 16 * k + 8, _mm512_permutex2var_epi64(X1, ob, Y1));
    }
}

/* The forward NTT of a[0 .. p) (p a power of two; a[p .. N) is zero or anything: overwritten) */
EZP_IFMA static void ezp_ntt_fwd_ifma_from(uint64_t *a, size_t N, uint64_t q, const uint64_t *psi,
                                           const uint64_t *psip, const uint64_t *psip52, size_t p) {
    __m512i vq = _mm512_set1_epi64((long long)q), m52 = _mm512_set1_epi64((1LL << 52) - 1);
    if (p <= 64 && N >= 128) {                   /* a short support (plaintext encodings) */
        if (p < 64) memset(a + p, 0, (64 - p) * sizeof(uint64_t));
        ezp__ntt_fwd_sup64_ifma(a, N, psi, psip52, vq, m52);
        return;
    }
    if (p < N)
        for (size_t b = p; b < N; b += p) memcpy(a + b, a, p * sizeof(uint64_t));
    size_t t = N, m = 1;
    while (t > p) { t >>= 1; m <<= 1; }          /* the first stage to run has span t / 2 */
    for (; m < N; m <<= 1) {
        t >>= 1;
        if (t < 8) break;
        for (size_t i = 0; i < m; i++) {
            __m512i S = _mm512_set1_epi64((long long)psi[m + i]), Sp = _mm512_set1_epi64((long long)psip52[m + i]);
            uint64_t *x = a + 2 * i * t, *y = x + t;
            for (size_t j = 0; j < t; j += 8) {
                __m512i U = _mm512_loadu_si512(x + j);
                __m512i V = ezp_v_mul52(_mm512_loadu_si512(y + j), S, Sp, vq, m52);
                _mm512_storeu_si512(x + j, ezp_v_addm(U, V, vq));
                _mm512_storeu_si512(y + j, ezp_v_subm(U, V, vq));
            }
        }
    }
    if (N >= 16 && t == 4) {                     /* spans 4, 2, 1 in registers */
        ezp__fwd_tail3_ifma(a, N, psi, psip52, vq, m52);
        return;
    }
    for (; m < N; m <<= 1) {                     /* remaining spans < 8: scalar */
        for (size_t i = 0; i < m; i++) {
            uint64_t S = psi[m + i], Sp = psip[m + i];
            uint64_t *x = a + 2 * i * t, *y = x + t;
            for (size_t j = 0; j < t; j++) {
                uint64_t U = x[j], V = ezp_mul_shoup(y[j], S, Sp, q);
                x[j] = ezp_add_mod(U, V, q);
                y[j] = ezp_sub_mod(U, V, q);
            }
        }
        t >>= 1;
    }
}

EZP_IFMA static void ezp_ntt_fwd_ifma(uint64_t *a, size_t N, uint64_t q, const uint64_t *psi, const uint64_t *psip,
                                      const uint64_t *psip52) {
    ezp_ntt_fwd_ifma_from(a, N, q, psi, psip, psip52, ezp__ntt_support(a, N));   /* spans >= p: copies */
}

EZP_IFMA static void ezp_ntt_inv_ifma(uint64_t *a, size_t N, uint64_t q, const uint64_t *ipsi, const uint64_t *ipsip,
                                      const uint64_t *ipsip52, uint64_t ninv, uint64_t ninvp, uint64_t ninvp52) {
    __m512i vq = _mm512_set1_epi64((long long)q), m52 = _mm512_set1_epi64((1LL << 52) - 1);
    size_t t = 1, m0 = N;
    if (N >= 16) {                               /* spans 1, 2, 4 in registers */
        ezp__inv_head3_ifma(a, N, ipsi, ipsip52, vq, m52);
        t = 8;
        m0 = N / 8;
    }
    for (size_t m = m0; m > 1; m >>= 1) {
        size_t h = m >> 1, j1 = 0;
        if (t < 8) {
            ezp__inv_stage(a, h, t, q, ipsi, ipsip);
        } else {
            for (size_t i = 0; i < h; i++) {
                __m512i S = _mm512_set1_epi64((long long)ipsi[h + i]);
                __m512i Sp = _mm512_set1_epi64((long long)ipsip52[h + i]);
                uint64_t *x = a + j1, *y = a + j1 + t;
                for (size_t j = 0; j < t; j += 8) {
                    __m512i U = _mm512_loadu_si512(x + j), V = _mm512_loadu_si512(y + j);
                    __m512i s1 = _mm512_add_epi64(U, V);
                    __m512i d1 = _mm512_sub_epi64(U, V);
                    d1 = _mm512_min_epu64(d1, _mm512_add_epi64(d1, vq));
                    _mm512_storeu_si512(x + j, _mm512_min_epu64(s1, _mm512_sub_epi64(s1, vq)));
                    _mm512_storeu_si512(y + j, ezp_v_mul52(d1, S, Sp, vq, m52));
                }
                j1 += 2 * t;
            }
        }
        t <<= 1;
    }
    __m512i W = _mm512_set1_epi64((long long)ninv), Wp = _mm512_set1_epi64((long long)ninvp52);
    size_t j = 0;
    for (; j + 8 <= N; j += 8)
        _mm512_storeu_si512(a + j, ezp_v_mul52(_mm512_loadu_si512(a + j), W, Wp, vq, m52));
    for (; j < N; j++) a[j] = ezp_mul_shoup(a[j], ninv, ninvp, q);
}

/* out += a (.) w, floating-point quotient (see ezp_mul_fp), 8 lanes */
EZP_IFMA static void ezp_mul_acc_fp_v(uint64_t *out, const uint64_t *a, const uint64_t *w, size_t n, uint64_t q) {
    __m512i vq = _mm512_set1_epi64((long long)q), z = _mm512_setzero_si512();
    __m512d qi = _mm512_set1_pd(1.0 / (double)q);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m512i A = _mm512_loadu_si512(a + j), B = _mm512_loadu_si512(w + j);
        __m512d p = _mm512_mul_pd(_mm512_mul_pd(_mm512_cvtepu64_pd(A), _mm512_cvtepu64_pd(B)), qi);
        __m512i qh = _mm512_cvttpd_epu64(p);
        __m512i r = _mm512_sub_epi64(_mm512_mullo_epi64(A, B), _mm512_mullo_epi64(qh, vq));
        /* r in [-q, 2q): bring to [0, q) */
        r = _mm512_mask_add_epi64(r, _mm512_cmplt_epi64_mask(r, z), r, vq);
        r = _mm512_min_epu64(r, _mm512_sub_epi64(r, vq));
        __m512i o = _mm512_add_epi64(_mm512_loadu_si512(out + j), r);
        _mm512_storeu_si512(out + j, _mm512_min_epu64(o, _mm512_sub_epi64(o, vq)));
    }
    double qinv = 1.0 / (double)q;
    for (; j < n; j++) out[j] = ezp_add_mod(out[j], ezp_mul_fp(a[j], w[j], q, qinv), q);
}

/* ==================================================================== output packing (PackLWEs)
 * Coefficient-form RNS polynomials x[cnt][L][N]. */

static inline uint64_t ezp_neg_mod(uint64_t a, uint64_t q) { return a ? q - a : 0; }

/* x <- X^e x in Z_q[X]/(X^N + 1), 0 <= e < 2N (out != x) */
static void ezp_monomial(const uint64_t *x, size_t cnt, size_t L, size_t N, const uint64_t *qs, size_t e,
                         uint64_t *out) {
    int flip = e >= N;
    size_t s = e % N;
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l < L; l++) {
            uint64_t q = qs[l];
            const uint64_t *src = x + (c * L + l) * N;
            uint64_t *dst = out + (c * L + l) * N;
            for (size_t j = 0; j < N; j++) {
                size_t k = j + s;
                uint64_t v = src[j];
                int neg = flip;
                if (k >= N) { k -= N; neg = !neg; }
                dst[k] = neg ? ezp_neg_mod(v, q) : v;
            }
        }
}

/* One PackLWEs merge before key switching, for pairs of ciphertext rows (E, O):
 * sm = E + X^D O and t = tau_g(E - X^D O) (tau_g: X -> X^g, g odd), 0 <= D < N. */
static void ezp_pack_pre(const uint64_t *E, const uint64_t *O, size_t cnt, size_t L, size_t N,
                         const uint64_t *qs, size_t D, uint64_t g, uint64_t *sm, uint64_t *t) {
    uint64_t N2 = 2 * (uint64_t)N;
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l < L; l++) {
            uint64_t q = qs[l];
            size_t off = (c * L + l) * N;
            const uint64_t *e = E + off, *o = O + off;
            uint64_t *s = sm + off, *tt = t + off;
            uint64_t d = 0;                               /* g j mod 2N */
            for (size_t j = 0; j < N; j++) {
                uint64_t xo = j >= D ? o[j - D] : ezp_neg_mod(o[j + N - D], q);
                s[j] = ezp_add_mod(e[j], xo, q);
                uint64_t df = ezp_sub_mod(e[j], xo, q);
                if (d < N) tt[d] = df; else tt[d - N] = ezp_neg_mod(df, q);
                d += g;                                   /* g < 2N: one subtraction */
                if (d >= N2) d -= N2;
            }
        }
}

/* RNS digits for key switching: out[c][i][l][j] = [a[c][i][j]]_{q_i} (centred) mod q_l */
static void ezp_rns_digits(const uint64_t *a, size_t cnt, size_t L, size_t N, const uint64_t *qs, uint64_t *out) {
    for (size_t c = 0; c < cnt; c++)
        for (size_t i = 0; i < L; i++) {
            uint64_t qi = qs[i], half = qi >> 1;
            const uint64_t *src = a + (c * L + i) * N;
            for (size_t l = 0; l < L; l++) {
                uint64_t q = qs[l];
                uint64_t *dst = out + ((c * L + i) * L + l) * N;
                if (l == i) { memcpy(dst, src, N * sizeof(uint64_t)); continue; }
                uint64_t qim = qi % q;
                for (size_t j = 0; j < N; j++) {
                    uint64_t v = src[j];
                    uint64_t r = v % q;
                    dst[j] = v > half ? ezp_sub_mod(r, qim, q) : r;
                }
            }
        }
}

/* Grouped RNS digits for hybrid key switching: a[cnt][L][N] residues; group g covers the primes
 * grp[3g] and grp[3g+1] (grp[3g+1] == grp[3g] for a single prime), grp[3g+2] = q_i^{-1} mod q_k
 * of the pair.  out[c][g][l][j] = the centred residue of a modulo the group's product, reduced
 * modulo each of the Lout primes qs[0 .. Lout-1] (the first L of them are the residue primes). */
static void ezp_group_digits(const uint64_t *a, size_t cnt, size_t L, size_t N, const uint64_t *qs, size_t Lout,
                             const uint64_t *grp, size_t G, uint64_t *out) {
    for (size_t c = 0; c < cnt; c++)
        for (size_t g = 0; g < G; g++) {
            size_t i = (size_t)grp[3 * g], k = (size_t)grp[3 * g + 1];
            const uint64_t *ra = a + (c * L + i) * N;
            uint64_t *base = out + (c * G + g) * Lout * N;
            if (i == k) {
                uint64_t qi = qs[i], half = qi >> 1;
                for (size_t l = 0; l < Lout; l++) {
                    uint64_t q = qs[l];
                    uint64_t *dst = base + l * N;
                    if (l == i) { memcpy(dst, ra, N * sizeof(uint64_t)); continue; }
                    uint64_t qim = qi % q;
                    for (size_t j = 0; j < N; j++) {
                        uint64_t v = ra[j];
                        uint64_t r = v % q;
                        dst[j] = v > half ? ezp_sub_mod(r, qim, q) : r;
                    }
                }
                continue;
            }
            const uint64_t *rb = a + (c * L + k) * N;
            uint64_t qa = qs[i], qb = qs[k], iv = grp[3 * g + 2], ivp = ezp_shoup_pre(iv, qb);
            ezp_u128 Q = (ezp_u128)qa * qb, half = Q >> 1;
            /* t = (rb - ra) qa^{-1} mod qb, x = ra + qa t in [0, Q); centred: x - Q when x > Q/2 */
            uint64_t *tt = base + i * N;           /* scratch: t, then overwritten below */
            for (size_t j = 0; j < N; j++) {
                uint64_t t = ezp_mul_shoup(ezp_sub_mod(rb[j], ra[j] % qb, qb), iv, ivp, qb);
                tt[j] = t;
            }
            for (size_t l = 0; l < Lout; l++) {
                if (l == i) continue;
                uint64_t q = qs[l];
                uint64_t *dst = base + l * N;
                uint64_t qam = qa % q, qamp = ezp_shoup_pre(qam, q), Qm = (uint64_t)(Q % q);
                for (size_t j = 0; j < N; j++) {
                    uint64_t t = tt[j];
                    ezp_u128 x = (ezp_u128)ra[j] + (ezp_u128)qa * t;
                    uint64_t r = l == k ? rb[j] : ezp_add_mod(ra[j] % q, ezp_mul_shoup(t, qam, qamp, q), q);
                    dst[j] = x > half ? ezp_sub_mod(r, Qm, q) : r;
                }
            }
            /* row i last: x mod qa = ra, minus Q mod qa = 0 */
            for (size_t j = 0; j < N; j++) tt[j] = ra[j];
        }
}

/* x[c][l][j] += y[c][l][j] mod q_l */
static void ezp_add_rows(uint64_t *x, const uint64_t *y, size_t cnt, size_t L, size_t N, const uint64_t *qs) {
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l < L; l++) {
            uint64_t q = qs[l];
            uint64_t *d = x + (c * L + l) * N;
            const uint64_t *s = y + (c * L + l) * N;
            for (size_t j = 0; j < N; j++) d[j] = ezp_add_mod(d[j], s[j], q);
        }
}

/* ==================================================================== hybrid key switching (IFMA)
 * Vector helpers for q < 2^50 and inputs < 2^52: ezp_v_red(v) = v mod q by a Shoup product with 1
 * (bq = floor(2^52 / q)); centred residues compare with the half modulus. */

EZP_IFMA static inline __m512i ezp_v_red(__m512i v, __m512i one, __m512i bq, __m512i q, __m512i m52) {
    return ezp_v_mul52(v, one, bq, q, m52);
}

static inline uint64_t ezp_shoup52(uint64_t w, uint64_t q) {
    return (uint64_t)(((ezp_u128)w << 52) / q);
}

/* dst[j] = (src[j] - [top[j]]_qt) qt^{-1} mod q (one row of ezp_rescale), n % 8 == 0 */
EZP_IFMA static void ezp_rescale_row_ifma(uint64_t *dst, const uint64_t *src, const uint64_t *top, size_t n,
                                         uint64_t q, uint64_t qt, uint64_t iv) {
    __m512i vq = _mm512_set1_epi64((long long)q), m52 = _mm512_set1_epi64((1LL << 52) - 1);
    __m512i one = _mm512_set1_epi64(1), bq = _mm512_set1_epi64((long long)ezp_shoup52(1, q));
    __m512i half = _mm512_set1_epi64((long long)(qt >> 1)), qtm = _mm512_set1_epi64((long long)(qt % q));
    __m512i w = _mm512_set1_epi64((long long)iv), wp = _mm512_set1_epi64((long long)ezp_shoup52(iv, q));
    for (size_t j = 0; j < n; j += 8) {
        __m512i r = _mm512_loadu_si512(top + j);
        __m512i rm = ezp_v_red(r, one, bq, vq, m52);
        __mmask8 hi = _mm512_cmpgt_epu64_mask(r, half);
        rm = _mm512_mask_mov_epi64(rm, hi, ezp_v_subm(rm, qtm, vq));
        __m512i x = ezp_v_subm(_mm512_loadu_si512(src + j), rm, vq);
        _mm512_storeu_si512(dst + j, ezp_v_mul52(x, w, wp, vq, m52));
    }
}

/* ezp_rescale with the rows above (n % 8 == 0) */
EZP_IFMA static void ezp_rescale_ifma(const uint64_t *x, size_t cnt, size_t L, size_t n, const uint64_t *qs,
                                     const uint64_t *qinv, uint64_t *out) {
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l + 1 < L; l++)
            ezp_rescale_row_ifma(out + (c * (L - 1) + l) * n, x + (c * L + l) * n, x + (c * L + L - 1) * n, n,
                                 qs[l], qs[L - 1], qinv[l]);
}

/* out += d (.) k mod q with 52-bit Shoup quotients kp of the fixed operand k */
EZP_IFMA static void ezp_mac52(uint64_t *out, const uint64_t *d, const uint64_t *k, const uint64_t *kp, size_t n,
                              uint64_t q) {
    __m512i vq = _mm512_set1_epi64((long long)q), m52 = _mm512_set1_epi64((1LL << 52) - 1);
    for (size_t j = 0; j < n; j += 8) {
        __m512i p = ezp_v_mul52(_mm512_loadu_si512(d + j), _mm512_loadu_si512(k + j), _mm512_loadu_si512(kp + j),
                                vq, m52);
        _mm512_storeu_si512(out + j, ezp_v_addm(_mm512_loadu_si512(out + j), p, vq));
    }
}

/* Digit g of a[L][N] at prime q (ezp_group_digits' values, one output row), n % 8 == 0.
 * Single prime i: the centred residue of a_i.  Pair (i, k): x = ra + qa t with t = (rb - ra)
 * qa^{-1} mod qb (tt, precomputed), centred: x - Q when x > floor(Q/2), i.e. when t > tH or
 * (t == tH and ra > rH) with floor(Q/2) = qa tH + rH. */
EZP_IFMA static void ezp_digit_row_ifma(uint64_t *dst, const uint64_t *a, size_t N, const uint64_t *qs,
                                       size_t i, size_t k, uint64_t iv, const uint64_t *tt, size_t l) {
    uint64_t q = qs[l];
    if (l == i) { memcpy(dst, a + i * N, N * sizeof(uint64_t)); return; }
    if (l == k) { memcpy(dst, a + k * N, N * sizeof(uint64_t)); return; }
    const uint64_t *ra = a + i * N;
    __m512i vq = _mm512_set1_epi64((long long)q), m52 = _mm512_set1_epi64((1LL << 52) - 1);
    __m512i one = _mm512_set1_epi64(1), bq = _mm512_set1_epi64((long long)ezp_shoup52(1, q));
    uint64_t qa = qs[i];
    if (i == k) {
        __m512i half = _mm512_set1_epi64((long long)(qa >> 1)), qam = _mm512_set1_epi64((long long)(qa % q));
        for (size_t j = 0; j < N; j += 8) {
            __m512i v = _mm512_loadu_si512(ra + j);
            __m512i r = ezp_v_red(v, one, bq, vq, m52);
            __mmask8 hi = _mm512_cmpgt_epu64_mask(v, half);
            _mm512_storeu_si512(dst + j, _mm512_mask_mov_epi64(r, hi, ezp_v_subm(r, qam, vq)));
        }
        return;
    }
    (void)iv;
    uint64_t qb = qs[k];
    ezp_u128 Q = (ezp_u128)qa * qb, H = Q >> 1;
    uint64_t tH = (uint64_t)(H / qa), rH = (uint64_t)(H % qa);
    __m512i vtH = _mm512_set1_epi64((long long)tH), vrH = _mm512_set1_epi64((long long)rH);
    uint64_t qam = qa % q;
    __m512i w = _mm512_set1_epi64((long long)qam), wp = _mm512_set1_epi64((long long)ezp_shoup52(qam, q));
    __m512i Qm = _mm512_set1_epi64((long long)(uint64_t)(Q % q));
    for (size_t j = 0; j < N; j += 8) {
        __m512i t = _mm512_loadu_si512(tt + j), v = _mm512_loadu_si512(ra + j);
        __m512i r = ezp_v_addm(ezp_v_red(v, one, bq, vq, m52), ezp_v_mul52(t, w, wp, vq, m52), vq);
        __mmask8 hi = _mm512_cmpgt_epu64_mask(t, vtH)
                      | (_mm512_cmpeq_epu64_mask(t, vtH) & _mm512_cmpgt_epu64_mask(v, vrH));
        _mm512_storeu_si512(dst + j, _mm512_mask_mov_epi64(r, hi, ezp_v_subm(r, Qm, vq)));
    }
}

/* tt[j] = (rb[j] - ra[j] mod qb) iv mod qb */
EZP_IFMA static void ezp_crt_t_ifma(uint64_t *tt, const uint64_t *ra, const uint64_t *rb, size_t N, uint64_t qb,
                                   uint64_t iv) {
    __m512i vq = _mm512_set1_epi64((long long)qb), m52 = _mm512_set1_epi64((1LL << 52) - 1);
    __m512i one = _mm512_set1_epi64(1), bq = _mm512_set1_epi64((long long)ezp_shoup52(1, qb));
    __m512i w = _mm512_set1_epi64((long long)iv), wp = _mm512_set1_epi64((long long)ezp_shoup52(iv, qb));
    for (size_t j = 0; j < N; j += 8) {
        __m512i d = ezp_v_subm(_mm512_loadu_si512(rb + j), ezp_v_red(_mm512_loadu_si512(ra + j), one, bq, vq, m52), vq);
        _mm512_storeu_si512(tt + j, ezp_v_mul52(d, w, wp, vq, m52));
    }
}

/* Hybrid key switching, fused (ezprotocols.arith.he._key_switch): for each of cnt ciphertexts
 * t[c] = (b, a) at L primes (coefficient form, [cnt][2][L][N]), the digits of a (groups grp as in
 * ezp_group_digits) at the Lk primes of the key, their NTTs, the products with the key (kb, ka
 * [G][Lk][N], NTT, with 52-bit Shoup quotients), the inverse NTTs, the division by the special
 * modulus (primes Lk-1 .. L dropped one by one with rounding, as ezp_rescale), then
 * out[c] = (b + kb', ka').  Row by row, so the working set is 2 Lk + 2 rows.
 * scratch: (2 Lk + 2) N words.  N % 16 == 0, primes < 2^50. */
typedef struct {
    const uint64_t *psi, *psip, *psip52, *ipsi, *ipsip, *ipsip52, *ninv, *ninvp, *ninvp52;   /* [Lk][N], [Lk] */
} ezp_ntt_tabs;

EZP_IFMA static void ezp_automorph_row_ifma(uint64_t *dst, const uint64_t *src, size_t N, uint64_t q, uint64_t ginv);

EZP_IFMA static void ezp_key_switch_ifma(const uint64_t *t, size_t cnt, size_t L, size_t Lk, size_t N,
                                        const uint64_t *qs, const uint64_t *grp, size_t G,
                                        const uint64_t *kb, const uint64_t *kbp, const uint64_t *ka,
                                        const uint64_t *kap, ezp_ntt_tabs tb, const uint64_t *qinv,
                                        uint64_t ginv, uint64_t *scratch, uint64_t *out) {
    /* ginv != 1: the input is first mapped by tau_g (g = ginv^{-1} mod 2N); out may be t */
    uint64_t *accb = scratch, *acca = scratch + Lk * N, *d = scratch + 2 * Lk * N, *tt = d + N, *tw = tt + N;
    for (size_t c = 0; c < cnt; c++) {
        const uint64_t *b_in = t + (c * 2) * L * N, *a_in = t + (c * 2 + 1) * L * N;
        if (ginv != 1) {
            for (size_t l = 0; l < 2 * L; l++)
                ezp_automorph_row_ifma(tw + l * N, b_in + l * N, N, qs[l % L], ginv);
            b_in = tw;
            a_in = tw + L * N;
        }
        memset(accb, 0, 2 * Lk * N * sizeof(uint64_t));
        for (size_t g = 0; g < G; g++) {
            size_t i = (size_t)grp[3 * g], k = (size_t)grp[3 * g + 1];
            if (i != k) ezp_crt_t_ifma(tt, a_in + i * N, a_in + k * N, N, qs[k], grp[3 * g + 2]);
            for (size_t l = 0; l < Lk; l++) {
                ezp_digit_row_ifma(d, a_in, N, qs, i, k, grp[3 * g + 2], tt, l);
                ezp_ntt_fwd_ifma(d, N, qs[l], tb.psi + l * N, tb.psip + l * N, tb.psip52 + l * N);
                size_t ko = (g * Lk + l) * N;
                ezp_mac52(accb + l * N, d, kb + ko, kbp + ko, N, qs[l]);
                ezp_mac52(acca + l * N, d, ka + ko, kap + ko, N, qs[l]);
            }
        }
        for (size_t h = 0; h < 2; h++) {
            uint64_t *x = h ? acca : accb;
            for (size_t l = 0; l < Lk; l++)
                ezp_ntt_inv_ifma(x + l * N, N, qs[l], tb.ipsi + l * N, tb.ipsip + l * N, tb.ipsip52 + l * N,
                                 tb.ninv[l], tb.ninvp[l], tb.ninvp52[l]);
            /* drop primes Lk-1 .. L in order; qinv[(Lk-1-top) Lk + l] = q_top^{-1} mod q_l */
            for (size_t top = Lk - 1; top >= L; top--)
                for (size_t l = 0; l < top; l++)
                    ezp_rescale_row_ifma(x + l * N, x + l * N, x + top * N, N, qs[l], qs[top],
                                         qinv[(Lk - 1 - top) * Lk + l]);
            uint64_t *o = out + (c * 2 + h) * L * N;
            if (h == 0) {
                __m512i z;
                for (size_t l = 0; l < L; l++) {
                    __m512i vq = _mm512_set1_epi64((long long)qs[l]);
                    for (size_t j = 0; j < N; j += 8) {
                        z = ezp_v_addm(_mm512_loadu_si512(b_in + l * N + j), _mm512_loadu_si512(x + l * N + j), vq);
                        _mm512_storeu_si512(o + l * N + j, z);
                    }
                }
            } else {
                memcpy(o, x, L * N * sizeof(uint64_t));
            }
        }
    }
}

/* The packed product's members (ezprotocols.arith.he._packed_gen): for each i of cnt, the sums
 * acc_b = sum_p cb[i][kidx[p]] (.) NTT(w[p]), acc_a likewise (NTT; floating-point quotients as
 * ezp_mul_acc_fp_v; the plaintexts w int64[nP][N] are encoded one row at a time, as
 * ezp_encode_ntt_ifma, and used while in cache), their inverse NTTs, the drops of primes
 * L-1 .. Lp (with rounding, as ezp_rescale; qinv[(L-1-top) L + l] = q_top^{-1} mod q_l) and the
 * product with X^e: out[i] = X^e (acc_b, acc_a) at Lp primes ([cnt][2][Lp][N], coefficient form).
 * cb, ca: [cnt][nK][L][N]; scratch: (2 cnt L + 1) N words. */
EZP_IFMA static void ezp_ntt_fwd_ifma_from(uint64_t *a, size_t N, uint64_t q, const uint64_t *psi,
                                           const uint64_t *psip, const uint64_t *psip52, size_t p);

EZP_IFMA static void ezp_members_ifma(const uint64_t *cb, const uint64_t *ca, size_t cnt, size_t nK, size_t L,
                                     size_t Lp, size_t N, const int64_t *w, const int64_t *kidx, size_t nP,
                                     const uint64_t *qs, ezp_ntt_tabs tb, const uint64_t *qinv, size_t e,
                                     uint64_t *scratch, uint64_t *out) {
    uint64_t *acc = scratch, *row = scratch + 2 * cnt * L * N;
    memset(acc, 0, 2 * cnt * L * N * sizeof(uint64_t));
    for (size_t p = 0; p < nP; p++) {
        const int64_t *src = w + p * N;
        size_t hi = N, sup = 1, k = (size_t)kidx[p];
        while (hi > 0 && src[hi - 1] == 0) hi--;
        while (sup < hi) sup <<= 1;
        for (size_t l = 0; l < L; l++) {
            uint64_t q = qs[l];
            for (size_t j = 0; j < sup; j++) row[j] = ezp_reduce_signed(src[j], q);
            ezp_ntt_fwd_ifma_from(row, N, q, tb.psi + l * N, tb.psip + l * N, tb.psip52 + l * N, sup);
            for (size_t i = 0; i < cnt; i++)
                for (size_t h = 0; h < 2; h++)
                    ezp_mul_acc_fp_v(acc + ((i * 2 + h) * L + l) * N, (h ? ca : cb) + ((i * nK + k) * L + l) * N,
                                     row, N, q);
        }
    }
    for (size_t i = 0; i < cnt; i++)
        for (size_t h = 0; h < 2; h++) {
            uint64_t *x = acc + (i * 2 + h) * L * N;
            for (size_t l = 0; l < L; l++)
                ezp_ntt_inv_ifma(x + l * N, N, qs[l], tb.ipsi + l * N, tb.ipsip + l * N, tb.ipsip52 + l * N,
                                 tb.ninv[l], tb.ninvp[l], tb.ninvp52[l]);
            for (size_t top = L - 1; top >= Lp; top--)
                for (size_t l = 0; l < top; l++)
                    ezp_rescale_row_ifma(x + l * N, x + l * N, x + top * N, N, qs[l], qs[top],
                                         qinv[(L - 1 - top) * L + l]);
            for (size_t l = 0; l < Lp; l++)
                ezp_monomial(x + l * N, 1, 1, N, qs + l, e, out + ((i * 2 + h) * Lp + l) * N);
        }
}

/* Plaintext encoding: signed w[cnt][N] (|w| < every q) -> NTT residues out[cnt][L][N], converting
 * only the support (the power of two p above the last non-zero coefficient: the forward transform's
 * first stages copy, ezp__ntt_fwd_sparse). */
EZP_IFMA static void ezp_encode_ntt_ifma(const int64_t *w, size_t cnt, size_t N, size_t L, const uint64_t *qs,
                                        ezp_ntt_tabs tb, uint64_t *out) {
    for (size_t c = 0; c < cnt; c++) {
        const int64_t *src = w + c * N;
        size_t hi = N;
        while (hi > 0 && src[hi - 1] == 0) hi--;
        size_t p = 1;
        while (p < hi) p <<= 1;
        for (size_t l = 0; l < L; l++) {
            uint64_t q = qs[l], *dst = out + (c * L + l) * N;
            for (size_t j = 0; j < p; j++) dst[j] = ezp_reduce_signed(src[j], q);
            ezp_ntt_fwd_ifma_from(dst, N, q, tb.psi + l * N, tb.psip + l * N, tb.psip52 + l * N, p);
        }
    }
}

/* tau_g of one row: dst[d] = +-src[i] with g i = d mod 2N, i.e. i = ginv d mod 2N (minus when
 * that is >= N); a gather per 8 outputs (N a power of two, N % 8 == 0, dst != src). */
EZP_IFMA static void ezp_automorph_row_ifma(uint64_t *dst, const uint64_t *src, size_t N, uint64_t q, uint64_t ginv) {
    __m512i vq = _mm512_set1_epi64((long long)q), z = _mm512_setzero_si512();
    __m512i m2 = _mm512_set1_epi64((long long)(2 * N - 1)), vN = _mm512_set1_epi64((long long)N);
    __m512i mN = _mm512_set1_epi64((long long)(N - 1)), gi = _mm512_set1_epi64((long long)ginv);
    __m512i d = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), step = _mm512_set1_epi64(8);
    for (size_t j = 0; j < N; j += 8) {
        __m512i i = _mm512_and_si512(_mm512_mullo_epi64(d, gi), m2);
        __mmask8 neg = _mm512_cmpge_epu64_mask(i, vN);
        __m512i v = _mm512_i64gather_epi64(_mm512_and_si512(i, mN), (const void *)src, 8);
        neg &= _mm512_cmpneq_epu64_mask(v, z);
        _mm512_storeu_si512(dst + j, _mm512_mask_sub_epi64(v, neg, vq, v));
        d = _mm512_add_epi64(d, step);
    }
}

/* ezp_pack_pre in place: E <- E + X^D O, O <- tau_g(E - X^D O) (ginv = g^{-1} mod 2N), row by row
 * through one scratch row; bit for bit ezp_pack_pre. */
EZP_IFMA static void ezp_pack_pre_inplace_ifma(uint64_t *E, uint64_t *O, size_t cnt, size_t L, size_t N,
                                              const uint64_t *qs, size_t D, uint64_t ginv, uint64_t *scratch) {
    __m512i z = _mm512_setzero_si512();
    __m512i m2 = _mm512_set1_epi64((long long)(2 * N - 1)), vN = _mm512_set1_epi64((long long)N);
    __m512i mN = _mm512_set1_epi64((long long)(N - 1)), gi = _mm512_set1_epi64((long long)ginv);
    __m512i vD = _mm512_set1_epi64((long long)D), step = _mm512_set1_epi64(8);
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l < L; l++) {
            uint64_t q = qs[l];
            __m512i vq = _mm512_set1_epi64((long long)q);
            size_t off = (c * L + l) * N;
            uint64_t *e = E + off, *o = O + off, *tt = scratch;
            /* tt[d] = +-(e[i] - xo[i]), i = ginv d mod 2N (mod N), xo[i] = o[i - D] or -o[i + N - D] */
            __m512i d = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
            for (size_t j = 0; j < N; j += 8) {
                __m512i i = _mm512_and_si512(_mm512_mullo_epi64(d, gi), m2);
                __mmask8 neg = _mm512_cmpge_epu64_mask(i, vN);
                i = _mm512_and_si512(i, mN);
                __mmask8 wrap = _mm512_cmplt_epu64_mask(i, vD);
                __m512i io = _mm512_and_si512(_mm512_sub_epi64(i, vD), mN);
                __m512i ev = _mm512_i64gather_epi64(i, (const void *)e, 8);
                __m512i ov = _mm512_i64gather_epi64(io, (const void *)o, 8);
                /* df = e - xo: e - o, or e + o where wrapped (xo = -o) */
                __m512i df = _mm512_mask_mov_epi64(ezp_v_subm(ev, ov, vq), wrap, ezp_v_addm(ev, ov, vq));
                __mmask8 nz = _mm512_cmpneq_epu64_mask(df, z);
                _mm512_storeu_si512(tt + j, _mm512_mask_sub_epi64(df, neg & nz, vq, df));
                d = _mm512_add_epi64(d, step);
            }
            /* e[j] += xo[j] (after the gathers above read e) */
            size_t j = 0;
            for (; j < D; j++) e[j] = ezp_add_mod(e[j], ezp_neg_mod(o[j + N - D], q), q);
            for (; j + 8 <= N; j += 8)
                _mm512_storeu_si512(e + j, ezp_v_addm(_mm512_loadu_si512(e + j), _mm512_loadu_si512(o + j - D), vq));
            for (; j < N; j++) e[j] = ezp_add_mod(e[j], o[j - D], q);
            memcpy(o, tt, N * sizeof(uint64_t));
        }
}

#endif
