"""IKNP OT extension (Ishai, Kilian, Nissim, Petrank, CRYPTO 2003) with the ALSZ
optimisations (Asharov, Lindell, Schneider, Zohner, eprint 2013/552), and the
flavours built on it: correlated (global delta), random, chosen-message and
additive OT over ``Z_2^w``.

One extension per direction.  The IKNP *receiver* holds both seeds of 128
base OTs (it was the base-OT sender); the IKNP *sender* holds one seed of each,
selected by its secret ``s`` (``s_0 = 1``), and ``delta = s`` (16 bytes, bit i =
bit i%8 of byte i//8).  For a batch of ``n`` OTs with choice bits ``r``:

* receiver: ``t_i = G(k0_i)``, ``u_i = t_i ^ G(k1_i) ^ r`` for the 128 columns,
  sends ``u`` (16 bytes per OT); its rows are ``t_j``;
* sender: ``q_i = G(k_{s_i},i) ^ s_i u_i``; its rows are ``q_j = t_j ^ r_j delta``.

``G(k)`` is AES-128-CTR keyed with the seed, the counter running on across
batches (a tile of 128 OTs per counter value; a batch starts on a fresh tile).
Because ``s_0 = 1``, ``delta`` has 127 bits of entropy and its lowest bit is 1,
so it doubles as the free-XOR offset of garbling (as in emp-toolkit).

Wire, per batch (direction ``X`` = the sending party's role, step prefix ``ot.sX``):

1. receiver -> sender ``ot.sX.hdr``: ``uint64[4]`` = (n, flavour, parameter, check):
   the sender compares it with its own call and raises :class:`ProtocolError` on
   any difference (wrong n, different flavour, message length, widths);
2. receiver -> sender ``ot.sX.u``: the u matrix in chunks of :data:`CHUNK` OTs
   (:data:`CHUNK_2WAY` in chosen-message and additive OT)
   (``uint8[ubytes(m)]`` each; see ``_ext/include/ezp_ot.h`` for the tile-major
   layout); the sender receives each with its exact expected length;
3. chosen-message and additive OT only: sender -> receiver ``ot.sX.y``
   (``uint8[2, m, L]``: the masked m0 rows, then the masked m1 rows) /
   ``ot.sX.d`` (the packed corrections), one message per chunk, the receiver reading chunk ``k`` after
   sending u-chunk ``k + LAG`` (so both directions stream; for batches of at
   most ``(LAG + 1) * CHUNK_2WAY`` OTs the whole exchange is 2 rounds, as counted by
   the channel statistics; longer batches alternate directions chunk by chunk,
   still with the latency of 2 rounds).  For long chosen messages a chunk holds
   fewer OTs, so that a reply chunk stays within :data:`REPLY_BYTES`.

Hashing uses the tweakable correlation-robust hash of eprint 2019/074 with tweak
(high = 0x4F << 56 | X << 48 | pad block, low = global OT index), never repeated
for the same delta.
"""
from __future__ import annotations

import itertools
import secrets
from collections import deque

import numpy as np

from .._ext import ot as _k
from ..errors import ProtocolError
from .checks import check_c, check_len, check_msgs, check_n, check_widths, out_blocks

__all__ = ["IknpSender", "IknpReceiver", "CHUNK", "CHUNK_2WAY", "LAG", "KAPPA", "FLAVOURS"]

KAPPA = 128
CHUNK = 1 << 16          # OTs per u-matrix message in the one-way flavours (1 MiB)
CHUNK_2WAY = 1 << 17     # ... in chosen/additive OT (2 MiB of u, 4 MiB of 16-byte chosen replies)
LAG = 2                  # receiver reads reply chunk k after sending u chunk k + LAG
REPLY_BYTES = 4 << 20    # at most this many bytes per chosen-message reply chunk (unless L > 16 KiB)
DRAIN_CHUNKS = 8         # after a header mismatch, read at most this many u chunks ...
DRAIN_SECONDS = 2.0      # ... for at most this long
TWEAK_DOMAIN = 0x4F      # 'O': OT-extension hashing
FLAVOURS = {"cot": 1, "rot": 2, "chosen": 3, "acot": 4}
_FLAVOUR_NAMES = {v: k for k, v in FLAVOURS.items()}
_CALL = {"cot": "send_cot/recv_cot", "rot": "send_rot/recv_rot", "chosen": "send/recv",
         "acot": "send_acot/recv_acot"}


def _tweak_hi(sender_role: int) -> int:
    return (TWEAK_DOMAIN << 56) | (sender_role << 48)


def _header(n: int, flavour: str, param: int = 0, check: int = 0) -> np.ndarray:
    return np.array([n, FLAVOURS[flavour], param, check], dtype=np.uint64)


