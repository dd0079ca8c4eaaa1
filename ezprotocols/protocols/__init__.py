"""Hybrid protocols on arithmetic shares: conversions between arithmetic, boolean and
Yao sharings (ABY, Demmler, Schneider, Zohner, NDSS 2015), comparison, ReLU,
maximum, argmax and max pooling.

Each operation picks the cheapest construction we have: only the sign bit leaves
the comparison protocol (``s.compare``, :mod:`.sign`: by default a garbled carry
circuit, half-gates, eprint 2014/756; P1's share bits enter through IKNP
correlated OT, P0's need no labels), and selection is done with additive
correlated OT (Gilboa multiplication).  ``python -m ezprotocols.costs`` prints the
cost per element of every operation, measured by running it.

:class:`~ezprotocols.arith.ArithTensor` has the comparison operators ``x > y``,
``x < y``, ``x >= y``, ``x <= y`` (XOR-shared bits, :class:`BoolTensor`;
``.to_arith()`` gives 0/1 arithmetic shares), built on :func:`compare`.
"""
from .boolean import BoolTensor, and_bits, b2a_bits, bit_triples, millionaire_gt
from .comparison import compare, drelu, ltz, msb, relu
from .convert import a2b, a2y, b2a, b2y, mux, y2a, y2b
from .maxtree import argmax, max, maxpool2d  # noqa: A004
from .sign import CompareEngine, GcCompare


def setup(s, garbler: int = 0) -> None:
    """One-time set-up of what the hybrid protocols use, so that later calls cost only
    their own messages (both parties call it at the same point): shared coins, the
    base OTs of both OT directions, the garbler's free-XOR offset, and the comparison
    engine's own set-up."""
    s.shared_prg()
    s.ot.setup()
    s.gc.delta(garbler)
    s.compare.setup()


__all__ = ["setup", "BoolTensor", "CompareEngine", "GcCompare", "msb", "ltz", "drelu", "relu", "compare", "max",
           "argmax", "maxpool2d", "mux", "a2y", "y2a", "a2b", "b2a", "b2a_bits", "b2y", "y2b", "bit_triples",
           "and_bits", "millionaire_gt"]
