/* AES-128 with AES-NI: key schedule, fixed-key permutation, CTR keystream,
 * and the correlation-robust hashes of Guo, Kumar, Wang, Katz,
 * "Efficient and Secure Multiparty Computation from Fixed-Key Block Ciphers",
 * eprint 2019/074 (sections 7.2-7.4):
 *
 *   CR    H(x)    = pi(x) ^ x
 *   CCR   H(x)    = pi(sigma(x)) ^ sigma(x),  sigma(hi||lo) = (hi^lo)||hi
 *   TCCR  H(x, i) = pi(pi(x) ^ i) ^ pi(x)
 *
 * pi is AES-128 under a public fixed key.  Every batch function processes
 * independent blocks so the AES pipeline stays full: 8 blocks in flight with
 * 128-bit AES-NI, 32 (8 registers of 4) with VAES-512 when the CPU has it
 * (chosen at run time; EZP_NO_VAES=1 in the environment forces the 128-bit
 * path).
 *
 * Header-only: every extension module that includes it gets its own copy of
 * the dispatch flag and must call ezp_aes_init() once at import.
 */
#ifndef EZP_AES_H
#define EZP_AES_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>

typedef struct {
    __m128i rk[11];
} ezp_aes_key;

/* ---------------------------------------------------------------- runtime CPU dispatch */

static int ezp_have_vaes = 0;
static ezp_aes_key ezp_fixed_key;   /* pi: the public fixed-key permutation */

static inline int ezp_cpu_has_aesni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse4.1")
        && __builtin_cpu_supports("pclmul");
}

static inline int ezp_cpu_has_vaes512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("vaes") && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

/* ---------------------------------------------------------------- key schedule */

static inline __m128i ezp__expand_step(__m128i k, __m128i assist) {
    assist = _mm_shuffle_epi32(assist, 0xff);
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, assist);
}

static inline void ezp_aes_set_key(ezp_aes_key *key, const uint8_t *k16) {
    __m128i *rk = key->rk;
    rk[0] = _mm_loadu_si128((const __m128i *)k16);
    rk[1] = ezp__expand_step(rk[0], _mm_aeskeygenassist_si128(rk[0], 0x01));
    rk[2] = ezp__expand_step(rk[1], _mm_aeskeygenassist_si128(rk[1], 0x02));
    rk[3] = ezp__expand_step(rk[2], _mm_aeskeygenassist_si128(rk[2], 0x04));
    rk[4] = ezp__expand_step(rk[3], _mm_aeskeygenassist_si128(rk[3], 0x08));
    rk[5] = ezp__expand_step(rk[4], _mm_aeskeygenassist_si128(rk[4], 0x10));
    rk[6] = ezp__expand_step(rk[5], _mm_aeskeygenassist_si128(rk[5], 0x20));
    rk[7] = ezp__expand_step(rk[6], _mm_aeskeygenassist_si128(rk[6], 0x40));
    rk[8] = ezp__expand_step(rk[7], _mm_aeskeygenassist_si128(rk[7], 0x80));
    rk[9] = ezp__expand_step(rk[8], _mm_aeskeygenassist_si128(rk[8], 0x1b));
    rk[10] = ezp__expand_step(rk[9], _mm_aeskeygenassist_si128(rk[9], 0x36));
}

