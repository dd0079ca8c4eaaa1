"""Figures of the OT layer: two processes over tcp loopback (``run_pair(transport=
"tcp")``), 2^24 OTs per batch, base OTs timed separately; COT/s, random OT/s,
chosen OT/s (16-byte messages), additive OT/s (64-bit), bytes per OT, each also as
a ratio to ``openssl speed -evp aes-128-ecb`` blocks/s (16384-byte column)
measured in the same run.

    python bench/figures_ot.py [--n LOG2] [--repeat R] [--json]

Each flavour runs one warm-up batch and then R timed batches in one session; the
table gives the best and the median.  "reused" = outputs written into preallocated
arrays (steady state); "fresh" = every batch allocates its outputs (includes the
page faults of 256 MiB of new memory per output array on this VM).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_ot import measure, measure_base_ot  # noqa: E402
from ezprotocols._ext import ot as K  # noqa: E402

EMP = {"cot": 64e6, "rot": 41e6, "chosen": 30e6, "base_ot_s": 0.010}     # emp-toolkit 0.3
TARGET = {"cot": 96e6, "chosen": 45e6}


def openssl_blocks_per_s(seconds=1):
    """``openssl speed -evp aes-128-ecb``: the 16384-byte column, in 16-byte blocks/s."""
    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "-evp", "aes-128-ecb"],
                         capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    head = [ln for ln in lines if ln.startswith("type")][-1]
    row = [ln for ln in lines if ln.upper().startswith("AES-128-ECB")][-1]
    cols = re.findall(r"(\d+) bytes", head)
    vals = re.findall(r"([\d.]+)k", row)
    i = cols.index("16384")
    bps = float(vals[i]) * 1000.0
    return {"bytes_per_s": bps, "blocks_per_s": bps / 16, "line": row.strip()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="log2 of the batch size (default 24)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    n = 1 << a.n
    ref = openssl_blocks_per_s()
    rows = {"n": n, "openssl": ref, "vaes": K.vaes_enabled(), "gfni_transpose": K.gfni_transpose_enabled()}
    base = measure_base_ot(repeat=a.repeat)
    rows["base_ot_128_s"] = {"best": min(base), "median": statistics.median(base)}
    for flavour in ("cot", "rot", "chosen", "acot"):
        for reuse in (True, False):
            if not reuse and flavour in ("acot",):
                continue
            times, per_ot, _ = measure(flavour, n, repeat=a.repeat, reuse=reuse)
            rates = sorted(n / t for t in times)
            rows[f"{flavour}_{'reused' if reuse else 'fresh'}"] = {
                "best_per_s": rates[-1], "median_per_s": statistics.median(rates), "all_per_s": rates,
                "bytes_per_ot": per_ot}
    ref_after = openssl_blocks_per_s()
    rows["openssl_after"] = ref_after
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    blk = ref["blocks_per_s"]
    print(f"OpenSSL aes-128-ecb, 16384-byte column (same run): {blk / 1e6:.0f} M blocks/s "
          f"({ref['bytes_per_s'] / 1e9:.2f} GB/s; again after the OT runs: {ref_after['blocks_per_s'] / 1e6:.0f} M)")
    print(f"VAES: {rows['vaes']}  AVX-512 GFNI transpose: {rows['gfni_transpose']}  "
          f"batch n = 2^{a.n}, {a.repeat} timed batches per row, two processes over tcp loopback")
    b = rows["base_ot_128_s"]
    print(f"128 base OTs (Chou-Orlandi, MODP-3072): best {b['best'] * 1e3:.0f} ms, median {b['median'] * 1e3:.0f} ms "
          f"(emp-toolkit: {EMP['base_ot_s'] * 1e3:.0f} ms)")
    print(f"{'flavour':22s} {'best':>10s} {'median':>10s} {'best/OpenSSL':>13s} {'B/OT':>7s} "
          f"{'vs emp':>7s} {'target':>8s}")
    for key, r in rows.items():
        if not isinstance(r, dict) or "best_per_s" not in r:
            continue
        fl = key.split("_")[0]
        emp = f"{r['best_per_s'] / EMP[fl]:.2f}x" if fl in EMP else "-"
        tgt = TARGET.get(fl)
        tg = ("-" if tgt is None else ("met" if r["best_per_s"] >= tgt else "MISSED")) + \
             ("" if tgt is None else f" {tgt / 1e6:.0f}M")
        print(f"{key:22s} {r['best_per_s'] / 1e6:8.1f} M {r['median_per_s'] / 1e6:8.1f} M "
              f"{r['best_per_s'] / blk:12.3f}x {r['bytes_per_ot']:7.2f} {emp:>7s} {tg:>8s}")


if __name__ == "__main__":
    main()
