"""CLI hardening: every argument checked before connecting (exit 2, JSON
error with --json), CurveZMQ off loopback, serve policy, a serve loop that survives
any failure of one session."""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ezprotocols import PeerGone
from ezprotocols.testing import free_tcp_port

DATA = os.path.join(os.path.dirname(__file__), "data")
MLP = os.path.join(DATA, "torch_mlp.onnx")
EXE = [sys.executable, "-m", "ezprotocols.party"]


def cli(*args, timeout=60):
    return subprocess.run(EXE + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def x_npy(tmp_path):
    from ezprotocols.nn import load_onnx
    plan = load_onnx(MLP)
    p = tmp_path / "x.npy"
    np.save(p, np.random.default_rng(0).standard_normal((2,) + plan.input_shape))
    return str(p)


@pytest.mark.parametrize("args,match", [
    (["--timeout", "nan"], "finite"), (["--timeout", "0"], "finite"), (["--timeout", "-5"], "finite"),
    (["--timeout", "inf"], "finite"),
])
def test_bad_timeouts_are_usage_errors(args, match, x_npy):
    r = cli("query", "--connect", "tcp://127.0.0.1:5", "--input", x_npy, "--json", *args)
    assert r.returncode == 2 and match in r.stderr
    assert "error" in json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args,match", [
    (["--accept-timeout", "nan"], "finite"), (["--sessions", "-1"], "0.."), (["--frac-bits", "63"], "0..30"),
    (["--act-bits", "65"], "2..64"), (["--listen", "tcp://127.0.0.1:70000"], "65535"),
    (["--max-batch", "0"], "1..4096"),
])
def test_bad_serve_arguments(args, match):
    base = {"--listen": "tcp://127.0.0.1:5"}
    extra = [a for a in args]
    if "--listen" not in extra:
        extra += ["--listen", base["--listen"]]
    r = cli("serve", "--model", MLP, "--json", *extra)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert match in r.stderr
    assert "error" in json.loads(r.stdout.strip().splitlines()[-1])


def test_port_out_of_range_for_a_client(x_npy):
    r = cli("query", "--connect", "tcp://127.0.0.1:65536", "--input", x_npy, "--json")
    assert r.returncode == 2 and "65535" in r.stderr


def test_forged_npy_header_is_a_clean_error(tmp_path):
    p = tmp_path / "huge.npy"
    hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000), }"
    hdr = hdr + " " * (63 - (10 + len(hdr)) % 64) + "\n"
    with open(p, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr.encode() + b"\0" * 64)
    t = time.perf_counter()
    r = cli("query", "--connect", "tcp://127.0.0.1:5", "--input", str(p), "--json", "--timeout", "30")
    assert r.returncode == 2 and "header claims" in r.stderr and "Traceback" not in r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["type"] == "input"
    assert time.perf_counter() - t < 20


def test_unwritable_output_checked_before_connecting(x_npy, tmp_path):
    t = time.perf_counter()
    r = cli("query", "--connect", "tcp://127.0.0.1:5", "--input", x_npy, "--output", "/nonexistent-dir/o.npy",
            "--timeout", "30")
    assert r.returncode == 2 and "--output" in r.stderr
    assert time.perf_counter() - t < 20           # not after a 30 s connection attempt


def test_bad_key_file_checked_before_connecting(x_npy, tmp_path):
    bad = tmp_path / "k.json"
    bad.write_text("{}")
    r = cli("query", "--connect", "tcp://127.0.0.1:5", "--input", x_npy, "--server-key", "x" * 40,
            "--curve-key", str(bad), "--timeout", "30")
    assert r.returncode == 2 and "key file" in r.stderr


def test_curvezmq_required_off_loopback(x_npy):
    r = cli("serve", "--model", MLP, "--listen", "tcp://0.0.0.0:5", "--json")
    assert r.returncode == 2 and "--insecure" in r.stderr
    r = cli("query", "--connect", "tcp://10.255.255.1:5", "--input", x_npy)
    assert r.returncode == 2 and "--insecure" in r.stderr
    r = cli("query", "--connect", "tcp://10.255.255.1:5", "--input", x_npy, "--insecure", "--timeout", "0.5")
    assert r.returncode == 1 and r.stderr.count("warning: plaintext") == 1


