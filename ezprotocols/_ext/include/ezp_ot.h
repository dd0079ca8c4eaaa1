/* IKNP OT extension kernels.
 *
 * Ishai, Kilian, Nissim, Petrank, "Extending Oblivious Transfers Efficiently"
 * (CRYPTO 2003) with the optimisations of Asharov, Lindell, Schneider, Zohner,
 * "More Efficient Oblivious Transfer and Extensions for Faster Secure
 * Computation", eprint 2013/552: base OTs on 128 seeds only, the receiver sends
 * u_i = G(k0_i) ^ G(k1_i) ^ r per column, everything processed in blocks.
 *
 * Layout.  OTs are processed in tiles of 128 (one AES block per seed covers
 * 128 OTs).  For tile t (global tile counter c) the 128 column blocks are
 *     a_i = AES_{k0_i}(c)            (receiver, i < 128)
 *     u_i = a_i ^ AES_{k1_i}(c) ^ r  (r = the tile's 128 choice bits)
 *     q_i = AES_{k_{s_i},i}(c) ^ (s_i ? u_i : 0)   (sender)
 * and a 128 x 128 bit transpose turns columns into the rows of the output
 * (row j, bit i = bit j of column block i).  The wire u matrix is tile-major:
 * a full tile is its 128 column blocks (2048 bytes, block i at 16 i); the last
 * tile of a batch, with m < 128 OTs, sends only the first ceil(m/8) bytes of
 * each column block (128 * ceil(m/8) bytes).  So a batch of n OTs costs
 * ezp_ot_ubytes(n) = 16 * n bytes rounded up to whole bytes per column.
 *
 * Work goes in superblocks of 8 tiles (1024 OTs): the PRG keeps 8 independent
 * blocks in flight per key (VAES: 4 seeds per 512-bit register, each lane with
 * its own round keys), the column blocks stay in L1, the transpose reads them
 * there and writes finished rows.  The transpose has an AVX-512 VBMI + GFNI
 * version (byte permutes, an 8x8 bit transpose per qword with GF2P8AFFINEQB,
 * an 8x8 qword transpose) and an SSE fallback (ezp_transpose.h).
 *
 * Hashing (random, chosen and additive OT): TCCR of eprint 2019/074,
 * H(x, tweak) = pi(pi(x) ^ tweak) ^ pi(x), with a tweak that is never repeated
 * for the same delta: high word = caller's domain (0x4F 'O' in the top byte) | block
 * index within a long message, low word = global OT index.
 */
#ifndef EZP_OT_H
#define EZP_OT_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <immintrin.h>
#include "ezp_aes.h"
#include "ezp_transpose.h"

#define EZP_OT_SB 8          /* tiles per superblock */
#define EZP_OT_TILE 2048     /* bytes of one 128 x 128 bit tile */
/* scratch bytes the extension kernels need (64-byte aligned) */
#define EZP_OT_SCRATCH (3 * EZP_OT_SB * EZP_OT_TILE + 4096)

static int ezp_ot_have_gfni = 0;   /* AVX-512 VBMI + GFNI transpose in use */

static uint8_t ezp_ot__idx_a[2][64] __attribute__((aligned(64)));
static uint8_t ezp_ot__idx_d[2][64] __attribute__((aligned(64)));

static inline int ezp_ot_cpu_gfni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("gfni") && __builtin_cpu_supports("avx512vbmi")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f");
}

static inline void ezp_ot_init(void) {
    ezp_aes_init();
    /* EZP_NO_VAES=1 (ezp_have_vaes == 0) also disables this AVX-512 path; EZP_NO_GFNI=1
     * disables only the transpose (VAES PRG + SSE transpose, as on a CPU without GFNI) */
    const char *no = getenv("EZP_NO_GFNI");
    ezp_ot_have_gfni = ezp_have_vaes && ezp_ot_cpu_gfni() && !(no && no[0] && no[0] != '0');
    for (int h = 0; h < 2; h++)
        for (int b = 0; b < 8; b++)
            for (int k = 0; k < 8; k++)
                ezp_ot__idx_a[h][8 * b + (7 - k)] = (uint8_t)(16 * k + 8 * h + b);
    for (int j = 0; j < 8; j++)
        for (int g = 0; g < 16; g++)
            ezp_ot__idx_d[j >> 2][16 * (j & 3) + g] = (uint8_t)(8 * g + j);
}

/* ---------------------------------------------------------------- 128 keys */

/* Round keys of 128 AES keys, grouped for 4-lane VAES: group g = keys 4g..4g+3,
 * round r: 64 bytes at rk + (11 g + r) * 64, lane l = key 4g + l. */
