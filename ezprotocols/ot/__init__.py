"""Oblivious transfer: base OT (Chou-Orlandi, eprint 2015/267, in Ed25519's prime-order
subgroup via libsodium (:mod:`.ec_base`, the default) or in the RFC 3526 3072-bit MODP
group with gmpy2 (:mod:`.base`)), the correlated-OT source interface
(:class:`~ezprotocols.ot.source.CotSource`, ``session.ot``), its IKNP implementation
with the ALSZ optimisations (eprint 2013/552): correlated OT with a global delta,
random OT, chosen-message OT and additive correlated OT over Z_2^w, and the Ferret
silent COT (:mod:`.ferret`, eprint 2020/924).
"""
from .base import base_ot_recv, base_ot_send
from .engine import OT, IknpSource
from .source import CotSource

__all__ = ["CotSource", "IknpSource", "OT", "base_ot_send", "base_ot_recv"]
