# cython: freethreading_compatible = False
"""OT-extension kernels (IKNP, CRYPTO 2003, with the ALSZ optimisations of eprint
2013/552): column PRG with one AES key per base-OT seed, u-matrix, 128 x 128 bit
transposes, TCCR hashing (eprint 2019/074) for random, chosen-message and additive
OTs.  Everything runs without the GIL over contiguous buffers; see
``include/ezp_ot.h`` for the layouts (tile-major u matrix).

Used by :mod:`ezprotocols.ot.iknp`; the functions check shapes and dtypes but
assume the caller keeps the protocol state (tile counters, keys) consistent.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free
from libc.string cimport memset

cnp.import_array()

cdef extern from "stdlib.h" nogil:
    void *aligned_alloc(size_t alignment, size_t size)

cdef extern from "ezp_ot.h" nogil:
    ctypedef struct ezp_ot_keys:
        pass
    int ezp_have_vaes
    int ezp_ot_have_gfni
    size_t EZP_OT_SCRATCH
    void ezp_ot_init()
    void ezp_ot_keys_set(ezp_ot_keys *K, const uint8_t *seeds)
    void ezp_ot_prg8(const ezp_ot_keys *K, uint64_t ctr, uint8_t *out)
    void ezp_ot_tr128(const uint8_t *inp, uint8_t *out)
    size_t ezp_ot_ubytes(size_t n)
    void ezp_ot_recv_ext(const ezp_ot_keys *K0, const ezp_ot_keys *K1, uint64_t ctr, const uint8_t *r,
                         size_t n, uint8_t *u, uint8_t *t, uint8_t *scratch)
    void ezp_ot_send_ext(const ezp_ot_keys *K, const uint8_t *mask, uint64_t ctr, const uint8_t *u,
                         size_t n, uint8_t *q, uint8_t *scratch)
    Py_ssize_t ezp_ot_pack_bits(const uint8_t *bits, size_t n, uint8_t *packed)
    void ezp_ot_tccr(const uint8_t *x, const uint8_t *d, size_t n, uint64_t hi, uint64_t lo, uint8_t *out)
    void ezp_ot_hash2(const uint8_t *x, const uint8_t *delta, size_t n, uint64_t hi, uint64_t lo,
                      const uint8_t *m0, const uint8_t *m1, uint8_t *o0, uint8_t *o1)
    void ezp_ot_chosen_send(const uint8_t *q, const uint8_t *delta, size_t n, uint64_t hi, uint64_t lo,
                            const uint8_t *m0, const uint8_t *m1, size_t L, uint8_t *y)
    void ezp_ot_chosen_recv(const uint8_t *t, const uint8_t *b, size_t n, uint64_t hi, uint64_t lo,
                            const uint8_t *y, size_t L, uint8_t *out)
    size_t ezp_ot_acot_send(const uint8_t *q, const uint8_t *delta, size_t n, uint64_t hi, uint64_t lo,
                            const uint64_t *c, const uint8_t *widths, unsigned w, uint64_t *x, uint8_t *d)
    size_t ezp_ot_acot_recv(const uint8_t *t, const uint8_t *b, size_t n, uint64_t hi, uint64_t lo,
                            const uint8_t *widths, unsigned w, const uint8_t *d, uint64_t *y)

ezp_ot_init()

BLOCK = 16
KAPPA = 128


def gfni_transpose_enabled():
    """True when the AVX-512 VBMI + GFNI transpose is in use (else the SSE one)."""
    return bool(ezp_ot_have_gfni)


def vaes_enabled():
    return bool(ezp_have_vaes)


def ubytes(Py_ssize_t n):
    """Bytes of the u matrix for a batch of ``n`` OTs (16 per OT, whole bytes per column)."""
    if n < 0:
        raise ValueError("n must be non-negative")
    return ezp_ot_ubytes(n)


cdef inline const uint8_t *_p8(const uint8_t[::1] a):
    return &a[0] if a.shape[0] else NULL


cdef class ColumnKeys:
    """AES round keys of the 128 base-OT seeds (``uint8[128, 16]``), arranged for the
    column PRG: column i of tile c is ``AES_{seed_i}(c)``."""
    cdef ezp_ot_keys *k

    def __cinit__(self, seeds):
        s = np.ascontiguousarray(seeds, dtype=np.uint8)
        if s.shape != (KAPPA, BLOCK):
            raise ValueError(f"seeds must be uint8[{KAPPA}, {BLOCK}], got {s.shape}")
        cdef const uint8_t[:, ::1] sv = s
        self.k = <ezp_ot_keys *> aligned_alloc(64, sizeof(ezp_ot_keys))
        if self.k == NULL:
            raise MemoryError()
        ezp_ot_keys_set(self.k, &sv[0, 0])

    def __dealloc__(self):
        if self.k != NULL:
            memset(self.k, 0, sizeof(ezp_ot_keys))
            free(self.k)

    def columns(self, uint64_t ctr, Py_ssize_t ntiles):
        """``uint8[ntiles, 128, 16]``: block i of tile t is ``AES_{seed_i}(ctr + t)`` (tests)."""
        out = np.empty((ntiles + 8, KAPPA, BLOCK), np.uint8)
        cdef uint8_t[:, :, ::1] ov = out
        cdef Py_ssize_t t
        with nogil:
            t = 0
            while t < ntiles:
                ezp_ot_prg8(self.k, ctr + t, &ov[t, 0, 0])
                t += 8
        return out[:ntiles]


cdef class Scratch:
    cdef uint8_t *p

    def __cinit__(self):
        self.p = <uint8_t *> aligned_alloc(64, EZP_OT_SCRATCH + 64)
        if self.p == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.p != NULL:
            memset(self.p, 0, EZP_OT_SCRATCH + 64)
            free(self.p)


def transpose128(tiles):
    """Bit-transpose of 128 x 128 tiles (``uint8[128, 16]`` or ``uint8[k, 128, 16]``):
    out row c, bit i = in row i, bit c, tile by tile."""
    a = np.ascontiguousarray(tiles, dtype=np.uint8)
    if a.ndim not in (2, 3) or tuple(a.shape)[a.ndim - 2:] != (KAPPA, BLOCK):
        raise ValueError("tiles must be uint8[128, 16] or uint8[k, 128, 16]")
    out = np.empty(a.shape, np.uint8)
    cdef const uint8_t[::1] av = a.reshape(-1)
    cdef uint8_t[::1] ov = out.reshape(-1)
    cdef Py_ssize_t k, nt = a.size // 2048
    with nogil:
        for k in range(nt):
            ezp_ot_tr128(&av[k * 2048], &ov[k * 2048])
    return out


def pack_bits(bits, out=None):
    """Check that ``bits`` (``uint8[n]``) holds only 0/1 and pack it little-endian into
    ``uint8[ceil(n/8)]``; raises ValueError naming the first bad index."""
    b = np.asarray(bits)
    if b.dtype != np.uint8 and b.dtype != np.bool_:
        if b.dtype.kind not in "iub":
            raise ValueError(f"choice bits must be an integer array of 0/1, got dtype {b.dtype}")
        if b.size and (b.min() < 0 or b.max() > 1):
            first = int(np.flatnonzero((b.reshape(-1) < 0) | (b.reshape(-1) > 1))[0])
            raise ValueError(f"choice bits must be 0 or 1; bits[{first}] = {b.reshape(-1)[first]}")
        b = b.astype(np.uint8)
    if b.ndim != 1:
        raise ValueError(f"choice bits must be a 1-d array, got shape {b.shape}")
    b = np.ascontiguousarray(b).view(np.uint8)
    cdef Py_ssize_t n = b.shape[0]
    cdef Py_ssize_t nb = (n + 7) // 8
    if out is None:
        out = np.empty(nb, np.uint8)
    cdef uint8_t[::1] ov = out
    cdef const uint8_t[::1] bv = b
    cdef Py_ssize_t bad = -1
    if n:
        with nogil:
            bad = ezp_ot_pack_bits(&bv[0], n, &ov[0])
    if bad >= 0:
        raise ValueError(f"choice bits must be 0 or 1; bits[{bad}] = {b[bad]}")
    return b, out


def recv_extend(ColumnKeys k0, ColumnKeys k1, uint64_t ctr, const uint8_t[::1] packed, Py_ssize_t off,
                Py_ssize_t n, uint8_t[::1] u, uint8_t[:, ::1] t, Py_ssize_t t_off, Scratch scratch):
    """IKNP receiver for OTs ``off .. off+n`` of a batch (``off`` a multiple of 128):
    choice bits from ``packed``, tile counter ``ctr`` (of OT ``off``), writes the wire
    matrix ``u`` (:func:`ubytes` (n) bytes) and rows ``t[t_off : t_off+n]``."""
    if n < 0 or off < 0 or off % 128:
        raise ValueError("bad offset / count")
    if <size_t> u.shape[0] != ezp_ot_ubytes(n):
        raise ValueError(f"u must hold {ezp_ot_ubytes(n)} bytes")
    if t.shape[1] != BLOCK or t_off < 0 or t_off + n > t.shape[0]:
        raise ValueError("t too small")
    if (off + n + 7) // 8 > packed.shape[0]:
        raise ValueError("packed choice bits too short")
    if n == 0:
        return
    with nogil:
        ezp_ot_recv_ext(k0.k, k1.k, ctr, &packed[off // 8], n, &u[0], &t[t_off, 0], scratch.p)


def send_extend(ColumnKeys ks, const uint8_t[::1] mask, uint64_t ctr, const uint8_t[::1] u, Py_ssize_t n,
                uint8_t[:, ::1] q, Py_ssize_t q_off, Scratch scratch):
    """IKNP sender: from the receiver's ``u`` (:func:`ubytes` (n) bytes) and tile
    counter ``ctr``, writes rows ``q[q_off : q_off+n]``.  ``mask`` is ``uint8[128*16]``
    (block i all-ones iff s_i = 1)."""
    if n < 0:
        raise ValueError("bad count")
    if <size_t> u.shape[0] != ezp_ot_ubytes(n):
        raise ValueError(f"u must hold {ezp_ot_ubytes(n)} bytes")
    if mask.shape[0] != KAPPA * BLOCK:
        raise ValueError("mask must be 2048 bytes")
    if q.shape[1] != BLOCK or q_off < 0 or q_off + n > q.shape[0]:
        raise ValueError("q too small")
    if n == 0:
        return
    with nogil:
        ezp_ot_send_ext(ks.k, &mask[0], ctr, &u[0], n, &q[q_off, 0], scratch.p)


def tccr_rows(const uint8_t[:, ::1] x, delta, uint64_t hi, uint64_t lo, uint8_t[:, ::1] out):
    """``out[j] = TCCR(x[j] ^ delta, (hi, lo + j))`` (``delta`` None: no offset)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef const uint8_t[::1] d
    cdef const uint8_t *dp = NULL
    if x.shape[1] != BLOCK or out.shape[0] != n or out.shape[1] != BLOCK:
        raise ValueError("x and out must be uint8[n, 16]")
    if delta is not None:
        d = np.ascontiguousarray(delta, dtype=np.uint8).reshape(-1)
        if d.shape[0] != BLOCK:
            raise ValueError("delta must be 16 bytes")
        dp = &d[0]
    if n == 0:
        return out
    with nogil:
        ezp_ot_tccr(&x[0, 0], dp, n, hi, lo, &out[0, 0])
    return out


