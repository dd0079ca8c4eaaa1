"""Sign bit, comparison and ReLU on arithmetic shares.

The sign (most significant bit) of x = x0 + x1 mod 2^l is
``x0[l-1] ^ x1[l-1] ^ carry(x0[0:l-1] + x1[0:l-1])``: only the carry needs a garbled
circuit (l - 1 AND gates, P1's l - 1 low bits through one COT each, P0's bits free,
see :mod:`.convert`); it leaves the circuit as XOR shares (label lsbs) and each party
folds in its own top bit.  Large tensors go through in batches of ``CHUNK`` elements
(a few more rounds, bounded memory).  ReLU multiplies x by the complemented sign bit with the
OT multiplexer (two additive COTs), so only the sign bit ever leaves the garbled
circuit.

``bits`` (default 64, exact on the whole ring) may be lowered when the caller knows
|x| < 2^(bits-1) (in ring units): the sign of x is then bit bits-1 of the low
``bits`` bits, and everything above is ignored (cheaper by 64/bits).  Outside that
bound the result is wrong (not leaky): the bound is the caller's promise.

Comparisons of two tensors use the sign of their difference, exact when both lie
in the fixed-point range [-2^62, 2^62) (ring units), where a difference never wraps.
"""
from __future__ import annotations

import numpy as np

from ..arith.tensor import ArithTensor
from .boolean import BoolTensor
from .convert import _share_inputs, carry_circuit, mux, word_bits

__all__ = ["msb", "ltz", "compare", "relu", "drelu", "FIXED_RANGE_BITS"]

FIXED_RANGE_BITS = 63          # values in [-2^62, 2^62): differences never wrap mod 2^64
CHUNK = 1 << 13                # elements per garbled batch: label arrays stay ~8 MiB and are reused


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= 64:
        raise ValueError(f"bits must be an int in [1, 64], got {bits!r}")
    return int(bits)


def msb(x: ArithTensor, bits: int = 64, garbler: int = 0) -> BoolTensor:
    """XOR shares of bit ``bits - 1`` of x (the sign of x read as a ``bits``-bit
    two's-complement number).  Costs per element: ``bits - 1`` COTs and AND gates."""
    if not isinstance(x, ArithTensor):
        raise TypeError("msb: x must be an ArithTensor")
    l = _check_bits(bits)
    s = x.session
    n = x.size
    top = ((x.share.reshape(-1) >> np.uint64(l - 1)) & np.uint64(1)).astype(np.uint8)
    if l == 1 or n == 0:
        return BoolTensor(s, top.reshape(x.shape))
    eng = getattr(s, "compare", None)           # a selected comparison engine (see .otcmp)
    if eng is not None and getattr(eng, "name", "gc") != "gc":
        with s.phase("msb"):
            return BoolTensor(s, eng.msb(x.share, l))
    flat = ArithTensor(s, x.share.reshape(-1), x.scale)
    out = np.empty(n, np.uint8)
    circ = carry_circuit(l - 1)
    with s.phase("msb"):
        for off in range(0, n, CHUNK):
            part = flat[off:off + CHUNK]
            A, B = _share_inputs(part, l - 1, garbler)
            (carry,) = s.gc.run(circ, [A, B], batch=part.size)
            out[off:off + part.size] = carry.share_bits()[:, 0]
    return BoolTensor(s, (out ^ top).reshape(x.shape))


ltz = msb


def drelu(x: ArithTensor, bits: int = 64) -> BoolTensor:
    """[x >= 0] as XOR-shared bits (the complemented sign)."""
    return ~msb(x, bits)


def relu(x: ArithTensor, bits: int = 64) -> ArithTensor:
    """max(x, 0) elementwise, same scale.  Per element: ``bits - 1`` COTs and AND gates
    for the sign, two additive COTs for the multiplexer."""
    if not isinstance(x, ArithTensor):
        raise TypeError("relu: x must be an ArithTensor")
    s = x.session
    if x.size == 0:
        return x.copy()
    with s.phase("relu"):
        d = drelu(x, bits)
        with s.phase("mux"):
            return mux(d, x)


def compare(x, y, arith: bool = False, bits: int = 64):
    """[x > y] elementwise (broadcasting): XOR-shared bits, or 0/1 arithmetic shares
    (scale 0) with ``arith=True``.  Exact for x, y in the fixed-point range
    [-2^62, 2^62) (ring units at a common scale).  ``y`` may be a public constant."""
    if isinstance(x, ArithTensor):
        s = x.session
    elif isinstance(y, ArithTensor):
        s = y.session
    else:
        raise TypeError("compare: at least one operand must be an ArithTensor")
    d = y - x                              # x > y  <=>  y - x < 0 (public operands are fine)
    with s.phase("compare"):
        b = msb(d, bits)
        return b.to_arith() if arith else b


def _gt(self, other):
    return compare(self, other)


def _lt(self, other):
    return compare(other, self)


def _ge(self, other):
    return ~compare(other, self)


def _le(self, other):
    return ~compare(self, other)
