/* Ferret kernels (Yang, Weng, Lan, Zhang, Wang, eprint 2020/924): GGM-tree expansion for
 * the single-point COTs (punctured PRF, eprint 2019/1159) batched over all trees of an
 * iteration, and the primal-LPN encoding with a d-sparse public matrix.
 *
 * Blocks are 16 bytes.  GGM length-doubling PRG from fixed-key AES (two public keys):
 *     G(s) = (AES_L(s) ^ s, AES_R(s) ^ s)
 * A tree of depth h has 2^h leaves; node j of level l has children 2j, 2j+1 of level l+1.
 * Levels are expanded in place in the leaf buffer (parents at [0, m), children at [0, 2m),
 * processed from the last parent down so nothing is overwritten before it is read).
 */
#ifndef EZP_FERRET_H
#define EZP_FERRET_H

#include "ezp_aes.h"

#define EZP_LPN_D 10

static ezp_aes_key ezp_ggm_kl, ezp_ggm_kr;

/* Public keys of the two PRG halves: bytes 16..47 of the binary expansion of pi
 * (continuing after the 16 bytes of the fixed hash key); public by design. */
static const uint8_t EZP_GGM_KEYS[32] = {
    0xa4, 0x09, 0x38, 0x22, 0x29, 0x9f, 0x31, 0xd0, 0x08, 0x2e, 0xfa, 0x98, 0xec, 0x4e, 0x6c, 0x89,
    0x45, 0x28, 0x21, 0xe6, 0x38, 0xd0, 0x13, 0x77, 0xbe, 0x54, 0x66, 0xcf, 0x34, 0xe9, 0x0c, 0x6c};

static inline void ezp_ferret_init(void) {
    ezp_aes_init();
    ezp_aes_set_key(&ezp_ggm_kl, EZP_GGM_KEYS);
    ezp_aes_set_key(&ezp_ggm_kr, EZP_GGM_KEYS + 16);
}

/* ---------------------------------------------------------------- one level, in place */

static void ezp_ggm__level_sse(uint8_t *nodes, size_t m, __m128i *sl, __m128i *sr) {
    const __m128i *kl = ezp_ggm_kl.rk, *kr = ezp_ggm_kr.rk;
    __m128i L0 = *sl, R0 = *sr;
    size_t j = m;
    while (j >= 4) {
        j -= 4;
        __m128i p[4], L[4], R[4];
        for (int a = 0; a < 4; a++) {
            p[a] = _mm_loadu_si128((const __m128i *)(nodes + 16 * (j + a)));
            L[a] = _mm_xor_si128(p[a], kl[0]);
            R[a] = _mm_xor_si128(p[a], kr[0]);
        }
        for (int r = 1; r < 10; r++)
            for (int a = 0; a < 4; a++) {
                L[a] = _mm_aesenc_si128(L[a], kl[r]);
                R[a] = _mm_aesenc_si128(R[a], kr[r]);
            }
        for (int a = 0; a < 4; a++) {
            L[a] = _mm_xor_si128(_mm_aesenclast_si128(L[a], kl[10]), p[a]);
            R[a] = _mm_xor_si128(_mm_aesenclast_si128(R[a], kr[10]), p[a]);
            L0 = _mm_xor_si128(L0, L[a]);
            R0 = _mm_xor_si128(R0, R[a]);
        }
        for (int a = 0; a < 4; a++) {
            _mm_storeu_si128((__m128i *)(nodes + 32 * (j + a)), L[a]);
            _mm_storeu_si128((__m128i *)(nodes + 32 * (j + a) + 16), R[a]);
        }
    }
    while (j > 0) {
        j--;
        __m128i p = _mm_loadu_si128((const __m128i *)(nodes + 16 * j));
        __m128i L = _mm_xor_si128(ezp_aes_enc1(&ezp_ggm_kl, p), p);
        __m128i R = _mm_xor_si128(ezp_aes_enc1(&ezp_ggm_kr, p), p);
        L0 = _mm_xor_si128(L0, L);
        R0 = _mm_xor_si128(R0, R);
        _mm_storeu_si128((__m128i *)(nodes + 32 * j), L);
        _mm_storeu_si128((__m128i *)(nodes + 32 * j + 16), R);
    }
    *sl = L0;
    *sr = R0;
}

