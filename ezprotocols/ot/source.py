"""The correlated-OT source interface (``session.ot``): :class:`CotSource`.

An implementation provides correlated OT with a global offset ``delta`` per
sending direction (``setup``, ``delta``, ``send_cot``, ``recv_cot``); the base
class derives every other flavour from it:

===================================  ==============================================  ==========================
sender                               receiver                                        derived from
===================================  ==============================================  ==========================
``q, delta = send_cot(n)``           ``t = recv_cot(bits)``: ``t = q ^ b*delta``     (the implementation)
``q, delta = send_rcot(n)``          ``bits, t = recv_rcot(n)`` (random bits)        cot, bits from the PRG
``m0, m1 = send_rot(n)``             ``mb = recv_rot(bits)``                         cot + TCCR hash
``send(m0, m1)``                     ``m = recv(bits, L)``                           cot + TCCR pad, 2nL bytes
``x = send_acot(c, bits=64)``        ``y = recv_acot(choice, bits=64)``:             cot + TCCR hash,
                                     ``y = x + b*c mod 2^bits``                      ceil(w/8) bytes per OT
===================================  ==============================================  ==========================

Blocks are ``uint8[n, 16]``, choice bits ``uint8[n]`` of 0/1.  ``delta`` has its
lowest bit set (the garbling layer uses it as its free-XOR offset).  Both parties
call matching methods in the same order with the same ``n``.  An implementation
may override any flavour with a fused kernel (IKNP does all of them,
:class:`~ezprotocols.ot.engine.IknpSource`); a silent-OT source whose native output
is random COT overrides ``send_rcot``/``recv_rcot`` and derandomises for
``send_cot``/``recv_cot``.  ``cot_bytes`` is the amortised bytes per COT, used by
cost formulas.

Derived flavours (the hashing of Guo, Kumar, Wang, Katz, eprint 2019/074, and the
random-to-chosen step of Asharov et al., eprint 2013/552): ``m_b = H(q ^ b*delta,
i)`` with the tweakable correlation-robust hash ``H`` of fixed-key AES and a tweak
(domain 0x53, direction, OT index) used once per offset.  What each party sees:
the receiver gets ``t = q ^ b*delta`` (uniform given its bits) and, for chosen and
additive OT, ``m_{1-b}`` masked by ``H(t ^ delta)``, pseudorandom without ``delta``;
the sender sees only what the COT protocol shows it.  Both views are simulatable
from the party's own input and output.

>>> import numpy as np
>>> from ezprotocols.runner import run_pair
>>> from ezprotocols.ot.source import CotSource
>>> class Counting(CotSource):
...     '''A toy source: the session's IKNP, counting the COTs it hands out.'''
...     def __init__(self, session):
...         super().__init__(session)
...         self.inner, self.count = session.engine("ot", "iknp"), 0
...     def setup(self):
...         self.inner.setup()
...     @property
...     def delta(self):
...         return self.inner.delta
...     def send_cot(self, n, *, out=None):
...         self.count += n
...         return self.inner.send_cot(n, out=out)
...     def recv_cot(self, bits, *, out=None):
...         self.count += len(bits)
...         return self.inner.recv_cot(bits, out=out)
>>> from ezprotocols import backends
>>> backends.register("ot", "counting", Counting)
>>> m0, m1 = np.zeros((3, 4), np.uint8), np.full((3, 4), 7, np.uint8)
>>> def p0(s):
...     s.ot.send(m0, m1)
...     x = s.ot.send_acot(np.array([5, 6], np.uint64))
...     return s.ot.count, x
>>> def p1(s):
...     m = s.ot.recv(np.array([0, 1, 1], np.uint8), 4)
...     y = s.ot.recv_acot(np.array([1, 0], np.uint8))
...     return s.ot.count, m, y
>>> (c0, x), (c1, m, y) = run_pair(p0, p1, ot="counting")
>>> c0, c1, m[:, 0].tolist(), (y - x).tolist()
(5, 5, [0, 7, 7], [5, 0])
>>> del backends.KINDS["ot"]["counting"]
"""
from __future__ import annotations

import numpy as np

from .._ext import ot as _k
from .checks import check_c, check_len, check_msgs, check_n, check_widths, out_blocks

