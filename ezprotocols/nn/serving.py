"""Serving several client sessions at once on one listening address.

A ZeroMQ PAIR socket carries exactly one peer, and unbinding it drops its
connections, so concurrency goes through a *lobby*: the model owner binds the
public address; each client that connects there receives ``serve.hello``
(uint64[4]: magic, kind, a, b), checked on both sides (fixed dtype and shape,
known magic and kind, bounded values):

* kind 2 (``REDIRECT``, a = port, b = place in the wait queue, 0: none): the
  owner has bound a fresh session socket on the same host (an ephemeral TCP
  port, with the same CurveZMQ keys and allowed clients); the client closes the
  lobby channel, connects there and waits for ``serve.start`` (uint64[4]: magic,
  ``START``, 0, 0), sent when one of the ``workers`` session slots is its own;
  queued clients get the slots in the order they reached the lobby;
* kind 3 (``BUSY``, a = sessions running, b = queue bound): all ``workers``
  slots are taken and ``queue`` clients already wait: the client is refused at
  once (:class:`~ezprotocols.errors.ServerBusy`), the lobby listens again;
* kind 1 (``HERE``): on a non-TCP address or with ``single_port`` (one worker, no queue): the
  session continues on this channel, and the lobby listens again only when it
  ends (more clients wait in their connect retry).

At most ``workers`` sessions run concurrently (threads: the protocol kernels
release the GIL); a running session never sees the lobby's clients.
Nothing secret crosses the lobby; the port and the counts are public.
"""
from __future__ import annotations

import collections
import queue as queue_mod
import re
import sys
import threading
import time

import numpy as np

from .. import net
from ..errors import EzpError, HandshakeFailed, PeerTimeout, ProtocolError, ServerBusy

__all__ = ["serve_forever", "open_client", "HELLO_MAGIC", "MAX_SLOTS"]

HELLO_MAGIC = 0x455A5053525632          # "EZPSRV2" (version 2: wait queue, serve.start, BUSY)
HERE, REDIRECT, BUSY, START = 1, 2, 3, 4
#: largest ``workers`` and ``queue`` (the counts a BUSY hello carries are bounded by it)
MAX_SLOTS = 1 << 16
U64 = np.uint64


def _await_close(ch, wait: float = 5.0) -> None:
    """Let the client close first, so that its closing frame is not delivered to the
    next listener bound on the same address (ZeroMQ reconnects a PAIR socket)."""
    save, ch.timeout = ch.timeout, wait
    try:
        ch.recv_bytes("serve.bye", max_nbytes=0)
    except EzpError:
        pass
    finally:
        ch.timeout = save


def _listen_retry(address, **kw):
    """Bind ``address`` (the previous lobby's socket may hold the port briefly)."""
    import zmq
    for attempt in range(50):
        try:
            return net.listen(address, **kw)
        except PeerTimeout:
            raise
        except EzpError as e:                  # a stale client's goodbye frame: listen again
            print(f"handshake failed ({e}); listening again", file=sys.stderr)
            time.sleep(0.1)
        except zmq.ZMQError as e:
            if e.errno != zmq.EADDRINUSE or attempt == 49:
                raise
            time.sleep(0.1)
    return None


def _session_address(address: str) -> str:
    m = re.match(r"^tcp://(.+):(\d+|\*)$", address)
    if not m:
        raise ValueError(f"--workers > 1 needs a tcp:// address, not {address!r}")
    return f"tcp://{m.group(1)}:*"


