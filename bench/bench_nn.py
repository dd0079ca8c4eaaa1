"""asv suite for secure inference: MLP 784-128-128-10 and LeNet (conv 5x5
1->6, relu, maxpool 2, conv 5x5 6->16, relu, maxpool 2, fc 256->100, relu, fc
100->10) at batch 1 and 64, both parties over TCP loopback: offline time, online
time, bytes (P0's payload bytes sent + received = all traffic).

Run: ``asv run --python=same --quick --bench bench_nn`` or ``python
bench/figures_nn.py`` for the table with the references.

The models are built here with ``onnx.helper`` (random He-initialised weights,
seeded; benchmark data only) and go through the whole product path:
``load_onnx`` -> architecture exchange -> offline preparation of the P0-weight
layers -> online inference revealing the class to P1.
"""
from __future__ import annotations

import os
import time

import numpy as np


def _init(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def mlp_model():
    """784-128-128-10 with ReLU (Gemm nodes, dynamic batch)."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(1)
    dims = [784, 128, 128, 10]
    nodes, inits, cur = [], [], "x"
    for i in range(3):
        W, b = _init(rng, (dims[i + 1], dims[i]), dims[i]), np.zeros(dims[i + 1], np.float32)
        inits += [numpy_helper.from_array(W, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [f"g{i}"], transB=1))
        cur = f"g{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def lenet_model():
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(_init(rng, (6, 1, 5, 5), 25), "c1"),
             numpy_helper.from_array(np.zeros(6, np.float32), "c1b"),
             numpy_helper.from_array(_init(rng, (16, 6, 5, 5), 150), "c2"),
             numpy_helper.from_array(np.zeros(16, np.float32), "c2b"),
             numpy_helper.from_array(_init(rng, (100, 256), 256), "f1"),
             numpy_helper.from_array(np.zeros(100, np.float32), "f1b"),
             numpy_helper.from_array(_init(rng, (10, 100), 100), "f2"),
             numpy_helper.from_array(np.zeros(10, np.float32), "f2b")]
    n = helper.make_node
    nodes = [n("Conv", ["x", "c1", "c1b"], ["a1"]), n("Relu", ["a1"], ["r1"]),
             n("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             n("Conv", ["p1", "c2", "c2b"], ["a2"]), n("Relu", ["a2"], ["r2"]),
             n("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
             n("Flatten", ["p2"], ["fl"]), n("Gemm", ["fl", "f1", "f1b"], ["h"], transB=1),
             n("Relu", ["h"], ["hr"]), n("Gemm", ["hr", "f2", "f2b"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "lenet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def lenet_demo_model():
    """The shipped demo model (ezprotocols/nn/data/lenet_mnist.onnx, trained; same
    layer shapes as :func:`lenet_model`)."""
    import onnx
    from ezprotocols.nn import demo
    path = os.path.join(os.path.dirname(os.path.abspath(demo.__file__)), "data", "lenet_mnist.onnx")
    return onnx.load(path)


MODELS = {"mlp": mlp_model, "lenet": lenet_model, "lenet_demo": lenet_demo_model}


def run_inference(model: str, batch: int, reps: int = 3, transport: str = "tcp", act_bits: int = 64,
                  **session_kwargs):
    """Secure inference of ``batch`` random samples, ``reps + 1`` times in one session
    pair; returns per-run dicts ``{offline, online, total}`` (seconds: max over the two
    parties), bytes (offline, online, total) and ``cold`` (the first run, which also
    pays the session's one-time costs such as the base OTs; the others are warm).
    ``session_kwargs`` (``ot=``, ``linear=``, ``triples=``, ``compare=``) go to both
    parties' :class:`~ezprotocols.Session`.  ``act_bits``: the model owner's public
    activation bound (``serve --calibrate`` picks one; 64 = none)."""
    from ezprotocols.nn import load_onnx
    from ezprotocols.nn.secure import query_session, serve_session
    from ezprotocols.runner import run_pair
    plan = load_onnx(MODELS[model]().SerializeToString(), act_bits=act_bits)
    rng = np.random.default_rng(3)                   # benchmark data only
    x = rng.random((batch,) + plan.input_shape)

    def party(role):
        def f(s):
            out = []
            for r in range(reps + 1):
                s.channel.exchange(f"bench.sync{r}", np.zeros(1, np.uint8))
                s.channel.stats.reset()
                t = time.perf_counter()
                if role == 0:
                    res = serve_session(s, plan)
                else:
                    res = query_session(s, x)
                wall = time.perf_counter() - t
                out.append({"offline": res["offline"]["seconds"], "online": res["online"]["seconds"],
                            "wall": wall, "bytes_offline": res["offline"]["bytes"],
                            "bytes_online": res["online"]["bytes"], "bytes": res["total"]["bytes"],
                            "rounds_online": res["online"]["rounds"],
                            "rounds_offline": res["offline"]["rounds"], "rounds": res["total"]["rounds"],
                            "per_op": res.get("per_op", {})})
            return out
        return f

    r0, r1 = run_pair(party(0), party(1), transport=transport, timeout=3600, **session_kwargs)
    runs = []
    for k, (a, b) in enumerate(zip(r0, r1)):
        runs.append({"offline": max(a["offline"], b["offline"]), "online": max(a["online"], b["online"]),
                     "total": max(a["wall"], b["wall"]), "bytes_offline": a["bytes_offline"],
                     "bytes_online": a["bytes_online"], "bytes": a["bytes"], "rounds_online": a["rounds_online"],
                     "rounds_offline": a["rounds_offline"], "rounds": a["rounds"], "per_op": a["per_op"],
                     "cold": k == 0})
    return runs


class SecureInference:
    """Total time (offline + online, max over the parties) and bytes per inference."""
    timeout = 3600
    params = (["mlp", "lenet"], [1, 64])
    param_names = ["model", "batch"]

    def setup(self, model, batch):
        self.runs = [r for r in run_inference(model, batch, reps=1) if not r["cold"]]

    def track_total_seconds(self, model, batch):
        return min(r["total"] for r in self.runs)
    track_total_seconds.unit = "s"

    def track_offline_seconds(self, model, batch):
        return min(r["offline"] for r in self.runs)
    track_offline_seconds.unit = "s"

    def track_online_seconds(self, model, batch):
        return min(r["online"] for r in self.runs)
    track_online_seconds.unit = "s"

    def track_megabytes(self, model, batch):
        return self.runs[0]["bytes"] / 1e6
    track_megabytes.unit = "MB"
