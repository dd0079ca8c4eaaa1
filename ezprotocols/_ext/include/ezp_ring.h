/* Exact kernels over the ring Z_2^64 (uint64_t, wrap-around is the modulus).
 *
 *  - ezp_gemm_u64: C (+)= A @ B mod 2^64, row-major, blocked Goto-style (packed
 *    panels of A and B sized for L1/L2) with an AVX-512 6x32 micro-kernel
 *    (VPMULLQ + VPADDQ, 24 accumulators) chosen at run time; a portable
 *    scalar path otherwise.  numpy's uint64 matmul has no BLAS behind it; this
 *    runs near the speed of float64 BLAS.
 *  - ezp_im2col_u64 / ezp_col2im_add_u64: convolution geometry (NCHW, stride,
 *    padding, dilation) so conv2d is one GEMM per group.
 *  - ezp_vole_send / ezp_vole_recv: Gilboa multiplication with vector
 *    correlations on top of random OT (IKNP ROT): each OT o turns a random seed
 *    pair into a correction carrying the vector corr[ci[o], :] modulo 2^(64-sh[o]),
 *    bit-packed to exactly (64 - sh[o]) bits per value, and both sides fold
 *    2^sh[o] * (their output) into an accumulator row acc[ai[o], :].  Seeds are
 *    expanded with the correlation-robust hash G(s)_t = pi(s ^ T_t) ^ s ^ T_t
 *    of fixed-key AES (eprint 2019/074, 7.2) with tweak T_t = (tweak_hi, t).
 *  - ezp_shift_sum_u64: out[j] = sum_i y[j*nb + i] << i (Gilboa recombination).
 */
#ifndef EZP_RING_H
#define EZP_RING_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>
#include "ezp_aes.h"

static int ezp_ring_have_avx512 = 0;

static inline void ezp_ring_init(void) {
    const char *no = getenv("EZP_NO_AVX512");
    __builtin_cpu_init();
    ezp_ring_have_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
                           && !(no && no[0] && no[0] != '0');
}

/* ==================================================================== GEMM */

#define EZP_MR 6
#define EZP_NR 32
#define EZP_KC 128
#define EZP_MC 240
#define EZP_NC 2048

/* Pack A[ic:ic+mc, pc:pc+kc] into row panels of EZP_MR: Ap[panel][p][r] (zero padded). */
static void ezp__pack_a(const uint64_t *A, size_t lda, size_t mc, size_t kc, uint64_t *Ap) {
    for (size_t i0 = 0; i0 < mc; i0 += EZP_MR) {
        size_t mr = mc - i0 < EZP_MR ? mc - i0 : EZP_MR;
        for (size_t p = 0; p < kc; p++) {
            size_t r = 0;
            for (; r < mr; r++) Ap[p * EZP_MR + r] = A[(i0 + r) * lda + p];
            for (; r < EZP_MR; r++) Ap[p * EZP_MR + r] = 0;
        }
        Ap += kc * EZP_MR;
    }
}

/* Pack B[pc:pc+kc, jc:jc+nc] into column panels of EZP_NR: Bp[panel][p][c] (zero padded). */
static void ezp__pack_b(const uint64_t *B, size_t ldb, size_t kc, size_t nc, uint64_t *Bp) {
    for (size_t j0 = 0; j0 < nc; j0 += EZP_NR) {
        size_t nr = nc - j0 < EZP_NR ? nc - j0 : EZP_NR;
        for (size_t p = 0; p < kc; p++) {
            const uint64_t *src = B + p * ldb + j0;
            uint64_t *dst = Bp + p * EZP_NR;
            if (nr == EZP_NR) memcpy(dst, src, EZP_NR * 8);
            else {
                memcpy(dst, src, nr * 8);
                memset(dst + nr, 0, (EZP_NR - nr) * 8);
            }
        }
        Bp += kc * EZP_NR;
    }
}