typedef struct {
    uint8_t rk[32 * 11 * 64] __attribute__((aligned(64)));
} ezp_ot_keys;

static inline void ezp_ot_keys_set(ezp_ot_keys *K, const uint8_t *seeds) {
    for (int i = 0; i < 128; i++) {
        ezp_aes_key k;
        ezp_aes_set_key(&k, seeds + 16 * i);
        for (int r = 0; r < 11; r++)
            _mm_storeu_si128((__m128i *)(K->rk + (11 * (i >> 2) + r) * 64 + 16 * (i & 3)), k.rk[r]);
    }
}

static inline void ezp_ot__key_of(const ezp_ot_keys *K, int i, ezp_aes_key *k) {
    for (int r = 0; r < 11; r++)
        k->rk[r] = _mm_loadu_si128((const __m128i *)(K->rk + (11 * (i >> 2) + r) * 64 + 16 * (i & 3)));
}

/* ---------------------------------------------------------------- column PRG, 8 tiles */
/* out[t*2048 + 16 i] = AES_{key i}(ctr + t) ^ extra   (t < 8, i < 128), where
 *   mode 0: extra = 0
 *   mode 1: extra = xa[t*2048 + 16 i] ^ r[16 t .. 16 t + 16]      (receiver: u)
 *   mode 2: extra = xa[t*2048 + 16 i] & mask[16 i .. 16 i + 16]   (sender: q columns)
 * The counter block is (low 64 bits = ctr + t, high 64 bits = 0), as ezp_aes_ctr. */

EZP_VAES_TARGET static inline __attribute__((always_inline)) void
ezp_ot__prg8_vaes(const ezp_ot_keys *K, uint64_t ctr, const int mode, const uint8_t *xa,
                  const uint8_t *r, const uint8_t *mask, uint8_t *out) {
    __m512i cb[8], rb[8];
    for (int t = 0; t < 8; t++) {
        cb[t] = _mm512_broadcast_i32x4(_mm_set_epi64x(0, (long long)(ctr + (uint64_t)t)));
        rb[t] = mode == 1 ? _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(r + 16 * t)))
                          : _mm512_setzero_si512();
    }
    for (int g = 0; g < 32; g++) {
        const __m512i *rk = (const __m512i *)(K->rk + (size_t)g * 11 * 64);
        __m512i v[8];
        __m512i k = _mm512_load_si512((const void *)rk);
        for (int t = 0; t < 8; t++) v[t] = _mm512_xor_si512(cb[t], k);
        for (int rr = 1; rr < 10; rr++) {
            k = _mm512_load_si512((const void *)(rk + rr));
            for (int t = 0; t < 8; t++) v[t] = _mm512_aesenc_epi128(v[t], k);
        }
        k = _mm512_load_si512((const void *)(rk + 10));
        for (int t = 0; t < 8; t++) v[t] = _mm512_aesenclast_epi128(v[t], k);
        if (mode == 1) {
            for (int t = 0; t < 8; t++)
                v[t] = _mm512_ternarylogic_epi64(
                    v[t], _mm512_loadu_si512((const void *)(xa + t * EZP_OT_TILE + 64 * g)), rb[t], 0x96);
        } else if (mode == 2) {
            __m512i m = _mm512_loadu_si512((const void *)(mask + 64 * g));
            for (int t = 0; t < 8; t++)
                v[t] = _mm512_xor_si512(v[t], _mm512_and_si512(
                    _mm512_loadu_si512((const void *)(xa + t * EZP_OT_TILE + 64 * g)), m));
        }
        for (int t = 0; t < 8; t++) _mm512_storeu_si512((void *)(out + t * EZP_OT_TILE + 64 * g), v[t]);
    }
}

EZP_VAES_TARGET static void ezp_ot__prg8_vaes0(const ezp_ot_keys *K, uint64_t ctr, uint8_t *out) {
    ezp_ot__prg8_vaes(K, ctr, 0, NULL, NULL, NULL, out);
}
EZP_VAES_TARGET static void ezp_ot__prg8_vaes1(const ezp_ot_keys *K, uint64_t ctr, const uint8_t *xa,
                                               const uint8_t *r, uint8_t *out) {
    ezp_ot__prg8_vaes(K, ctr, 1, xa, r, NULL, out);
}
EZP_VAES_TARGET static void ezp_ot__prg8_vaes2(const ezp_ot_keys *K, uint64_t ctr, const uint8_t *xa,
                                               const uint8_t *mask, uint8_t *out) {
    ezp_ot__prg8_vaes(K, ctr, 2, xa, NULL, mask, out);
}

