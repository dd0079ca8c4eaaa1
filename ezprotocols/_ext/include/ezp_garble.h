/* Half-gates garbling (Zahur, Rosulek, Evans, "Two Halves Make a Whole",
 * eprint 2014/756) with free XOR and point-and-permute, hashing with the tweakable
 * circular correlation-robust hash of Guo, Kumar, Wang, Katz (eprint 2019/074):
 *     H(x, j) = pi(pi(x) ^ j) ^ pi(x),   pi = AES-128 under the public fixed key.
 *
 * AND gate, garbler (A0, B0 zero labels, pa = lsb(A0), pb = lsb(B0), delta with lsb 1):
 *     TG  = H(A0, j) ^ H(A0 ^ D, j) ^ pb*D        WG0 = H(A0, j) ^ pa*TG
 *     TE  = H(B0, j') ^ H(B0 ^ D, j') ^ A0        WE0 = H(B0, j') ^ pb*(TE ^ A0)
 *     C0  = WG0 ^ WE0, table = (TG, TE): 32 bytes
 * evaluator (active labels A, B; sa = lsb(A), sb = lsb(B)):
 *     C = H(A, j) ^ sa*TG ^ H(B, j') ^ sb*(TE ^ A)
 * XOR: C0 = A0 ^ B0.  INV: garbler C0 = A0 ^ D, evaluator C = A.  Constant v:
 * garbler C0 = v*D, evaluator C = 0 (a public label: the evaluator knows the value).
 *
 * Tweaks: table item t of a call (items counted in execution order) uses
 * j = (hi, lo + 2t) and j' = (hi, lo + 2t + 1) as 128-bit (high word, low word)
 * blocks; the caller makes (hi, lo) unique per session and delta.
 *
 * Labels live in "slot rows": row s holds W consecutive 16-byte labels, one per copy
 * of the circuit in the current chunk of a batch, so every gate works on contiguous
 * copies.  An AND run (independent gates, see ezp_bristol.h) is processed as a
 * stream of (gate, copy) items: with VAES, groups of 4 items sit in the four
 * 128-bit lanes of a zmm register and several groups are in flight; the 128-bit
 * AES-NI path keeps 8 blocks in flight.  Table layout is canonical (item t at bytes
 * 32t..32t+31: TG then TE) whichever path produced it.
 */
#ifndef EZP_GARBLE_H
#define EZP_GARBLE_H

#include "ezp_aes.h"
#include "ezp_bristol.h"

#ifndef EZP_GB_QUADS
#define EZP_GB_QUADS 2    /* VAES garbler: zmm groups of 4 items in flight (4 hashes each) */
#endif
#ifndef EZP_EV_QUADS
#define EZP_EV_QUADS 4    /* VAES evaluator: zmm groups of 4 items in flight (2 hashes each) */
#endif
#define EZP_GB_N 2        /* 128-bit path: items per group (4 hashes each -> 8 blocks) */
#define EZP_EV_N 4        /* 128-bit path: items per group (2 hashes each -> 8 blocks) */

#define EZP_AI __attribute__((always_inline))

/* all-ones if lsb(x) else zero (128-bit) */
static inline __m128i ezp__lsbmask(__m128i x) {
    return _mm_shuffle_epi32(_mm_srai_epi32(_mm_slli_epi32(x, 31), 31), 0);
}

/* ------------------------------------------------------------------ 128-bit path */

