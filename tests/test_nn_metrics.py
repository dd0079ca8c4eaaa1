"""Multi-label heads and secure ROC/AUROC: equal to the plaintext counts of the same
thresholds, exactly (clear data-flow backend and the real protocol layers)."""
import os

import numpy as np
import pytest

from ezprotocols.nn import load_onnx, run_fixed, encode
from ezprotocols.nn import metrics
from ezprotocols.nn.plaintext import class_scores
from ezprotocols.nn.secure import query_session, serve_session, validate_session
from ezprotocols.testing import run_pair

from _nn_clear_backend import ClearBackend
from _nn_models import multilabel_mlp

DATA = os.path.join(os.path.dirname(__file__), "data")


def _plain(plan, x, y, T):
    """Plaintext reference: fixed-point scores, the same integer thresholds."""
    z = class_scores(plan, run_fixed(plan, encode(x, plan.frac_bits)))
    z = z.reshape(-1, z.shape[-1])
    s = metrics.score_matrix(plan, z)
    yy = y if y.ndim == 2 else (y == 1)[:, None].astype(np.int64)
    c = metrics.plain_counts(s, yy, metrics.logit_thresholds(T, plan.frac_bits))
    return s, yy, c


def _pair(plan, fn, backend=ClearBackend, **kw):
    mk = (lambda s: backend(s)) if backend else (lambda s: None)
    return run_pair(lambda s: serve_session(s, plan, backend=mk(s), **kw), lambda s: fn(s, mk(s)), timeout=300)


@pytest.mark.parametrize("T", [1, 7, 100])
def test_auroc_equals_plaintext_of_same_thresholds(T, rng):
    plan = load_onnx(multilabel_mlp(k=3))
    assert plan.multilabel and plan.n_classes == 3
    x = rng.standard_normal((40, 6))
    y = (rng.random((40, 3)) < 0.4).astype(np.int64)
    s, yy, c = _plain(plan, x, y, T)
    r0, r1 = _pair(plan, lambda s_, be: validate_session(s_, x, y, auroc=True, thresholds=T, batch=16, backend=be))
    want = metrics.auroc_from_counts(c["tp"], c["d"] - c["tp"], c["pos"], 40 - c["pos"])
    for r in (r0, r1):
        assert r["auroc"] == [float(v) for v in want]
        assert r["roc"]["tp"] == c["tp"].tolist() and r["roc"]["fp"] == (c["d"] - c["tp"]).tolist()
        assert r["roc"]["positives"] == y.sum(axis=0).tolist()
        # per-finding accuracy of the decisions p > 1/2
        acc = ((s > 0).astype(int) == y).mean(axis=0)
        np.testing.assert_allclose(r["accuracy_per_output"], acc)
        assert r["accuracy"] == pytest.approx(acc.mean())
    # the T-point AUROC is within its reported bound of the exact (Mann-Whitney) AUROC
    exact = metrics.exact_auroc(s, y)
    assert np.all(np.abs(np.array(r1["auroc"]) - exact) <= np.array(r1["auroc_error_bound"]) + 1e-12)


def test_multilabel_query_gives_k_decisions(rng):
    plan = load_onnx(multilabel_mlp(k=4, seed=2))
    x = rng.standard_normal((9, 6))
    z = run_fixed(plan, encode(x, plan.frac_bits))
    _, r1 = _pair(plan, lambda s, be: query_session(s, x, batch=4, backend=be))
    assert r1["classes"].shape == (9, 4) and r1["multilabel"]
    assert np.array_equal(r1["classes"], (z > 0).astype(np.int64))
    _, r1 = _pair(plan, lambda s, be: query_session(s, x, want_logits=True, backend=be), allow_logits=True)
    assert np.array_equal(r1["classes"], (z > 0).astype(np.int64))