static inline __attribute__((always_inline)) void
ezp_ot__prg8_sse(const ezp_ot_keys *K, uint64_t ctr, const int mode, const uint8_t *xa,
                 const uint8_t *r, const uint8_t *mask, uint8_t *out) {
    for (int i = 0; i < 128; i++) {
        ezp_aes_key key;
        ezp_ot__key_of(K, i, &key);
        __m128i b[8];
        for (int t = 0; t < 8; t++) b[t] = _mm_set_epi64x(0, (long long)(ctr + (uint64_t)t));
        EZP_AES_ROUNDS_N(&key, b, 8);
        for (int t = 0; t < 8; t++) {
            __m128i x = b[t];
            if (mode == 1)
                x = _mm_xor_si128(x, _mm_xor_si128(
                        _mm_loadu_si128((const __m128i *)(xa + t * EZP_OT_TILE + 16 * i)),
                        _mm_loadu_si128((const __m128i *)(r + 16 * t))));
            else if (mode == 2)
                x = _mm_xor_si128(x, _mm_and_si128(
                        _mm_loadu_si128((const __m128i *)(xa + t * EZP_OT_TILE + 16 * i)),
                        _mm_loadu_si128((const __m128i *)(mask + 16 * i))));
            _mm_storeu_si128((__m128i *)(out + t * EZP_OT_TILE + 16 * i), x);
        }
    }
}

static inline void ezp_ot_prg8(const ezp_ot_keys *K, uint64_t ctr, uint8_t *out) {
    if (ezp_have_vaes) ezp_ot__prg8_vaes0(K, ctr, out);
    else ezp_ot__prg8_sse(K, ctr, 0, NULL, NULL, NULL, out);
}
static inline void ezp_ot_prg8_recv(const ezp_ot_keys *K, uint64_t ctr, const uint8_t *xa,
                                    const uint8_t *r, uint8_t *out) {
    if (ezp_have_vaes) ezp_ot__prg8_vaes1(K, ctr, xa, r, out);
    else ezp_ot__prg8_sse(K, ctr, 1, xa, r, NULL, out);
}
static inline void ezp_ot_prg8_send(const ezp_ot_keys *K, uint64_t ctr, const uint8_t *xa,
                                    const uint8_t *mask, uint8_t *out) {
    if (ezp_have_vaes) ezp_ot__prg8_vaes2(K, ctr, xa, mask, out);
    else ezp_ot__prg8_sse(K, ctr, 2, xa, NULL, mask, out);
}

/* ---------------------------------------------------------------- 128 x 128 bit transpose */
/* out row c (16 bytes), bit i  =  in row i (16 bytes), bit c.  in != out. */

static inline void ezp_ot__tr128_sse(const uint8_t *in, uint8_t *out) {
    for (size_t r0 = 0; r0 < 128; r0 += 16) ezp__tr_tile_sse(in, 16, out, 16, r0, 0);
}

#define EZP_OT_GFNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,gfni")))

/* Rows i = 8g + k, bit columns c = 8b + j.  (A) per row group g, a 2-register byte
 * permute gathers qword Q(g,b) whose byte 7-k is byte b of row 8g+k; (B)
 * GF2P8AFFINEQB with the matrix operand Q and data bytes 1<<j transposes each
 * 8x8 bit block: byte j of the result = byte g of output row 8b+j; (C) an 8x8
 * qword transpose per quadrant regroups the qwords by b; (D) a byte permute
 * writes the 8 output rows 8b..8b+7. */