static void ezp__gb_sse(const uint32_t *sa, const uint32_t *sb, const uint32_t *so, size_t ng,
                        uint8_t *lab, size_t W, __m128i D, uint64_t hi, uint64_t lo, uint8_t *tab) {
    const size_t rs = W * 16, total = ng * W;
    size_t g = 0, c = 0, done = 0;
    while (done < total) {
        size_t n = total - done < EZP_GB_N ? total - done : EZP_GB_N;
        __m128i A0[EZP_GB_N], B0[EZP_GB_N], X[4 * EZP_GB_N], P[4 * EZP_GB_N];
        uint8_t *po[EZP_GB_N];
        for (size_t j = 0; j < n; j++) {
            A0[j] = _mm_loadu_si128((const __m128i *)(lab + (size_t)sa[g] * rs + c * 16));
            B0[j] = _mm_loadu_si128((const __m128i *)(lab + (size_t)sb[g] * rs + c * 16));
            po[j] = lab + (size_t)so[g] * rs + c * 16;
            if (++c == W) { c = 0; g++; }
            X[4 * j] = A0[j];
            X[4 * j + 1] = _mm_xor_si128(A0[j], D);
            X[4 * j + 2] = B0[j];
            X[4 * j + 3] = _mm_xor_si128(B0[j], D);
        }
        for (size_t j = 0; j < 4 * n; j++) P[j] = X[j];
        if (n == EZP_GB_N) EZP_AES_ROUNDS_N(&ezp_fixed_key, P, 4 * EZP_GB_N);
        else EZP_AES_ROUNDS_N(&ezp_fixed_key, P, (int)(4 * n));
        for (size_t j = 0; j < n; j++) {
            __m128i ta = _mm_set_epi64x((long long)hi, (long long)(lo + 2 * (done + j)));
            __m128i tb = _mm_set_epi64x((long long)hi, (long long)(lo + 2 * (done + j) + 1));
            X[4 * j] = _mm_xor_si128(P[4 * j], ta);
            X[4 * j + 1] = _mm_xor_si128(P[4 * j + 1], ta);
            X[4 * j + 2] = _mm_xor_si128(P[4 * j + 2], tb);
            X[4 * j + 3] = _mm_xor_si128(P[4 * j + 3], tb);
        }
        if (n == EZP_GB_N) EZP_AES_ROUNDS_N(&ezp_fixed_key, X, 4 * EZP_GB_N);
        else EZP_AES_ROUNDS_N(&ezp_fixed_key, X, (int)(4 * n));
        for (size_t j = 0; j < n; j++) {
            __m128i h0 = _mm_xor_si128(X[4 * j], P[4 * j]);
            __m128i h1 = _mm_xor_si128(X[4 * j + 1], P[4 * j + 1]);
            __m128i h2 = _mm_xor_si128(X[4 * j + 2], P[4 * j + 2]);
            __m128i h3 = _mm_xor_si128(X[4 * j + 3], P[4 * j + 3]);
            __m128i ma = ezp__lsbmask(A0[j]), mb = ezp__lsbmask(B0[j]);
            __m128i tg = _mm_xor_si128(_mm_xor_si128(h0, h1), _mm_and_si128(mb, D));
            __m128i wg = _mm_xor_si128(h0, _mm_and_si128(ma, tg));
            __m128i te = _mm_xor_si128(_mm_xor_si128(h2, h3), A0[j]);
            __m128i we = _mm_blendv_epi8(h2, h3, mb);
            uint8_t *t = tab + 32 * (done + j);
            _mm_storeu_si128((__m128i *)t, tg);
            _mm_storeu_si128((__m128i *)(t + 16), te);
            _mm_storeu_si128((__m128i *)po[j], _mm_xor_si128(wg, we));
        }
        done += n;
    }
}