__attribute__((target("avx512f,avx512dq")))
static void ezp__ukernel_avx512(size_t kc, const uint64_t *Ap, const uint64_t *Bp, uint64_t *C,
                                size_t ldc, int add, size_t mr, size_t nr) {
    __m512i c[EZP_MR][4];
    for (int i = 0; i < EZP_MR; i++)
        for (int j = 0; j < 4; j++) c[i][j] = _mm512_setzero_si512();
    for (size_t p = 0; p < kc; p++) {
        const __m512i b0 = _mm512_loadu_si512((const void *)(Bp + 0));
        const __m512i b1 = _mm512_loadu_si512((const void *)(Bp + 8));
        const __m512i b2 = _mm512_loadu_si512((const void *)(Bp + 16));
        const __m512i b3 = _mm512_loadu_si512((const void *)(Bp + 24));
        for (int i = 0; i < EZP_MR; i++) {
            const __m512i a = _mm512_set1_epi64((long long)Ap[i]);
            c[i][0] = _mm512_add_epi64(c[i][0], _mm512_mullo_epi64(a, b0));
            c[i][1] = _mm512_add_epi64(c[i][1], _mm512_mullo_epi64(a, b1));
            c[i][2] = _mm512_add_epi64(c[i][2], _mm512_mullo_epi64(a, b2));
            c[i][3] = _mm512_add_epi64(c[i][3], _mm512_mullo_epi64(a, b3));
        }
        Ap += EZP_MR;
        Bp += EZP_NR;
    }
    if (mr == EZP_MR && nr == EZP_NR) {
        for (int i = 0; i < EZP_MR; i++)
            for (int j = 0; j < 4; j++) {
                uint64_t *dst = C + i * ldc + 8 * j;
                __m512i v = c[i][j];
                if (add) v = _mm512_add_epi64(v, _mm512_loadu_si512((const void *)dst));
                _mm512_storeu_si512((void *)dst, v);
            }
    } else {
        uint64_t tmp[EZP_MR * EZP_NR] __attribute__((aligned(64)));
        for (int i = 0; i < EZP_MR; i++)
            for (int j = 0; j < 4; j++) _mm512_store_si512((void *)(tmp + i * EZP_NR + 8 * j), c[i][j]);
        for (size_t i = 0; i < mr; i++)
            for (size_t j = 0; j < nr; j++) {
                if (add) C[i * ldc + j] += tmp[i * EZP_NR + j];
                else C[i * ldc + j] = tmp[i * EZP_NR + j];
            }
    }
}

static void ezp__ukernel_scalar(size_t kc, const uint64_t *Ap, const uint64_t *Bp, uint64_t *C,
                                size_t ldc, int add, size_t mr, size_t nr) {
    uint64_t acc[EZP_MR * EZP_NR];
    memset(acc, 0, sizeof(acc));
    for (size_t p = 0; p < kc; p++) {
        for (int i = 0; i < EZP_MR; i++) {
            const uint64_t a = Ap[i];
            uint64_t *row = acc + i * EZP_NR;
            for (int j = 0; j < EZP_NR; j++) row[j] += a * Bp[j];
        }
        Ap += EZP_MR;
        Bp += EZP_NR;
    }
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            if (add) C[i * ldc + j] += acc[i * EZP_NR + j];
            else C[i * ldc + j] = acc[i * EZP_NR + j];
        }
}

/* C[m,n] (+)= A[m,k] @ B[k,n] mod 2^64; row strides lda, ldb, ldc (in elements).
 * accumulate = 0 overwrites C.  Returns 0, or -1 when scratch memory is unavailable. */
