"""Print the figures of secure inference of MLP 784-128-128-10 and LeNet at batch
1 and 64 (two processes over TCP loopback), offline / online / total time (best and
median of the runs, max over the two parties) and bytes, beside the references
measured on this machine kind and the targets.

    python bench/figures_nn.py [--reps 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_nn import run_inference  # noqa: E402

REFS = {  # (model, batch): {name: (seconds, MB or None)}
    ("mlp", 1): {"SPU cheetah": (0.50, None), "CrypTen (TTP)": (0.36, None)},
    ("lenet", 1): {"SPU cheetah": (0.67, 5.0), "CrypTen (TTP)": (0.90, None)},
    ("lenet", 64): {"SPU cheetah": (13.9, 77.0), "CrypTen (TTP)": (2.5, 722.0)},
    ("mlp", 64): {},
}
TARGETS = {("mlp", 1): 0.25, ("lenet", 1): 0.35, ("lenet", 64): 5.0}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for model, batch in (("mlp", 1), ("lenet", 1), ("mlp", 64), ("lenet", 64)):
        allruns = run_inference(model, batch, reps=args.reps)
        cold = allruns[0]["total"]
        runs = [r for r in allruns if not r["cold"]]
        tot = [r["total"] for r in runs]
        best = min(runs, key=lambda r: r["total"])
        rows.append({"model": model, "batch": batch, "reps": len(runs),
                     "total_best": min(tot), "total_median": statistics.median(tot), "total_cold": cold,
                     "offline_best": best["offline"], "online_best": best["online"],
                     "mb_offline": best["bytes_offline"] / 1e6, "mb_online": best["bytes_online"] / 1e6,
                     "mb_total": best["bytes"] / 1e6, "rounds_online": best["rounds_online"],
                     "refs": REFS[(model, batch)], "target_s": TARGETS.get((model, batch))})
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"secure inference, both parties on this machine over tcp loopback, triples from OT (no trusted party); "
          f"best and median of {args.reps} warm runs (cold: first run of the session, with base OTs)")
    hdr = f"{'model':6} {'b':>3} {'offline s':>10} {'online s':>9} {'total s':>8} {'median':>8} " \
          f"{'cold':>7} {'MB off':>9} {'MB on':>8} {'rounds':>6}  target   references"
    print(hdr)
    for r in rows:
        refs = "; ".join(f"{k} {v[0]:.2f} s" + (f" {v[1]:.0f} MB" if v[1] else "") for k, v in r["refs"].items())
        tgt = f"< {r['target_s']:.2f} s" if r["target_s"] else "-"
        print(f"{r['model']:6} {r['batch']:>3} {r['offline_best']:>10.3f} {r['online_best']:>9.3f} "
              f"{r['total_best']:>8.3f} {r['total_median']:>8.3f} {r['total_cold']:>7.3f} {r['mb_offline']:>9.1f} "
              f"{r['mb_online']:>8.2f} "
              f"{r['rounds_online']:>6}  {tgt:8} {refs}")


if __name__ == "__main__":
    main()