static void ezp__ev_sse(const uint32_t *sa, const uint32_t *sb, const uint32_t *so, size_t ng,
                        uint8_t *lab, size_t W, uint64_t hi, uint64_t lo, const uint8_t *tab) {
    const size_t rs = W * 16, total = ng * W;
    size_t g = 0, c = 0, done = 0;
    while (done < total) {
        size_t n = total - done < EZP_EV_N ? total - done : EZP_EV_N;
        __m128i A[EZP_EV_N], X[2 * EZP_EV_N], P[2 * EZP_EV_N];
        uint8_t *po[EZP_EV_N];
        for (size_t j = 0; j < n; j++) {
            A[j] = _mm_loadu_si128((const __m128i *)(lab + (size_t)sa[g] * rs + c * 16));
            X[2 * j + 1] = _mm_loadu_si128((const __m128i *)(lab + (size_t)sb[g] * rs + c * 16));
            po[j] = lab + (size_t)so[g] * rs + c * 16;
            if (++c == W) { c = 0; g++; }
            X[2 * j] = A[j];
        }
        __m128i B[EZP_EV_N];
        for (size_t j = 0; j < n; j++) B[j] = X[2 * j + 1];
        for (size_t j = 0; j < 2 * n; j++) P[j] = X[j];
        if (n == EZP_EV_N) EZP_AES_ROUNDS_N(&ezp_fixed_key, P, 2 * EZP_EV_N);
        else EZP_AES_ROUNDS_N(&ezp_fixed_key, P, (int)(2 * n));
        for (size_t j = 0; j < n; j++) {
            X[2 * j] = _mm_xor_si128(P[2 * j], _mm_set_epi64x((long long)hi, (long long)(lo + 2 * (done + j))));
            X[2 * j + 1] = _mm_xor_si128(P[2 * j + 1], _mm_set_epi64x((long long)hi, (long long)(lo + 2 * (done + j) + 1)));
        }
        if (n == EZP_EV_N) EZP_AES_ROUNDS_N(&ezp_fixed_key, X, 2 * EZP_EV_N);
        else EZP_AES_ROUNDS_N(&ezp_fixed_key, X, (int)(2 * n));
        for (size_t j = 0; j < n; j++) {
            const uint8_t *t = tab + 32 * (done + j);
            __m128i tg = _mm_loadu_si128((const __m128i *)t);
            __m128i te = _mm_loadu_si128((const __m128i *)(t + 16));
            __m128i ha = _mm_xor_si128(X[2 * j], P[2 * j]);
            __m128i hb = _mm_xor_si128(X[2 * j + 1], P[2 * j + 1]);
            __m128i wg = _mm_xor_si128(ha, _mm_and_si128(ezp__lsbmask(A[j]), tg));
            __m128i we = _mm_xor_si128(hb, _mm_and_si128(ezp__lsbmask(B[j]), _mm_xor_si128(te, A[j])));
            _mm_storeu_si128((__m128i *)po[j], _mm_xor_si128(wg, we));
        }
        done += n;
    }
}

/* ------------------------------------------------------------------ VAES-512 path */

EZP_VAES_TARGET static inline EZP_AI __mmask8 ezp__lmask512(__m512i x) {
    __mmask8 m = _mm512_test_epi64_mask(x, _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1));
    return (__mmask8)(m | (m << 1));
}

EZP_VAES_TARGET static inline EZP_AI __m512i ezp__ld4(const uint8_t *const *p) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p[0]));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p[1]), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p[2]), 2);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p[3]), 3);
    return v;
}

EZP_VAES_TARGET static inline EZP_AI void ezp__st4(uint8_t *const *p, int n, __m512i v) {
    if (n > 0) _mm_storeu_si128((__m128i *)p[0], _mm512_castsi512_si128(v));
    if (n > 1) _mm_storeu_si128((__m128i *)p[1], _mm512_extracti32x4_epi32(v, 1));
    if (n > 2) _mm_storeu_si128((__m128i *)p[2], _mm512_extracti32x4_epi32(v, 2));
    if (n > 3) _mm_storeu_si128((__m128i *)p[3], _mm512_extracti32x4_epi32(v, 3));
}

