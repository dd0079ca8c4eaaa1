# cython: freethreading_compatible = False
"""Ferret kernels (eprint 2020/924): GGM-tree single-point COT expansion batched over
all trees of an iteration, and the primal-LPN encoding with a 10-sparse public matrix.
See ``include/ezp_ferret.h``; used by :mod:`ezprotocols.ot.ferret`.  Everything runs
without the GIL over contiguous buffers."""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free

cnp.import_array()

cdef extern from "stdlib.h" nogil:
    void *aligned_alloc(size_t alignment, size_t size)

cdef extern from "ezp_ferret.h" nogil:
    ctypedef struct ezp_aes_key:
        pass
    int EZP_LPN_D
    void ezp_ferret_init()
    void ezp_ferret_lsb_pack(const uint8_t *blocks, size_t n, const uint8_t *b, uint8_t *packed)
    void ezp_ferret_cond_xor_packed(uint8_t *blocks, size_t n, const uint8_t *packed, const uint8_t *delta)
    void ezp_aes_set_key(ezp_aes_key *key, const uint8_t *k16)
    void ezp_wipe(void *p, size_t n)
    void ezp_ggm_send(const uint8_t *seeds, size_t t, int h, uint8_t *out, uint8_t *sums, uint8_t *leafsum)
    void ezp_ggm_recv(const uint32_t *alpha, const uint8_t *ksib, const uint8_t *c, size_t t, int h,
                      uint8_t *out, uint8_t *scratch)
    void ezp_lpn(const ezp_aes_key *key, const uint8_t *base, uint32_t k, uint8_t *out, size_t n, uint64_t i0,
                 int overwrite)

    void ezp_ferret_lsb_pack(const uint8_t *blocks, size_t n, const uint8_t *b, uint8_t *packed)
    void ezp_ferret_cond_xor_packed(uint8_t *blocks, size_t n, const uint8_t *packed, const uint8_t *delta)

ezp_ferret_init()

LPN_D = EZP_LPN_D


def ggm_send(const uint8_t[:, ::1] seeds, int h, uint8_t[:, ::1] out, uint8_t[:, :, :, ::1] sums,
             uint8_t[:, ::1] leafsum):
    """Sender: ``t = len(seeds)`` trees of depth ``h``; leaves (bit 0 cleared) into
    ``out[:t * 2^h]``, per-level left/right sums ``sums`` (uint8[t, h, 2, 16]), leaf XORs
    ``leafsum`` (uint8[t, 16])."""
    cdef size_t t = seeds.shape[0]
    if h < 1 or h > 24:
        raise ValueError("tree depth must be in [1, 24]")
    cdef size_t N = (<size_t> 1) << h
    if (t and seeds.shape[1] != 16) or <size_t> out.shape[0] < t * N or out.shape[1] != 16:
        raise ValueError("seeds must be uint8[t, 16], out uint8[>= t*2^h, 16]")
    if <size_t> sums.shape[0] != t or sums.shape[1] != h or sums.shape[2] != 2 or sums.shape[3] != 16:
        raise ValueError("sums must be uint8[t, h, 2, 16]")
    if <size_t> leafsum.shape[0] != t or leafsum.shape[1] != 16:
        raise ValueError("leafsum must be uint8[t, 16]")
    if t == 0:
        return
    with nogil:
        ezp_ggm_send(&seeds[0, 0], t, h, &out[0, 0], &sums[0, 0, 0, 0], &leafsum[0, 0])


def ggm_recv(const uint32_t[::1] alpha, const uint8_t[:, :, ::1] ksib, const uint8_t[:, ::1] c, int h,
             uint8_t[:, ::1] out, bint xor=False):
    """Receiver: trees punctured at ``alpha`` (uint32[t], each < 2^h), sibling sums ``ksib``
    (uint8[t, h, 16]), ``c`` (uint8[t, 16]); fills ``out[:t * 2^h]`` (``xor``: XORs the
    leaves into it instead, expanding each tree in a scratch buffer)."""
    cdef size_t t = alpha.shape[0]
    if h < 1 or h > 24:
        raise ValueError("tree depth must be in [1, 24]")
    cdef size_t N = (<size_t> 1) << h
    if <size_t> ksib.shape[0] != t or ksib.shape[1] != h or ksib.shape[2] != 16:
        raise ValueError("ksib must be uint8[t, h, 16]")
    if <size_t> c.shape[0] != t or c.shape[1] != 16:
        raise ValueError("c must be uint8[t, 16]")
    if <size_t> out.shape[0] < t * N or out.shape[1] != 16:
        raise ValueError("out must be uint8[>= t*2^h, 16]")
    cdef size_t i
    for i in range(t):
        if alpha[i] >= N:
            raise ValueError("alpha out of range")
    if t == 0:
        return
    cdef uint8_t *scratch = NULL
    if xor:
        scratch = <uint8_t *> aligned_alloc(64, 16 * N)
        if scratch == NULL:
            raise MemoryError()
    with nogil:
        ezp_ggm_recv(&alpha[0], &ksib[0, 0, 0], &c[0, 0], t, h, &out[0, 0], scratch)
    if scratch != NULL:
        ezp_wipe(scratch, 16 * N)          # the last tree's nodes
        free(scratch)


