"""IKNP as the session's correlated-OT source (``Session(..., ot="iknp")``, the
default): :class:`IknpSource`, an implementation of :class:`~ezprotocols.ot.source.CotSource`
that overrides every flavour with the fused kernels of :mod:`ezprotocols.ot.iknp`.

One IKNP extension per direction (this party as sender, this party as receiver),
each set up lazily from 128 base OTs (Chou-Orlandi in Ed25519's prime-order subgroup,
:mod:`ezprotocols.ot.ec_base`; or in the MODP-3072 group, :mod:`ezprotocols.ot.base`,
with ``base_ot="modp"`` / ``Session(..., ot="iknp-modp")``) the first time
it is used, then extended in batches of any size.  Both parties must call
matching methods in the same order with the same ``n`` (the receiver's ``bits``
defines ``n``; the sender checks it and raises :class:`ProtocolError` on any
mismatch):

===========================================  ==============================================
sender                                       receiver
===========================================  ==============================================
``q, delta = s.ot.send_cot(n)``              ``t = s.ot.recv_cot(bits)``:  ``t = q ^ b*delta``
``m0, m1 = s.ot.send_rot(n)``                ``mb = s.ot.recv_rot(bits)``
``s.ot.send(m0, m1)``                        ``m = s.ot.recv(bits, L)``
``x = s.ot.send_acot(c, bits=64)``           ``y = s.ot.recv_acot(choice_bits, bits=64)``:
                                             ``y = x + b*c mod 2^bits``
===========================================  ==============================================

Blocks are ``uint8[n, 16]``, choice bits ``uint8[n]`` holding 0/1 (anything else
raises ValueError).  Arguments are checked before anything is sent (or any base OT
is run), so misuse raises on the calling side without touching the channel.  ``delta`` (``uint8[16]``, also ``s.ot.delta``) is this party's
sender offset, fixed for the session, with bit 0 of byte 0 set: the garbling layer
uses it as its free-XOR offset, so an evaluator input bit costs one COT (garbler:
``send_cot`` gives the zero labels; evaluator: ``recv_cot(bits)`` its active labels).

>>> import numpy as np
>>> from ezprotocols.runner import run_pair
>>> bits = np.array([0, 1, 1], np.uint8)
>>> (q, d), t = run_pair(lambda s: s.ot.send_cot(3), lambda s: s.ot.recv_cot(bits))
>>> bool((t == q ^ (bits[:, None] * d)).all()), int(d[0] & 1)
(True, 1)
"""
from __future__ import annotations

import numpy as np

from . import base as _modp
from . import ec_base as _ec
from .iknp import KAPPA, IknpReceiver, IknpSender, random_s
from .source import CotSource

__all__ = ["IknpSource", "IknpModpSource", "OT", "BASE_OT_GROUPS", "DEFAULT_BASE_OT", "base_ot_group"]

#: Base-OT groups: "ec" (Chou-Orlandi in Ed25519's prime-order subgroup, libsodium via
#: PyNaCl; the default) and "modp" (the same protocol in the RFC 3526 3072-bit group).
BASE_OT_GROUPS = {"ec": _ec, "modp": _modp}
DEFAULT_BASE_OT = "ec"


def base_ot_group(name: str | None = None):
    """The base-OT module for ``name`` (None: :data:`DEFAULT_BASE_OT`)."""
    name = DEFAULT_BASE_OT if name is None else name
    if name not in BASE_OT_GROUPS:
        raise ValueError(f"base_ot must be one of {sorted(BASE_OT_GROUPS)}, not {name!r}")
    return BASE_OT_GROUPS[name]