/* Garble Q groups of 4 items.  tw: tweak j of the 4 items of group 0 (lanes). */
EZP_VAES_TARGET static inline EZP_AI void
ezp__gb_core512(const int Q, const __m512i *k, __m512i D, const __m512i *A0, const __m512i *B0,
                __m512i tw, __m512i *C0, __m512i *TG, __m512i *TE) {
    __m512i X[4 * EZP_GB_QUADS], P[4 * EZP_GB_QUADS];
    const __m512i one = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    const __m512i eight = _mm512_set_epi64(0, 8, 0, 8, 0, 8, 0, 8);
    for (int q = 0; q < Q; q++) {
        P[4 * q] = A0[q];
        P[4 * q + 1] = _mm512_xor_si512(A0[q], D);
        P[4 * q + 2] = B0[q];
        P[4 * q + 3] = _mm512_xor_si512(B0[q], D);
    }
    EZP_VAES_ROUNDS_N(k, P, 4 * Q);
    for (int q = 0; q < Q; q++) {
        __m512i tb = _mm512_add_epi64(tw, one);
        X[4 * q] = _mm512_xor_si512(P[4 * q], tw);
        X[4 * q + 1] = _mm512_xor_si512(P[4 * q + 1], tw);
        X[4 * q + 2] = _mm512_xor_si512(P[4 * q + 2], tb);
        X[4 * q + 3] = _mm512_xor_si512(P[4 * q + 3], tb);
        tw = _mm512_add_epi64(tw, eight);
    }
    EZP_VAES_ROUNDS_N(k, X, 4 * Q);
    for (int q = 0; q < Q; q++) {
        __m512i h0 = _mm512_xor_si512(X[4 * q], P[4 * q]);
        __m512i h1 = _mm512_xor_si512(X[4 * q + 1], P[4 * q + 1]);
        __m512i h2 = _mm512_xor_si512(X[4 * q + 2], P[4 * q + 2]);
        __m512i h3 = _mm512_xor_si512(X[4 * q + 3], P[4 * q + 3]);
        __mmask8 ma = ezp__lmask512(A0[q]), mb = ezp__lmask512(B0[q]);
        __m512i tg = _mm512_xor_si512(h0, h1);
        tg = _mm512_mask_xor_epi64(tg, mb, tg, D);
        __m512i wg = _mm512_mask_xor_epi64(h0, ma, h0, tg);
        __m512i we = _mm512_mask_mov_epi64(h2, mb, h3);
        TG[q] = tg;
        TE[q] = _mm512_xor_si512(_mm512_xor_si512(h2, h3), A0[q]);
        C0[q] = _mm512_xor_si512(wg, we);
    }
}

EZP_VAES_TARGET static inline EZP_AI void
ezp__ev_core512(const int Q, const __m512i *k, const __m512i *A, const __m512i *B, const __m512i *TG,
                const __m512i *TE, __m512i tw, __m512i *C) {
    __m512i X[2 * EZP_EV_QUADS], P[2 * EZP_EV_QUADS];
    const __m512i one = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    const __m512i eight = _mm512_set_epi64(0, 8, 0, 8, 0, 8, 0, 8);
    for (int q = 0; q < Q; q++) { P[2 * q] = A[q]; P[2 * q + 1] = B[q]; }
    EZP_VAES_ROUNDS_N(k, P, 2 * Q);
    for (int q = 0; q < Q; q++) {
        X[2 * q] = _mm512_xor_si512(P[2 * q], tw);
        X[2 * q + 1] = _mm512_xor_si512(P[2 * q + 1], _mm512_add_epi64(tw, one));
        tw = _mm512_add_epi64(tw, eight);
    }
    EZP_VAES_ROUNDS_N(k, X, 2 * Q);
    for (int q = 0; q < Q; q++) {
        __m512i ha = _mm512_xor_si512(X[2 * q], P[2 * q]);
        __m512i hb = _mm512_xor_si512(X[2 * q + 1], P[2 * q + 1]);
        __mmask8 sa = ezp__lmask512(A[q]), sb = ezp__lmask512(B[q]);
        ha = _mm512_mask_xor_epi64(ha, sa, ha, TG[q]);
        hb = _mm512_mask_xor_epi64(hb, sb, hb, _mm512_xor_si512(TE[q], A[q]));
        C[q] = _mm512_xor_si512(ha, hb);
    }
}

/* table layout helpers: 4 items = (TG0 TE0 TG1 TE1)(TG2 TE2 TG3 TE3) */
#define EZP__IX_LO _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0)
#define EZP__IX_HI _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4)
#define EZP__IX_TG _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0)
#define EZP__IX_TE _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2)

EZP_VAES_TARGET static inline EZP_AI void ezp__tab_store(uint8_t *t, int n, __m512i tg, __m512i te) {
    __m512i lo = _mm512_permutex2var_epi64(tg, EZP__IX_LO, te);
    __m512i hi = _mm512_permutex2var_epi64(tg, EZP__IX_HI, te);
    if (n >= 4) {
        _mm512_storeu_si512((void *)t, lo);
        _mm512_storeu_si512((void *)(t + 64), hi);
    } else {
        int nl = n < 2 ? n : 2, nh = n > 2 ? n - 2 : 0;
        if (nl) _mm512_mask_storeu_epi64((void *)t, (__mmask8)((1u << (4 * nl)) - 1), lo);
        if (nh) _mm512_mask_storeu_epi64((void *)(t + 64), (__mmask8)((1u << (4 * nh)) - 1), hi);
    }
}

