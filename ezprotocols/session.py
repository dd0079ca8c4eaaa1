"""A two-party session: this party's role, the channel to the peer, a PRG, and the
protocol engines, created on first use.

Engines are attributes defined here (cached on first access): ``s.ot`` (correlated
OT source), ``s.gc`` (garbled circuits), ``s.triples`` (Beaver triple pools over a
triple source), ``s.linear`` (products of one party's operand with the other's),
``s.compare`` (sign-bit protocol) and ``s.arith`` (arithmetic-layer settings).
Which implementation backs ``ot``, ``triples``, ``linear`` and ``compare`` is a
session option (see :mod:`ezprotocols.backends`).  The engine classes live in the
layers above and are imported inside the properties, so importing this module
imports nothing above the channel.

>>> from ezprotocols.runner import run_pair
>>> run_pair(lambda s: s.role, lambda s: s.role)
(0, 1)
>>> run_pair(lambda s: type(s.ot).__name__, lambda s: s.backends["compare"])
('IknpSource', 'ot')
"""
from __future__ import annotations

import secrets
from functools import cached_property

import numpy as np

from . import backends as _backends
from ._ext.crypto import Prg
from .errors import ProtocolError, abort_note
from .net import Channel

__all__ = ["Session"]


class Session:
    """``Session(role, channel)``: role 0 (P0, model owner, garbler by default) or 1 (P1,
    data owner, evaluator by default).

    Options: ``prg`` (default: seeded from :mod:`secrets`), ``frac_bits`` (fixed-point
    fractional bits, default 16), ``check_roles`` (exchange roles once to catch two
    parties claiming the same one; default True), and the implementation of each
    pluggable engine (``None``: the default of :data:`ezprotocols.backends.DEFAULTS`):
    ``ot`` (``"iknp"``), ``triples`` (``"ot"``; ``"dealer"`` is a trusted dealer for
    research comparisons only), ``linear`` (``"ot"``), ``compare`` (``"ot"``; ``"gc"`` the garbled carry).  Both
    parties must choose the same implementations: either pass the same names on both
    sides, or let one party decide with ``backends_from=k`` on both sides (party ``k``
    sends its four names at set-up, one 64-byte message; the other adopts them, after
    checking each is registered and refusing the trusted dealer, which a party must
    choose itself).  The implementation names are public: all registered ones except
    the dealer are secure, and the choice changes costs, not what a party learns.
    """

    def __init__(self, role: int, channel: Channel, *, prg: Prg | None = None, frac_bits: int = 16,
                 ot: str | None = None, triples: str | None = None, linear: str | None = None,
                 compare: str | None = None, check_roles: bool = True, backends_from: int | None = None):
        if role not in (0, 1):
            raise ValueError(f"role must be 0 or 1, not {role!r}")
        if not isinstance(channel, Channel):
            raise TypeError("channel must be an ezprotocols.net.Channel")
        if not (0 <= int(frac_bits) <= 62):
            raise ValueError("frac_bits must be in [0, 62]")
        #: the implementation name chosen for each engine kind
        self.backends = {kind: _backends.check(kind, name) for kind, name in
                         (("ot", ot), ("triples", triples), ("linear", linear), ("compare", compare))}
        self.role = role
        self.peer = 1 - role
        self.channel = channel
        self.prg = prg if prg is not None else Prg()
        self.frac_bits = int(frac_bits)
        self.triples_source = self.backends["triples"]
        self._engines: dict[tuple, object] = {}
        self._shared_prg: Prg | None = None
        self._tweak_next: dict[tuple[int, int], int] = {}
        if check_roles:
            try:
                with self.phase("setup"):
                    self.channel.send("setup.role", np.array([role], dtype=np.uint8))
                    peer = int(self.channel.recv_array("setup.role", np.uint8, (1,))[0])
                if peer != self.peer:
                    raise ProtocolError(f"setup.role: both parties claim role {role}")
            except BaseException as e:
                # no ``with`` block owns the channel yet: tell the peer and release it here
                # (else the peer waits its whole timeout and the socket leaks)
                self.channel.abort(abort_note(e))
                raise
        if backends_from is not None:
            try:
                self._agree_backends(backends_from)
            except BaseException as e:
                self.channel.abort(abort_note(e))
                raise

    _KINDS = ("ot", "triples", "linear", "compare")
    _NAME_BYTES = 16

    def _agree_backends(self, chooser: int) -> None:
        """Party ``chooser`` announces its implementation names; the other adopts them."""
        if chooser not in (0, 1):
            raise ValueError(f"backends_from must be 0 or 1, not {chooser!r}")
        step, width = "setup.backends", self._NAME_BYTES
        with self.phase("setup"):
            if self.role == chooser:
                rec = np.zeros((len(self._KINDS), width), dtype=np.uint8)
                for i, kind in enumerate(self._KINDS):
                    b = self.backends[kind].encode("ascii")
                    rec[i, :len(b)] = np.frombuffer(b, dtype=np.uint8)
                self.channel.send(step, rec)
                return
            rec = self.channel.recv_array(step, np.uint8, (len(self._KINDS), width))
        chosen = {}
        for i, kind in enumerate(self._KINDS):
            raw = rec[i].tobytes().rstrip(b"\0")
            if not all(0x21 <= c < 0x7f for c in raw):          # no inner NUL, space or control byte
                raise ProtocolError(f"{step}: the peer's {kind} implementation name is not printable ASCII")
            name = raw.decode("ascii")
            if name not in _backends.names(kind):
                raise ProtocolError(f"{step}: the peer chose {kind}={name!r}, which this side does not have "
                                    f"(registered: {', '.join(_backends.names(kind))})")
            chosen[kind] = name
        if chosen["triples"] == "dealer" and self.backends["triples"] != "dealer":
            raise ProtocolError(f"{step}: the peer chose the trusted dealer for triples; only a party that "
                                "chose it itself may use it")
        self.backends = chosen
        self.triples_source = chosen["triples"]

    # ------------------------------------------------------------- engines
    def engine(self, kind: str, name: str | None = None):
        """This session's instance of implementation ``name`` of engine ``kind`` (default:
        the one the session chose), created on first use, one per (kind, name).  A
        component that needs a specific implementation (the OT triple source needs
        the OT products whatever ``linear`` is) asks for it by name."""
        name = self.backends[kind] if name is None else _backends.check(kind, name)
        key = (kind, name)
        eng = self._engines.get(key)
        if eng is None:
            eng = self._engines[key] = _backends.create(kind, name, self)
        return eng

    @cached_property
    def ot(self):
        """The correlated-OT source (:class:`~ezprotocols.ot.source.CotSource`)."""
        return self.engine("ot")

    @cached_property
    def linear(self):
        """Products of one party's operand with the other's
        (:class:`~ezprotocols.arith.products.Products`)."""
        return self.engine("linear")

    @cached_property
    def compare(self):
        """The sign-bit protocol (:class:`~ezprotocols.protocols.sign.CompareEngine`)."""
        return self.engine("compare")

    @cached_property
    def triples(self):
        """Beaver triple pools over the chosen source (:class:`~ezprotocols.arith.triples.TripleEngine`)."""
        from .arith.triples import TripleEngine
        return TripleEngine(self)

    @cached_property
    def gc(self):
        """Garbled-circuit steps (:class:`~ezprotocols.gc.yao.YaoEngine`)."""
        from .gc.yao import YaoEngine
        return YaoEngine(self)

    @cached_property
    def arith(self):
        """Arithmetic-layer settings (:class:`~ezprotocols.arith.context.ArithContext`)."""
        from .arith.context import ArithContext
        return ArithContext(self)

    # ------------------------------------------------------------- sharing
    def input(self, x, owner: int, shape=None, fixed: bool | None = None, raw: bool = False):
        """Share a value owned by ``owner`` (see :func:`ezprotocols.arith.tensor.share_input`)."""
        from .arith.tensor import share_input
        return share_input(self, x, owner, shape=shape, fixed=fixed, raw=raw)

    def reveal(self, t, to=None, raw: bool = False):
        """Open an :class:`~ezprotocols.arith.ArithTensor` (see
        :func:`ezprotocols.arith.tensor.reveal`) or a :class:`~ezprotocols.protocols.BoolTensor`
        (to its bits, uint8 0/1) to both parties or to party ``to``."""
        from .protocols.boolean import BoolTensor
        if isinstance(t, BoolTensor):
            return t.reveal(to)
        from .arith.tensor import reveal
        return reveal(self, t, to=to, raw=raw)

    def from_public(self, value, fixed: bool | None = None):
        """A public value as shares (see :func:`ezprotocols.arith.tensor.from_public`)."""
        from .arith.tensor import from_public
        return from_public(self, value, fixed=fixed)

    def yao(self, circuit, inputs, owners, reveal_to="both", *, garbler: int = 0, batch: int | None = None,
            chunk_bytes: int | None = None):
        """Yao's protocol on plaintext bits (see :func:`ezprotocols.gc.yao.yao`)."""
        from .gc.yao import yao
        kw = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}
        return yao(self, circuit, inputs, owners, reveal_to, garbler=garbler, batch=batch, **kw)

    # ------------------------------------------------------------- statistics
    def phase(self, name: str):
        """``with session.phase("relu"):`` attributes the traffic inside to phase ``relu``."""
        return self.channel.phase(name)

    def stats(self) -> dict[str, dict]:
        """Per-phase counters: ``{path: {bytes_sent, bytes_recv, msgs_*, rounds, seconds, ...}}``,
        plus ``"total"`` and ``"main"`` (traffic outside any phase).  See
        :mod:`ezprotocols.net.stats` for exactly what is counted."""
        return self.channel.stats.as_dict()

    def counters(self, path: str = "total"):
        """The :class:`~ezprotocols.net.Counters` of one phase path."""
        return self.channel.stats.get(path)

    # ------------------------------------------------------------- randomness
    def shared_prg(self) -> Prg:
        """A PRG both parties hold with the same seed (public coins, semi-honest coin
        tossing: each party contributes 16 random bytes, the seed is their XOR)."""
        if self._shared_prg is None:
            mine = np.frombuffer(secrets.token_bytes(16), dtype=np.uint8)
            with self.phase("setup"):
                self.channel.send("setup.coins", mine)
                theirs = self.channel.recv_array("setup.coins", np.uint8, (16,))
            self._shared_prg = Prg((mine ^ theirs).tobytes())
        return self._shared_prg

    # ------------------------------------------------------------- hash tweaks
    def take_tweaks(self, domain: int, sender: int, n: int) -> int:
        """The first of ``n`` fresh low tweak words of hash domain ``domain`` (the top byte
        of the tweak's high word) for hashes under party ``sender``'s delta.

        One counter per (domain, sender) for the whole session, shared by every engine
        and every OT source (and wrapper around a source) that hashes in that domain: two
        engines hashing under one delta (Ferret and the IKNP that bootstraps it, a
        wrapper around the session's IKNP) never get the same tweak.  Both parties make
        the same collective calls in the same order, so they take the same values.  The
        domains in use are listed in ``tests/test_tweak_domains.py``."""
        if not 0 <= domain < 256 or sender not in (0, 1) or n < 0:
            raise ValueError(f"take_tweaks: bad domain {domain!r}, sender {sender!r} or count {n!r}")
        key = (int(domain), int(sender))
        lo = self._tweak_next.get(key, 0)
        if lo + n > 1 << 64:
            raise OverflowError(f"hash tweaks of domain {domain:#04x} exhausted for this session")
        self._tweak_next[key] = lo + int(n)
        return lo

    # ------------------------------------------------------------- lifetime
    _ENGINE_ATTRS = ("ot", "linear", "compare", "triples", "gc", "arith")

    def _release(self) -> None:
        """Drop the engines: they point back at the session, so without this a closed
        session and its buffers (a Ferret source's pre-faulted iteration buffers, tens
        of MiB) live until the cyclic garbage collector runs, and a server's memory
        grows by many sessions' worth in between (the soak test).  An engine with a
        ``release`` method (Ferret) first zeroes its secret buffers."""
        for eng in {id(e): e for e in self._engines.values()}.values():
            rel = getattr(eng, "release", None)
            if callable(rel):
                rel()
        self._engines.clear()
        for name in self._ENGINE_ATTRS:
            self.__dict__.pop(name, None)

    def close(self) -> None:
        self.channel.close()
        self._release()

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            self.channel.abort(abort_note(ev) if ev is not None else et.__name__)
        else:
            self.channel.close()
        self._release()

    def __repr__(self):
        return f"<Session P{self.role} {self.channel!r}>"
