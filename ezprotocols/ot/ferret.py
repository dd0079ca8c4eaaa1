"""Ferret silent correlated OT (Yang, Weng, Lan, Zhang, Wang, "Ferret: Fast Extension for
coRRElated oT with small communication", CCS 2020, eprint 2020/924), semi-honest
version, as a correlated-OT source with the public methods of ``session.ot``.

Construction (one instance per direction; the *sender* holds ``delta``):

* **Bootstrap**, once: IKNP (:mod:`.iknp`, base OT from :mod:`.ec_base`) gives
  ``k + t*h`` COTs of the setup parameters under the IKNP sender's ``delta``
  (which therefore has bit 0 set and is Ferret's ``delta``).
* **Iteration** with parameters ``(n, k, t)``, bin size ``N = n/t = 2^h``, on a
  reserved vector of ``k + t*h`` COTs:

  1. multi-point COT with regular noise: ``t`` single-point COTs, one per bin of
     ``N`` positions (eprint 2019/1159, Fig. 4 construction with the "one-out-of-N
     from log N COTs" punctured PRF): the sender expands a GGM tree per bin from a
     fresh seed (length-doubling PRG ``G(s) = (AES_L(s) ^ s, AES_R(s) ^ s)``, fixed
     public keys), the receiver, with a uniform puncture point ``alpha`` in each bin,
     learns the XOR of the level-``l`` children on the side off its path through one
     reserved COT per level (it sends ``d = r ^ not(alpha_l)`` to derandomise the
     COT's random choice bit ``r``; the sender answers ``K0 ^ H(q ^ d delta)``,
     ``K1 ^ H(q ^ not(d) delta)`` with ``H`` the tweakable CCR hash of eprint
     2019/074) and finally ``c = delta ^ XOR of the leaves``, which gives it
     ``leaf_alpha ^ delta``.  Result: the sender's ``v`` (n blocks), the receiver's
     ``w = v ^ e delta`` with ``e`` the regular-noise vector (one 1 per bin).
  2. primal LPN: output ``j`` is ``v_j ^ XOR_{i in row j} base_i`` (sender) and
     ``w_j ^ XOR_{i in row j} base'_i`` (receiver), where row ``j`` of the public
     matrix has ``d = 10`` column indices drawn by AES-CTR under a public seed.
     The receiver's choice bits are ``e + A u`` (u its ``k`` reserved choice bits):
     pseudorandom under LPN with regular noise.
  3. the first ``k' + t'h'`` outputs are reserved for the next iteration; the rest
     are handed out.

* **Form of the output**: every COT is kept with bit 0 of the sender's block cleared,
  so the receiver's block carries its choice bit in bit 0 (``delta`` has bit 0 set).
  Clearing is free: the receiver knows ``lsb(q) = lsb(t) ^ b`` anyway.

Parameters (LPN with regular noise, 128-bit security): Ferret's Table 2 (eprint
2020/924, parameter sets for the primal-LPN iteration and its bootstrapping
iteration):

================  ============  ========  =======  ======  ===========================
set               n             k         t        N=n/t   reserve k + t log2 N
================  ============  ========  =======  ======  ===========================
main iteration    10,805,248    589,760   1,319    8,192   606,907 (output 10,198,341)
setup iteration   649,728       36,288    1,269    512     47,709  (output 602,019)
================  ============  ========  =======  ======  ===========================

Cross-checks: the main set is also the "Wolverine" primal-LPN instance of a public
Rust implementation (``n = 10805248, t = 1319, k = 589760, log bin 13``); emp-ot's
``emp-ot/ferret/constants.h`` (emp-toolkit) has the same setup set (``649728 / 1269 /
36288``, bins of 2^9) and a slightly different main set (``10608640 / 1295 / 589824``).
``d = 10`` as in the paper's implementation.  :data:`MAIN` and :data:`SETUP`;
``tests/test_ot_ferret.py`` checks them.

Memory: a direction in main mode keeps one 173 MB iteration buffer and two 9.7 MB
reserve buffers (allocated once, pre-faulted); a setup-mode direction about 11 MB.

Schedule (deterministic from the call sequence, so both parties agree): a direction
starts in "setup" mode (IKNP bootstrap of 47,709 COTs, setup iterations of 602,019
fresh COTs each); as soon as a request is short by more than one setup iteration's
output it switches for good to "main" mode (one setup iteration reserving the main
set's 606,907, then main iterations of 10,198,341 fresh COTs, 0.056 bytes per COT).

Wire, per iteration, direction ``X`` (the sender's role), step prefix ``ferret.sX``:

1. receiver -> sender ``.ext.hdr`` ``uint64[4]`` = (iteration, parameter set,
   COTs consumed so far, shortage): the sender compares it with its own state;
   ``.ext.d`` ``uint8[ceil(t h / 8)]`` the derandomisation bits;
2. sender -> receiver ``.ext.m`` ``uint8[t, 2h + 1, 16]``: per tree the ``h`` pairs of
   masked level sums, then ``c``.

Derived flavours: ``send_cot/recv_cot`` take pool COTs and the receiver sends
``ferret.sX.hdr`` (n, flavour; checked by the sender before it touches the pool) and
``ferret.sX.b`` = ``b ^ r`` (one bit per OT); random, chosen-message and additive OT
are the :class:`~ezprotocols.ot.source.CotSource` derivations on top (TCCR hashing,
eprint 2019/074).  ``send_rcot/recv_rcot`` cost nothing beyond the iterations.

What each party sees (semi-honest): the sender receives the ``d`` bits, each the XOR
of a fresh uniform COT choice bit with the receiver's path bit, hence uniform and
independent of everything (and ``b ^ r`` bits, uniform for the same reason); the
receiver receives, per level, one sum masked by ``H(t)`` (which it can open) and one
masked by ``H(t ^ delta)``, pseudorandom under the CCR hash, and ``c``, which is
``delta`` masked by the sum of leaves including the unknown punctured leaf
(pseudorandom by the GGM punctured-PRF property); the headers are public counts.
Simulatability then follows as in the paper's Theorem for the semi-honest protocol
(Fig. 5/6), with the outputs pseudorandom by LPN with regular noise.

>>> import numpy as np
>>> from ezprotocols.runner import run_pair
>>> def f(s):
...     return s.ot.send_rcot(1000) if s.role == 0 else s.ot.recv_rcot(1000)
>>> (q, delta), (r, t) = run_pair(f, f, ot="ferret")
>>> bool((t == q ^ r[:, None] * delta).all()), int(delta[0] & 1), int(q[:, 0].max() & 1)
(True, 1, 0)

Security assumptions stated plainly: LPN with regular noise at the parameters above;
fixed-key AES as an ideal/correlation-robust permutation for the GGM PRG and hashes
(as in emp-toolkit and libOTe); LPN matrix indices by multiply-shift from 32-bit words
(bias below ``k / 2^32 < 2^-12`` relative, public and fixed).
"""
from __future__ import annotations