def serve_forever(address: str, handle, *, workers: int = 1, queue: int = 8, sessions: int = 0,
                  timeout: float = 120.0, accept_timeout: float | None = None, curve_keypair=None,
                  allowed_clients=None, on_result=None, on_error=None, stop: threading.Event | None = None,
                  single_port: bool = False) -> int:
    """Serve sessions on ``address``: ``handle(channel)`` runs one session (in a
    worker thread on a TCP address) and returns its result, passed to
    ``on_result(result)``; a failed session goes to ``on_error(exc)`` and the
    server goes on.  While ``workers`` sessions run, up to ``queue`` more clients
    wait (served in order); a client beyond that is told at once that the server
    is busy.  Stops after ``sessions`` sessions (0: never) or when ``stop`` is
    set; returns the number of sessions completed.  ``single_port``: every session
    runs on the lobby's own connection (``HERE``, one at a time, no queue: waiting
    clients retry their connect), never on an ephemeral port: for a model owner behind
    one forwarded port or a TCP proxy."""
    if not 1 <= workers <= MAX_SLOTS:
        raise ValueError(f"workers must be in 1..{MAX_SLOTS}")
    if not 0 <= queue <= MAX_SLOTS:
        raise ValueError(f"queue must be in 0..{MAX_SLOTS}")
    tcp = address.startswith("tcp://") and not single_port
    if single_port and workers > 1:
        raise ValueError("single_port serves one session at a time: workers must be 1")
    if workers > 1 and not tcp:
        _session_address(address)              # raises: several workers need a tcp:// address
    sess_addr = _session_address(address) if tcp else None
    slots = threading.Semaphore(workers)       # HERE path (non-TCP address) only
    lock = threading.Lock()
    done = [0]
    ended = [0]
    running = [0]                              # TCP path: slots taken
    waiting: collections.deque = collections.deque()   # TCP path: queued clients' turns, in order
    threads = []
    keys = {"curve_keypair": curve_keypair, "allowed_clients": allowed_clients}

    def pass_on():
        """A slot is free: the first queued client gets it."""
        with lock:
            if waiting:
                waiting.popleft().set()
            else:
                running[0] -= 1

    def finish(fn, ch, release):
        try:
            res = fn(ch)
        except Exception as e:  # noqa: BLE001 - one failed session never stops the server
            if on_error:
                on_error(e)
            return False
        finally:
            with lock:
                ended[0] += 1
            release()
        with lock:
            done[0] += 1
        if on_result:
            on_result(res)
        return True

    def run_here(ch):
        try:
            r = handle(ch)
            _await_close(ch)
            return r
        finally:
            ch.close()

    def run_redirected(ready: queue_mod.Queue, turn: threading.Event):
        ch = None
        try:
            ch = net.listen(sess_addr, timeout=timeout, accept_timeout=30.0,
                            on_bound=lambda ep: ready.put(ep), **keys)
        except BaseException as e:  # noqa: BLE001 - reported, the slot (or the place in the queue) is freed
            ready.put(e)
            with lock:
                ended[0] += 1
                queued = turn in waiting
                if queued:
                    waiting.remove(turn)
            if not queued:
                pass_on()
            if on_error and isinstance(e, EzpError):
                on_error(e)
            return
        turn.wait()

        def start_then_run(c):
            c.send("serve.start", np.array([HELLO_MAGIC, START, 0, 0], U64))
            return run_here(c)
        finish(start_then_run, ch, pass_on)

    started = 0
    def more():
        # completed sessions plus those running or queued may reach ``sessions``; failed ones do not count
        with lock:
            return sessions == 0 or done[0] + (started - ended[0]) < sessions

    while not (stop is not None and stop.is_set()):
        if sess_addr is None:
            slots.acquire()
        last = not more()                      # ``sessions`` reached by those running: only refuse more
        if last:
            if sess_addr is None:
                slots.release()
            if started == ended[0]:
                break
            if sess_addr is None:
                time.sleep(0.05)
                continue
        try:
            lobby = _listen_retry(address, timeout=timeout, accept_timeout=0.25 if last else accept_timeout, **keys)
        except PeerTimeout:
            if sess_addr is None:
                slots.release()
            if stop is not None or last:       # idle: look at the stop flag (or the sessions), listen again
                continue
            raise
        except BaseException:
            if sess_addr is None:
                slots.release()
            raise
        if lobby is None:
            if sess_addr is None:
                slots.release()
            continue
        if sess_addr is None:
            started += 1
            try:
                lobby.send("serve.hello", np.array([HELLO_MAGIC, HERE, 0, 0], U64))
            except EzpError as e:
                with lock:
                    ended[0] += 1
                slots.release()
                lobby.close()
                if on_error:
                    on_error(e)
                continue
            if not finish(run_here, lobby, slots.release):
                time.sleep(1.5)     # let the failed client's socket go (it would reconnect to the next listener)
            continue
        if last:
            # the running sessions may reach ``sessions``: a client that would be queued is held here
            # until they end (one that fails frees its place); one beyond the queue is refused at once
            with lock:
                full = running[0] >= workers and len(waiting) >= queue
            while not full and not more() and started != ended[0] and not (stop is not None and stop.is_set()):
                time.sleep(0.05)
            last = not more()
        turn = threading.Event()
        with lock:
            if last:
                turn, busy = None, max(1, running[0])
            elif running[0] < workers:
                running[0] += 1
                turn.set()
                place = 0
            elif len(waiting) < queue:
                waiting.append(turn)
                place = len(waiting)
            else:
                turn, busy = None, running[0]
        if turn is None:                       # refused at once; the running sessions never notice
            try:
                lobby.send("serve.hello", np.array([HELLO_MAGIC, BUSY, busy, queue], U64))
                _await_close(lobby)
            except EzpError:
                pass
            finally:
                lobby.close()
            continue
        started += 1
        ready: queue_mod.Queue = queue_mod.Queue()
        t = threading.Thread(target=run_redirected, args=(ready, turn), daemon=True, name=f"ezp-serve-{started}")
        t.start()
        threads.append(t)
        ep = ready.get()
        try:
            if isinstance(ep, BaseException):
                raise ep
            port = int(ep.rsplit(":", 1)[1])
            lobby.send("serve.hello", np.array([HELLO_MAGIC, REDIRECT, port, place], U64))
            _await_close(lobby)
        except EzpError as e:
            if on_error:
                on_error(e)
        finally:
            lobby.close()
        threads = [t for t in threads if t.is_alive()]
    for t in threads:
        t.join()
    return done[0]


