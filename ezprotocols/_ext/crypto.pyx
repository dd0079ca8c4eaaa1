# cython: freethreading_compatible = False
"""Symmetric-crypto kernels: AES-128 (AES-NI, VAES-512 when present), AES-CTR PRG,
correlation-robust hashes from fixed-key AES, bit-matrix transpose.

Hashes follow Guo, Kumar, Wang, Katz, eprint 2019/074, section 7:
``cr_hash(x) = pi(x) ^ x``, ``ccr_hash(x) = pi(sigma(x)) ^ sigma(x)`` with the
linear orthomorphism ``sigma(hi || lo) = (hi ^ lo) || hi``, and the tweakable
``tccr_hash(x, i) = pi(pi(x) ^ i) ^ pi(x)``; ``pi`` is AES-128 under a public
fixed key.  A block is 16 bytes; as a 128-bit integer it is read little endian
(byte 0 is least significant), so "hi" is bytes 8..15.

All functions take and return C-contiguous ``uint8[n, 16]`` block arrays (any
C-contiguous array whose size is a multiple of 16 bytes is accepted) and release
the GIL while they run.
"""
import secrets

import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free
from libc.string cimport memcpy

cnp.import_array()

cdef extern from "stdlib.h" nogil:
    void *aligned_alloc(size_t alignment, size_t size)

cdef extern from "ezp_aes.h" nogil:
    ctypedef struct ezp_aes_key:
        pass
    int ezp_have_vaes
    void ezp_aes_init()
    void ezp_aes_set_key(ezp_aes_key *key, const uint8_t *k16)
    void ezp_wipe(void *p, size_t n)
    void ezp_aes_ecb(const ezp_aes_key *key, const uint8_t *inp, uint8_t *out, size_t n)
    void ezp_aes_ctr(const ezp_aes_key *key, uint64_t nonce, uint64_t ctr, uint8_t *out, size_t n)
    void ezp_aes_ctr_bytes(const ezp_aes_key *key, uint64_t nonce, uint64_t *ctr, uint8_t *out, size_t nbytes)
    void ezp_cr_hash(const uint8_t *inp, uint8_t *out, size_t n)
    void ezp_ccr_hash(const uint8_t *inp, uint8_t *out, size_t n)
    void ezp_tccr_hash(const uint8_t *inp, const uint8_t *tweaks, uint64_t tw_hi, uint64_t tw_lo,
                       uint8_t *out, size_t n)
    ezp_aes_key ezp_fixed_key

cdef extern from "ezp_transpose.h" nogil:
    void ezp_transpose_bits(const uint8_t *inp, size_t is_, uint8_t *out, size_t os, size_t rows, size_t cols)

ezp_aes_init()

BLOCK = 16


def vaes_enabled():
    """True when the VAES/AVX-512 code paths are in use (CPU support and EZP_NO_VAES unset)."""
    return bool(ezp_have_vaes)


cdef object _flat_in(object a, str name):
    """A read-only-compatible flat uint8 view of a C-contiguous array of blocks."""
    arr = np.asarray(a)
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if arr.nbytes % 16:
        raise ValueError(f"{name} must hold whole 16-byte blocks, got {arr.nbytes} bytes")
    return arr.reshape(-1).view(np.uint8) if arr.nbytes else np.empty(0, np.uint8)


