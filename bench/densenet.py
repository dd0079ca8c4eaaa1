"""DenseNet secure inference benchmark: one image, both parties as two processes
over TCP, per image time / bytes / rounds, peak resident memory per party and
per layer kind, and a plan-level projection to DenseNet-121 at 224x224.

    python bench/densenet.py                       # mini + DenseNet-121 structure at 32x32, loopback
    python bench/densenet.py --configs mini        # one configuration
    ../shared/tools/netshape.sh 1gbit python bench/densenet.py --configs mini --link 1gbit
    python bench/densenet.py --project             # + projection of DenseNet-121 224x224 (needs ~1 min)

Models: scripts/make_densenet.py (onnx.helper, seeded weights, data-dependent
BN statistics, sigmoid head over 14 findings).  Precision: frac_bits 16 and the
public activation bound act_bits 24 that ``serve --calibrate`` picks for these
models (measured worst logit error 0.006 at 32x32).

Projection (``--project``): every op of the 224x224 plan has exactly 49 times
the elements of the same op at 32x32 (every spatial size scales by 7: 112, 56,
28, 14, 7 vs 16, 8, 4, 2, 1).  Layers with P0's weights (conv, matmul, the
depthwise BN) cost, offline, what the linear engine's cost function says for
their 224x224 geometry (the engine picks the cheaper decomposition; exactly
what a run would move), and online one masked message of the input (x 49).
Comparison-based ops (relu, maxpool) cost the measured bytes per element
(x 49); their rounds grow with the number of garbled batches of CHUNK
elements.  Latency on a real link adds rounds x RTT (netem is not available
here; see ../shared/tools/netshape.sh).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

#: the SPU 0.9.5 cheetah workload of the same network (bench/reference/spu_ref.py)
SPU_WORKLOAD = {"mini": "densenet_mini", "d121-32": "densenet121_32", "d121-224": "densenet121_224"}

CONFIGS = {
    "mini": dict(size=32, blocks=(2, 2, 2, 2), growth=8, init=16),
    "d121-32": dict(size=32, blocks=(6, 12, 24, 16), growth=32, init=64),
    "d121-64": dict(size=64, blocks=(6, 12, 24, 16), growth=32, init=64),
    "d121-224": dict(size=224, blocks=(6, 12, 24, 16), growth=32, init=64),
}
ACT_BITS = 24
FRAC_BITS = 16


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _party(role, model, x, act_bits, conv_pack=None):
    """One party's function for run_pair (runs in its own process with transport tcp);
    ``conv_pack``: the HE convolution packing mode P0 publishes (None: the library default)."""
    def fn(s):
        from ezprotocols.nn import load_onnx, secure
        peak: dict = {}

        def probe(kind):
            r = _rss()
            if r > peak.get(kind, 0):
                peak[kind] = r
        secure.OP_PROBE = probe
        t = time.perf_counter()
        if role == 0:
            plan = load_onnx(model, act_bits=act_bits, frac_bits=FRAC_BITS)
            plan.conv_pack = conv_pack
            res = secure.serve_session(s, plan, allow_logits=True)
        else:
            res = secure.query_session(s, x, want_logits=True)
        out = {k: res[k] for k in ("offline", "online", "per_op", "offline_per_op", "total")}
        out["wall"] = time.perf_counter() - t
        out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out["kind_rss"] = peak
        if role == 1:
            out["output"] = np.asarray(res["output"]).tolist()
        return out
    return fn


def measure(name: str, act_bits: int = ACT_BITS, transport: str = "tcp", ot: str | None = None,
            conv_pack: str | None = None) -> dict:
    """One image of configuration ``name``; both parties' costs and memory."""
    from make_densenet import densenet

    from ezprotocols.testing import run_pair
    cfg = CONFIGS[name]
    model = densenet(cfg["size"], cfg["blocks"], cfg["growth"], cfg["init"], classes=14, seed=0)
    x = np.random.default_rng(1).standard_normal((1, 3, cfg["size"], cfg["size"])).astype(np.float32)
    t = time.perf_counter()
    r0, r1 = run_pair(_party(0, model, x, act_bits, conv_pack), _party(1, model, x, act_bits), transport=transport,
                      timeout=24 * 3600.0, frac_bits=FRAC_BITS, ot=ot)
    wall = time.perf_counter() - t
    err = None
    try:
        import onnxruntime as ort
        ref = ort.InferenceSession(model).run(None, {"x": x})[0]
        err = float(np.abs(np.asarray(r1["output"]) - ref).max())
    except ImportError:
        pass
    kinds = {}
    for pre, key in (("", "per_op"), ("offline ", "offline_per_op")):
        for k, v in r1[key].items():
            d = kinds.setdefault(k, {"bytes": 0, "rounds": 0, "seconds": 0.0, "offline_bytes": 0})
            d["bytes"] += v["bytes"]
            d["rounds"] += v["rounds"]
            d["seconds"] += v["seconds"]
            if pre:
                d["offline_bytes"] += v["bytes"]
    for k, d in kinds.items():
        d["peak_rss_p0"] = r0["kind_rss"].get(k, 0)
        d["peak_rss_p1"] = r1["kind_rss"].get(k, 0)
    return {"config": name, **cfg, "act_bits": act_bits, "ot": ot or "iknp", "seconds": wall, "p1_seconds": r1["wall"],
            "bytes": r1["total"]["bytes"], "rounds": r1["total"]["rounds"],
            "offline_bytes": r1["offline"]["bytes"], "online_bytes": r1["online"]["bytes"],
            "peak_rss_p0": r0["maxrss"], "peak_rss_p1": r1["maxrss"], "max_prob_error": err, "kinds": kinds}