# ------------------------------------------------------------------ serve policy and survival

def _serve_in_thread(argv):
    from ezprotocols.party import main
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("rc", main(argv)), daemon=True)
    t.start()
    return t, out


def _query(addr, x, **kw):
    from ezprotocols import Session
    from ezprotocols.nn.secure import query_session, validate_session
    from ezprotocols.nn.serving import open_client
    ch = open_client(addr, timeout=60)          # the serve lobby's hello, then the session
    with Session(1, ch, backends_from=0) as s:
        if "labels" in kw:
            return validate_session(s, x, kw["labels"], confusion=kw.get("confusion", False))
        return query_session(s, x)


def test_serve_policy_and_survival(monkeypatch, x_npy, capsys):
    """serve --allow validate refuses a query with a clear answer; --min-samples refuses
    a small validation; a MemoryError in a session ends that session only; the next
    client is served."""
    import ezprotocols.nn.secure as sec
    real = sec.serve_session
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("client asked for too much")
        return real(*a, **k)

    monkeypatch.setattr(sec, "serve_session", flaky)
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    t, out = _serve_in_thread(["serve", "--model", MLP, "--listen", addr, "--sessions", "1", "--allow", "validate",
                               "--min-samples", "3", "--timeout", "30"])
    x = np.load(x_npy)
    with pytest.raises(PeerGone, match="does not answer query"):
        _query(addr, x)
    with pytest.raises(PeerGone, match="at least 3 samples"):
        _query(addr, x, labels=np.array([0, 1]))
    with pytest.raises(PeerGone, match="MemoryError"):
        _query(addr, np.concatenate([x, x]), labels=np.array([0, 1, 2, 3]))
    res = _query(addr, np.concatenate([x, x]), labels=np.array([0, 1, 2, 3]))
    assert res["samples"] == 4
    t.join(60)
    assert out.get("rc") == 0
    err = capsys.readouterr().err
    assert "client asked for too much" in err and err.count("session failed") == 3


def test_memory_budget_refuses_large_batches():
    from ezprotocols.nn import load_onnx
    from ezprotocols.nn.secure import ServePolicy, query_session, serve_session, session_memory_estimate
    from ezprotocols.testing import run_pair
    plan = load_onnx(MLP)
    x = np.zeros((8,) + plan.input_shape)
    pol = ServePolicy(memory_bytes=session_memory_estimate(plan, 4))
    with pytest.raises(Exception, match="budget"):
        run_pair(lambda s: serve_session(s, plan, policy=pol), lambda s: query_session(s, x, batch=8), timeout=60)
    r0, r1 = run_pair(lambda s: serve_session(s, plan, policy=pol), lambda s: query_session(s, x, batch=4),
                      timeout=120)
    assert r0["samples"] == 8


def test_confusion_cells_below_min_samples_are_hidden():
    """Labels chosen as powers of two no longer reveal single decisions: a cell with
    fewer than --min-samples samples opens as -1 (computed in secret)."""
    from ezprotocols.nn import load_onnx, predict_classes, run_plaintext
    from ezprotocols.nn.secure import ServePolicy, serve_session, validate_session
    from ezprotocols.testing import run_pair
    plan = load_onnx(MLP)
    x = np.random.default_rng(5).standard_normal((12,) + plan.input_shape)
    pred = predict_classes(plan, run_plaintext(plan, x, logits=True))
    y = pred.copy()
    y[0] = (pred[0] + 1) % plan.n_classes          # one lone mistake: its cell holds 1 sample
    pol = ServePolicy(min_samples=2)
    r0, r1 = run_pair(lambda s: serve_session(s, plan, allow_confusion=True, policy=pol),
                      lambda s: validate_session(s, x, y, confusion=True), timeout=120)
    conf = np.array(r1["confusion"])
    full = np.zeros_like(conf)
    np.add.at(full, (y, pred), 1)
    assert np.array_equal(conf, np.where(full >= 2, full, -1))
    assert r0["confusion"] == r1["confusion"]


