"""asv suite: DenseNet secure inference, one image, both parties over TCP
loopback (bench/densenet.py): time, bytes, rounds and peak memory per party.
"mini" (blocks 2,2,2,2, growth 8, 32x32) runs in about a second; "d121-32"
(the DenseNet-121 structure at 32x32, ~8 GB with the OT linear layers) is the
one the 224x224 projection is made from.

Run: ``asv run --python=same --quick --bench bench_densenet``.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class DenseNetInference:
    timeout = 3600
    params = (["mini", "d121-32"],)
    param_names = ["config"]

    def setup(self, config):
        from densenet import measure
        self.r = measure(config)

    def track_seconds(self, config):
        return self.r["seconds"]
    track_seconds.unit = "s"

    def track_megabytes(self, config):
        return self.r["bytes"] / 1e6
    track_megabytes.unit = "MB"

    def track_rounds(self, config):
        return self.r["rounds"]
    track_rounds.unit = "rounds"

    def track_peak_mib_p0(self, config):
        return self.r["peak_rss_p0"] / 2 ** 20
    track_peak_mib_p0.unit = "MiB"

    def track_peak_mib_p1(self, config):
        return self.r["peak_rss_p1"] / 2 ** 20
    track_peak_mib_p1.unit = "MiB"
