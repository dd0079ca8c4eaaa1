"""Secure inference over a link with latency: the model owner's CLI server and the data
owner's CLI client connected through the shared tools' ``delayproxy.py`` (a fixed one-way
delay on every chunk, both directions), beside SPU 0.9.5 cheetah behind the same proxy
(``EZP_SPU_DELAY``, bench/reference/spu_ref.py) in the same run.

    python bench/latency.py [--delays 0,0.005,0.025] [--compare ot,gc] [--batch 1]
        [--act-bits 64] [--ot ferret] [--reps 2] [--no-spu] [--json]

Per configuration: ``1 + reps`` queries, each a fresh channel and session (as with the
CLI: every query pays the session set-up: base OTs, HE keys, Ferret bootstrap); reported:
the data owner's wall time from its session start to the classes (best and median of
the last ``reps``; the first is also printed, "cold": fresh processes), the online part
alone, bytes and rounds (online rounds as the executor counts them: every layer starts
a new run, an upper bound).  SPU's figure excludes its set-up (its first run, reported
as "cold").  Under ``tools/netshape.sh RATE`` the proxy and
both parties share the shaped loopback.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from ezprotocols.testing import free_tcp_port as _port  # noqa: E402

PROXY = os.environ.get("EZP_DELAYPROXY") or os.path.normpath(os.path.join(ROOT, "..", "shared", "tools",
                                                                          "delayproxy.py"))


def _serve_one(port, plan_bytes, act_bits, kw):
    from ezprotocols import Session
    from ezprotocols.net import listen
    from ezprotocols.nn import load_onnx
    from ezprotocols.nn.secure import serve_session
    plan = load_onnx(plan_bytes, act_bits=act_bits)
    ch = listen(f"tcp://127.0.0.1:{port}", timeout=600)
    with Session(0, ch, **kw) as s:
        serve_session(s, plan)
    ch.close()


def ours(delay: float, compare: str, batch: int, reps: int, act_bits: int, ot: str) -> dict:
    """The model owner (a process) and the data owner (this process), one fresh channel and
    session per query as with the CLI (whose TCP lobby redirects each session to an
    ephemeral port, which a single forwarded port cannot follow: hence the parties'
    library calls here); the data owner connects through the proxy."""
    import multiprocessing as mp

    from ezprotocols import Session
    from ezprotocols.net import connect
    from ezprotocols.nn import demo_model_path, demo_validation_set
    from ezprotocols.nn.secure import query_session
    x, _ = demo_validation_set(batch)
    with open(demo_model_path(), "rb") as f:
        model = f.read()
    ctx = mp.get_context("fork")
    runs = []
    for _ in range(1 + reps):
        port = _port()
        srv = ctx.Process(target=_serve_one, args=(port, model, act_bits, {"ot": ot, "compare": compare, "backends_from": 0}),
                          daemon=True)
        srv.start()
        proxy = None
        try:
            cport = port
            if delay > 0:
                cport = _port()
                proxy = subprocess.Popen([sys.executable, PROXY, str(cport), str(port), str(delay)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            ch = connect(f"tcp://127.0.0.1:{cport}", timeout=600)
            t = time.perf_counter()
            with Session(1, ch, backends_from=0) as s:
                r = query_session(s, x)
            wall = time.perf_counter() - t
            ch.close()
            srv.join(60)
        finally:
            for p in (proxy,):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
            if srv.is_alive():
                srv.kill()
        runs.append({"wall": wall, "query_s": r["offline"]["seconds"] + r["online"]["seconds"],
                     "online_s": r["online"]["seconds"], "bytes": r["total"]["bytes"],
                     "bytes_online": r["online"]["bytes"], "rounds": r["total"]["rounds"],
                     "rounds_online": r["online"]["rounds"]})
    warm = runs[1:]
    best = min(warm, key=lambda r: r["wall"])
    return {"who": "ours", "compare": compare, "ot": ot, "act_bits": act_bits, "delay_s": delay, "batch": batch,
            "query_s": best["wall"], "query_median_s": statistics.median(r["wall"] for r in warm),
            "online_s": best["online_s"], "bytes": best["bytes"], "bytes_online": best["bytes_online"],
            "rounds": best["rounds"], "rounds_online": best["rounds_online"], "cold_query_s": runs[0]["wall"],
            "cold_bytes": runs[0]["bytes"]}


def spu(delay: float, batch: int) -> dict | None:
    from bench.reference import run_spu
    os.environ["EZP_SPU_DELAY"] = str(delay)
    try:
        ref = run_spu(f"lenet_b{batch}", timeout=1800, reps=2)
    finally:
        os.environ.pop("EZP_SPU_DELAY", None)
    if not ref:
        return None
    return {"who": "spu", "delay_s": delay, "batch": batch, "query_s": ref["time_s"], "bytes": ref["bytes"],
            "messages": ref.get("messages"), "cold_query_s": ref.get("first_run_s")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delays", default="0,0.005,0.025", help="one-way delays in seconds (comma list)")
    ap.add_argument("--compare", default="ot,gc")
    ap.add_argument("--batch", type=int, default=1, choices=(1, 64))
    ap.add_argument("--act-bits", type=int, default=64)
    ap.add_argument("--ot", default="ferret")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--no-spu", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rows = []
    if not a.json:
        print(f"LeNet (demo model) batch {a.batch}, data owner -> delayproxy -> model owner (two processes, fresh session per query); "
              f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
        print(f"{'delay':>7} {'who':28} {'query s':>8} {'median':>8} {'online s':>8} {'MB':>8} {'MB on':>7} "
              f"{'rounds':>6} {'r on':>5} {'cold s':>7}")
    for d in [float(v) for v in a.delays.split(",")]:
        group = [ours(d, c, a.batch, a.reps, a.act_bits, a.ot) for c in a.compare.split(",")]
        if not a.no_spu:
            ref = spu(d, a.batch)
            if ref:
                group.append(ref)
        rows += group
        if not a.json:
            for r in group:
                who = (f"ours {r['ot']} compare={r['compare']}" + (f" act{r['act_bits']}" if r["act_bits"] < 64
                                                                      else "")) if r["who"] == "ours" else \
                    "SPU 0.9.5 cheetah"
                print(f"{d * 1e3:5.0f}ms {who:28} {r['query_s']:8.3f} {r.get('query_median_s', r['query_s']):8.3f} "
                      f"{r.get('online_s', float('nan')):8.3f} {r['bytes'] / 1e6:8.2f} "
                      f"{r.get('bytes_online', float('nan')) / 1e6:7.2f} {r.get('rounds', '-'):>6} "
                      f"{r.get('rounds_online', '-'):>5} {r.get('cold_query_s') or float('nan'):7.2f}")
    if a.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
