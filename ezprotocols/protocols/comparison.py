"""Sign bit, comparison and ReLU on arithmetic shares, on top of the session's
comparison engine (``s.compare.msb``, :mod:`.sign`; OT millionaires by default, garbled carry with ``compare="gc"``) and
the OT multiplexer (:func:`.convert.mux`: two additive COTs per element), so only
the sign bit ever leaves the comparison protocol.

``bits`` (default 64, exact on the whole ring) may be lowered when the caller knows
|x| < 2^(bits-1) (in ring units): the sign of x is then bit bits-1 of the low
``bits`` bits, and everything above is ignored (cheaper by 64/bits).  Outside that
bound the result is wrong (not leaky): the bound is the caller's promise.

Comparisons of two tensors use the sign of their difference, exact when both lie
in the fixed-point range [-2^62, 2^62) (ring units), where a difference never wraps.
``ArithTensor`` defines ``x > y`` etc. with :func:`compare`.
"""
from __future__ import annotations

from ..arith.tensor import ArithTensor
from .boolean import BoolTensor
from .convert import mux
from .sign import check_bits

__all__ = ["msb", "ltz", "compare", "relu", "drelu", "FIXED_RANGE_BITS"]

FIXED_RANGE_BITS = 63          # values in [-2^62, 2^62): differences never wrap mod 2^64


def msb(x: ArithTensor, bits: int = 64, garbler: int | None = None) -> BoolTensor:
    """XOR shares of bit ``bits - 1`` of x (the sign of x read as a ``bits``-bit
    two's-complement number), through ``s.compare``.  ``garbler`` (0 or 1) asks the
    garbled-circuit engine for that garbler explicitly."""
    if not isinstance(x, ArithTensor):
        raise TypeError("msb: x must be an ArithTensor")
    l = check_bits(bits)
    s = x.session
    if garbler is None:
        return BoolTensor(s, s.compare.msb(x.share, l))
    return BoolTensor(s, s.engine("compare", "gc").msb(x.share, l, garbler=garbler))


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
