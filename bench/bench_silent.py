"""asv suite of the elliptic-curve base OT set-up and Ferret silent
random COT between two processes over tcp loopback (IKNP alongside for the ratio).

Run: ``asv run --python=same --quick --bench bench_silent`` (or the figures script
``python bench/figures_silent.py`` for the table with OpenSSL in the same run).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.figures_silent import measure_base, measure_cot  # noqa: E402


class BaseOTSetup:
    params = ["ec", "modp"]
    param_names = ["group"]
    timeout = 300
    number = 1
    repeat = 1

    def track_both_directions_seconds(self, group):
        return min(measure_base(group, repeat=3))
    track_both_directions_seconds.unit = "s"


class SilentCot:
    params = [["ferret_rcot", "ferret_cot", "iknp_cot"], [1 << 20, 1 << 24]]
    param_names = ["engine", "n"]
    timeout = 900
    number = 1
    repeat = 1

    def track_cots_per_s(self, engine, n):
        e, f = engine.split("_")
        r = measure_cot(e, f, n, repeat=3)
        return 3 * n / r["sum_s"]
    track_cots_per_s.unit = "COT/s"

    def track_bytes_per_cot_first_batch(self, engine, n):
        e, f = engine.split("_")
        return measure_cot(e, f, n, repeat=1)["first_bytes_per_ot"]
    track_bytes_per_cot_first_batch.unit = "bytes"
