"""Figures of the hybrid protocols, two processes over TCP loopback, beside SPU
0.9.5 (cheetah, no trusted party; semi2k for ReLU 1e5) measured in the same run.

    python bench/figures_protocols.py [--no-spu] [--json]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_protocols import WORKLOADS, run_workload  # noqa: E402


def main():
    use_spu = "--no-spu" not in sys.argv
    rows = []
    for name in WORKLOADS:
        ours = run_workload(name, transport="tcp", reps=3 if name != "relu_1e6" else 2)
        row = {"workload": name, "ours": ours}
        if use_spu:
            from bench.reference import run_spu
            row["spu_cheetah"] = run_spu(name, reps=2)
            if name == "relu_1e5":
                row["spu_semi2k_trusted_party"] = run_spu("relu_1e5_semi2k", reps=2)
        rows.append(row)
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=1, default=str))
        return
    print(f"{'workload':18s} {'ours s':>8s} {'ours MB':>9s} {'rounds':>8s} | {'SPU cheetah s':>13s} "
          f"{'MB':>7s} {'ratio':>6s}")
    for r in rows:
        o = r["ours"]
        sp = r.get("spu_cheetah")
        sps = f"{sp['time_s']:13.3f} {sp['bytes'] / 1e6:7.1f} {sp['time_s'] / o['time_s']:5.2f}x" if sp else "   (not run)"
        print(f"{r['workload']:18s} {o['time_s']:8.3f} {o['bytes'] / 1e6:9.1f} {str(o['rounds']):>8s} | {sps}")
        if r.get("spu_semi2k_trusted_party"):
            t = r["spu_semi2k_trusted_party"]
            print(f"{'':18s} SPU semi2k (trusted party): {t['time_s']:.3f} s, {t['bytes'] / 1e6:.1f} MB")
    print("ratio = SPU time / our time (higher is better for us)")


if __name__ == "__main__":
    main()