import mmap
import secrets
from dataclasses import dataclass

import numpy as np

from .._ext import ferret as _f
from .._ext import ot as _k
from .._ext.crypto import Prg
from ..errors import ProtocolError
from .checks import check_n as _check_n, out_blocks as _out_blocks
from .iknp import _describe, _header
from .source import CotSource

__all__ = ["LpnParams", "MAIN", "SETUP", "PARAMS", "Ferret", "FerretSender", "FerretReceiver"]


@dataclass(frozen=True)
class LpnParams:
    """One LPN parameter set: ``n`` outputs, ``k`` secret length, ``t`` noise weight,
    bins of ``2^h = n / t``."""
    name: str
    ident: int
    n: int
    k: int
    t: int
    h: int

    @property
    def N(self) -> int:
        return 1 << self.h

    @property
    def reserve(self) -> int:
        """COTs an iteration consumes: k for LPN, t*h for the trees."""
        return self.k + self.t * self.h

    def check(self) -> None:
        if self.t * self.N != self.n:
            raise ValueError(f"{self.name}: n must be t * 2^h")


MAIN = LpnParams("main", 1, n=10_805_248, k=589_760, t=1_319, h=13)
SETUP = LpnParams("setup", 2, n=649_728, k=36_288, t=1_269, h=9)
PARAMS = {"main": MAIN, "setup": SETUP}

