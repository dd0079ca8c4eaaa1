# cython: freethreading_compatible = False
"""Leaf kernels of the OT-based millionaires' protocol (CrypTFlow2, Rathee et al.,
eprint 2020/1002, section 3.1; leaner leaves as in Cheetah, Huang et al., eprint
2022/207): one 1-out-of-2^w OT per w-bit digit, built from w random 1-out-of-2 OTs.

Layout (see :mod:`ezprotocols.protocols.millionaire`): ``nbits``-bit values split
into digits of ``m`` bits from the least significant end (the top digit may be
narrower, width ``w_j = min(m, nbits - m j)``).  Random OT ``i * nbits + m j + t``
carries bit ``t`` of digit ``j`` of element ``i`` (the receiver's choice bit is that
bit of its value).  The pad of entry ``v`` of digit ``j`` is the XOR over ``t`` of bits
``2v, 2v+1`` of the low 64 bits of key ``k_{v_t}`` of OT ``t``: each (key, bit pair)
is used by one entry only, so every entry but the receiver's is masked by at
least one key bit pair the receiver never sees (``m <= 5``: 2^5 pairs fill 64 bits).

Entry ``v`` of digit ``j`` holds ``[a_j > v] ^ r_gt`` (bit 0) and ``[a_j = v] ^ r_eq``
(bit 1), XOR the pad; digit 0 sends only bit 0 (its equality bit is never
needed).  Element ``i``'s entries start at bit ``i * B`` of the message, ``B`` =
:func:`leaf_bits_per_element`.  All loops run without the GIL.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

cnp.import_array()


cdef inline uint64_t _ld64(const uint8_t *p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline void _write_bits(uint8_t *buf, size_t pos, uint64_t val, int k) noexcept nogil:
    cdef size_t byte
    cdef int off, take
    while k > 0:
        byte = pos >> 3
        off = <int> (pos & 7)
        take = 8 - off
        if take > k:
            take = k
        buf[byte] |= <uint8_t> ((val & ((1 << take) - 1)) << off)
        val >>= take
        pos += take
        k -= take


cdef inline uint64_t _read_bits(const uint8_t *buf, size_t pos, int k) noexcept nogil:
    cdef uint64_t v = 0
    cdef int got = 0, off, take
    cdef size_t byte
    while got < k:
        byte = pos >> 3
        off = <int> (pos & 7)
        take = 8 - off
        if take > k - got:
            take = k - got
        v |= (<uint64_t> ((buf[byte] >> off) & ((1 << take) - 1))) << got
        pos += take
        got += take
    return v


cdef inline int _width(int nbits, int m, int j) noexcept nogil:
    return nbits - m * j if nbits - m * j < m else m


cdef inline uint64_t _digit(uint64_t x, int m, int j, int w) noexcept nogil:
    return (x >> (m * j)) & (((<uint64_t> 1) << w) - 1)


cdef inline uint64_t _lowmask(int k) noexcept nogil:
    if k >= 64:
        return <uint64_t> 0xFFFFFFFFFFFFFFFF
    return ((<uint64_t> 1) << k) - 1


cdef inline uint64_t _even_bits(uint64_t x, int n) noexcept nogil:
    """Bits 0, 2, 4, ... of x (n of them), packed."""
    cdef uint64_t r = 0
    cdef int v
    for v in range(n):
        r |= ((x >> (2 * v)) & 1) << v
    return r


def _check_params(int nbits, int m):
    if not 1 <= m <= 5:
        raise ValueError("digit width m must be in [1, 5]")
    if not 1 <= nbits <= 64:
        raise ValueError("nbits must be in [1, 64]")


def digit_widths(int nbits, int m):
    """Widths of the digits, least significant first."""
    _check_params(nbits, m)
    q = (nbits + m - 1) // m
    return [min(m, nbits - m * j) for j in range(q)]


def leaf_bits_per_element(int nbits, int m):
    """Bits of the leaf message per element: sum over digits of c_j 2^w_j (c_0 = 1, else 2)."""
    return sum((1 if j == 0 else 2) << w for j, w in enumerate(digit_widths(nbits, m)))


def leaf_bytes(Py_ssize_t n, int nbits, int m):
    return (n * leaf_bits_per_element(nbits, m) + 7) // 8


cdef uint64_t _PAIRMASK[5]
cdef uint64_t _GT[33]
cdef uint64_t _EQ[32]


cdef void _tables() noexcept:
    cdef int t, v
    for t in range(5):
        _PAIRMASK[t] = 0
        for v in range(32):
            if (v >> t) & 1:
                _PAIRMASK[t] |= (<uint64_t> 3) << (2 * v)
    for v in range(33):
        _GT[v] = 0
        for t in range(v):
            _GT[v] |= (<uint64_t> 1) << (2 * t)
    for v in range(32):
        _EQ[v] = (<uint64_t> 2) << (2 * v)


_tables()


def leaf_send(const uint64_t[::1] a, int nbits, int m, const uint8_t[:, ::1] k0, const uint8_t[:, ::1] k1,
              const uint8_t[::1] masks, uint8_t[::1] out):
    """Sender: fill ``out`` (zeroed, :func:`leaf_bytes` long) with the masked entries for
    values ``a`` (each < 2^nbits).  ``masks[i*q + j]``: bit 0 = this party's share of
    the digit's [a_j > b_j], bit 1 = of [a_j = b_j]."""
    cdef Py_ssize_t n = a.shape[0]
    _check_params(nbits, m)
    cdef int q = (nbits + m - 1) // m
    cdef Py_ssize_t B = leaf_bits_per_element(nbits, m)
    if k0.shape[0] != n * nbits or k1.shape[0] != n * nbits or k0.shape[1] != 16 or k1.shape[1] != 16:
        raise ValueError("keys must be uint8[n * nbits, 16]")
    if masks.shape[0] != n * q:
        raise ValueError("masks must be uint8[n * q]")
    if out.shape[0] != (n * B + 7) // 8:
        raise ValueError("out has the wrong length")
    if n == 0:
        return
    cdef Py_ssize_t i, base
    cdef int j, t, w, c, ne
    cdef uint64_t aj, pad, word, lm, mk
    cdef size_t pos
    with nogil:
        for i in range(n):
            pos = <size_t> (i * B)
            for j in range(q):
                w = _width(nbits, m, j)
                ne = 1 << w
                base = i * nbits + m * j
                aj = _digit(a[i], m, j, w)
                pad = 0
                for t in range(w):
                    pad ^= (_ld64(&k0[base + t, 0]) & ~_PAIRMASK[t]) | (_ld64(&k1[base + t, 0]) & _PAIRMASK[t])
                mk = masks[i * q + j]
                word = _GT[aj] | _EQ[aj]
                if mk & 1:
                    word ^= <uint64_t> 0x5555555555555555
                if mk & 2:
                    word ^= <uint64_t> 0xAAAAAAAAAAAAAAAA
                lm = _lowmask(2 * ne)
                word = (word ^ pad) & lm
                if j == 0:
                    _write_bits(&out[0], pos, _even_bits(word, ne), ne)
                    pos += ne
                else:
                    _write_bits(&out[0], pos, word, 2 * ne)
                    pos += 2 * ne


