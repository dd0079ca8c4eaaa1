"""The comparison interface (``session.compare``): XOR shares of the sign bit of
additively shared values, in one batched protocol run.  ReLU, DReLU, comparison,
max, argmax and max pooling (:mod:`.comparison`, :mod:`.maxtree`) are written once
on top of :meth:`CompareEngine.msb` and the OT multiplexer.

:class:`GcCompare` (``"gc"``; the default is ``"ot"``, :mod:`.otcmp`): the most significant bit of
``x = x0 + x1 mod 2^l`` is ``x0[l-1] ^ x1[l-1] ^ carry(x0[0:l-1] + x1[0:l-1])``;
only the carry goes through a garbled circuit (half-gates, eprint 2014/756;
``l - 1`` AND gates), the evaluator's ``l - 1`` low bits through one correlated
OT each, the garbler's bits without any transfer (shared-coin labels, see
:mod:`.convert`).  The carry leaves the circuit as XOR shares (label lsbs) and
each party folds in its own top bit.  What each party sees: the garbler only its
COT outputs (the evaluator's bits are hidden by OT); the evaluator the garbled
tables and its active labels, pseudorandom under the circular correlation-robust
hash of eprint 2019/074; neither sees an output in the clear, only its XOR share.

>>> import numpy as np
>>> from ezprotocols.runner import run_pair
>>> x = np.array([5, 2**64 - 3, 0], np.uint64)            # 5, -3, 0
>>> r = np.array([11, 22, 33], np.uint64)                   # x = (x - r) + r
>>> b0, b1 = run_pair(lambda s: s.compare.msb(x - r, 64), lambda s: s.compare.msb(r, 64))
>>> (b0 ^ b1).tolist()
[0, 1, 0]
"""
from __future__ import annotations

import numpy as np

from ..arith.tensor import ArithTensor
from .convert import carry_circuit, share_inputs

__all__ = ["CompareEngine", "GcCompare", "check_bits", "CHUNK"]

CHUNK = 1 << 13                # elements per garbled batch: label arrays stay ~8 MiB and are reused


def check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= 64:
        raise ValueError(f"bits must be an int in [1, 64], got {bits!r}")
    return int(bits)


class CompareEngine:
    """Interface of the comparison engines (``Session(..., compare=name)``)."""

    def __init__(self, session):
        self.session = session

    def setup(self) -> None:
        """One-time set-up (base OTs, keys) now rather than on first use."""

    def msb(self, share: np.ndarray, bits: int) -> np.ndarray:
        """XOR shares (``uint8``, same shape as ``share``) of bit ``bits - 1`` of
        ``x mod 2^bits``, where ``x`` is the sum of both parties' ``share`` (``uint64``,
        any shape).  Collective; one batched run for the whole array."""
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} P{self.session.role}>"


class GcCompare(CompareEngine):
    """Sign bit through a garbled carry circuit (``"gc"``); see the module docstring.
    Costs per element: ``bits - 1`` COTs and AND gates.  ``garbler``: the party that
    garbles (default P0).  ``fused_stages``: the network executor runs whole non-linear
    layers as single circuits with this engine (:mod:`.gcstage`, constant rounds)."""

    fused_stages = True

    def setup(self) -> None:
        s = self.session
        s.shared_prg()
        s.ot.setup()
        s.gc.delta(0)

    def msb(self, share, bits, garbler: int = 0):
        s = self.session
        l = check_bits(bits)
        share = np.asarray(share, dtype=np.uint64)
        flat = share.reshape(-1)
        n = flat.size
        top = ((flat >> np.uint64(l - 1)) & np.uint64(1)).astype(np.uint8)
        if l == 1 or n == 0:
            return top.reshape(share.shape)
        out = np.empty(n, np.uint8)
        circ = carry_circuit(l - 1)
        with s.phase("msb"):
            for off in range(0, n, CHUNK):
                part = ArithTensor(s, flat[off:off + CHUNK], 0)
                A, B = share_inputs(part, l - 1, garbler)
                (carry,) = s.gc.run(circ, [A, B], batch=part.size)
                out[off:off + part.size] = carry.share_bits()[:, 0]
        return (out ^ top).reshape(share.shape)
