"""CLI: validate --metrics/--thresholds/--workers/--scheduler/--checkpoint, serve
--workers/--calibrate, multi-label labels; bad input fails before connecting."""
import json
import threading
import time

import numpy as np
import pytest

from ezprotocols import party
from ezprotocols.testing import free_tcp_port

from _nn_models import multilabel_mlp

DEAD = "tcp://127.0.0.1:1"          # nothing listens: every check must fail before connecting


@pytest.fixture
def files(tmp_path):
    r = np.random.default_rng(11)
    (tmp_path / "m.onnx").write_bytes(multilabel_mlp(k=3, seed=4))
    np.save(tmp_path / "x.npy", r.standard_normal((10, 6)))
    np.save(tmp_path / "y.npy", (r.random((10, 3)) < 0.5).astype(np.int64))
    return tmp_path


def _validate(files, *extra):
    return ["validate", "--connect", DEAD, "--data", str(files / "x.npy"), "--labels", str(files / "y.npy"),
            "--timeout", "5", *extra]


@pytest.mark.parametrize("labels,msg", [(np.zeros((10, 3, 1)), "one per sample"), (np.zeros(9), "one per sample"),
                                        (np.full((10, 3), 2), "0 or 1")])
def test_bad_labels_fail_before_connecting(files, labels, msg, capsys):
    np.save(files / "bad.npy", labels)
    args = _validate(files)
    args[args.index("--labels") + 1] = str(files / "bad.npy")
    t = time.monotonic()
    assert party.main(args + ["--json"]) == 2
    assert time.monotonic() - t < 3
    out = json.loads(capsys.readouterr().out)
    assert msg in out["error"] and out["type"] == "input"


@pytest.mark.parametrize("extra", [["--thresholds", "0"], ["--thresholds", "-3"], ["--metrics", "accuracy,f1"],
                                   ["--metrics", ""]])
def test_bad_options_exit_2(files, extra, capsys):
    with pytest.raises(SystemExit) as e:
        party.main(_validate(files, *extra))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "thresholds" in err or "metric" in err


def test_too_many_thresholds_and_unreachable_scheduler(files, capsys):
    assert party.main(_validate(files, "--thresholds", "5000")) == 2
    assert "--thresholds must be in 1..4096" in capsys.readouterr().err
    t = time.monotonic()
    assert party.main(_validate(files, "--scheduler", f"tcp://127.0.0.1:{free_tcp_port()}", "--json")) == 2
    assert time.monotonic() - t < 6
    assert json.loads(capsys.readouterr().out)["type"] == "scheduler"
    assert party.main(_validate(files, "--scheduler", "nonsense")) == 2
    assert party.main(_validate(files, "--checkpoint", str(files / "ck.json"))) == 2
    assert "sharded" in capsys.readouterr().err


def _serve(args):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("rc", party.main(args)), daemon=True)
    t.start()
    return t, out


def test_multilabel_auroc_sharded_equals_unsharded_cli(files, capsys):
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    t, out = _serve(["serve", "--model", str(files / "m.onnx"), "--listen", addr, "--workers", "2", "--json",
                     "--sessions", "4", "--timeout", "60", "--trunc", "faithful"])
    base = ["validate", "--connect", addr, "--data", str(files / "x.npy"), "--labels", str(files / "y.npy"),
            "--metrics", "accuracy,auroc", "--thresholds", "16", "--json", "--batch", "4"]
    assert party.main(base) == 0
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert isinstance(one["accuracy"], float) and len(one["auroc"]) == 3
    assert party.main(base + ["--workers", "2", "--checkpoint", str(files / "ck.json")]) == 0
    two = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert two["auroc"] == one["auroc"] and two["accuracy"] == one["accuracy"] and two["shards"] == 2
    ck = json.loads((files / "ck.json").read_text())
    # a rerun with the same checkpoint prints the recorded result (text report) without a new opening
    assert party.main(base[:-3] + ["--batch", "4", "--workers", "2", "--checkpoint", str(files / "ck.json")]) == 0
    text = capsys.readouterr().out
    assert "AUROC" in text and "shards   : 2 (2 from the checkpoint)" in text and "per output" in text
    assert len(ck["done"]) == 2 and ck["result"]["auroc"] == one["auroc"]
    t.join(60)
    assert out.get("rc") == 0


def test_multilabel_query_cli(files, capsys):
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    t, out = _serve(["serve", "--model", str(files / "m.onnx"), "--listen", addr, "--sessions", "1", "--json"])
    assert party.main(["query", "--connect", addr, "--input", str(files / "x.npy"), "--json",
                       "--output", str(files / "d.npy")]) == 0
    d = np.load(files / "d.npy")
    assert d.shape == (10, 3) and set(np.unique(d)) <= {0, 1}
    t.join(30)


def test_serve_calibrate_reports_and_picks(files, capsys):
    np.save(files / "own.npy", np.random.default_rng(2).standard_normal((16, 6)))
    t, out = _serve(["serve", "--model", str(files / "m.onnx"), "--listen", f"tcp://127.0.0.1:{free_tcp_port()}",
                     "--calibrate", str(files / "own.npy"), "--json", "--accept-timeout", "0.5", "--sessions", "1"])
    t.join(60)
    first = json.loads(capsys.readouterr().out.strip().splitlines()[0])["calibration"]
    assert first["samples"] == 16 and first["decisions"] == 48 and first["safe"]
    assert first["frac_bits"] in [c["frac_bits"] for c in first["candidates"]]
    assert all(c["max_error"] <= c["error_bound"] for c in first["candidates"])


def test_validate_on_an_existing_scheduler(files, capsys):
    from dask.distributed import LocalCluster
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    t, out = _serve(["serve", "--model", str(files / "m.onnx"), "--listen", addr, "--workers", "2", "--json",
                     "--sessions", "3", "--timeout", "60"])
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cl:
        assert party.main(["validate", "--connect", addr, "--data", str(files / "x.npy"), "--labels",
                           str(files / "y.npy"), "--scheduler", cl.scheduler_address, "--shards", "2",
                           "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["shards"] == 2 and len(res["accuracy_per_output"]) == 3
    t.join(60)
    assert out.get("rc") == 0
