"""Garbled circuits: circuit IR and Bristol Fashion I/O (:class:`Circuit`), a
word-level circuit builder (:class:`CircuitBuilder`), half-gates garbling (Zahur,
Rosulek, Evans, eprint 2014/756) with the TCCR hash from fixed-key AES (Guo, Kumar,
Wang, Katz, eprint 2019/074), and Yao's two-party protocol.

The session's engine ``session.gc`` is a :class:`~ezprotocols.gc.yao.YaoEngine`;
``session.yao(...)`` runs :func:`~ezprotocols.gc.yao.yao`.
"""
from .builder import ONE, ZERO, CircuitBuilder
from .circuit import Circuit, bits_to_ints, ints_to_bits
from .yao import YaoEngine, YaoTensor, yao

__all__ = ["Circuit", "CircuitBuilder", "ZERO", "ONE", "YaoTensor", "YaoEngine", "yao",
           "bits_to_ints", "ints_to_bits"]