EZP_VAES_TARGET static inline EZP_AI void ezp__tab_load(const uint8_t *t, int n, __m512i *tg, __m512i *te) {
    __m512i lo, hi;
    if (n >= 4) {
        lo = _mm512_loadu_si512((const void *)t);
        hi = _mm512_loadu_si512((const void *)(t + 64));
    } else {
        int nl = n < 2 ? n : 2, nh = n > 2 ? n - 2 : 0;
        lo = nl ? _mm512_maskz_loadu_epi64((__mmask8)((1u << (4 * nl)) - 1), (const void *)t) : _mm512_setzero_si512();
        hi = nh ? _mm512_maskz_loadu_epi64((__mmask8)((1u << (4 * nh)) - 1), (const void *)(t + 64)) : _mm512_setzero_si512();
    }
    *tg = _mm512_permutex2var_epi64(lo, EZP__IX_TG, hi);
    *te = _mm512_permutex2var_epi64(lo, EZP__IX_TE, hi);
}

EZP_VAES_TARGET static void ezp__gb_vaes(const uint32_t *sa, const uint32_t *sb, const uint32_t *so, size_t ng,
                                         uint8_t *lab, size_t W, __m128i D128, uint64_t hi, uint64_t lo,
                                         uint8_t *tab) {
    enum { Q = EZP_GB_QUADS };
    __m512i k[11];
    ezp__bcast_key(&ezp_fixed_key, k);
    const __m512i D = _mm512_broadcast_i32x4(D128);
    const size_t rs = W * 16;
    __m512i tw = _mm512_set_epi64((long long)hi, (long long)(lo + 6), (long long)hi, (long long)(lo + 4),
                                  (long long)hi, (long long)(lo + 2), (long long)hi, (long long)lo);
    const __m512i step1 = _mm512_set_epi64(0, 8, 0, 8, 0, 8, 0, 8);
    const __m512i stepQ = _mm512_set_epi64(0, 8 * Q, 0, 8 * Q, 0, 8 * Q, 0, 8 * Q);
    __m512i A0[Q], B0[Q], C0[Q], TG[Q], TE[Q];
    if ((W & 3) == 0) {
        /* whole quads: 4 consecutive copies of one gate per zmm */
        const size_t qpw = W >> 2, nq = ng * qpw;
        size_t g = 0, cq = 0, qi = 0;
        uint8_t *po[Q];
        for (; qi + Q <= nq; qi += Q) {
            for (int q = 0; q < Q; q++) {
                size_t off = cq * 64;
                A0[q] = _mm512_loadu_si512((const void *)(lab + (size_t)sa[g] * rs + off));
                B0[q] = _mm512_loadu_si512((const void *)(lab + (size_t)sb[g] * rs + off));
                po[q] = lab + (size_t)so[g] * rs + off;
                if (++cq == qpw) { cq = 0; g++; }
            }
            ezp__gb_core512(Q, k, D, A0, B0, tw, C0, TG, TE);
            for (int q = 0; q < Q; q++) {
                _mm512_storeu_si512((void *)po[q], C0[q]);
                ezp__tab_store(tab + 128 * q, 4, TG[q], TE[q]);
            }
            tab += 128 * Q;
            tw = _mm512_add_epi64(tw, stepQ);
        }
        for (; qi < nq; qi++) {
            size_t off = cq * 64;
            A0[0] = _mm512_loadu_si512((const void *)(lab + (size_t)sa[g] * rs + off));
            B0[0] = _mm512_loadu_si512((const void *)(lab + (size_t)sb[g] * rs + off));
            po[0] = lab + (size_t)so[g] * rs + off;
            if (++cq == qpw) { cq = 0; g++; }
            ezp__gb_core512(1, k, D, A0, B0, tw, C0, TG, TE);
            _mm512_storeu_si512((void *)po[0], C0[0]);
            ezp__tab_store(tab, 4, TG[0], TE[0]);
            tab += 128;
            tw = _mm512_add_epi64(tw, step1);
        }
        return;
    }
    /* lane gather: any W (single copies: items are independent gates of the run) */
    const size_t total = ng * W;
    size_t g = 0, c = 0, done = 0;
    const uint8_t *pa[4 * Q], *pb[4 * Q];
    uint8_t *po[4 * Q];
    while (done < total) {
        size_t n = total - done < 4 * Q ? total - done : 4 * Q;
        for (size_t j = 0; j < n; j++) {
            pa[j] = lab + (size_t)sa[g] * rs + c * 16;
            pb[j] = lab + (size_t)sb[g] * rs + c * 16;
            po[j] = lab + (size_t)so[g] * rs + c * 16;
            if (++c == W) { c = 0; g++; }
        }
        for (size_t j = n; j < 4 * Q; j++) { pa[j] = pa[0]; pb[j] = pb[0]; po[j] = po[0]; }
        for (int q = 0; q < Q; q++) { A0[q] = ezp__ld4(pa + 4 * q); B0[q] = ezp__ld4(pb + 4 * q); }
        ezp__gb_core512(Q, k, D, A0, B0, tw, C0, TG, TE);
        for (int q = 0; q < Q; q++) {
            int nv = (int)n - 4 * q;
            if (nv <= 0) break;
            ezp__st4(po + 4 * q, nv, C0[q]);
            ezp__tab_store(tab + 128 * q, nv, TG[q], TE[q]);
        }
        tab += 32 * n;
        done += n;
        tw = _mm512_add_epi64(tw, stepQ);
    }
}

