"""Figures of the homomorphic linear layers (``ezprotocols.arith.he``).

    python bench/figures_he.py [--transport tcp|local] [--spu] [--skip-lenet] [--json]

Two parties on this machine (``tcp``: two processes over loopback TCP).  Each row: wall
time (the slower party), payload bytes in both directions and rounds, for

* ``matmul_p0w``: ``X[128, 784] @ W[784, 128]``, ``X`` shared, ``W`` known to P0
  (:class:`PrivateLinear`, offline HE product + the online masked input), target <= 4 MB;
* ``matmul_ss``: the same shapes shared by shared (:func:`he.shared_matmul`: the two cross
  terms homomorphically, no triple; no truncation);
* ``matmul_ss_onebit`` / ``matmul_ss_faithful``: the same through the tensor API (``x @ y`` on
  fixed-point tensors at 18 fractional bits, SPU's default for FM64) with the result truncated
  by ``onebit`` (Cheetah's one-batch truncation, off by at most one unit, as SPU's) or
  ``faithful`` (exact) over Ferret silent OT (the CLI's source; its one-time base OTs run
  before the timer); the default ``local`` truncation moves no bytes (``matmul_ss``);
* ``resnet_conv``: ``conv2d(X[1, 64, 56, 56], W[64, 64, 3, 3], padding=1)`` with P0's
  weights (:class:`PrivateConv2d`), target <= 4x the bytes of the input and output shares;
* ``lenet_b64``: the four linear layers of LeNet (bench/reference/spu_ref.py) at batch 64:
  HE bytes measured, OT bytes from the cost model (which the tests check against measured
  bytes; running it moves ~2 GB);
* the one-time key set-up (public key and the Galois keys of output packing, each direction)
  is reported separately; the rows exclude it (``with keys``: a session's first packed
  product including the keys of its direction).

``--spu`` runs SPU 0.9.5 cheetah's ``matmul_p0w``, ``matmul_ss`` and ``lenet_b64`` in the same
run (``bench/reference``; its figures include truncation and, for LeNet, the non-linear
layers, so they bound the linear part from above).
"""
import argparse
import functools
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ezprotocols.arith import PrivateConv2d, PrivateLinear, he  # noqa: E402
from ezprotocols.testing import run_pair  # noqa: E402

WB = 18            # signed bits of the fixed-point weights (|w| < 2 at 16 fractional bits)
LENET = [("conv", (64, 1, 28, 28), (6, 1, 5, 5)), ("conv", (64, 6, 12, 12), (16, 6, 5, 5)),
         ("linear", (64, 256), (256, 100)), ("linear", (64, 100), (100, 10))]


def _stats(s, phase):
    c = s.stats().get(phase, {})
    return {"bytes": c.get("bytes", 0), "rounds": c.get("rounds", 0)}


def _barrier(s, tag):
    s.channel.exchange("bench." + tag, np.zeros(1, np.uint8))


def _layer(s, kind, x_shape, w_shape, decompose):
    rng = np.random.default_rng(7)
    W = rng.normal(size=w_shape) * 0.1 if s.role == 0 else None
    if kind == "linear":
        return PrivateLinear(s, W, shape=w_shape, weight_bits=WB, decompose=decompose)
    return PrivateConv2d(s, W, shape=w_shape, padding=1 if w_shape[2] == 3 else 0, weight_bits=WB,
                         decompose=decompose)


def _keys(s):
    with s.phase("keys"):
        for k in (0, 1):
            he._setup(s, k)
    with s.phase("galois"):
        for k in (0, 1):
            he._setup(s, k, galois=True)
    st = s.stats()
    return st["keys"]["bytes"], st["galois"]["bytes"]


def party_private(s, kind, x_shape, w_shape):
    """One private layer with P0's weights, nothing prepared: the HE product runs on the
    non-owner's share directly (one round trip)."""
    pk_bytes, gk_bytes = _keys(s)
    lay = _layer(s, kind, x_shape, w_shape, "he")
    x = s.input(np.zeros(x_shape) if s.role == 1 else None, 1, shape=x_shape)
    _barrier(s, "a")
    t0 = time.perf_counter()
    with s.phase("offline"):
        pass
    t1 = time.perf_counter()
    with s.phase("online"):
        lay(x, truncate=False)
    t2 = time.perf_counter()
    st = s.stats()
    off, on = st["offline"], st["online"]
    return {"offline_s": t1 - t0, "online_s": t2 - t1, "total_s": t2 - t0,
            "offline_bytes": off["bytes"], "online_bytes": on["bytes"],
            "bytes": off["bytes"] + on["bytes"], "rounds": off["rounds"] + on["rounds"],
            "setup_bytes": pk_bytes, "galois_bytes": gk_bytes, "costs": lay.costs(x_shape)}


def party_ss(s, m, k, n):
    _keys(s)
    X = s.prg.random_uint64((m, k))
    Y = s.prg.random_uint64((k, n))
    _barrier(s, "a")
    t0 = time.perf_counter()
    with s.phase("ss"):
        he.shared_matmul(s, X, Y)
    t1 = time.perf_counter()
    c = s.stats()["ss"]
    return {"total_s": t1 - t0, "bytes": c["bytes"], "rounds": c["rounds"]}


