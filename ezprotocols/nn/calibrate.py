"""Per-model precision calibration on the model owner's own samples.

:func:`~ezprotocols.nn.error_bound` is a rigorous worst case: every rounding
error is assumed to add up with the same sign and to be amplified by the
absolute weights of every later layer.  On deep networks this grows
geometrically with depth (roughly ``prod_l ||W_l||_1``): on a DenseNet-style
model it is 1e3 to 1e21 times the actual error, far above any logit, and then
it certifies nothing.  A rule of thumb from the measurements below: the bound is
useful (below the decision margins) for networks of a few layers (MLPs, LeNet),
and useless once the product of the layers' absolute row sums exceeds about
``2^f`` times the margin, i.e. beyond ~5-10 conv layers.

:func:`calibrate` measures instead, on samples the owner holds (never the
client's data): for each candidate number of fractional bits ``f`` it runs the
fixed-point executor (exactly what the secure executor computes, up to one unit
per truncation) and the float model, and reports

* ``max_error``: the worst |fixed-point logit - float logit| over the samples;
* the decisions' *margins*: per sample the distance of the exact logits from the
  decision boundary (|z| for a sigmoid decision, top-1 minus top-2 logit for an
  argmax), and the number of decisions the fixed-point run flips;
* ``act_bits``: the smallest public activation bound that holds on these samples
  with 2 bits of headroom (comparisons cost ``act_bits - 1`` AND gates each);
* the worst-case ``error_bound`` for comparison.

It picks the smallest ``f`` whose measured error is below ``tol`` (0.01 logit
units: probabilities within 0.0025) and a quarter of the smallest margin (no
flipped decision), else the ``f`` with the fewest flips and
smallest error.  This is an empirical statement about these samples, stated as
such; the rigorous bound is reported next to it.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["calibrate", "CANDIDATES"]

CANDIDATES = (10, 12, 14, 16, 18, 20)


def _margins(plan, z: np.ndarray) -> np.ndarray:
    """Distance of each decision from its boundary (exact logits, class axis last)."""
    from .plaintext import class_scores
    s = class_scores(plan, z)
    s = s.reshape(-1, s.shape[-1])
    if plan.multilabel:
        return np.abs(s).reshape(-1)
    top = np.sort(s, axis=-1)
    return top[:, -1] - top[:, -2]


def _decisions(plan, z: np.ndarray) -> np.ndarray:
    from .plaintext import class_scores
    s = class_scores(plan, z)
    s = s.reshape(-1, s.shape[-1])
    if plan.multilabel:
        return (s > 0).reshape(-1)
    return np.argmax(s, axis=-1)


def _act_bits(plan, x) -> int:
    """Smallest act_bits (+2 headroom) such that every comparison input fits."""
    from .plaintext import _execute, encode
    vals = _execute(plan, encode(x, plan.frac_bits), True)
    m = 1
    for i, op in enumerate(plan.ops):
        if op.kind in ("relu", "maxpool", "reduce_max"):
            v = vals[op.inputs[0]]
            if v.size:
                m = max(m, int(np.abs(v).max()))
    m = max(m, int(np.abs(vals[-1]).max()) if vals[-1].size else 1)
    return min(64, m.bit_length() + 3)


def calibrate(model, x, *, candidates=CANDIDATES, output=None, bound: bool = True, tol: float = 0.01) -> dict:
    """Measure the fixed-point error of ``model`` (ONNX path or bytes) on the owner's
    samples ``x`` for each candidate ``frac_bits``; return the report and the
    pick (``frac_bits``, ``act_bits``): the smallest ``f`` whose measured logit error
    is below ``tol`` and a quarter of the smallest decision margin."""
    from . import load_onnx
    from .plaintext import decode, error_bound, run_fixed, run_float, encode
    x = np.asarray(x, dtype=np.float64)
    fplan = load_onnx(model, encode=False, output=output)
    if x.ndim == len(fplan.input_shape):
        x = x[None]
    exact = run_float(fplan, x)
    margins = _margins(fplan, exact)
    want = _decisions(fplan, exact)
    rows = []
    for f in candidates:
        plan = load_onnx(model, frac_bits=f, output=output)
        try:
            z = decode(run_fixed(plan, encode(x, f)), f)
        except (ValueError, OverflowError) as e:
            rows.append({"frac_bits": f, "error": str(e)})
            continue
        err = np.abs(z - exact)
        flips = int((_decisions(plan, z) != want).sum())
        row = {"frac_bits": f, "max_error": float(err.max()), "median_error": float(np.median(err)),
               "flipped_decisions": flips, "act_bits": _act_bits(plan, x)}
        if bound:
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    b = error_bound(plan, x)
                row["error_bound"] = float(np.max(b))
            except (ValueError, OverflowError):
                row["error_bound"] = math.inf
        rows.append(row)
    ok = [r for r in rows if "max_error" in r]
    if not ok:
        raise ValueError("no candidate precision runs on these samples: " + "; ".join(r["error"] for r in rows))
    min_margin = float(margins.min()) if margins.size else math.inf
    safe = [r for r in ok if r["flipped_decisions"] == 0 and r["max_error"] < min(min_margin / 4, tol)]
    pick = safe[0] if safe else min(ok, key=lambda r: (r["flipped_decisions"], r["max_error"]))
    useful = [r["frac_bits"] for r in ok if r.get("error_bound", math.inf) < min_margin]
    return {"samples": int(len(x)), "decisions": int(want.size), "min_margin": min_margin,
            "median_margin": float(np.median(margins)) if margins.size else math.inf,
            "margins": margins.tolist(), "candidates": rows,
            "frac_bits": pick["frac_bits"], "act_bits": pick["act_bits"], "max_error": pick["max_error"],
            "safe": bool(safe), "bound_useful_at": useful,
            "note": ("the worst-case error_bound is below the smallest decision margin at frac_bits "
                     f"{useful}" if useful else
                     "the worst-case error_bound exceeds the smallest decision margin at every candidate: it "
                     "certifies nothing for this model; the measured error is what to go by")}
