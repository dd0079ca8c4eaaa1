/* Kernels of the SIMD (batched) BFV products of ezprotocols.arith.he_simd: plaintext primes
 * t = 1 mod 2N below 2^62, ciphertext primes below 2^62.
 *  - ezp_add_delta_t: b += round(Q m / t) mod q_l for m in [0, t)
 *    (= floor(Q/t) m + round((Q mod t) m / t); the second term with 128-bit arithmetic).
 *  - ezp_decrypt2_t: round(t x / (q0 q1)) mod t of x given by its residues mod q0, q1
 *    (x = v0 + q0 y; t x / q' = floor(t y / q1) + ((t y mod q1) q0 + t v0) / q', all in 128 bits).
 *  - ezp_crt_u64: Garner's mixed radix of residues v_i mod t_i (i < k), the integer
 *    V = d0 + t0 (d1 + t1 (d2 + ...)) in [0, prod t_i) reduced mod 2^64 (wrap-around).
 */
#ifndef EZP_HE_SIMD_H
#define EZP_HE_SIMD_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

typedef unsigned __int128 ezp_s_u128;

static inline uint64_t ezp_s_mulmod(uint64_t a, uint64_t b, uint64_t q) {
    return (uint64_t)(((ezp_s_u128)a * b) % q);
}

static int ezp_add_delta_t(uint64_t *b, const uint64_t *m, size_t cnt, size_t n, const uint64_t *qs,
                           size_t L, const uint64_t *dfl, uint64_t qt, uint64_t t) {
    uint64_t *fr = (uint64_t *)malloc((n ? n : 1) * sizeof(uint64_t));
    if (!fr) return -1;
    for (size_t c = 0; c < cnt; c++) {
        const uint64_t *src = m + c * n;
        for (size_t j = 0; j < n; j++)
            fr[j] = (uint64_t)(((ezp_s_u128)qt * src[j] + (t >> 1)) / t);
        for (size_t l = 0; l < L; l++) {
            uint64_t q = qs[l], d = dfl[l];
            uint64_t *dst = b + (c * L + l) * n;
            for (size_t j = 0; j < n; j++) {
                uint64_t v = (uint64_t)(((ezp_s_u128)src[j] * d + fr[j] + dst[j]) % q);
                dst[j] = v;
            }
        }
    }
    free(fr);
    return 0;
}

static void ezp_decrypt2_t(const uint64_t *x, size_t cnt, size_t n, uint64_t q0, uint64_t q1,
                           uint64_t q0inv_mod_q1, uint64_t t, uint64_t *out) {
    ezp_s_u128 qq = (ezp_s_u128)q0 * q1;
    for (size_t c = 0; c < cnt; c++) {
        const uint64_t *x0 = x + c * 2 * n, *x1 = x0 + n;
        uint64_t *o = out + c * n;
        for (size_t j = 0; j < n; j++) {
            uint64_t v0 = x0[j] % q0, r1 = x1[j] % q1, v0q1 = v0 % q1;
            uint64_t y = ezp_s_mulmod(r1 >= v0q1 ? r1 - v0q1 : r1 + q1 - v0q1, q0inv_mod_q1, q1);
            ezp_s_u128 ty = (ezp_s_u128)t * y;
            uint64_t A = (uint64_t)(ty / q1), Bq = (uint64_t)(ty % q1);
            ezp_s_u128 num = (ezp_s_u128)Bq * q0 + (ezp_s_u128)t * v0;
            uint64_t cr = (uint64_t)((2 * num + qq) / (2 * qq));
            o[j] = (uint64_t)(((ezp_s_u128)A + cr) % t);
        }
    }
}

/* v[k][n] residues (< t_i), inv[i * k + l] = t_l^{-1} mod t_i (l < i) */
static void ezp_crt_u64(const uint64_t *v, size_t k, size_t n, const uint64_t *ts, const uint64_t *inv,
                        uint64_t *out) {
    uint64_t d[8];
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < k; i++) {
            uint64_t ti = ts[i], x = v[i * n + j] % ti;
            for (size_t l = 0; l < i; l++) {
                uint64_t dl = d[l] % ti;
                x = ezp_s_mulmod(x >= dl ? x - dl : x + ti - dl, inv[i * k + l], ti);
            }
            d[i] = x;
        }
        uint64_t acc = d[k - 1];
        for (size_t i = k - 1; i-- > 0;) acc = acc * ts[i] + d[i];
        out[j] = acc;
    }
}

#endif