EZP_VAES_TARGET static void ezp_ggm__level_vaes(uint8_t *nodes, size_t m, __m128i *sl, __m128i *sr) {
    __m512i kl[11], kr[11];
    ezp__bcast_key(&ezp_ggm_kl, kl);
    ezp__bcast_key(&ezp_ggm_kr, kr);
    /* interleave [L0 L1 L2 L3], [R0 R1 R2 R3] -> [L0 R0 L1 R1], [L2 R2 L3 R3] (64-bit lanes) */
    const __m512i ilo = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    const __m512i ihi = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    __m512i AL = _mm512_setzero_si512(), AR = _mm512_setzero_si512();
    size_t j = m;
    while (j >= 16) {
        j -= 16;
        __m512i p[4], L[4], R[4];
        for (int a = 0; a < 4; a++) {
            p[a] = _mm512_loadu_si512((const void *)(nodes + 16 * (j + 4 * a)));
            L[a] = _mm512_xor_si512(p[a], kl[0]);
            R[a] = _mm512_xor_si512(p[a], kr[0]);
        }
        for (int r = 1; r < 10; r++)
            for (int a = 0; a < 4; a++) {
                L[a] = _mm512_aesenc_epi128(L[a], kl[r]);
                R[a] = _mm512_aesenc_epi128(R[a], kr[r]);
            }
        for (int a = 0; a < 4; a++) {
            L[a] = _mm512_xor_si512(_mm512_aesenclast_epi128(L[a], kl[10]), p[a]);
            R[a] = _mm512_xor_si512(_mm512_aesenclast_epi128(R[a], kr[10]), p[a]);
            AL = _mm512_xor_si512(AL, L[a]);
            AR = _mm512_xor_si512(AR, R[a]);
        }
        for (int a = 0; a < 4; a++) {
            __m512i lo = _mm512_permutex2var_epi64(L[a], ilo, R[a]);
            __m512i hi = _mm512_permutex2var_epi64(L[a], ihi, R[a]);
            _mm512_storeu_si512((void *)(nodes + 32 * (j + 4 * a)), lo);
            _mm512_storeu_si512((void *)(nodes + 32 * (j + 4 * a) + 64), hi);
        }
    }
    __m128i l4 = _mm_xor_si128(_mm_xor_si128(_mm512_extracti32x4_epi32(AL, 0), _mm512_extracti32x4_epi32(AL, 1)),
                               _mm_xor_si128(_mm512_extracti32x4_epi32(AL, 2), _mm512_extracti32x4_epi32(AL, 3)));
    __m128i r4 = _mm_xor_si128(_mm_xor_si128(_mm512_extracti32x4_epi32(AR, 0), _mm512_extracti32x4_epi32(AR, 1)),
                               _mm_xor_si128(_mm512_extracti32x4_epi32(AR, 2), _mm512_extracti32x4_epi32(AR, 3)));
    *sl = _mm_xor_si128(*sl, l4);
    *sr = _mm_xor_si128(*sr, r4);
    if (j) ezp_ggm__level_sse(nodes, j, sl, sr);
}

/* Expand the m nodes at the start of `nodes` into 2m children; *sl / *sr receive the XOR
 * of all left / right children. */
static inline void ezp_ggm_level(uint8_t *nodes, size_t m, __m128i *sl, __m128i *sr) {
    *sl = _mm_setzero_si128();
    *sr = _mm_setzero_si128();
    if (ezp_have_vaes && m >= 16) ezp_ggm__level_vaes(nodes, m, sl, sr);
    else ezp_ggm__level_sse(nodes, m, sl, sr);
}

/* Clear bit 0 of every leaf and return their XOR. */
static inline __m128i ezp_ggm__clear_sum(uint8_t *leaves, size_t N) {
    const __m128i mask = _mm_set_epi64x(-1, -2);
    __m128i s0 = _mm_setzero_si128(), s1 = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 2 <= N; i += 2) {
        __m128i a = _mm_and_si128(_mm_loadu_si128((const __m128i *)(leaves + 16 * i)), mask);
        __m128i b = _mm_and_si128(_mm_loadu_si128((const __m128i *)(leaves + 16 * i + 16)), mask);
        _mm_storeu_si128((__m128i *)(leaves + 16 * i), a);
        _mm_storeu_si128((__m128i *)(leaves + 16 * i + 16), b);
        s0 = _mm_xor_si128(s0, a);
        s1 = _mm_xor_si128(s1, b);
    }
    for (; i < N; i++) {
        __m128i a = _mm_and_si128(_mm_loadu_si128((const __m128i *)(leaves + 16 * i)), mask);
        _mm_storeu_si128((__m128i *)(leaves + 16 * i), a);
        s0 = _mm_xor_si128(s0, a);
    }
    return _mm_xor_si128(s0, s1);
}