EZP_OT_GFNI_TARGET static void ezp_ot__tr128_gfni(const uint8_t *in, uint8_t *out) {
    const __m512i xi = _mm512_set1_epi64((long long)0x8040201008040201ULL);
    const __m512i p1lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    const __m512i p1hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    const __m512i idd0 = _mm512_load_si512((const void *)ezp_ot__idx_d[0]);
    const __m512i idd1 = _mm512_load_si512((const void *)ezp_ot__idx_d[1]);
    for (int h = 0; h < 2; h++) {
        const __m512i ida = _mm512_load_si512((const void *)ezp_ot__idx_a[h]);
        __m512i V[16];
        for (int gh = 0; gh < 2; gh++) {
            __m512i w[8];
            for (int gg = 0; gg < 8; gg++) {
                const uint8_t *p = in + 128 * (8 * gh + gg);
                __m512i z0 = _mm512_loadu_si512((const void *)p);
                __m512i z1 = _mm512_loadu_si512((const void *)(p + 64));
                w[gg] = _mm512_gf2p8affine_epi64_epi8(xi, _mm512_permutex2var_epi8(z0, ida, z1), 0);
            }
            for (int i = 0; i < 8; i += 2) {
                __m512i a = _mm512_unpacklo_epi64(w[i], w[i + 1]);
                __m512i b = _mm512_unpackhi_epi64(w[i], w[i + 1]);
                w[i] = a; w[i + 1] = b;
            }
            for (int i = 0; i < 8; i++) {
                if (i & 2) continue;
                __m512i a = _mm512_permutex2var_epi64(w[i], p1lo, w[i + 2]);
                __m512i b = _mm512_permutex2var_epi64(w[i], p1hi, w[i + 2]);
                w[i] = a; w[i + 2] = b;
            }
            for (int i = 0; i < 4; i++) {
                __m512i a = _mm512_shuffle_i64x2(w[i], w[i + 4], 0x44);
                __m512i b = _mm512_shuffle_i64x2(w[i], w[i + 4], 0xEE);
                w[i] = a; w[i + 4] = b;
            }
            for (int j = 0; j < 8; j++) V[8 * gh + j] = w[j];
        }
        for (int bb = 0; bb < 8; bb++) {
            uint8_t *o = out + 128 * (8 * h + bb);
            _mm512_storeu_si512((void *)o, _mm512_permutex2var_epi8(V[bb], idd0, V[8 + bb]));
            _mm512_storeu_si512((void *)(o + 64), _mm512_permutex2var_epi8(V[bb], idd1, V[8 + bb]));
        }
    }
}

static inline void ezp_ot_tr128(const uint8_t *in, uint8_t *out) {
    if (ezp_ot_have_gfni) ezp_ot__tr128_gfni(in, out);
    else ezp_ot__tr128_sse(in, out);
}

/* ---------------------------------------------------------------- extension */

static inline size_t ezp_ot_ubytes(size_t n) {
    return 2048 * (n / 128) + 128 * (((n % 128) + 7) / 8);
}

