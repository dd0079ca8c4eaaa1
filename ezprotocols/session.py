"""A two-party session: this party's role, the channel to the peer, a PRG, and the
protocol engines (OT extension in both directions, triple source, Yao engine),
created lazily on first use.

Engines and session methods live in the layers above (``ot``, ``arith``, ``gc``,
...); they register themselves here with :func:`register_engine` and
:func:`register_method`, so this module imports nothing above the channel.

>>> from ezprotocols.testing import run_pair
>>> run_pair(lambda s: s.role, lambda s: s.role)
(0, 1)
"""
from __future__ import annotations

import secrets
from typing import Callable

import numpy as np

from ._ext.crypto import Prg
from .errors import ProtocolError, abort_note
from .net import Channel

__all__ = ["Session", "register_engine", "register_method", "TRIPLE_SOURCES"]

_ENGINES: dict[str, Callable[["Session"], object]] = {}
TRIPLE_SOURCES = ("ot", "dealer")


def register_engine(name: str, factory: Callable[["Session"], object]) -> None:
    """Make ``session.<name>`` an engine built by ``factory(session)`` on first access."""
    _ENGINES[name] = factory


def register_method(name: str, fn: Callable) -> None:
    """Add a method ``session.<name>(...)`` (``fn(session, ...)``)."""
    if name in Session.__dict__ and getattr(Session, name) is not fn:
        raise ValueError(f"Session.{name} is already defined")
    setattr(Session, name, fn)


class Session:
    """``Session(role, channel)``: role 0 (P0, model owner, garbler by default) or 1 (P1,
    data owner, evaluator by default).

    Options: ``prg`` (default: seeded from :mod:`secrets`), ``frac_bits`` (fixed-point
    fractional bits, default 16), ``triples`` (``"ot"``, the default, or ``"dealer"``:
    a trusted dealer for research comparisons only), ``check_roles`` (exchange roles
    once to catch two parties claiming the same one; default True).
    """

    def __init__(self, role: int, channel: Channel, *, prg: Prg | None = None, frac_bits: int = 16,
                 triples: str = "ot", check_roles: bool = True):
        if role not in (0, 1):
            raise ValueError(f"role must be 0 or 1, not {role!r}")
        if not isinstance(channel, Channel):
            raise TypeError("channel must be an ezprotocols.net.Channel")
        if not (0 <= int(frac_bits) <= 62):
            raise ValueError("frac_bits must be in [0, 62]")
        if triples not in TRIPLE_SOURCES:
            raise ValueError(f"triples must be one of {TRIPLE_SOURCES}, not {triples!r}")
        self.role = role
        self.peer = 1 - role
        self.channel = channel
        self.prg = prg if prg is not None else Prg()
        self.frac_bits = int(frac_bits)
        self.triples_source = triples
        self._shared_prg: Prg | None = None
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

    # ------------------------------------------------------------- engines
    def __getattr__(self, name: str):
        factory = _ENGINES.get(name)
        if factory is None:
            raise AttributeError(f"'Session' object has no attribute {name!r}")
        engine = factory(self)
        self.__dict__[name] = engine
        return engine

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

    # ------------------------------------------------------------- lifetime
    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            self.channel.abort(abort_note(ev) if ev is not None else et.__name__)
        else:
            self.channel.close()

    def __repr__(self):
        return f"<Session P{self.role} {self.channel!r}>"