EZP_VAES_TARGET static void ezp__ev_vaes(const uint32_t *sa, const uint32_t *sb, const uint32_t *so, size_t ng,
                                         uint8_t *lab, size_t W, uint64_t hi, uint64_t lo, const uint8_t *tab) {
    enum { Q = EZP_EV_QUADS };
    __m512i k[11];
    ezp__bcast_key(&ezp_fixed_key, k);
    const size_t rs = W * 16;
    __m512i tw = _mm512_set_epi64((long long)hi, (long long)(lo + 6), (long long)hi, (long long)(lo + 4),
                                  (long long)hi, (long long)(lo + 2), (long long)hi, (long long)lo);
    const __m512i step1 = _mm512_set_epi64(0, 8, 0, 8, 0, 8, 0, 8);
    const __m512i stepQ = _mm512_set_epi64(0, 8 * Q, 0, 8 * Q, 0, 8 * Q, 0, 8 * Q);
    __m512i A[Q], B[Q], C[Q], TG[Q], TE[Q];
    if ((W & 3) == 0) {
        const size_t qpw = W >> 2, nq = ng * qpw;
        size_t g = 0, cq = 0, qi = 0;
        uint8_t *po[Q];
        for (; qi + Q <= nq; qi += Q) {
            for (int q = 0; q < Q; q++) {
                size_t off = cq * 64;
                A[q] = _mm512_loadu_si512((const void *)(lab + (size_t)sa[g] * rs + off));
                B[q] = _mm512_loadu_si512((const void *)(lab + (size_t)sb[g] * rs + off));
                po[q] = lab + (size_t)so[g] * rs + off;
                if (++cq == qpw) { cq = 0; g++; }
                ezp__tab_load(tab + 128 * q, 4, &TG[q], &TE[q]);
            }
            ezp__ev_core512(Q, k, A, B, TG, TE, tw, C);
            for (int q = 0; q < Q; q++) _mm512_storeu_si512((void *)po[q], C[q]);
            tab += 128 * Q;
            tw = _mm512_add_epi64(tw, stepQ);
        }
        for (; qi < nq; qi++) {
            size_t off = cq * 64;
            A[0] = _mm512_loadu_si512((const void *)(lab + (size_t)sa[g] * rs + off));
            B[0] = _mm512_loadu_si512((const void *)(lab + (size_t)sb[g] * rs + off));
            po[0] = lab + (size_t)so[g] * rs + off;
            if (++cq == qpw) { cq = 0; g++; }
            ezp__tab_load(tab, 4, &TG[0], &TE[0]);
            ezp__ev_core512(1, k, A, B, TG, TE, tw, C);
            _mm512_storeu_si512((void *)po[0], C[0]);
            tab += 128;
            tw = _mm512_add_epi64(tw, step1);
        }
        return;
    }
    const size_t total = ng * W;
    size_t g = 0, c = 0, done = 0;
    const uint8_t *pa[4 * Q], *pb[4 * Q];
    uint8_t *po[4 * Q];
    while (done < total) {
        size_t n = total - done < 4 * Q ? total - done : 4 * Q;
        for (size_t j = 0; j < n; j++) {
            pa[j] = lab + (size_t)sa[g] * rs + c * 16;
            pb[j] = lab + (size_t)sb[g] * rs + c * 16;
            po[j] = lab + (size_t)so[g] * rs + c * 16;
            if (++c == W) { c = 0; g++; }
        }
        for (size_t j = n; j < 4 * Q; j++) { pa[j] = pa[0]; pb[j] = pb[0]; po[j] = po[0]; }
        for (int q = 0; q < Q; q++) {
            int nv = (int)n - 4 * q;
            A[q] = ezp__ld4(pa + 4 * q);
            B[q] = ezp__ld4(pb + 4 * q);
            ezp__tab_load(tab + 128 * q, nv < 0 ? 0 : nv, &TG[q], &TE[q]);
        }
        ezp__ev_core512(Q, k, A, B, TG, TE, tw, C);
        for (int q = 0; q < Q; q++) {
            int nv = (int)n - 4 * q;
            if (nv <= 0) break;
            ezp__st4(po + 4 * q, nv, C[q]);
        }
        tab += 32 * n;
        done += n;
        tw = _mm512_add_epi64(tw, stepQ);
    }
}