static inline uint8_t *ezp_ot__align64(uint8_t *p) {
    return (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* Receiver: n OTs from tile counter ctr.  r: packed choice bits (ceil(n/8) bytes,
 * bit j of the batch = bit j%8 of byte j/8).  Writes u (ezp_ot_ubytes(n) bytes) and
 * t (n rows of 16 bytes).  scratch: EZP_OT_SCRATCH bytes (any alignment). */
static void ezp_ot_recv_ext(const ezp_ot_keys *K0, const ezp_ot_keys *K1, uint64_t ctr,
                            const uint8_t *r, size_t n, uint8_t *u, uint8_t *t, uint8_t *scratch) {
    uint8_t *A = ezp_ot__align64(scratch);
    uint8_t *U = A + EZP_OT_SB * EZP_OT_TILE;
    uint8_t *T = U + EZP_OT_SB * EZP_OT_TILE;
    uint8_t *R = T + EZP_OT_TILE;                 /* 8 tiles x 16 bytes of choice bits */
    size_t ntiles = (n + 127) / 128;
    for (size_t t0 = 0; t0 < ntiles; t0 += EZP_OT_SB) {
        size_t ot0 = 128 * t0;
        size_t nots = n - ot0 < 128 * EZP_OT_SB ? n - ot0 : 128 * EZP_OT_SB;
        size_t nt = (nots + 127) / 128;
        int full = nots == 128 * EZP_OT_SB;
        const uint8_t *rp = r + ot0 / 8;
        if (!full) {
            memset(R, 0, 128);
            memcpy(R, rp, (nots + 7) / 8);
            if (nots % 8) R[nots / 8] &= (uint8_t)((1u << (nots % 8)) - 1);
            rp = R;
        }
        ezp_ot_prg8(K0, ctr + t0, A);
        ezp_ot_prg8_recv(K1, ctr + t0, A, rp, full ? u + 16 * ot0 : U);
        for (size_t tt = 0; tt < nt; tt++) {
            size_t m = nots - 128 * tt < 128 ? nots - 128 * tt : 128;
            uint8_t *trow = t + 16 * (ot0 + 128 * tt);
            if (!full) {
                uint8_t *up = u + 16 * (ot0 + 128 * tt);   /* preceding tiles are full */
                const uint8_t *src = U + tt * EZP_OT_TILE;
                if (m == 128) memcpy(up, src, EZP_OT_TILE);
                else {
                    size_t mb = (m + 7) / 8;
                    uint8_t last = (m % 8) ? (uint8_t)((1u << (m % 8)) - 1) : 0xFF;
                    for (int i = 0; i < 128; i++) {
                        memcpy(up + mb * i, src + 16 * i, mb);
                        up[mb * i + mb - 1] &= last;
                    }
                }
            }
            if (m == 128) ezp_ot_tr128(A + tt * EZP_OT_TILE, trow);
            else {
                ezp_ot_tr128(A + tt * EZP_OT_TILE, T);
                memcpy(trow, T, 16 * m);
            }
        }
    }
}

/* Sender: n OTs from tile counter ctr, with the receiver's u (ezp_ot_ubytes(n) bytes).
 * mask: 128 x 16 bytes, block i all-ones iff s_i = 1 (the keys K are k_{s_i, i}).
 * Writes q (n rows of 16 bytes): q_j = t_j ^ r_j * s. */
static void ezp_ot_send_ext(const ezp_ot_keys *K, const uint8_t *mask, uint64_t ctr,
                            const uint8_t *u, size_t n, uint8_t *q, uint8_t *scratch) {
    uint8_t *C = ezp_ot__align64(scratch);
    uint8_t *U = C + EZP_OT_SB * EZP_OT_TILE;
    uint8_t *T = U + EZP_OT_SB * EZP_OT_TILE;
    size_t ntiles = (n + 127) / 128;
    for (size_t t0 = 0; t0 < ntiles; t0 += EZP_OT_SB) {
        size_t ot0 = 128 * t0;
        size_t nots = n - ot0 < 128 * EZP_OT_SB ? n - ot0 : 128 * EZP_OT_SB;
        size_t nt = (nots + 127) / 128;
        int full = nots == 128 * EZP_OT_SB;
        const uint8_t *up = u + 16 * ot0;
        if (!full) {
            memset(U, 0, EZP_OT_SB * EZP_OT_TILE);
            for (size_t tt = 0; tt < nt; tt++) {
                size_t m = nots - 128 * tt < 128 ? nots - 128 * tt : 128;
                const uint8_t *src = u + 16 * (ot0 + 128 * tt);
                uint8_t *dst = U + tt * EZP_OT_TILE;
                if (m == 128) memcpy(dst, src, EZP_OT_TILE);
                else {
                    size_t mb = (m + 7) / 8;
                    for (int i = 0; i < 128; i++) memcpy(dst + 16 * i, src + mb * i, mb);
                }
            }
            up = U;
        }
        ezp_ot_prg8_send(K, ctr + t0, up, mask, C);
        for (size_t tt = 0; tt < nt; tt++) {
            size_t m = nots - 128 * tt < 128 ? nots - 128 * tt : 128;
            uint8_t *qrow = q + 16 * (ot0 + 128 * tt);
            if (m == 128) ezp_ot_tr128(C + tt * EZP_OT_TILE, qrow);
            else {
                ezp_ot_tr128(C + tt * EZP_OT_TILE, T);
                memcpy(qrow, T, 16 * m);
            }
        }
    }
}

/* ---------------------------------------------------------------- choice bits */

/* Pack n bytes holding 0/1 into ceil(n/8) bytes (little-endian bit order).
 * Returns -1, or the index of the first byte that is neither 0 nor 1. */
static ptrdiff_t ezp_ot_pack_bits(const uint8_t *bits, size_t n, uint8_t *packed) {
    const __m128i hi7 = _mm_set1_epi8((char)0xFE);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(bits + i));
        if (!_mm_testz_si128(x, hi7)) {
            for (size_t k = i; k < i + 16; k++) if (bits[k] > 1) return (ptrdiff_t)k;
        }
        uint16_t m = (uint16_t)_mm_movemask_epi8(_mm_slli_epi64(x, 7));
        memcpy(packed + i / 8, &m, 2);
    }
    if (i < n) {
        uint8_t acc[2] = {0, 0};
        for (size_t k = i; k < n; k++) {
            if (bits[k] > 1) return (ptrdiff_t)k;
            acc[(k - i) >> 3] |= (uint8_t)(bits[k] << ((k - i) & 7));
        }
        memcpy(packed + i / 8, acc, (n - i + 7) / 8);
    }
    return -1;
}

/* ---------------------------------------------------------------- hashing */

/* out[j] = TCCR(x_j ^ d, (hi, lo + j)) for j < n; d may be NULL (no offset). */
static void ezp_ot_tccr(const uint8_t *x, const uint8_t *d, size_t n, uint64_t hi, uint64_t lo,
                        uint8_t *out) {
    if (d == NULL) {
        ezp_tccr_hash(x, NULL, hi, lo, out, n);
        return;
    }
    uint8_t tmp[256 * 16] __attribute__((aligned(64)));
    __m128i dv = _mm_loadu_si128((const __m128i *)d);
    for (size_t j0 = 0; j0 < n; j0 += 256) {
        size_t m = n - j0 < 256 ? n - j0 : 256;
        for (size_t j = 0; j < m; j++)
            _mm_store_si128((__m128i *)(tmp + 16 * j),
                            _mm_xor_si128(_mm_loadu_si128((const __m128i *)(x + 16 * (j0 + j))), dv));
        ezp_tccr_hash(tmp, NULL, hi, lo + j0, out + 16 * j0, m);
    }
}

