"""The serve lobby's bounded wait queue: while every worker is busy, up to
``queue`` clients wait and are served in order; a client beyond that is told at once
that the model owner is busy; the running session never notices."""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ezprotocols import ServerBusy
from ezprotocols.nn.serving import open_client, serve_forever
from ezprotocols.testing import free_tcp_port

U64 = np.uint64
MLP = os.path.join(os.path.dirname(__file__), "data", "torch_mlp.onnx")
EXE = [sys.executable, "-m", "ezprotocols.party"]


def _echo(ch):
    x = ch.recv_array("ping", U64, (4,))
    ch.send("pong", x + U64(1))
    return int(x[0])


def _ping(ch, v):
    ch.send("ping", np.full(4, v, U64))
    got = ch.recv_array("pong", U64, (4,)).tolist()
    ch.close()
    return got


@pytest.fixture
def server():
    made = []

    def start(queue, workers=1):
        addr = f"tcp://127.0.0.1:{free_tcp_port()}"
        res, errs, stop = [], [], threading.Event()
        t = threading.Thread(target=serve_forever, args=(addr, _echo), daemon=True,
                             kwargs=dict(workers=workers, queue=queue, timeout=20, accept_timeout=0.5, stop=stop,
                                         on_result=res.append, on_error=errs.append))
        t.start()
        made.append((stop, t))
        return addr, res, errs
    yield start
    for stop, t in made:
        stop.set()
        t.join(30)


def _refused_at_once(addr):
    t0 = time.perf_counter()
    with pytest.raises(ServerBusy, match=r"the model owner is busy \(1 session running, queue full\); try again"):
        open_client(addr, timeout=30)
    assert time.perf_counter() - t0 < 3          # not after the 30 s timeout


def test_queue_0_refuses_at_once(server):
    addr, res, errs = server(queue=0)
    a = open_client(addr, timeout=20)               # the running session
    _refused_at_once(addr)
    _refused_at_once(addr)
    assert _ping(a, 7) == [8] * 4                   # undisturbed
    b = open_client(addr, timeout=20)               # a worker is free again
    assert _ping(b, 1) == [2] * 4
    deadline = time.monotonic() + 10
    while len(res) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert res == [7, 1] and errs == []


def test_queue_2_serves_in_order_then_refuses(server):
    addr, res, errs = server(queue=2)
    a = open_client(addr, timeout=20)
    order, chans = [], {}

    def queued(name):
        chans[name] = open_client(addr, timeout=20)   # returns when its turn comes
        order.append(name)
        chans[name + "_r"] = _ping(chans[name], 10 if name == "b" else 20)

    tb = threading.Thread(target=queued, args=("b",), daemon=True)
    tb.start()
    time.sleep(1.0)                                 # b reached the lobby first
    tc = threading.Thread(target=queued, args=("c",), daemon=True)
    tc.start()
    time.sleep(1.0)
    _refused_at_once(addr)                          # queue of 2 full
    assert order == []                              # nobody jumped the running session
    assert _ping(a, 3) == [4] * 4
    tb.join(20)
    tc.join(20)
    assert order == ["b", "c"]
    assert chans["b_r"] == [11] * 4 and chans["c_r"] == [21] * 4
    deadline = time.monotonic() + 10
    while len(res) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert res == [3, 10, 20] and errs == []


def test_malformed_hello_is_refused():
    """The lobby message stays strictly checked on the client side: a BUSY hello with
    out-of-range counts is a ProtocolError, not a message."""
    from ezprotocols import ProtocolError
    from ezprotocols.net import listen
    from ezprotocols.nn.serving import BUSY, HELLO_MAGIC
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"

    def bad():
        ch = listen(addr, timeout=10)
        ch.send("serve.hello", np.array([HELLO_MAGIC, BUSY, 1 << 40, 0], U64))
        ch.close()

    t = threading.Thread(target=bad, daemon=True)
    t.start()
    with pytest.raises(ProtocolError, match="serve.hello: malformed"):
        open_client(addr, timeout=10)
    t.join(10)


# ------------------------------------------------------------------ through the CLI

