"""Exact communication statistics, attributed to named phases.

What is counted (per party, per channel):

* ``bytes_sent`` / ``bytes_recv``: payload bytes of protocol messages: the raw
  buffer of every array or byte string passed to ``Channel.send`` and received by
  ``Channel.recv_*``.  This is the number protocol formulas speak about (for
  example 32 bytes per garbled AND gate).
* ``header_bytes_sent`` / ``header_bytes_recv``: the channel's own framing, one
  header per message (20 bytes plus 8 per array dimension).
* ``msgs_sent`` / ``msgs_recv``: one per ``send``/``recv`` call, however many
  chunks the payload travels in.
* ``rounds``: the number of runs of same-direction operations as this party sees
  them, i.e. 1 + the number of changes of direction (send after receive or
  receive after send).  A protocol where P0 sends and P1 answers has 2 rounds on
  both sides.
* ``seconds``: wall-clock time spent inside the phase.

Not counted: the connection handshake done by ``listen``/``connect`` before any
session exists, the close message, and the transport's own bytes below the
channel (ZMTP frame headers of 2-9 bytes per frame, heartbeats, TCP/IP).

Phases nest: ``with stats.phase("offline"): with stats.phase("triples"): ...``
attributes to both ``"offline"`` and ``"offline/triples"`` (inclusive), so a
phase's numbers always include its sub-phases.  Operations outside any phase go
to ``"main"``; ``"total"`` counts everything.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, fields

__all__ = ["Counters", "Stats"]

RESERVED = ("total", "main")


@dataclass
class Counters:
    bytes_sent: int = 0
    bytes_recv: int = 0
    header_bytes_sent: int = 0
    header_bytes_recv: int = 0
    msgs_sent: int = 0
    msgs_recv: int = 0
    rounds: int = 0
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        """Payload bytes in both directions."""
        return self.bytes_sent + self.bytes_recv

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["bytes"] = self.bytes
        return d

    def __add__(self, other: "Counters") -> "Counters":
        return Counters(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: "Counters") -> "Counters":
        return Counters(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def copy(self) -> "Counters":
        return Counters(*(getattr(self, f.name) for f in fields(self)))


class Stats:
    """Counters of one channel end, per phase path (see the module docstring)."""

    def __init__(self):
        self._c: dict[str, Counters] = {"total": Counters()}
        self._last: dict[str, str | None] = {"total": None}
        self._stack: list[str] = []
        self._t0: list[float] = []

    # -- recording ---------------------------------------------------------------
    def _paths(self):
        yield "total"
        if not self._stack:
            yield "main"
            return
        for i in range(1, len(self._stack) + 1):
            yield "/".join(self._stack[:i])

    def record(self, direction: str, payload: int, header: int) -> None:
        """Count one message; ``direction`` is ``"s"`` or ``"r"``."""
        for p in self._paths():
            c = self._c.get(p)
            if c is None:
                c = self._c[p] = Counters()
            if self._last.get(p) != direction:
                c.rounds += 1
                self._last[p] = direction
            if direction == "s":
                c.bytes_sent += payload
                c.header_bytes_sent += header
                c.msgs_sent += 1
            else:
                c.bytes_recv += payload
                c.header_bytes_recv += header
                c.msgs_recv += 1

    @contextlib.contextmanager
    def phase(self, name: str):
        """Attribute everything inside the ``with`` block to phase ``name``."""
        if not isinstance(name, str) or not name or "/" in name or name in RESERVED:
            raise ValueError(f"invalid phase name {name!r} (non-empty, no '/', not {RESERVED})")
        self._stack.append(name)
        path = "/".join(self._stack)
        self._c.setdefault(path, Counters())
        self._last[path] = None          # a new entry into the phase starts a new run
        t0 = time.perf_counter()
        try:
            yield self
        finally:
            self._c[path].seconds += time.perf_counter() - t0
            self._stack.pop()

    @property
    def current_phase(self) -> str:
        return "/".join(self._stack) if self._stack else "main"

    # -- reading -------------------------------------------------------------------
    def get(self, path: str = "total") -> Counters:
        """A copy of the counters of one phase path (zeros if never entered)."""
        c = self._c.get(path)
        return c.copy() if c is not None else Counters()

    def snapshot(self) -> dict[str, Counters]:
        return {k: v.copy() for k, v in self._c.items()}

    def as_dict(self) -> dict[str, dict]:
        return {k: v.as_dict() for k, v in self._c.items()}

    def reset(self) -> None:
        self._c = {"total": Counters()}
        self._last = {"total": None}
