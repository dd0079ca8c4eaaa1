"""Measure every SPU reference workload several times and print a markdown table.

    python bench/reference/spu_table.py [--rounds 2] [--jsonl out.jsonl] [--shared-variants] [WORKLOAD ...]
    python bench/reference/spu_table.py --summarize out.jsonl [more.jsonl ...]

Runs with any Python (the ezprotocols venv is fine): each workload goes through
``bench.reference.run_spu`` (the SPU venv in a subprocess). Every round is one
invocation of ``spu_ref.py`` (one warm-up run + ``--reps`` timed runs); the table gives
the median and the mean over all timed runs of all rounds, the median bytes, and the
first (warm-up) run. ``--shared-variants`` adds the MLP/LeNet rows with every input
secret-shared (``--shared-inputs``), the configuration the quoted SPU numbers match.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench.reference import SPU_WORKLOADS, run_spu  # noqa: E402

SLOW = {"relu_1e6", "mul_1e6", "lenet_b64"}


def _row(label, res):
    times = [t for r in res for t in r["times_s"]]
    byts = [b for r in res for b in r["bytes_runs"]]
    first_t = statistics.median(r["first_run_s"] for r in res)
    first_b = statistics.median(r["first_run_bytes"] for r in res)
    ok = all(r["correct"] for r in res)
    return (f"| {label} | {res[0]['protocol']} | {statistics.median(times):.3f} | "
            f"{statistics.fmean(times):.3f} | {min(times):.3f} | {max(times):.3f} | "
            f"{statistics.median(byts) / 1e6:.2f} | {statistics.median(r['messages'] for r in res):.0f} | "
            f"{first_t:.2f} / {first_b / 1e6:.1f} | {len(times)} ({len(res)}) | {'yes' if ok else 'NO'} |")


HEADER = ("| workload | protocol | median s | mean s | min s | max s | MB (median) | messages | "
          "first run s / MB | timed runs (invocations) | correct |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def _label(r):
    return r["workload"] + (" (shared inputs)" if "--shared-inputs" in r["description"] else "") + \
        (" [threads]" if "threads" in r["mode"] else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", nargs="*")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reps", type=int, default=0, help="timed runs per round (default 5, 3 for the slow ones)")
    ap.add_argument("--jsonl", help="append every result dict to this file")
    ap.add_argument("--shared-variants", action="store_true")
    ap.add_argument("--timeout", type=float, default=1200.0)
    ap.add_argument("--summarize", nargs="+", metavar="JSONL",
                    help="do not run: pool the results saved in these files into one table")
    args = ap.parse_args()
    if args.summarize:
        groups = {}
        for path in args.summarize:
            with open(path) as f:
                for line in f:
                    if line.strip():
                        r = json.loads(line)
                        groups.setdefault(_label(r), []).append(r)
        print(HEADER)
        for label, res in groups.items():
            print(_row(label, res))
        return
    names = args.workloads or list(SPU_WORKLOADS)
    jobs = [(w, False) for w in names]
    if args.shared_variants:
        jobs += [(w, True) for w in names if w.startswith(("mlp_", "lenet_"))]
    rows = []
    for w, shared in jobs:
        reps = args.reps or (3 if w in SLOW else 5)
        res = []
        for _ in range(args.rounds):
            r = run_spu(w, args.timeout, reps=reps, shared_inputs=shared)
            if r is None:
                continue
            res.append(r)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(r) + "\n")
        label = w + (" (shared inputs)" if shared else "")
        rows.append(_row(label, res) if res else f"| {label} | failed |")
        print(rows[-1], file=sys.stderr, flush=True)
    print(HEADER)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
