# cython: freethreading_compatible = False
"""Exact kernels over Z_2^64 (numpy ``uint64``; wrap-around is the modulus).

* :func:`matmul` -- ``A @ B mod 2^64``: a blocked GEMM (packed panels, AVX-512
  ``VPMULLQ`` 6x32 micro-kernel when the CPU has AVX-512F/DQ, a portable scalar
  micro-kernel otherwise; ``EZP_NO_AVX512=1`` forces the latter).  numpy's own
  ``uint64`` matmul has no BLAS behind it and is 20-100x slower.
* :func:`conv2d` -- NCHW convolution with stride, padding, dilation and groups
  as :func:`im2col` + one GEMM per group; :func:`col2im_add` is its adjoint.
* :func:`vole_send` / :func:`vole_recv` -- Gilboa multiplication (OT-based
  vector OLE) with vector correlations and messages shortened to ``64 - shift``
  bits, on top of random OT seeds (see ``ezprotocols.arith.ole``).
* :func:`shift_sum` -- ``out[j] = sum_i y[j, i] << i`` (Gilboa recombination).

All functions release the GIL while they run.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint8_t, uint64_t, int64_t

cnp.import_array()

cdef extern from "ezp_aes.h" nogil:
    void ezp_aes_init()
    int ezp_have_vaes

cdef extern from "ezp_ring.h" nogil:
    int ezp_ring_have_avx512
    void ezp_ring_init()
    int ezp_gemm_u64(size_t m, size_t n, size_t k, const uint64_t *A, size_t lda,
                     const uint64_t *B, size_t ldb, uint64_t *C, size_t ldc, int accumulate)
    void ezp_im2col_u64(const uint64_t *x, size_t N, size_t C, size_t H, size_t W,
                        size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                        size_t dh, size_t dw, size_t HO, size_t WO, uint64_t *cols)
    void ezp_col2im_add_u64(const uint64_t *cols, size_t N, size_t C, size_t H, size_t W,
                            size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                            size_t dh, size_t dw, size_t HO, size_t WO, uint64_t *x)
    void ezp_shift_sum_u64(const uint64_t *y, size_t n, size_t nb, int negate, uint64_t *out)
    size_t ezp_vole_words(size_t n_ot, size_t m, const uint8_t *sh)
    int ezp_vole_send(size_t n_ot, size_t m, const uint8_t *seed0, const uint8_t *seed1,
                      const uint64_t *corr, const int64_t *ci, uint64_t *acc, const int64_t *ai,
                      const uint8_t *sh, uint64_t tweak_hi, uint64_t *out)
    int ezp_vole_recv(size_t n_ot, size_t m, const uint8_t *seed, const uint8_t *choice,
                      const uint64_t *inw, uint64_t *acc, const int64_t *ai, const uint8_t *sh,
                      uint64_t tweak_hi)

ezp_aes_init()
ezp_ring_init()

U64 = np.dtype(np.uint64)


def avx512_enabled():
    """True when the AVX-512 GEMM micro-kernel is in use."""
    return bool(ezp_ring_have_avx512)


cdef object _u64_2d(object a, str name):
    arr = np.asarray(a)
    if arr.dtype != U64:
        raise TypeError(f"{name} must be uint64, got {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    return arr


def matmul(a, b, out=None, accumulate=False):
    """``a @ b mod 2^64`` for ``uint64`` matrices ``a[m, k]`` and ``b[k, n]``.

    ``out`` (C-contiguous ``uint64[m, n]``) receives the result, or has it added
    when ``accumulate`` is true.  Inputs may be any 2-D uint64 arrays whose rows
    are contiguous (otherwise they are copied)."""
    A = _u64_2d(a, "a")
    B = _u64_2d(b, "b")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"matmul: shapes {A.shape} and {B.shape} do not align")
    if A.strides[1] != 8 or A.strides[0] % 8 or A.strides[0] < 0:
        A = np.ascontiguousarray(A)
    if B.strides[1] != 8 or B.strides[0] % 8 or B.strides[0] < 0:
        B = np.ascontiguousarray(B)
    cdef size_t m = A.shape[0], k = A.shape[1], n = B.shape[1]
    if out is None:
        if accumulate:
            raise ValueError("accumulate needs out")
        C = np.empty((m, n), dtype=U64)
    else:
        C = out
        if C.dtype != U64 or C.shape != (m, n) or not C.flags.c_contiguous or not C.flags.writeable:
            raise ValueError(f"out must be a writeable C-contiguous uint64{(m, n)} array")
    if m == 0 or n == 0:
        return C
    cdef size_t lda = A.strides[0] // 8 if m > 1 else max(k, 1)
    cdef size_t ldb = B.strides[0] // 8 if k > 1 else max(n, 1)
    cdef size_t ldc = n
    cdef const uint64_t *pa = NULL
    cdef const uint64_t *pb = NULL
    cdef const uint64_t[:, :] va
    cdef const uint64_t[:, :] vb
    if k > 0:
        va = A
        vb = B
        pa = &va[0, 0]
        pb = &vb[0, 0]
    cdef uint64_t[:, ::1] vc = C
    cdef int acc = 1 if accumulate else 0
    cdef int rc
    with nogil:
        rc = ezp_gemm_u64(m, n, k, pa, lda, pb, ldb, &vc[0, 0], ldc, acc)
    if rc:
        raise MemoryError("matmul: no memory for packing buffers")
    return C


def conv_out_size(size_t size, size_t kernel, size_t stride, size_t pad_lo, size_t pad_hi, size_t dilation):
    cdef Py_ssize_t eff = dilation * (kernel - 1) + 1
    cdef Py_ssize_t span = <Py_ssize_t>(size + pad_lo + pad_hi) - eff
    if span < 0:
        return 0
    return span // stride + 1


def im2col(x, kernel, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """``uint64[N, C, H, W]`` -> ``uint64[C*KH*KW, N*HO*WO]`` (zero padding).

    ``padding`` is ``(ph, pw)`` applied on both sides (top/left); the output size is
    ``(H + 2 ph - dh (KH - 1) - 1) // sh + 1``."""
    X = np.ascontiguousarray(x)
    if X.dtype != U64 or X.ndim != 4:
        raise ValueError(f"im2col: x must be uint64[N, C, H, W], got {X.dtype}{X.shape}")
    cdef size_t N = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3]
    cdef size_t KH = kernel[0], KW = kernel[1], sh = stride[0], sw = stride[1]
    cdef size_t ph = padding[0], pw = padding[1], dh = dilation[0], dw = dilation[1]
    if sh < 1 or sw < 1 or dh < 1 or dw < 1 or KH < 1 or KW < 1:
        raise ValueError("im2col: kernel, stride and dilation must be >= 1")
    cdef size_t HO = conv_out_size(H, KH, sh, ph, ph, dh)
    cdef size_t WO = conv_out_size(W, KW, sw, pw, pw, dw)
    cols = np.empty((C * KH * KW, N * HO * WO), dtype=U64)
    if cols.size == 0 or X.size == 0:
        cols[...] = 0
        return cols, (HO, WO)
    cdef const uint64_t[:, :, :, ::1] vx = X
    cdef uint64_t[:, ::1] vc = cols
    with nogil:
        ezp_im2col_u64(&vx[0, 0, 0, 0], N, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, HO, WO, &vc[0, 0])
    return cols, (HO, WO)


