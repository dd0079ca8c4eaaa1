"""Projection of secure inference time on a real link: time = compute + bytes/bandwidth +
rounds x RTT, for LeNet batch 64 (measured: ours with each OT backend and SPU cheetah,
from bench/figures_nn.py --jsonl) and DenseNet-121 224x224 batch 1 (estimated).

    python bench/projection_nn.py --tcp RUN.jsonl [--shaped 100mbit=F.jsonl 1gbit=G.jsonl] [--markdown]

LeNet b64: compute = the smallest median loopback time over the --tcp runs given (the
machine is shared: the least-loaded run; it includes the loopback transfer), bytes and
rounds as measured (offline + online, warm run). Subtracting bytes/RATE from the shaped
runs is no compute estimate: transfer and computation overlap (ours at 100 Mbit/s is
within 0.1 s of bytes/RATE). SPU's unshaped-loopback time was larger than its 1 Gbit/s
netns time in this session (see nn_e2e.md), so its projection is pessimistic. SPU does not count rounds: its send actions of both
parties (``messages``) are used, an upper bound. With ``--shaped`` the time measured
under tools/netshape.sh (no latency) is printed beside the projection at RTT 0.

DenseNet-121 (``ezprotocols.arith.plan_costs.densenet121_layers``, batch 1, 224x224):
* linear bytes: the HE plan estimate (``python -m ezprotocols.costs --linear densenet121``,
  offline) + the online masked input, 8 bytes per input element of every layer with P0's
  weights (what LeNet's online conv/matmul phases measure exactly);
* non-linear bytes: element counts x the bytes per element that the LeNet b64 run of the
  same OT backend measured online (its ``per_op_online``): relu per ReLU (the plan runs
  ReLU after a following max pool, on the pooled map, also for DenseNet's conv0); maxpool per
  comparison (2x2 window = 3, DenseNet's 3x3/s2/p1 = 8); the final argmax over 1000
  classes per comparison of LeNet's argmax over 10 (9 per sample);
* rounds: online per ReLU layer and per maxpool tree level and per argmax level as in
  LeNet, 1 per linear layer; offline 2 per linear layer + 1 (LeNet: 9 for 4);
* compute (rough, labelled as such): HE seconds per offline MB and online seconds per
  non-linear byte of the LeNet b64 loopback run, scaled to DenseNet's bytes.
Truncation is fused into the layers in LeNet's phases and is scaled with them; batch
norms (``scale`` layers) are costed as linear layers. A lower-bound-ish estimate: OT
refills at DenseNet's size (more rounds) are not modelled.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LINKS = (("1 Gbit/s", 1e9), ("100 Mbit/s", 1e8))
RTTS = (0.001, 0.020)
# the plan applies ReLU after the 2x2 max pool (they commute), so LeNet's ReLUs are on the pooled maps
LENET64 = {"relu": 64 * (6 * 12 * 12 + 16 * 4 * 4 + 100), "maxpool_cmp": 3 * 64 * (6 * 12 * 12 + 16 * 4 * 4),
           "argmax_cmp": 64 * 9, "relu_layers": 3, "maxpool_levels": 2 * 2, "argmax_levels": 4}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def key(r):
    return "SPU cheetah" if r["who"] == "spu" else "ours " + ",".join(f"{k}={v}" for k, v in r["config"].items())


def summarize(rows, model="lenet_demo", batch=64):
    out = {}
    for r in rows:
        if r["model"] != model or r["batch"] != batch:
            continue
        d = out.setdefault(key(r), {"times": [], "rows": []})
        d["times"].append(r["time_median"])
        d["rows"].append(r)
    for d in out.values():
        r = d["rows"][-1]
        d["time"] = statistics.median(d["times"])
        d["compute"] = min(d["times"])
        d["bytes"] = r["bytes"]
        d["rounds"] = r.get("rounds", r.get("messages"))
        d["rounds_note"] = "" if "rounds" in r else " (messages, upper bound)"
    return out


def densenet(per_op):
    """Bytes, rounds and rough compute of DenseNet-121 224x224 b1 from LeNet b64's per-op costs."""
    from ezprotocols.arith.plan_costs import densenet121_layers, plan_bytes
    L = densenet121_layers()
    he = plan_bytes(L)["he"]
    lin_online = sum(8 * math.prod(x) for k, x, w, kw in L)
    relu = 64 * 56 * 56                  # conv0 -> BN -> ReLU -> maxpool (ReLU after the pool, as in LeNet)
    relu_layers = 1
    for i, (k, x, w, kw) in enumerate(L):
        if k == "scale":                                         # BN -> ReLU before every conv / the classifier
            relu += math.prod(x)
            relu_layers += 1
        if k == "conv" and i + 1 < len(L) and L[i + 1][0] == "conv":   # bottleneck 1x1 -> BN -> ReLU
            relu += math.prod(L[i + 1][1])
            relu_layers += 1
    maxpool_cmp = 8 * 64 * 56 * 56
    argmax_cmp = 999
    n_lin = sum(1 for k, *_ in L)
    b_relu = per_op["relu"]["bytes"] / LENET64["relu"]
    b_cmp = per_op["maxpool"]["bytes"] / LENET64["maxpool_cmp"]
    b_arg = per_op["output"]["bytes"] / LENET64["argmax_cmp"]
    nonlin = relu * b_relu + maxpool_cmp * b_cmp + argmax_cmp * b_arg
    r_relu = per_op["relu"]["rounds"] / LENET64["relu_layers"]
    r_lvl = per_op["maxpool"]["rounds"] / LENET64["maxpool_levels"]
    r_arg = per_op["output"]["rounds"] / LENET64["argmax_levels"]
    rounds_on = relu_layers * r_relu + 4 * r_lvl + 10 * r_arg + n_lin
    rounds_off = 2 * n_lin + 1
    return {"he_offline": he, "linear_online": lin_online, "nonlinear": nonlin, "bytes": he + lin_online + nonlin,
            "rounds": int(round(rounds_on + rounds_off)), "relu": relu, "relu_layers": relu_layers,
            "linear_layers": n_lin, "b_relu": b_relu, "b_cmp": b_cmp}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", required=True, nargs="+", help="figures_nn --jsonl files of the loopback run")
    ap.add_argument("--shaped", nargs="*", default=[], help="LABEL=FILE.jsonl of netshape runs")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    tcp_rows = [r for p in args.tcp for r in load(p)]
    base = summarize(tcp_rows)
    shaped = {}
    for item in args.shaped:
        label, path = item.split("=", 1)
        shaped[label] = summarize(load(path))
    hdr = ["workload", "config", "compute s", "MB", "rounds"] + \
        [f"{ln} RTT {int(rtt * 1000)} ms" for ln, _ in LINKS for rtt in RTTS] + \
        [f"measured {lab}" for lab in shaped]
    lines = []

    def add(workload, name, compute, nbytes, rounds, note="", meas=()):
        cells = [workload, name + note, f"{compute:.2f}", f"{nbytes / 1e6:.1f}", f"{rounds}"]
        for _, bw in LINKS:
            for rtt in RTTS:
                cells.append(f"{compute + 8 * nbytes / bw + rounds * rtt:.1f}")
        cells += list(meas)
        lines.append(cells)

    for name, d in base.items():
        meas = []
        for lab, sd in shaped.items():
            meas.append(f"{sd[name]['time']:.2f}" if name in sd else "-")
        add("LeNet b64", name, d["compute"], d["bytes"], d["rounds"], d["rounds_note"], meas)
        if d["rounds_note"]:                     # SPU: rounds unknown, the lower bound without latency
            add("LeNet b64", name, d["compute"], d["bytes"], 0, " (rounds unknown: no RTT term, lower bound)", meas)
    # DenseNet from the per-op costs of the shaped (or loopback) LeNet runs, compute from the loopback run
    for name, d in base.items():
        if not name.startswith("ours"):
            continue
        src = [r for lab in shaped for r in shaped[lab].get(name, {}).get("rows", []) if r.get("per_op_online")]
        src += [r for r in d["rows"] if r.get("per_op_online")]
        if not src:
            continue
        dn = densenet(src[-1]["per_op_online"])
        lr = min(d["rows"], key=lambda r: r["time_median"])
        on_s, off_s = lr["online_s"], lr["offline_s"]
        lenet_nonlin = lr["bytes_online"]
        compute = off_s * dn["he_offline"] / max(lr["bytes_offline"], 1) + on_s * dn["nonlinear"] / max(lenet_nonlin, 1)
        add("DenseNet-121 b1 (est.)", name, compute, dn["bytes"], dn["rounds"], " (compute rough)",
            ["-"] * len(shaped))
        print(f"# DenseNet-121 {name}: HE offline {dn['he_offline'] / 1e9:.3f} GB + linear online "
              f"{dn['linear_online'] / 1e9:.3f} GB + non-linear {dn['nonlinear'] / 1e9:.3f} GB "
              f"({dn['relu']} ReLU in {dn['relu_layers']} layers at {dn['b_relu']:.0f} B, maxpool "
              f"{dn['b_cmp']:.0f} B/comparison); {dn['linear_layers']} linear layers", file=sys.stderr)
    if args.markdown:
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for c in lines:
            print("| " + " | ".join(c) + " |")
    else:
        w = [max(len(x) for x in col) for col in zip(hdr, *lines)]
        print("  ".join(h.ljust(n) for h, n in zip(hdr, w)))
        for c in lines:
            print("  ".join(x.ljust(n) for x, n in zip(c, w)))


if __name__ == "__main__":
    main()