def _chunks(n: int) -> int:
    from ezprotocols.protocols.sign import CHUNK
    return max(1, math.ceil(n / CHUNK))


def project(small: dict, full: str = "d121-224", act_bits: int = ACT_BITS, model_path: str | None = None) -> dict:
    """Plan-level bytes / rounds of ``full`` (one image) from the measured run
    ``small`` of the same structure (see the module docstring)."""
    from make_densenet import densenet

    from ezprotocols.arith.conv import Conv2dGeom
    from ezprotocols.arith.cross import conv2d_costs, matmul_costs
    from ezprotocols.arith.private import _bits_needed
    from ezprotocols.nn import load_onnx
    from ezprotocols.nn.secure import linear_form
    cfg, cs = CONFIGS[full], CONFIGS[small["config"]]
    if (cfg["blocks"], cfg["growth"], cfg["init"]) != (cs["blocks"], cs["growth"], cs["init"]):
        raise ValueError("the projection needs a measured run of the same structure")
    if model_path and os.path.exists(model_path):
        with open(model_path, "rb") as f:
            model = f.read()
    else:
        model = densenet(cfg["size"], cfg["blocks"], cfg["growth"], cfg["init"], classes=14, seed=0)
    plan = load_onnx(model, act_bits=act_bits, frac_bits=FRAC_BITS)
    splan = load_onnx(densenet(cs["size"], cs["blocks"], cs["growth"], cs["init"], classes=14, seed=0),
                      act_bits=act_bits, frac_bits=FRAC_BITS)
    # measured per-element online bytes and rounds per garbled batch of the comparison-based kinds
    elems_small: dict = {}
    chunks_small: dict = {}
    for op in splan.ops:
        n = math.prod(splan.value_shape(op.inputs[0]))
        elems_small[op.kind] = elems_small.get(op.kind, 0) + n
        chunks_small[op.kind] = chunks_small.get(op.kind, 0) + _chunks(n)
    kinds: dict = {}
    for i, op in enumerate(plan.ops):
        d = kinds.setdefault(op.kind, {"bytes": 0, "offline_bytes": 0, "rounds": 0})
        n_in = math.prod(plan.value_shape(op.inputs[0]))
        lin = linear_form(plan, op, True)
        m = small["kinds"].get(op.kind, {"bytes": 0, "rounds": 0, "offline_bytes": 0})
        if lin is not None:
            kind, W, wshape, attrs = lin
            wb = _bits_needed(np.asarray(W, dtype=np.int64).view(np.uint64))
            if kind == "conv":
                geom = Conv2dGeom.make((1,) + tuple(plan.value_shape(op.inputs[0])), tuple(wshape),
                                       tuple(attrs["strides"]), tuple(attrs["pads"]), tuple(attrs["dilations"]),
                                       attrs["group"])
                off = min(conv2d_costs(geom, nbits_x=64, nbits_k=wb).values())
            else:
                off = min(matmul_costs(1, wshape[0], wshape[1], nbits_l=64, nbits_r=wb).values())
            d["offline_bytes"] += off
            d["bytes"] += off + 8 * n_in
            d["rounds"] += m["rounds"] // max(1, sum(1 for o in splan.ops if o.kind == op.kind))
        elif m["bytes"]:
            d["bytes"] += m["bytes"] * n_in / max(1, elems_small[op.kind])
            d["rounds"] += m["rounds"] * _chunks(n_in) / max(1, chunks_small[op.kind])
    for d in kinds.values():
        d["bytes"] = int(d["bytes"])
        d["rounds"] = int(round(d["rounds"]))
    other_rounds = small["rounds"] - sum(v["rounds"] for v in small["kinds"].values())
    tot = sum(d["bytes"] for d in kinds.values())
    rounds = sum(d["rounds"] for d in kinds.values()) + max(0, other_rounds)
    return {"config": full, "from": small["config"], "act_bits": act_bits, "bytes": tot,
            "offline_bytes": sum(d["offline_bytes"] for d in kinds.values()), "rounds": rounds, "kinds": kinds}


