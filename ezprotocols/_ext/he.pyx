# cython: freethreading_compatible = False
"""RLWE kernels for :mod:`ezprotocols.arith.he` (C in ``include/ezp_he.h``).

Arrays: RNS polynomials are C-contiguous ``uint64[..., L, n]`` (limb ``l``
modulo prime ``l`` of the table's chain).  Every function checks shapes and
dtypes, then releases the GIL for the whole batch.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint8_t, uint64_t, int64_t

cnp.import_array()

cdef extern from "ezp_he.h" nogil:
    int ezp_he_have_ifma
    void ezp_he_init()
    void ezp_ntt_fwd_ifma(uint64_t *a, size_t N, uint64_t q, const uint64_t *psi, const uint64_t *psip,
                          const uint64_t *psip52)
    void ezp_ntt_inv_ifma(uint64_t *a, size_t N, uint64_t q, const uint64_t *ipsi, const uint64_t *ipsip,
                          const uint64_t *ipsip52, uint64_t ninv, uint64_t ninvp, uint64_t ninvp52)
    void ezp_mul_acc_fp_v(uint64_t *out, const uint64_t *a, const uint64_t *w, size_t n, uint64_t q)
    uint64_t ezp_shoup_pre(uint64_t w, uint64_t q)
    void ezp_ntt_fwd(uint64_t *a, size_t N, uint64_t q, const uint64_t *psi, const uint64_t *psip)
    void ezp_ntt_inv(uint64_t *a, size_t N, uint64_t q, const uint64_t *ipsi, const uint64_t *ipsip,
                     uint64_t ninv, uint64_t ninvp)
    void ezp_mul_acc(uint64_t *out, const uint64_t *a, const uint64_t *w, const uint64_t *wp,
                     size_t n, uint64_t q)
    void ezp_mul_acc_fp(uint64_t *out, const uint64_t *a, const uint64_t *w, size_t n, uint64_t q)
    void ezp_uniform_mod(const uint64_t *words, size_t n, uint64_t q, uint64_t *out)
    void ezp_cbd(const uint64_t *words, size_t n, int eta, int64_t *out)
    void ezp_ternary(const uint64_t *words, size_t n, int64_t *out)
    void ezp_signed_to_rns(const int64_t *x, size_t cnt, size_t n, const uint64_t *qs, size_t L,
                           uint64_t *out)
    void ezp_add_delta(uint64_t *b, const uint64_t *m, size_t cnt, size_t n, const uint64_t *qs,
                       size_t L, const uint64_t *delta, uint64_t qlow)
    void ezp_add_flood(uint64_t *b, const uint64_t *words, size_t cnt, size_t n, const uint64_t *qs,
                       size_t L, int f)
    void ezp_rescale(const uint64_t *x, size_t cnt, size_t L, size_t n, const uint64_t *qs,
                     const uint64_t *qinv, uint64_t *out)
    void ezp_decrypt2(const uint64_t *x, size_t cnt, size_t n, uint64_t q0, uint64_t q1,
                      uint64_t q0inv_mod_q1, uint64_t *out)
    void ezp_crt2_drop(const uint64_t *x, size_t cnt, size_t n, uint64_t q0, uint64_t q1,
                       uint64_t q0inv_mod_q1, int d, uint64_t *out)
    void ezp_crt2_expand(const uint64_t *y, size_t cnt, size_t n, uint64_t q0, uint64_t q1, int d,
                         uint64_t *out)
    void ezp_pack(const uint64_t *x, size_t cnt, size_t L, size_t n, const uint8_t *w, uint8_t *out,
                  size_t nbytes)
    int ezp_unpack(const uint8_t *inp, size_t cnt, size_t L, size_t n, const uint8_t *w,
                   const uint64_t *qs, uint64_t *x)
    void ezp_monomial(const uint64_t *x, size_t cnt, size_t L, size_t N, const uint64_t *qs, size_t e,
                      uint64_t *out)
    void ezp_pack_pre(const uint64_t *E, const uint64_t *O, size_t cnt, size_t L, size_t N,
                      const uint64_t *qs, size_t D, uint64_t g, uint64_t *sm, uint64_t *t)
    void ezp_rns_digits(const uint64_t *a, size_t cnt, size_t L, size_t N, const uint64_t *qs, uint64_t *out)
    void ezp_add_rows(uint64_t *x, const uint64_t *y, size_t cnt, size_t L, size_t N, const uint64_t *qs)
    void ezp_group_digits(const uint64_t *a, size_t cnt, size_t L, size_t N, const uint64_t *qs, size_t Lout,
                          const uint64_t *grp, size_t G, uint64_t *out)
    void ezp_rescale_ifma(const uint64_t *x, size_t cnt, size_t L, size_t n, const uint64_t *qs,
                          const uint64_t *qinv, uint64_t *out)
    uint64_t ezp_shoup52(uint64_t w, uint64_t q)
    ctypedef struct ezp_ntt_tabs:
        const uint64_t *psi
        const uint64_t *psip
        const uint64_t *psip52
        const uint64_t *ipsi
        const uint64_t *ipsip
        const uint64_t *ipsip52
        const uint64_t *ninv
        const uint64_t *ninvp
        const uint64_t *ninvp52
    void ezp_members_ifma(const uint64_t *cb, const uint64_t *ca, size_t cnt, size_t nK, size_t L,
                          size_t Lp, size_t N, const int64_t *w, const int64_t *kidx, size_t nP,
                          const uint64_t *qs, ezp_ntt_tabs tb, const uint64_t *qinv, size_t e,
                          uint64_t *scratch, uint64_t *out)
    void ezp_encode_ntt_ifma(const int64_t *w, size_t cnt, size_t N, size_t L, const uint64_t *qs,
                             ezp_ntt_tabs tb, uint64_t *out)
    void ezp_key_switch_ifma(const uint64_t *t, size_t cnt, size_t L, size_t Lk, size_t N,
                             const uint64_t *qs, const uint64_t *grp, size_t G,
                             const uint64_t *kb, const uint64_t *kbp, const uint64_t *ka,
                             const uint64_t *kap, ezp_ntt_tabs tb, const uint64_t *qinv,
                             uint64_t ginv, uint64_t *scratch, uint64_t *out)
    void ezp_automorph_row_ifma(uint64_t *dst, const uint64_t *src, size_t N, uint64_t q, uint64_t ginv)
    void ezp_pack_pre_inplace_ifma(uint64_t *E, uint64_t *O, size_t cnt, size_t L, size_t N,
                                   const uint64_t *qs, size_t D, uint64_t ginv, uint64_t *scratch)

U64 = np.dtype(np.uint64)
I64 = np.dtype(np.int64)

ezp_he_init()


def ifma_enabled():
    """True when the AVX-512 IFMA NTT and product kernels are in use (``EZP_NO_AVX512=1``
    forces the scalar ones)."""
    return bool(ezp_he_have_ifma)


def _shoup52(w, qs):
    return ((w.astype(object) << 52) // np.asarray(qs, dtype=object).reshape(-1, 1)).astype(U64)


cdef object _arr(object a, object dtype, str name):
    arr = np.asarray(a)
    if arr.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {arr.dtype}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    return arr


cdef class NttTables:
    """Twiddle tables of the negacyclic NTT for ``N`` and a chain of primes
    (``roots[l]``: a primitive ``2N``-th root of unity modulo ``primes[l]``)."""
    cdef readonly size_t N, L
    cdef readonly object primes, psi, psip, ipsi, ipsip, ninv, ninvp, psip52, ipsip52, ninvp52
    cdef readonly int use_ifma

    def __init__(self, size_t N, primes, roots):
        self.N = N
        self.L = len(primes)
        self.primes = np.array([int(p) for p in primes], dtype=U64)
        logn = N.bit_length() - 1
        psi = np.zeros((self.L, N), U64)
        ipsi = np.zeros((self.L, N), U64)
        ninv = np.zeros(self.L, U64)
        for l, (q, r) in enumerate(zip(primes, roots)):
            q, r = int(q), int(r)
            ri = pow(r, -1, q)
            pw = [1] * N
            ipw = [1] * N
            for i in range(1, N):
                pw[i] = pw[i - 1] * r % q
                ipw[i] = ipw[i - 1] * ri % q
            for i in range(N):
                br = int(format(i, f"0{logn}b")[::-1], 2) if logn else 0
                psi[l, i] = pw[br]
                ipsi[l, i] = ipw[br]
            ninv[l] = pow(N, -1, q)
        self.psi, self.ipsi, self.ninv = psi, ipsi, ninv
        self.psip = shoup(psi, self.primes)
        self.ipsip = shoup(ipsi, self.primes)
        self.ninvp = np.array([ezp_shoup_pre(int(ninv[l]), int(self.primes[l])) for l in range(self.L)], U64)
        self.use_ifma = 1 if (ezp_he_have_ifma and max(int(q) for q in primes) < (1 << 50) and N >= 16) else 0
        self.psip52 = _shoup52(psi, self.primes)
        self.ipsip52 = _shoup52(ipsi, self.primes)
        self.ninvp52 = _shoup52(ninv.reshape(-1, 1), self.primes).reshape(-1)

    def forward(self, a):
        """In-place forward NTT of ``uint64[..., L, N]`` (``L`` <= the chain length)."""
        self._run(a, 0)

    def inverse(self, a):
        """In-place inverse NTT of ``uint64[..., L, N]``."""
        self._run(a, 1)

    cdef _run(self, a, int inv):
        arr = _arr(a, U64, "a")
        if arr.ndim < 2 or arr.shape[arr.ndim - 1] != self.N or arr.shape[arr.ndim - 2] > self.L:
            raise ValueError(f"ntt: expected uint64[..., L<={self.L}, {self.N}], got {arr.shape}")
        cdef size_t L = arr.shape[arr.ndim - 2]
        cdef size_t cnt = arr.size // (L * self.N) if arr.size else 0
        cdef uint64_t[::1] flat = arr.reshape(-1) if arr.size else np.zeros(1, U64)
        cdef const uint64_t[:, ::1] P = self.psi
        cdef const uint64_t[:, ::1] PP = self.psip
        cdef const uint64_t[:, ::1] IP = self.ipsi
        cdef const uint64_t[:, ::1] IPP = self.ipsip
        cdef const uint64_t[::1] qs = self.primes
        cdef const uint64_t[::1] ni = self.ninv
        cdef const uint64_t[::1] nip = self.ninvp
        cdef const uint64_t[:, ::1] PP52 = self.psip52
        cdef const uint64_t[:, ::1] IPP52 = self.ipsip52
        cdef const uint64_t[::1] nip52 = self.ninvp52
        cdef size_t c, l, N = self.N
        cdef int v = self.use_ifma
        with nogil:
            for c in range(cnt):
                for l in range(L):
                    if inv and v:
                        ezp_ntt_inv_ifma(&flat[(c * L + l) * N], N, qs[l], &IP[l, 0], &IPP[l, 0], &IPP52[l, 0],
                                         ni[l], nip[l], nip52[l])
                    elif inv:
                        ezp_ntt_inv(&flat[(c * L + l) * N], N, qs[l], &IP[l, 0], &IPP[l, 0], ni[l], nip[l])
                    elif v:
                        ezp_ntt_fwd_ifma(&flat[(c * L + l) * N], N, qs[l], &P[l, 0], &PP[l, 0], &PP52[l, 0])
                    else:
                        ezp_ntt_fwd(&flat[(c * L + l) * N], N, qs[l], &P[l, 0], &PP[l, 0])


def shoup(w, primes, int bits=64):
    """Shoup quotients ``floor(w 2^bits / q_l)`` of ``uint64[..., L, n]`` (values < q_l);
    ``bits`` 64 (the scalar products) or 52 (the fixed operands of the IFMA products,
    q_l < 2^50: :func:`shoup52`)."""
    if bits not in (52, 64):
        raise ValueError("shoup: bits must be 52 or 64")
    arr = _arr(w, U64, "w")
    qa = np.ascontiguousarray(primes, dtype=U64)
    cdef size_t L = arr.shape[arr.ndim - 2], n = arr.shape[arr.ndim - 1]
    if L > qa.shape[0]:
        raise ValueError("shoup: more limbs than primes")
    out = np.empty_like(arr)
    cdef size_t cnt = arr.size // (L * n) if arr.size else 0
    cdef const uint64_t[::1] src = arr.reshape(-1) if arr.size else np.zeros(1, U64)
    cdef uint64_t[::1] dst = out.reshape(-1) if arr.size else np.zeros(1, U64)
    cdef const uint64_t[::1] qs = qa
    cdef size_t c, l, j, base
    cdef bint b52 = bits == 52
    with nogil:
        for c in range(cnt):
            for l in range(L):
                base = (c * L + l) * n
                for j in range(n):
                    dst[base + j] = ezp_shoup52(src[base + j], qs[l]) if b52 else ezp_shoup_pre(src[base + j], qs[l])
    return out


def mul_acc(out, cts, pts, ptsp, primes, kidx=None):
    """``out[i] += sum_p cts[i, kidx[p]] (.) pts[p]`` (NTT domain).

    ``out uint64[nI, L, n]``, ``cts uint64[nI, nK, L, n]``, ``pts``/``ptsp`` (Shoup quotients,
    or None: a floating-point quotient estimate, no precomputation; primes < 2^50)
    ``uint64[nP, L, n]``; ``kidx`` (``int64[nP]``, default ``arange(nK)``) must be in range."""
    o = _arr(out, U64, "out")
    c = _arr(cts, U64, "cts")
    p = _arr(pts, U64, "pts")
    cdef int fp = ptsp is None
    cdef int vec = 0
    pp = p if fp else _arr(ptsp, U64, "ptsp")
    if c.ndim != 4 or o.ndim != 3 or p.ndim != 3 or pp.shape != p.shape:
        raise ValueError("mul_acc: bad ranks")
    cdef size_t nI = c.shape[0], nK = c.shape[1], L = c.shape[2], n = c.shape[3]
    cdef size_t nP = p.shape[0]
    if o.shape != (nI, L, n) or p.shape[1:] != (L, n):
        raise ValueError(f"mul_acc: shapes {o.shape}, {c.shape}, {p.shape} do not match")
    qa = np.ascontiguousarray(primes, dtype=U64)
    if qa.shape[0] < L:
        raise ValueError("mul_acc: more limbs than primes")
    if fp and ezp_he_have_ifma and int(qa[:L].max()) < (1 << 50):
        vec = 1
    ki = np.arange(nK, dtype=np.int64) if kidx is None else np.ascontiguousarray(kidx, dtype=np.int64)
    if ki.shape != (nP,) or (nP and (int(ki.min()) < 0 or int(ki.max()) >= <Py_ssize_t>nK)):
        raise ValueError("mul_acc: kidx must be int64[nP] with values in [0, nK)")
    if o.size == 0 or nP == 0:
        return
    cdef uint64_t[::1] O = o.reshape(-1)
    cdef const uint64_t[::1] C = c.reshape(-1)
    cdef const uint64_t[::1] Pw = p.reshape(-1)
    cdef const uint64_t[::1] Pp = pp.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef const int64_t[::1] KI = ki
    cdef size_t i, k, l, pi
    with nogil:
        for i in range(nI):
            for pi in range(nP):
                k = <size_t>KI[pi]
                for l in range(L):
                    if vec:
                        ezp_mul_acc_fp_v(&O[(i * L + l) * n], &C[((i * nK + k) * L + l) * n],
                                         &Pw[(pi * L + l) * n], n, qs[l])
                    elif fp:
                        ezp_mul_acc_fp(&O[(i * L + l) * n], &C[((i * nK + k) * L + l) * n],
                                       &Pw[(pi * L + l) * n], n, qs[l])
                    else:
                        ezp_mul_acc(&O[(i * L + l) * n], &C[((i * nK + k) * L + l) * n],
                                    &Pw[(pi * L + l) * n], &Pp[(pi * L + l) * n], n, qs[l])


def uniform_mod(words, primes, shape):
    """Uniform residues ``uint64[cnt, L, n]`` from ``uint64`` random words (2 per value)."""
    cnt, L, n = (int(v) for v in shape)
    w = _arr(words, U64, "words").reshape(-1)
    if w.shape[0] != 2 * cnt * L * n:
        raise ValueError("uniform_mod: need two words per value")
    qa = np.ascontiguousarray(primes, dtype=U64)
    out = np.empty((cnt, L, n), U64)
    if out.size == 0:
        return out
    cdef const uint64_t[::1] W = w
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef size_t c, l, cn = cnt, Ln = L, nn = n
    with nogil:
        for c in range(cn):
            for l in range(Ln):
                ezp_uniform_mod(&W[2 * (c * Ln + l) * nn], nn, qs[l], &O[(c * Ln + l) * nn])
    return out


def cbd(words, int eta):
    """Centered binomial samples ``int64`` (one random word each), ``|v| <= eta``."""
    w = _arr(words, U64, "words")
    if not 1 <= eta <= 32:
        raise ValueError("cbd: eta must be in [1, 32]")
    out = np.empty(w.shape, I64)
    if w.size == 0:
        return out
    cdef const uint64_t[::1] W = w.reshape(-1)
    cdef int64_t[::1] O = out.reshape(-1)
    with nogil:
        ezp_cbd(&W[0], W.shape[0], eta, &O[0])
    return out


def ternary(words):
    """Uniform ``{-1, 0, 1}`` (``int64``), one random word each."""
    w = _arr(words, U64, "words")
    out = np.empty(w.shape, I64)
    if w.size == 0:
        return out
    cdef const uint64_t[::1] W = w.reshape(-1)
    cdef int64_t[::1] O = out.reshape(-1)
    with nogil:
        ezp_ternary(&W[0], W.shape[0], &O[0])
    return out


def to_rns(x, primes):
    """``int64[cnt, n]`` -> residues ``uint64[cnt, L, n]`` (L = len(primes))."""
    a = _arr(x, I64, "x")
    if a.ndim != 2:
        raise ValueError("to_rns: x must be 2-D")
    qa = np.ascontiguousarray(primes, dtype=U64)
    cdef size_t cnt = a.shape[0], n = a.shape[1], L = qa.shape[0]
    out = np.empty((cnt, L, n), U64)
    if out.size == 0:
        return out
    cdef const int64_t[::1] X = a.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    with nogil:
        ezp_signed_to_rns(&X[0], cnt, n, &qs[0], L, &O[0])
    return out


def add_delta(b, m, primes, delta, qlow):
    """``b[cnt, L, n] += round(Q m / 2^64)`` for ``m uint64[cnt, n]``."""
    B = _arr(b, U64, "b")
    M = _arr(m, U64, "m")
    qa = np.ascontiguousarray(primes, dtype=U64)
    da = np.ascontiguousarray(delta, dtype=U64)
    if B.ndim != 3 or M.shape != (B.shape[0], B.shape[2]) or qa.shape[0] < B.shape[1] or da.shape[0] < B.shape[1]:
        raise ValueError("add_delta: shapes do not match")
    if B.size == 0:
        return
    cdef uint64_t[::1] Bv = B.reshape(-1)
    cdef const uint64_t[::1] Mv = M.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef const uint64_t[::1] dv = da
    cdef uint64_t ql = qlow
    cdef size_t cnt = B.shape[0], L = B.shape[1], n = B.shape[2]
    with nogil:
        ezp_add_delta(&Bv[0], &Mv[0], cnt, n, &qs[0], L, &dv[0], ql)


def add_flood(b, words, primes, int f):
    """``b[cnt, L, n] += r - 2^f`` with ``r`` uniform in ``[0, 2^(f+1))`` from ``words uint64[cnt, n, 3]``."""
    B = _arr(b, U64, "b")
    if not 0 <= f <= 190:
        raise ValueError("add_flood: f must be in [0, 190]")
    W = np.array(words, dtype=U64, copy=True, order="C")
    if B.ndim != 3 or W.shape != (B.shape[0], B.shape[2], 3):
        raise ValueError("add_flood: shapes do not match")
    # keep f + 1 bits
    nb = f + 1
    for i in range(3):
        keep = min(max(nb - 64 * i, 0), 64)
        if keep < 64:
            W[..., i] &= np.uint64((1 << keep) - 1)
    qa = np.ascontiguousarray(primes, dtype=U64)
    if B.size == 0:
        return
    cdef uint64_t[::1] Bv = B.reshape(-1)
    cdef const uint64_t[::1] Wv = W.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef size_t cnt = B.shape[0], L = B.shape[1], n = B.shape[2]
    with nogil:
        ezp_add_flood(&Bv[0], &Wv[0], cnt, n, &qs[0], L, f)


def rescale(x, primes, qinv):
    """Drop the last prime of ``x uint64[cnt, L, n]`` with rounding: ``uint64[cnt, L-1, n]``."""
    X = _arr(x, U64, "x")
    qa = np.ascontiguousarray(primes, dtype=U64)
    qi = np.ascontiguousarray(qinv, dtype=U64)
    if X.ndim != 3 or X.shape[1] < 2 or qa.shape[0] != X.shape[1] or qi.shape[0] < X.shape[1] - 1:
        raise ValueError("rescale: shapes do not match")
    cdef size_t cnt = X.shape[0], L = X.shape[1], n = X.shape[2]
    out = np.empty((cnt, L - 1, n), U64)
    if out.size == 0:
        return out
    cdef const uint64_t[::1] Xv = X.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef const uint64_t[::1] iv = qi
    cdef int v = ezp_he_have_ifma and n % 8 == 0 and int(qa.max()) < (1 << 50)
    with nogil:
        if v:
            ezp_rescale_ifma(&Xv[0], cnt, L, n, &qs[0], &iv[0], &O[0])
        else:
            ezp_rescale(&Xv[0], cnt, L, n, &qs[0], &iv[0], &O[0])
    return out


def decrypt2(x, uint64_t q0, uint64_t q1, uint64_t q0inv):
    """``round(2^64 x / (q0 q1)) mod 2^64`` of ``x uint64[cnt, 2, n]``: ``uint64[cnt, n]``."""
    X = _arr(x, U64, "x")
    if X.ndim != 3 or X.shape[1] != 2:
        raise ValueError("decrypt2: x must be uint64[cnt, 2, n]")
    cdef size_t cnt = X.shape[0], n = X.shape[2]
    out = np.empty((cnt, n), U64)
    if out.size == 0:
        return out
    cdef const uint64_t[::1] Xv = X.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    with nogil:
        ezp_decrypt2(&Xv[0], cnt, n, q0, q1, q0inv, &O[0])
    return out


def crt2_drop(x, uint64_t q0, uint64_t q1, uint64_t q0inv, int d):
    """Residues ``uint64[cnt, 2, n]`` mod ``(q0, q1)`` -> ``round(x / 2^d)`` as ``(lo, hi)`` words
    ``uint64[cnt, 2, n]``."""
    X = _arr(x, U64, "x")
    if X.ndim != 3 or X.shape[1] != 2 or not 0 <= d <= 60:
        raise ValueError("crt2_drop: x must be uint64[cnt, 2, n], 0 <= d <= 60")
    out = np.empty_like(X)
    if X.size == 0:
        return out
    cdef const uint64_t[::1] Xv = X.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef size_t cnt = X.shape[0], n = X.shape[2]
    with nogil:
        ezp_crt2_drop(&Xv[0], cnt, n, q0, q1, q0inv, d, &O[0])
    return out


def crt2_expand(y, uint64_t q0, uint64_t q1, int d):
    """Inverse of :func:`crt2_drop` up to the rounding: ``(lo, hi) 2^d`` -> residues (``hi``
    is read modulo 2^16)."""
    Y = _arr(y, U64, "y")
    if Y.ndim != 3 or Y.shape[1] != 2 or not 0 <= d <= 60:
        raise ValueError("crt2_expand: y must be uint64[cnt, 2, n], 0 <= d <= 60")
    out = np.empty_like(Y)
    if Y.size == 0:
        return out
    cdef const uint64_t[::1] Yv = Y.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef size_t cnt = Y.shape[0], n = Y.shape[2]
    with nogil:
        ezp_crt2_expand(&Yv[0], cnt, n, q0, q1, d, &O[0])
    return out


def packed_size(size_t cnt, size_t n, widths):
    return (cnt * n * sum(int(w) for w in widths) + 7) // 8


def pack(x, widths):
    """Bit-pack ``uint64[cnt, L, n]`` at ``widths[l]`` bits per limb: ``uint8[...]``."""
    X = _arr(x, U64, "x")
    w = np.ascontiguousarray(widths, dtype=np.uint8)
    if X.ndim != 3 or w.shape[0] != X.shape[1]:
        raise ValueError("pack: shapes do not match")
    cdef size_t cnt = X.shape[0], L = X.shape[1], n = X.shape[2]
    cdef size_t nbytes = packed_size(cnt, n, w)
    out = np.zeros(nbytes, np.uint8)
    if nbytes == 0:
        return out
    cdef const uint64_t[::1] Xv = X.reshape(-1)
    cdef uint8_t[::1] O = out
    cdef const uint8_t[::1] W = w
    with nogil:
        ezp_pack(&Xv[0], cnt, L, n, &W[0], &O[0], nbytes)
    return out


def unpack(data, shape, widths, primes):
    """Inverse of :func:`pack`; returns ``(x uint64[cnt, L, n], ok)`` where ``ok`` is false
    when some residue is not below its prime (a prime 0: no check)."""
    cnt, L, n = (int(v) for v in shape)
    w = np.ascontiguousarray(widths, dtype=np.uint8)
    qa = np.ascontiguousarray(primes, dtype=U64)
    d = _arr(data, np.dtype(np.uint8), "data").reshape(-1)
    if w.shape[0] != L or qa.shape[0] < L or d.shape[0] != packed_size(cnt, n, w):
        raise ValueError("unpack: sizes do not match")
    out = np.empty((cnt, L, n), U64)
    if out.size == 0:
        return out, True
    cdef const uint8_t[::1] D = d
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef const uint8_t[::1] W = w
    cdef const uint64_t[::1] qs = qa
    cdef int bad
    cdef size_t c_ = cnt, L_ = L, n_ = n
    with nogil:
        bad = ezp_unpack(&D[0], c_, L_, n_, &W[0], &qs[0], &O[0])
    return out, not bad


cdef object _rows(object x, object primes, str name):
    X = _arr(x, U64, name)
    qa = np.ascontiguousarray(primes, dtype=U64)
    if X.ndim < 2 or qa.shape[0] != X.shape[X.ndim - 2]:
        raise ValueError(f"{name}: expected uint64[..., L, n] with L = len(primes)")
    return X, qa


def monomial(x, primes, size_t e):
    """``X^e x`` in ``Z_q[X]/(X^n + 1)`` of coefficient vectors ``uint64[..., L, n]`` (``e < 2n``)."""
    X, qa = _rows(x, primes, "x")
    cdef size_t L = X.shape[X.ndim - 2], n = X.shape[X.ndim - 1]
    if e >= 2 * n:
        raise ValueError("monomial: e must be below 2n")
    out = np.empty_like(X)
    if X.size == 0:
        return out
    cdef const uint64_t[::1] Xv = X.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef size_t cnt = X.size // (L * n)
    with nogil:
        ezp_monomial(&Xv[0], cnt, L, n, &qs[0], e, &O[0])
    return out


def pack_pre(E, O, primes, size_t D, uint64_t g):
    """One PackLWEs merge before key switching: ``(E + X^D O, tau_g(E - X^D O))`` for
    coefficient vectors ``uint64[..., L, n]`` of equal shapes (``g`` odd, ``D < n``)."""
    Ea, qa = _rows(E, primes, "E")
    Oa, _ = _rows(O, primes, "O")
    if Ea.shape != Oa.shape:
        raise ValueError("pack_pre: E and O differ in shape")
    cdef size_t L = Ea.shape[Ea.ndim - 2], n = Ea.shape[Ea.ndim - 1]
    if D >= n or g % 2 == 0:
        raise ValueError("pack_pre: need D < n and g odd")
    sm = np.empty_like(Ea)
    t = np.empty_like(Ea)
    if Ea.size == 0:
        return sm, t
    cdef const uint64_t[::1] Ev = Ea.reshape(-1)
    cdef const uint64_t[::1] Ov = Oa.reshape(-1)
    cdef uint64_t[::1] S = sm.reshape(-1)
    cdef uint64_t[::1] T = t.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef size_t cnt = Ea.size // (L * n)
    cdef uint64_t gg = g % (2 * n)
    with nogil:
        ezp_pack_pre(&Ev[0], &Ov[0], cnt, L, n, &qs[0], D, gg, &S[0], &T[0])
    return sm, t


def rns_digits(a, primes):
    """Key-switching digits of ``a uint64[cnt, L, n]``: ``uint64[cnt, L, L, n]``, digit ``i`` the
    centred residue ``[a]_{q_i}`` reduced modulo every prime."""
    A, qa = _rows(a, primes, "a")
    if A.ndim != 3:
        raise ValueError("rns_digits: a must be uint64[cnt, L, n]")
    cdef size_t cnt = A.shape[0], L = A.shape[1], n = A.shape[2]
    out = np.empty((cnt, L, L, n), U64)
    if out.size == 0:
        return out
    cdef const uint64_t[::1] Av = A.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    with nogil:
        ezp_rns_digits(&Av[0], cnt, L, n, &qs[0], &O[0])
    return out


def group_digits(a, primes, groups, out_primes):
    """Hybrid key-switching digits of ``a uint64[cnt, L, n]`` (residues modulo ``primes``):
    ``uint64[cnt, G, Lout, n]``, digit ``g`` the centred residue of ``a`` modulo the product of
    the group ``groups[g]`` (one prime index or two) reduced modulo every prime of ``out_primes``
    (whose first ``L`` entries are ``primes``)."""
    A, qa = _rows(a, primes, "a")
    qo = np.ascontiguousarray(out_primes, dtype=U64)
    if A.ndim != 3 or qo.shape[0] < qa.shape[0] or np.any(qo[:qa.shape[0]] != qa):
        raise ValueError("group_digits: a must be uint64[cnt, L, n], out_primes extend primes")
    cdef size_t L = A.shape[1]
    spec = []
    for g in groups:
        g = tuple(int(v) for v in g)
        if not 1 <= len(g) <= 2 or any(not 0 <= v < L for v in g) or (len(g) == 2 and g[0] == g[1]):
            raise ValueError("group_digits: groups are one or two distinct prime indices")
        i, k = g[0], g[len(g) - 1]
        spec += [i, k, pow(int(qa[i]), -1, int(qa[k])) if i != k else 0]
    gr = np.array(spec, dtype=U64)
    cdef size_t cnt = A.shape[0], n = A.shape[2], G = len(groups), Lout = qo.shape[0]
    out = np.empty((cnt, G, Lout, n), U64)
    if out.size == 0:
        return out
    cdef const uint64_t[::1] Av = A.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef const uint64_t[::1] qs = qo
    cdef const uint64_t[::1] Gv = gr
    with nogil:
        ezp_group_digits(&Av[0], cnt, L, n, &qs[0], Lout, &Gv[0], G, &O[0])
    return out


def add_rows(x, y, primes):
    """``x += y`` modulo ``q_l`` in place (``uint64[..., L, n]`` residues of equal shapes)."""
    X, qa = _rows(x, primes, "x")
    Y, _ = _rows(y, primes, "y")
    if X.shape != Y.shape:
        raise ValueError("add_rows: shapes differ")
    cdef size_t L = X.shape[X.ndim - 2], n = X.shape[X.ndim - 1]
    if X.size == 0:
        return
    cdef uint64_t[::1] Xv = X.reshape(-1)
    cdef const uint64_t[::1] Yv = Y.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef size_t cnt = X.size // (L * n)
    with nogil:
        ezp_add_rows(&Xv[0], &Yv[0], cnt, L, n, &qs[0])


def shoup52(w, primes):
    """52-bit Shoup quotients ``floor(w 2^52 / q_l)`` (values < q_l < 2^50): the fixed operands
    of the IFMA products (:func:`key_switch`); :func:`shoup` with ``bits=52``."""
    return shoup(w, primes, 52)


def key_switch_available(NttTables tables):
    """True when :func:`key_switch` can run (the IFMA kernels and their tables)."""
    return bool(tables.use_ifma) and tables.N % 16 == 0


def key_switch(t, kb, ka, kbp52, kap52, NttTables tables, groups, qinv, size_t g=1, out=None, scratch=None):
    """Fused hybrid key switching of ``t uint64[cnt, 2, L, N]`` (coefficient form ``(b, a)`` at the
    first ``L`` primes of ``tables``): ``(b + kb', ka')`` with ``kb' + ka' s = a tau(s) + noise``
    for the key ``(kb, ka) uint64[G, Lk, N]`` (NTT at the first ``Lk`` primes, ``kbp52``/``kap52``
    their :func:`shoup52` quotients), digits grouped as in :func:`group_digits`, and ``qinv
    uint64[Lk - L, Lk]`` (row ``r``: ``q_(Lk-1-r)^-1 mod q_l``) for the division by the special
    modulus ``q_L .. q_(Lk-1)`` (dropped from the top, with rounding, as :func:`rescale`).  Equal,
    bit for bit, to :func:`group_digits`, NTTs, :func:`mul_acc`, inverse NTTs and :func:`rescale`.
    ``g`` (odd): the input is first mapped by ``tau_g`` (``X -> X^g``, as the key's element expects).
    ``out`` (may be ``t`` itself) and ``scratch`` (``uint64[(2 Lk + 2 + 2 L) N]``) avoid fresh
    allocations."""
    if not key_switch_available(tables):
        raise RuntimeError("key_switch: needs the AVX-512 IFMA kernels")
    T = _arr(t, U64, "t")
    B = _arr(kb, U64, "kb")
    A = _arr(ka, U64, "ka")
    Bp = _arr(kbp52, U64, "kbp52")
    Ap = _arr(kap52, U64, "kap52")
    if T.ndim != 4 or T.shape[1] != 2 or T.shape[3] != tables.N:
        raise ValueError("key_switch: t must be uint64[cnt, 2, L, N]")
    cdef size_t cnt = T.shape[0], L = T.shape[2], N = tables.N
    if B.ndim != 3 or B.shape[2] != N or A.shape != B.shape or Bp.shape != B.shape or Ap.shape != B.shape:
        raise ValueError("key_switch: keys must be uint64[G, Lk, N] of equal shapes")
    cdef size_t G = B.shape[0], Lk = B.shape[1]
    if not L < Lk <= tables.L:
        raise ValueError("key_switch: need L < Lk <= the chain length")
    qv = np.ascontiguousarray(tables.primes[:Lk], dtype=U64)
    spec = []
    for grp_ in groups:
        grp_ = tuple(int(v) for v in grp_)
        if not 1 <= len(grp_) <= 2 or any(not 0 <= v < <Py_ssize_t>L for v in grp_) or (len(grp_) == 2 and grp_[0] == grp_[1]):
            raise ValueError("key_switch: groups are one or two distinct prime indices below L")
        i, k = grp_[0], grp_[len(grp_) - 1]
        spec += [i, k, pow(int(qv[i]), -1, int(qv[k])) if i != k else 0]
    if len(groups) != <Py_ssize_t>G:
        raise ValueError("key_switch: one key digit per group")
    gr = np.array(spec, dtype=U64)
    qi = np.ascontiguousarray(qinv, dtype=U64)
    if qi.shape != (Lk - L, Lk):
        raise ValueError("key_switch: qinv must be uint64[Lk - L, Lk]")
    if g % 2 == 0 or g >= 2 * N:
        raise ValueError("key_switch: g must be odd and below 2N")
    cdef uint64_t ginv = pow(int(g), -1, 2 * int(N))
    if out is None:
        out = np.empty((cnt, 2, L, N), U64)
    elif _arr(out, U64, "out").shape != (cnt, 2, L, N):
        raise ValueError("key_switch: out must be uint64[cnt, 2, L, N]")
    if cnt == 0:
        return out
    if scratch is None:
        scratch = np.empty((2 * Lk + 2 + 2 * L) * N, U64)
    elif _arr(scratch, U64, "scratch").size < (2 * Lk + 2 + 2 * L) * N:
        raise ValueError("key_switch: scratch too small")
    cdef const uint64_t[::1] Tv = T.reshape(-1)
    cdef const uint64_t[::1] Bv = B.reshape(-1)
    cdef const uint64_t[::1] Av = A.reshape(-1)
    cdef const uint64_t[::1] Bpv = Bp.reshape(-1)
    cdef const uint64_t[::1] Apv = Ap.reshape(-1)
    cdef const uint64_t[::1] qs = qv
    cdef const uint64_t[::1] Gv = gr
    cdef const uint64_t[::1] Iv = qi.reshape(-1)
    cdef uint64_t[::1] S = scratch.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef ezp_ntt_tabs tb = _tabs(tables)
    with nogil:
        ezp_key_switch_ifma(&Tv[0], cnt, L, Lk, N, &qs[0], &Gv[0], G, &Bv[0], &Bpv[0], &Av[0], &Apv[0], tb,
                            &Iv[0], ginv, &S[0], &O[0])
    return out


cdef ezp_ntt_tabs _tabs(NttTables tables):
    cdef const uint64_t[:, ::1] P = tables.psi
    cdef const uint64_t[:, ::1] PP = tables.psip
    cdef const uint64_t[:, ::1] PP52 = tables.psip52
    cdef const uint64_t[:, ::1] IP = tables.ipsi
    cdef const uint64_t[:, ::1] IPP = tables.ipsip
    cdef const uint64_t[:, ::1] IPP52 = tables.ipsip52
    cdef const uint64_t[::1] ni = tables.ninv
    cdef const uint64_t[::1] nip = tables.ninvp
    cdef const uint64_t[::1] nip52 = tables.ninvp52
    cdef ezp_ntt_tabs tb
    tb.psi = &P[0, 0]
    tb.psip = &PP[0, 0]
    tb.psip52 = &PP52[0, 0]
    tb.ipsi = &IP[0, 0]
    tb.ipsip = &IPP[0, 0]
    tb.ipsip52 = &IPP52[0, 0]
    tb.ninv = &ni[0]
    tb.ninvp = &nip[0]
    tb.ninvp52 = &nip52[0]
    return tb


def members(out, cb, ca, w, kidx, NttTables tables, qinv, size_t e):
    """The members of a packed product (IFMA only, :func:`key_switch_available`): for each ``i``,
    ``out[i] = X^e (sum_p cb[i, kidx[p]] W[p], sum_p ca[i, kidx[p]] W[p])`` with ``W`` =
    :func:`encode_ntt` of the signed plaintexts ``w int64[nP, N]``, after the inverse NTT and the
    drops of the primes ``L-1 .. Lp`` (``out uint64[cnt, 2, Lp, N]``, coefficient form;
    ``cb``/``ca uint64[cnt, nK, L, N]`` NTT; ``qinv uint64[L - Lp, L]``, row ``r``:
    ``q_(L-1-r)^-1 mod q_l``).  Bit for bit :func:`encode_ntt`, :func:`mul_acc` (``ptsp=None``),
    inverse NTTs, :func:`rescale` and :func:`monomial`; each plaintext row is encoded once and used
    while in cache."""
    if not key_switch_available(tables):
        raise RuntimeError("members: needs the AVX-512 IFMA kernels")
    O = _arr(out, U64, "out")
    B = _arr(cb, U64, "cb")
    A = _arr(ca, U64, "ca")
    W = _arr(w, I64, "w")
    ki = np.ascontiguousarray(kidx, dtype=np.int64)
    if B.ndim != 4 or A.shape != B.shape or B.shape[3] != tables.N or O.ndim != 4 or O.shape[1] != 2:
        raise ValueError("members: cb, ca must be uint64[cnt, nK, L, N], out uint64[cnt, 2, Lp, N]")
    cdef size_t cnt = B.shape[0], nK = B.shape[1], L = B.shape[2], N = tables.N, Lp = O.shape[2]
    cdef size_t nP = W.shape[0] if W.ndim == 2 else 0
    if O.shape[0] != cnt or O.shape[3] != N or not 1 <= Lp <= L or L > tables.L:
        raise ValueError("members: out must be uint64[cnt, 2, Lp <= L, N]")
    if W.ndim != 2 or W.shape[1] != N or ki.shape != (nP,):
        raise ValueError("members: w must be int64[nP, N] with kidx int64[nP]")
    if nP and (int(ki.min()) < 0 or int(ki.max()) >= <Py_ssize_t>nK):
        raise ValueError("members: kidx out of range")
    if e >= 2 * N:
        raise ValueError("members: e must be below 2N")
    qi = np.ascontiguousarray(qinv, dtype=U64)
    if qi.shape != (L - Lp, L):
        raise ValueError("members: qinv must be uint64[L - Lp, L]")
    if cnt == 0:
        return
    qv = np.ascontiguousarray(tables.primes[:L], dtype=U64)
    scratch = np.empty((2 * cnt * L + 1) * N, U64)
    cdef uint64_t[::1] Ov = O.reshape(-1)
    cdef const uint64_t[::1] Bv = B.reshape(-1)
    cdef const uint64_t[::1] Av = A.reshape(-1)
    cdef const int64_t[::1] Wv = W.reshape(-1) if W.size else np.zeros(1, np.int64)
    cdef const int64_t[::1] Kv = ki if nP else np.zeros(1, np.int64)
    cdef const uint64_t[::1] qs = qv
    cdef const uint64_t[::1] Iv = qi.reshape(-1) if qi.size else np.zeros(1, U64)
    cdef uint64_t[::1] S = scratch
    cdef ezp_ntt_tabs tb = _tabs(tables)
    with nogil:
        ezp_members_ifma(&Bv[0], &Av[0], cnt, nK, L, Lp, N, &Wv[0], &Kv[0], nP, &qs[0], tb, &Iv[0], e, &S[0],
                         &Ov[0])


def encode_ntt(w, NttTables tables, size_t L):
    """``to_rns(w)`` followed by the forward NTT at the first ``L`` primes, in one pass that converts
    only each row's support (``w int64[cnt, N]``, ``|w|`` below every prime): ``uint64[cnt, L, N]``."""
    W = _arr(w, I64, "w")
    if W.ndim != 2 or W.shape[1] != tables.N or not 1 <= L <= tables.L:
        raise ValueError("encode_ntt: w must be int64[cnt, N], 1 <= L <= the chain length")
    cdef size_t cnt = W.shape[0], N = tables.N
    out = np.empty((cnt, L, N), U64)
    if cnt == 0:
        return out
    if not key_switch_available(tables):
        out = to_rns(W, tables.primes[:L])
        tables.forward(out)
        return out
    qv = np.ascontiguousarray(tables.primes[:L], dtype=U64)
    cdef const int64_t[::1] Wv = W.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    cdef const uint64_t[::1] qs = qv
    cdef ezp_ntt_tabs tb = _tabs(tables)
    with nogil:
        ezp_encode_ntt_ifma(&Wv[0], cnt, N, L, &qs[0], tb, &O[0])
    return out


def pack_pre_inplace(E, O, primes, size_t D, size_t g, scratch=None):
    """:func:`pack_pre` in place (IFMA only): ``E <- E + X^D O``, ``O <- tau_g(E - X^D O)``
    (``scratch``: ``uint64[n]``, one row)."""
    Ea, qa = _rows(E, primes, "E")
    Oa, _ = _rows(O, primes, "O")
    if Ea.shape != Oa.shape:
        raise ValueError("pack_pre_inplace: E and O differ in shape")
    cdef size_t L = Ea.shape[Ea.ndim - 2], n = Ea.shape[Ea.ndim - 1]
    if D >= n or g % 2 == 0 or g >= 2 * n or n % 8 or n & (n - 1) or not ezp_he_have_ifma:
        raise ValueError("pack_pre_inplace: need D < n, g odd below 2n, n a power of two >= 8, IFMA")
    if int(qa.max()) >= (1 << 50):
        raise ValueError("pack_pre_inplace: primes below 2^50")
    if Ea.size == 0:
        return
    if scratch is None:
        scratch = np.empty(n, U64)
    elif _arr(scratch, U64, "scratch").size < n:
        raise ValueError("pack_pre_inplace: scratch too small")
    cdef uint64_t[::1] Ev = Ea.reshape(-1)
    cdef uint64_t[::1] Ov = Oa.reshape(-1)
    cdef uint64_t[::1] S = scratch.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef size_t cnt = Ea.size // (L * n)
    cdef uint64_t ginv = pow(int(g), -1, 2 * int(n))
    with nogil:
        ezp_pack_pre_inplace_ifma(&Ev[0], &Ov[0], cnt, L, n, &qs[0], D, ginv, &S[0])


# ------------------------------------------------------------------ SIMD (batched) products

cdef extern from "ezp_he_simd.h" nogil:
    int ezp_add_delta_t(uint64_t *b, const uint64_t *m, size_t cnt, size_t n, const uint64_t *qs,
                        size_t L, const uint64_t *dfl, uint64_t qt, uint64_t t)
    void ezp_decrypt2_t(const uint64_t *x, size_t cnt, size_t n, uint64_t q0, uint64_t q1,
                        uint64_t q0inv_mod_q1, uint64_t t, uint64_t *out)
    void ezp_crt_u64(const uint64_t *v, size_t k, size_t n, const uint64_t *ts, const uint64_t *inv,
                     uint64_t *out)


def add_delta_t(b, m, primes, dfl, uint64_t qt, uint64_t t):
    """``b[cnt, L, n] += round(Q m / t)`` mod ``q_l`` for ``m uint64[cnt, n]`` in ``[0, t)``
    (``dfl[l] = floor(Q / t) mod q_l``, ``qt = Q mod t``; primes and ``t`` below 2^63)."""
    B = _arr(b, U64, "b")
    M = _arr(m, U64, "m")
    qa = np.ascontiguousarray(primes, dtype=U64)
    da = np.ascontiguousarray(dfl, dtype=U64)
    if B.ndim != 3 or M.shape != (B.shape[0], B.shape[2]) or qa.shape[0] < B.shape[1] or da.shape[0] < B.shape[1]:
        raise ValueError("add_delta_t: shapes do not match")
    if t < 2 or t >> 63 or qt >= t:
        raise ValueError("add_delta_t: need 2 <= t < 2^63, qt < t")
    if B.size == 0:
        return
    if M.size and int(M.max()) >= t:
        raise ValueError("add_delta_t: message entries must be below t")
    cdef uint64_t[::1] Bv = B.reshape(-1)
    cdef const uint64_t[::1] Mv = M.reshape(-1)
    cdef const uint64_t[::1] qs = qa
    cdef const uint64_t[::1] dv = da
    cdef size_t cnt = B.shape[0], L = B.shape[1], n = B.shape[2]
    cdef int rc
    with nogil:
        rc = ezp_add_delta_t(&Bv[0], &Mv[0], cnt, n, &qs[0], L, &dv[0], qt, t)
    if rc:
        raise MemoryError("add_delta_t")


def decrypt2_t(x, uint64_t q0, uint64_t q1, uint64_t q0inv, uint64_t t):
    """``round(t x / (q0 q1)) mod t`` of ``x uint64[cnt, 2, n]`` (residues): ``uint64[cnt, n]``."""
    X = _arr(x, U64, "x")
    if X.ndim != 3 or X.shape[1] != 2:
        raise ValueError("decrypt2_t: x must be uint64[cnt, 2, n]")
    if t < 2 or t >> 62 or q0 >> 62 or q1 >> 62:
        raise ValueError("decrypt2_t: t, q0, q1 must be below 2^62")
    cdef size_t cnt = X.shape[0], n = X.shape[2]
    out = np.empty((cnt, n), U64)
    if out.size == 0:
        return out
    cdef const uint64_t[::1] Xv = X.reshape(-1)
    cdef uint64_t[::1] O = out.reshape(-1)
    with nogil:
        ezp_decrypt2_t(&Xv[0], cnt, n, q0, q1, q0inv, t, &O[0])
    return out


def crt_u64(v, ts):
    """The integer ``V`` in ``[0, prod t_i)`` with ``V = v[i] mod t_i`` (``v uint64[k, n]``,
    ``k <= 8`` pairwise coprime ``t_i`` below 2^63), reduced mod 2^64: ``uint64[n]``."""
    Vv = _arr(v, U64, "v")
    ta = [int(x) for x in ts]
    cdef size_t k = len(ta)
    if Vv.ndim != 2 or Vv.shape[0] != k or not 1 <= k <= 8 or any(x < 2 or x >> 63 for x in ta):
        raise ValueError("crt_u64: v must be uint64[k, n], 1 <= k <= 8 moduli in [2, 2^63)")
    inv = np.zeros(k * k, U64)
    for i in range(k):
        for l in range(i):
            inv[i * k + l] = pow(ta[l], -1, ta[i])
    tv = np.array(ta, dtype=U64)
    cdef size_t n = Vv.shape[1]
    out = np.empty(n, U64)
    if n == 0:
        return out
    cdef const uint64_t[::1] Va = Vv.reshape(-1)
    cdef const uint64_t[::1] Ta = tv
    cdef const uint64_t[::1] Ia = inv
    cdef uint64_t[::1] O = out
    with nogil:
        ezp_crt_u64(&Va[0], k, n, &Ta[0], &Ia[0], &O[0])
    return out