def party_ss_trunc(s, m, k, n, method):
    from ezprotocols.arith.tensor import ArithTensor
    from ezprotocols.arith.trunc import truncate_shares
    _keys(s)
    truncate_shares(s, np.zeros(1, np.uint64), 18, method)       # Ferret's base OTs, once
    X = ArithTensor(s, s.prg.random_uint64((m, k)), 18)
    Y = ArithTensor(s, s.prg.random_uint64((k, n)), 18)
    _barrier(s, "a")
    t0 = time.perf_counter()
    with s.phase("ss"):
        X.matmul(Y, method=method)
    t1 = time.perf_counter()
    c = s.stats()["ss"]
    return {"total_s": t1 - t0, "bytes": c["bytes"], "rounds": c["rounds"]}


def _pair(fn, transport, session=None, **kw):
    f = functools.partial(fn, **kw)
    r0, r1 = run_pair(f, f, transport=transport, timeout=1800, **(session or {}))
    r = dict(r0)
    for key in ("total_s", "offline_s", "online_s"):
        if key in r:
            r[key] = max(r0[key], r1[key])
    return r


def _spu(name):
    try:
        from bench.reference import run_spu
    except ImportError:           # pragma: no cover
        return None
    return run_spu(name, timeout=1800, reps=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", default="tcp")
    ap.add_argument("--spu", action="store_true")
    ap.add_argument("--skip-lenet", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = {"params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in he.check_parameters().items()},
           "rows": {}, "spu": {}}
    rows = res["rows"]
    rows["matmul_p0w"] = _pair(party_private, a.transport, kind="linear", x_shape=(128, 784), w_shape=(784, 128))
    rows["matmul_ss"] = _pair(party_ss, a.transport, m=128, k=784, n=128)
    for method in ("onebit", "faithful"):
        rows[f"matmul_ss_{method}"] = _pair(party_ss_trunc, a.transport, {"ot": "ferret"}, m=128, k=784, n=128,
                                            method=method)
    rc = _pair(party_private, a.transport, kind="conv", x_shape=(1, 64, 56, 56), w_shape=(64, 64, 3, 3))
    rc["shares_bytes"] = (64 * 56 * 56 * 2) * 8
    rows["resnet_conv"] = rc
    if not a.skip_lenet:
        tot_he, tot_ot, per = 0, 0, []
        for kind, xs, ws in LENET:
            r = _pair(party_private, a.transport, kind=kind, x_shape=xs, w_shape=ws)
            ot = min(r["costs"]["mask"], r["costs"]["weights"]) + r["online_bytes"]
            per.append({"layer": f"{kind} {xs} x {ws}", "he_bytes": r["bytes"], "ot_bytes": ot, "he_s": r["total_s"]})
            tot_he += r["bytes"]
            tot_ot += ot
        rows["lenet_b64"] = {"layers": per, "he_bytes": tot_he, "ot_bytes": tot_ot,
                             "setup_bytes": rows["matmul_p0w"]["setup_bytes"]}
    if a.spu:
        for name in ("matmul_p0w", "matmul_ss") + (() if a.skip_lenet else ("lenet_b64",)):
            ref = _spu(name)
            if ref:
                res["spu"][name] = {"time_s": ref["time_s"], "bytes": ref["bytes"]}
    if a.json:
        print(json.dumps(res, indent=1, default=str))
        return
    p = res["params"]
    print(f"HE parameters: N={p['N']}, log2 Q={p['log2_Q']:.2f} (<= {p['max_log2_Q_128']}: 128-bit, "
          f"homomorphicencryption.org), final q' 2^{p['final_log2_q']:.1f}; transport {a.transport}")
    gk = rows["matmul_p0w"]["galois_bytes"] / 2
    print(f"one-time key set-up per direction: public key {rows['matmul_p0w']['setup_bytes'] / 2 / 1e6:.2f} MB, "
          f"Galois keys (output packing) {gk / 1e6:.2f} MB")
    mb = lambda v: f"{v / 1e6:8.2f} MB"   # noqa: E731
    for name in ("matmul_p0w", "matmul_ss", "matmul_ss_onebit", "matmul_ss_faithful", "resnet_conv"):
        r = rows[name]
        spu = res["spu"].get(name.replace("_onebit", "").replace("_faithful", ""))
        ref = f"   SPU cheetah: {spu['time_s']:.2f} s {mb(spu['bytes'])}" if spu else ""
        dirs = 2 if name.startswith("matmul_ss") else int(name == "matmul_p0w")  # rows whose products pack
        keys = f"  (with Galois keys {mb(r['bytes'] + dirs * gk)})" if dirs else ""
        print(f"{name:18s} {r['total_s']:7.2f} s {mb(r['bytes'])}  rounds {r['rounds']}{keys}{ref}")
    rc = rows["resnet_conv"]
    print(f"  resnet_conv: {rc['bytes'] / rc['shares_bytes']:.2f}x the input+output shares "
          f"({mb(rc['shares_bytes'])}); target <= 4x")
    if "lenet_b64" in rows:
        L = rows["lenet_b64"]
        for r in L["layers"]:
            print(f"  {r['layer']:40s} HE {mb(r['he_bytes'])}  OT {mb(r['ot_bytes'])}  ({r['ot_bytes'] / r['he_bytes']:.0f}x)")
        spu = res["spu"].get("lenet_b64")
        ref = f"; SPU cheetah whole network {mb(spu['bytes'])} {spu['time_s']:.2f} s" if spu else ""
        print(f"lenet_b64 linear layers: HE {mb(L['he_bytes'])} vs OT {mb(L['ot_bytes'])} "
              f"({L['ot_bytes'] / L['he_bytes']:.0f}x less){ref} "
              f"(Galois keys of the P0-weights direction, once: {mb(gk)})")


if __name__ == "__main__":
    main()
