"""Print the figures of secure inference (two processes over TCP loopback): offline /
online / total time (best and median of the warm runs, max over the two parties),
bytes and rounds, offline and online, beside SPU 0.9.5 cheetah measured in the same
run on the same workloads (``bench/reference``, P0-private weights, P1-private input).

    python bench/figures_nn.py [--reps 2] [--repeat 2] [--ot iknp,ferret]
        [--linear he] [--triples he] [--compare ot] [--workloads mlp:1,lenet_demo:1,lenet_demo:64]
        [--no-spu] [--spu-reps 2] [--label 100mbit] [--json] [--jsonl FILE]

Models: ``mlp`` (784-128-128-10), ``lenet`` (random He-initialised LeNet) and
``lenet_demo`` (the shipped trained model ezprotocols/nn/data/lenet_mnist.onnx, same
shapes). ``--ot`` takes a comma list: every workload runs once per OT backend; the other
backend options default to the library defaults (``None``). ``--repeat N`` repeats the
whole sweep (ours and SPU) N times, so ratios come from the same run. Under
``tools/netshape.sh RATE`` both parties (ours and SPU's) share the shaped loopback; add
latency on paper as rounds x RTT.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_nn import run_inference  # noqa: E402

SPU_NAME = {"mlp": "mlp_b{}", "lenet": "lenet_b{}", "lenet_demo": "lenet_b{}"}


def ours(model, batch, reps, kw):
    allruns = run_inference(model, batch, reps=reps, **kw)
    cold = allruns[0]
    runs = [r for r in allruns if not r["cold"]]
    tot = [r["total"] for r in runs]
    best = min(runs, key=lambda r: r["total"])
    return {"who": "ours", "model": model, "batch": batch, "config": {k: v for k, v in kw.items() if v},
            "reps": len(runs), "time_best": min(tot), "time_median": statistics.median(tot),
            "offline_s": best["offline"], "online_s": best["online"],
            "bytes_offline": best["bytes_offline"], "bytes_online": best["bytes_online"], "bytes": best["bytes"],
            "rounds_offline": best["rounds_offline"], "rounds_online": best["rounds_online"],
            "rounds": best["rounds"], "cold_s": cold["total"], "cold_bytes": cold["bytes"],
            "cold_rounds": cold["rounds"], "times": tot, "per_op_online": best["per_op"]}


def spu(model, batch, reps):
    from bench.reference import run_spu
    name = SPU_NAME[model].format(batch)
    ref = run_spu(name, timeout=1800, reps=reps)
    if not ref:
        return None
    return {"who": "spu", "model": model, "batch": batch, "config": {"workload": name},
            "reps": len(ref.get("times_s", [])), "time_best": min(ref["times_s"]), "time_median": ref["time_s"],
            "time_mean": ref.get("time_mean_s"), "bytes": ref["bytes"], "messages": ref["messages"],
            "cold_s": ref.get("first_run_s"), "cold_bytes": ref.get("first_run_bytes"),
            "correct": ref.get("correct"), "times": ref["times_s"]}


def fmt(r, spu_row=None):
    mb = r["bytes"] / 1e6
    if r["who"] == "spu":
        return (f"{'SPU cheetah':22} {'':>7} {'':>7} {r['time_best']:>8.3f} {r['time_median']:>8.3f} "
                f"{'':>8} {'':>8} {mb:>8.2f} {'':>5} {'':>5} {r['messages']:>6}m "
                f"{r['cold_s'] or 0:>7.2f} {(r['cold_bytes'] or 0) / 1e6:>7.1f}  mean {r['time_mean'] or 0:.3f}")
    cfg = ",".join(f"{k}={v}" for k, v in r["config"].items()) or "defaults"
    s = (f"{cfg:22} {r['offline_s']:>7.3f} {r['online_s']:>7.3f} {r['time_best']:>8.3f} {r['time_median']:>8.3f} "
         f"{r['bytes_offline'] / 1e6:>8.2f} {r['bytes_online'] / 1e6:>8.2f} {mb:>8.2f} "
         f"{r['rounds_offline']:>5} {r['rounds_online']:>5} {r['rounds']:>6}  "
         f"{r['cold_s']:>7.2f} {r['cold_bytes'] / 1e6:>7.1f}")
    if spu_row:
        s += (f"  SPU/ours time {spu_row['time_median'] / r['time_median']:.2f}x"
              f" bytes {spu_row['bytes'] / r['bytes']:.2f}x")
    return s


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2, help="warm runs per configuration (after one cold run)")
    ap.add_argument("--repeat", type=int, default=1, help="repeat the whole sweep (ours and SPU)")
    ap.add_argument("--workloads", default="mlp:1,lenet_demo:1,lenet_demo:64", help="model:batch,...")
    ap.add_argument("--ot", default="iknp,ferret", help="comma list of OT backends (each is run)")
    ap.add_argument("--linear", default=None)
    ap.add_argument("--triples", default=None)
    ap.add_argument("--compare", default=None, help="comma list of comparison engines (each is run)")
    ap.add_argument("--act-bits", type=int, default=64, help="the models' public activation bound (64: none)")
    ap.add_argument("--no-spu", action="store_true")
    ap.add_argument("--spu-reps", type=int, default=2)
    ap.add_argument("--label", default="tcp loopback", help="free text printed in the header (e.g. the link)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--jsonl", default=None, help="append every row as one JSON line to this file")
    args = ap.parse_args(argv)
    wls = [(w.split(":")[0], int(w.split(":")[1])) for w in args.workloads.split(",")]
    ots = [o or None for o in args.ot.split(",")]
    rows = []
    if not args.json:
        print(f"secure inference, two processes, link: {args.label}; ours: best/median of {args.reps} warm runs, "
              f"max over parties; SPU 0.9.5 cheetah (P0-private weights, P1-private input): best/median of "
              f"{args.spu_reps} warm runs; {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
        print(f"{'config':22} {'off s':>7} {'on s':>7} {'best s':>8} {'median':>8} {'MB off':>8} {'MB on':>8} "
              f"{'MB tot':>8} {'r off':>5} {'r on':>5} {'rounds':>6}  {'cold s':>7} {'cold MB':>7}")
    for rep in range(args.repeat):
        for model, batch in wls:
            group = []
            for ot in ots:
                for cmp in (args.compare or "").split(","):
                    kw = {"ot": ot, "linear": args.linear, "triples": args.triples, "compare": cmp or None}
                    if args.act_bits != 64:
                        kw["act_bits"] = args.act_bits
                    group.append(ours(model, batch, args.reps, kw))
            ref = None if args.no_spu else spu(model, batch, args.spu_reps)
            if ref:
                group.append(ref)
            for r in group:
                r["repeat"], r["label"] = rep, args.label
            rows += group
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    for r in group:
                        f.write(json.dumps(r) + "\n")
            if not args.json:
                print(f"-- {model} batch {batch} (repeat {rep + 1}/{args.repeat})")
                for r in group:
                    print(fmt(r, ref if r["who"] == "ours" else None), flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