cdef class LpnMatrix:
    """The public 10-sparse matrix of one LPN instance: row r (output r) XORs the base
    blocks at the indices ``(w[10r + e] * k) >> 32``, ``w`` the 32-bit words of the
    AES-CTR stream under ``seed`` (see ``ezp_lpn``)."""
    cdef ezp_aes_key *key
    cdef readonly uint32_t k
    cdef readonly bytes seed

    def __cinit__(self, seed, uint32_t k):
        seed = bytes(seed)
        if len(seed) != 16 or k == 0:
            raise ValueError("seed must be 16 bytes and k > 0")
        self.seed = seed
        self.k = k
        self.key = <ezp_aes_key *> aligned_alloc(64, 192)
        if self.key == NULL:
            raise MemoryError()
        ezp_aes_set_key(self.key, <const uint8_t *> seed)

    def __dealloc__(self):
        if self.key != NULL:
            free(self.key)

    def encode(self, const uint8_t[:, ::1] base, uint8_t[:, ::1] out, uint64_t row0=0, bint overwrite=False):
        """In place: ``out[j] ^= XOR_e base[idx(row0 + j, e)]`` (``base``: uint8[k, 16]);
        ``overwrite``: ``out[j] = ...`` (``out`` need not be initialised)."""
        cdef size_t n = out.shape[0]
        if <size_t> base.shape[0] != self.k or base.shape[1] != 16 or (n and out.shape[1] != 16):
            raise ValueError(f"base must be uint8[{self.k}, 16], out uint8[n, 16]")
        if n == 0:
            return out
        with nogil:
            ezp_lpn(self.key, &base[0, 0], self.k, &out[0, 0], n, row0, overwrite)
        return out

    def indices(self, uint64_t row0, Py_ssize_t nrows):
        """``uint32[nrows, 10]``: the column indices of rows row0.. (tests)."""
        from .crypto import AES128
        w0 = EZP_LPN_D * row0
        nb = (w0 % 4 + EZP_LPN_D * nrows + 3) // 4
        ctr = np.zeros((nb, 2), np.uint64)
        ctr[:, 0] = w0 // 4 + np.arange(nb, dtype=np.uint64)
        w = AES128(self.seed).encrypt(ctr.view(np.uint8).reshape(-1, 16)).view(np.uint32).reshape(-1)
        w = w[w0 % 4: w0 % 4 + EZP_LPN_D * nrows].reshape(nrows, EZP_LPN_D)
        return ((w.astype(np.uint64) * self.k) >> 32).astype(np.uint32)


def lsb_pack(const uint8_t[:, ::1] blocks, b=None):
    """``uint8[ceil(n/8)]``: bit 0 of every block, packed little-endian, XOR the packed
    bits ``b`` (same length) if given; padding bits are 0."""
    cdef size_t n = blocks.shape[0]
    out = np.empty((n + 7) // 8, np.uint8)
    cdef uint8_t[::1] ov = out
    cdef const uint8_t[::1] bv
    cdef const uint8_t *bp = NULL
    if n and blocks.shape[1] != 16:
        raise ValueError("blocks must be uint8[n, 16]")
    if b is not None:
        bv = b
        if <size_t> bv.shape[0] != <size_t> ov.shape[0]:
            raise ValueError("b must hold ceil(n/8) bytes")
        if n:
            bp = &bv[0]
    if n:
        with nogil:
            ezp_ferret_lsb_pack(&blocks[0, 0], n, bp, &ov[0])
    return out


def cond_xor_packed(uint8_t[:, ::1] blocks, const uint8_t[::1] packed, const uint8_t[::1] delta):
    """In place: ``blocks[j] ^= delta`` where bit j of ``packed`` (little-endian) is 1."""
    cdef size_t n = blocks.shape[0]
    if (n and blocks.shape[1] != 16) or <size_t> packed.shape[0] != (n + 7) // 8 or delta.shape[0] != 16:
        raise ValueError("blocks uint8[n, 16], packed uint8[ceil(n/8)], delta 16 bytes")
    if n:
        with nogil:
            ezp_ferret_cond_xor_packed(&blocks[0, 0], n, &packed[0], &delta[0])
