"""Build circuits from word-level operations, vectorised over arrays of words.

A *word* is a numpy int64 array of wire ids whose last axis holds the bits, least
significant first; any leading axes are independent words (``shape (..., width)``).
Every operation works on whole arrays at once (Python loops only over bit positions
and tree levels), so a circuit over thousands of words is built without a Python
loop per gate.  Constants are folded as the circuit is built (``x ^ 0 = x``,
``x & 1 = x``, ``x & 0 = 0``, ``x ^ x = 0``, ...) and gates whose value reaches no
output are dropped by :meth:`CircuitBuilder.build`.

AND gates per operation on w-bit words (the garbling cost, 32 bytes each):

====================  ==================  =========================================
operation             AND gates           construction
====================  ==================  =========================================
add, sub              w - 1               ripple carry, c' = c ^ ((a^c) & (b^c))
carry_out             w                   the carry of x + y + carry_in
neg                   w - 2               0 - x with constant folding
lt, gt, le, ge        w                   carry out of x + ~y + 1
signed compare        w                   the same with the sign bits flipped
eq, ne                w - 1               AND tree over ~(x ^ y)
mux                   w                   y ^ (s & (x ^ y))
max of 2              2w                  compare + mux
max over k            (k - 1) 2w          pairwise tree, depth ceil(log2 k)
argmax over k         < (k - 1)(2w + l)   tree of (value, index), l = ceil(log2 k)
                                          index bits, constant-folded at the first
                                          level, the last value mux dropped (dead):
                                          279 ANDs for k = 10, w = 16
relu (signed)         w - 1               x & ~msb
====================  ==================  =========================================

>>> b = CircuitBuilder()
>>> x = b.input(16, shape=(5,))          # one input value of 5 words of 16 bits
>>> b.output(b.argmax(x, signed=True))
>>> c = b.build()
>>> c.input_widths, c.output_widths
((80,), (3,))
"""
from __future__ import annotations

import math

import numpy as np

from .._ext import garble as _k
from .circuit import OP_AND, OP_EQ, OP_EQW, OP_INV, OP_XOR, Circuit

__all__ = ["CircuitBuilder", "ZERO", "ONE"]

ZERO = -1     # constant wire ids
ONE = -2


def _val(ids):
    """constant value of constant ids (-1 -> 0, -2 -> 1)"""
    return -1 - ids


def _const_id(bits):
    return -1 - np.asarray(bits, np.int64)


