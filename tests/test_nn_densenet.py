"""DenseNet (scripts/make_densenet.py) through the secure executor at reduced size:
probabilities within 0.01 of onnxruntime, multi-label decisions, offline material
made layer by layer (just ahead of each layer) with the same result, activations
freed after their last use.  The full DenseNet-121 at 224x224 is bench-only
(bench/densenet.py) and a marked test here."""
import os
import sys

import numpy as np
import pytest

from ezprotocols.nn import load_onnx
from ezprotocols.nn import secure
from ezprotocols.nn.secure import offline_bytes, query_session, serve_session, validate_session
from ezprotocols.testing import run_pair

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from make_densenet import densenet  # noqa: E402

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny():
    return densenet(32, (2, 2), growth=8, init=16, classes=5, seed=1)


def _query(plan, x):
    return run_pair(lambda s: serve_session(s, plan, allow_logits=True),
                    lambda s: query_session(s, x, want_logits=True), timeout=600)[1]


@pytest.mark.parametrize("jit", [False, True])
def test_tiny_densenet_secure_matches_onnxruntime(tiny, jit, monkeypatch):
    if jit:
        monkeypatch.setattr(secure, "OFFLINE_BUDGET", 0)
    plan = load_onnx(tiny, act_bits=24)
    x = np.random.default_rng(4).standard_normal((2,) + plan.input_shape).astype(np.float32)
    ref = ort.InferenceSession(tiny).run(None, {"x": x})[0]
    r = _query(plan, x)
    assert np.abs(r["output"] - ref).max() < 0.01
    assert r["classes"].shape == (2, 5)
    # BN after a concatenation runs as a depthwise 1x1 layer with P0's weights (offline like a conv)
    assert "affine" in r["offline_per_op"] and "conv" in r["offline_per_op"]
    if jit:
        assert r["offline_per_op"]["conv"]["rounds"] > 0


def test_offline_budget_decides_layer_by_layer(tiny):
    plan = load_onnx(tiny)
    b1 = offline_bytes(plan, 1)
    assert offline_bytes(plan, 4) == 4 * b1 and b1 > 0
    full = load_onnx(densenet(224, calib_images=1), encode=False) if os.environ.get("EZP_SLOW") == "1" else None
    if full is not None:
        assert offline_bytes(full, 1) * 8 > secure.OFFLINE_BUDGET


def test_values_freed_after_last_use(tiny):
    plan = load_onnx(tiny)
    ex = secure._Exec.__new__(secure._Exec)
    ex.plan = plan
    last = ex.last_use()
    for v, i in enumerate(last[:-1]):
        assert i >= v or i == -1          # a value is read only after it is made
    assert last[-1] == -1                 # the logits are kept


def test_tiny_densenet_validation_auroc(tiny):
    plan = load_onnx(tiny, act_bits=24)
    r = np.random.default_rng(6)
    x = r.standard_normal((3,) + plan.input_shape)
    y = (r.random((3, 5)) < 0.5).astype(np.int64)
    _, v = run_pair(lambda s: serve_session(s, plan), lambda s: validate_session(s, x, y, auroc=True, thresholds=8),
                    timeout=600)
    assert len(v["auroc"]) == 5 and len(v["accuracy_per_output"]) == 5


@pytest.mark.skipif(os.environ.get("EZP_SLOW") != "1", reason="DenseNet-121 224x224: bench-only (EZP_SLOW=1)")
def test_densenet121_full_size_one_image():       # ~400 GB with the OT linear layers: hours
    plan = load_onnx(densenet(224), act_bits=24)
    x = np.random.default_rng(0).standard_normal((1,) + plan.input_shape)
    r = _query(plan, x)
    assert r["classes"].shape == (1, 14)