/* Zero n bytes at p in a way the compiler cannot drop as a dead store (before free). */
static inline void ezp_wipe(void *p, size_t n) {
    if (!p) return;
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* The fixed key of pi: the first 16 bytes of the binary expansion of pi
 * (nothing-up-my-sleeve); public by design. */
static const uint8_t EZP_FIXED_KEY_BYTES[16] = {
    0x24, 0x3f, 0x6a, 0x88, 0x85, 0xa3, 0x08, 0xd3,
    0x13, 0x19, 0x8a, 0x2e, 0x03, 0x70, 0x73, 0x44};

static inline void ezp_aes_init(void) {
    const char *no = getenv("EZP_NO_VAES");
    ezp_have_vaes = ezp_cpu_has_vaes512() && !(no && no[0] && no[0] != '0');
    ezp_aes_set_key(&ezp_fixed_key, EZP_FIXED_KEY_BYTES);
}

/* ---------------------------------------------------------------- single block / 128-bit pipeline */

static inline __m128i ezp_aes_enc1(const ezp_aes_key *key, __m128i x) {
    const __m128i *rk = key->rk;
    x = _mm_xor_si128(x, rk[0]);
    for (int r = 1; r < 10; r++) x = _mm_aesenc_si128(x, rk[r]);
    return _mm_aesenclast_si128(x, rk[10]);
}

/* Encrypt m (compile-time small) blocks in place, interleaved round by round. */
#define EZP_AES_ROUNDS_N(key, blk, m)                                          \
    do {                                                                       \
        const __m128i *rk__ = (key)->rk;                                       \
        for (int j__ = 0; j__ < (m); j__++) blk[j__] = _mm_xor_si128(blk[j__], rk__[0]); \
        for (int r__ = 1; r__ < 10; r__++)                                     \
            for (int j__ = 0; j__ < (m); j__++) blk[j__] = _mm_aesenc_si128(blk[j__], rk__[r__]); \
        for (int j__ = 0; j__ < (m); j__++) blk[j__] = _mm_aesenclast_si128(blk[j__], rk__[10]); \
    } while (0)

static inline __m128i ezp_sigma(__m128i x) {
    /* sigma(hi || lo) = (hi ^ lo) || hi */
    __m128i sw = _mm_shuffle_epi32(x, 0x4e);                 /* (lo || hi) */
    __m128i hi = _mm_unpackhi_epi64(_mm_setzero_si128(), x);  /* (hi || 0)  ... lane1 = hi */
    return _mm_xor_si128(sw, hi);
}

/* ---------------------------------------------------------------- VAES-512 helpers */

#define EZP_VAES_TARGET __attribute__((target("vaes,avx512f,avx512bw,avx512vl")))

EZP_VAES_TARGET static inline void ezp__bcast_key(const ezp_aes_key *key, __m512i *k512) {
    for (int r = 0; r < 11; r++) k512[r] = _mm512_broadcast_i32x4(key->rk[r]);
}

#define EZP_VAES_ROUNDS_N(k512, v, m)                                          \
    do {                                                                       \
        for (int j__ = 0; j__ < (m); j__++) v[j__] = _mm512_xor_si512(v[j__], k512[0]); \
        for (int r__ = 1; r__ < 10; r__++)                                     \
            for (int j__ = 0; j__ < (m); j__++) v[j__] = _mm512_aesenc_epi128(v[j__], k512[r__]); \
        for (int j__ = 0; j__ < (m); j__++) v[j__] = _mm512_aesenclast_epi128(v[j__], k512[10]); \
    } while (0)

EZP_VAES_TARGET static inline __m512i ezp__sigma512(__m512i x) {
    __m512i sw = _mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0x4e);
    __m512i hi = _mm512_unpackhi_epi64(_mm512_setzero_si512(), x);
    return _mm512_xor_si512(sw, hi);
}

/* ---------------------------------------------------------------- ECB over arrays */

EZP_VAES_TARGET static void ezp__ecb_vaes(const ezp_aes_key *key, const uint8_t *in,
                                          uint8_t *out, size_t n) {
    __m512i k[11];
    ezp__bcast_key(key, k);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i v[8];
        for (int j = 0; j < 8; j++) v[j] = _mm512_loadu_si512((const void *)(in + 16 * (i + 4 * j)));
        EZP_VAES_ROUNDS_N(k, v, 8);
        for (int j = 0; j < 8; j++) _mm512_storeu_si512((void *)(out + 16 * (i + 4 * j)), v[j]);
    }
    for (; i + 4 <= n; i += 4) {
        __m512i v[1];
        v[0] = _mm512_loadu_si512((const void *)(in + 16 * i));
        EZP_VAES_ROUNDS_N(k, v, 1);
        _mm512_storeu_si512((void *)(out + 16 * i), v[0]);
    }
    for (; i < n; i++)
        _mm_storeu_si128((__m128i *)(out + 16 * i),
                         ezp_aes_enc1(key, _mm_loadu_si128((const __m128i *)(in + 16 * i))));
}

static void ezp__ecb_sse(const ezp_aes_key *key, const uint8_t *in, uint8_t *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i b[8];
        for (int j = 0; j < 8; j++) b[j] = _mm_loadu_si128((const __m128i *)(in + 16 * (i + j)));
        EZP_AES_ROUNDS_N(key, b, 8);
        for (int j = 0; j < 8; j++) _mm_storeu_si128((__m128i *)(out + 16 * (i + j)), b[j]);
    }
    for (; i < n; i++)
        _mm_storeu_si128((__m128i *)(out + 16 * i),
                         ezp_aes_enc1(key, _mm_loadu_si128((const __m128i *)(in + 16 * i))));
}

/* out[i] = AES_key(in[i]) for n blocks (in == out allowed). */
static inline void ezp_aes_ecb(const ezp_aes_key *key, const uint8_t *in, uint8_t *out, size_t n) {
    if (ezp_have_vaes) ezp__ecb_vaes(key, in, out, n);
    else ezp__ecb_sse(key, in, out, n);
}

/* ---------------------------------------------------------------- CTR keystream */
/* Block i of the stream is AES_key(ctr + i) where the 128-bit counter block holds
 * (ctr + i) in its low 64 bits (little endian) and `nonce` in the high 64 bits. */

