"""Run both parties of a protocol in one program: demos, cost reports, benchmarks and
tests (:mod:`ezprotocols.testing` re-exports :func:`run_pair` for the tests).

>>> from ezprotocols.runner import run_pair
>>> import numpy as np
>>> def p0(s):
...     s.channel.send("hi", np.array([7], dtype=np.uint64))
>>> def p1(s):
...     return int(s.channel.recv_array("hi", np.uint64, (1,))[0])
>>> run_pair(p0, p1)
(None, 7)
"""
from __future__ import annotations

import multiprocessing as mp
import os
import socket
import tempfile
import threading
import time
import traceback

from .errors import PeerGone, PeerTimeout, abort_note
from .net import connect, listen, local_pair
from .session import Session

__all__ = ["run_pair", "free_tcp_port"]


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pick_error(errors):
    """The root cause: a party's own failure rather than the other's resulting PeerGone
    (a failure of its own first, then a timeout, then a PeerGone)."""
    errs = [e for e in errors if e is not None]
    if not errs:
        return None
    for kinds in ((PeerGone, PeerTimeout), (PeerGone,)):
        for e in errs:
            if not isinstance(e, kinds):
                return e
    return errs[0]


def _run_party(role, fn, ch, session_kwargs):
    s = Session(role, ch, **session_kwargs)
    return fn(s)


def run_pair(f0, f1, transport: str = "local", timeout: float = 120.0, **session_kwargs):
    """Run ``f0(session_P0)`` and ``f1(session_P1)`` concurrently; return ``(r0, r1)``.

    ``transport``: ``"local"`` (two threads over :func:`~ezprotocols.net.local_pair`),
    ``"tcp"`` (two processes over loopback TCP) or ``"ipc"`` (two processes over a
    Unix socket).  Either side's exception is re-raised (the root cause, not the
    other side's resulting :class:`PeerGone`); a pair that does not finish within
    ``timeout`` seconds raises :class:`PeerTimeout`.  Extra keyword arguments go to
    :class:`~ezprotocols.Session`.
    """
    if transport == "local":
        return _run_threads(f0, f1, timeout, session_kwargs)
    if transport in ("tcp", "ipc"):
        return _run_processes(f0, f1, transport, timeout, session_kwargs)
    raise ValueError(f"transport must be 'local', 'tcp' or 'ipc', not {transport!r}")


def _run_threads(f0, f1, timeout, session_kwargs):
    c0, c1 = local_pair(timeout=timeout)
    results = [None, None]
    errors = [None, None]

    def target(role, fn, ch):
        try:
            results[role] = _run_party(role, fn, ch, session_kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors[role] = e
            ch.abort(f"party {role} failed: {abort_note(e)}")
        else:
            ch.close()

    threads = [threading.Thread(target=target, args=(r, f, c), name=f"ezp-party-{r}", daemon=True)
               for r, f, c in ((0, f0, c0), (1, f1, c1))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout + 5.0
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [i for i, t in enumerate(threads) if t.is_alive()]
    if alive:
        raise PeerTimeout(f"run_pair: party {alive} did not finish within {timeout:g} s")
    err = _pick_error(errors)
    if err is not None:
        raise err
    return results[0], results[1]


def _child(role, fn, address, timeout, session_kwargs, conn):
    try:
        ch = listen(address, timeout=timeout) if role == 0 else connect(address, timeout=timeout)
        try:
            res = _run_party(role, fn, ch, session_kwargs)
        except BaseException as e:
            ch.abort(f"party {role} failed: {abort_note(e)}")
            raise
        ch.close()
        conn.send(("ok", res))
    except BaseException as e:  # noqa: BLE001
        try:
            conn.send(("err", e))
        except Exception:
            conn.send(("err", RuntimeError(f"party {role}: {type(e).__name__}: {e}\n{traceback.format_exc()}")))
    finally:
        conn.close()


def _run_processes(f0, f1, transport, timeout, session_kwargs):
    ctx = mp.get_context("fork")
    if transport == "tcp":
        address = f"tcp://127.0.0.1:{free_tcp_port()}"
        tmpdir = None
    else:
        tmpdir = tempfile.mkdtemp(prefix="ezp-")
        address = f"ipc://{os.path.join(tmpdir, 'sock')}"
    pipes, procs = [], []
    try:
        for role, fn in ((0, f0), (1, f1)):
            parent, child = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(role, fn, address, timeout, session_kwargs, child),
                            name=f"ezp-party-{role}", daemon=True)
            p.start()
            child.close()
            pipes.append(parent)
            procs.append(p)
        out = [None, None]
        errors = [None, None]
        deadline = time.monotonic() + timeout + 10.0
        for role in (0, 1):
            # results come back from our own child process over a local pipe (never from the peer)
            if pipes[role].poll(max(0.0, deadline - time.monotonic())):
                try:
                    kind, val = pipes[role].recv()
                except EOFError:
                    kind, val = "err", PeerGone(f"run_pair: party {role} process died")
                if kind == "ok":
                    out[role] = val
                else:
                    errors[role] = val
            else:
                errors[role] = PeerTimeout(f"run_pair: party {role} did not finish within {timeout:g} s")
        err = _pick_error(errors)
        if err is not None:
            raise err
        return out[0], out[1]
    finally:
        for p in procs:
            p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join(2.0)
        if tmpdir is not None:
            try:
                os.unlink(os.path.join(tmpdir, "sock"))
            except OSError:
                pass
            os.rmdir(tmpdir)
