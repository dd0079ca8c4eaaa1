"""Figures of the hybrid protocols, two processes over TCP loopback, beside SPU
0.9.5 (cheetah, no trusted party; semi2k for ReLU 1e5) measured in the same run.

    python bench/figures_protocols.py [--no-spu] [--json] [--quick]

Every workload runs with both comparison engines ("gc": garbled carry, "ot": OT-based
millionaires) over both correlated-OT sources ("iknp", "ferret").  ``proj. MB`` is
the byte count projected from the OT counts for a silent-OT source at 0.3 bytes per
OT plus one choice bit (the silent-OT target), replacing IKNP's 16 bytes per OT.
``--quick`` skips ReLU 1e6.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_protocols import WORKLOADS, run_workload  # noqa: E402

VARIANTS = (("gc", "iknp"), ("ot", "iknp"), ("gc", "ferret"), ("ot", "ferret"))


def main():
    use_spu = "--no-spu" not in sys.argv
    rows = []
    for name in WORKLOADS:
        if name == "relu_1e6" and "--quick" in sys.argv:
            continue
        row = {"workload": name, "ours": []}
        for compare, ot in VARIANTS:
            row["ours"].append(run_workload(name, transport="tcp", reps=4 if name != "relu_1e6" else 2,
                                            compare=compare, ot=ot))
        if use_spu:
            from bench.reference import run_spu
            row["spu_cheetah"] = run_spu(name, reps=2)
            if name == "relu_1e5":
                row["spu_semi2k_trusted_party"] = run_spu("relu_1e5_semi2k", reps=2)
        rows.append(row)
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=1, default=str))
        return
    print(f"{'workload':18s} {'cmp':3s} {'ot':6s} {'best s':>8s} {'mean s':>8s} {'mean MB':>9s} {'proj. MB':>8s} "
          f"{'rounds':>9s} | "
          f"{'SPU cheetah s':>13s} {'MB':>7s} {'t ratio':>7s}")
    for r in rows:
        sp = r.get("spu_cheetah")
        for o in r["ours"]:
            sps = f"{sp['time_s']:13.3f} {sp['bytes'] / 1e6:7.1f} {sp['time_s'] / o['time_mean_s']:6.2f}x" if sp \
                else "   (not run)"
            print(f"{r['workload']:18s} {o['compare']:3s} {o['ot']:6s} {o['time_s']:8.3f} {o['time_mean_s']:8.3f} "
                  f"{o['bytes_mean'] / 1e6:9.2f} "
                  f"{(o['ferret_bytes'] or float('nan')) / 1e6:8.2f} {str(o['rounds']):>9s} | {sps}")
        if r.get("spu_semi2k_trusted_party"):
            t = r["spu_semi2k_trusted_party"]
            print(f"{'':18s} SPU semi2k (trusted party): {t['time_s']:.3f} s, {t['bytes'] / 1e6:.1f} MB")
    print("t ratio = SPU median time / our mean time (higher is better for us); rounds = (P0, P1) direction runs; "
          "ferret rows: the source primed to its main LPN set at set-up, LPN iterations amortized in the means")


if __name__ == "__main__":
    main()
