"""Garbled circuits: circuit IR and Bristol Fashion I/O (:class:`Circuit`), a
word-level circuit builder (:class:`CircuitBuilder`), half-gates garbling (Zahur,
Rosulek, Evans, eprint 2014/756) with the TCCR hash from fixed-key AES (Guo, Kumar,
Wang, Katz, eprint 2019/074), and Yao's two-party protocol.

Importing this package registers ``session.yao(...)`` (:func:`~ezprotocols.gc.yao.yao`)
and the engine ``session.gc`` (:class:`~ezprotocols.gc.yao.YaoEngine`).
"""
from ..session import register_engine, register_method

try:                      # the layer below: registers session.ot (COTs give the input labels)
    from .. import ot as _ot  # noqa: F401
except ImportError:       # pragma: no cover - YaoEngine reports it when used
    pass
from .builder import ONE, ZERO, CircuitBuilder
from .circuit import Circuit, bits_to_ints, ints_to_bits
from .yao import YaoEngine, YaoTensor, yao

register_engine("gc", YaoEngine)
register_method("yao", yao)

__all__ = ["Circuit", "CircuitBuilder", "ZERO", "ONE", "YaoTensor", "YaoEngine", "yao",
           "bits_to_ints", "ints_to_bits"]