EXT_DOMAIN = 0x46        # 'F': tweaks of the tree-level hashes
_LPN_PERSON = b"ezp-ferret-lpn"


def lpn_matrix(p: LpnParams):
    """The public LPN matrix of parameter set ``p`` (seed: BLAKE2b of its name and sizes)."""
    import hashlib
    seed = hashlib.blake2b(f"{p.name}:{p.n}:{p.k}:{p.t}".encode(), digest_size=16, person=_LPN_PERSON).digest()
    return _f.LpnMatrix(seed, p.k)


_MATRICES: dict[str, object] = {}


def _matrix(p: LpnParams):
    m = _MATRICES.get(p.name)
    if m is None:
        m = _MATRICES[p.name] = lpn_matrix(p)
    return m


def alloc_blocks(n: int) -> np.ndarray:
    """``uint8[n, 16]``; large arrays come pre-faulted (MAP_POPULATE): on virtual machines a
    first-touch page fault costs more than the kernels that write the memory."""
    nbytes = 16 * n
    if nbytes < (4 << 20):
        return np.empty((n, 16), np.uint8)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    buf = mmap.mmap(-1, nbytes, flags=flags)
    return np.frombuffer(buf, np.uint8).reshape(n, 16)


class _Side:
    """State common to both ends of one direction: the reserved base vector, the pool
    of ready COTs (a range of a reused iteration buffer) and the schedule."""

    def __init__(self, ch, sender_role: int, take_tweaks=None):
        self.ch = ch
        self.sender_role = sender_role
        # n -> first low tweak word of n fresh tree-level hash tweaks (the session-wide
        # counter of domain 'F'); None: a counter of this object (stand-alone use)
        self._take_tweaks = take_tweaks
        self._own_tweaks = 0
        self.prefix = f"ferret.s{sender_role}"
        self.mode = "setup"
        self.base: np.ndarray | None = None       # reserved COTs, lsb-form
        self.base_full: np.ndarray | None = None  # the array self.base is a view of
        self._spare: np.ndarray | None = None     # the other base array (reused, not reallocated)
        self.buf: np.ndarray | None = None        # last iteration's output
        self.pos = self.end = 0                   # pool = buf[pos:end]
        self.iteration = 0
        self.consumed = 0                         # COTs handed out so far

    @property
    def avail(self) -> int:
        return self.end - self.pos

    def _plan(self, short: int) -> tuple[LpnParams, LpnParams]:
        """(parameters of the coming iteration, mode it reserves for)."""
        p = PARAMS[self.mode]
        nxt = "main" if self.mode == "main" or short - (SETUP.n - SETUP.reserve) > 0 else "setup"
        return p, PARAMS[nxt]

    def _layout(self, p: LpnParams, nxt: LpnParams, short: int, out: np.ndarray, at: int):
        """Where the iteration's n outputs go.  Returns ``(a, head, tail, direct)``: the first ``a``
        trees (rows ``[0, a N)``, covering the next reserve) go to the internal buffer
        ``head``; the other trees to ``tail``, which is the caller's ``out`` at the right
        place when the request takes all fresh outputs of the iteration (no copy), else
        the rest of the internal buffer."""
        R = nxt.reserve
        a = -(-R // p.N)
        X = a * p.N
        if short >= p.n - R:
            if self.buf is None or self.buf.shape[0] < X:
                self.buf = None
                self.buf = alloc_blocks(p.n)         # the mode's full size: allocated once
            start = at + X - R
            return a, self.buf[:X], out[start:start + p.n - X], True
        if self.buf is None or self.buf.shape[0] < p.n:
            self.buf = None
            self.buf = alloc_blocks(p.n)
        return a, self.buf[:X], self.buf[X:p.n], False

    def _finish_iteration(self, p: LpnParams, nxt: LpnParams, direct: bool, out: np.ndarray, at: int) -> int:
        """Keep the next reserve, hand out the rest; returns the rows written into ``out``.
        The consumed reserve and the iteration buffer's copy of the next one are zeroed
        (a memset of the reserve's size, small next to the iteration)."""
        R = nxt.reserve
        spare = self._spare
        if spare is None or spare.shape[0] < R:
            spare = alloc_blocks(R)
        spare[:R] = self.buf[:R]
        self.base_full.fill(0)                   # this iteration's reserve: used up
        self._spare, self.base = self.base_full, spare[:R]
        self.base_full = spare
        self.mode = nxt.name
        self.iteration += 1
        if direct:
            X = -(-R // p.N) * p.N
            out[at:at + X - R] = self.buf[R:X]
            self.buf[:X].fill(0)
            self.pos = self.end = 0
            return p.n - R
        self.buf[:R].fill(0)
        self.pos, self.end = R, p.n
        return 0

    def wipe(self) -> None:
        """Zero and drop every buffer holding this direction's COTs (reserve, spare,
        iteration output and pool) and its PRG (GGM seeds, puncture points)."""
        for a in (self.buf, self.base_full, self._spare):
            if a is not None:
                a.fill(0)
        self.buf = self.base = self.base_full = self._spare = None
        self.pos = self.end = 0
        self.prg = None

    def take(self, n: int, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (uint8[n, 16]) with the next n COTs, extending as needed."""
        done = 0
        while done < n:
            if self.avail == 0:
                done += self.extend(n - done, out, done)
                continue
            m = min(self.avail, n - done)
            out[done:done + m] = self.buf[self.pos:self.pos + m]
            self.pos += m
            done += m
        self.consumed += n
        return out

    def tweak_hi(self, domain: int) -> int:
        return (domain << 56) | (self.sender_role << 48)

    def level_tweaks(self, n: int) -> tuple[int, int]:
        """(hi, first lo) of the ``n`` tree-level hash tweaks of this iteration: domain 'F',
        this direction, the iteration number in the high word; the low word from the
        session-wide counter, so two Ferret instances bootstrapped by one IKNP (one delta)
        never share a tweak."""
        if self._take_tweaks is not None:
            lo = self._take_tweaks(n)
        else:
            lo, self._own_tweaks = self._own_tweaks, self._own_tweaks + n
        return self.tweak_hi(EXT_DOMAIN) | (self.iteration & 0xFFFFFFFFFFFF), lo


class FerretSender(_Side):
    """The sending end of one direction (holds ``delta``)."""

    def __init__(self, ch, sender_role: int, delta: np.ndarray, base_q: np.ndarray, take_tweaks=None):
        super().__init__(ch, sender_role, take_tweaks)
        self.delta = np.array(delta, np.uint8).reshape(16)
        if not self.delta[0] & 1:
            raise ValueError("delta must have bit 0 set")
        self.delta.setflags(write=False)
        self.base = self.base_full = np.array(base_q, np.uint8)
        self.base[:, 0] &= 0xFE
        self.prg = Prg()

    def extend(self, short: int, out: np.ndarray, at: int) -> int:
        """Run one iteration; returns how many COTs it wrote straight into ``out[at:]``."""
        p, nxt = self._plan(short)
        assert self.base.shape[0] >= p.reserve
        a, head, tail, direct = self._layout(p, nxt, short, out, at)
        seeds = self.prg.random_blocks(p.t)
        sums = np.empty((p.t, p.h, 2, 16), np.uint8)
        leafsum = np.empty((p.t, 16), np.uint8)
        _f.ggm_send(seeds[:a], p.h, head, sums[:a], leafsum[:a])   # before the receiver's bits arrive
        _f.ggm_send(seeds[a:], p.h, tail, sums[a:], leafsum[a:])
        step = f"{self.prefix}.ext.hdr"
        got = self.ch.recv_array(step, np.uint64, (4,))
        mine = np.array([self.iteration, p.ident, self.consumed, short], np.uint64)
        if not np.array_equal(got, mine):
            raise ProtocolError(f"{step}: the receiver is at iteration {int(got[0])} (parameter set "
                                f"{int(got[1])}, {int(got[2])} COTs consumed, short by {int(got[3])}) but this "
                                f"party at iteration {self.iteration} (set {p.ident}, {self.consumed} consumed, "
                                f"short by {short}): both parties must make matching calls with the same n")
        nl = p.t * p.h
        db = self.ch.recv_array(f"{self.prefix}.ext.d", np.uint8, ((nl + 7) // 8,))
        d = np.unpackbits(db, count=nl, bitorder="little").reshape(p.t, p.h)
        ql = self.base[p.k:p.k + nl]
        h0 = np.empty((nl, 16), np.uint8)
        h1 = np.empty((nl, 16), np.uint8)
        hi, lo = self.level_tweaks(nl)
        _k.hash2_rows(ql, self.delta, hi, lo, h0, h1)
        h0 = h0.reshape(p.t, p.h, 16)
        h1 = h1.reshape(p.t, p.h, 16)
        dm = d[:, :, None].astype(bool)
        msg = np.empty((p.t, 2 * p.h + 1, 16), np.uint8)
        lv = msg[:, :2 * p.h].reshape(p.t, p.h, 2, 16)
        lv[:, :, 0] = sums[:, :, 0] ^ np.where(dm, h1, h0)      # K0 ^ H(q ^ d delta)
        lv[:, :, 1] = sums[:, :, 1] ^ np.where(dm, h0, h1)      # K1 ^ H(q ^ !d delta)
        msg[:, 2 * p.h] = leafsum ^ self.delta
        self.ch.send(f"{self.prefix}.ext.m", msg)
        for a in (seeds, sums, leafsum, h0, h1):  # tree seeds, level sums, hash pads
            a.fill(0)
        M = _matrix(p)
        M.encode(self.base[:p.k], head, 0)
        M.encode(self.base[:p.k], tail, head.shape[0])
        return self._finish_iteration(p, nxt, direct, out, at)


class FerretReceiver(_Side):
    """The receiving end of one direction; its choice bits are bit 0 of its blocks."""

    def __init__(self, ch, sender_role: int, base_t: np.ndarray, take_tweaks=None):
        super().__init__(ch, sender_role, take_tweaks)
        self.base = self.base_full = np.array(base_t, np.uint8)
        self.prg = Prg()

    def extend(self, short: int, out: np.ndarray, at: int) -> int:
        """Run one iteration; returns how many COTs it wrote straight into ``out[at:]``."""
        p, nxt = self._plan(short)
        assert self.base.shape[0] >= p.reserve
        a, head, tail, direct = self._layout(p, nxt, short, out, at)
        nl = p.t * p.h
        alpha = (self.prg.random_uint64(p.t) & np.uint64(p.N - 1)).astype(np.uint32)
        shifts = np.arange(p.h - 1, -1, -1, dtype=np.uint32)
        abits = ((alpha[:, None] >> shifts[None, :]) & 1).astype(np.uint8)       # [t, h], level 1 first
        tl = self.base[p.k:p.k + nl]
        r = (tl[:, 0] & 1).reshape(p.t, p.h)
        d = r ^ abits ^ 1
        self.ch.send(f"{self.prefix}.ext.hdr",
                     np.array([self.iteration, p.ident, self.consumed, short], np.uint64))
        self.ch.send(f"{self.prefix}.ext.d", np.packbits(d.reshape(-1), bitorder="little"))
        M = _matrix(p)                          # LPN part first, while the sender expands its trees
        M.encode(self.base[:p.k], head, 0, True)
        M.encode(self.base[:p.k], tail, head.shape[0], True)
        hl = np.empty((nl, 16), np.uint8)
        hi, lo = self.level_tweaks(nl)
        _k.tccr_rows(tl, None, hi, lo, hl)
        msg = self.ch.recv_array(f"{self.prefix}.ext.m", np.uint8, (p.t, 2 * p.h + 1, 16))
        lv = msg[:, :2 * p.h].reshape(p.t, p.h, 2, 16)
        side = (1 - abits)[:, :, None, None].astype(np.intp)
        ksib = np.take_along_axis(lv, side, axis=2)[:, :, 0] ^ hl.reshape(p.t, p.h, 16)
        ksib = np.ascontiguousarray(ksib)
        c = np.ascontiguousarray(msg[:, 2 * p.h])
        _f.ggm_recv(alpha[:a], ksib[:a], c[:a], p.h, head, True)
        _f.ggm_recv(alpha[a:], ksib[a:], c[a:], p.h, tail, True)
        for z in (alpha, abits, r, ksib, hl):     # noise positions, sibling sums, hash pads
            z.fill(0)
        return self._finish_iteration(p, nxt, direct, out, at)


class Ferret(CotSource):
    """Ferret correlated-OT source (``Session(..., ot="ferret")``): implements
    :class:`~ezprotocols.ot.source.CotSource` natively for random-choice COT
    (``send_rcot``/``recv_rcot``) and chosen-choice COT (one bit per OT); random,
    chosen-message and additive OT come from the base class.

    ``Ferret(session, iknp=None)``: ``iknp`` is the IKNP source that bootstraps it
    (default: the session's ``s.engine("ot", "iknp")``, EC base OT).
    """

    #: amortised bytes per chosen-choice COT, rounded up to the integer the cost formulas
    #: take: 1/8 for the choice correction plus < 0.06 for the iterations
    cot_bytes = 1
    #: derived-flavour tweaks: 'R', not the 'S' of other sources (delta is the IKNP one)
    tweak_domain = 0x52

    def __init__(self, session, *, iknp=None):
        super().__init__(session)
        if iknp is None:
            iknp = session.engine("ot", "iknp")
        self._iknp = iknp
        self._sender: FerretSender | None = None
        self._receiver: FerretReceiver | None = None
        self._scratch_bufs: list[np.ndarray | None] = [None, None]
        self._released = False

    def release(self) -> None:
        """Zero and drop this source's secret buffers: both directions' reserves, iteration
        outputs and pools, PRGs, and the derived flavours' scratch COTs.  ``Session.close``
        (and leaving its ``with`` block) calls it; the source cannot be used afterwards."""
        self._released = True
        for side in (self._sender, self._receiver):
            if side is not None:
                side.wipe()
        self._sender = self._receiver = None
        for b in self._scratch_bufs:
            if b is not None:
                b.fill(0)
        self._scratch_bufs = [None, None]

    def _check_live(self) -> None:
        if self._released:
            raise RuntimeError("this Ferret source was released (its session is closed)")

    # ------------------------------------------------------------------ setup
    def _tx(self) -> FerretSender:
        self._check_live()
        if self._sender is None:
            s = self.session
            with s.phase("ot_base"):
                q, delta = self._iknp.send_cot(SETUP.reserve)
            self._sender = FerretSender(s.channel, s.role, delta, q,
                                        lambda n, r=s.role: s.take_tweaks(EXT_DOMAIN, r, n))
        return self._sender

    def _rx(self) -> FerretReceiver:
        self._check_live()
        if self._receiver is None:
            s = self.session
            with s.phase("ot_base"):
                b = np.unpackbits(np.frombuffer(secrets.token_bytes((SETUP.reserve + 7) // 8), np.uint8),
                                  count=SETUP.reserve, bitorder="little")
                t = self._iknp.recv_cot(b)
            t[:, 0] = (t[:, 0] & 0xFE) | b
            self._receiver = FerretReceiver(s.channel, s.peer, t,
                                            lambda n, r=s.peer: s.take_tweaks(EXT_DOMAIN, r, n))
        return self._receiver

    def setup(self) -> None:
        """Base OTs and the IKNP bootstrap of both directions now (both parties call it)."""
        self._iknp.setup()
        if self.session.role == 0:
            self._tx()
            self._rx()
        else:
            self._rx()
            self._tx()

    @property
    def delta(self) -> np.ndarray:
        """This party's sender offset (``uint8[16]``, bit 0 set): the IKNP sender's."""
        return self._iknp.delta

    def prefill(self, n: int, senders=(0, 1)) -> None:
        """Collective: when fewer than ``n`` COTs (at most one iteration's output) are
        ready in a listed direction, drop them and run one iteration now, so an online
        step that needs ``n`` draws them without the iteration's messages.  Both ends of
        a direction hold the same pool, so both decide alike."""
        n = _check_n(n)
        s = self.session
        with s.phase("ot_base"):
            for d in (0, 1):
                if d not in senders or n == 0:
                    continue
                side = self._tx() if s.role == d else self._rx()
                p, nxt = side._plan(0)
                want = min(n, p.n - nxt.reserve - 1)
                if side.avail < want:
                    side.pos = side.end
                    side.extend(want, None, 0)

    # ------------------------------------------------------------------ random-choice COT (native)
    def send_rcot(self, n: int, *, out: np.ndarray | None = None):
        """``n`` random COTs as sender: ``(q, delta)``; the receiver's blocks are ``q ^ r delta``
        for its random bits ``r``.  Bit 0 of every ``q`` is 0."""
        n = _check_n(n)
        out = _out_alloc(out, n)
        tx = self._tx()
        return tx.take(n, out), tx.delta

    def recv_rcot(self, n: int, *, out: np.ndarray | None = None):
        """``n`` random COTs as receiver: ``(r, t)``, ``r`` uint8[n] (= bit 0 of ``t``)."""
        n = _check_n(n)
        out = _out_alloc(out, n)
        t = self._rx().take(n, out)
        return (t[:, 0] & 1), t

    # ------------------------------------------------------------------ chosen-choice COT
    def _send_derand(self, tx: FerretSender, n: int, flavour: str, param=0, check=0, out=None) -> np.ndarray:
        step = f"{tx.prefix}.hdr"
        got = self.session.channel.recv_array(step, np.uint64, (4,))
        mine = _header(n, flavour, param, check)
        if not np.array_equal(got, mine):
            raise ProtocolError(f"{step}: the receiver runs {_describe(got)} but this party called the sender "
                                f"side of {_describe(mine)}; both parties must call matching methods with the "
                                f"same n")
        q = tx.take(n, _out_alloc(out, n))
        db = self.session.channel.recv_array(f"{tx.prefix}.b", np.uint8, ((n + 7) // 8,))
        _f.cond_xor_packed(q, db, tx.delta)
        return q

    def _recv_derand(self, rx: FerretReceiver, b: np.ndarray, packed: np.ndarray, flavour: str, param=0,
                     check=0, out=None) -> np.ndarray:
        n = b.shape[0]
        ch = self.session.channel
        ch.send(f"{rx.prefix}.hdr", _header(n, flavour, param, check))
        t = rx.take(n, _out_alloc(out, n))
        ch.send(f"{rx.prefix}.b", _f.lsb_pack(t, packed[:(n + 7) // 8]))
        return t

    def send_cot(self, n: int, *, out: np.ndarray | None = None):
        """``n`` correlated OTs as sender: ``(q, delta)``; the receiver gets ``q ^ b*delta``."""
        args = _k_prep_n(n, out)
        tx = self._tx()
        return self._send_derand(tx, args[0], "cot", out=args[1]), tx.delta

    def recv_cot(self, bits, *, out: np.ndarray | None = None) -> np.ndarray:
        """Correlated OTs with choice ``bits`` (uint8[n] of 0/1): ``t = q ^ b*delta``."""
        b, packed = _k.pack_bits(bits)
        out = _out_blocks(out, b.shape[0], "out") if out is not None else None
        return self._recv_derand(self._rx(), b, packed, "cot", out=out)

    # ------------------------------------------------------------------ scratch for derived flavours
    def _scratch(self, i: int, n: int) -> np.ndarray:
        """A reused, pre-faulted uint8[n, 16] (one per direction): the derived flavours hash
        their COTs and drop them, so they need not pay for fresh memory every call."""
        buf = self._scratch_bufs[i]
        if buf is None or buf.shape[0] < n:
            self._scratch_bufs[i] = None
            buf = self._scratch_bufs[i] = alloc_blocks(max(n, 1 << 16))
        return buf[:n]

    def _derived_send_cot(self, n: int):
        n = _check_n(n)
        tx = self._tx()
        return self._send_derand(tx, n, "cot", out=self._scratch(0, n)), tx.delta

    def _derived_recv_cot(self, bits) -> np.ndarray:
        b, packed = _k.pack_bits(bits)
        return self._recv_derand(self._rx(), b, packed, "cot", out=self._scratch(1, b.shape[0]))

    def __repr__(self):
        def st(x):
            return "not set up" if x is None else f"{x.mode} mode, iteration {x.iteration}, {x.avail} ready"
        return f"<Ferret P{self.session.role}: sender {st(self._sender)}, receiver {st(self._receiver)}>"


def _out_alloc(out, n) -> np.ndarray:
    return alloc_blocks(n) if out is None else _out_blocks(out, n, "out")


def _k_prep_n(n, out):
    n = _check_n(n)
    return n, (None if out is None else _out_blocks(out, n, "out"))


for _p in PARAMS.values():
    _p.check()
