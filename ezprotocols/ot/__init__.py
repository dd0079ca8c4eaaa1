"""Oblivious transfer: base OT (Chou-Orlandi, eprint 2015/267, in the RFC 3526
3072-bit MODP group with gmpy2), the correlated-OT source interface
(:class:`~ezprotocols.ot.source.CotSource`, ``session.ot``) and its IKNP
implementation with the ALSZ optimisations (eprint 2013/552): correlated OT with
a global delta, random OT, chosen-message OT and additive correlated OT over Z_2^w.
"""
from .base import base_ot_recv, base_ot_send
from .engine import OT, IknpSource
from .source import CotSource

__all__ = ["CotSource", "IknpSource", "OT", "base_ot_send", "base_ot_recv"]