static int ezp_gemm_u64(size_t m, size_t n, size_t k, const uint64_t *A, size_t lda,
                        const uint64_t *B, size_t ldb, uint64_t *C, size_t ldc, int accumulate) {
    if (m == 0 || n == 0) return 0;
    if (k == 0) {
        if (!accumulate)
            for (size_t i = 0; i < m; i++) memset(C + i * ldc, 0, n * 8);
        return 0;
    }
    size_t ncap = n < EZP_NC ? n : EZP_NC;
    size_t mcap = m < EZP_MC ? m : EZP_MC;
    size_t kcap = k < EZP_KC ? k : EZP_KC;
    size_t bsz = ((ncap + EZP_NR - 1) / EZP_NR) * EZP_NR * kcap * 8;
    size_t asz = ((mcap + EZP_MR - 1) / EZP_MR) * EZP_MR * kcap * 8;
    uint64_t *Bp = (uint64_t *)aligned_alloc(64, (bsz + 63) / 64 * 64);
    uint64_t *Ap = (uint64_t *)aligned_alloc(64, (asz + 63) / 64 * 64);
    if (!Bp || !Ap) {
        free(Bp);
        free(Ap);
        return -1;
    }
    const int vec = ezp_ring_have_avx512;
    for (size_t jc = 0; jc < n; jc += EZP_NC) {
        size_t nc = n - jc < EZP_NC ? n - jc : EZP_NC;
        for (size_t pc = 0; pc < k; pc += EZP_KC) {
            size_t kc = k - pc < EZP_KC ? k - pc : EZP_KC;
            int add = accumulate || pc > 0;
            ezp__pack_b(B + pc * ldb + jc, ldb, kc, nc, Bp);
            for (size_t ic = 0; ic < m; ic += EZP_MC) {
                size_t mc = m - ic < EZP_MC ? m - ic : EZP_MC;
                ezp__pack_a(A + ic * lda + pc, lda, mc, kc, Ap);
                for (size_t jr = 0; jr < nc; jr += EZP_NR) {
                    size_t nr = nc - jr < EZP_NR ? nc - jr : EZP_NR;
                    const uint64_t *bp = Bp + (jr / EZP_NR) * kc * EZP_NR;
                    for (size_t ir = 0; ir < mc; ir += EZP_MR) {
                        size_t mr = mc - ir < EZP_MR ? mc - ir : EZP_MR;
                        const uint64_t *ap = Ap + (ir / EZP_MR) * kc * EZP_MR;
                        uint64_t *c = C + (ic + ir) * ldc + jc + jr;
                        if (vec) ezp__ukernel_avx512(kc, ap, bp, c, ldc, add, mr, nr);
                        else ezp__ukernel_scalar(kc, ap, bp, c, ldc, add, mr, nr);
                    }
                }
            }
        }
    }
    free(Bp);
    free(Ap);
    return 0;
}

/* ==================================================================== convolution geometry */

/* x: [N, C, H, W]; cols: [C*KH*KW, N*HO*WO] with
 * cols[(c*KH + i)*KW + j, (n*HO + y)*WO + x] = x[n, c, y*sh - ph + i*dh, x*sw - pw + j*dw] or 0. */
static void ezp_im2col_u64(const uint64_t *x, size_t N, size_t C, size_t H, size_t W,
                           size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                           size_t dh, size_t dw, size_t HO, size_t WO, uint64_t *cols) {
    const size_t ncol = N * HO * WO;
    for (size_t c = 0; c < C; c++)
        for (size_t i = 0; i < KH; i++)
            for (size_t j = 0; j < KW; j++) {
                uint64_t *row = cols + ((c * KH + i) * KW + j) * ncol;
                for (size_t n = 0; n < N; n++) {
                    const uint64_t *img = x + (n * C + c) * H * W;
                    for (size_t y = 0; y < HO; y++) {
                        uint64_t *dst = row + (n * HO + y) * WO;
                        ptrdiff_t iy = (ptrdiff_t)(y * sh + i * dh) - (ptrdiff_t)ph;
                        if (iy < 0 || iy >= (ptrdiff_t)H) {
                            memset(dst, 0, WO * 8);
                            continue;
                        }
                        const uint64_t *srow = img + (size_t)iy * W;
                        for (size_t xo = 0; xo < WO; xo++) {
                            ptrdiff_t ix = (ptrdiff_t)(xo * sw + j * dw) - (ptrdiff_t)pw;
                            dst[xo] = (ix < 0 || ix >= (ptrdiff_t)W) ? 0 : srow[ix];
                        }
                    }
                }
            }
}

/* The adjoint of im2col: x[n, c, iy, ix] += cols[...] for every in-range position. */
static void ezp_col2im_add_u64(const uint64_t *cols, size_t N, size_t C, size_t H, size_t W,
                               size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                               size_t dh, size_t dw, size_t HO, size_t WO, uint64_t *x) {
    const size_t ncol = N * HO * WO;
    for (size_t c = 0; c < C; c++)
        for (size_t i = 0; i < KH; i++)
            for (size_t j = 0; j < KW; j++) {
                const uint64_t *row = cols + ((c * KH + i) * KW + j) * ncol;
                for (size_t n = 0; n < N; n++) {
                    uint64_t *img = x + (n * C + c) * H * W;
                    for (size_t y = 0; y < HO; y++) {
                        ptrdiff_t iy = (ptrdiff_t)(y * sh + i * dh) - (ptrdiff_t)ph;
                        if (iy < 0 || iy >= (ptrdiff_t)H) continue;
                        const uint64_t *src = row + (n * HO + y) * WO;
                        uint64_t *drow = img + (size_t)iy * W;
                        for (size_t xo = 0; xo < WO; xo++) {
                            ptrdiff_t ix = (ptrdiff_t)(xo * sw + j * dw) - (ptrdiff_t)pw;
                            if (ix >= 0 && ix < (ptrdiff_t)W) drow[ix] += src[xo];
                        }
                    }
                }
            }
}

