"""Oblivious transfer: base OT (Chou-Orlandi, eprint 2015/267, in Ed25519 via libsodium
(:mod:`.ec_base`, the default) or in the RFC 3526
3072-bit MODP group with gmpy2) and IKNP OT extension with the ALSZ optimisations
(eprint 2013/552): correlated OT with a global delta, random OT, chosen-message OT
and additive correlated OT over Z_2^w.

Importing this package registers the session engine: ``session.ot`` is an
:class:`~ezprotocols.ot.engine.OT` (see there for the API).
"""
from ..session import register_engine
from .base import base_ot_recv, base_ot_send
from .engine import OT

register_engine("ot", OT)

__all__ = ["OT", "base_ot_send", "base_ot_recv"]
