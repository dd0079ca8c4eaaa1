"""Fuzz suite: at every step where a party receives data, a scripted peer
sends truncated, oversized, wrong-dtype, wrong-count, replayed and random frames;
the honest party must raise a ProtocolError naming the step within its timeout
(never hang, never crash with anything else), and a server goes on serving.

Every (message, kind) pair of each protocol is tried on both sides
(``test_every_malformed_frame``); hypothesis adds random choices of the message,
the kind and the random bytes (``test_hypothesis_frames``, bounded for CI).  For
long runs outside CI see ``scripts/fuzz_channel.py`` (atheris)."""
import os
import socket
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ezprotocols import PeerGone, PeerTimeout, ProtocolError
from ezprotocols.protocols import relu
from ezprotocols.testing import free_tcp_port

from _fuzzpeer import KINDS, run_hostile

DATA = os.path.join(os.path.dirname(__file__), "data")
TIMEOUT = 4.0


def _bits(n, seed=1):
    return (np.random.default_rng(seed).integers(0, 2, n)).astype(np.uint8)


def _proto_setup():
    f = lambda s: s.shared_prg().random_bytes(8)  # noqa: E731
    return f, f


def _proto_cot():
    return (lambda s: s.ot.send_cot(300)[0].sum()), (lambda s: s.ot.recv_cot(_bits(300)).sum())


def _proto_rot():
    return (lambda s: s.ot.send_rot(200)[0].sum()), (lambda s: s.ot.recv_rot(_bits(200)).sum())


def _proto_chosen():
    m = np.arange(100 * 24, dtype=np.uint64).astype(np.uint8).reshape(100, 24)
    return (lambda s: s.ot.send(m, m ^ 1)), (lambda s: s.ot.recv(_bits(100), 24).sum())


def _proto_acot():
    c = np.arange(150, dtype=np.uint64)
    return (lambda s: s.ot.send_acot(c, 40).sum()), (lambda s: s.ot.recv_acot(_bits(150), 40).sum())


def _proto_triples():
    f = lambda s: s.triples.mul(64)[0].sum()  # noqa: E731
    return f, f


def _proto_relu():
    v = np.array([-3.5, 0.0, 2.25, -1e-4, 7.0])

    def f(s):
        x = s.input(v if s.role == 0 else None, owner=0, shape=v.shape)
        return s.reveal(relu(x))
    return f, f


def _proto_msb_gc():
    from ezprotocols.protocols.comparison import msb
    v = np.array([-3.5, 0.0, 2.25, -1e-4, 7.0])

    def f(s):
        x = s.input(v if s.role == 0 else None, owner=0, shape=v.shape)
        return msb(x, 64, garbler=0).reveal()          # the garbled-circuit comparison
    return f, f


def _proto_nn():
    from ezprotocols.nn import load_onnx
    from ezprotocols.nn.secure import query_session, serve_session
    plan = load_onnx(os.path.join(DATA, "torch_mlp.onnx"))
    x = np.random.default_rng(3).standard_normal((2,) + plan.input_shape)
    return (lambda s: serve_session(s, plan)["samples"]), (lambda s: query_session(s, x)["classes"].tolist())


def _proto_nn_validate():
    from ezprotocols.nn import load_onnx
    from ezprotocols.nn.secure import ServePolicy, serve_session, validate_session
    plan = load_onnx(os.path.join(DATA, "torch_mlp.onnx"))
    x = np.random.default_rng(4).standard_normal((4,) + plan.input_shape)
    y = np.arange(4) % plan.n_classes
    pol = ServePolicy(min_samples=2)
    return (lambda s: serve_session(s, plan, allow_confusion=True, policy=pol)["samples"],
            lambda s: validate_session(s, x, y, confusion=True, batch=2)["samples"])


def _proto_gc_stage():
    from ezprotocols.protocols.gcstage import stage
    v = np.arange(24, dtype=np.uint64).reshape(6, 4) * np.uint64(3)

    def f(s):
        z = stage(s, v if s.role == 0 else np.zeros_like(v), "max_relu", f=1, w_in=20)
        c = stage(s, v if s.role == 0 else np.zeros_like(v), "argmax", w_in=20, reveal_to=1)
        return z.sum(), None if c is None else c.tolist()
    return f, f