/* Sender of t single-point COTs over bins of N = 2^h: tree i from seeds[i] fills
 * out[i*N .. (i+1)*N) with its leaves (bit 0 cleared); sums[(i*h + l)*2 + {0,1}] is the XOR
 * of the left / right children at level l+1; leafsum[i] the XOR of the leaves. */
static void ezp_ggm_send(const uint8_t *seeds, size_t t, int h, uint8_t *out, uint8_t *sums, uint8_t *leafsum) {
    size_t N = (size_t)1 << h;
    for (size_t i = 0; i < t; i++) {
        uint8_t *nodes = out + 16 * N * i;
        memcpy(nodes, seeds + 16 * i, 16);
        for (int l = 0; l < h; l++) {
            __m128i sl, sr;
            ezp_ggm_level(nodes, (size_t)1 << l, &sl, &sr);
            _mm_storeu_si128((__m128i *)(sums + 32 * (i * h + l)), sl);
            _mm_storeu_si128((__m128i *)(sums + 32 * (i * h + l) + 16), sr);
        }
        _mm_storeu_si128((__m128i *)(leafsum + 16 * i), ezp_ggm__clear_sum(nodes, N));
    }
}

/* Receiver: tree i punctured at alpha[i] < N.  ksib[i*h + l] is the XOR of the level-(l+1)
 * children on the side opposite to the path (the sender's sum it obtained by OT);
 * c[i] = delta ^ XOR of the sender's leaves.  Fills out[i*N ..) with the sender's leaves
 * except at alpha[i], where it writes c[i] ^ XOR of the others (= leaf ^ delta). */
static void ezp_ggm_recv(const uint32_t *alpha, const uint8_t *ksib, const uint8_t *c, size_t t, int h,
                         uint8_t *out, uint8_t *scratch) {
    size_t N = (size_t)1 << h;
    const __m128i zero = _mm_setzero_si128();
    for (size_t i = 0; i < t; i++) {
        /* scratch != NULL: expand there (N blocks) and XOR the leaves into out */
        uint8_t *nodes = scratch ? scratch : out + 16 * N * i;
        size_t a = alpha[i] & (N - 1);
        size_t p = a >> (h - 1);                       /* path node at level 1 */
        _mm_storeu_si128((__m128i *)(nodes + 16 * (p ^ 1)), _mm_loadu_si128((const __m128i *)(ksib + 16 * (i * h))));
        _mm_storeu_si128((__m128i *)(nodes + 16 * p), zero);
        for (int l = 1; l < h; l++) {
            __m128i s[2];
            ezp_ggm_level(nodes, (size_t)1 << l, &s[0], &s[1]);
            /* remove the two children of the (unknown, zeroed) path node */
            s[0] = _mm_xor_si128(s[0], _mm_loadu_si128((const __m128i *)(nodes + 32 * p)));
            s[1] = _mm_xor_si128(s[1], _mm_loadu_si128((const __m128i *)(nodes + 32 * p + 16)));
            size_t np = a >> (h - 1 - l);
            size_t sib = np ^ 1;
            __m128i k = _mm_loadu_si128((const __m128i *)(ksib + 16 * (i * h + l)));
            _mm_storeu_si128((__m128i *)(nodes + 16 * sib), _mm_xor_si128(k, s[sib & 1]));
            _mm_storeu_si128((__m128i *)(nodes + 16 * np), zero);
            p = np;
        }
        __m128i sum = ezp_ggm__clear_sum(nodes, N);     /* the zeroed leaf adds nothing */
        _mm_storeu_si128((__m128i *)(nodes + 16 * a), _mm_xor_si128(sum, _mm_loadu_si128((const __m128i *)(c + 16 * i))));
        if (scratch) {
            uint8_t *dst = out + 16 * N * i;
            for (size_t j = 0; j < N; j++)
                _mm_storeu_si128((__m128i *)(dst + 16 * j),
                                 _mm_xor_si128(_mm_loadu_si128((const __m128i *)(dst + 16 * j)),
                                               _mm_loadu_si128((const __m128i *)(nodes + 16 * j))));
        }
    }
}

/* ---------------------------------------------------------------- LPN encoding */

/* out[j] ^= XOR over e < EZP_LPN_D of base[idx(i0 + j, e)] for j < n (overwrite: out[j] = ...).  Row r of the public
 * matrix has the column indices idx(r, e) = (w[10 r + e] * k) >> 32, where w is the stream of
 * little-endian 32-bit words of AES_key(0), AES_key(1), ... (counter in the low 64 bits). */
