"""Figures of the garbled-circuit layer: end-to-end AND gates/s of the Yao
protocol over TCP loopback on AES-128 x 10,000 blocks in one batch and on a bare
layer of 2^26 independent ANDs, bytes per AND, the kernels alone, Bristol parsing;
each rate also as a ratio to ``openssl speed -evp aes-128-ecb`` blocks/s measured in
the same run.  Reference (emp-sh2pc 0.3, this machine kind): 19.8 M AND/s batched
AES, 25.1 M AND/s bare AND layers, 32 B/AND.

    python bench/figures_gc.py [--reps N] [--json]
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_gc import SHA_PATH, aes_e2e, and_layer, local_kernels  # noqa: E402
from bench.common import fmt_rate, openssl_aes_ecb  # noqa: E402

EMP = {"aes10k": 19.8e6, "and_layer": 25.1e6}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per figure (after a warm-up)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from ezprotocols._ext import garble
    from ezprotocols.gc import Circuit
    from ezprotocols.gc.yao import HEADER_BYTES

    rows = {"vaes": garble.vaes_enabled()}
    ref = openssl_aes_ecb()
    rows["openssl"] = ref
    t = time.perf_counter()
    sha = Circuit.from_bristol(SHA_PATH)
    rows["parse_sha256_s"] = time.perf_counter() - t
    t = time.perf_counter()
    sha.program
    rows["compile_sha256_s"] = time.perf_counter() - t
    rows["local"] = local_kernels()
    r = aes_e2e(reps=args.reps)
    rows["aes10k"] = r
    r2 = and_layer(reps=args.reps)
    rows["and_layer"] = r2
    ref2 = openssl_aes_ecb()            # again after the runs: the machine is shared
    rows["openssl_after"] = ref2
    if args.json:
        print(json.dumps(rows, indent=1, default=float))
        return
    blk = max(ref["blocks_per_s"], ref2["blocks_per_s"])
    print(f"OpenSSL aes-128-ecb (same run): {fmt_rate(ref['blocks_per_s'], 'blocks/s')} before, "
          f"{fmt_rate(ref2['blocks_per_s'], 'blocks/s')} after; ratios use the best, {fmt_rate(blk, 'blocks/s')}")
    print(f"VAES path: {rows['vaes']}")
    print(f"Bristol parse sha256.txt (3.5 MB, 135k gates): {rows['parse_sha256_s'] * 1e3:.1f} ms, "
          f"compile to program {rows['compile_sha256_s'] * 1e3:.1f} ms")
    for k, v in rows["local"].items():
        print(f"kernel, one process, AES x 10k: {k[:-10]:9s} {fmt_rate(v, 'AND/s'):>14}  "
              f"{v / blk:.3f} AND per OpenSSL block")
    for name, res, what in (("aes10k", r, "AES-128 x 10,000 blocks, s.yao end to end"),
                            ("and_layer", r2, "bare AND layer, 2^26 ANDs, s.gc.run")):
        rates = [res["n_and"] / t for t in res["times"]]
        best, med = max(rates), statistics.median(rates)
        print(f"{what}: best {fmt_rate(best, 'AND/s')}, median {fmt_rate(med, 'AND/s')} over {len(rates)} runs "
              f"(times {', '.join(f'{t:.3f}' for t in res['times'])} s); {best / blk:.4f} AND per OpenSSL block; "
              f"{best / EMP[name]:.2f}x emp-sh2pc ({fmt_rate(EMP[name], 'AND/s')})")
    st = r["stats"]
    n = r["n_and"]
    nz = st["sent"] - st["cot_sent"]
    print(f"bytes (P0 = garbler), AES x 10k: sent {nz} excl. COT = {nz / n:.3f} B/AND "
          f"(tables exactly 32 B/AND; + header, 16 B per garbler input bit, output bits); "
          f"COT: {st['cot_sent'] + st['cot_recv']} B for 1.28 M evaluator input bits "
          f"({st['cot_seconds']:.3f} s of the run)")
    g, e = st["tables"], r["stats_evaluator"]["tables"]
    print(f"where the time goes (last AES run): garbler {g['seconds']:.3f} s streaming tables = "
          f"{g['compute_seconds']:.3f} s garbling + {g['io_seconds']:.3f} s in send (channel back-pressure); "
          f"evaluator {e['seconds']:.3f} s = {e['compute_seconds']:.3f} s evaluating + {e['io_seconds']:.3f} s "
          f"in recv (waiting + copying out of ZeroMQ); {g['messages']} messages, W = {g['W']} copies per chunk; "
          f"COT {r['stats_evaluator']['cot_seconds']:.3f} s (evaluator side)")
    print(f"bytes, bare AND layer: garbler sent {r2['bytes_sent']} = {(r2['bytes_sent'] - HEADER_BYTES) / r2['n_and']:.3f} B/AND "
          f"+ {HEADER_BYTES} B header; decoded check: {r2['ok']}")


if __name__ == "__main__":
    main()
