"""Conversions between arithmetic (Z_2^64 additive), boolean (XOR) and Yao (garbled
label) sharings, and the OT multiplexer ``bit * value``.

Constructions (ABY, Demmler, Schneider, Zohner, NDSS 2015; Gilboa, CRYPTO 1999
for the OT products):

``b2a_bits``   b = b0 + b1 - 2 b0 b1 (:mod:`.boolean`, re-exported here).
``b2a``        l-bit words: x = sum_i 2^i (b0_i + b1_i - 2 b0_i b1_i); the product of
               bit i needs only 63 - i bits (widths 63..1, bit 63 vanishes mod 2^64):
               l - 1 additive COTs with shortened messages.
``mux``        (b0 ^ b1) * x with x = x0 + x1: (b0^b1) x0 = b0 x0 + b1 (1 - 2 b0) x0 is an
               additive COT from P0 (correlation (1 - 2 b0) x0, P1 chooses b1), and
               symmetrically for x1 from P1: two additive COTs per element, 48 bytes.
``a2y``        P1's share enters a garbled adder through one COT per bit; P0's share
               needs no labels at all (see below); l - 1 AND gates.
``y2b``        free: the XOR shares are the labels' point-and-permute bits.
``b2y``        one COT per bit (``session.gc.input_shared``).
``y2a``        y2b then b2a.
``a2b``        a2y then y2b.

Garbler-private inputs without labels.  A bit a known only to the garbler needs no
transfer: both parties draw the same public random block R per wire from the
session's shared coins (``session.shared_prg()``); the evaluator's active label is
R and the garbler's zero-label is ``R ^ a * delta``, so the invariant (active =
zero ^ bit * delta) holds and the evaluator's label is the same for a = 0 and
a = 1.  Security (semi-honest): every table entry that depends on delta is a
known value combined with one query H(w ^ delta, i) ^ beta * delta for a label w
the evaluator knows, which is pseudorandom under the tweakable circular
correlation-robust hash of eprint 2019/074 as long as no (label, tweak) pair is
queried twice under one delta; the garbling tweaks are unique per (AND gate,
copy, half) within a session (tested).  The random R (rather than a constant)
keeps distinct wires distinct even if tweaks were ever reused across copies.
This saves 16 bytes per garbler input bit in every A2Y and comparison.  Such
wires may feed AND gates directly (the first gate of the carry chain does).
"""
from __future__ import annotations

import functools

import numpy as np

from .._ext.crypto import cond_xor_blocks
from ..arith.tensor import ArithTensor
from ..gc import CircuitBuilder, YaoTensor
from .boolean import BoolTensor, b2a_bits

__all__ = ["b2a_bits", "b2a", "mux", "a2y", "y2b", "b2y", "y2a", "a2b", "word_bits", "private_labels", "share_inputs",
           "adder_circuit", "carry_circuit"]

U64 = np.uint64
_WIDTHS_B2A = {}


def word_bits(share: np.ndarray, width: int) -> np.ndarray:
    """Bits 0..width-1 of uint64 words, LSB first: uint8[..., width]."""
    a = np.ascontiguousarray(share, dtype=U64)
    if a.dtype.byteorder == ">":                       # pragma: no cover - little-endian hosts only
        a = a.astype("<u8")
    bits = np.unpackbits(a.view(np.uint8).reshape(a.shape + (8,)), axis=-1, bitorder="little")
    return bits[..., :width]