/* ------------------------------------------------------------------ program execution */

static inline void ezp__linear(int gb, uint8_t op, const uint8_t *A, const uint8_t *B, uint8_t *O, size_t W,
                               __m128i D) {
    __m128i *o = (__m128i *)O;
    const __m128i *x = (const __m128i *)A, *y = (const __m128i *)B;
    size_t c;
    switch (op) {
    case EZP_P_XOR:
        for (c = 0; c < W; c++) _mm_storeu_si128(o + c, _mm_xor_si128(_mm_loadu_si128(x + c), _mm_loadu_si128(y + c)));
        break;
    case EZP_P_INV:
        if (gb) for (c = 0; c < W; c++) _mm_storeu_si128(o + c, _mm_xor_si128(_mm_loadu_si128(x + c), D));
        else if (O != A) memmove(O, A, W * 16);
        break;
    case EZP_P_COPY:
        if (O != A) memmove(O, A, W * 16);
        break;
    case EZP_P_ZERO:
        memset(O, 0, W * 16);
        break;
    default: /* ONE */
        if (gb) for (c = 0; c < W; c++) _mm_storeu_si128(o + c, D);
        else memset(O, 0, W * 16);
    }
}

/* AVX-512 version of the free gates (rows of W labels, 4 labels per zmm) */
EZP_VAES_TARGET static void ezp__linear512(int gb, uint8_t op, const uint8_t *A, const uint8_t *B, uint8_t *O,
                                           size_t W, __m128i D128) {
    const __m512i D = _mm512_broadcast_i32x4(D128);
    size_t n = W >> 2, c;
    __m512i *o = (__m512i *)O;
    const __m512i *x = (const __m512i *)A, *y = (const __m512i *)B;
    switch (op) {
    case EZP_P_XOR:
        for (c = 0; c < n; c++) _mm512_storeu_si512(o + c, _mm512_xor_si512(_mm512_loadu_si512(x + c), _mm512_loadu_si512(y + c)));
        break;
    case EZP_P_INV:
        if (gb) { for (c = 0; c < n; c++) _mm512_storeu_si512(o + c, _mm512_xor_si512(_mm512_loadu_si512(x + c), D)); break; }
        /* fall through: evaluator copies */
    case EZP_P_COPY:
        if (O != A) memmove(O, A, W * 16);
        return;
    case EZP_P_ZERO:
        memset(O, 0, W * 16);
        return;
    default: /* ONE */
        if (gb) for (c = 0; c < n; c++) _mm512_storeu_si512(o + c, D);
        else { memset(O, 0, W * 16); return; }
    }
    /* tail: W % 4 labels */
    for (c = 4 * n; c < W; c++) {
        __m128i r;
        if (op == EZP_P_XOR) r = _mm_xor_si128(_mm_loadu_si128((const __m128i *)A + c), _mm_loadu_si128((const __m128i *)B + c));
        else if (op == EZP_P_INV) r = _mm_xor_si128(_mm_loadu_si128((const __m128i *)A + c), D128);
        else r = D128;
        _mm_storeu_si128((__m128i *)O + c, r);
    }
}