EZP_VAES_TARGET static void ezp__ctr_vaes(const ezp_aes_key *key, uint64_t nonce, uint64_t ctr,
                                          uint8_t *out, size_t n) {
    __m512i k[11];
    ezp__bcast_key(key, k);
    __m512i c = _mm512_set_epi64((long long)nonce, (long long)(ctr + 3), (long long)nonce, (long long)(ctr + 2),
                                 (long long)nonce, (long long)(ctr + 1), (long long)nonce, (long long)ctr);
    const __m512i four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i v[8];
        for (int j = 0; j < 8; j++) { v[j] = c; c = _mm512_add_epi64(c, four); }
        EZP_VAES_ROUNDS_N(k, v, 8);
        for (int j = 0; j < 8; j++) _mm512_storeu_si512((void *)(out + 16 * (i + 4 * j)), v[j]);
    }
    for (; i < n; i++) {
        __m128i b = _mm_set_epi64x((long long)nonce, (long long)(ctr + i));
        _mm_storeu_si128((__m128i *)(out + 16 * i), ezp_aes_enc1(key, b));
    }
}

static void ezp__ctr_sse(const ezp_aes_key *key, uint64_t nonce, uint64_t ctr, uint8_t *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i b[8];
        for (int j = 0; j < 8; j++) b[j] = _mm_set_epi64x((long long)nonce, (long long)(ctr + i + j));
        EZP_AES_ROUNDS_N(key, b, 8);
        for (int j = 0; j < 8; j++) _mm_storeu_si128((__m128i *)(out + 16 * (i + j)), b[j]);
    }
    for (; i < n; i++) {
        __m128i b = _mm_set_epi64x((long long)nonce, (long long)(ctr + i));
        _mm_storeu_si128((__m128i *)(out + 16 * i), ezp_aes_enc1(key, b));
    }
}

/* Writes n keystream blocks (16*n bytes) starting at counter ctr. */
static inline void ezp_aes_ctr(const ezp_aes_key *key, uint64_t nonce, uint64_t ctr, uint8_t *out, size_t n) {
    if (ezp_have_vaes) ezp__ctr_vaes(key, nonce, ctr, out, n);
    else ezp__ctr_sse(key, nonce, ctr, out, n);
}

/* Writes nbytes of keystream (any length) starting at counter *ctr and advances *ctr
 * by the number of blocks used (a partial last block consumes one counter). */
static inline void ezp_aes_ctr_bytes(const ezp_aes_key *key, uint64_t nonce, uint64_t *ctr,
                                     uint8_t *out, size_t nbytes) {
    size_t full = nbytes / 16, rem = nbytes % 16;
    ezp_aes_ctr(key, nonce, *ctr, out, full);
    *ctr += full;
    if (rem) {
        uint8_t tmp[16];
        ezp_aes_ctr(key, nonce, *ctr, tmp, 1);
        memcpy(out + 16 * full, tmp, rem);
        *ctr += 1;
    }
}

/* ---------------------------------------------------------------- hashes (fixed key pi) */

/* kind: 0 = CR, 1 = CCR. out[i] = H(in[i]). */
EZP_VAES_TARGET static void ezp__crh_vaes(int ccr, const uint8_t *in, uint8_t *out, size_t n) {
    __m512i k[11];
    ezp__bcast_key(&ezp_fixed_key, k);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i x[8], v[8];
        for (int j = 0; j < 8; j++) {
            x[j] = _mm512_loadu_si512((const void *)(in + 16 * (i + 4 * j)));
            if (ccr) x[j] = ezp__sigma512(x[j]);
            v[j] = x[j];
        }
        EZP_VAES_ROUNDS_N(k, v, 8);
        for (int j = 0; j < 8; j++)
            _mm512_storeu_si512((void *)(out + 16 * (i + 4 * j)), _mm512_xor_si512(v[j], x[j]));
    }
    for (; i < n; i++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(in + 16 * i));
        if (ccr) x = ezp_sigma(x);
        _mm_storeu_si128((__m128i *)(out + 16 * i), _mm_xor_si128(ezp_aes_enc1(&ezp_fixed_key, x), x));
    }
}

static void ezp__crh_sse(int ccr, const uint8_t *in, uint8_t *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i x[8], b[8];
        for (int j = 0; j < 8; j++) {
            x[j] = _mm_loadu_si128((const __m128i *)(in + 16 * (i + j)));
            if (ccr) x[j] = ezp_sigma(x[j]);
            b[j] = x[j];
        }
        EZP_AES_ROUNDS_N(&ezp_fixed_key, b, 8);
        for (int j = 0; j < 8; j++) _mm_storeu_si128((__m128i *)(out + 16 * (i + j)), _mm_xor_si128(b[j], x[j]));
    }
    for (; i < n; i++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(in + 16 * i));
        if (ccr) x = ezp_sigma(x);
        _mm_storeu_si128((__m128i *)(out + 16 * i), _mm_xor_si128(ezp_aes_enc1(&ezp_fixed_key, x), x));
    }
}