def _describe(h) -> str:
    n, f, p, c = (int(x) for x in h)
    name = _FLAVOUR_NAMES.get(f, f"flavour {f}")
    extra = {"chosen": f", L={p}", "acot": f", bits={'per-OT widths' if p == 0 else p}"}.get(name, "")
    return f"{name}(n={n}{extra})"


class _Ring:
    """Send buffers reused in rotation.  The channel sends arrays without copying, so a
    buffer may be rewritten only once the peer has provably received its contents: in
    the two-way flavours the peer's message for chunk k + LAG + 1 is sent only after it
    read our chunk k, so slot k mod (LAG + 2) is free again when chunk k + LAG + 2 is
    written (and a new batch starts only after the peer finished the previous one)."""

    def __init__(self):
        self.slots = [np.empty(0, np.uint8) for _ in range(LAG + 2)]

    def get(self, i: int, nbytes: int) -> np.ndarray:
        k = i % len(self.slots)
        if self.slots[k].nbytes < nbytes:
            self.slots[k] = np.empty(nbytes, np.uint8)   # the old one lives on while the channel holds it
        return self.slots[k][:nbytes]


def _chunk_ots(reply_bytes_per_ot: int = 0) -> int:
    """OTs per chunk: CHUNK one-way, CHUNK_2WAY two-way, fewer (a multiple of 128) when the
    reply would exceed REPLY_BYTES."""
    c = CHUNK_2WAY if reply_bytes_per_ot else CHUNK
    if reply_bytes_per_ot * c <= REPLY_BYTES:
        return c
    return max(128, (REPLY_BYTES // reply_bytes_per_ot) // 128 * 128)


def _max_chunk() -> int:
    return max(CHUNK, CHUNK_2WAY)


def _chunks(n: int, reply_bytes_per_ot: int = 0):
    c = _chunk_ots(reply_bytes_per_ot)
    for off in range(0, n, c):
        yield off, min(c, n - off)


class IknpReceiver:
    """The receiving end of one extension direction (this party holds both base-OT seeds)."""

    def __init__(self, k0: np.ndarray, k1: np.ndarray, sender_role: int):
        self.K0 = _k.ColumnKeys(k0)
        self.K1 = _k.ColumnKeys(k1)
        self.sender_role = sender_role
        self.prefix = f"ot.s{sender_role}"
        self.ctr = 0                      # next tile counter
        self.scratch = _k.Scratch()
        self._tbufs: list[np.ndarray] = []
        self._uring = _Ring()

    # ------------------------------------------------------------------ core
    def _reserve(self, n: int) -> int:
        c = self.ctr
        self.ctr += (n + 127) // 128
        return c

    def _tbuf(self, i: int) -> np.ndarray:
        while len(self._tbufs) <= i:
            self._tbufs.append(np.empty((_max_chunk(), 16), np.uint8))
        return self._tbufs[i]

    def _stream_u(self, ch, packed, n, ctr, t_out=None, reply=0):
        """Send the u matrix chunk by chunk; yields (off, m, t_rows) after each send.
        ``t_out``: write rows there (``uint8[n,16]``), else into rotating chunk buffers.
        ``reply``: bytes per OT the sender answers with (sets the chunk size)."""
        step = f"{self.prefix}.u"
        for i, (off, m) in enumerate(_chunks(n, reply)):
            if reply:       # the sender answers every chunk: ring buffers are safe (see _Ring)
                u = self._uring.get(i, _k.ubytes(m))
            else:           # one-way: a fresh array, as the channel sends it without copying
                u = np.empty(_k.ubytes(m), np.uint8)
            if t_out is not None:
                _k.recv_extend(self.K0, self.K1, ctr + off // 128, packed, off, m, u, t_out, off, self.scratch)
                rows = t_out[off:off + m]
            else:
                buf = self._tbuf(i % (LAG + 1))
                _k.recv_extend(self.K0, self.K1, ctr + off // 128, packed, off, m, u, buf, 0, self.scratch)
                rows = buf[:m]
            ch.send(step, u)
            yield off, m, rows

    def _start(self, ch, n, flavour, param=0, check=0):
        ch.send(f"{self.prefix}.hdr", _header(n, flavour, param, check))
        return self._reserve(n)

    # ------------------------------------------------------------------ flavours
    # Each flavour takes arguments already checked by the matching ``prep_*`` function
    # (the engine checks before any base-OT setup, so misuse fails without traffic).

    @staticmethod
    def prep_cot(bits, out=None):
        b, packed = _k.pack_bits(bits)
        return b, packed, out_blocks(out, b.shape[0], "out")

    def cot(self, ch, b, packed, t):
        n = b.shape[0]
        ctr = self._start(ch, n, "cot")
        for _ in self._stream_u(ch, packed, n, ctr, t_out=t):
            pass
        return t

    prep_rot = prep_cot

    def rot(self, ch, b, packed, mb):
        n = b.shape[0]
        ctr = self._start(ch, n, "rot")
        hi = _tweak_hi(self.sender_role)
        for off, m, rows in self._stream_u(ch, packed, n, ctr):
            _k.tccr_rows(rows, None, hi, 128 * ctr + off, mb[off:off + m])
        return mb

    @staticmethod
    def prep_chosen(bits, L, out=None):
        b, packed = _k.pack_bits(bits)
        n = b.shape[0]
        L = check_len(L)
        if out is None:
            out = np.empty((n, L), np.uint8)
        elif not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != (n, L) \
                or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"out must be a writeable C-contiguous uint8[{n}, {L}] array")
        return b, packed, L, out

    def chosen(self, ch, b, packed, L, out):
        n = b.shape[0]
        ctr = self._start(ch, n, "chosen", L)
        if n == 0 or L == 0:
            return out                              # header only (checked by the sender)
        hi = _tweak_hi(self.sender_role)
        step = f"{self.prefix}.y"
        ybuf = np.empty(min(n, _chunk_ots(2 * L)) * 2 * L, np.uint8)   # received into, consumed at once
        pending = deque()

        def finish_one():
            off, m, rows = pending.popleft()
            y = ch.recv_array(step, np.uint8, (2, m, L), out=ybuf[:m * 2 * L].reshape(2, m, L))
            _k.chosen_recv(rows, b[off:off + m], hi, 128 * ctr + off, y, out[off:off + m])

        for item in self._stream_u(ch, packed, n, ctr, reply=2 * L):
            pending.append(item)
            if len(pending) > LAG:
                finish_one()
        while pending:
            finish_one()
        return out

    @staticmethod
    def prep_acot(bits, width):
        b, packed = _k.pack_bits(bits)
        return (b, packed) + check_widths(width, b.shape[0])

    def acot(self, ch, b, packed, w, widths, param, check):
        n = b.shape[0]
        y = np.empty(n, np.uint64)
        ctr = self._start(ch, n, "acot", param, check)
        if n == 0:
            return y
        hi = _tweak_hi(self.sender_role)
        step = f"{self.prefix}.d"
        pending = deque()

        def finish_one():
            off, m, rows = pending.popleft()
            wc = None if widths is None else widths[off:off + m]
            d = ch.recv_array(step, np.uint8, (_k.acot_nbytes(m, wc, w),))
            _k.acot_recv(rows, b[off:off + m], hi, 128 * ctr + off, wc, w, d, y[off:off + m])

        for item in self._stream_u(ch, packed, n, ctr, reply=8):
            pending.append(item)
            if len(pending) > LAG:
                finish_one()
        while pending:
            finish_one()
        return y


class IknpSender:
    """The sending end of one extension direction (this party holds k_{s_i} and delta = s)."""

    def __init__(self, s_bits: np.ndarray, ks: np.ndarray, sender_role: int):
        s_bits = np.asarray(s_bits, np.uint8)
        if s_bits.shape != (KAPPA,) or s_bits[0] != 1:
            raise ValueError("s must be 128 bits with s_0 = 1")
        self.KS = _k.ColumnKeys(ks)
        self.mask = np.repeat(s_bits * np.uint8(0xFF), 16).astype(np.uint8)
        self.delta = np.packbits(s_bits, bitorder="little")
        self.delta.setflags(write=False)
        self.sender_role = sender_role
        self.prefix = f"ot.s{sender_role}"
        self.ctr = 0
        self.scratch = _k.Scratch()
        self._ubuf = np.empty(_k.ubytes(_max_chunk()), np.uint8)
        self._qbuf: np.ndarray | None = None
        self._ring = _Ring()

    def _qchunk(self) -> np.ndarray:
        if self._qbuf is None:
            self._qbuf = np.empty((_max_chunk(), 16), np.uint8)
        return self._qbuf

    def _expect(self, ch, n, flavour, param=0, check=0) -> int:
        step = f"{self.prefix}.hdr"
        got = ch.recv_array(step, np.uint64, (4,))
        mine = _header(n, flavour, param, check)
        if not np.array_equal(got, mine):
            self._drain(ch, got, n)
            raise ProtocolError(f"{step}: the receiver runs {_describe(got)} but this party called "
                                f"{_CALL[flavour].split('/')[0]} for {_describe(mine)}; both parties must "
                                f"call matching methods ({_CALL[flavour]}) with the same n")
        c = self.ctr
        self.ctr += (n + 127) // 128
        return c

    def _drain(self, ch, hdr, n_mine: int) -> None:
        """After a header mismatch: read the u chunks the receiver sends before it waits
        for anything, so it is not left blocked in a send when this side aborts.

        Everything here is bounded by what *this* side expected, never by what the peer
        announced: at most :data:`DRAIN_CHUNKS` chunks (the two-way flavours send only
        ``LAG + 1`` before waiting), of at most the size of our own batch's chunks, for
        at most :data:`DRAIN_SECONDS` in all (a hostile header costs nothing)."""
        n, f, p = (int(x) for x in hdr[:3])
        name = _FLAVOUR_NAMES.get(f)
        if name is None or (name == "chosen" and not 0 < p <= REPLY_BYTES):
            return
        two_way = name in ("chosen", "acot")
        limit = LAG + 1 if two_way else DRAIN_CHUNKS
        reply = {"chosen": 2 * p, "acot": 8}.get(name, 0)
        n = min(n, max(n_mine, 1) + _chunk_ots(reply) * limit)
        save = ch.timeout
        ch.timeout = min(save, DRAIN_SECONDS)
        try:
            for _off, m in itertools.islice(_chunks(n, reply), limit):
                nb = _k.ubytes(m)
                ch.recv_array(f"{self.prefix}.u", np.uint8, (nb,), out=self._ubuf[:nb])
        except Exception:       # the original mismatch is the error to report
            pass
        finally:
            ch.timeout = save

    def _stream_q(self, ch, n, ctr, q_out=None, reply=0):
        step = f"{self.prefix}.u"
        for off, m in _chunks(n, reply):
            nb = _k.ubytes(m)
            u = ch.recv_array(step, np.uint8, (nb,), out=self._ubuf[:nb])
            if q_out is not None:
                _k.send_extend(self.KS, self.mask, ctr + off // 128, u, m, q_out, off, self.scratch)
                yield off, m, q_out[off:off + m]
            else:
                qb = self._qchunk()
                _k.send_extend(self.KS, self.mask, ctr + off // 128, u, m, qb, 0, self.scratch)
                yield off, m, qb[:m]

    # ------------------------------------------------------------------ flavours
    @staticmethod
    def prep_cot(n, out=None):
        n = check_n(n)
        return n, out_blocks(out, n, "out")

    def cot(self, ch, n, q):
        ctr = self._expect(ch, n, "cot")
        for _ in self._stream_q(ch, n, ctr, q_out=q):
            pass
        return q

    @staticmethod
    def prep_rot(n, out=None):
        n = check_n(n)
        if out is None:
            return n, np.empty((n, 16), np.uint8), np.empty((n, 16), np.uint8)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError("out must be a pair (m0, m1) of uint8[n, 16] arrays")
        return (n,) + tuple(out_blocks(o, n, "out") for o in out)

    def rot(self, ch, n, m0, m1):
        ctr = self._expect(ch, n, "rot")
        hi = _tweak_hi(self.sender_role)
        for off, m, rows in self._stream_q(ch, n, ctr):
            _k.hash2_rows(rows, self.delta, hi, 128 * ctr + off, m0[off:off + m], m1[off:off + m])
        return m0, m1

    @staticmethod
    def prep_chosen(m0, m1):
        return check_msgs(m0, m1)

    def chosen(self, ch, m0, m1):
        n, L = m0.shape
        ctr = self._expect(ch, n, "chosen", L)
        if n == 0 or L == 0:
            return
        hi = _tweak_hi(self.sender_role)
        step = f"{self.prefix}.y"
        for i, (off, m, rows) in enumerate(self._stream_q(ch, n, ctr, reply=2 * L)):
            y = self._ring.get(i, m * 2 * L).reshape(2, m, L)
            _k.chosen_send(rows, self.delta, hi, 128 * ctr + off, m0[off:off + m], m1[off:off + m], y)
            ch.send(step, y)

    @staticmethod
    def prep_acot(c, width):
        c = check_c(c)
        return (c,) + check_widths(width, c.shape[0])

    def acot(self, ch, c, w, widths, param, check):
        n = c.shape[0]
        x = np.empty(n, np.uint64)
        ctr = self._expect(ch, n, "acot", param, check)
        if n == 0:
            return x
        hi = _tweak_hi(self.sender_role)
        step = f"{self.prefix}.d"
        for i, (off, m, rows) in enumerate(self._stream_q(ch, n, ctr, reply=8)):
            wc = None if widths is None else widths[off:off + m]
            d = self._ring.get(i, _k.acot_nbytes(m, wc, w))
            _k.acot_send(rows, self.delta, hi, 128 * ctr + off, c[off:off + m], wc, w, x[off:off + m], d)
            ch.send(step, d)
        return x


def random_s() -> np.ndarray:
    """The IKNP sender's secret s: 128 bits from the OS CSPRNG with s_0 forced to 1."""
    s = np.unpackbits(np.frombuffer(secrets.token_bytes(16), np.uint8), bitorder="little")
    s[0] = 1
    return s
