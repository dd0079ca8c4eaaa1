"""asv suite for the hybrid layer: ReLU, argmax, maxpool (two parties, in-process channel;
``figures_protocols.py`` runs them over TCP between two processes beside SPU)."""
import time

import numpy as np

import ezprotocols as ez
from ezprotocols.arith import ArithTensor
from ezprotocols.protocols import setup
from ezprotocols.runner import run_pair




WORKLOADS = {
    "relu_1e5": ((10**5,), lambda t: ez.relu(t)),
    "relu_1e6": ((10**6,), lambda t: ez.relu(t)),
    "argmax_1000x10": ((1000, 10), lambda t: ez.argmax(t, axis=-1)),
    "maxpool_16x24x24": ((1, 16, 24, 24), lambda t: ez.maxpool2d(t, 2)),
}


def run_workload(name, transport="local", reps=1):
    """-> dict(time_s (best of reps, max over the parties), bytes (both directions), rounds (P0, P1))."""
    shape, fn = WORKLOADS[name]

    def party(s):
        setup(s)
        x = ArithTensor(s, s.prg.random_uint64(shape) >> np.uint64(40), 16)
        best = None
        for r in range(reps):
            with s.phase(f"run{r}"):
                t0 = time.perf_counter()
                fn(x)
                dt = time.perf_counter() - t0
            c = s.counters(f"run{r}")
            if best is None or dt < best[0]:
                best = (dt, c.bytes_sent + c.bytes_recv, c.rounds)
        return best

    r0, r1 = run_pair(party, party, transport=transport, timeout=1200)
    return {"time_s": max(r0[0], r1[0]), "bytes": r0[1], "rounds": (r0[2], r1[2])}


class Hybrid:
    params = ["relu_1e5", "argmax_1000x10", "maxpool_16x24x24"]
    param_names = ["workload"]
    timeout = 600

    def track_seconds(self, w):
        return run_workload(w)["time_s"]
    track_seconds.unit = "s"

    def track_megabytes(self, w):
        return run_workload(w)["bytes"] / 1e6
    track_megabytes.unit = "MB"
