"""Figures of the arithmetic-sharing layer, with their references.

    python bench/figures_arith.py [--repeat R] [--transports local,tcp] [--spu] [--skip-ss-ot] [--json]

* Ring GEMM (``ezprotocols._ext.ring.matmul``, exact mod 2^64, one thread) in GMAC/s,
  beside numpy float64 matmul (OpenBLAS, its default threads and one thread) and numpy's
  own uint64 matmul, measured in the same run; ``openssl speed -evp aes-128-ecb`` is
  printed as the machine's yardstick.
* Triples/s (64-bit elementwise, OT: Gilboa with the additive COT, 128 OTs per triple).
* Elementwise multiply of 10^6 shared values; 128x784 by 784x128 matmul shared by shared
  and with P0-known weights: time and bytes, offline and online, with OT triples (no
  third party) and with the TRUSTED DEALER (labelled as such), two parties on this machine:
  ``local`` = two threads over an in-process channel, ``tcp`` = two processes over
  loopback TCP.  Each row: best and median of R repetitions in one session (a repetition's
  time is the slower party's; bytes are payload bytes in both directions).
* References (both parties local): CrypTen 0.4.1 (trusted first party), SPU 0.9.5
  cheetah (no trusted party).  ``--spu`` also measures SPU in this run
  (``bench/reference``; needs the SPU venv).
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_arith import gemm_gmacs, measure  # noqa: E402
from bench.common import openssl_aes_ecb  # noqa: E402
from ezprotocols._ext import ring  # noqa: E402

REF = {  # (seconds, bytes)
    "crypten": {"mul": (0.10, 32e6), "matmul_ss": (0.014, 3.2e6), "matmul_p0w": (0.014, 3.2e6)},
    "spu_cheetah": {"mul": (3.8, 226e6), "matmul_ss": (1.35, 5.9e6), "matmul_p0w": (1.35, 5.9e6)},
}
SPU_NAME = {"mul": "mul_1e6", "matmul_ss": "matmul_ss", "matmul_p0w": "matmul_p0w"}
LABEL = {"mul": "mul 10^6", "matmul_ss": "matmul 128x784x128 shared x shared",
         "matmul_p0w": "matmul 128x784x128 P0-known weights", "triples": "elementwise triples"}


def _gemm_rows():
    rows = []
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:            # pragma: no cover
        threadpool_limits = None
    for shape in ((128, 784, 128), (512, 512, 512), (1024, 1024, 1024)):
        g_ring, g_f64, g_u64 = gemm_gmacs(*shape)
        g_f64_1 = None
        if threadpool_limits is not None:
            with threadpool_limits(limits=1, user_api="blas"):
                g_f64_1 = gemm_gmacs(*shape)[1]
        rows.append({"shape": shape, "ring": g_ring, "f64": g_f64, "f64_1thread": g_f64_1, "numpy_u64": g_u64})
    return rows


def _summ(runs):
    out = {}
    for key in ("offline_s", "online_s", "total_s"):
        v = [r[key] for r in runs]
        out[key] = {"best": min(v), "median": statistics.median(v)}
    for key in ("offline_bytes", "online_bytes", "online_rounds", "bytes"):
        out[key] = statistics.median([r[key] for r in runs])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--transports", default="local,tcp")
    ap.add_argument("--spu", action="store_true", help="measure the SPU references in this run too")
    ap.add_argument("--skip-ss-ot", action="store_true", help="skip the (slow, ~7 GB) shared x shared OT matmul")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    transports = [t for t in a.transports.split(",") if t]
    res = {"openssl": openssl_aes_ecb(), "avx512_gemm": ring.avx512_enabled(), "gemm": _gemm_rows(),
           "protocols": {}, "spu": {}}
    n_tr = 1 << 20
    for tr in transports:
        runs, info = measure("triples", "ot", tr, reps=a.repeat, n=n_tr)
        s = _summ(runs)
        s["triples_per_s"] = {"best": n_tr / s["offline_s"]["best"], "median": n_tr / s["offline_s"]["median"]}
        s["bytes_per_triple"] = s["offline_bytes"] / n_tr
        res["protocols"][f"triples/ot/{tr}"] = s
    for wl in ("mul", "matmul_ss", "matmul_p0w"):
        for src in ("ot", "dealer"):
            for tr in transports:
                if wl == "matmul_ss" and src == "ot" and a.skip_ss_ot:
                    continue
                reps = a.repeat if not (wl == "matmul_ss" and src == "ot") else max(1, min(a.repeat, 2))
                runs, info = measure(wl, src, tr, reps=reps)
                s = _summ(runs)
                s["trusted_dealer"] = info["trusted_dealer"]
                if "costs" in info:
                    s["costs"] = info["costs"]
                res["protocols"][f"{wl}/{src}/{tr}"] = s
    if a.spu:
        from bench.reference import run_spu
        for wl, name in SPU_NAME.items():
            r = run_spu(name)
            if r:
                res["spu"][wl] = {"time_s": r["time_s"], "bytes": r["bytes"], "mode": r.get("mode")}
    if a.json:
        print(json.dumps(res, indent=1, default=str))
        return
    _print(res, a, transports)


def _print(res, a, transports):
    o = res["openssl"]
    print(f"OpenSSL aes-128-ecb (same run): {o['bytes_per_s'] / 1e9:.2f} GB/s = {o['blocks_per_s'] / 1e6:.0f} M blocks/s")
    print(f"command: python bench/figures_arith.py --repeat {a.repeat} --transports {','.join(transports)}"
          + (" --spu" if a.spu else "") + (" --skip-ss-ot" if a.skip_ss_ot else ""))
    print(f"\nExact Z_2^64 GEMM (AVX-512 kernel: {res['avx512_gemm']}, one thread) vs numpy float64 matmul, GMAC/s")
    print(f"{'shape':>18s} {'ring u64':>10s} {'f64 BLAS':>10s} {'f64 1 thr':>10s} {'ring/f64':>9s} "
          f"{'ring/f64 1thr':>13s} {'numpy u64':>10s}")
    for r in res["gemm"]:
        sh = "x".join(map(str, r["shape"]))
        f1 = r["f64_1thread"]
        print(f"{sh:>18s} {r['ring']:10.1f} {r['f64']:10.1f} {f1 if f1 else float('nan'):10.1f} "
              f"{r['ring'] / r['f64']:9.2f} {(r['ring'] / f1) if f1 else float('nan'):13.2f} {r['numpy_u64']:10.2f}")
    print("\nProtocols (best / median of the repetitions; bytes = payload both directions, median)")
    for tr in transports:
        t = res["protocols"].get(f"triples/ot/{tr}")
        if t:
            print(f"  64-bit elementwise triples, OT, {tr}: {t['triples_per_s']['best'] / 1e6:.3f} M/s best, "
                  f"{t['triples_per_s']['median'] / 1e6:.3f} M/s median, {t['bytes_per_triple']:.0f} B/triple")
    hdr = (f"{'workload':38s} {'source':16s} {'transport':9s} {'total s':>14s} {'offline s':>14s} "
           f"{'online s':>14s} {'offline MB':>11s} {'online MB':>10s} {'rounds':>6s}")
    print(hdr)
    for key, s in res["protocols"].items():
        wl, src, tr = key.split("/")
        if wl == "triples":
            continue
        label = "DEALER (trusted)" if s.get("trusted_dealer") else "OT (no 3rd party)"

        def bm(v):
            return f"{v['best']:.3f}/{v['median']:.3f}"
        print(f"{LABEL[wl]:38s} {label:16s} {tr:9s} {bm(s['total_s']):>14s} {bm(s['offline_s']):>14s} "
              f"{bm(s['online_s']):>14s} {s['offline_bytes'] / 1e6:11.1f} {s['online_bytes'] / 1e6:10.2f} "
              f"{s['online_rounds']:6.0f}")
        if "costs" in s:
            c = s["costs"]
            print(f"{'':38s}   OT decomposition for P0's weights: mask bits {c['mask'] / 1e6:.1f} MB, "
                  f"weight bits ({c['weight_bits']} b) {c['weights'] / 1e6:.1f} MB -> {c['chosen']}")
    print("\nAgainst the references (both parties local; ours: best total time, local if measured)")
    tr0 = "local" if "local" in transports else transports[0]
    for wl in ("mul", "matmul_ss", "matmul_p0w"):
        ot = res["protocols"].get(f"{wl}/ot/{tr0}")
        de = res["protocols"].get(f"{wl}/dealer/{tr0}")
        spu_t, spu_b = REF["spu_cheetah"][wl]
        cr_t, cr_b = REF["crypten"][wl]
        line = f"  {LABEL[wl]:38s}"
        if ot:
            r = spu_t / ot['total_s']['best']
            cmp = f"{r:.2f}x faster than" if r >= 1 else f"{1 / r:.2f}x slower than"
            line += (f" OT {ot['total_s']['best']:.3f} s {ot['bytes'] / 1e6:.1f} MB = {cmp} SPU cheetah "
                     f"({spu_t} s, {spu_b / 1e6:.1f} MB; our bytes x{ot['bytes'] / spu_b:.0f});")
        if de:
            line += (f" TRUSTED DEALER {de['total_s']['best']:.4f} s {de['bytes'] / 1e6:.1f} MB = "
                     f"{de['total_s']['best'] / cr_t:.2f}x CrypTen's time ({cr_t} s, {cr_b / 1e6:.1f} MB)")
        print(line)
        sp = res["spu"].get(wl)
        if sp:
            print(f"  {'':38s} SPU cheetah measured in this run ({sp['mode']}): {sp['time_s']:.3f} s, "
                  f"{sp['bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