#define EZP_LPN_BATCH 512     /* rows per batch: 5120 words = 1280 AES blocks */
#define EZP_LPN_PF 8          /* prefetch distance in rows */
static void ezp_lpn(const ezp_aes_key *key, const uint8_t *base, uint32_t k, uint8_t *out, size_t n, uint64_t i0,
                    int overwrite) {
    uint32_t w[EZP_LPN_D * EZP_LPN_BATCH + 8] __attribute__((aligned(64)));
    uint32_t idx[EZP_LPN_D * (EZP_LPN_BATCH + EZP_LPN_PF)] __attribute__((aligned(64)));
    const int nt = ((uintptr_t)out & 15) == 0;     /* non-temporal stores need 16-byte alignment */
    for (size_t j0 = 0; j0 < n; j0 += EZP_LPN_BATCH) {
        size_t m = n - j0 < EZP_LPN_BATCH ? n - j0 : EZP_LPN_BATCH;
        uint64_t word0 = (uint64_t)EZP_LPN_D * (i0 + j0);
        size_t skip = (size_t)(word0 & 3), nw = EZP_LPN_D * m;
        ezp_aes_ctr(key, 0, word0 >> 2, (uint8_t *)w, (skip + nw + 3) / 4);
        const uint32_t *ws = w + skip;
        for (size_t i = 0; i < nw; i++) idx[i] = (uint32_t)(((uint64_t)ws[i] * k) >> 32);
        for (size_t j = 0; j < m; j++) {
            if (j + EZP_LPN_PF < m) {
                const uint32_t *pf = idx + EZP_LPN_D * (j + EZP_LPN_PF);
                for (int e = 0; e < EZP_LPN_D; e++) _mm_prefetch((const char *)(base + 16 * (size_t)pf[e]), _MM_HINT_T0);
            }
            const uint32_t *ix = idx + EZP_LPN_D * j;
            __m128i a0 = overwrite ? _mm_setzero_si128() : _mm_loadu_si128((const __m128i *)(out + 16 * (j0 + j)));
            __m128i a1 = _mm_loadu_si128((const __m128i *)(base + 16 * (size_t)ix[0]));
            for (int e = 1; e < EZP_LPN_D; e += 2) {
                a0 = _mm_xor_si128(a0, _mm_loadu_si128((const __m128i *)(base + 16 * (size_t)ix[e])));
                if (e + 1 < EZP_LPN_D)
                    a1 = _mm_xor_si128(a1, _mm_loadu_si128((const __m128i *)(base + 16 * (size_t)ix[e + 1])));
            }
            __m128i r = _mm_xor_si128(a0, a1);
            if (nt) _mm_stream_si128((__m128i *)(out + 16 * (j0 + j)), r);   /* keep base in cache */
            else _mm_storeu_si128((__m128i *)(out + 16 * (j0 + j)), r);
        }
    }
    if (nt) _mm_sfence();
}

/* ---------------------------------------------------------------- choice-bit corrections */

/* packed[j/8] bit j%8 = bit 0 of block j, XORed with the packed bits b (b may be NULL). */
static void ezp_ferret_lsb_pack(const uint8_t *blocks, size_t n, const uint8_t *b, uint8_t *packed) {
    size_t nb = (n + 7) / 8;
    for (size_t i = 0; i < nb; i++) {
        size_t j0 = 8 * i, m = n - j0 < 8 ? n - j0 : 8;
        uint8_t acc = 0;
        for (size_t k = 0; k < m; k++) acc |= (uint8_t)((blocks[16 * (j0 + k)] & 1) << k);
        packed[i] = acc ^ (b ? b[i] : 0);
    }
    if (n % 8) packed[nb - 1] &= (uint8_t)((1u << (n % 8)) - 1);
}

/* blocks[j] ^= delta where bit j of the packed bits is set. */
static void ezp_ferret_cond_xor_packed(uint8_t *blocks, size_t n, const uint8_t *packed, const uint8_t *delta) {
    const __m128i d = _mm_loadu_si128((const __m128i *)delta);
    for (size_t j = 0; j < n; j++) {
        __m128i m = _mm_set1_epi8((char)(0 - ((packed[j >> 3] >> (j & 7)) & 1)));
        __m128i x = _mm_loadu_si128((const __m128i *)(blocks + 16 * j));
        _mm_storeu_si128((__m128i *)(blocks + 16 * j), _mm_xor_si128(x, _mm_and_si128(m, d)));
    }
}

#endif
