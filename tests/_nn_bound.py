"""Agreement checks of the nn tests, with the documented fixed-point error bound.

Two separate claims, checked separately:

* fixed point vs the model's exact arithmetic (float64, :func:`run_float` on the
  float weights): within :func:`error_bound` (rigorous, per element);
* the importer's semantics vs onnxruntime (float32): the exact float64 result
  agrees with onnxruntime up to float32 rounding (``rtol`` 1e-4, plus ``1e-5``
  times the output's magnitude for float32 accumulation).

So our output is within ``error_bound + float32 rounding`` of onnxruntime.
"""
import numpy as np

from ezprotocols.nn import error_bound, load_onnx, postprocess, predict_classes, run_float, run_plaintext

REF_RTOL = 1e-4


def ref_close(exact, ref):
    ref = np.asarray(ref, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64).reshape(ref.shape)
    scale = 1.0 + (np.abs(ref).max() if ref.size else 0.0)
    np.testing.assert_allclose(exact, ref, rtol=REF_RTOL, atol=1e-5 * scale)


def check_model(model, x, ref=None, *, plan=None, output=True, **load_kw):
    """Load ``model`` (path, bytes or ModelProto), run it in fixed point on ``x`` and
    check the bound against the exact float64 run, and the exact run against ``ref``
    (onnxruntime's output) when given.  ``output``: compare the model's output
    (after softmax/sigmoid; argmax models compare logits); else the logits.
    Returns ``(plan, ours, exact, bound)``."""
    plan = plan or load_onnx(model, **load_kw)
    fplan = load_onnx(model, encode=False, **load_kw)
    x = np.asarray(x, dtype=np.float64)
    lg = run_plaintext(plan, x, logits=True)
    ex_lg = run_float(fplan, x)
    post = output and plan.post not in ("logits", "argmax")
    ours = postprocess(plan, lg) if post else lg
    exact = postprocess(fplan, ex_lg) if post else ex_lg
    bound = error_bound(plan, x, output=post)
    assert ours.shape == exact.shape == bound.shape
    err = np.abs(ours - exact)
    assert np.all(err <= bound), f"fixed-point error {err.max():.3g} exceeds the bound at {np.argmax(err > bound)}"
    if ref is not None:
        if output and plan.post == "argmax":
            # the model outputs the class: ours is the exact class wherever the bound decides it,
            # and the exact class is onnxruntime's (random data: no float32 near-ties)
            assert_same_decisions(plan, lg, ex_lg, error_bound(plan, x))
            assert np.array_equal(predict_classes(plan, ex_lg).reshape(-1), np.asarray(ref).reshape(-1))
        else:
            ref_close(exact, ref)
    return plan, ours, exact, bound


def assert_same_decisions(plan, lg, exact_lg, bound):
    """Where the exact top two logits are further apart than their error bounds,
    the fixed-point class must be the exact one; returns how many were clear."""
    from ezprotocols.nn.plaintext import class_scores
    z = class_scores(plan, exact_lg).reshape(-1, plan.n_classes)
    b = class_scores(plan, bound).reshape(-1, plan.n_classes)
    order = np.argsort(-z, axis=1, kind="stable")
    top, second = order[:, 0], order[:, 1] if z.shape[1] > 1 else order[:, 0]
    rows = np.arange(len(z))
    gap = z[rows, top] - z[rows, second]
    clear = gap > b[rows, top] + b[rows, second]
    ours = predict_classes(plan, lg).reshape(-1)
    assert np.array_equal(ours[clear], top[clear])
    return int(clear.sum())
