"""Shared helpers for the benchmark suites and figure scripts.

The yardstick for every kernel figure is ``openssl speed -evp aes-128-ecb``
measured in the same run (the machine is shared and noisy, so only ratios taken
in one run are meaningful).
"""
from __future__ import annotations

import re
import subprocess
import time


def openssl_aes_ecb(seconds: int = 1) -> dict:
    """Run ``openssl speed -evp aes-128-ecb`` and return its 16 KiB-block throughput:
    ``{"bytes_per_s": ..., "blocks_per_s": ..., "line": raw line}``."""
    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "-evp", "aes-128-ecb"],
                         capture_output=True, text=True, check=True).stdout
    line = [ln for ln in out.splitlines() if ln.upper().startswith("AES-128-ECB")][-1]
    vals = [float(v.rstrip("k")) * 1000 for v in re.findall(r"[\d.]+k", line)]
    best = vals[-1]            # the largest block size column, in bytes/s
    return {"bytes_per_s": best, "blocks_per_s": best / 16, "line": line.strip()}


def best_of(fn, repeat: int = 3):
    """Minimum wall time of ``fn()`` over ``repeat`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def fmt_rate(x: float, unit: str = "") -> str:
    for p, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= p:
            return f"{x / p:.2f} {s}{unit}"
    return f"{x:.2f} {unit}"