def leaf_pads(const uint64_t[::1] b, int nbits, int m, const uint8_t[:, ::1] kb, uint8_t[::1] pads):
    """Receiver, as soon as its random OTs are done: the 2-bit pad of its chosen entry of
    every digit (``pads``: uint8[n * q]), so the keys need not be kept."""
    cdef Py_ssize_t n = b.shape[0]
    _check_params(nbits, m)
    cdef int q = (nbits + m - 1) // m
    if kb.shape[0] != n * nbits or kb.shape[1] != 16:
        raise ValueError("keys must be uint8[n * nbits, 16]")
    if pads.shape[0] != n * q:
        raise ValueError("pads must be uint8[n * q]")
    cdef Py_ssize_t i, base
    cdef int j, t, w
    cdef uint64_t d, pad
    with nogil:
        for i in range(n):
            for j in range(q):
                w = _width(nbits, m, j)
                base = i * nbits + m * j
                d = _digit(b[i], m, j, w)
                pad = 0
                for t in range(w):
                    pad ^= _ld64(&kb[base + t, 0]) >> (2 * d)
                pads[i * q + j] = <uint8_t> (pad & 3)


def leaf_recv(const uint64_t[::1] b, int nbits, int m, const uint8_t[::1] pads, const uint8_t[::1] msg,
              uint8_t[::1] gt, uint8_t[::1] eq):
    """Receiver: from its values ``b``, the pads of :func:`leaf_pads` and the sender's
    message, XOR shares of [a_j > b_j] and [a_j = b_j] per digit (``gt``, ``eq``:
    uint8[n * q], element-major; ``eq`` of digit 0 is left 0)."""
    cdef Py_ssize_t n = b.shape[0]
    _check_params(nbits, m)
    cdef int q = (nbits + m - 1) // m
    cdef Py_ssize_t B = leaf_bits_per_element(nbits, m)
    if pads.shape[0] != n * q:
        raise ValueError("pads must be uint8[n * q]")
    if gt.shape[0] != n * q or eq.shape[0] != n * q:
        raise ValueError("gt, eq must be uint8[n * q]")
    if msg.shape[0] != (n * B + 7) // 8:
        raise ValueError("message has the wrong length")
    if n == 0:
        return
    cdef Py_ssize_t i
    cdef int j, w, ne
    cdef uint64_t d, pad, e
    cdef size_t pos
    with nogil:
        for i in range(n):
            pos = <size_t> (i * B)
            for j in range(q):
                w = _width(nbits, m, j)
                ne = 1 << w
                d = _digit(b[i], m, j, w)
                pad = pads[i * q + j]
                if j == 0:
                    e = _read_bits(&msg[0], pos + d, 1) ^ (pad & 1)
                    gt[i * q + j] = <uint8_t> e
                    eq[i * q + j] = 0
                    pos += ne
                else:
                    e = _read_bits(&msg[0], pos + 2 * d, 2) ^ (pad & 3)
                    gt[i * q + j] = <uint8_t> (e & 1)
                    eq[i * q + j] = <uint8_t> (e >> 1)
                    pos += 2 * ne
