"""A scripted hostile peer for the fuzz tests: it runs the honest protocol code of
its role, but the k-th message it sends is replaced by a malformed one (truncated,
oversized, wrong dtype, wrong count/shape, a replay of its previous message, or a
frame of random bytes).  The honest party must stop with a ProtocolError naming the
step within its timeout (a replay of a message identical in step, dtype and shape
cannot be told apart from an honest one by a semi-honest protocol: it may also
complete or fail later)."""
from __future__ import annotations

import threading
import time

import numpy as np

from ezprotocols import Session
from ezprotocols.net import local_pair

KINDS = ("truncate", "oversize", "dtype", "count", "replay", "random")


def _as_array(data):
    if isinstance(data, np.ndarray):
        return data
    return None


def mutate(kind: str, step: str, data, prev, rnd: bytes):
    """-> ("send", step, payload) or ("raw", frame bytes)."""
    arr = _as_array(data)
    if kind == "random":
        return ("raw", rnd)
    if kind == "replay":
        if prev is None:
            return ("raw", rnd[:7])
        return ("send",) + prev
    if arr is None:                         # a bytes message
        b = bytes(data)
        if kind == "truncate":
            return ("send", step, b[:-1] if b else b"\x00")
        if kind == "oversize":
            return ("send", step, b + rnd[:1] + b"\x00")
        if kind == "dtype":
            return ("send", step, np.frombuffer(b, np.uint8).copy())
        return ("send", step, b + b)         # count: twice the content
    flat = np.ascontiguousarray(arr).reshape(-1)
    if kind == "truncate":
        return ("send", step, flat[:-1].copy() if flat.size else np.zeros(1, arr.dtype))
    if kind == "oversize":
        return ("send", step, np.concatenate([flat, flat[:1] if flat.size else np.zeros(1, arr.dtype)]))
    if kind == "dtype":
        other = np.float64 if arr.dtype != np.float64 else np.int64
        if arr.dtype.itemsize == 1:
            other = np.int8 if arr.dtype != np.int8 else np.uint8
        return ("send", step, np.ascontiguousarray(arr).view(other) if arr.ndim else
                np.asarray(arr).astype(other))
    # count: same bytes, different shape (a flat view, or one more axis)
    return ("send", step, flat.reshape((1,) + flat.shape) if arr.ndim <= 1 else flat.copy())


class HostileChannel:
    """Wraps the peer's channel object in place (instance attributes)."""

    def __init__(self, ch, k: int | None, kind: str | None, rnd: bytes = b""):
        self.ch, self.k, self.kind, self.rnd = ch, k, kind, rnd
        self.steps: list[str] = []
        self.prev = None
        self._send, self._exchange = ch.send, ch.exchange
        ch.send = self.send
        ch.exchange = self.exchange

    def _out(self, step, data) -> bool:
        """Send message number len(steps); True if it was replaced."""
        i = len(self.steps)
        self.steps.append(step)
        if i != self.k:
            self._send(step, data)
            self.prev = (step, np.copy(data) if isinstance(data, np.ndarray) else bytes(data))
            return False
        m = mutate(self.kind, step, data, self.prev, self.rnd)
        if m[0] == "raw":
            self.ch._sock.send(m[1])
        else:
            self._send(m[1], m[2])
        return True

    def send(self, step, data):
        self._out(step, data)

    def exchange(self, step, data):
        self._out(step, np.asarray(data))
        return self.ch.recv_array(step, np.asarray(data).dtype, np.asarray(data).shape)


def run_hostile(f_honest, f_peer, honest_role: int, k=None, kind=None, rnd=b"", timeout=4.0,
                session_kw=None):
    """Run the honest party and the (possibly hostile) peer in two threads.
    Returns (honest result or exception, peer's step list, seconds the honest side took)."""
    session_kw = session_kw or {}
    c0, c1 = local_pair(timeout=timeout)
    ch_h, ch_p = (c0, c1) if honest_role == 0 else (c1, c0)
    hostile = HostileChannel(ch_p, k, kind, rnd)
    out = {}

    def honest():
        t = time.perf_counter()
        try:
            with Session(honest_role, ch_h, **session_kw) as s:
                out["h"] = f_honest(s)
        except BaseException as e:  # noqa: BLE001 - inspected by the test
            out["h"] = e
        out["t"] = time.perf_counter() - t

    def peer():
        try:
            with Session(1 - honest_role, ch_p, **session_kw) as s:
                out["p"] = f_peer(s)
        except BaseException as e:  # noqa: BLE001
            out["p"] = e

    th = [threading.Thread(target=honest, daemon=True), threading.Thread(target=peer, daemon=True)]
    for t in th:
        t.start()
    for t in th:
        t.join(timeout * 4 + 10)
    assert not any(t.is_alive() for t in th), "a party hung"
    return out["h"], hostile.steps, out["t"]