def bits_word(bits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`word_bits`: uint8[..., w] -> uint64[...]."""
    w = bits.shape[-1]
    return (bits.astype(U64) << np.arange(w, dtype=U64)).sum(axis=-1, dtype=U64)


# ---------------------------------------------------------------------- bit x value

def b2a(b: BoolTensor, scale: int = 0) -> ArithTensor:
    """Arithmetic shares of XOR-shared words ``b`` (uint8[..., l], LSB first, l <= 64)
    at the given scale: l - 1 additive COTs with widths 63, 62, ..., 64 - (l - 1)."""
    s = b.session
    l = b.shape[-1] if b.ndim else 0
    if not 1 <= l <= 64:
        raise ValueError(f"b2a: words must have 1..64 bits, got {l}")
    bits = b.share.reshape(-1, l)
    n = bits.shape[0]
    own = bits_word(bits)
    k = min(l, 63)                                   # bit 63's product vanishes mod 2^64
    widths = np.tile(np.arange(63, 63 - k, -1, dtype=np.uint8), n)
    flat = bits[:, :k].reshape(-1).astype(U64)
    if s.role == 0:
        x = s.ot.send_acot(U64(0) - flat, bits=widths)     # correlation -b0_i mod 2^(63-i)
        prod = x
        sign = -1
    else:
        prod = s.ot.recv_acot(bits[:, :k].reshape(-1), bits=widths)
        sign = 1
    shifts = np.tile(np.arange(1, k + 1, dtype=U64), n)
    term = (prod << shifts).reshape(n, k).sum(axis=1, dtype=U64)
    share = own - term if sign < 0 else own + term
    return ArithTensor(s, share.reshape(b.shape[:-1]), scale)


def mux(b: BoolTensor, x: ArithTensor) -> ArithTensor:
    """``b * x`` (elementwise, b broadcast to x): two additive COTs per element."""
    s = x.session
    if b.session is not s:
        raise ValueError("mux: tensors from different sessions")
    bb = np.broadcast_to(b.share, x.shape).reshape(-1)
    xs = x.share.reshape(-1)
    mine_b = bb.astype(U64)
    c = np.where(bb.astype(bool), U64(0) - xs, xs)          # (1 - 2 b) x_own
    if s.role == 0:
        X = s.ot.send_acot(c)
        Y = s.ot.recv_acot(bb)
    else:
        Y = s.ot.recv_acot(bb)
        X = s.ot.send_acot(c)
    share = mine_b * xs - X + Y
    return ArithTensor(s, share.reshape(x.shape), x.scale)


# ---------------------------------------------------------------------- garbled circuits

@functools.lru_cache(maxsize=None)
def carry_circuit(width: int):
    """Carry out of a + b for two ``width``-bit inputs (``width`` AND gates; the first
    is constant-folded into a single AND)."""
    b = CircuitBuilder()
    x = b.input(width)
    y = b.input(width)
    b.output(b.carry_out(x, y))
    return b.build()


@functools.lru_cache(maxsize=None)
def adder_circuit(width: int):
    """a + b mod 2^width (width - 1 AND gates)."""
    b = CircuitBuilder()
    x = b.input(width)
    y = b.input(width)
    b.output(b.add(x, y))
    return b.build()


def private_labels(s, bits, garbler: int, shape) -> YaoTensor:
    """Labels for bits known to the garbler only, with no communication (see the module
    doc): per wire a public random block R from the shared coins; the evaluator's active
    label is R, the garbler's zero-label ``R ^ bit * delta``.  Collective: both parties
    call it in the same order (the evaluator passes ``bits=None``)."""
    delta = s.gc.delta(garbler)
    shape = tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    r = s.shared_prg().random_blocks(n).reshape(shape + (16,))
    if s.role == garbler:
        cond_xor_blocks(r, np.asarray(bits, np.uint8).reshape(-1), np.asarray(delta, np.uint8))
    return YaoTensor(r, garbler, s.role)


def share_inputs(x: ArithTensor, width: int, garbler: int):
    """Yao inputs (garbler's bits, evaluator's bits) of the low ``width`` bits of the
    shares, as (n, width) tensors: garbler's free, evaluator's one COT per bit."""
    s = x.session
    n = x.size
    bits = word_bits(x.share.reshape(-1), width)
    ev = 1 - garbler
    B = s.gc.input(bits if s.role == ev else None, owner=ev, shape=(n, width), garbler=garbler)
    A = private_labels(s, bits if s.role == garbler else None, garbler, (n, width))
    return A, B


def a2y(x: ArithTensor, width: int = 64, garbler: int = 0) -> YaoTensor:
    """Garbled labels of the low ``width`` bits of x (shape x.shape + (width,)):
    ``width`` COTs and ``width - 1`` AND gates per element."""
    s = x.session
    if not 1 <= width <= 64:
        raise ValueError("a2y: width must be in [1, 64]")
    A, B = share_inputs(x, width, garbler)
    (out,) = s.gc.run(adder_circuit(width), [A, B], batch=x.size)
    return out.reshape(x.shape + (width,))


def y2b(y: YaoTensor, session) -> BoolTensor:
    """XOR shares of garbled bits (free: the labels' lsbs)."""
    return BoolTensor(session, y.share_bits())


def b2y(b: BoolTensor, garbler: int = 0) -> YaoTensor:
    """Garbled labels of XOR-shared bits: one COT per bit."""
    return b.session.gc.input_shared(b.share, garbler=garbler)


def y2a(y: YaoTensor, session, scale: int = 0) -> ArithTensor:
    """Arithmetic shares of garbled words (last axis = bits, LSB first)."""
    return b2a(y2b(y, session), scale)


def a2b(x: ArithTensor, width: int = 64, garbler: int = 0) -> BoolTensor:
    """XOR shares of the low ``width`` bits of x (shape x.shape + (width,))."""
    return y2b(a2y(x, width, garbler), x.session)
