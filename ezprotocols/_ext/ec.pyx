# cython: freethreading_compatible = False
"""Elliptic-curve base-OT kernels: Chou-Orlandi (eprint 2015/267) in Ed25519's
prime-order subgroup, batched in C without the GIL (``include/ezp_ec.h``).

The group operations and BLAKE2b are libsodium's, taken as function pointers from
the cffi module of PyNaCl (``nacl._sodium``), whose wheel links libsodium
statically: :func:`init` resolves them once and raises ``RuntimeError`` naming the
missing symbol if this libsodium lacks one.  (That build exports no ristretto255
functions, so the group is Ed25519's order-L subgroup with full point validation.)
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint8_t, uint64_t, int64_t, uintptr_t

cnp.import_array()

cdef extern from "ezp_ec.h" nogil:
    ctypedef struct ezp_ec_fns:
        void *mul
        void *mul_base
        void *add
        void *sub
        void *reduce
        void *valid
        void *hash
    int ezp_ec_send_first(const ezp_ec_fns *f, const unsigned char *rand64, unsigned char *a,
                          unsigned char *A, unsigned char *T)
    int64_t ezp_ec_recv(const ezp_ec_fns *f, const unsigned char *ctx, const unsigned char *A,
                        const uint8_t *c, const unsigned char *rand64, size_t n, uint64_t i0,
                        unsigned char *B, unsigned char *keys)
    int64_t ezp_ec_send_finish(const ezp_ec_fns *f, const unsigned char *ctx, const unsigned char *a,
                               const unsigned char *A, const unsigned char *T, const unsigned char *B,
                               size_t n, uint64_t i0, unsigned char *k0, unsigned char *k1)

ctypedef int (*valid_fn)(const unsigned char *p) noexcept nogil

cdef ezp_ec_fns F
cdef bint _ready = False

SYMBOLS = ("crypto_scalarmult_ed25519_noclamp", "crypto_scalarmult_ed25519_base_noclamp",
           "crypto_core_ed25519_add", "crypto_core_ed25519_sub", "crypto_core_ed25519_scalar_reduce",
           "crypto_core_ed25519_is_valid_point", "crypto_generichash_blake2b_salt_personal")
POINT_BYTES = 32


def init():
    """Resolve the libsodium functions (once).  RuntimeError if PyNaCl is missing or its
    libsodium lacks a needed symbol."""
    global _ready
    if _ready:
        return
    try:
        from nacl import _sodium
    except ImportError as e:     # pragma: no cover - pynacl is a dependency
        raise RuntimeError("the elliptic-curve base OT needs PyNaCl (pip install pynacl)") from e
    ptrs = []
    for name in SYMBOLS:
        fn = getattr(_sodium.lib, name, None)
        if fn is None:
            raise RuntimeError(f"libsodium in PyNaCl lacks {name}; use the MODP base OT (base_ot='modp')")
        ptrs.append(int(_sodium.ffi.cast("uintptr_t", fn)))
    if _sodium.lib.sodium_init() < 0:
        raise RuntimeError("sodium_init failed")
    cdef uintptr_t u[7]
    for i in range(7):
        u[i] = ptrs[i]
    F.mul = <void *> u[0]
    F.mul_base = <void *> u[1]
    F.add = <void *> u[2]
    F.sub = <void *> u[3]
    F.reduce = <void *> u[4]
    F.valid = <void *> u[5]
    F.hash = <void *> u[6]
    _ready = True


def is_valid_point(const uint8_t[::1] p):
    """libsodium's check: canonical encoding, on the curve, in the order-L subgroup, not of small order."""
    init()
    if p.shape[0] != POINT_BYTES:
        return False
    return (<valid_fn> F.valid)(&p[0]) == 1


def send_first(const uint8_t[::1] rand64):
    """-> (a uint8[32], A uint8[32], T = aA uint8[32]) from 64 random bytes."""
    init()
    if rand64.shape[0] != 64:
        raise ValueError("rand64 must be 64 bytes")
    a = np.empty(32, np.uint8)
    A = np.empty(32, np.uint8)
    T = np.empty(32, np.uint8)
    cdef uint8_t[::1] av = a, Av = A, Tv = T
    cdef int rc
    with nogil:
        rc = ezp_ec_send_first(&F, &rand64[0], &av[0], &Av[0], &Tv[0])
    if rc != 0:
        raise RuntimeError("degenerate base-OT scalar (probability 2^-252)")
    return a, A, T


def recv(const uint8_t[::1] ctx, const uint8_t[::1] A, const uint8_t[::1] c, const uint8_t[::1] rand64,
         uint64_t i0=0):
    """Receiver of ``n = len(c)`` OTs: -> (B uint8[n, 32], keys uint8[n, 16]), or the int index
    of the OT where libsodium refused (A invalid / degenerate scalar)."""
    init()
    cdef size_t n = c.shape[0]
    if ctx.shape[0] != 32 or A.shape[0] != 32 or <size_t> rand64.shape[0] != 64 * n:
        raise ValueError("ctx and A must be 32 bytes, rand64 64 bytes per OT")
    B = np.empty((n, 32), np.uint8)
    keys = np.empty((n, 16), np.uint8)
    if n == 0:
        return B, keys
    cdef uint8_t[:, ::1] Bv = B, kv = keys
    cdef int64_t bad
    with nogil:
        bad = ezp_ec_recv(&F, &ctx[0], &A[0], &c[0], &rand64[0], n, i0, &Bv[0, 0], &kv[0, 0])
    if bad >= 0:
        return int(bad)
    return B, keys


def send_finish(const uint8_t[::1] ctx, const uint8_t[::1] a, const uint8_t[::1] A, const uint8_t[::1] T,
                const uint8_t[:, ::1] B, uint64_t i0=0):
    """Sender: -> (k0, k1) uint8[n, 16] each, or the int index of the first invalid B_i."""
    init()
    cdef size_t n = B.shape[0]
    if ctx.shape[0] != 32 or a.shape[0] != 32 or A.shape[0] != 32 or T.shape[0] != 32 \
            or (n and B.shape[1] != 32):
        raise ValueError("bad shapes")
    k0 = np.empty((n, 16), np.uint8)
    k1 = np.empty((n, 16), np.uint8)
    if n == 0:
        return k0, k1
    cdef uint8_t[:, ::1] k0v = k0, k1v = k1
    cdef int64_t bad
    with nogil:
        bad = ezp_ec_send_finish(&F, &ctx[0], &a[0], &A[0], &T[0], &B[0, 0], n, i0, &k0v[0, 0], &k1v[0, 0])
    if bad >= 0:
        return int(bad)
    return k0, k1
