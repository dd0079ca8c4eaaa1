"""Per-session state of the arithmetic layer (``session.arith``).

``session.arith.trunc`` selects the default truncation of fixed-point
products: ``"local"`` (SecureML local truncation, no communication; the
default), ``"faithful"`` (exact ``floor(x / 2^f)`` through OT for ``|x| < 2^62``),
``"exact"`` (the same on the whole ring) or ``"onebit"`` (Cheetah's, at most one
unit low, cheaper; see
:mod:`ezprotocols.arith.trunc`).  ``session.arith.ot_bytes`` is the bytes per
OT the cost model assumes: the OT source's ``cot_bytes`` (IKNP: 16) unless set.
"""
from __future__ import annotations

TRUNC_METHODS = ("local", "faithful", "onebit", "exact")


class ArithContext:
    def __init__(self, session):
        self.session = session
        self._trunc = "local"
        self._tweak = 0
        self._ot_bytes: int | None = None

    @property
    def ot_bytes(self) -> int:
        return self.session.ot.cot_bytes if self._ot_bytes is None else self._ot_bytes

    @ot_bytes.setter
    def ot_bytes(self, value: int) -> None:
        self._ot_bytes = int(value)

    @property
    def trunc(self) -> str:
        return self._trunc

    @trunc.setter
    def trunc(self, method: str) -> None:
        if method not in TRUNC_METHODS:
            raise ValueError(f"truncation method must be one of {TRUNC_METHODS}, not {method!r}")
        self._trunc = method

    def next_tweak(self) -> int:
        """A per-session counter (both parties advance it in the same protocol steps)."""
        self._tweak += 1
        return self._tweak

    def __repr__(self):
        return f"<ArithContext trunc={self._trunc!r} triples={self.session.triples_source!r}>"