def col2im_add(cols, x, kernel, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Adjoint of :func:`im2col`: adds ``cols`` (``uint64[C*KH*KW, N*HO*WO]``) into the
    C-contiguous ``uint64[N, C, H, W]`` array ``x`` in place and returns it."""
    if x.dtype != U64 or x.ndim != 4 or not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError("col2im_add: x must be a writeable C-contiguous uint64[N, C, H, W]")
    cdef size_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef size_t KH = kernel[0], KW = kernel[1], sh = stride[0], sw = stride[1]
    cdef size_t ph = padding[0], pw = padding[1], dh = dilation[0], dw = dilation[1]
    cdef size_t HO = conv_out_size(H, KH, sh, ph, ph, dh)
    cdef size_t WO = conv_out_size(W, KW, sw, pw, pw, dw)
    Cm = np.ascontiguousarray(cols)
    if Cm.dtype != U64 or Cm.shape != (C * KH * KW, N * HO * WO):
        raise ValueError(f"col2im_add: cols must be uint64{(C * KH * KW, N * HO * WO)}")
    if Cm.size == 0 or x.size == 0:
        return x
    cdef const uint64_t[:, ::1] vc = Cm
    cdef uint64_t[:, :, :, ::1] vx = x
    with nogil:
        ezp_col2im_add_u64(&vc[0, 0], N, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, HO, WO, &vx[0, 0, 0, 0])
    return x


def conv2d(x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Exact ring convolution: ``x uint64[N, C, H, W]``, ``w uint64[O, C/groups, KH, KW]``
    -> ``uint64[N, O, HO, WO]`` (cross-correlation, as in every ML framework)."""
    X = np.ascontiguousarray(x)
    Wt = np.ascontiguousarray(w)
    if X.dtype != U64 or Wt.dtype != U64 or X.ndim != 4 or Wt.ndim != 4:
        raise ValueError("conv2d: x and w must be 4-D uint64 arrays")
    N, C, H, W = X.shape
    O, Cg, KH, KW = Wt.shape
    g = int(groups)
    if g < 1 or C % g or O % g or Cg != C // g:
        raise ValueError(f"conv2d: input channels {C}, weight {Wt.shape} and groups {g} do not match")
    cols, (HO, WO) = im2col(X, (KH, KW), stride, padding, dilation)
    out = conv2d_cols(cols, Wt, g)
    return out.reshape(O, N, HO, WO).transpose(1, 0, 2, 3).copy()


def conv2d_cols(cols, w, groups=1):
    """``w`` (``uint64[O, C/g, KH, KW]``) applied to an :func:`im2col` matrix: ``uint64[O, L]``."""
    Wt = np.ascontiguousarray(w)
    O = Wt.shape[0]
    g = int(groups)
    kg = Wt.shape[1] * Wt.shape[2] * Wt.shape[3]
    Og = O // g
    out = np.empty((O, cols.shape[1]), dtype=U64)
    wm = Wt.reshape(O, kg)
    for gi in range(g):
        matmul(wm[gi * Og:(gi + 1) * Og], cols[gi * kg:(gi + 1) * kg], out=out[gi * Og:(gi + 1) * Og])
    return out


def shift_sum(y, negate=False):
    """``y uint64[n, nb]`` -> ``uint64[n]`` with ``out[j] = (-1)^negate * sum_i y[j, i] << i``."""
    Y = np.ascontiguousarray(y)
    if Y.dtype != U64 or Y.ndim != 2:
        raise ValueError("shift_sum: y must be uint64[n, nb]")
    cdef size_t n = Y.shape[0], nb = Y.shape[1]
    out = np.zeros(n, dtype=U64)
    if n == 0 or nb == 0:
        return out
    if nb > 64:
        raise ValueError("shift_sum: at most 64 columns")
    cdef const uint64_t[:, ::1] vy = Y
    cdef uint64_t[::1] vo = out
    cdef int neg = 1 if negate else 0
    with nogil:
        ezp_shift_sum_u64(&vy[0, 0], n, nb, neg, &vo[0])
    return out


def vole_words(Py_ssize_t m, shifts):
    """Number of 64-bit words of the packed correction stream of :func:`vole_send`."""
    sh = np.ascontiguousarray(shifts, dtype=np.uint8)
    if sh.size == 0 or m == 0:
        return 0
    cdef const uint8_t[::1] vs = sh
    return ezp_vole_words(sh.shape[0], m, &vs[0])


cdef _check_vole(size_t n_ot, size_t m, object corr_or_none, object ci_or_none, object acc, object ai, object sh):
    if acc.dtype != U64 or acc.ndim != 2 or acc.shape[1] != m or not acc.flags.c_contiguous or not acc.flags.writeable:
        raise ValueError(f"acc must be a writeable C-contiguous uint64[rows, {m}]")
    if ai.shape != (n_ot,) or sh.shape != (n_ot,):
        raise ValueError("one acc index and one shift per OT")
    if n_ot and (ai.min() < 0 or ai.max() >= acc.shape[0]):
        raise ValueError("acc index out of range")
    if n_ot and sh.max() > 63:
        raise ValueError("shifts must be in [0, 63]")
    if corr_or_none is not None:
        if corr_or_none.dtype != U64 or corr_or_none.ndim != 2 or corr_or_none.shape[1] != m:
            raise ValueError(f"corr must be uint64[rows, {m}]")
        if ci_or_none.shape != (n_ot,):
            raise ValueError("one corr index per OT")
        if n_ot and (ci_or_none.min() < 0 or ci_or_none.max() >= corr_or_none.shape[0]):
            raise ValueError("corr index out of range")


def vole_send(seed0, seed1, corr, ci, acc, ai, shifts, uint64_t tweak_hi):
    """Sender of OT-based vector OLE.  OT ``o`` with random-OT seeds ``seed0[o], seed1[o]``
    (``uint8[n, 16]``) carries ``corr[ci[o], :]`` modulo ``2^(64 - shifts[o])``; adds
    ``-(x << shifts[o])`` into ``acc[ai[o], :]`` and returns the packed corrections
    (``uint64[vole_words(m, shifts)]``)."""
    S0 = np.ascontiguousarray(seed0, dtype=np.uint8).reshape(-1, 16)
    S1 = np.ascontiguousarray(seed1, dtype=np.uint8).reshape(-1, 16)
    Cr = np.ascontiguousarray(corr)
    CI = np.ascontiguousarray(ci, dtype=np.int64)
    AI = np.ascontiguousarray(ai, dtype=np.int64)
    SH = np.ascontiguousarray(shifts, dtype=np.uint8)
    cdef size_t n_ot = S0.shape[0]
    cdef size_t m = acc.shape[1]
    if S1.shape[0] != n_ot:
        raise ValueError("seed0 and seed1 must have the same length")
    _check_vole(n_ot, m, Cr, CI, acc, AI, SH)
    nw = vole_words(m, SH)
    out = np.empty(nw, dtype=U64)
    if n_ot == 0 or m == 0:
        return out
    cdef const uint8_t[:, ::1] v0 = S0
    cdef const uint8_t[:, ::1] v1 = S1
    cdef const uint64_t[:, ::1] vcr = Cr
    cdef const int64_t[::1] vci = CI
    cdef const int64_t[::1] vai = AI
    cdef const uint8_t[::1] vsh = SH
    cdef uint64_t[:, ::1] vac = acc
    cdef uint64_t[::1] vo = out
    cdef int rc
    with nogil:
        rc = ezp_vole_send(n_ot, m, &v0[0, 0], &v1[0, 0], &vcr[0, 0], &vci[0], &vac[0, 0], &vai[0],
                           &vsh[0], tweak_hi, &vo[0])
    if rc:
        raise MemoryError("vole_send: no scratch memory")
    return out


def vole_recv(seed, choice, packed, acc, ai, shifts, uint64_t tweak_hi):
    """Receiver of :func:`vole_send`: ``seed[o]`` is the chosen random-OT seed, ``choice[o]``
    its bit; adds ``(G(seed) + choice * d) << shifts[o]`` into ``acc[ai[o], :]``.  ``packed``
    is ``uint64[vole_words]``, or one word longer (a padding word the kernel may read;
    passing it avoids a copy)."""
    S = np.ascontiguousarray(seed, dtype=np.uint8).reshape(-1, 16)
    Ch = np.ascontiguousarray(choice, dtype=np.uint8)
    AI = np.ascontiguousarray(ai, dtype=np.int64)
    SH = np.ascontiguousarray(shifts, dtype=np.uint8)
    P = np.ascontiguousarray(packed)
    cdef size_t n_ot = S.shape[0]
    cdef size_t m = acc.shape[1]
    if Ch.shape != (n_ot,):
        raise ValueError("one choice bit per OT")
    _check_vole(n_ot, m, None, None, acc, AI, SH)
    nw = vole_words(m, SH)
    if P.dtype != U64 or P.shape not in ((nw,), (nw + 1,)):
        raise ValueError(f"packed corrections must be uint64[{nw}] (or uint64[{nw + 1}] with a padding word)")
    if P.shape == (nw,):        # the kernel reads one word past the stream
        Q = np.zeros(nw + 1, dtype=U64)
        Q[:nw] = P
        P = Q
    if n_ot == 0 or m == 0:
        return acc
    cdef const uint8_t[:, ::1] vs = S
    cdef const uint8_t[::1] vch = Ch
    cdef const uint64_t[::1] vp = P
    cdef const int64_t[::1] vai = AI
    cdef const uint8_t[::1] vsh = SH
    cdef uint64_t[:, ::1] vac = acc
    cdef int rc
    with nogil:
        rc = ezp_vole_recv(n_ot, m, &vs[0, 0], &vch[0], &vp[0], &vac[0, 0], &vai[0], &vsh[0], tweak_hi)
    if rc:
        raise MemoryError("vole_recv: no scratch memory")
    return acc
