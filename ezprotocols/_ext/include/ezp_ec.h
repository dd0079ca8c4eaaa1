/* Batched Chou-Orlandi base OT (eprint 2015/267) in the prime-order subgroup of
 * Ed25519, on libsodium functions reached through pointers (the PyNaCl wheel's
 * statically linked libsodium; see ezprotocols/_ext/ec.pyx).
 *
 * Points are 32-byte canonical Ed25519 encodings, scalars 32-byte little-endian
 * integers reduced mod L.  libsodium's crypto_scalarmult_ed25519_noclamp returns
 * -1 unless its point is canonical, on the curve, of order L (not of small order,
 * not the identity) and the product is not the identity: every point received from
 * the peer goes through it, so its return value is the validation.
 */
#ifndef EZP_EC_H
#define EZP_EC_H

#include <stdint.h>
#include <string.h>

typedef int (*ezp_sm_fn)(unsigned char *q, const unsigned char *n, const unsigned char *p);
typedef int (*ezp_smb_fn)(unsigned char *q, const unsigned char *n);
typedef int (*ezp_add_fn)(unsigned char *r, const unsigned char *p, const unsigned char *q);
typedef void (*ezp_red_fn)(unsigned char *r, const unsigned char *s);
typedef int (*ezp_valid_fn)(const unsigned char *p);
typedef int (*ezp_b2b_fn)(unsigned char *out, size_t outlen, const unsigned char *in,
                          unsigned long long inlen, const unsigned char *key, size_t keylen,
                          const unsigned char *salt, const unsigned char *personal);

typedef struct {
    ezp_sm_fn mul;          /* crypto_scalarmult_ed25519_noclamp */
    ezp_smb_fn mul_base;    /* crypto_scalarmult_ed25519_base_noclamp */
    ezp_add_fn add;         /* crypto_core_ed25519_add */
    ezp_add_fn sub;         /* crypto_core_ed25519_sub */
    ezp_red_fn reduce;      /* crypto_core_ed25519_scalar_reduce (64 -> 32 bytes mod L) */
    ezp_valid_fn valid;     /* crypto_core_ed25519_is_valid_point */
    ezp_b2b_fn hash;        /* crypto_generichash_blake2b_salt_personal */
} ezp_ec_fns;

static const unsigned char EZP_EC_PERSON[16] = {'e','z','p','-','c','o','1','5','-','e','d','2','5','5','1','9'};

/* key = BLAKE2b-128(ctx32 || A || B || K; salt = index i, personal = EZP_EC_PERSON) */
static int ezp_ec_kdf(const ezp_ec_fns *f, const unsigned char *ctx, uint64_t i, const unsigned char *A,
                      const unsigned char *B, const unsigned char *K, unsigned char *out16) {
    unsigned char in[128], salt[16];
    memcpy(in, ctx, 32);
    memcpy(in + 32, A, 32);
    memcpy(in + 64, B, 32);
    memcpy(in + 96, K, 32);
    memset(salt, 0, 16);
    memcpy(salt, &i, 8);
    int rc = f->hash(out16, 16, in, 128, NULL, 0, salt, EZP_EC_PERSON);
    memset(in + 96, 0, 32);
    return rc;
}

/* Sender, first message: a = rand64 mod L, A = aG, T = aA.  Returns 0 or -1. */
static int ezp_ec_send_first(const ezp_ec_fns *f, const unsigned char *rand64, unsigned char *a,
                             unsigned char *A, unsigned char *T) {
    f->reduce(a, rand64);
    if (f->mul_base(A, a) != 0) return -1;
    if (f->mul(T, a, A) != 0) return -1;
    return 0;
}

/* Receiver: for OT i with choice c_i: b_i = rand64_i mod L; B_i = b_i G + c_i A (both
 * candidates computed, selected with a mask); key_i = KDF(i, A, B_i, b_i A).
 * A must have been validated.  Returns -1 on success, else the failing index. */
static int64_t ezp_ec_recv(const ezp_ec_fns *f, const unsigned char *ctx, const unsigned char *A,
                           const uint8_t *c, const unsigned char *rand64, size_t n, uint64_t i0,
                           unsigned char *B, unsigned char *keys) {
    unsigned char b[32], X[32], Y[32], K[32];
    for (size_t i = 0; i < n; i++) {
        f->reduce(b, rand64 + 64 * i);
        if (f->mul_base(X, b) != 0) return (int64_t)i;
        if (f->add(Y, X, A) != 0) return (int64_t)i;
        unsigned char m = (unsigned char)(0 - (c[i] & 1));
        for (int j = 0; j < 32; j++) B[32 * i + j] = (unsigned char)(X[j] ^ (m & (X[j] ^ Y[j])));
        if (f->mul(K, b, A) != 0) return (int64_t)i;
        if (ezp_ec_kdf(f, ctx, i0 + i, A, B + 32 * i, K, keys + 16 * i) != 0) return (int64_t)i;
    }
    memset(b, 0, 32); memset(K, 0, 32);
    return -1;
}

/* Sender, second step: k0_i = KDF(i, A, B_i, a B_i), k1_i = KDF(i, A, B_i, a B_i - T).
 * Returns -1 on success, else the index of the first invalid B_i. */
static int64_t ezp_ec_send_finish(const ezp_ec_fns *f, const unsigned char *ctx, const unsigned char *a,
                                  const unsigned char *A, const unsigned char *T, const unsigned char *B,
                                  size_t n, uint64_t i0, unsigned char *k0, unsigned char *k1) {
    unsigned char K0[32], K1[32];
    for (size_t i = 0; i < n; i++) {
        if (f->mul(K0, a, B + 32 * i) != 0) return (int64_t)i;
        if (f->sub(K1, K0, T) != 0) return (int64_t)i;
        if (ezp_ec_kdf(f, ctx, i0 + i, A, B + 32 * i, K0, k0 + 16 * i) != 0) return (int64_t)i;
        if (ezp_ec_kdf(f, ctx, i0 + i, A, B + 32 * i, K1, k1 + 16 * i) != 0) return (int64_t)i;
    }
    memset(K0, 0, 32); memset(K1, 0, 32);
    return -1;
}

#endif