cdef object _out_like(object src, object out, size_t nbytes):
    if out is None:
        return np.empty((nbytes // 16, 16), dtype=np.uint8)
    o = np.asarray(out)
    if not o.flags.c_contiguous or not o.flags.writeable or o.nbytes != nbytes:
        raise ValueError(f"out must be a writeable C-contiguous array of {nbytes} bytes")
    return out


cdef class AES128:
    """AES-128 encryption under a given key (ECB over arrays of blocks)."""
    cdef ezp_aes_key *k

    def __cinit__(self, key):
        key = bytes(key)
        if len(key) != 16:
            raise ValueError("AES-128 key must be 16 bytes")
        self.k = <ezp_aes_key *> aligned_alloc(64, 192)
        if self.k == NULL:
            raise MemoryError()
        ezp_aes_set_key(self.k, <const uint8_t *> key)

    def __dealloc__(self):
        if self.k != NULL:
            free(self.k)

    def encrypt(self, blocks, out=None):
        """Encrypt every 16-byte block of ``blocks``; returns ``uint8[n, 16]`` (or fills ``out``)."""
        cdef const uint8_t[::1] src = _flat_in(blocks, "blocks")
        cdef size_t nb = src.shape[0]
        res = _out_like(blocks, out, nb)
        cdef uint8_t[::1] dst = np.asarray(res).reshape(-1).view(np.uint8) if nb else np.empty(0, np.uint8)
        if nb:
            with nogil:
                ezp_aes_ecb(self.k, &src[0], &dst[0], nb // 16)
        return res


def fixed_key_aes(blocks, out=None):
    """The public permutation pi (AES-128 under the fixed key) on every block."""
    cdef const uint8_t[::1] src = _flat_in(blocks, "blocks")
    cdef size_t nb = src.shape[0]
    res = _out_like(blocks, out, nb)
    cdef uint8_t[::1] dst = np.asarray(res).reshape(-1).view(np.uint8) if nb else np.empty(0, np.uint8)
    if nb:
        with nogil:
            ezp_aes_ecb(&ezp_fixed_key, &src[0], &dst[0], nb // 16)
    return res


def cr_hash(blocks, out=None):
    """Correlation-robust hash pi(x) ^ x of every block (eprint 2019/074, 7.2)."""
    cdef const uint8_t[::1] src = _flat_in(blocks, "blocks")
    cdef size_t nb = src.shape[0]
    res = _out_like(blocks, out, nb)
    cdef uint8_t[::1] dst = np.asarray(res).reshape(-1).view(np.uint8) if nb else np.empty(0, np.uint8)
    if nb:
        with nogil:
            ezp_cr_hash(&src[0], &dst[0], nb // 16)
    return res


def ccr_hash(blocks, out=None):
    """Circular correlation-robust hash pi(sigma(x)) ^ sigma(x) (eprint 2019/074, 7.3)."""
    cdef const uint8_t[::1] src = _flat_in(blocks, "blocks")
    cdef size_t nb = src.shape[0]
    res = _out_like(blocks, out, nb)
    cdef uint8_t[::1] dst = np.asarray(res).reshape(-1).view(np.uint8) if nb else np.empty(0, np.uint8)
    if nb:
        with nogil:
            ezp_ccr_hash(&src[0], &dst[0], nb // 16)
    return res


def tccr_hash(blocks, tweak=0, tweaks=None, out=None):
    """Tweakable circular correlation-robust hash pi(pi(x) ^ i) ^ pi(x) (eprint 2019/074, 7.4).

    Block j is hashed with the tweak whose high 64 bits are those of ``tweak`` and
    whose low 64 bits are ``(tweak + j) mod 2**64`` (a counter in the low word), or
    with ``tweaks[j]`` when an array of 16-byte tweaks is given.
    """
    cdef const uint8_t[::1] src = _flat_in(blocks, "blocks")
    cdef const uint8_t[::1] tw
    cdef const uint8_t *twp = NULL
    cdef size_t nb = src.shape[0]
    t = int(tweak)
    if t < 0 or t >= (1 << 128):
        raise ValueError("tweak must be a 128-bit unsigned integer")
    cdef uint64_t lo = t & 0xFFFFFFFFFFFFFFFF
    cdef uint64_t hi = t >> 64
    if tweaks is not None:
        tw = _flat_in(tweaks, "tweaks")
        if tw.shape[0] != nb:
            raise ValueError("tweaks must have one 16-byte block per input block")
        if nb:
            twp = &tw[0]
    res = _out_like(blocks, out, nb)
    cdef uint8_t[::1] dst = np.asarray(res).reshape(-1).view(np.uint8) if nb else np.empty(0, np.uint8)
    if nb:
        with nogil:
            ezp_tccr_hash(&src[0], twp, hi, lo, &dst[0], nb // 16)
    return res


def transpose_bits(mat, Py_ssize_t rows, Py_ssize_t cols, out=None):
    """Transpose a packed bit matrix.

    ``mat`` is ``uint8[rows, ceil(cols/8)]`` (bit c of row r = bit c%8 of byte c//8);
    returns ``uint8[cols, ceil(rows/8)]`` with bit r of row c = bit c of row r.
    """
    if rows < 0 or cols < 0:
        raise ValueError("rows and cols must be non-negative")
    a = np.ascontiguousarray(mat, dtype=np.uint8)
    cdef Py_ssize_t ib = (cols + 7) // 8
    cdef Py_ssize_t ob = (rows + 7) // 8
    if a.ndim != 2 or a.shape[0] != rows or a.shape[1] != ib:
        raise ValueError(f"mat must be uint8[{rows}, {ib}], got {a.shape}")
    if out is None:
        res = np.zeros((cols, ob), dtype=np.uint8)
    else:
        res = out
        if res.dtype != np.uint8 or res.shape != (cols, ob) or not res.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous uint8[{cols}, {ob}]")
    if rows == 0 or cols == 0:
        return res
    cdef const uint8_t[:, ::1] src = a
    cdef uint8_t[:, ::1] dst = res
    with nogil:
        ezp_transpose_bits(&src[0, 0], ib, &dst[0, 0], ob, rows, cols)
    return res


cdef class Prg:
    """AES-CTR pseudorandom generator.

    ``Prg(seed=None)``: the 16-byte ``seed`` is the AES key; without one the seed
    comes from :func:`secrets.token_bytes`.  Block i of the stream is
    ``AES_seed(i)`` (the counter in the low 64 bits of the block).  Every call
    continues the stream; a call for a number of bytes that is not a multiple of 16
    discards the rest of its last block.
    """
    cdef ezp_aes_key *k
    cdef uint64_t ctr
    cdef readonly bytes seed

    def __cinit__(self, seed=None):
        if seed is None:
            seed = secrets.token_bytes(16)
        seed = bytes(seed)
        if len(seed) != 16:
            raise ValueError("Prg seed must be 16 bytes")
        self.seed = seed
        self.ctr = 0
        self.k = <ezp_aes_key *> aligned_alloc(64, 192)
        if self.k == NULL:
            raise MemoryError()
        ezp_aes_set_key(self.k, <const uint8_t *> seed)

    def __dealloc__(self):
        if self.k != NULL:
            ezp_wipe(self.k, 192)          # the key schedule (the seed stays in ``self.seed``)
            free(self.k)

    @property
    def counter(self):
        """Number of 16-byte blocks drawn so far."""
        return self.ctr

    cdef void _fill(self, uint8_t *p, size_t n) noexcept nogil:
        ezp_aes_ctr_bytes(self.k, 0, &self.ctr, p, n)

    def fill(self, buf):
        """Fill a writeable contiguous buffer (bytearray, numpy array, memoryview) with random bytes."""
        cdef uint8_t[::1] view
        m = memoryview(buf)
        if m.readonly:
            raise ValueError("buffer is read-only")
        if not m.c_contiguous:
            raise ValueError("buffer must be C-contiguous")
        if m.nbytes == 0:
            return buf
        view = m.cast("B")
        with nogil:
            self._fill(&view[0], view.shape[0])
        return buf

    def random_bytes(self, Py_ssize_t n):
        """``n`` random bytes."""
        if n < 0:
            raise ValueError("n must be non-negative")
        out = np.empty(n, dtype=np.uint8)
        self.fill(out)
        return out.tobytes()

    def random_uint64(self, shape):
        """Uniform ``uint64`` array of the given shape (an int or a tuple)."""
        out = np.empty(shape, dtype=np.uint64)
        self.fill(out)
        return out

    def random_uint8(self, shape):
        """Uniform ``uint8`` array of the given shape."""
        out = np.empty(shape, dtype=np.uint8)
        self.fill(out)
        return out

    def random_bits(self, Py_ssize_t n):
        """``uint8[n]`` of independent uniform bits (0 or 1)."""
        if n < 0:
            raise ValueError("n must be non-negative")
        packed = np.empty((n + 7) // 8, dtype=np.uint8)
        self.fill(packed)
        return np.unpackbits(packed, count=n, bitorder="little")

    def random_blocks(self, Py_ssize_t n):
        """``uint8[n, 16]`` of uniform 16-byte blocks."""
        if n < 0:
            raise ValueError("n must be non-negative")
        out = np.empty((n, 16), dtype=np.uint8)
        self.fill(out)
        return out

    def spawn(self):
        """A new independent Prg seeded from this one's stream."""
        return Prg(self.random_bytes(16))


cdef extern from *:
    """
    static void ezp_cond_xor_blocks(uint8_t *blocks, const uint8_t *bits, const uint8_t *delta, size_t n) {
        __m128i d = _mm_loadu_si128((const __m128i *)delta);
        for (size_t i = 0; i < n; i++) {
            __m128i m = _mm_set1_epi8((char)(0 - (bits[i] & 1)));
            __m128i x = _mm_loadu_si128((const __m128i *)(blocks + 16 * i));
            _mm_storeu_si128((__m128i *)(blocks + 16 * i), _mm_xor_si128(x, _mm_and_si128(m, d)));
        }
    }
    """
    void ezp_cond_xor_blocks(uint8_t *blocks, const uint8_t *bits, const uint8_t *delta, size_t n) nogil


def cond_xor_blocks(blocks, bits, delta):
    """In place: ``blocks[i] ^= delta`` where ``bits[i]`` is 1 (``blocks``: C-contiguous
    ``uint8[..., 16]``; ``bits``: uint8 0/1 with one entry per block; ``delta``: 16 bytes).
    Returns ``blocks``."""
    b = np.asarray(blocks)
    if b.dtype != np.uint8 or not b.flags.c_contiguous or not b.flags.writeable or b.ndim < 1 \
            or b.shape[b.ndim - 1] != 16:
        raise ValueError("blocks must be a writeable C-contiguous uint8[..., 16] array")
    cdef size_t n = b.size // 16
    cdef const uint8_t[::1] bv = np.ascontiguousarray(bits, dtype=np.uint8).reshape(-1)
    if <size_t> bv.shape[0] != n:
        raise ValueError(f"bits must have one entry per block ({n}), got {bv.shape[0]}")
    cdef const uint8_t[::1] dv = np.ascontiguousarray(delta, dtype=np.uint8).reshape(-1)
    if dv.shape[0] != 16:
        raise ValueError("delta must be 16 bytes")
    cdef uint8_t[::1] out = b.reshape(-1)
    if n:
        with nogil:
            ezp_cond_xor_blocks(&out[0], &bv[0], &dv[0], n)
    return blocks