/* ==================================================================== Gilboa helpers */

/* out[j] = sum_{i < nb} y[j*nb + i] << i  (mod 2^64); negate: out[j] = -that. */
static void ezp_shift_sum_u64(const uint64_t *y, size_t n, size_t nb, int negate, uint64_t *out) {
    for (size_t j = 0; j < n; j++) {
        const uint64_t *r = y + j * nb;
        uint64_t s = 0;
        for (size_t i = 0; i < nb; i++) s += r[i] << i;
        out[j] = negate ? (uint64_t)0 - s : s;
    }
}

/* ==================================================================== bit streams */
/* A little-endian bit stream of values of (per run) constant width.  Positions are an
 * arithmetic progression, so the writer's only loop-carried dependency is the partial word
 * (two cycles per value) and the reader has none (it reads two words per value; the input
 * must have one readable padding word after the stream). */

static inline uint64_t ezp_mask_bits(unsigned nb) { return nb >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << nb) - 1); }

/* Append v (< 2^wd) at bit position *pos; *buf holds the bits of the current partial word. */
static inline void ezp_bw_put(uint64_t *out, uint64_t *pos, uint64_t *buf, uint64_t v, unsigned wd) {
    const unsigned o = (unsigned)(*pos & 63);
    const uint64_t lo = *buf | (v << o);
    out[*pos >> 6] = lo;
    const uint64_t spill = (v >> 1) >> (63 - o);       /* v >> (64 - o), 0 when o == 0 */
    *buf = (o + wd >= 64) ? spill : lo;
    *pos += wd;
}

static inline void ezp_bw_flush(uint64_t *out, uint64_t pos, uint64_t buf) {
    if (pos & 63) out[pos >> 6] = buf;
}

/* The wd-bit value at bit position pos. */
static inline uint64_t ezp_br_get(const uint64_t *in, uint64_t pos, uint64_t mk) {
    const unsigned o = (unsigned)(pos & 63);
    const uint64_t *w = in + (pos >> 6);
    return ((w[0] >> o) | ((w[1] << 1) << (63 - o))) & mk;
}

/* Number of 64-bit words of a bit stream holding m values of (64 - sh[o]) bits for each o. */
static inline size_t ezp_vole_words(size_t n_ot, size_t m, const uint8_t *sh) {
    uint64_t bits = 0;
    for (size_t o = 0; o < n_ot; o++) bits += (uint64_t)(64 - sh[o]) * m;
    return (size_t)((bits + 63) / 64);
}

/* ==================================================================== vector OLE from random OT */

#define EZP_VOLE_SCR 1024   /* blocks of seed expansion per batch (16 KiB) */

/* Expand blocks [b0, b0+nb) of G(seed) into out (16*nb bytes). */
static inline void ezp__vole_fill_in(const uint8_t *seed, uint64_t tweak_hi, size_t b0, size_t nb, uint64_t *in) {
    uint64_t s_lo, s_hi;
    memcpy(&s_lo, seed, 8);
    memcpy(&s_hi, seed + 8, 8);
    for (size_t t = 0; t < nb; t++) {
        in[2 * t] = s_lo ^ (uint64_t)(b0 + t);
        in[2 * t + 1] = s_hi ^ tweak_hi;
    }
}

static inline void ezp__cr_inplace(uint64_t *in, uint64_t *out, size_t nblocks) {
    /* out = pi(in) ^ in (the CR hash of eprint 2019/074, VAES-512 when present) */
    ezp_cr_hash((const uint8_t *)in, (uint8_t *)out, nblocks);
}

/* Work list helper: iterate over (ot, value range) pieces of at most 2*EZP_VOLE_SCR values,
 * grouping whole small OTs so each AES batch has up to EZP_VOLE_SCR blocks. */
typedef struct {
    size_t ot, v0, v1;
} ezp__piece;

/* Element-wise passes of the vector-OLE kernels (vectorised by the compiler; an AVX-512
 * build of each is chosen at run time). */