def hash2_rows(const uint8_t[:, ::1] x, const uint8_t[::1] delta, uint64_t hi, uint64_t lo,
               uint8_t[:, ::1] o0, uint8_t[:, ::1] o1):
    """Both sender hashes in one pass: ``o0[j] = TCCR(x[j], (hi, lo+j))``, ``o1[j] = TCCR(x[j] ^ delta, ...)``."""
    cdef Py_ssize_t n = x.shape[0]
    if x.shape[1] != BLOCK or delta.shape[0] != BLOCK or o0.shape[0] != n or o1.shape[0] != n \
            or o0.shape[1] != BLOCK or o1.shape[1] != BLOCK:
        raise ValueError("x, o0, o1 must be uint8[n, 16], delta 16 bytes")
    if n == 0:
        return
    with nogil:
        ezp_ot_hash2(&x[0, 0], &delta[0], n, hi, lo, NULL, NULL, &o0[0, 0], &o1[0, 0])


def chosen_send(const uint8_t[:, ::1] q, const uint8_t[::1] delta, uint64_t hi, uint64_t lo,
                const uint8_t[:, ::1] m0, const uint8_t[:, ::1] m1, uint8_t[:, :, ::1] y):
    """``y[0][j] = m0[j] ^ pad(q_j)``, ``y[1][j] = m1[j] ^ pad(q_j ^ delta)`` (``y``: uint8[2, n, L])."""
    cdef Py_ssize_t n = q.shape[0]
    cdef Py_ssize_t L = y.shape[2]
    if m0.shape[0] != n or m1.shape[0] != n or y.shape[0] != 2 or y.shape[1] != n:
        raise ValueError("shape mismatch")
    if m0.shape[1] != L or m1.shape[1] != L or delta.shape[0] != BLOCK:
        raise ValueError("shape mismatch")
    if n == 0 or L == 0:
        return
    with nogil:
        ezp_ot_chosen_send(&q[0, 0], &delta[0], n, hi, lo, &m0[0, 0], &m1[0, 0], L, &y[0, 0, 0])


