"""Kill tests: either party killed (SIGKILL) at points during base OT, OT
extension, garbling and a validation batch; the other ends with a clear peer error,
no traceback, within its timeout, and ``serve`` goes on serving the next client."""
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ezprotocols.nn.serving import open_client
from ezprotocols.testing import free_tcp_port

DATA = os.path.join(os.path.dirname(__file__), "data")
MLP = os.path.join(DATA, "torch_mlp.onnx")
EXE = [sys.executable, "-m", "ezprotocols.party"]
TIMEOUT = 10

#: (step about to be sent, its occurrence): the process dies instead of sending it
CLIENT_KILL_POINTS = {"base OT": ("ot.s1.base.B", 1), "OT extension": ("ot.s0.u", 1),
                      "comparison (millionaires)": ("cmp.msb.leaf", 1), "validation batch 2": ("arith.input", 2)}
SERVER_KILL_POINTS = {"base OT": ("ot.s1.base.A", 1), "OT extension": ("ot.s1.u", 1),
                      "comparison (millionaires)": ("cmp.msb.open0", 1),
                      "validation batch 1 reveal": ("arith.reveal", 1)}
#: garbling is no longer on the default nn path (compare="ot"): killed in a garbled ReLU
GC_KILL_POINTS = {"garbler (P0) in the tables": (0, "yao.tables", 1), "evaluator (P1) in the run": (1, "yao.run", 1)}


def _arm(ch, step, nth):
    """Make the channel's process die (SIGKILL) when it is about to send ``step`` for the nth time."""
    seen = {"n": 0}
    send, exchange = ch.send, ch.exchange

    def check(s):
        if s == step:
            seen["n"] += 1
            if seen["n"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    def send_(s, d):
        check(s)
        return send(s, d)

    def exchange_(s, d):
        check(s)
        return exchange(s, d)

    ch.send, ch.exchange = send_, exchange_


def _data():
    from ezprotocols.nn import load_onnx
    plan = load_onnx(MLP)
    x = np.random.default_rng(3).standard_normal((6,) + plan.input_shape)
    return plan, x, np.arange(6) % plan.n_classes


def _doomed_client(addr, step, nth):
    from ezprotocols import Session
    from ezprotocols.nn.secure import validate_session
    _, x, y = _data()
    try:
        ch = open_client(addr, timeout=TIMEOUT)
        _arm(ch, step, nth)
        with Session(1, ch, backends_from=0) as s:
            validate_session(s, x, y, batch=3)
    except Exception as e:  # noqa: BLE001
        with open(f"/tmp/ezp-kill-{os.getpid()}.txt", "w") as f:
            f.write(f"{type(e).__name__}: {e}")
        os._exit(1)
    os._exit(3)                         # the kill point was never reached


def _doomed_server(addr, step, nth):
    from ezprotocols import Session, net
    from ezprotocols.nn.secure import serve_session
    plan, _, _ = _data()
    plan.stage_bytes = 0                # every comparison through the millionaires (the kill points)
    from ezprotocols.nn.serving import HELLO_MAGIC, HERE
    ch = net.listen(addr, timeout=TIMEOUT)
    ch.send("serve.hello", np.array([HELLO_MAGIC, HERE, 0, 0], np.uint64))     # as serve's lobby does
    _arm(ch, step, nth)
    with Session(0, ch, backends_from=0) as s:
        serve_session(s, plan)
    os._exit(3)


def test_client_killed_serve_goes_on(tmp_path):
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    srv = subprocess.Popen(EXE + ["serve", "--model", MLP, "--listen", addr, "--sessions", "1", "--stage-bytes", "0",
                                  "--timeout", str(TIMEOUT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ctx = mp.get_context("fork")
        for name, (step, nth) in CLIENT_KILL_POINTS.items():
            p = ctx.Process(target=_doomed_client, args=(addr, step, nth))
            p.start()
            p.join(60)
            why = ""
            if os.path.exists(f"/tmp/ezp-kill-{p.pid}.txt"):
                with open(f"/tmp/ezp-kill-{p.pid}.txt") as f:
                    why = f.read()
                os.unlink(f"/tmp/ezp-kill-{p.pid}.txt")
            assert p.exitcode == -signal.SIGKILL, f"{name}: client exit {p.exitcode}: {why}"
        # the next client is served
        from ezprotocols import Session
        from ezprotocols.nn.secure import validate_session
        _, x, y = _data()
        t = time.perf_counter()
        with Session(1, open_client(addr, timeout=60), backends_from=0) as s:
            assert validate_session(s, x, y, batch=3)["samples"] == 6
        assert time.perf_counter() - t < 4 * TIMEOUT
        out, err = srv.communicate(timeout=60)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    assert srv.returncode == 0, err
    assert "Traceback" not in err
    fails = [line for line in err.splitlines() if line.startswith("session failed")]
    assert len(fails) == len(CLIENT_KILL_POINTS), err
    assert all("PeerGone" in f for f in fails), fails


@pytest.mark.parametrize("point", list(SERVER_KILL_POINTS))
def test_server_killed_client_ends_cleanly(point, tmp_path):
    step, nth = SERVER_KILL_POINTS[point]
    _, x, y = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    p = mp.get_context("fork").Process(target=_doomed_server, args=(addr, step, nth))
    p.start()
    t = time.perf_counter()
    r = subprocess.run(EXE + ["validate", "--connect", addr, "--data", str(tmp_path / "x.npy"), "--labels",
                              str(tmp_path / "y.npy"), "--batch", "3", "--timeout", str(TIMEOUT), "--json"],
                       capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t
    p.join(10)
    assert p.exitcode == -signal.SIGKILL, f"{point}: server exit {p.exitcode}"
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "PeerGone" in r.stderr, r.stderr
    assert '"type": "PeerGone"' in r.stdout
    assert took < TIMEOUT + 8, took


def _doomed_relu(addr, role, step, nth):
    from ezprotocols import Session, net
    from ezprotocols.protocols import relu
    ch = net.listen(addr, timeout=TIMEOUT) if role == 0 else net.connect(addr, timeout=TIMEOUT)
    _arm(ch, step, nth)
    v = np.linspace(-5, 5, 2000)
    with Session(role, ch, compare="gc") as s:
        s.reveal(relu(s.input(v if role == 0 else None, owner=0, shape=v.shape)))
    os._exit(3)


@pytest.mark.parametrize("point", list(GC_KILL_POINTS))
def test_killed_during_garbling(point):
    from ezprotocols import PeerGone, Session, net
    from ezprotocols.protocols import relu
    role, step, nth = GC_KILL_POINTS[point]
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    p = mp.get_context("fork").Process(target=_doomed_relu, args=(addr, role, step, nth))
    p.start()
    me = 1 - role
    v = np.linspace(-5, 5, 2000)
    t = time.perf_counter()
    with pytest.raises(PeerGone):
        ch = net.listen(addr, timeout=TIMEOUT) if me == 0 else net.connect(addr, timeout=TIMEOUT)
        with Session(me, ch, compare="gc") as s:
            s.reveal(relu(s.input(v if me == 0 else None, owner=0, shape=v.shape)))
    assert time.perf_counter() - t < TIMEOUT
    p.join(10)
    assert p.exitcode == -signal.SIGKILL, p.exitcode