#define EZP_VOLE_PASS_DEFS(SUFFIX, ATTR)                                                      \
    ATTR static void ezp__vole_sfx_##SUFFIX(size_t n, const uint64_t *x0, uint64_t *x1d,        \
                                             const uint64_t *cr, uint64_t *ac, uint64_t mk,      \
                                             unsigned s) {                                       \
        for (size_t t = 0; t < n; t++) {                                                        \
            const uint64_t x = x0[t];                                                           \
            x1d[t] = (x + cr[t] - x1d[t]) & mk;                                                 \
            ac[t] -= x << s;                                                                    \
        }                                                                                       \
    }                                                                                           \
    ATTR static void ezp__vole_rfx_##SUFFIX(size_t n, const uint64_t *x0, const uint64_t *d,    \
                                             uint64_t *ac, uint64_t cm, unsigned s) {            \
        for (size_t t = 0; t < n; t++) ac[t] += (x0[t] + (d[t] & cm)) << s;                     \
    }

EZP_VOLE_PASS_DEFS(gen, )
EZP_VOLE_PASS_DEFS(avx512, __attribute__((target("avx512f"))))

static inline void ezp__vole_sfx(size_t n, const uint64_t *x0, uint64_t *x1d, const uint64_t *cr,
                                 uint64_t *ac, uint64_t mk, unsigned s) {
    if (ezp_ring_have_avx512) ezp__vole_sfx_avx512(n, x0, x1d, cr, ac, mk, s);
    else ezp__vole_sfx_gen(n, x0, x1d, cr, ac, mk, s);
}

static inline void ezp__vole_rfx(size_t n, const uint64_t *x0, const uint64_t *d, uint64_t *ac,
                                 uint64_t cm, unsigned s) {
    if (ezp_ring_have_avx512) ezp__vole_rfx_avx512(n, x0, d, ac, cm, s);
    else ezp__vole_rfx_gen(n, x0, d, ac, cm, s);
}

/* Sender.  seed0/seed1: [n_ot][16]; corr: rows of m values, row ci[o]; acc rows of m values,
 * row ai[o]; sh[o] in [0, 63].  For each OT: x = G(seed0) mod 2^w, d = x + corr - G(seed1)
 * mod 2^w (w = 64 - sh) appended to the packed stream out; acc[ai] -= x << sh. */
static int ezp_vole_send(size_t n_ot, size_t m, const uint8_t *seed0, const uint8_t *seed1,
                         const uint64_t *corr, const int64_t *ci, uint64_t *acc, const int64_t *ai,
                         const uint8_t *sh, uint64_t tweak_hi, uint64_t *out) {
    if (n_ot == 0 || m == 0) return 0;
    const size_t maxv = 2 * EZP_VOLE_SCR;
    uint64_t *in0 = (uint64_t *)aligned_alloc(64, EZP_VOLE_SCR * 16);
    uint64_t *in1 = (uint64_t *)aligned_alloc(64, EZP_VOLE_SCR * 16);
    uint64_t *g0 = (uint64_t *)aligned_alloc(64, EZP_VOLE_SCR * 16);
    uint64_t *g1 = (uint64_t *)aligned_alloc(64, EZP_VOLE_SCR * 16);
    ezp__piece *pcs = (ezp__piece *)malloc(sizeof(ezp__piece) * EZP_VOLE_SCR);
    if (!in0 || !in1 || !g0 || !g1 || !pcs) {
        free(in0); free(in1); free(g0); free(g1); free(pcs);
        return -1;
    }
    uint64_t bpos = 0, bbuf = 0;
    size_t o = 0, v = 0;
    while (o < n_ot) {
        /* gather pieces */
        size_t np = 0, nblk = 0;
        while (o < n_ot && np < EZP_VOLE_SCR) {
            size_t v1 = m - v > maxv ? v + maxv : m;
            size_t need = (v1 + 1) / 2 - v / 2;
            if (nblk + need > EZP_VOLE_SCR) break;
            pcs[np].ot = o; pcs[np].v0 = v; pcs[np].v1 = v1;
            ezp__vole_fill_in(seed0 + 16 * o, tweak_hi, v / 2, need, in0 + 2 * nblk);
            ezp__vole_fill_in(seed1 + 16 * o, tweak_hi, v / 2, need, in1 + 2 * nblk);
            nblk += need;
            np++;
            if (v1 == m) { o++; v = 0; } else v = v1;
        }
        ezp__cr_inplace(in0, g0, nblk);
        ezp__cr_inplace(in1, g1, nblk);
        size_t off = 0;
        for (size_t p = 0; p < np; p++) {
            const size_t oo = pcs[p].ot, v0 = pcs[p].v0, v1 = pcs[p].v1;
            const unsigned s = sh[oo], wd = 64 - s;
            const uint64_t mk = ezp_mask_bits(wd);
            const uint64_t *cr = corr + (size_t)ci[oo] * m;
            uint64_t *ac = acc + (size_t)ai[oo] * m;
            const uint64_t *x0 = g0 + 2 * off - (v0 & ~(size_t)1);
            uint64_t *x1 = g1 + 2 * off - (v0 & ~(size_t)1);
            /* d = x0 + corr - x1 (into x1's scratch), acc -= x0 << s; then pack d */
            ezp__vole_sfx(v1 - v0, x0 + v0, x1 + v0, cr + v0, ac + v0, mk, s);
            for (size_t t = v0; t < v1; t++) ezp_bw_put(out, &bpos, &bbuf, x1[t], wd);
            off += (v1 + 1) / 2 - v0 / 2;
        }
    }
    ezp_bw_flush(out, bpos, bbuf);
    free(in0); free(in1); free(g0); free(g1); free(pcs);
    return 0;
}