def _hold(addr):
    """A hand-rolled client holding a session (the model owner chose the engines)."""
    from ezprotocols import Session
    ch = open_client(addr, timeout=60)
    s = Session(1, ch, backends_from=0)
    s.__enter__()
    return s


def _query(s, x):
    from ezprotocols.nn.secure import query_session
    try:
        return query_session(s, x)
    finally:
        s.__exit__(None, None, None)


def _busy_cli(addr, x_path):
    t0 = time.perf_counter()
    r = subprocess.run(EXE + ["query", "--connect", addr, "--input", x_path, "--json", "--timeout", "60"],
                       capture_output=True, text=True, timeout=60)
    took = time.perf_counter() - t0
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1] == \
        "error: the model owner is busy (1 session running, queue full); try again later", r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["type"] == "ServerBusy"
    assert took < 20                                # the interpreter's start-up, not the 60 s timeout


@pytest.mark.parametrize("queue", [0, 1])
def test_cli_queue(queue, tmp_path):
    from ezprotocols.nn import load_onnx, predict_classes, run_plaintext
    from ezprotocols.party import main
    plan = load_onnx(MLP)
    x = np.random.default_rng(3).standard_normal((2,) + plan.input_shape)
    np.save(tmp_path / "x.npy", x)
    want = predict_classes(plan, run_plaintext(plan, x, logits=True))
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    out = {}
    srv = threading.Thread(target=lambda: out.setdefault("rc", main(
        ["serve", "--model", MLP, "--listen", addr, "--sessions", str(1 + queue), "--queue", str(queue),
         "--timeout", "60"])), daemon=True)
    srv.start()
    a = _hold(addr)
    got = {}
    if queue:
        tb = threading.Thread(target=lambda: got.setdefault("b", _query(_hold(addr), x)), daemon=True)
        tb.start()
        time.sleep(1.5)                              # b waits in the queue
    _busy_cli(addr, str(tmp_path / "x.npy"))
    assert np.array_equal(_query(a, x)["classes"], want)
    if queue:
        tb.join(120)
        assert np.array_equal(got["b"]["classes"], want)
    srv.join(60)
    assert out.get("rc") == 0


def test_cli_queue_is_validated():
    r = subprocess.run(EXE + ["serve", "--model", MLP, "--listen", "tcp://127.0.0.1:5", "--queue", "-1", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "0..65536" in r.stderr
    assert "error" in json.loads(r.stdout.strip().splitlines()[-1])


def _forwarder(upstream_port):
    """A TCP forwarder on a fresh port (a stand-in for one forwarded port / a proxy):
    returns (port, bytes carried so far as a one-element list)."""
    import socket
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    carried = [0]

    def pump(a, b):
        try:
            while True:
                d = a.recv(1 << 16)
                if not d:
                    break
                carried[0] += len(d)
                b.sendall(d)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept():
        while True:
            c, _ = lsock.accept()
            try:
                u = socket.create_connection(("127.0.0.1", upstream_port))
            except OSError:             # between two sessions nothing listens: the client retries
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return lsock.getsockname()[1], carried


def test_single_port_sessions_run_through_one_forwarded_port():
    """With single_port every session stays on the listening connection (HERE), so a
    client that reaches the model owner only through one forwarded port is served,
    one session after the other, and all of its traffic crosses the forwarder."""
    port = free_tcp_port()
    res, errs, stop = [], [], threading.Event()
    t = threading.Thread(target=serve_forever, args=(f"tcp://127.0.0.1:{port}", _echo), daemon=True,
                         kwargs=dict(timeout=20, accept_timeout=0.5, stop=stop, single_port=True,
                                     on_result=res.append, on_error=errs.append))
    t.start()
    try:
        fport, carried = _forwarder(port)
        for v in (3, 8):
            before = carried[0]
            assert _ping(open_client(f"tcp://127.0.0.1:{fport}", timeout=30), v) == [v + 1] * 4
            assert carried[0] - before >= 2 * 32             # ping and pong crossed the forwarder
        deadline = time.monotonic() + 10
        while len(res) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert res == [3, 8] and not errs
    finally:
        stop.set()
        t.join(30)
    with pytest.raises(ValueError, match="workers must be 1"):
        serve_forever("tcp://127.0.0.1:1", _echo, workers=2, single_port=True)
