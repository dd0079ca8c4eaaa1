"""asv suite for the homomorphic linear layers (``ezprotocols.arith.he``): time and
bytes of the 128x784 by 784x128 matmul with P0's weights and shared by shared (with and
without truncation), and of the ResNet-stage and a DenseNet 7x7 convolution with P0's weights,
two parties over loopback TCP.

Run: ``asv run --python=same --quick --bench bench_he`` (or ``python bench/figures_he.py
--spu`` for the table with SPU cheetah in the same run).
"""
import functools

from bench.figures_he import _pair, party_private, party_ss, party_ss_trunc

WORKLOADS = {
    "matmul_p0w": (party_private, dict(kind="linear", x_shape=(128, 784), w_shape=(784, 128))),
    "matmul_ss": (party_ss, dict(m=128, k=784, n=128)),
    # the same through the tensor API with Cheetah's one-batch truncation over Ferret (SPU's figure
    # includes its truncation)
    "matmul_ss_onebit": (party_ss_trunc, dict(m=128, k=784, n=128, method="onebit")),
    "resnet_conv": (party_private, dict(kind="conv", x_shape=(1, 64, 56, 56), w_shape=(64, 64, 3, 3))),
    # a DenseNet-121 block-4 1x1 conv: packed by he.CONV_PACK "auto" (11.8 -> 1.7 MB)
    "densenet_conv_7x7": (party_private, dict(kind="conv", x_shape=(1, 960, 7, 7), w_shape=(128, 960, 1, 1))),
}
SESSIONS = {"matmul_ss_onebit": {"ot": "ferret"}}


@functools.lru_cache(maxsize=None)
def _run(wl):
    fn, kw = WORKLOADS[wl]
    return _pair(fn, "tcp", SESSIONS.get(wl), **kw)


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