/* Receiver.  seed: [n_ot][16] (the chosen seeds), choice[o] in {0,1}; inw: the packed stream
 * followed by one padding word (read, never used).
 * y = G(seed) + choice * d mod 2^w; acc[ai] += y << sh. */
static int ezp_vole_recv(size_t n_ot, size_t m, const uint8_t *seed, const uint8_t *choice,
                         const uint64_t *inw, uint64_t *acc, const int64_t *ai, const uint8_t *sh,
                         uint64_t tweak_hi) {
    if (n_ot == 0 || m == 0) return 0;
    const size_t maxv = 2 * EZP_VOLE_SCR;
    uint64_t *in0 = (uint64_t *)aligned_alloc(64, EZP_VOLE_SCR * 16);
    uint64_t *g0 = (uint64_t *)aligned_alloc(64, EZP_VOLE_SCR * 16);
    uint64_t *dt = (uint64_t *)aligned_alloc(64, EZP_VOLE_SCR * 16);
    ezp__piece *pcs = (ezp__piece *)malloc(sizeof(ezp__piece) * EZP_VOLE_SCR);
    if (!in0 || !g0 || !dt || !pcs) {
        free(in0); free(g0); free(dt); free(pcs);
        return -1;
    }
    uint64_t bpos = 0;
    size_t o = 0, v = 0;
    while (o < n_ot) {
        size_t np = 0, nblk = 0;
        while (o < n_ot && np < EZP_VOLE_SCR) {
            size_t v1 = m - v > maxv ? v + maxv : m;
            size_t need = (v1 + 1) / 2 - v / 2;
            if (nblk + need > EZP_VOLE_SCR) break;
            pcs[np].ot = o; pcs[np].v0 = v; pcs[np].v1 = v1;
            ezp__vole_fill_in(seed + 16 * o, tweak_hi, v / 2, need, in0 + 2 * nblk);
            nblk += need;
            np++;
            if (v1 == m) { o++; v = 0; } else v = v1;
        }
        ezp__cr_inplace(in0, g0, nblk);
        size_t off = 0;
        for (size_t p = 0; p < np; p++) {
            const size_t oo = pcs[p].ot, v0 = pcs[p].v0, v1 = pcs[p].v1;
            const unsigned s = sh[oo], wd = 64 - s;
            const uint64_t cm = choice[oo] ? ~(uint64_t)0 : 0;
            const uint64_t mk = ezp_mask_bits(wd);
            uint64_t *ac = acc + (size_t)ai[oo] * m;
            const uint64_t *x0 = g0 + 2 * off - (v0 & ~(size_t)1);
            for (size_t t = v0; t < v1; t++) {          /* unpack (no loop-carried state) */
                dt[t - v0] = ezp_br_get(inw, bpos + (uint64_t)(t - v0) * wd, mk);
            }
            bpos += (uint64_t)(v1 - v0) * wd;
            ezp__vole_rfx(v1 - v0, x0 + v0, dt, ac + v0, cm, s);
            off += (v1 + 1) / 2 - v0 / 2;
        }
    }
    free(in0); free(g0); free(dt); free(pcs);
    return 0;
}

#endif /* EZP_RING_H */