def open_client(address: str, timeout: float = 120.0, *, curve_server_key=None, curve_keypair=None,
                connect_timeout: float | None = None, attempt_timeout: float = 2.0):
    """Connect to a :func:`serve_forever` server and return the session channel
    (following a redirect to a session socket).  The lobby is tried with fresh
    sockets every ``attempt_timeout`` seconds until ``connect_timeout`` (default
    ``timeout``): a hello that reached a lobby socket just as it closed is lost.
    A queued client waits for its turn until that deadline (then PeerTimeout);
    a server with every worker busy and a full queue answers at once
    (:class:`~ezprotocols.errors.ServerBusy`)."""
    deadline = time.monotonic() + (timeout if connect_timeout is None else connect_timeout)
    while True:
        left = deadline - time.monotonic()
        try:
            ch = net.connect(address, timeout=timeout, connect_timeout=max(0.1, min(attempt_timeout, left)),
                             curve_server_key=curve_server_key, curve_keypair=curve_keypair)
            break
        except PeerTimeout:
            if time.monotonic() >= deadline:
                raise
        except HandshakeFailed as e:
            # without CurveZMQ on our side, a failed ZMTP handshake (no detail) means we reached a
            # session socket that was closing (its linger); a mechanism mismatch is final
            if curve_server_key is not None or "one side uses CurveZMQ" in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    try:
        h = ch.recv_array("serve.hello", U64, (4,))
    except BaseException:
        ch.abort("no hello")
        raise
    kind, a, b = int(h[1]), int(h[2]), int(h[3])
    if int(h[0]) != HELLO_MAGIC or not (
            (kind == HERE and a == b == 0) or (kind == REDIRECT and 0 < a < 65536 and b <= MAX_SLOTS)
            or (kind == BUSY and 0 < a <= MAX_SLOTS and b <= MAX_SLOTS)):
        ch.abort("bad hello")
        raise ProtocolError("serve.hello: malformed (is the peer an ezprotocols server of this version?)")
    if kind == HERE:
        return ch
    ch.close()
    if kind == BUSY:
        raise ServerBusy(f"the model owner is busy ({a} session{'s' if a != 1 else ''} running, "
                         f"queue full); try again later")
    m = re.match(r"^tcp://(.+):(\d+)$", address)
    if not m:
        raise ProtocolError("serve.hello: a redirect on a non-TCP address")
    ch = net.connect(f"tcp://{m.group(1)}:{a}", timeout=timeout, connect_timeout=30.0,
                     curve_server_key=curve_server_key, curve_keypair=curve_keypair)
    # queued (place b > 0): wait for our turn until the connect deadline, at least a few seconds
    save, ch.timeout = ch.timeout, max(5.0, deadline - time.monotonic())
    try:
        st = ch.recv_array("serve.start", U64, (4,))
    except PeerTimeout:
        ch.abort("gave up waiting")
        raise PeerTimeout(f"the model owner is busy: still queued (place {b}) after the connect timeout; "
                          "try again later") from None
    except BaseException:
        ch.abort("no start")
        raise
    finally:
        ch.timeout = save
    if int(st[0]) != HELLO_MAGIC or int(st[1]) != START or int(st[2]) != 0 or int(st[3]) != 0:
        ch.abort("bad start")
        raise ProtocolError("serve.start: malformed")
    return ch