# ------------------------------------------------------------------ silently wrong results, truncation, start-up

def test_error_bound_says_when_it_does_not_hold():
    """Inputs scaled by 1e8 overflow the ring inside the network: the bound refuses
    (was: a bound 100x below the real error, and wrong classes with exit 0)."""
    from ezprotocols.nn import demo_model_path, demo_validation_set, error_bound, load_onnx
    plan = load_onnx(demo_model_path())
    x, _ = demo_validation_set(3)
    assert error_bound(plan, x).max() < 5
    with pytest.raises(OverflowError, match="does not hold"):
        error_bound(plan, x * 1e8)


def test_client_refuses_inputs_outside_the_published_range(tmp_path):
    from ezprotocols.nn import load_onnx
    from ezprotocols.nn.plaintext import encode
    from ezprotocols.nn.secure import query_session, serve_session
    from ezprotocols.testing import run_pair
    plan = load_onnx(MLP)
    plan.input_bound = int(encode(np.array([4.0]), plan.frac_bits)[0])
    x = np.random.default_rng(1).uniform(-3, 3, (2,) + plan.input_shape)
    r0, r1 = run_pair(lambda s: serve_session(s, plan), lambda s: query_session(s, x), timeout=120)
    assert len(r1["classes"]) == 2
    with pytest.raises(ValueError, match="outside the range"):
        run_pair(lambda s: serve_session(s, plan), lambda s: query_session(s, x * 1e8), timeout=60)


def test_cli_input_range_published_and_enforced(tmp_path, x_npy):
    x = np.load(x_npy)
    np.save(tmp_path / "big.npy", x * 100)
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    srv = subprocess.Popen(EXE + ["serve", "--model", MLP, "--listen", addr, "--sessions", "1",
                                  "--input-range", str(float(np.abs(x).max()) * 2), "--trunc", "faithful"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        r = cli("query", "--connect", addr, "--input", str(tmp_path / "big.npy"), "--json", timeout=120)
        assert r.returncode == 2 and "outside the range" in r.stderr, r.stderr
        # errors of the data owner's input found after connecting: exit 2, and the model owner's
        # log sees only the kind of error (not the private label value)
        np.save(tmp_path / "wrong.npy", np.zeros((2, 3)))
        r = cli("query", "--connect", addr, "--input", str(tmp_path / "wrong.npy"), "--json", timeout=120)
        assert r.returncode == 2 and "shape" in r.stderr, r.stderr
        np.save(tmp_path / "labels.npy", np.array([4711, 0]))
        r = cli("validate", "--connect", addr, "--data", x_npy, "--labels", str(tmp_path / "labels.npy"), "--json",
                timeout=120)
        assert r.returncode == 2, r.stderr
        r = cli("query", "--connect", addr, "--input", x_npy, "--json", timeout=300)
        assert r.returncode == 0, r.stderr
        assert len(json.loads(r.stdout)["classes"]) == 2
        out, err = srv.communicate(timeout=60)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    assert srv.returncode == 0, err
    assert "4711" not in err and "Traceback" not in err, err


def test_faithful_truncation_is_published_and_followed():
    from ezprotocols.nn import load_onnx, predict_classes, run_plaintext
    from ezprotocols.nn.secure import query_session, serve_session
    from ezprotocols.testing import run_pair
    plan = load_onnx(MLP)
    plan.trunc = "faithful"
    x = np.random.default_rng(2).standard_normal((3,) + plan.input_shape)
    r0, r1 = run_pair(lambda s: (serve_session(s, plan), s.arith.trunc)[1],
                      lambda s: (query_session(s, x), s.arith.trunc), timeout=300)
    res, t1 = r1
    assert r0 == t1 == "faithful"
    assert np.array_equal(res["classes"], predict_classes(plan, run_plaintext(plan, x, logits=True)))


def test_client_start_up_imports_no_onnx():
    code = ("import sys, ezprotocols.party, ezprotocols.party.client, ezprotocols.nn.secure; "
            "assert 'onnx' not in sys.modules, 'onnx imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
