"""Former name of :mod:`ezprotocols.arith.ole` (Gilboa oblivious linear evaluation with
vector correlations; not VOLE in the silent-OT sense)."""
from .ole import OT_BYTES, TWEAK_DOMAIN, bits_of, ole_accumulate, ole_bytes, ole_ots  # noqa: F401

__all__ = ["ole_accumulate", "ole_bytes", "ole_ots", "OT_BYTES", "TWEAK_DOMAIN", "bits_of"]