static inline void ezp_ot__xor_bytes(uint8_t *dst, const uint8_t *a, const uint8_t *b, size_t len) {
    if (len == 16) {
        _mm_storeu_si128((__m128i *)dst, _mm_xor_si128(_mm_loadu_si128((const __m128i *)a),
                                                       _mm_loadu_si128((const __m128i *)b)));
        return;
    }
    for (size_t c = 0; c < len; c++) dst[c] = a[c] ^ b[c];
}

/* Both hashes of the sender in one pass (eprint 2019/074 TCCR, tweak (hi, lo + j)):
 *     o0[j] = H(x_j, tw_j) ^ m0[j],   o1[j] = H(x_j ^ delta, tw_j) ^ m1[j]
 * (m0/m1 NULL: no message).  Rows of 16 bytes, contiguous; o0/o1 may alias m0/m1. */
EZP_VAES_TARGET static void ezp_ot__hash2_vaes(const uint8_t *x, const uint8_t *delta, size_t n, uint64_t hi,
                                               uint64_t lo, const uint8_t *m0, const uint8_t *m1,
                                               uint8_t *o0, uint8_t *o1) {
    __m512i k[11];
    ezp__bcast_key(&ezp_fixed_key, k);
    const __m512i D = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)delta));
    __m512i c = _mm512_set_epi64((long long)hi, (long long)(lo + 3), (long long)hi, (long long)(lo + 2),
                                 (long long)hi, (long long)(lo + 1), (long long)hi, (long long)lo);
    const __m512i four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512i p[8], v[8], t[4];
        for (int a = 0; a < 4; a++) {
            p[a] = _mm512_loadu_si512((const void *)(x + 16 * (j + 4 * a)));
            p[4 + a] = _mm512_xor_si512(p[a], D);
            t[a] = c;
            c = _mm512_add_epi64(c, four);
        }
        EZP_VAES_ROUNDS_N(k, p, 8);
        for (int a = 0; a < 8; a++) v[a] = _mm512_xor_si512(p[a], t[a & 3]);
        EZP_VAES_ROUNDS_N(k, v, 8);
        for (int a = 0; a < 4; a++) {
            __m512i h0 = _mm512_xor_si512(v[a], p[a]), h1 = _mm512_xor_si512(v[4 + a], p[4 + a]);
            if (m0) h0 = _mm512_xor_si512(h0, _mm512_loadu_si512((const void *)(m0 + 16 * (j + 4 * a))));
            if (m1) h1 = _mm512_xor_si512(h1, _mm512_loadu_si512((const void *)(m1 + 16 * (j + 4 * a))));
            _mm512_storeu_si512((void *)(o0 + 16 * (j + 4 * a)), h0);
            _mm512_storeu_si512((void *)(o1 + 16 * (j + 4 * a)), h1);
        }
    }
    for (; j < n; j++) {
        __m128i d = _mm_loadu_si128((const __m128i *)delta);
        __m128i tw = _mm_set_epi64x((long long)hi, (long long)(lo + j));
        __m128i a0 = _mm_loadu_si128((const __m128i *)(x + 16 * j));
        __m128i p0 = ezp_aes_enc1(&ezp_fixed_key, a0), p1 = ezp_aes_enc1(&ezp_fixed_key, _mm_xor_si128(a0, d));
        __m128i h0 = _mm_xor_si128(ezp_aes_enc1(&ezp_fixed_key, _mm_xor_si128(p0, tw)), p0);
        __m128i h1 = _mm_xor_si128(ezp_aes_enc1(&ezp_fixed_key, _mm_xor_si128(p1, tw)), p1);
        if (m0) h0 = _mm_xor_si128(h0, _mm_loadu_si128((const __m128i *)(m0 + 16 * j)));
        if (m1) h1 = _mm_xor_si128(h1, _mm_loadu_si128((const __m128i *)(m1 + 16 * j)));
        _mm_storeu_si128((__m128i *)(o0 + 16 * j), h0);
        _mm_storeu_si128((__m128i *)(o1 + 16 * j), h1);
    }
}

