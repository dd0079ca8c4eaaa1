# cython: freethreading_compatible = False
"""Garbled-circuit kernels: Bristol Fashion parsing/writing and validation,
bit-sliced cleartext evaluation, compilation of a circuit into a slot program, and
half-gates garbling/evaluation (Zahur, Rosulek, Evans, eprint 2014/756) with the
TCCR hash from fixed-key AES (Guo, Kumar, Wang, Katz, eprint 2019/074).

The C code is in ``include/ezp_bristol.h`` and ``include/ezp_garble.h``; this module
only checks arguments and releases the GIL around it.  Users go through
:mod:`ezprotocols.gc`.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free, calloc

from ezprotocols.errors import CircuitError

cnp.import_array()

cdef extern from "ezp_aes.h" nogil:
    int ezp_have_vaes
    void ezp_aes_init()

cdef extern from "ezp_bristol.h" nogil:
    ctypedef struct ezp_err:
        int64_t line
        char msg[240]
    ctypedef struct ezp_prog_out:
        uint8_t *op
        uint32_t *sa
        uint32_t *sb
        uint32_t *so
        uint32_t *run_end
        uint32_t *out_slots
        size_t ninstr, nand, nslots, max_run, and_depth, nruns
    int ezp_parse_gates(const char *data, size_t len, size_t pos, int64_t line,
                        uint64_t ngates, uint64_t nwires, uint64_t nin,
                        uint8_t *op, uint32_t *a, uint32_t *b, uint32_t *c, size_t cap,
                        size_t *nout_gates, uint8_t *isset, uint32_t *stamp, ezp_err *e)
    int ezp_validate(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                     size_t ng, uint64_t nwires, uint64_t nin, uint8_t *isset, ezp_err *e)
    size_t ezp_write_gates(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                           size_t ng, char *out)
    void ezp_eval_plain(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                        size_t ng, uint64_t *wires, size_t nw)
    int ezp_compile(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                    size_t ng, uint64_t nwires, uint64_t nin, const uint32_t *outw, size_t nout,
                    ezp_prog_out *P)
    void ezp_mark_live(const uint8_t *op, const int64_t *a, const int64_t *b, const int64_t *c, size_t ng,
                       uint8_t *live, uint8_t *gate_live)
    int ezp_and_levels(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                       size_t ng, uint64_t nwires, uint32_t *level, uint32_t *maxlevel)

cdef extern from "ezp_garble.h" nogil:
    size_t ezp_gc_exec(int gb, const uint8_t *op, const uint32_t *sa, const uint32_t *sb,
                       const uint32_t *so, const uint32_t *run_end, size_t i0, size_t i1,
                       uint8_t *lab, size_t W, const uint8_t *delta, uint64_t tw_hi, uint64_t tw_lo,
                       uint8_t *tab)
    void ezp_gather_in(uint8_t *lab, size_t W, const uint32_t *slots, size_t n, const uint8_t *src,
                       size_t sstride)
    void ezp_scatter_out(const uint8_t *lab, size_t W, const uint32_t *slots, size_t n, uint8_t *dst,
                         size_t dstride)

ezp_aes_init()

OP_XOR, OP_AND, OP_INV, OP_EQW, OP_EQ = 0, 1, 2, 3, 4
OP_NAMES = ("XOR", "AND", "INV", "EQW", "EQ")
P_XOR, P_AND, P_INV, P_COPY, P_ZERO, P_ONE = 0, 1, 2, 3, 4, 5

_EMPTY8 = np.zeros(1, np.uint8)
_EMPTY32 = np.zeros(1, np.uint32)


def vaes_enabled():
    """True when the garbling kernels use the VAES-512 path."""
    return bool(ezp_have_vaes)


def parse_gates(bytes data, size_t pos, int64_t line, uint64_t ngates, uint64_t nwires,
                uint64_t nin):
    """Parse the gate lines of a Bristol Fashion file (``data[pos:]`` starts at ``line``).

    Returns ``(op, a, b, c)`` (uint8, uint32 x3).  Raises :class:`CircuitError` with
    the line number on any syntax or semantic error."""
    cdef size_t n = len(data)
    cdef size_t cap = n // 6 + 16
    cdef size_t ng = 0
    cdef ezp_err e
    cdef int rc
    e.line = -1
    e.msg[0] = 0
    if nwires >= 0xFFFFFFFF:
        raise CircuitError(f"line 1: {nwires} wires, at most 2^32-2 are supported")
    op = np.empty(cap, np.uint8)
    a = np.empty(cap, np.uint32)
    b = np.empty(cap, np.uint32)
    c = np.empty(cap, np.uint32)
    isset = np.zeros(nwires // 8 + 1, np.uint8)
    stamp = np.zeros(nwires + 1, np.uint32)
    cdef uint8_t[::1] vop = op
    cdef uint32_t[::1] va = a, vb = b, vc = c, vst = stamp
    cdef uint8_t[::1] vis = isset
    cdef const char *p = data
    with nogil:
        rc = ezp_parse_gates(p, n, pos, line, ngates, nwires, nin, &vop[0], &va[0], &vb[0], &vc[0], cap,
                             &ng, &vis[0], &vst[0], &e)
    if rc:
        err = CircuitError(f"line {e.line}: {e.msg.decode('utf-8', 'replace')}")
        err.line = int(e.line)
        raise err
    # the set bitmap tells whether the outputs were ever written
    return op[:ng].copy(), a[:ng].copy(), b[:ng].copy(), c[:ng].copy(), isset


def validate(const uint8_t[::1] op, const uint32_t[::1] a, const uint32_t[::1] b, const uint32_t[::1] c,
             uint64_t nwires, uint64_t nin):
    """Check IR arrays; raises CircuitError naming the gate.  Returns the set-wire bitmap."""
    cdef size_t ng = op.shape[0]
    if a.shape[0] != ng or b.shape[0] != ng or c.shape[0] != ng:
        raise CircuitError("op, a, b and c must have the same length")
    if nwires >= 0xFFFFFFFF:
        raise CircuitError(f"{nwires} wires, at most 2^32-2 are supported")
    if nin > nwires:
        raise CircuitError(f"{nin} input wires but only {nwires} wires")
    isset = np.zeros(nwires // 8 + 1, np.uint8)
    cdef uint8_t[::1] vis = isset
    cdef ezp_err e
    cdef int rc
    e.line = -1
    if ng == 0:
        with nogil:
            rc = ezp_validate(NULL, NULL, NULL, NULL, 0, nwires, nin, &vis[0], &e)
        return isset
    with nogil:
        rc = ezp_validate(&op[0], &a[0], &b[0], &c[0], ng, nwires, nin, &vis[0], &e)
    if rc:
        err = CircuitError(f"gate {e.line}: {e.msg.decode('utf-8', 'replace')}")
        err.gate = int(e.line)
        raise err
    return isset


def write_gates(const uint8_t[::1] op, const uint32_t[::1] a, const uint32_t[::1] b, const uint32_t[::1] c):
    """The gate lines of a Bristol Fashion file, as bytes."""
    cdef size_t ng = op.shape[0]
    if ng == 0:
        return b""
    buf = np.empty(48 * ng, np.uint8)
    cdef uint8_t[::1] vb_ = buf
    cdef size_t n
    with nogil:
        n = ezp_write_gates(&op[0], &a[0], &b[0], &c[0], ng, <char *> &vb_[0])
    return buf[:n].tobytes()


def eval_plain(const uint8_t[::1] op, const uint32_t[::1] a, const uint32_t[::1] b, const uint32_t[::1] c,
               uint64_t[:, ::1] wires):
    """Evaluate the IR in place on bit-sliced wire rows (``wires[w]`` = words of wire w)."""
    cdef size_t ng = op.shape[0]
    cdef size_t nw = wires.shape[1]
    if ng == 0 or nw == 0:
        return
    with nogil:
        ezp_eval_plain(&op[0], &a[0], &b[0], &c[0], ng, &wires[0, 0], nw)


def and_levels(const uint8_t[::1] op, const uint32_t[::1] a, const uint32_t[::1] b, const uint32_t[::1] c,
               uint64_t nwires):
    """(AND level of each gate (0 for non-AND gates), AND depth of the circuit)."""
    cdef size_t ng = op.shape[0]
    lev = np.zeros(max(ng, 1), np.uint32)
    cdef uint32_t[::1] vl = lev
    cdef uint32_t m = 0
    cdef int rc = 0
    if ng:
        with nogil:
            rc = ezp_and_levels(&op[0], &a[0], &b[0], &c[0], ng, nwires, &vl[0], &m)
    if rc:
        raise MemoryError()
    return lev[:ng], int(m)


def mark_live(const uint8_t[::1] op, const int64_t[::1] a, const int64_t[::1] b, const int64_t[::1] c,
              uint8_t[::1] live):
    """Builder helper: which gates (SSA ids, outputs pre-marked in ``live``) are needed."""
    cdef size_t ng = op.shape[0]
    gl = np.zeros(max(ng, 1), np.uint8)
    cdef uint8_t[::1] vg = gl
    if ng:
        if a.shape[0] != ng or b.shape[0] != ng or c.shape[0] != ng:
            raise ValueError("op, a, b and c must have the same length")
        with nogil:
            ezp_mark_live(&op[0], &a[0], &b[0], &c[0], ng, &live[0], &vg[0])
    return gl[:ng].view(bool)


cdef class Program:
    """A circuit compiled for the garbling kernels (see ezp_bristol.h): instructions in
    execution order over label slots, AND runs, output slots."""
    cdef readonly object op, sa, sb, so, run_end, out_slots, and_prefix
    cdef readonly size_t ninstr, nand, nslots, max_run, and_depth, nruns, nin
    cdef const uint8_t[::1] _op
    cdef const uint32_t[::1] _sa, _sb, _so, _re

    def __init__(self, const uint8_t[::1] op, const uint32_t[::1] a, const uint32_t[::1] b,
                 const uint32_t[::1] c, uint64_t nwires, uint64_t nin, const uint32_t[::1] outw):
        cdef size_t ng = op.shape[0]
        cdef size_t nout = outw.shape[0]
        cdef size_t cap = max(ng, 1)
        self.op = np.zeros(cap, np.uint8)
        self.sa = np.zeros(cap, np.uint32)
        self.sb = np.zeros(cap, np.uint32)
        self.so = np.zeros(cap, np.uint32)
        self.run_end = np.zeros(cap, np.uint32)
        self.out_slots = np.zeros(max(nout, 1), np.uint32)
        cdef uint8_t[::1] pop = self.op
        cdef uint32_t[::1] psa = self.sa, psb = self.sb, pso = self.so, pre = self.run_end, pos_ = self.out_slots
        cdef ezp_prog_out P
        P.op = &pop[0]
        P.sa = &psa[0]
        P.sb = &psb[0]
        P.so = &pso[0]
        P.run_end = &pre[0]
        P.out_slots = &pos_[0]
        cdef int rc
        cdef const uint8_t *o_ = &op[0] if ng else NULL
        cdef const uint32_t *a_ = &a[0] if ng else NULL
        cdef const uint32_t *b_ = &b[0] if ng else NULL
        cdef const uint32_t *c_ = &c[0] if ng else NULL
        cdef const uint32_t *w_ = &outw[0] if nout else NULL
        with nogil:
            rc = ezp_compile(o_, a_, b_, c_, ng, nwires, nin, w_, nout, &P)
        if rc:
            raise MemoryError("out of memory compiling the circuit")
        self.ninstr = P.ninstr
        self.nand = P.nand
        self.nslots = P.nslots
        self.max_run = P.max_run
        self.and_depth = P.and_depth
        self.nruns = P.nruns
        self.nin = nin
        n = P.ninstr
        self.op = self.op[:max(n, 1)]
        self.out_slots = self.out_slots[:nout]
        # and_prefix[i] = number of AND instructions before instruction i (i = 0..n)
        pref = np.zeros(n + 1, np.int64)
        if n:
            np.cumsum(self.op[:n] == P_AND, out=pref[1:])
        self.and_prefix = pref
        self._op = self.op
        self._sa = self.sa
        self._sb = self.sb
        self._so = self.so
        self._re = self.run_end

    def exec_(self, int gb, size_t i0, size_t i1, uint8_t[::1] lab, size_t W, const uint8_t[::1] delta,
              uint64_t tw_hi, uint64_t tw_lo, tab):
        """Run instructions [i0, i1) on W copies (``lab``: nslots x W x 16 bytes).
        Garbler (gb=1) writes the tables into ``tab``; evaluator (gb=0) reads them.
        Returns the number of AND items processed."""
        cdef uint8_t[::1] vt
        cdef uint8_t *tp = NULL
        cdef size_t items
        if i1 > self.ninstr or i0 > i1:
            raise ValueError("instruction range out of bounds")
        if lab.shape[0] != self.nslots * W * 16:
            raise ValueError(f"label buffer must hold {self.nslots} x {W} labels")
        if delta.shape[0] != 16:
            raise ValueError("delta must be 16 bytes")
        need = int(self.and_prefix[i1] - self.and_prefix[i0]) * W * 32
        if need:
            vt = tab
            if vt.shape[0] < need:
                raise ValueError(f"table buffer holds {vt.shape[0]} bytes, {need} needed")
            tp = &vt[0]
        if i0 == i1:
            return 0
        with nogil:
            items = ezp_gc_exec(gb, &self._op[0], &self._sa[0], &self._sb[0], &self._so[0], &self._re[0],
                                i0, i1, &lab[0], W, &delta[0], tw_hi, tw_lo, tp)
        return items


def gather_in(uint8_t[::1] lab, size_t W, const uint32_t[::1] slots, src):
    """``lab[slots[k]][c] = src[c, k]`` for c < W; ``src`` is a uint8[W, n, 16] view
    (rows may be strided, each row contiguous)."""
    cdef size_t n = slots.shape[0]
    if n == 0 or W == 0:
        return
    cdef const uint8_t[:, :, :] s = src
    if s.shape[0] < W or s.shape[1] != n or s.shape[2] != 16:
        raise ValueError("gather_in: bad source shape")
    if s.strides[1] != 16 or s.strides[2] != 1:
        raise ValueError("gather_in: labels of a copy must be contiguous")
    with nogil:
        ezp_gather_in(&lab[0], W, &slots[0], n, &s[0, 0, 0], <size_t> s.strides[0])


def scatter_out(const uint8_t[::1] lab, size_t W, const uint32_t[::1] slots, dst):
    """``dst[c, k] = lab[slots[k]][c]`` for c < W (``dst``: uint8[W, n, 16], copy rows contiguous)."""
    cdef size_t n = slots.shape[0]
    if n == 0 or W == 0:
        return
    cdef uint8_t[:, :, :] d = dst
    if d.shape[0] < W or d.shape[1] != n or d.shape[2] != 16:
        raise ValueError("scatter_out: bad destination shape")
    if d.strides[1] != 16 or d.strides[2] != 1:
        raise ValueError("scatter_out: labels of a copy must be contiguous")
    with nogil:
        ezp_scatter_out(&lab[0], W, &slots[0], n, &d[0, 0, 0], <size_t> d.strides[0])
