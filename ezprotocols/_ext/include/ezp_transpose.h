/* Bit-matrix transpose for OT extension.
 *
 * Matrix layout: row r is `stride` bytes; bit c of row r is bit (c % 8) of byte
 * (c / 8) (little-endian bit order, as numpy.packbits(bitorder="little")).
 * ezp_transpose_bits(in, is, out, os, rows, cols) sets bit r of out-row c to bit c
 * of in-row r, for r < rows, c < cols.
 *
 * Kernel: a 16 x 16 byte tile is transposed with four rounds of byte unpacks (each
 * round rotates the 8-bit (register, byte) index by one), after which register c
 * holds byte c of 16 consecutive rows; eight movemask/shift steps then emit the 16
 * bits of each of the 8 bit-columns.  The AVX-512 variant runs four such tiles in
 * the four 128-bit lanes (64 rows) and emits 64 bits per movemask.
 */
#ifndef EZP_TRANSPOSE_H
#define EZP_TRANSPOSE_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <immintrin.h>
#include "ezp_aes.h"   /* ezp_have_vaes: the AVX-512 dispatch flag */

static inline void ezp__tr_scalar(const uint8_t *in, size_t is, uint8_t *out, size_t os,
                                  size_t r_lo, size_t r_hi, size_t c_lo, size_t c_hi) {
    for (size_t c = c_lo; c < c_hi; c++) {
        uint8_t *orow = out + c * os;
        for (size_t r = r_lo; r < r_hi; r++) {
            uint8_t bit = (in[r * is + (c >> 3)] >> (c & 7)) & 1;
            if (bit) orow[r >> 3] |= (uint8_t)(1u << (r & 7));
            else orow[r >> 3] &= (uint8_t)~(1u << (r & 7));
        }
    }
}

/* 16 rows starting at r0, byte columns cb..cb+15 (bit columns 8cb .. 8cb+127). */
static inline void ezp__tr_tile_sse(const uint8_t *in, size_t is, uint8_t *out, size_t os,
                                    size_t r0, size_t cb) {
    __m128i v[16], w[16];
    for (int k = 0; k < 16; k++) v[k] = _mm_loadu_si128((const __m128i *)(in + (r0 + k) * is + cb));
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 8; i++) {
            w[2 * i] = _mm_unpacklo_epi8(v[i], v[i + 8]);
            w[2 * i + 1] = _mm_unpackhi_epi8(v[i], v[i + 8]);
        }
        memcpy(v, w, sizeof(v));
    }
    for (int c = 0; c < 16; c++) {
        __m128i x = v[c];
        uint8_t *o = out + (8 * (cb + c) + 7) * os + (r0 >> 3);
        for (int b = 7; b >= 0; b--) {
            uint16_t m = (uint16_t)_mm_movemask_epi8(x);
            memcpy(o, &m, 2);
            o -= os;
            x = _mm_add_epi8(x, x);
        }
    }
}

/* 64 rows starting at r0 (rows r0+16L+k in lane L, register k). */
__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline void ezp__tr_tile_512(const uint8_t *in, size_t is, uint8_t *out, size_t os,
                                    size_t r0, size_t cb) {
    __m512i v[16], w[16];
    for (int k = 0; k < 16; k++) {
        __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(in + (r0 + k) * is + cb)));
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(in + (r0 + 16 + k) * is + cb)), 1);
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(in + (r0 + 32 + k) * is + cb)), 2);
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(in + (r0 + 48 + k) * is + cb)), 3);
        v[k] = z;
    }
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 8; i++) {
            w[2 * i] = _mm512_unpacklo_epi8(v[i], v[i + 8]);
            w[2 * i + 1] = _mm512_unpackhi_epi8(v[i], v[i + 8]);
        }
        memcpy(v, w, sizeof(v));
    }
    for (int c = 0; c < 16; c++) {
        __m512i x = v[c];
        uint8_t *o = out + (8 * (cb + c) + 7) * os + (r0 >> 3);
        for (int b = 7; b >= 0; b--) {
            uint64_t m = (uint64_t)_mm512_movepi8_mask(x);
            memcpy(o, &m, 8);
            o -= os;
            x = _mm512_add_epi8(x, x);
        }
    }
}

static inline void ezp__transpose_direct(const uint8_t *in, size_t is, uint8_t *out, size_t os,
                                         size_t rows, size_t cols) {
    size_t ctiles = (cols / 8) / 16;     /* 16-byte (128-bit) column tiles */
    size_t r = 0;
    if (ezp_have_vaes) {
        for (; r + 64 <= rows; r += 64)
            for (size_t t = 0; t < ctiles; t++) ezp__tr_tile_512(in, is, out, os, r, 16 * t);
    }
    for (; r + 16 <= rows; r += 16)
        for (size_t t = 0; t < ctiles; t++) ezp__tr_tile_sse(in, is, out, os, r, 16 * t);
    /* leftovers: rows not in a tile (all columns), columns not in a tile (tiled rows) */
    size_t rt = r;
    if (rt < rows) ezp__tr_scalar(in, is, out, os, rt, rows, 0, cols);
    if (128 * ctiles < cols) ezp__tr_scalar(in, is, out, os, 0, rt, 128 * ctiles, cols);
}

#define EZP_TR_RB 512   /* rows per block when output rows are long */

static inline void ezp_transpose_bits(const uint8_t *in, size_t is, uint8_t *out, size_t os,
                                      size_t rows, size_t cols) {
    if (rows <= 2 * EZP_TR_RB) {
        ezp__transpose_direct(in, is, out, os, rows, cols);
        return;
    }
    /* Long output rows: writing 8 bytes into each of 128 rows a stride of os apart
     * thrashes one cache set when os is a power of two.  Transpose blocks of 512
     * rows into a small buffer and copy whole 64-byte lines out. */
    uint8_t tmp[128 * (EZP_TR_RB / 8)] __attribute__((aligned(64)));
    size_t ctiles = (cols / 8) / 16;
    size_t r = 0;
    for (; r + EZP_TR_RB <= rows; r += EZP_TR_RB) {
        for (size_t t = 0; t < ctiles; t++) {
            ezp__transpose_direct(in + r * is + 16 * t, is, tmp, EZP_TR_RB / 8, EZP_TR_RB, 128);
            for (size_t c = 0; c < 128; c++)
                memcpy(out + (128 * t + c) * os + r / 8, tmp + c * (EZP_TR_RB / 8), EZP_TR_RB / 8);
        }
        if (128 * ctiles < cols)
            ezp__tr_scalar(in, is, out, os, r, r + EZP_TR_RB, 128 * ctiles, cols);
    }
    if (r < rows) {
        /* the rest: row offset r is a multiple of 8, so shift the output by r/8 bytes */
        ezp__transpose_direct(in + r * is, is, out + r / 8, os, rows - r, cols);
    }
}

#endif /* EZP_TRANSPOSE_H */
