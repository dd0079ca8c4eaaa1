"""Yao's two-party protocol with half-gates garbling (Zahur, Rosulek, Evans, eprint
2014/756) and the TCCR hash from fixed-key AES (Guo, Kumar, Wang, Katz, eprint
2019/074).  Semi-honest.

One party garbles (P0 by default, ``garbler=1`` switches), the other evaluates.
The garbler's free-XOR offset is its IKNP correlated-OT delta (``s.ot.delta``, lsb
1), so

* an input bit of the garbler costs 16 bytes (its active label),
* an input bit of the evaluator costs one correlated OT (``s.ot.send_cot`` gives
  the garbler the zero-labels, ``s.ot.recv_cot(bits)`` gives the evaluator its
  active labels),
* an AND gate costs 32 bytes of garbled table, XOR and INV cost nothing,
* a revealed output bit costs 1 bit (permute bits to the evaluator, or the
  evaluator's label lsbs to the garbler); outputs kept as XOR shares cost nothing
  (garbler share = lsb of the zero-label, evaluator share = lsb of its label).

Two levels of API:

``s.yao(circuit, inputs, owners, reveal_to="both", garbler=0)``
    The whole protocol on plaintext bits (also the session method ``Session.yao``).

``s.gc`` (a :class:`YaoEngine`): composable steps on :class:`YaoTensor` (garbler:
    zero-labels, evaluator: active labels): ``input``, ``input_shared`` (XOR
    shares in, one COT per bit), ``run`` (garble/evaluate a circuit on tensors),
    ``xor_public``/``not_``, ``reveal``, ``shares``.  Every step is collective:
    both parties call it in the same order with matching arguments.

>>> import numpy as np
>>> from ezprotocols.runner import run_pair
>>> from ezprotocols.gc import CircuitBuilder, ints_to_bits, bits_to_ints
>>> b = CircuitBuilder(); x, y = b.input(32), b.input(32); b.output(b.lt(x, y)); c = b.build()
>>> a0 = {0: ints_to_bits(np.array([5, 9], np.uint64), 32)}      # P0 owns value 0
>>> a1 = {1: ints_to_bits(np.array([7, 2], np.uint64), 32)}      # P1 owns value 1
>>> r0, r1 = run_pair(lambda s: s.yao(c, a0, [0, 1]), lambda s: s.yao(c, a1, [0, 1]))
>>> r0[0][:, 0].tolist(), r1[0][:, 0].tolist()
([1, 0], [1, 0])
"""
from __future__ import annotations

import zlib
from typing import Mapping, Sequence

import numpy as np

from ..errors import ProtocolError
from . import halfgates as hg
from .circuit import Circuit

__all__ = ["YaoTensor", "YaoEngine", "yao", "REVEAL_BOTH", "REVEAL_SHARES", "HEADER_BYTES"]

REVEAL_BOTH = "both"
REVEAL_SHARES = "shares"
_MAGIC = 0x59414F31                       # "YAO1"
_UNKNOWN = np.iinfo(np.uint64).max
_MAX_BATCH = 1 << 32
_HDR_FIELDS = ("magic", "batch", "circuit fingerprint", "circuit fingerprint", "garbler", "reveal_to",
               "owners", "number of input values", "tweak counter", "kind", "chunk_bytes")
HEADER_BYTES = 8 * len(_HDR_FIELDS)       # sent by each party at the start of yao() / run()