def _gb(b):
    return f"{b / 1e9:8.2f} GB" if b >= 1e8 else f"{b / 1e6:8.1f} MB"


def table(rows, link) -> str:
    out = [f"link: {link}", f"{'config':10} {'time':>9} {'bytes':>11} {'offline':>11} {'rounds':>7} "
           f"{'peak P0':>9} {'peak P1':>9} {'max |dp|':>9}"]
    for r in rows:
        out.append(f"{r['config']:10} {r['seconds']:8.1f}s {_gb(r['bytes'])} {_gb(r['offline_bytes'])} "
                   f"{r['rounds']:7d} {r['peak_rss_p0'] / 2**20:7.0f}Mi {r['peak_rss_p1'] / 2**20:7.0f}Mi "
                   f"{(r['max_prob_error'] or 0):9.2g}")
        for k, v in sorted(r["kinds"].items(), key=lambda kv: -kv[1]["bytes"]):
            if v["bytes"] or v["seconds"] > 0.05:
                out.append(f"    {k:9} {v['seconds']:8.2f}s {_gb(v['bytes'])} {_gb(v['offline_bytes'])} "
                           f"{v['rounds']:7d} {v['peak_rss_p0'] / 2**20:7.0f}Mi {v['peak_rss_p1'] / 2**20:7.0f}Mi")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="mini,d121-32")
    p.add_argument("--link", default="loopback", help="label of the link (run under netshape.sh to limit it)")
    p.add_argument("--act-bits", type=int, default=ACT_BITS)
    p.add_argument("--ot", default=None, help="correlated-OT source (iknp, the library default, or ferret, the CLI's)")
    p.add_argument("--project", action="store_true", help="also project DenseNet-121 224x224 from d121-32")
    p.add_argument("--model-224", default=None, help="a generated 224x224 model file to reuse for --project")
    p.add_argument("--json", default=None, help="write the results to this file")
    p.add_argument("--conv-pack", default=None, choices=("off", "auto", "bytes"),
                   help="HE convolution packing mode P0 publishes (default: the library's, auto)")
    p.add_argument("--spu", action="store_true", help="also run SPU 0.9.5 cheetah on the same network (reference)")
    a = p.parse_args(argv)
    rows = [measure(c, a.act_bits, ot=a.ot, conv_pack=a.conv_pack) for c in a.configs.split(",")]
    print(table(rows, a.link), flush=True)
    res = {"link": a.link, "runs": rows}
    if a.spu:
        from bench.reference import run_spu
        for r in rows:
            ref = run_spu(SPU_WORKLOAD[r["config"]], timeout=3600.0, reps=1)
            r["spu"] = ref
            if ref:
                print(f"{r['config']:10} SPU cheetah: {ref['time_s']:.1f} s, {_gb(ref['bytes'])}, {ref['messages']} "
                      f"messages (upper bound on rounds); ezprotocols/SPU: time x{r['seconds'] / ref['time_s']:.2f}, "
                      f"bytes x{r['bytes'] / ref['bytes']:.1f}", flush=True)
    if a.project:
        small = next((r for r in rows if r["config"] == "d121-32"), None) or measure("d121-32", a.act_bits)
        pr = project(small, model_path=a.model_224)
        res["projection"] = pr
        print(f"\nprojection DenseNet-121 224x224 (from {pr['from']}, act_bits {pr['act_bits']}): "
              f"{_gb(pr['bytes'])} ({_gb(pr['offline_bytes'])} offline), {pr['rounds']} rounds")
        for k, v in sorted(pr["kinds"].items(), key=lambda kv: -kv[1]["bytes"]):
            if v["bytes"]:
                print(f"    {k:9} {_gb(v['bytes'])} {_gb(v['offline_bytes'])} {v['rounds']:7d} rounds")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