/* Execute program instructions [i0, i1) on W copies held in lab (slot rows of W labels).
 * gb = 1: garbler (lab holds zero labels; writes 32 bytes per AND item to tab);
 * gb = 0: evaluator (lab holds active labels; reads the tables from tab).
 * Returns the number of AND items (tables) processed. */
static size_t ezp_gc_exec(int gb, const uint8_t *op, const uint32_t *sa, const uint32_t *sb,
                          const uint32_t *so, const uint32_t *run_end, size_t i0, size_t i1,
                          uint8_t *lab, size_t W, const uint8_t *delta, uint64_t tw_hi, uint64_t tw_lo,
                          uint8_t *tab) {
    const __m128i D = gb ? _mm_loadu_si128((const __m128i *)delta) : _mm_setzero_si128();
    const size_t rs = W * 16;
    size_t items = 0;
    for (size_t i = i0; i < i1;) {
        uint8_t o = op[i];
        if (o == EZP_P_AND) {
            size_t j = run_end[i] < i1 ? run_end[i] : i1;
            uint64_t lo = tw_lo + 2 * (uint64_t)items;
            if (gb) {
                if (ezp_have_vaes) ezp__gb_vaes(sa + i, sb + i, so + i, j - i, lab, W, D, tw_hi, lo, tab + 32 * items);
                else ezp__gb_sse(sa + i, sb + i, so + i, j - i, lab, W, D, tw_hi, lo, tab + 32 * items);
            } else {
                if (ezp_have_vaes) ezp__ev_vaes(sa + i, sb + i, so + i, j - i, lab, W, tw_hi, lo, tab + 32 * items);
                else ezp__ev_sse(sa + i, sb + i, so + i, j - i, lab, W, tw_hi, lo, tab + 32 * items);
            }
            items += (j - i) * W;
            i = j;
            continue;
        }
        if (ezp_have_vaes && W >= 4)
            ezp__linear512(gb, o, lab + (size_t)sa[i] * rs, lab + (size_t)sb[i] * rs, lab + (size_t)so[i] * rs, W, D);
        else
            ezp__linear(gb, o, lab + (size_t)sa[i] * rs, lab + (size_t)sb[i] * rs, lab + (size_t)so[i] * rs, W, D);
        i++;
    }
    return items;
}

/* lab[slots[k]][c] = src[c * sstride + 16 k], k < n, c < W */
static void ezp_gather_in(uint8_t *lab, size_t W, const uint32_t *slots, size_t n, const uint8_t *src,
                          size_t sstride) {
    const size_t rs = W * 16;
    for (size_t c = 0; c < W; c++) {
        const uint8_t *s = src + c * sstride;
        for (size_t k = 0; k < n; k++)
            _mm_storeu_si128((__m128i *)(lab + (size_t)slots[k] * rs + 16 * c), _mm_loadu_si128((const __m128i *)(s + 16 * k)));
    }
}

/* dst[c * dstride + 16 k] = lab[slots[k]][c] */
static void ezp_scatter_out(const uint8_t *lab, size_t W, const uint32_t *slots, size_t n, uint8_t *dst,
                            size_t dstride) {
    const size_t rs = W * 16;
    for (size_t c = 0; c < W; c++) {
        uint8_t *d = dst + c * dstride;
        for (size_t k = 0; k < n; k++)
            _mm_storeu_si128((__m128i *)(d + 16 * k), _mm_loadu_si128((const __m128i *)(lab + (size_t)slots[k] * rs + 16 * c)));
    }
}

#endif /* EZP_GARBLE_H */