class IknpSource(CotSource):
    """IKNP OT extension, one per direction (``session.ot`` by default)."""

    cot_bytes = 16

    def __init__(self, session, *, base_ot: str | None = None):
        """``base_ot``: "ec" (default) or "modp" (see :data:`BASE_OT_GROUPS`); when None, the
        session's ``base_ot`` attribute if it has one, else :data:`DEFAULT_BASE_OT`."""
        super().__init__(session)
        self.base_ot = base_ot if base_ot is not None else getattr(session, "base_ot", None) or DEFAULT_BASE_OT
        self._g = base_ot_group(self.base_ot)
        self._sender: IknpSender | None = None
        self._receiver: IknpReceiver | None = None

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Run the base OTs of both directions now (both parties call it at the same
        point; otherwise each direction is set up lazily on first use).  The two
        directions run interleaved: two message exchanges in all."""
        need_send, need_recv = self._sender is None, self._receiver is None
        if not (need_send or need_recv):
            return
        s = self.session
        me, peer = s.role, s.peer
        ch = s.channel
        with s.phase("ot_base"):
            bs = br = None
            if need_recv:                       # IKNP receiver = base-OT sender
                bs = self._g.BaseOTSender(KAPPA, f"ot.s{peer}.base")
                ch.send(f"ot.s{peer}.base.A", bs.first_message())
            if need_send:                       # IKNP sender = base-OT receiver with choices s
                sbits = random_s()
                br = self._g.BaseOTReceiver(sbits, f"ot.s{me}.base")
                A = ch.recv_array(f"ot.s{me}.base.A", np.uint8, (self._g.ELEMENT_BYTES,))
                ch.send(f"ot.s{me}.base.B", br.respond(A))
            if need_recv:
                B = ch.recv_array(f"ot.s{peer}.base.B", np.uint8, (KAPPA, self._g.ELEMENT_BYTES))
                k0, k1 = bs.finish(B)
                self._receiver = IknpReceiver(k0, k1, sender_role=peer)
            if need_send:
                self._sender = IknpSender(sbits, br.finish(), sender_role=me)

    def _tx(self) -> IknpSender:
        if self._sender is None:
            s = self.session
            with s.phase("ot_base"):
                sbits = random_s()
                br = self._g.BaseOTReceiver(sbits, f"ot.s{s.role}.base")
                A = s.channel.recv_array(f"ot.s{s.role}.base.A", np.uint8, (self._g.ELEMENT_BYTES,))
                s.channel.send(f"ot.s{s.role}.base.B", br.respond(A))
                self._sender = IknpSender(sbits, br.finish(), sender_role=s.role)
        return self._sender

    def _rx(self) -> IknpReceiver:
        if self._receiver is None:
            s = self.session
            with s.phase("ot_base"):
                bs = self._g.BaseOTSender(KAPPA, f"ot.s{s.peer}.base")
                s.channel.send(f"ot.s{s.peer}.base.A", bs.first_message())
                B = s.channel.recv_array(f"ot.s{s.peer}.base.B", np.uint8, (KAPPA, self._g.ELEMENT_BYTES))
                k0, k1 = bs.finish(B)
                self._receiver = IknpReceiver(k0, k1, sender_role=s.peer)
        return self._receiver

    @property
    def delta(self) -> np.ndarray:
        """This party's sender offset (``uint8[16]``, read-only, lowest bit 1); sets up the
        sending direction if needed (the peer must then be in a receiving call or in
        ``setup``)."""
        return self._tx().delta

    # ------------------------------------------------------------------ correlated
    def send_cot(self, n: int, *, out: np.ndarray | None = None):
        """``n`` correlated OTs as sender: returns ``(q, delta)``, ``q`` uint8[n, 16]; the
        receiver gets ``q ^ b*delta``.  ``out``: optional preallocated uint8[n, 16] for q."""
        args = IknpSender.prep_cot(n, out)
        tx = self._tx()
        return tx.cot(self.session.channel, *args), tx.delta

    def recv_cot(self, bits, *, out: np.ndarray | None = None) -> np.ndarray:
        """Correlated OTs as receiver with choice ``bits`` (uint8[n] of 0/1): returns
        ``t = q ^ b*delta`` (uint8[n, 16]).  ``out``: optional preallocated result."""
        args = IknpReceiver.prep_cot(bits, out)
        return self._rx().cot(self.session.channel, *args)

    # ------------------------------------------------------------------ random
    def send_rot(self, n: int, *, out=None):
        """``n`` random OTs as sender: ``(m0, m1)``, uint8[n, 16] each, ``m_b = TCCR(q ^ b*delta,
        index)``.  ``out``: optional pair of preallocated uint8[n, 16] arrays."""
        args = IknpSender.prep_rot(n, out)
        return self._tx().rot(self.session.channel, *args)

    def recv_rot(self, bits, *, out=None) -> np.ndarray:
        """Random OTs as receiver: ``m_b`` (uint8[n, 16]) for each choice bit."""
        args = IknpReceiver.prep_rot(bits, out)
        return self._rx().rot(self.session.channel, *args)

    # ------------------------------------------------------------------ chosen message
    def send(self, m0, m1) -> None:
        """Chosen-message OT as sender: ``m0``, ``m1`` are uint8[n, L] (any L >= 0)."""
        args = IknpSender.prep_chosen(m0, m1)
        self._tx().chosen(self.session.channel, *args)

    def recv(self, bits, L: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """Chosen-message OT as receiver: returns ``m_{b_j}`` rows, uint8[n, L] (or fills ``out``)."""
        args = IknpReceiver.prep_chosen(bits, L, out)
        return self._rx().chosen(self.session.channel, *args)

    # ------------------------------------------------------------------ additive
    def send_acot(self, c, bits=64) -> np.ndarray:
        """Additive correlated OT over Z_2^w as sender.

        ``c``: integer array ``[n]`` (taken mod 2^64; signed values wrap).  ``bits``:
        the ring width w, an int in [1, 64] or a uint8[n] array of per-OT widths.
        Returns ``x`` (uint64[n], ``x_j < 2^{w_j}``, pseudorandom); the receiver gets
        ``y = x + b*c mod 2^{w_j}``.  OT j costs ``ceil(w_j / 8)`` bytes from sender to
        receiver on top of the 16-byte COT: with widths ``64 - i`` for the i-th OT of a
        Gilboa product the high, useless bits are never sent.  ``bits`` must be the
        same on both sides (the header carries it, or a CRC-32 of the widths).
        """
        args = IknpSender.prep_acot(c, bits)
        return self._tx().acot(self.session.channel, *args)

    def recv_acot(self, choice_bits, bits=64) -> np.ndarray:
        """Additive correlated OT as receiver: ``y = x + b*c mod 2^{w_j}`` (uint64[n]).
        ``choice_bits``: uint8[n] of 0/1; ``bits``: width(s), as in :meth:`send_acot`."""
        args = IknpReceiver.prep_acot(choice_bits, bits)
        return self._rx().acot(self.session.channel, *args)

    def __repr__(self):
        return (f"<IknpSource P{self.session.role}: sender {'ready' if self._sender else 'not set up'}, "
                f"receiver {'ready' if self._receiver else 'not set up'}>")


#: the former name of :class:`IknpSource`
OT = IknpSource


class IknpModpSource(IknpSource):
    """IKNP with the MODP-3072 base OT (``Session(..., ot="iknp-modp")``)."""

    def __init__(self, session):
        super().__init__(session, base_ot="modp")
