"""Serving several client sessions at once on one listening address.

A ZeroMQ PAIR socket carries exactly one peer, and unbinding it drops its
connections, so concurrency goes through a *lobby*: the model owner binds the
public address; each client that connects there receives ``serve.hello``
(uint64[4]: magic, kind, port, 0):

* kind 1 (``HERE``): the session continues on this channel (one worker: the
  lobby is the session, as before);
* kind 2 (``REDIRECT``): the owner has bound a fresh session socket on the same
  host (an ephemeral TCP port, with the same CurveZMQ keys and allowed
  clients); the client closes the lobby channel and connects there.

The lobby accepts a client only when one of the ``workers`` session slots is
free, so at most ``workers`` sessions run concurrently (threads: the protocol
kernels release the GIL); more clients wait in their connect retry.
Nothing secret crosses the lobby; the port is public.
"""
from __future__ import annotations

import queue
import re
import sys
import threading
import time

import numpy as np

from .. import net
from ..errors import EzpError, HandshakeFailed, PeerTimeout, ProtocolError

__all__ = ["serve_forever", "open_client", "HELLO_MAGIC"]

HELLO_MAGIC = 0x455A5053525631          # "EZPSRV1"
HERE, REDIRECT = 1, 2
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


def serve_forever(address: str, handle, *, workers: int = 1, sessions: int = 0, timeout: float = 120.0,
                  accept_timeout: float | None = None, curve_keypair=None, allowed_clients=None,
                  on_result=None, on_error=None, stop: threading.Event | None = None) -> int:
    """Serve sessions on ``address``: ``handle(channel)`` runs one session (in a
    worker thread when ``workers > 1``) and returns its result, passed to
    ``on_result(result)``; a failed session goes to ``on_error(exc)`` and the
    server goes on.  Stops after ``sessions`` sessions (0: never) or when ``stop``
    is set; returns the number of sessions completed."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    sess_addr = _session_address(address) if workers > 1 else None
    slots = threading.Semaphore(workers)
    lock = threading.Lock()
    done = [0]
    ended = [0]
    threads = []
    keys = {"curve_keypair": curve_keypair, "allowed_clients": allowed_clients}

    def finish(fn, ch):
        try:
            res = fn(ch)
        except Exception as e:  # noqa: BLE001 - one failed session never stops the server
            if on_error:
                on_error(e)
            return False
        finally:
            with lock:
                ended[0] += 1
            slots.release()
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

    def run_redirected(ready: queue.Queue):
        ch = None
        try:
            ch = net.listen(sess_addr, timeout=timeout, accept_timeout=30.0,
                            on_bound=lambda ep: ready.put(ep), **keys)
        except BaseException as e:  # noqa: BLE001 - reported, the slot is freed
            ready.put(e)
            with lock:
                ended[0] += 1
            slots.release()
            if on_error and isinstance(e, EzpError):
                on_error(e)
            return
        finish(run_here, ch)

    started = 0
    def more():
        # completed sessions plus those still running may reach ``sessions``; failed ones do not count
        with lock:
            return sessions == 0 or done[0] + (started - ended[0]) < sessions

    while not (stop is not None and stop.is_set()):
        slots.acquire()
        if not more():
            slots.release()
            if started == ended[0]:
                break
            time.sleep(0.05)
            continue
        try:
            lobby = _listen_retry(address, timeout=timeout, accept_timeout=accept_timeout, **keys)
        except PeerTimeout:
            slots.release()
            if stop is not None:               # idle: look at the stop flag, listen again
                continue
            raise
        except BaseException:
            slots.release()
            raise
        if lobby is None:
            slots.release()
            continue
        started += 1
        if workers == 1:
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
            if not finish(run_here, lobby):
                time.sleep(1.5)     # let the failed client's socket go (it would reconnect to the next listener)
            continue
        ready: queue.Queue = queue.Queue()
        t = threading.Thread(target=run_redirected, args=(ready,), daemon=True, name=f"ezp-serve-{started}")
        t.start()
        threads.append(t)
        ep = ready.get()
        try:
            if isinstance(ep, BaseException):
                raise ep
            port = int(ep.rsplit(":", 1)[1])
            lobby.send("serve.hello", np.array([HELLO_MAGIC, REDIRECT, port, 0], U64))
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
    ``timeout``): a hello that reached a lobby socket just as it closed is lost,
    and a busy server does not listen until a worker is free."""
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
    if int(h[0]) != HELLO_MAGIC or int(h[1]) not in (HERE, REDIRECT) or not 0 <= int(h[2]) < 65536:
        ch.abort("bad hello")
        raise ProtocolError("serve.hello: malformed (is the peer an ezprotocols server of this version?)")
    if int(h[1]) == HERE:
        return ch
    ch.close()
    m = re.match(r"^tcp://(.+):(\d+)$", address)
    if not m:
        raise ProtocolError("serve.hello: a redirect on a non-TCP address")
    return net.connect(f"tcp://{m.group(1)}:{int(h[2])}", timeout=timeout, connect_timeout=30.0,
                       curve_server_key=curve_server_key, curve_keypair=curve_keypair)