static void ezp_ot__hash2_sse(const uint8_t *x, const uint8_t *delta, size_t n, uint64_t hi, uint64_t lo,
                              const uint8_t *m0, const uint8_t *m1, uint8_t *o0, uint8_t *o1) {
    const __m128i d = _mm_loadu_si128((const __m128i *)delta);
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        __m128i p[8], v[8], t[4];
        for (int a = 0; a < 4; a++) {
            p[a] = _mm_loadu_si128((const __m128i *)(x + 16 * (j + a)));
            p[4 + a] = _mm_xor_si128(p[a], d);
            t[a] = _mm_set_epi64x((long long)hi, (long long)(lo + j + a));
        }
        EZP_AES_ROUNDS_N(&ezp_fixed_key, p, 8);
        for (int a = 0; a < 8; a++) v[a] = _mm_xor_si128(p[a], t[a & 3]);
        EZP_AES_ROUNDS_N(&ezp_fixed_key, v, 8);
        for (int a = 0; a < 4; a++) {
            __m128i h0 = _mm_xor_si128(v[a], p[a]), h1 = _mm_xor_si128(v[4 + a], p[4 + a]);
            if (m0) h0 = _mm_xor_si128(h0, _mm_loadu_si128((const __m128i *)(m0 + 16 * (j + a))));
            if (m1) h1 = _mm_xor_si128(h1, _mm_loadu_si128((const __m128i *)(m1 + 16 * (j + a))));
            _mm_storeu_si128((__m128i *)(o0 + 16 * (j + a)), h0);
            _mm_storeu_si128((__m128i *)(o1 + 16 * (j + a)), h1);
        }
    }
    for (; j < n; j++) {
        __m128i tw = _mm_set_epi64x((long long)hi, (long long)(lo + j));
        __m128i a0 = _mm_loadu_si128((const __m128i *)(x + 16 * j));
        __m128i p0 = ezp_aes_enc1(&ezp_fixed_key, a0), p1 = ezp_aes_enc1(&ezp_fixed_key, _mm_xor_si128(a0, d));
        __m128i h0 = _mm_xor_si128(ezp_aes_enc1(&ezp_fixed_key, _mm_xor_si128(p0, tw)), p0);
        __m128i h1 = _mm_xor_si128(ezp_aes_enc1(&ezp_fixed_key, _mm_xor_si128(p1, tw)), p1);
        if (m0) h0 = _mm_xor_si128(h0, _mm_loadu_si128((const __m128i *)(m0 + 16 * j)));
        if (m1) h1 = _mm_xor_si128(h1, _mm_loadu_si128((const __m128i *)(m1 + 16 * j)));
        _mm_storeu_si128((__m128i *)(o0 + 16 * j), h0);
        _mm_storeu_si128((__m128i *)(o1 + 16 * j), h1);
    }
}

static inline void ezp_ot_hash2(const uint8_t *x, const uint8_t *delta, size_t n, uint64_t hi, uint64_t lo,
                                const uint8_t *m0, const uint8_t *m1, uint8_t *o0, uint8_t *o1) {
    if (ezp_have_vaes) ezp_ot__hash2_vaes(x, delta, n, hi, lo, m0, m1, o0, o1);
    else ezp_ot__hash2_sse(x, delta, n, hi, lo, m0, m1, o0, o1);
}

/* Chosen-message OT, sender: messages of L bytes; y is planar, 2 x n x L:
 *     y[0][j] = m0[j] ^ pad(q_j),   y[1][j] = m1[j] ^ pad(q_j ^ delta)
 * where block k of pad(x) for OT j is TCCR(x, (hi | k, lo + j)). */
static void ezp_ot_chosen_send(const uint8_t *q, const uint8_t *delta, size_t n, uint64_t hi,
                               uint64_t lo, const uint8_t *m0, const uint8_t *m1, size_t L, uint8_t *y) {
    uint8_t *y0 = y, *y1 = y + n * L;
    if (L == 16) {
        ezp_ot_hash2(q, delta, n, hi, lo, m0, m1, y0, y1);
        return;
    }
    uint8_t p0[256 * 16] __attribute__((aligned(64)));
    uint8_t p1[256 * 16] __attribute__((aligned(64)));
    size_t nb = (L + 15) / 16;
    for (size_t j0 = 0; j0 < n; j0 += 256) {
        size_t m = n - j0 < 256 ? n - j0 : 256;
        for (size_t k = 0; k < nb; k++) {
            ezp_ot_hash2(q + 16 * j0, delta, m, hi | k, lo + j0, NULL, NULL, p0, p1);
            size_t off = 16 * k, len = L - off < 16 ? L - off : 16;
            for (size_t j = 0; j < m; j++) {
                size_t jj = j0 + j;
                ezp_ot__xor_bytes(y0 + jj * L + off, m0 + jj * L + off, p0 + 16 * j, len);
                ezp_ot__xor_bytes(y1 + jj * L + off, m1 + jj * L + off, p1 + 16 * j, len);
            }
        }
    }
}

