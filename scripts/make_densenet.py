"""Generate a DenseNet ONNX model (DenseNet-121 by default: Huang et al. 2017,
torchvision's layout) with seeded random weights and a multi-label sigmoid head
(14 findings, like the CheXNeXt / CheXpert chest X-ray models), built with
onnx.helper; nothing is downloaded.

Weights are He-normal; every BatchNormalization gets the *actual* per-channel
mean and variance of its input on a few N(0, 1) images (data-dependent
initialisation, computed here with a numpy forward pass), so activations stay
normalised through the depth as in a trained network and the fixed-point
precision measured on it is meaningful.

    python scripts/make_densenet.py out.onnx                      # DenseNet-121, 224x224, 14 findings
    python scripts/make_densenet.py out.onnx --size 32 --blocks 2,2 --growth 8 --init 16   # a tiny one

The library function :func:`densenet` returns the serialized model.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

DENSENET121 = dict(blocks=(6, 12, 24, 16), growth=32, init=64, bn_size=4)


def _conv_np(x, w, stride, pad):
    """Plain numpy conv (NCHW, OIHW), for the data-dependent BN statistics."""
    from ezprotocols.nn.plaintext import conv_cols, conv_out, conv_weight_mat
    k = w.shape[2:]
    cols, OH, OW = conv_cols(x, k, (stride, stride), (pad,) * 4, (1, 1), 1)
    return conv_out(np.matmul(cols, conv_weight_mat(w, 1)), x.shape[0], OH, OW)


class _Builder:
    def __init__(self, seed, calib):
        self.r = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.n = 0
        self.x = calib                        # the calibration activations of the current tensor

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, a, p):
        nm = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(a, dtype=np.float32), nm))
        return nm

    def conv(self, t, x, cout, k, stride=1, pad=0):
        cin = x.shape[1]
        w = (self.r.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        out = self.name("conv")
        self.nodes.append(helper.make_node("Conv", [t, self.const(w, "W")], [out], kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[pad] * 4))
        return out, _conv_np(x, w.astype(np.float64), stride, pad)

    def bn_relu(self, t, x):
        c = x.shape[1]
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        var = np.maximum(var, 0.05 * var.mean() + 1e-3)     # no channel blown up by a tiny sample variance
        gamma = self.r.uniform(0.8, 1.2, c)
        beta = self.r.normal(0.0, 0.1, c)
        out = self.name("bn")
        self.nodes.append(helper.make_node("BatchNormalization", [t, self.const(gamma, "g"), self.const(beta, "b"),
                                                                  self.const(mean, "m"), self.const(var, "v")],
                                           [out], epsilon=1e-5))
        y = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5) * gamma[None, :, None, None] \
            + beta[None, :, None, None]
        r = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [out], [r]))
        return r, np.maximum(y, 0)

    def pool(self, t, x, kind, k, s, pad=0):
        out = self.name(kind)
        self.nodes.append(helper.make_node("MaxPool" if kind == "max" else "AveragePool", [t], [out],
                                           kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4))
        from ezprotocols.nn.plaintext import window_view
        v = window_view(x, (k, k), (s, s), (pad,) * 4, (1, 1), False, -np.inf if kind == "max" else 0.0)
        return out, (v.max(axis=(-1, -2)) if kind == "max" else v.mean(axis=(-1, -2)))


def densenet(size: int = 224, blocks=DENSENET121["blocks"], growth: int = DENSENET121["growth"],
             init: int = DENSENET121["init"], bn_size: int = DENSENET121["bn_size"], classes: int = 14,
             seed: int = 0, calib_images: int | None = None, head: str = "sigmoid") -> bytes:
    """The serialized ONNX model (opset 17), input ``x`` (N, 3, size, size), output
    ``y`` (N, classes): sigmoid probabilities (``head="sigmoid"``) or logits."""
    if calib_images is None:             # enough positions for the statistics of the last (smallest) block
        calib_images = max(2, min(64, (64 * 32 * 32) // (size * size)))
    calib = np.random.default_rng(seed + 1).standard_normal((calib_images, 3, size, size))
    b = _Builder(seed, calib)
    t, x = b.conv("x", calib, init, 7, 2, 3)
    t, x = b.bn_relu(t, x)
    t, x = b.pool(t, x, "max", 3, 2, 1)
    for i, L in enumerate(blocks):
        feats, fx = [t], [x]
        for _ in range(L):
            if len(feats) > 1:
                cat = b.name("cat")
                b.nodes.append(helper.make_node("Concat", feats, [cat], axis=1))
                cx = np.concatenate(fx, axis=1)
            else:
                cat, cx = feats[0], fx[0]
            u, ux = b.bn_relu(cat, cx)
            u, ux = b.conv(u, ux, bn_size * growth, 1)
            u, ux = b.bn_relu(u, ux)
            u, ux = b.conv(u, ux, growth, 3, 1, 1)
            feats.append(u)
            fx.append(ux)
        t = b.name("cat")
        b.nodes.append(helper.make_node("Concat", feats, [t], axis=1))
        x = np.concatenate(fx, axis=1)
        if i != len(blocks) - 1:                       # transition: BN, ReLU, 1x1 conv halving channels, avg pool
            t, x = b.bn_relu(t, x)
            t, x = b.conv(t, x, x.shape[1] // 2, 1)
            t, x = b.pool(t, x, "avg", 2, 2)
    t, x = b.bn_relu(t, x)
    gap = b.name("gap")
    b.nodes.append(helper.make_node("GlobalAveragePool", [t], [gap]))
    flat = b.name("flat")
    b.nodes.append(helper.make_node("Flatten", [gap], [flat], axis=1))
    c = x.shape[1]
    W = b.r.standard_normal((classes, c)) * np.sqrt(1.0 / c)
    feat = x.mean(axis=(2, 3))
    z = feat @ W.T
    bias = -z.mean(axis=0)                             # centre the logits: findings near p = 1/2 on noise
    out = "y" if head == "logits" else "z"
    b.nodes.append(helper.make_node("Gemm", [flat, b.const(W, "fcW"), b.const(bias, "fcb")], [out], transB=1))
    if head == "sigmoid":
        b.nodes.append(helper.make_node("Sigmoid", ["z"], ["y"]))
    g = helper.make_graph(b.nodes, "densenet",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], b.inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--blocks", default="6,12,24,16")
    p.add_argument("--growth", type=int, default=32)
    p.add_argument("--init", type=int, default=64)
    p.add_argument("--classes", type=int, default=14)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    data = densenet(a.size, tuple(int(v) for v in a.blocks.split(",")), a.growth, a.init, classes=a.classes,
                    seed=a.seed)
    with open(a.out, "wb") as f:
        f.write(data)
    print(f"wrote {a.out} ({len(data) / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