__all__ = ["CotSource", "TWEAK_DOMAIN"]

TWEAK_DOMAIN = 0x53          # 'S': hashing of the derived flavours (IKNP's own kernels use 0x4F)
CHUNK = 1 << 16              # OTs per correction message of the derived chosen/additive OT


class CotSource:
    """Base class of the correlated-OT sources; see the module docstring.

    Subclasses implement :meth:`setup`, :attr:`delta`, :meth:`send_cot` and
    :meth:`recv_cot`, and may override any derived flavour."""

    #: amortised bytes per correlated OT (IKNP: the 16-byte u-matrix column)
    cot_bytes = 16
    #: top byte of the derived flavours' hash tweaks (a source sharing its delta with
    #: another one, as Ferret does with its bootstrapping IKNP, picks its own)
    tweak_domain = TWEAK_DOMAIN

    def __init__(self, session):
        self.session = session

    # ------------------------------------------------------------------ the implementation
    def setup(self) -> None:
        """Run whatever one-time set-up both directions need now (both parties call it
        at the same point); otherwise it happens on first use."""
        raise NotImplementedError

    def prefill(self, n: int, senders=(0, 1)) -> None:
        """Collective (offline): have ``n`` COTs ready in the directions whose sender is
        in ``senders``, so that the next ``n`` are drawn without a message of their own.
        A no-op for sources that make COTs on demand (IKNP's extension message travels
        with the request anyway)."""

    @property
    def delta(self) -> np.ndarray:
        """This party's sender offset: ``uint8[16]``, read-only, lowest bit 1."""
        raise NotImplementedError

    def send_cot(self, n: int, *, out: np.ndarray | None = None):
        """``n`` correlated OTs as sender: ``(q, delta)``, ``q`` uint8[n, 16]."""
        raise NotImplementedError

    def recv_cot(self, bits, *, out: np.ndarray | None = None) -> np.ndarray:
        """Correlated OTs as receiver: ``t = q ^ b*delta`` (uint8[n, 16])."""
        raise NotImplementedError

    # ------------------------------------------------------------------ derived
    def _derived_send_cot(self, n: int):
        """The COTs a derived flavour consumes and discards (``send_cot`` by default; an
        implementation may return a reused buffer, valid until its next call)."""
        return self.send_cot(n)

    def _derived_recv_cot(self, bits) -> np.ndarray:
        """Receiver side of :meth:`_derived_send_cot`."""
        return self.recv_cot(bits)

    def _tweaks(self, sender: int, n: int):
        """(hi, first lo) of ``n`` fresh tweaks for OTs sent by ``sender``, from the
        session-wide counter of (``tweak_domain``, ``sender``) (:meth:`Session.take_tweaks
        <ezprotocols.session.Session.take_tweaks>`): two sources of one session that
        share a delta and a domain (two wrappers around the session's IKNP) still never
        reuse a tweak."""
        lo = self.session.take_tweaks(self.tweak_domain, sender, n)
        return (self.tweak_domain << 56) | (sender << 48), lo

    def send_rcot(self, n: int):
        """Random-choice COT as sender: ``(q, delta)`` (the receiver's bits are its own random ones)."""
        return self.send_cot(n)

    def recv_rcot(self, n: int):
        """Random-choice COT as receiver: ``(bits, t)`` with uniformly random ``bits``
        (uint8[n] of 0/1, from this party's PRG) and ``t = q ^ bits*delta``."""
        n = check_n(n)
        bits = (np.frombuffer(self.session.prg.random_bytes(n), np.uint8) & 1).astype(np.uint8)
        return bits, self.recv_cot(bits)

    def send_rot(self, n: int, *, out=None):
        """``n`` random OTs as sender: ``(m0, m1)`` with ``m_b = H(q ^ b*delta)``."""
        n = check_n(n)
        m0, m1 = (np.empty((n, 16), np.uint8), np.empty((n, 16), np.uint8)) if out is None else \
            tuple(out_blocks(o, n, "out") for o in out)
        q, delta = self._derived_send_cot(n)
        hi, lo = self._tweaks(self.session.role, n)
        _k.hash2_rows(q, np.asarray(delta, np.uint8), hi, lo, m0, m1)
        return m0, m1

    def recv_rot(self, bits, *, out=None) -> np.ndarray:
        """Random OTs as receiver: ``m_b`` for each choice bit."""
        b, _ = _k.pack_bits(bits)
        mb = out_blocks(out, b.shape[0], "out")
        t = self._derived_recv_cot(b)
        hi, lo = self._tweaks(self.session.peer, b.shape[0])
        _k.tccr_rows(t, None, hi, lo, mb)
        return mb

    def send(self, m0, m1) -> None:
        """Chosen-message OT as sender: ``m0``, ``m1`` uint8[n, L]; sends ``2 n L`` bytes."""
        m0, m1 = check_msgs(m0, m1)
        n, L = m0.shape
        q, delta = self._derived_send_cot(n)
        hi, lo = self._tweaks(self.session.role, n)
        if n == 0 or L == 0:
            return
        ch, step = self.session.channel, f"cot.s{self.session.role}.y"
        d = np.asarray(delta, np.uint8)
        for off in range(0, n, CHUNK):
            m = min(CHUNK, n - off)
            y = np.empty((2, m, L), np.uint8)
            _k.chosen_send(q[off:off + m], d, hi, lo + off, m0[off:off + m], m1[off:off + m], y)
            ch.send(step, y)

    def recv(self, bits, L: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """Chosen-message OT as receiver: the chosen rows, uint8[n, L]."""
        b, _ = _k.pack_bits(bits)
        n, L = b.shape[0], check_len(L)
        if out is None:
            out = np.empty((n, L), np.uint8)
        elif not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != (n, L) \
                or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"out must be a writeable C-contiguous uint8[{n}, {L}] array")
        t = self._derived_recv_cot(b)
        hi, lo = self._tweaks(self.session.peer, n)
        if n == 0 or L == 0:
            return out
        ch, step = self.session.channel, f"cot.s{self.session.peer}.y"
        for off in range(0, n, CHUNK):
            m = min(CHUNK, n - off)
            y = ch.recv_array(step, np.uint8, (2, m, L))
            _k.chosen_recv(t[off:off + m], b[off:off + m], hi, lo + off, y, out[off:off + m])
        return out

    def send_acot(self, c, bits=64) -> np.ndarray:
        """Additive correlated OT over ``Z_2^w`` as sender: returns ``x`` (uint64[n]); the
        receiver gets ``y = x + b*c mod 2^w``.  ``bits``: w in [1, 64] or uint8[n] widths."""
        c = check_c(c)
        n = c.shape[0]
        w, widths, _, _ = check_widths(bits, n)
        q, delta = self._derived_send_cot(n)
        hi, lo = self._tweaks(self.session.role, n)
        x = np.empty(n, np.uint64)
        ch, step = self.session.channel, f"cot.s{self.session.role}.d"
        d = np.asarray(delta, np.uint8)
        for off in range(0, n, CHUNK):
            m = min(CHUNK, n - off)
            wc = None if widths is None else widths[off:off + m]
            buf = np.empty(_k.acot_nbytes(m, wc, w), np.uint8)
            _k.acot_send(q[off:off + m], d, hi, lo + off, c[off:off + m], wc, w, x[off:off + m], buf)
            ch.send(step, buf)
        return x

    def recv_acot(self, choice_bits, bits=64) -> np.ndarray:
        """Additive correlated OT as receiver: ``y = x + b*c mod 2^w`` (uint64[n])."""
        b, _ = _k.pack_bits(choice_bits)
        n = b.shape[0]
        w, widths, _, _ = check_widths(bits, n)
        t = self._derived_recv_cot(b)
        hi, lo = self._tweaks(self.session.peer, n)
        y = np.empty(n, np.uint64)
        ch, step = self.session.channel, f"cot.s{self.session.peer}.d"
        for off in range(0, n, CHUNK):
            m = min(CHUNK, n - off)
            wc = None if widths is None else widths[off:off + m]
            d = ch.recv_array(step, np.uint8, (_k.acot_nbytes(m, wc, w),))
            _k.acot_recv(t[off:off + m], b[off:off + m], hi, lo + off, wc, w, d, y[off:off + m])
        return y

    def __repr__(self):
        return f"<{type(self).__name__} P{self.session.role}>"