def _proto_he_simd():
    from ezprotocols.arith import he_simd
    v = np.arange(40, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return (lambda s: he_simd.shared_mul(s, v, v ^ np.uint64(1)).sum()), \
        (lambda s: he_simd.shared_mul(s, v + np.uint64(5), v).sum())


def _proto_he_split():
    """A shared x shared matmul whose 64-bit plaintexts split into two digits (packed, two
    responses per group), with both directions' public and Galois keys."""
    from ezprotocols.arith import he
    assert he.matmul_plan(32, 1024, 4, 64)["pack"]["split"]
    X = np.arange(32 * 1024, dtype=np.uint64).reshape(32, 1024) * np.uint64(0x9E3779B97F4A7C15)
    Y = X[:4].T.copy()

    def f(s):
        he._setup(s, 0, galois=True)
        he._setup(s, 1, galois=True)
        return he.shared_matmul(s, X, Y).sum()
    return f, f


PROTOCOLS = {"setup": _proto_setup, "base_ot+cot": _proto_cot, "rot": _proto_rot, "chosen": _proto_chosen,
             "acot": _proto_acot, "triples": _proto_triples, "relu(compare,convert)": _proto_relu,
             "msb(garbled)": _proto_msb_gc, "nn query": _proto_nn,
             "nn validate+confusion": _proto_nn_validate, "gc stage": _proto_gc_stage,
             "he simd product": _proto_he_simd, "he split matmul": _proto_he_split}


def _check(res, steps, k, kind, took):
    """The honest side's outcome for the k-th peer message replaced by ``kind``."""
    assert took < TIMEOUT + 3, f"{kind} at {steps[k]}: took {took:.1f} s"
    if isinstance(res, ProtocolError):
        if kind != "replay":
            assert steps[k] in str(res), f"{kind} at message {k} ({steps[k]}): {res}"
        return "protocol_error"
    # a replay identical in step, dtype and shape is indistinguishable from data
    assert kind == "replay", f"{kind} at message {k} ({steps[k]}): honest side got {res!r}"
    assert not isinstance(res, BaseException) or isinstance(res, (ProtocolError, PeerGone, PeerTimeout)), res
    return "undetectable_replay"


_STEPS: dict = {}


def message_picks(steps):
    """The messages to replace: the first one of every distinct step (so every step
    that receives data is hit), and the last one."""
    first = {}
    for i, st_ in enumerate(steps):
        first.setdefault(st_, i)
    return sorted(set(first.values()) | {len(steps) - 1})


def _steps(name, role):
    key = (name, role)
    if key not in _STEPS:
        f = PROTOCOLS[name]()
        res, steps, _ = run_hostile(f[role], f[1 - role], role, timeout=30)
        assert not isinstance(res, BaseException), res
        _STEPS[key] = steps
    return _STEPS[key]


@pytest.mark.parametrize("role", [0, 1])
@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_every_malformed_frame(name, role, request):
    """The first message of each step the peer sends, replaced by each kind of malformed frame."""
    steps = _steps(name, role)
    f = PROTOCOLS[name]()
    counts: dict = {}
    for k in message_picks(steps):
        for kind in KINDS:
            res, _, took = run_hostile(f[role], f[1 - role], role, k=k, kind=kind,
                                       rnd=os.urandom(1 + k * 7 % 300), timeout=TIMEOUT)
            _check(res, steps, k, kind, took)
            counts[steps[k]] = counts.get(steps[k], 0) + 1
    request.node.user_properties.append(("cases", counts))
    assert counts


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(PROTOCOLS)), role=st.integers(0, 1), pick=st.integers(0, 10 ** 6),
       kind=st.sampled_from(KINDS), rnd=st.binary(min_size=0, max_size=400))
def test_hypothesis_frames(name, role, pick, kind, rnd):
    steps = _steps(name, role)
    k = pick % len(steps)
    f = PROTOCOLS[name]()
    res, _, took = run_hostile(f[role], f[1 - role], role, k=k, kind=kind, rnd=rnd, timeout=TIMEOUT)
    _check(res, steps, k, kind, took)


@settings(max_examples=20, deadline=None)
@given(payload=st.binary(min_size=0, max_size=2000))
def test_random_bytes_to_a_listening_port(payload):
    """Random bytes straight to the TCP port of a listener neither reach the protocol
    nor stop the listener from accepting the real client next."""
    from ezprotocols.net import connect, listen
    port = free_tcp_port()
    out = {}

    def srv():
        try:
            ch = listen(f"tcp://127.0.0.1:{port}", timeout=10)
            out["got"] = ch.recv_bytes("x", max_nbytes=16)
            ch.close()
        except Exception as e:  # noqa: BLE001
            out["got"] = e

    t = threading.Thread(target=srv, daemon=True)
    t.start()
    for _ in range(50):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as so:
                so.sendall(payload)
                time.sleep(0.02)
            break
        except OSError:
            time.sleep(0.02)
    c = connect(f"tcp://127.0.0.1:{port}", timeout=10)
    c.send("x", b"hello")
    c.close()
    t.join(15)
    assert out.get("got") == b"hello", out