static inline void ezp_cr_hash(const uint8_t *in, uint8_t *out, size_t n) {
    if (ezp_have_vaes) ezp__crh_vaes(0, in, out, n); else ezp__crh_sse(0, in, out, n);
}
static inline void ezp_ccr_hash(const uint8_t *in, uint8_t *out, size_t n) {
    if (ezp_have_vaes) ezp__crh_vaes(1, in, out, n); else ezp__crh_sse(1, in, out, n);
}

/* TCCR with tweak i = (tweak_hi || tweak_lo + i) for block i, or explicit per-block
 * tweaks (16-byte blocks) when `tweaks` is non-NULL. */
EZP_VAES_TARGET static void ezp__tccr_vaes(const uint8_t *in, const uint8_t *tweaks, uint64_t tw_hi,
                                           uint64_t tw_lo, uint8_t *out, size_t n) {
    __m512i k[11];
    ezp__bcast_key(&ezp_fixed_key, k);
    __m512i c = _mm512_set_epi64((long long)tw_hi, (long long)(tw_lo + 3), (long long)tw_hi, (long long)(tw_lo + 2),
                                 (long long)tw_hi, (long long)(tw_lo + 1), (long long)tw_hi, (long long)tw_lo);
    const __m512i four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i p[8], v[8];
        for (int j = 0; j < 8; j++) p[j] = _mm512_loadu_si512((const void *)(in + 16 * (i + 4 * j)));
        EZP_VAES_ROUNDS_N(k, p, 8);
        for (int j = 0; j < 8; j++) {
            __m512i t;
            if (tweaks) t = _mm512_loadu_si512((const void *)(tweaks + 16 * (i + 4 * j)));
            else { t = c; c = _mm512_add_epi64(c, four); }
            v[j] = _mm512_xor_si512(p[j], t);
        }
        EZP_VAES_ROUNDS_N(k, v, 8);
        for (int j = 0; j < 8; j++)
            _mm512_storeu_si512((void *)(out + 16 * (i + 4 * j)), _mm512_xor_si512(v[j], p[j]));
    }
    for (; i < n; i++) {
        __m128i p = ezp_aes_enc1(&ezp_fixed_key, _mm_loadu_si128((const __m128i *)(in + 16 * i)));
        __m128i t = tweaks ? _mm_loadu_si128((const __m128i *)(tweaks + 16 * i))
                           : _mm_set_epi64x((long long)tw_hi, (long long)(tw_lo + i));
        _mm_storeu_si128((__m128i *)(out + 16 * i),
                         _mm_xor_si128(ezp_aes_enc1(&ezp_fixed_key, _mm_xor_si128(p, t)), p));
    }
}

static void ezp__tccr_sse(const uint8_t *in, const uint8_t *tweaks, uint64_t tw_hi, uint64_t tw_lo,
                          uint8_t *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i p[8], v[8];
        for (int j = 0; j < 8; j++) p[j] = _mm_loadu_si128((const __m128i *)(in + 16 * (i + j)));
        EZP_AES_ROUNDS_N(&ezp_fixed_key, p, 8);
        for (int j = 0; j < 8; j++) {
            __m128i t = tweaks ? _mm_loadu_si128((const __m128i *)(tweaks + 16 * (i + j)))
                               : _mm_set_epi64x((long long)tw_hi, (long long)(tw_lo + i + j));
            v[j] = _mm_xor_si128(p[j], t);
        }
        EZP_AES_ROUNDS_N(&ezp_fixed_key, v, 8);
        for (int j = 0; j < 8; j++) _mm_storeu_si128((__m128i *)(out + 16 * (i + j)), _mm_xor_si128(v[j], p[j]));
    }
    for (; i < n; i++) {
        __m128i p = ezp_aes_enc1(&ezp_fixed_key, _mm_loadu_si128((const __m128i *)(in + 16 * i)));
        __m128i t = tweaks ? _mm_loadu_si128((const __m128i *)(tweaks + 16 * i))
                           : _mm_set_epi64x((long long)tw_hi, (long long)(tw_lo + i));
        _mm_storeu_si128((__m128i *)(out + 16 * i),
                         _mm_xor_si128(ezp_aes_enc1(&ezp_fixed_key, _mm_xor_si128(p, t)), p));
    }
}

static inline void ezp_tccr_hash(const uint8_t *in, const uint8_t *tweaks, uint64_t tw_hi, uint64_t tw_lo,
                                 uint8_t *out, size_t n) {
    if (ezp_have_vaes) ezp__tccr_vaes(in, tweaks, tw_hi, tw_lo, out, n);
    else ezp__tccr_sse(in, tweaks, tw_hi, tw_lo, out, n);
}

#endif /* EZP_AES_H */
