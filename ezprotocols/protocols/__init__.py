"""Hybrid protocols on arithmetic shares: conversions between arithmetic, boolean and
Yao sharings (ABY, Demmler, Schneider, Zohner, NDSS 2015), comparison, ReLU,
maximum, argmax and max pooling.

Each operation picks the cheapest construction we have: only the sign bit leaves
a garbled circuit (half-gates, eprint 2014/756; P1's share bits enter through
IKNP correlated OT, P0's need no labels), and selection is done with additive
correlated OT (Gilboa multiplication).  ``python -m ezprotocols.costs`` prints the
cost per element of every operation, measured by running it.

Importing this package also gives :class:`~ezprotocols.arith.ArithTensor` the
comparison operators ``x > y``, ``x < y``, ``x >= y``, ``x <= y`` (XOR-shared bits,
:class:`BoolTensor`; ``.to_arith()`` gives 0/1 arithmetic shares).
"""
from ..arith.tensor import ArithTensor
from ..session import Session
from .boolean import BoolTensor
from .comparison import _ge, _gt, _le, _lt, compare, drelu, ltz, msb, relu
from .convert import a2b, a2y, b2a, b2a_bits, b2y, mux, y2a, y2b
from .maxtree import argmax, max, maxpool2d  # noqa: A004

# comparison operators on arithmetic tensors live here, one layer above ArithTensor
ArithTensor.__gt__ = _gt
ArithTensor.__lt__ = _lt
ArithTensor.__ge__ = _ge
ArithTensor.__le__ = _le

def setup(s, garbler: int = 0) -> None:
    """One-time set-up of what the hybrid protocols use, so that later calls cost only
    their own messages (both parties call it at the same point): shared coins, the
    base OTs of both OT directions, and the garbler's free-XOR offset."""
    s.shared_prg()
    s.ot.setup()
    s.gc.delta(garbler)


# session.reveal (registered by the arithmetic layer) also opens XOR-shared bits
_arith_reveal = Session.reveal


def _reveal(s, t, to=None, raw: bool = False):
    if isinstance(t, BoolTensor):
        return t.reveal(to)
    return _arith_reveal(s, t, to=to, raw=raw)


_reveal.__doc__ = (_arith_reveal.__doc__ or "") + "\n\nA :class:`BoolTensor` opens to its bits (uint8 0/1)."
Session.reveal = _reveal

__all__ = ["setup", "BoolTensor", "msb", "ltz", "drelu", "relu", "compare", "max", "argmax", "maxpool2d",
           "mux", "a2y", "y2a", "a2b", "b2a", "b2a_bits", "b2y", "y2b"]