def chosen_recv(const uint8_t[:, ::1] t, const uint8_t[::1] b, uint64_t hi, uint64_t lo,
                const uint8_t[:, :, ::1] y, uint8_t[:, ::1] out):
    """``out[j] = y[b_j][j] ^ pad(t_j)`` (``y``: uint8[2, n, L])."""
    cdef Py_ssize_t n = t.shape[0]
    cdef Py_ssize_t L = y.shape[2]
    if b.shape[0] != n or y.shape[0] != 2 or y.shape[1] != n or out.shape[0] != n or out.shape[1] != L:
        raise ValueError("shape mismatch")
    if n == 0 or L == 0:
        return
    with nogil:
        ezp_ot_chosen_recv(&t[0, 0], &b[0], n, hi, lo, &y[0, 0, 0], L, &out[0, 0])


def acot_nbytes(Py_ssize_t n, widths, unsigned w):
    """Bytes of the additive-OT correction message: sum of ceil(w_j / 8)."""
    if widths is None:
        if w < 1 or w > 64:
            raise ValueError("width must be in [1, 64]")
        return n * ((w + 7) // 8)
    a = np.asarray(widths)
    if a.dtype != np.uint8 or a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"widths must be uint8[{n}]")
    if n and (a.min() < 1 or a.max() > 64):
        raise ValueError("widths must be in [1, 64]")
    return int(((a.astype(np.int64) + 7) // 8).sum())


def acot_send(const uint8_t[:, ::1] q, const uint8_t[::1] delta, uint64_t hi, uint64_t lo,
              const uint64_t[::1] c, widths, unsigned w, uint64_t[::1] x, uint8_t[::1] d):
    """Additive COT sender over ``Z_2^w`` (or per-OT ``widths``); returns bytes written to ``d``."""
    cdef Py_ssize_t n = q.shape[0]
    cdef const uint8_t[::1] wv
    cdef const uint8_t *wp = NULL
    cdef size_t nb = 0
    if c.shape[0] != n or x.shape[0] != n or delta.shape[0] != BLOCK:
        raise ValueError("shape mismatch")
    if <size_t> d.shape[0] != <size_t> acot_nbytes(n, widths, w):
        raise ValueError("d has the wrong length")
    if widths is not None:
        wv = widths
        if n:
            wp = &wv[0]
    if n == 0:
        return 0
    with nogil:
        nb = ezp_ot_acot_send(&q[0, 0], &delta[0], n, hi, lo, &c[0], wp, w, &x[0],
                              &d[0] if d.shape[0] else NULL)
    return nb


def acot_recv(const uint8_t[:, ::1] t, const uint8_t[::1] b, uint64_t hi, uint64_t lo,
              widths, unsigned w, const uint8_t[::1] d, uint64_t[::1] y):
    """Additive COT receiver: ``y_j = H(t_j) - b_j d_j mod 2^w_j``; returns bytes read from ``d``."""
    cdef Py_ssize_t n = t.shape[0]
    cdef const uint8_t[::1] wv
    cdef const uint8_t *wp = NULL
    cdef size_t nb = 0
    if b.shape[0] != n or y.shape[0] != n:
        raise ValueError("shape mismatch")
    if <size_t> d.shape[0] != <size_t> acot_nbytes(n, widths, w):
        raise ValueError("d has the wrong length")
    if widths is not None:
        wv = widths
        if n:
            wp = &wv[0]
    if n == 0:
        return 0
    with nogil:
        nb = ezp_ot_acot_recv(&t[0, 0], &b[0], n, hi, lo, wp, w, &d[0] if d.shape[0] else NULL, &y[0])
    return nb
