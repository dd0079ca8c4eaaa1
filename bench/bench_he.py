"""asv suite for the homomorphic linear layers (``ezprotocols.arith.he``): time and
bytes of the 128x784 by 784x128 matmul with P0's weights and shared by shared, and of the
ResNet-stage convolution with P0's weights, two parties over loopback TCP.

Run: ``asv run --python=same --quick --bench bench_he`` (or ``python bench/figures_he.py
--spu`` for the table with SPU cheetah in the same run).
"""
import functools

from bench.figures_he import _pair, party_private, party_ss

WORKLOADS = {
    "matmul_p0w": (party_private, dict(kind="linear", x_shape=(128, 784), w_shape=(784, 128))),
    "matmul_ss": (party_ss, dict(m=128, k=784, n=128)),
    "resnet_conv": (party_private, dict(kind="conv", x_shape=(1, 64, 56, 56), w_shape=(64, 64, 3, 3))),
}


@functools.lru_cache(maxsize=None)
def _run(wl):
    fn, kw = WORKLOADS[wl]
    return _pair(fn, "tcp", **kw)


class HeLinear:
    params = list(WORKLOADS)
    param_names = ["workload"]
    timeout = 1800

    def track_seconds(self, wl):
        return _run(wl)["total_s"]

    def track_MB(self, wl):
        return _run(wl)["bytes"] / 1e6

    def track_rounds(self, wl):
        return _run(wl)["rounds"]


HeLinear.track_seconds.unit = "s"
HeLinear.track_MB.unit = "MB"
HeLinear.track_rounds.unit = "rounds"