class YaoTensor:
    """Labels of garbled bits: ``labels`` uint8[*shape, 16]; the garbler holds the
    zero-labels (label of bit 0), the evaluator the active labels.  ``garbler`` is the
    garbling party, ``role`` the holder.  ``share_bits()`` gives this party's XOR share
    (lsb of each label); ``a ^ b`` is free XOR."""

    __slots__ = ("labels", "garbler", "role")

    def __init__(self, labels: np.ndarray, garbler: int, role: int):
        labels = np.asarray(labels)
        if labels.dtype != np.uint8 or labels.ndim < 1 or labels.shape[-1] != 16:
            raise ValueError("YaoTensor labels must be uint8[..., 16]")
        if garbler not in (0, 1) or role not in (0, 1):
            raise ValueError("garbler and role must be 0 or 1")
        self.labels = labels
        self.garbler = int(garbler)
        self.role = int(role)

    @property
    def is_garbler(self) -> bool:
        return self.role == self.garbler

    @property
    def shape(self) -> tuple:
        return self.labels.shape[:-1]

    @property
    def ndim(self) -> int:
        return self.labels.ndim - 1

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self):
        return self.shape[0]

    def _like(self, labels):
        return YaoTensor(labels, self.garbler, self.role)

    def __getitem__(self, idx):
        if not isinstance(idx, tuple):
            idx = (idx,)
        if any(i is Ellipsis for i in idx):
            idx = idx + (slice(None),)
        return self._like(self.labels[idx])

    def reshape(self, *shape) -> "YaoTensor":
        if len(shape) == 1 and not np.isscalar(shape[0]):
            shape = tuple(shape[0])
        return self._like(self.labels.reshape(tuple(shape) + (16,)))

    def __xor__(self, other: "YaoTensor") -> "YaoTensor":
        if not isinstance(other, YaoTensor):
            return NotImplemented
        if other.garbler != self.garbler or other.role != self.role:
            raise ValueError("XOR of YaoTensors from different garblings")
        return self._like(np.bitwise_xor(self.labels, other.labels))

    def share_bits(self) -> np.ndarray:
        """This party's XOR share of the bits (uint8 0/1, shape ``self.shape``)."""
        return (self.labels[..., 0] & 1).astype(np.uint8)

    @staticmethod
    def concatenate(tensors: Sequence["YaoTensor"], axis: int = 0) -> "YaoTensor":
        t0 = tensors[0]
        if any(t.garbler != t0.garbler or t.role != t0.role for t in tensors):
            raise ValueError("concatenate: tensors from different garblings")
        ax = axis if axis >= 0 else axis - 1
        return t0._like(np.concatenate([t.labels for t in tensors], axis=ax))

    def __repr__(self):
        who = "zero-labels" if self.is_garbler else "active labels"
        return f"<YaoTensor shape={self.shape} garbler=P{self.garbler} ({who} of P{self.role})>"