def test_binary_auroc_positive_class(rng):
    plan = load_onnx(os.path.join(DATA, "torch_dynamo_binary_sigmoid.onnx"))
    x = rng.standard_normal((30, 6)) * 2
    y = (rng.random(30) < 0.5).astype(np.int64)
    _, _, c = _plain(plan, x, y, 20)
    _, r1 = _pair(plan, lambda s, be: validate_session(s, x, y, auroc=True, thresholds=20, backend=be))
    want = metrics.auroc_from_counts(c["tp"], c["d"] - c["tp"], c["pos"], 30 - c["pos"])
    assert r1["auroc"] == [float(v) for v in want] and len(r1["auroc"]) == 1
    assert 0 <= r1["accuracy"] <= 1 and "correct" in r1


def test_bad_validation_requests(rng):
    plan = load_onnx(multilabel_mlp(k=3))
    x = rng.standard_normal((5, 6))
    for y, msg in ((np.zeros(5, int), r"shape \(5, 3\)"), (np.full((5, 3), 2), "0 or 1"),
                   (np.zeros((4, 3), int), r"shape \(5, 3\)")):
        with pytest.raises(ValueError, match=msg):
            _pair(plan, lambda s, be: validate_session(s, x, y, backend=be))
    with pytest.raises(ValueError, match="thresholds"):
        validate_session(None, x, np.zeros((5, 3)), auroc=True, thresholds=0)
    mc = load_onnx(os.path.join(DATA, "torch_mlp.onnx"))
    with pytest.raises(ValueError, match="binary or multi-label"):
        _pair(mc, lambda s, be: validate_session(s, rng.standard_normal((3, 20)), np.zeros(3, int), auroc=True,
                                                 backend=be))


def test_t_point_approximation_error():
    """The documented approximation: |AUROC_T - exact| <= (1/2) sum_b p_b q_b; with the
    default 100 thresholds below 0.01 from concentrated (sd 0.3) to confident (sd 6)
    score models."""
    r = np.random.default_rng(5)
    for sep, sd in ((0.5, 0.3), (1.0, 1.5), (3.0, 4.0), (1.0, 6.0)):
        n = 4000
        y = (r.random((n, 1)) < 0.3).astype(np.int64)
        s = (r.standard_normal((n, 1)) + sep * y) * sd
        sf = np.rint(s * 2 ** 16).astype(np.int64)
        c = metrics.plain_counts(sf, y, metrics.logit_thresholds(100, 16))
        auc = metrics.auroc_from_counts(c["tp"], c["d"] - c["tp"], c["pos"], n - c["pos"])
        b = metrics.auroc_error_bound(c["tp"], c["d"] - c["tp"], c["pos"], n - c["pos"])
        ex = metrics.exact_auroc(sf, y)
        assert abs(auc[0] - ex[0]) <= b[0] + 1e-12 and abs(auc[0] - ex[0]) < 0.01, (sep, sd)
    assert metrics.logit_thresholds(100, 16).size == 100 and metrics.logit_thresholds(1, 16).tolist() == [0]


def test_secure_multilabel_auroc_real_protocols(rng):
    """The real protocol layers: decisions and ROC counts equal the plaintext ones
    (inputs chosen away from the thresholds, where a 1-ulp truncation could flip)."""
    plan = load_onnx(multilabel_mlp(k=2, seed=1))
    x = rng.standard_normal((8, 6))
    y = (rng.random((8, 2)) < 0.5).astype(np.int64)
    T = 9
    s, _, c = _plain(plan, x, y, T)
    thr = np.concatenate([[0], metrics.logit_thresholds(T, plan.frac_bits)])
    assert np.abs(s[:, :, None] - thr).min() > 64
    r0, r1 = _pair(plan, lambda s_, be: validate_session(s_, x, y, auroc=True, thresholds=T, batch=5, backend=be),
                   backend=None)
    want = metrics.auroc_from_counts(c["tp"], c["d"] - c["tp"], c["pos"], 8 - c["pos"])
    assert r0["auroc"] == r1["auroc"] == [float(v) for v in want]
    assert r1["roc"]["tp"] == c["tp"].tolist()
    _, q = _pair(plan, lambda s_, be: query_session(s_, x, backend=be), backend=None)
    assert np.array_equal(q["classes"], (s > 0).astype(np.int64))
