"""CLI: python -m ezprotocols.party {serve,query,validate,demo}."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from onnx import TensorProto, helper

from ezprotocols import party
from ezprotocols.nn import demo_model_path, demo_validation_set, encode, load_onnx, predict_classes, run_fixed
from ezprotocols.nn.plaintext import decode
from ezprotocols.testing import free_tcp_port

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("cmd", ["demo", "serve", "query", "validate", "keygen"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        party.main([cmd, "--help"])
    assert e.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_demo_runs_as_module():
    r = subprocess.run([sys.executable, "-m", "ezprotocols.party", "demo", "--json", "--samples", "20"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["secure"]["correct"] == res["plaintext"]["correct"]


def test_serve_rejects_unsupported_model(tmp_path, capsys):
    g = helper.make_graph([helper.make_node("Tanh", ["x"], ["y"], name="th")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert party.main(["serve", "--model", str(path), "--listen", "tcp://127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.strip() == f"error: cannot load model {path}: unsupported ONNX op Tanh at node th"
    # an LSTM model names the LSTM (not the Transpose before it)
    lstm = os.path.join(DATA, "torch_bad_lstm.onnx")
    assert party.main(["serve", "--model", lstm, "--listen", "tcp://127.0.0.1:1", "--json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": f"cannot load model {lstm}: unsupported ONNX op LSTM at node /rnn/LSTM",
                               "type": "UnsupportedOp"}


def test_serve_model_load_failures(tmp_path, capsys):
    """Not an ONNX file, a missing file, a directory: one clear line, no traceback."""
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07garbage" * 10)
    for model, want in ((str(junk), f"error: cannot load model {junk}: not a readable ONNX model: "),
                        ("/nonexist.onnx", "error: model file not found: /nonexist.onnx"),
                        (str(tmp_path), f"error: model file not found: {tmp_path}")):
        assert party.main(["serve", "--model", model, "--listen", "tcp://127.0.0.1:1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(want) and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert party.main(["serve", "--model", str(junk), "--listen", "tcp://127.0.0.1:1", "--json"]) == 2
    d = json.loads(capsys.readouterr().out)
    assert d["type"] == "OnnxImportError" and d["error"].startswith(f"cannot load model {junk}")


def test_serve_prints_the_error_bound(tmp_path, capsys):
    x, _ = demo_validation_set(8)
    np.save(tmp_path / "x.npy", x)
    # the model loads and the bound is printed before the listener starts (port 1 fails to bind for non-root
    # users; either way the bound came first)
    port = free_tcp_port()
    t, out = _serve(["serve", "--model", demo_model_path(), "--listen", f"tcp://127.0.0.1:{port}", "--json",
                     "--error-bound", str(tmp_path / "x.npy"), "--accept-timeout", "0.5", "--sessions", "1"])
    t.join(60)
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["error_bound"]["samples"] == 8 and 0 < first["error_bound"]["max"] < 5


@pytest.mark.parametrize("args", [["demo", "--samples", "0"], ["demo", "--batch", "-2"],
                                  ["query", "--connect", "tcp://127.0.0.1:1", "--input", "x.npy", "--batch", "0"],
                                  ["validate", "--connect", "tcp://127.0.0.1:1", "--data", "x", "--labels", "y",
                                   "--batch", "0"]])
def test_non_positive_counts_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as e:
        party.main(args)
    assert e.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        party.main(args + ["--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["type"] == "usage" and "must be at least 1" in d["error"]


def test_query_and_validate_check_inputs_before_connecting(tmp_path, capsys):
    """Nothing listens on the address: every failure here is local (no connection tried)."""
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 28, 28), np.float32))
    np.save(tmp_path / "nan.npy", np.full((2, 4), np.nan))
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    np.save(tmp_path / "y2.npy", np.zeros(2, np.int64))
    cases = [(["query", "--input", str(tmp_path / "empty.npy")], "input has no samples"),
             (["query", "--input", str(tmp_path / "nan.npy")], "input has non-finite values"),
             (["validate", "--data", str(tmp_path / "empty.npy"), "--labels", str(tmp_path / "y2.npy")],
              "data has no samples"),
             (["validate", "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y2.npy")],
              "labels must be one per sample")]
    for args, msg in cases:
        assert party.main(args[:1] + ["--connect", addr, "--timeout", "1"] + args[1:]) == 2
        assert msg in capsys.readouterr().err
        assert party.main(args[:1] + ["--connect", addr, "--timeout", "1", "--json"] + args[1:]) == 2
        d = json.loads(capsys.readouterr().out)
        assert msg in d["error"] and d["type"] == "input"


def test_demo_samples_clamped_with_a_note():
    r = subprocess.run([sys.executable, "-m", "ezprotocols.party", "demo", "--json", "--samples", "100000",
                        "--batch", "500"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "--samples 100000 clamped to the 500 shipped digits" in r.stderr
    res = json.loads(r.stdout)
    assert res["samples"] == 500


@pytest.mark.parametrize("cmd", ["serve", "query", "validate"])
def test_ctrl_c_exits_quietly(cmd, tmp_path):
    """SIGINT (Ctrl-C) while waiting for the peer: a short message, exit code 130, no traceback."""
    x, y = demo_validation_set(2)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    args = {"serve": ["--model", demo_model_path(), "--listen", addr],
            "query": ["--connect", addr, "--input", str(tmp_path / "x.npy"), "--timeout", "120"],
            "validate": ["--connect", addr, "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                         "--timeout", "120"]}[cmd]
    p = subprocess.Popen([sys.executable, "-m", "ezprotocols.party", cmd] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4.0)                          # past the imports: waiting for the peer
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "Traceback" not in err and "error: interrupted" in err


@pytest.fixture
def clear_backend(monkeypatch):
    """Stand the test-only clear backend in for the protocol layers (data flow only)."""
    from _nn_clear_backend import ClearBackend
    import ezprotocols.nn.secure as sec
    monkeypatch.setattr(sec, "Backend", ClearBackend)


def _serve(args):
    out = {}

    def run():
        out["rc"] = party.main(args)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_serve_query_validate_over_tcp(clear_backend, tmp_path, capsys):
    port = free_tcp_port()
    addr = f"tcp://127.0.0.1:{port}"
    t, out = _serve(["serve", "--model", demo_model_path(), "--listen", addr, "--sessions", "2", "--json",
                     "--allow-confusion", "--timeout", "60"])
    x, y = demo_validation_set(12)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    plan = load_onnx(demo_model_path())
    pred = predict_classes(plan, decode(run_fixed(plan, encode(x, 16)), 16))
    # a client asking for logits the owner does not allow: clear error, the server goes on
    assert party.main(["query", "--connect", addr, "--input", str(tmp_path / "x.npy"), "--logits"]) == 1
    assert "does not reveal logits" in capsys.readouterr().err
    assert party.main(["query", "--connect", addr, "--input", str(tmp_path / "x.npy"),
                       "--output", str(tmp_path / "c.npy"), "--json", "--batch", "5"]) == 0
    assert np.array_equal(np.load(tmp_path / "c.npy"), pred)
    capsys.readouterr()
    assert party.main(["validate", "--connect", addr, "--data", str(tmp_path / "x.npy"),
                       "--labels", str(tmp_path / "y.npy"), "--confusion", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["correct"] == int((pred == y).sum()) and res["samples"] == 12 and "confusion" in res
    t.join(60)
    assert not t.is_alive() and out["rc"] == 0


def test_bad_input_files(tmp_path, capsys):
    assert party.main(["query", "--connect", "tcp://127.0.0.1:1", "--input", str(tmp_path / "nope.npy")]) == 2
    assert "cannot read input" in capsys.readouterr().err
    assert party.main(["query", "--connect", "tcp://127.0.0.1:1", "--input", str(tmp_path / "nope.npy"),
                       "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["type"] == "input"


def test_cli_secure_end_to_end_processes(tmp_path):
    """serve / query / validate as three processes over TCP with the real protocol layers."""
    x, y = demo_validation_set(10)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    plan = load_onnx(demo_model_path())
    pred = predict_classes(plan, decode(run_fixed(plan, encode(x, 16)), 16))
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    exe = [sys.executable, "-m", "ezprotocols.party"]
    srv = subprocess.Popen(exe + ["serve", "--model", demo_model_path(), "--listen", addr, "--sessions", "2",
                                  "--json", "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        q = subprocess.run(exe + ["query", "--connect", addr, "--input", str(tmp_path / "x.npy"), "--json",
                                  "--output", str(tmp_path / "c.npy")], capture_output=True, text=True, timeout=300)
        assert q.returncode == 0, q.stderr
        assert json.loads(q.stdout)["classes"] == np.load(tmp_path / "c.npy").tolist()
        assert (np.load(tmp_path / "c.npy") == pred).mean() >= 0.9      # truncation noise may flip a near-tie
        v = subprocess.run(exe + ["validate", "--connect", addr, "--data", str(tmp_path / "x.npy"), "--labels",
                                  str(tmp_path / "y.npy"), "--json"], capture_output=True, text=True, timeout=300)
        assert v.returncode == 0, v.stderr
        res = json.loads(v.stdout)
        assert res["samples"] == 10 and abs(res["correct"] - int((pred == y).sum())) <= 1
        assert "confusion" not in res and res["offline"]["bytes"] > 0 and res["online"]["bytes"] > 0
        out, err = srv.communicate(timeout=60)
        assert srv.returncode == 0, err
        lines = [json.loads(ln) for ln in out.strip().splitlines()]
        assert [ln["mode"] for ln in lines] == ["query", "validate"]
        assert lines[1]["correct"] == res["correct"] and "classes" not in lines[0]
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def test_cli_curve_keys_end_to_end(tmp_path):
    """keygen, then serve with CurveZMQ and a client allow-list; an allowed client queries,
    a client without the server key cannot connect."""
    exe = [sys.executable, "-m", "ezprotocols.party"]
    keys = {}
    for who in ("server", "client"):
        r = subprocess.run(exe + ["keygen", "--out", str(tmp_path / f"{who}.key"), "--json"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        keys[who] = json.loads(r.stdout)["public"]
        assert oct(os.stat(tmp_path / f"{who}.key").st_mode & 0o777) == "0o600"
    again = subprocess.run(exe + ["keygen", "--out", str(tmp_path / "server.key")], capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr
    x, _ = demo_validation_set(2)
    np.save(tmp_path / "x.npy", x)
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    srv = subprocess.Popen(exe + ["serve", "--model", demo_model_path(), "--listen", addr, "--sessions", "1",
                                  "--json", "--curve-key", str(tmp_path / "server.key"),
                                  "--allow-client=" + keys["client"]],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the server may still be starting (imports under load): the timeout only covers that; once it
        # listens, a missing key is reported at once as a failed CurveZMQ handshake
        t0 = time.monotonic()
        bad = subprocess.run(exe + ["query", "--connect", addr, "--input", str(tmp_path / "x.npy"), "--json",
                                    "--timeout", "30"], capture_output=True, text=True, timeout=120)
        assert bad.returncode != 0 and "CurveZMQ" in bad.stderr, bad.stderr
        assert time.monotonic() - t0 < 29
        q = subprocess.run(exe + ["query", "--connect", addr, "--input", str(tmp_path / "x.npy"), "--json",
                                  "--server-key=" + keys["server"], "--curve-key", str(tmp_path / "client.key")],
                           capture_output=True, text=True, timeout=300)
        assert q.returncode == 0, q.stderr
        assert len(json.loads(q.stdout)["classes"]) == 2
        out, err = srv.communicate(timeout=60)
        assert srv.returncode == 0, err
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def test_serve_publishes_conv_pack(tmp_path, monkeypatch, capsys):
    """``serve --conv-pack off`` reaches both parties' HE convolution choices through the
    published architecture (the client adopts it); the classes stay exact."""
    from ezprotocols.arith import he
    seen = []
    real = he.session_conv_pack

    def spy(s):
        m = real(s)
        seen.append((s.role, m))
        return m
    monkeypatch.setattr(he, "session_conv_pack", spy)
    port = free_tcp_port()
    addr = f"tcp://127.0.0.1:{port}"
    t, out = _serve(["serve", "--model", demo_model_path(), "--listen", addr, "--sessions", "1", "--json",
                     "--timeout", "120", "--conv-pack", "off"])
    x, _ = demo_validation_set(2)
    np.save(tmp_path / "x.npy", x)
    plan = load_onnx(demo_model_path())
    pred = predict_classes(plan, decode(run_fixed(plan, encode(x, 16)), 16))
    assert party.main(["query", "--connect", addr, "--input", str(tmp_path / "x.npy"),
                       "--output", str(tmp_path / "c.npy"), "--json"]) == 0
    assert np.array_equal(np.load(tmp_path / "c.npy"), pred)
    t.join(120)
    assert not t.is_alive() and out["rc"] == 0
    assert {r for r, _ in seen} == {0, 1} and {m for _, m in seen} == {"off"}