def _bits(x, name: str, shape=None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: bits must be an integer array of 0/1, got {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name}: bits must be 0 or 1")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits.reshape(-1), bitorder="little")


def _unpack(packed: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(packed, count=n, bitorder="little")


class YaoEngine:
    """Garbled-circuit steps of a session (``session.gc``).  Keeps the session-wide
    tweak counter (never reused under one delta) and the per-direction delta set-up
    state; both parties hold the same counters because every step is collective."""

    def __init__(self, session):
        self.session = session
        self.tweak = 0                       # next unused tweak (low word), identical on both sides
        self._delta_ready = [False, False]

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_garbler(garbler) -> int:
        if garbler not in (0, 1):
            raise ValueError(f"garbler must be 0 or 1, not {garbler!r}")
        return int(garbler)

    def _cot(self, garbler: int, bits: np.ndarray | None, n: int):
        """Collective COT for the evaluator's bits: garbler gets zero-labels (and delta),
        evaluator active labels."""
        s = self.session
        with s.phase("cot"):
            if s.role == garbler:
                q, delta = s.ot.send_cot(n)
                delta = np.asarray(delta, np.uint8).reshape(16)
                if not delta[0] & 1:
                    raise RuntimeError("the OT delta must have its lowest bit set (point-and-permute)")
                self._delta_ready[garbler] = True
                return q, delta
            t = s.ot.recv_cot(bits if bits is not None else np.zeros(0, np.uint8))
            self._delta_ready[garbler] = True
            return t, None

    def delta(self, garbler: int = 0) -> np.ndarray | None:
        """Collective: the garbler's free-XOR offset (its COT delta); None on the
        evaluator.  Sets up the OT direction the first time (an empty COT)."""
        garbler = self._check_garbler(garbler)
        if not self._delta_ready[garbler]:
            _, d = self._cot(garbler, None, 0)
            return d
        s = self.session
        return np.asarray(s.ot.delta, np.uint8) if s.role == garbler else None

    def _take_tweaks(self, n: int) -> int:
        t = self.tweak
        self.tweak += n
        if self.tweak >= 1 << 64:
            raise ProtocolError("garbling tweak counter exhausted for this session")
        return t

    # ------------------------------------------------------------------ inputs
    def input(self, bits=None, owner: int = 0, *, shape=None, garbler: int = 0) -> YaoTensor:
        """Labels for bits owned by ``owner`` (the owner passes ``bits``, any shape; the
        other party passes ``shape``).  Garbler-owned: 16 bytes per bit; evaluator-owned:
        one COT per bit."""
        s = self.session
        garbler = self._check_garbler(garbler)
        if owner not in (0, 1):
            raise ValueError(f"owner must be 0 or 1, not {owner!r}")
        if s.role == owner:
            if bits is None:
                raise ValueError("the owner must pass its bits")
            b = _bits(bits, "input")
            if shape is not None and tuple(shape) != b.shape:
                raise ValueError(f"input: bits have shape {b.shape}, shape says {tuple(shape)}")
            shape = b.shape
        else:
            if shape is None:
                raise ValueError("the party that does not own the input must pass its shape")
            shape = tuple(int(x) for x in (shape if not np.isscalar(shape) else (shape,)))
            b = None
        n = int(np.prod(shape, dtype=np.int64))
        if owner == garbler:
            if s.role == garbler:
                delta = self.delta(garbler)
                zero = s.prg.random_blocks(n).reshape(shape + (16,))
                s.channel.send("yao.input", np.where(b[..., None].astype(bool), zero ^ delta, zero))
                return YaoTensor(zero, garbler, s.role)
            self.delta(garbler)
            act = s.channel.recv_array("yao.input", np.uint8, shape + (16,))
            return YaoTensor(act, garbler, s.role)
        lab, _ = self._cot(garbler, b.reshape(-1) if b is not None else None, n)
        return YaoTensor(lab.reshape(shape + (16,)), garbler, s.role)

    def input_shared(self, share_bits, *, garbler: int = 0) -> YaoTensor:
        """Labels for bits held as XOR shares (both pass their share, same shape): one
        COT per bit, nothing else (the garbler folds its share into the zero-labels)."""
        s = self.session
        garbler = self._check_garbler(garbler)
        b = _bits(share_bits, "input_shared")
        n = b.size
        if s.role == garbler:
            q, delta = self._cot(garbler, None, n)
            zero = q.reshape(b.shape + (16,))
            zero = np.where(b[..., None].astype(bool), zero ^ delta, zero)
            return YaoTensor(zero, garbler, s.role)
        t, _ = self._cot(garbler, b.reshape(-1), n)
        return YaoTensor(t.reshape(b.shape + (16,)), garbler, s.role)

    # ------------------------------------------------------------------ free operations
    def xor_public(self, t: YaoTensor, bits) -> YaoTensor:
        """``t ^ bits`` for public bits (both parties pass the same bits; free).  Local
        on the evaluator; the garbler flips its zero-labels by delta."""
        b = _bits(bits, "xor_public")
        b = np.broadcast_to(b, t.shape)
        if not self._delta_ready[t.garbler]:
            raise ValueError("xor_public: no labels were made with this garbler in this session")
        if not t.is_garbler:
            return t
        delta = np.asarray(self.session.ot.delta, np.uint8)
        return t._like(np.where(b[..., None].astype(bool), t.labels ^ delta, t.labels))

    def not_(self, t: YaoTensor) -> YaoTensor:
        return self.xor_public(t, np.ones((), np.uint8))

    @staticmethod
    def shares(t: YaoTensor) -> np.ndarray:
        """This party's XOR share of the bits (free): lsb of the labels."""
        return t.share_bits()

    # ------------------------------------------------------------------ header
    def _header(self, step: str, kind: int, circuit: Circuit | None, batch, garbler: int, reveal: int,
                owners_code: int, nvalues: int, chunk_bytes: int, oneway: bool = False) -> int:
        fp = circuit.fingerprint if circuit is not None else bytes(16)
        mine = np.array([_MAGIC, _UNKNOWN if batch is None else batch,
                         int.from_bytes(fp[:8], "little"), int.from_bytes(fp[8:], "little"),
                         garbler, reveal, owners_code, nvalues, self.tweak, kind, chunk_bytes], dtype=np.uint64)
        ch = self.session.channel
        if not oneway:
            peer = ch.exchange(step, mine)
        elif self.session.role == garbler:          # one-way: the evaluator announces, the garbler checks
            peer = ch.recv_array(step, np.uint64, mine.shape)
        else:
            ch.send(step, mine)
            peer = mine
        for i, name in enumerate(_HDR_FIELDS):
            if i == 1:
                continue
            if mine[i] != peer[i]:
                raise ProtocolError(f"{step}: the parties disagree on the {name} "
                                    f"(this party {int(mine[i])}, the peer {int(peer[i])})")
        pb = None if peer[1] == _UNKNOWN else int(peer[1])
        if pb is not None and pb > _MAX_BATCH:
            raise ProtocolError(f"{step}: the peer announced a batch of {pb} copies (at most {_MAX_BATCH})")
        if batch is not None and pb is not None and batch != pb:
            raise ProtocolError(f"{step}: batch mismatch: this party has {batch} copies, the peer {pb}")
        b = batch if batch is not None else pb
        if b is None:
            raise ProtocolError(f"{step}: neither party knows the batch size (no inputs on either side: "
                                f"pass batch=)")
        return b

    # ------------------------------------------------------------------ garble / evaluate
    def _garble_or_eval(self, circuit: Circuit, batch: int, in_labels: list, garbler: int, delta,
                        chunk_bytes: int) -> list[np.ndarray]:
        s = self.session
        ch = s.channel
        tweak = self._take_tweaks(2 * circuit.n_and * batch)
        if s.role == garbler:
            return hg.garble(circuit, batch, in_labels, delta, tweak, lambda t: ch.send("yao.tables", t),
                             chunk_bytes=chunk_bytes)
        buf = np.empty(min(chunk_bytes, 32 * circuit.n_and * batch) if batch else 0, np.uint8)

        def recv(n):
            return ch.recv_array("yao.tables", np.uint8, (n,), out=buf[:n])

        return hg.evaluate(circuit, batch, in_labels, tweak, recv, chunk_bytes=chunk_bytes)

    def run(self, circuit: Circuit, inputs: Sequence[YaoTensor], *, batch: int | None = None,
            garbler: int | None = None, chunk_bytes: int = hg.CHUNK_BYTES,
            oneway: bool = False) -> list[YaoTensor]:
        """Garble (garbler) or evaluate (evaluator) ``circuit`` on labelled inputs:
        ``inputs[i]`` of shape (batch, width_i).  Returns one YaoTensor (batch, width_j)
        per output value.  Costs exactly 32 bytes per AND gate and copy (plus a
        HEADER_BYTES = 88-byte header each way).  ``oneway``: only the evaluator sends
        its header and the garbler checks it (both must know the batch), so the run is
        one message flight from the evaluator (following its input COTs) and one from
        the garbler, no exchange."""
        s = self.session
        if not isinstance(circuit, Circuit):
            raise TypeError("circuit must be an ezprotocols.gc.Circuit")
        if len(inputs) != len(circuit.input_widths):
            raise ValueError(f"run: the circuit has {len(circuit.input_widths)} input values, got {len(inputs)}")
        if inputs:
            if garbler is not None and garbler != inputs[0].garbler:
                raise ValueError("run: garbler differs from the inputs' garbler")
            garbler = inputs[0].garbler
        else:
            garbler = 0 if garbler is None else self._check_garbler(garbler)
        local_batch = batch
        for i, (t, w) in enumerate(zip(inputs, circuit.input_widths)):
            if not isinstance(t, YaoTensor):
                raise TypeError(f"run: inputs[{i}] is not a YaoTensor")
            if t.garbler != garbler or t.role != s.role:
                raise ValueError("run: inputs come from different garblings")
            if t.ndim != 2 or t.shape[1] != w:
                raise ValueError(f"run: inputs[{i}] must have shape (batch, {w}), got {t.shape}")
            if local_batch is None:
                local_batch = t.shape[0]
            elif t.shape[0] != local_batch:
                raise ValueError(f"run: inputs[{i}] has {t.shape[0]} copies, expected {local_batch}")
        if oneway and local_batch is None:
            raise ValueError("run: a one-way header needs the batch on both sides")
        bsz = self._header("yao.run", 2, circuit, local_batch, garbler, 0, 0, len(inputs), chunk_bytes, oneway)
        delta = self.delta(garbler)
        outs = self._garble_or_eval(circuit, bsz, [np.ascontiguousarray(t.labels) for t in inputs], garbler,
                                    delta, chunk_bytes)
        return [YaoTensor(o, garbler, s.role) for o in outs]

    # ------------------------------------------------------------------ outputs
    def reveal(self, tensors, to="both"):
        """Open YaoTensors to ``to`` (0, 1 or "both"): 1 bit per bit and receiving
        party.  Returns a list of uint8 bit arrays (None for a party that receives
        nothing).  A single tensor gives a single result."""
        single = isinstance(tensors, YaoTensor)
        ts = [tensors] if single else list(tensors)
        res = self._reveal(ts, to, "yao.reveal")
        return res[0] if single else res

    def _reveal(self, ts: list[YaoTensor], to, step: str):
        s = self.session
        ch = s.channel
        if to not in (0, 1, "both"):
            raise ValueError(f"to must be 0, 1 or 'both', not {to!r}")
        if not ts:
            return []
        garbler = ts[0].garbler
        if any(t.garbler != garbler or t.role != s.role for t in ts):
            raise ValueError("reveal: tensors from different garblings")
        mine = np.concatenate([t.share_bits().reshape(-1) for t in ts])
        n = mine.size
        nbytes = (n + 7) // 8
        to_me = to == "both" or to == s.role
        to_peer = to == "both" or to == s.peer
        # "both": both send first, then both receive (one round)
        if to_peer:
            ch.send(step, _pack(mine))
        if to_me:
            theirs = _unpack(ch.recv_array(step, np.uint8, (nbytes,)), n)
            bits = mine ^ theirs
            out, off = [], 0
            for t in ts:
                out.append(bits[off:off + t.size].reshape(t.shape))
                off += t.size
            return out
        return [None] * len(ts)


def _reveal_code(reveal_to) -> int:
    if isinstance(reveal_to, str):
        if reveal_to == REVEAL_BOTH:
            return 2
        if reveal_to == REVEAL_SHARES:
            return 3
    elif reveal_to in (0, 1) and not isinstance(reveal_to, bool):
        return int(reveal_to)
    raise ValueError(f"reveal_to must be 0, 1, 'both' or 'shares', not {reveal_to!r}")


def yao(s, circuit: Circuit, inputs: Mapping[int, np.ndarray] | None, owners: Sequence[int],
        reveal_to="both", *, garbler: int = 0, batch: int | None = None,
        chunk_bytes: int = hg.CHUNK_BYTES):
    """Yao's protocol on plaintext bits (session method ``s.yao``).

    ``owners[i]``: the party owning input value i.  ``inputs``: {i: uint8 0/1 array of
    shape (batch, width_i)} for the values this party owns (bit k = wire k, LSB first).
    Both parties check that they agree on the circuit, the batch (a party owning no
    input takes the peer's; pass ``batch=`` if neither owns one), ``owners``,
    ``reveal_to`` and ``garbler``; a mismatch raises :class:`ProtocolError`.

    ``reveal_to``: ``"both"``: both get every output; ``0``/``1``: that party gets them,
    the other gets ``None`` for each output; ``"shares"``: each gets its XOR share of
    every output (garbler: lsb of the zero-labels, evaluator: lsb of its labels).
    Returns a list with one (batch, width_j) uint8 array (or None) per output value.

    Communication (payload bytes): an 88-byte header each way (``HEADER_BYTES``); the COTs for the
    evaluator's input bits (sub-phase ``cot``); 16 bytes per garbler input bit and copy;
    32 bytes per AND gate and copy; ``ceil(batch * n_output_bits / 8)`` bytes to each
    party an output is revealed to.
    """
    eng: YaoEngine = s.gc
    garbler = YaoEngine._check_garbler(garbler)
    if not isinstance(circuit, Circuit):
        raise TypeError("circuit must be an ezprotocols.gc.Circuit")
    if int(chunk_bytes) < 32:
        raise ValueError("chunk_bytes must be at least 32 (one garbled AND gate)")
    nv = len(circuit.input_widths)
    owners = [int(o) for o in owners]
    if len(owners) != nv:
        raise ValueError(f"owners must name the owner of each of the {nv} input values, got {len(owners)}")
    if any(o not in (0, 1) for o in owners):
        raise ValueError("owners must be 0 or 1")
    reveal = _reveal_code(reveal_to)
    inputs = dict(inputs or {})
    mine_idx = [i for i in range(nv) if owners[i] == s.role]
    extra = set(inputs) - set(mine_idx)
    if extra:
        raise ValueError(f"inputs given for values {sorted(extra)} that this party (P{s.role}) does not own")
    missing = [i for i in mine_idx if i not in inputs]
    if missing:
        raise ValueError(f"inputs missing for values {missing} owned by this party (P{s.role})")
    local_batch = batch
    xs = {}
    for i in mine_idx:
        x = _bits(inputs[i], f"inputs[{i}]")
        w = circuit.input_widths[i]
        if x.ndim != 2 or x.shape[1] != w:
            raise ValueError(f"inputs[{i}] must have shape (batch, {w}), got {x.shape}")
        if local_batch is None:
            local_batch = x.shape[0]
        elif x.shape[0] != local_batch:
            raise ValueError(f"inputs[{i}] has {x.shape[0]} copies, expected {local_batch}")
        xs[i] = x
    owners_code = zlib.crc32(bytes(owners)) | (nv << 32)
    with s.phase("yao"):
        B = eng._header("yao.setup", 1, circuit, local_batch, garbler, reveal, owners_code, nv, chunk_bytes)
        gb = s.role == garbler
        widths = circuit.input_widths
        ev_idx = [i for i in range(nv) if owners[i] != garbler]
        gb_idx = [i for i in range(nv) if owners[i] == garbler]
        wE = sum(widths[i] for i in ev_idx)
        wG = sum(widths[i] for i in gb_idx)
        # evaluator inputs: one COT per bit (also fixes delta for the garbler)
        bitsE = None
        if not gb:
            bitsE = (np.concatenate([xs[i] for i in ev_idx], axis=1) if ev_idx else np.zeros((B, 0), np.uint8))
            bitsE = np.ascontiguousarray(bitsE).reshape(-1)
        labE, delta = eng._cot(garbler, bitsE, B * wE)
        labE = labE.reshape(B, wE, 16)
        # garbler inputs: 16 bytes per bit
        if gb:
            labG = s.prg.random_blocks(B * wG).reshape(B, wG, 16)
            if wG and B:
                bitsG = np.concatenate([xs[i] for i in gb_idx], axis=1)
                s.channel.send("yao.inputs", np.where(bitsG[..., None].astype(bool), labG ^ delta, labG))
        else:
            labG = (s.channel.recv_array("yao.inputs", np.uint8, (B, wG, 16)) if wG and B
                    else np.zeros((B, wG, 16), np.uint8))
        in_labels = [None] * nv
        off = 0
        for i in ev_idx:
            in_labels[i] = labE[:, off:off + widths[i]]
            off += widths[i]
        off = 0
        for i in gb_idx:
            in_labels[i] = labG[:, off:off + widths[i]]
            off += widths[i]
        outs = eng._garble_or_eval(circuit, B, in_labels, garbler, delta, chunk_bytes)
        tensors = [YaoTensor(o, garbler, s.role) for o in outs]
        if reveal == 3:
            return [t.share_bits() for t in tensors]
        to = "both" if reveal == 2 else reveal
        return eng._reveal(tensors, to, "yao.outputs")