class CircuitBuilder:
    """Accumulates gates; :meth:`build` returns a Bristol-conformant :class:`Circuit`.

    Wire arrays are int64 numpy arrays; ``ZERO`` (-1) and ``ONE`` (-2) are constants.
    """

    def __init__(self):
        self._next = 0
        self._ops: list[np.ndarray] = []
        self._a: list[np.ndarray] = []
        self._b: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self._inputs: list[np.ndarray] = []
        self._outputs: list[np.ndarray] = []

    # ------------------------------------------------------------------ raw gates
    def _alloc(self, n: int) -> np.ndarray:
        ids = np.arange(self._next, self._next + n, dtype=np.int64)
        self._next += n
        return ids

    def _gates(self, op: int, a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        n = a.size
        out = self._alloc(n)
        if n:
            self._ops.append(np.full(n, op, np.uint8))
            self._a.append(a.reshape(-1).astype(np.int64))
            self._b.append((b.reshape(-1) if b is not None else np.zeros(n, np.int64)).astype(np.int64))
            self._c.append(out)
        return out.reshape(a.shape)

    @staticmethod
    def _ids(x) -> np.ndarray:
        arr = np.asarray(x)
        if arr.dtype.kind not in "iu":
            raise TypeError("wire arrays must be integer arrays (from input(), const() or builder operations)")
        return arr.astype(np.int64, copy=False)

    # ------------------------------------------------------------------ inputs, outputs, constants
    def input(self, width: int, shape=()) -> np.ndarray:
        """A new input value of ``prod(shape) * width`` bits, returned as words of shape
        ``(*shape, width)`` (word 0 holds the value's lowest bits)."""
        shape = (shape,) if np.isscalar(shape) else tuple(shape)
        n = int(np.prod(shape, dtype=np.int64)) * int(width)
        ids = self._alloc(n)
        self._inputs.append(ids)
        return ids.reshape(shape + (int(width),))

    def output(self, word) -> None:
        """Declare an output value: all bits of ``word`` in C order (word by word, LSB first)."""
        self._outputs.append(self._ids(word).reshape(-1).copy())

    def const(self, value, width: int) -> np.ndarray:
        """Constant word(s): ``value`` an int or an integer array (two's complement)."""
        v = np.asarray(value)
        if v.dtype == object or (v.dtype.kind == "u" and width > 64):
            flat = [int(x) for x in v.reshape(-1)]
            bits = np.array([[(x >> k) & 1 for k in range(width)] for x in flat], np.int64).reshape(v.shape + (width,))
        else:
            u = v.astype(np.int64).view(np.uint64)
            k = np.arange(width, dtype=np.uint64)
            bits = np.where(k < 64, (u[..., None] >> np.minimum(k, 63)) & np.uint64(1),
                            (u[..., None] >> np.uint64(63)) & np.uint64(1)).astype(np.int64)
        return _const_id(bits)

    def zeros(self, shape) -> np.ndarray:
        return np.full(shape, ZERO, np.int64)

    # ------------------------------------------------------------------ bit operations (broadcasting)
    def xor(self, x, y) -> np.ndarray:
        x, y = np.broadcast_arrays(self._ids(x), self._ids(y))
        out = np.empty(x.shape, np.int64)
        xc, yc = x < 0, y < 0
        both = xc & yc
        out[both] = _const_id(_val(x[both]) ^ _val(y[both]))
        m = xc & ~yc
        out[m & (x == ZERO)] = y[m & (x == ZERO)]
        sel = m & (x == ONE)
        if sel.any():
            out[sel] = self._gates(OP_INV, y[sel], None)
        m = yc & ~xc
        out[m & (y == ZERO)] = x[m & (y == ZERO)]
        sel = m & (y == ONE)
        if sel.any():
            out[sel] = self._gates(OP_INV, x[sel], None)
        m = ~xc & ~yc
        same = m & (x == y)
        out[same] = ZERO
        sel = m & (x != y)
        if sel.any():
            out[sel] = self._gates(OP_XOR, x[sel], y[sel])
        return out

    def and_(self, x, y) -> np.ndarray:
        x, y = np.broadcast_arrays(self._ids(x), self._ids(y))
        out = np.empty(x.shape, np.int64)
        xc, yc = x < 0, y < 0
        both = xc & yc
        out[both] = _const_id(_val(x[both]) & _val(y[both]))
        m = xc & ~yc
        out[m] = np.where(x[m] == ONE, y[m], ZERO)
        m = yc & ~xc
        out[m] = np.where(y[m] == ONE, x[m], ZERO)
        m = ~xc & ~yc
        same = m & (x == y)
        out[same] = x[same]
        sel = m & (x != y)
        if sel.any():
            out[sel] = self._gates(OP_AND, x[sel], y[sel])
        return out

    def inv(self, x) -> np.ndarray:
        x = self._ids(x)
        out = np.empty(x.shape, np.int64)
        c = x < 0
        out[c] = _const_id(1 - _val(x[c]))
        if (~c).any():
            out[~c] = self._gates(OP_INV, x[~c], None)
        return out

    not_ = inv

    def or_(self, x, y) -> np.ndarray:
        """x | y = (x ^ y) ^ (x & y): one AND."""
        return self.xor(self.xor(x, y), self.and_(x, y))

    def and_reduce(self, x, axis: int = -1) -> np.ndarray:
        """AND of all bits along ``axis`` (balanced tree: n-1 ANDs, depth ceil(log2 n))."""
        v = np.moveaxis(self._ids(x), axis, -1)
        if v.shape[-1] == 0:
            return np.full(v.shape[:-1], ONE, np.int64)
        while v.shape[-1] > 1:
            n = v.shape[-1]
            h = n // 2
            r = self.and_(v[..., :h], v[..., h:2 * h])
            v = np.concatenate([r, v[..., 2 * h:]], axis=-1)
        return v[..., 0]

    def or_reduce(self, x, axis: int = -1) -> np.ndarray:
        return self.inv(self.and_reduce(self.inv(x), axis))

    def xor_reduce(self, x, axis: int = -1) -> np.ndarray:
        v = np.moveaxis(self._ids(x), axis, -1)
        if v.shape[-1] == 0:
            return np.full(v.shape[:-1], ZERO, np.int64)
        while v.shape[-1] > 1:
            n = v.shape[-1]
            h = n // 2
            r = self.xor(v[..., :h], v[..., h:2 * h])
            v = np.concatenate([r, v[..., 2 * h:]], axis=-1)
        return v[..., 0]

    # ------------------------------------------------------------------ word operations
    @staticmethod
    def _words(*xs):
        arrs = [CircuitBuilder._ids(x) for x in xs]
        w = arrs[0].shape[-1]
        for a in arrs[1:]:
            if a.shape[-1] != w:
                raise ValueError(f"word widths differ: {w} and {a.shape[-1]}")
        return np.broadcast_arrays(*arrs)

    def add(self, x, y, carry_in=ZERO) -> np.ndarray:
        """x + y mod 2^w (w - 1 ANDs)."""
        x, y = self._words(x, y)
        w = x.shape[-1]
        c = np.broadcast_to(self._ids(carry_in), x.shape[:-1])
        out = np.empty(x.shape, np.int64)
        for i in range(w):
            a, b = x[..., i], y[..., i]
            axc = self.xor(a, c)
            out[..., i] = self.xor(axc, b)
            if i + 1 < w:
                c = self.xor(c, self.and_(axc, self.xor(b, c)))
        return out

    def carry_out(self, x, y, carry_in=ZERO) -> np.ndarray:
        """carry out of x + y + carry_in (w ANDs)."""
        x, y = self._words(x, y)
        c = np.broadcast_to(self._ids(carry_in), x.shape[:-1])
        for i in range(x.shape[-1]):
            a, b = x[..., i], y[..., i]
            c = self.xor(c, self.and_(self.xor(a, c), self.xor(b, c)))
        return np.array(c)

    def sub(self, x, y) -> np.ndarray:
        """x - y mod 2^w (w - 1 ANDs)."""
        x, y = self._words(x, y)
        return self.add(x, self.inv(y), carry_in=ONE)

    def neg(self, x) -> np.ndarray:
        """-x mod 2^w."""
        x = self._ids(x)
        return self.sub(self.zeros(x.shape), x)

    def _flip_msb(self, x):
        x = np.array(self._ids(x))
        x[..., -1] = self.inv(x[..., -1])
        return x

    def ge(self, x, y, signed: bool = False) -> np.ndarray:
        """x >= y (w ANDs)."""
        x, y = self._words(x, y)
        if signed:
            x, y = self._flip_msb(x), self._flip_msb(y)
        return self.carry_out(x, self.inv(y), ONE)

    def lt(self, x, y, signed: bool = False) -> np.ndarray:
        """x < y (w ANDs)."""
        return self.inv(self.ge(x, y, signed))

    def gt(self, x, y, signed: bool = False) -> np.ndarray:
        return self.lt(y, x, signed)

    def le(self, x, y, signed: bool = False) -> np.ndarray:
        return self.ge(y, x, signed)

    def eq(self, x, y) -> np.ndarray:
        """x == y (w - 1 ANDs)."""
        x, y = self._words(x, y)
        return self.and_reduce(self.inv(self.xor(x, y)))

    def ne(self, x, y) -> np.ndarray:
        return self.inv(self.eq(x, y))

    def is_zero(self, x) -> np.ndarray:
        return self.and_reduce(self.inv(x))

    def mux(self, s, x, y) -> np.ndarray:
        """``s ? x : y`` per word (``s``: one bit per word, shape (...)); w ANDs."""
        x, y = self._words(x, y)
        s = self._ids(s)[..., None]
        return self.xor(y, self.and_(s, self.xor(x, y)))

    def max(self, x, y=None, axis: int = -2, signed: bool = False) -> np.ndarray:
        """``max(x, y)`` of two word arrays, or with ``y`` None the maximum of the words of
        ``x`` along ``axis`` (a word axis, default -2: the one before the bits)."""
        if y is not None:
            x, y = self._words(x, y)
            return self.mux(self.lt(x, y, signed), y, x)
        v = np.moveaxis(self._ids(x), axis, -2)
        if v.shape[-2] == 0:
            raise ValueError("max of an empty set of words")
        while v.shape[-2] > 1:
            n = v.shape[-2]
            h = n // 2
            left, right = v[..., 0:2 * h:2, :], v[..., 1:2 * h:2, :]
            m = self.mux(self.lt(left, right, signed), right, left)
            v = np.concatenate([m, v[..., 2 * h:, :]], axis=-2)
        return v[..., 0, :]

    def argmax(self, x, axis: int = -2, signed: bool = False, return_max: bool = False):
        """Index of the largest word along ``axis`` (ties: the lowest index, like
        numpy), as words of ``max(1, ceil(log2 k))`` bits.  With ``return_max``,
        returns ``(index, max)``."""
        v = np.moveaxis(self._ids(x), axis, -2)
        k = v.shape[-2]
        if k == 0:
            raise ValueError("argmax of an empty set of words")
        iw = max(1, math.ceil(math.log2(k)))
        idx = np.broadcast_to(self.const(np.arange(k), iw), v.shape[:-1] + (iw,))
        while v.shape[-2] > 1:
            n = v.shape[-2]
            h = n // 2
            lv, rv = v[..., 0:2 * h:2, :], v[..., 1:2 * h:2, :]
            li, ri = idx[..., 0:2 * h:2, :], idx[..., 1:2 * h:2, :]
            s = self.lt(lv, rv, signed)          # strictly greater on the right: take it
            v = np.concatenate([self.mux(s, rv, lv), v[..., 2 * h:, :]], axis=-2)
            idx = np.concatenate([self.mux(s, ri, li), idx[..., 2 * h:, :]], axis=-2)
        if return_max:
            return idx[..., 0, :], v[..., 0, :]
        return idx[..., 0, :]

    def relu(self, x) -> np.ndarray:
        """max(x, 0) for signed words (w - 1 ANDs)."""
        x = self._ids(x)
        pos = self.inv(x[..., -1])
        out = np.empty(x.shape, np.int64)
        out[..., :-1] = self.and_(x[..., :-1], pos[..., None])
        out[..., -1] = ZERO
        return out

    # ------------------------------------------------------------------ free rewiring
    @staticmethod
    def bit(x, i: int) -> np.ndarray:
        return np.asarray(x)[..., i]

    @staticmethod
    def msb(x) -> np.ndarray:
        return np.asarray(x)[..., -1]

    def shl(self, x, k: int) -> np.ndarray:
        x = self._ids(x)
        w = x.shape[-1]
        k = min(k, w)
        return np.concatenate([self.zeros(x.shape[:-1] + (k,)), x[..., :w - k]], axis=-1)

    def shr(self, x, k: int, arithmetic: bool = False) -> np.ndarray:
        x = self._ids(x)
        w = x.shape[-1]
        k = min(k, w)
        fill = np.repeat(x[..., -1:], k, axis=-1) if arithmetic else self.zeros(x.shape[:-1] + (k,))
        return np.concatenate([x[..., k:], fill], axis=-1)

    def extend(self, x, width: int, signed: bool = False) -> np.ndarray:
        """Zero- or sign-extend (or truncate) to ``width`` bits."""
        x = self._ids(x)
        w = x.shape[-1]
        if width <= w:
            return x[..., :width]
        fill = np.repeat(x[..., -1:], width - w, axis=-1) if signed else self.zeros(x.shape[:-1] + (width - w,))
        return np.concatenate([x, fill], axis=-1)

    # ------------------------------------------------------------------ build
    @property
    def n_and(self) -> int:
        """AND gates created so far (before dead-gate removal)."""
        return int(sum(int(np.count_nonzero(o == OP_AND)) for o in self._ops))

    def build(self) -> Circuit:
        """The circuit: inputs first (in order), outputs last; dead gates removed."""
        nid = self._next
        op = np.concatenate(self._ops) if self._ops else np.zeros(0, np.uint8)
        a = np.concatenate(self._a) if self._a else np.zeros(0, np.int64)
        b = np.concatenate(self._b) if self._b else np.zeros(0, np.int64)
        c = np.concatenate(self._c) if self._c else np.zeros(0, np.int64)
        outs = np.concatenate(self._outputs) if self._outputs else np.zeros(0, np.int64)
        ins = np.concatenate(self._inputs) if self._inputs else np.zeros(0, np.int64)
        live = np.zeros(max(nid, 1), np.uint8)
        live[outs[outs >= 0]] = 1
        keep = _k.mark_live(op, a, b, c, live)
        op, a, b, c = op[keep], a[keep], b[keep], c[keep]
        nin, nout = ins.size, outs.size
        # outputs: the first occurrence of a gate output is renumbered into the tail;
        # inputs, repeats and constants get an EQW / EQ gate writing the tail wire
        is_gate_out = np.zeros(max(nid, 1), bool)
        is_gate_out[c] = True
        first = np.zeros(nout, bool)
        if nout:
            _, first_idx = np.unique(outs, return_index=True)
            first[first_idx] = True
        direct = first & (outs >= 0) & is_gate_out[np.maximum(outs, 0)]
        ninternal = c.size - int(direct.sum())
        nwires = nin + ninternal + nout
        tail0 = nwires - nout
        newid = np.full(max(nid, 1), -1, np.int64)
        newid[ins] = np.arange(nin)
        newid[outs[direct]] = tail0 + np.flatnonzero(direct)
        internal = c[newid[c] < 0]
        newid[internal] = nin + np.arange(internal.size)
        # extra gates for outputs not written directly
        ex = np.flatnonzero(~direct)
        ex_src = outs[ex]
        ex_const = ex_src < 0
        e_op = np.where(ex_const, OP_EQ, OP_EQW).astype(np.uint8)
        e_a = np.where(ex_const, _val(ex_src), newid[np.maximum(ex_src, 0)])
        e_c = tail0 + ex
        f_op = np.concatenate([op, e_op])
        f_a = np.concatenate([np.where(op == OP_EQ, a, newid[np.maximum(a, 0)]), e_a])
        f_b = np.concatenate([np.where((op == OP_XOR) | (op == OP_AND), newid[np.maximum(b, 0)], 0),
                              np.zeros(ex.size, np.int64)])
        f_c = np.concatenate([newid[c], e_c])
        in_widths = tuple(int(x.size) for x in self._inputs)
        out_widths = tuple(int(x.size) for x in self._outputs)
        assert f_a.size == 0 or (f_a.min() >= 0 and f_c.min() >= 0), "internal renumbering error"
        return Circuit(f_op, f_a, f_b, f_c, nwires, in_widths, out_widths)