/* Chosen-message OT, receiver: out[j] = y[b_j][j] ^ pad(t_j) (b: bytes 0/1, y planar 2 x n x L). */
static void ezp_ot_chosen_recv(const uint8_t *t, const uint8_t *b, size_t n, uint64_t hi, uint64_t lo,
                               const uint8_t *y, size_t L, uint8_t *out) {
    uint8_t p[256 * 16] __attribute__((aligned(64)));
    size_t nb = (L + 15) / 16;
    for (size_t j0 = 0; j0 < n; j0 += 256) {
        size_t m = n - j0 < 256 ? n - j0 : 256;
        for (size_t k = 0; k < nb; k++) {
            ezp_ot_tccr(t + 16 * j0, NULL, m, hi | k, lo + j0, p);
            size_t off = 16 * k, len = L - off < 16 ? L - off : 16;
            for (size_t j = 0; j < m; j++) {
                size_t jj = j0 + j;
                ezp_ot__xor_bytes(out + jj * L + off, y + ((b[jj] & 1) * n + jj) * L + off, p + 16 * j, len);
            }
        }
    }
}

static inline uint64_t ezp_ot__mask(unsigned w) {
    return w >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << w) - 1);
}

/* Additive correlated OT over Z_2^w, sender.  For OT j with width w_j (widths[j], or w
 * when widths is NULL): x_j = H(q_j) mod 2^w_j and d_j = H(q_j ^ delta) - x_j - c_j
 * mod 2^w_j, written as ceil(w_j/8) little-endian bytes, one after another, into d.
 * Returns the number of bytes written. */
static size_t ezp_ot_acot_send(const uint8_t *q, const uint8_t *delta, size_t n, uint64_t hi, uint64_t lo,
                               const uint64_t *c, const uint8_t *widths, unsigned w, uint64_t *x,
                               uint8_t *d) {
    uint8_t p0[256 * 16] __attribute__((aligned(64)));
    uint8_t p1[256 * 16] __attribute__((aligned(64)));
    size_t off = 0;
    for (size_t j0 = 0; j0 < n; j0 += 256) {
        size_t m = n - j0 < 256 ? n - j0 : 256;
        ezp_ot_hash2(q + 16 * j0, delta, m, hi, lo + j0, NULL, NULL, p0, p1);
        for (size_t j = 0; j < m; j++) {
            size_t jj = j0 + j;
            unsigned wj = widths ? widths[jj] : w;
            uint64_t mk = ezp_ot__mask(wj), h0, h1;
            memcpy(&h0, p0 + 16 * j, 8);
            memcpy(&h1, p1 + 16 * j, 8);
            uint64_t xj = h0 & mk;
            uint64_t dj = (h1 - xj - c[jj]) & mk;
            x[jj] = xj;
            size_t nbj = (wj + 7) / 8;
            memcpy(d + off, &dj, nbj);      /* little-endian host (x86-64) */
            off += nbj;
        }
    }
    return off;
}

/* Additive correlated OT, receiver: y_j = H(t_j) - b_j * d_j mod 2^w_j  (= x_j + b_j c_j). */
static size_t ezp_ot_acot_recv(const uint8_t *t, const uint8_t *b, size_t n, uint64_t hi, uint64_t lo,
                               const uint8_t *widths, unsigned w, const uint8_t *d, uint64_t *y) {
    uint8_t p[256 * 16] __attribute__((aligned(64)));
    size_t off = 0;
    for (size_t j0 = 0; j0 < n; j0 += 256) {
        size_t m = n - j0 < 256 ? n - j0 : 256;
        ezp_ot_tccr(t + 16 * j0, NULL, m, hi, lo + j0, p);
        for (size_t j = 0; j < m; j++) {
            size_t jj = j0 + j;
            unsigned wj = widths ? widths[jj] : w;
            uint64_t mk = ezp_ot__mask(wj), h, dj = 0;
            size_t nbj = (wj + 7) / 8;
            memcpy(&h, p + 16 * j, 8);
            memcpy(&dj, d + off, nbj);
            off += nbj;
            y[jj] = (h - (dj & ((uint64_t)0 - (uint64_t)(b[jj] & 1)))) & mk;
        }
    }
    return off;
}

#endif /* EZP_OT_H */
