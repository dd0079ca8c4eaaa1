"""Export the small PyTorch models used as fixtures by tests/test_nn_*.py.

CI has no PyTorch: the exported .onnx files are committed under tests/data/.
Run from the repository root (needs torch, the CPU build is enough, and
onnxscript for the torch.export-based exporter, the default since torch 2.9):

    python scripts/make_test_models.py

Weights are random (seeded) but BatchNorm statistics are set to non-trivial
values so that folding is exercised.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_demo_model import LeNet  # noqa: E402  (the demo's architecture, one definition)

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data")


def _bn_stats(m):
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n) * 0.3)
            mod.running_var.copy_(torch.rand(n) + 0.5)
            mod.weight.data.copy_(torch.rand(n) + 0.5)
            mod.bias.data.copy_(torch.randn(n) * 0.2)


class CnnBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.b1 = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 8, 3, groups=2, dilation=2, padding=2, stride=1)
        self.b2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 3 * 3, 6)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.avg_pool2d(F.relu(self.b2(self.c2(x))), 2, ceil_mode=True)
        return F.log_softmax(self.fc(self.drop(torch.flatten(x, 1))), dim=1)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(20, 16)
        self.bn = nn.BatchNorm1d(16)
        self.l2 = nn.Linear(16, 16)
        self.l3 = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.l1(x)))
        x = F.dropout(F.relu(self.l2(x)), 0.2, training=False)
        return F.softmax(self.l3(x), dim=-1)


class ResBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3, padding=1, stride=2)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.c0(x))
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        x = F.relu(x + y)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


class Misc(nn.Module):
    """Elementwise ops with constants and activations, Transpose, Concat, a
    Shape-derived Reshape, standalone BatchNorm, Conv1d, MaxPool with padding."""
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.rand(1, 3, 1, 1) + 0.5)
        self.bn = nn.BatchNorm2d(3)
        self.c1d = nn.Conv1d(6, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 36, 7)

    def forward(self, x):
        y = x * 2.5 - 1.0
        z = 1.0 - x / 4.0
        u = self.bn(y + z) * self.scale
        v = F.relu(u) * z
        w = torch.cat([u, v], dim=1)                              # N, 6, 6, 6
        w = F.max_pool2d(w, 3, stride=1, padding=1)
        t = w.permute(0, 1, 3, 2).reshape(w.size(0), 6, 36)       # Transpose + Shape/Reshape
        t = F.relu(self.c1d(t))                                   # N, 4, 36
        return self.fc(t.reshape(t.size(0), -1))


class Extra(nn.Module):
    """ReLU6 / Hardtanh (Clip), LeakyReLU, zero padding, a slice, ReduceMax / global
    max pooling, a mean over channels, argmax as the last op."""
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(2, 6, 3, stride=2)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 + 3, 4)

    def forward(self, x):
        y = F.pad(x, (1, 1, 1, 1))
        y = F.relu6(self.bn(self.c(y)) * 3.0)
        y = F.leaky_relu(y[:, :, 1:, ::2] - 0.5, 0.1)
        g = torch.flatten(F.adaptive_max_pool2d(y, 1), 1)                # N, 6
        m = F.hardtanh(y.mean(dim=(2, 3))[:, :3], -0.2, 0.4)               # N, 3
        return torch.argmax(self.fc(torch.cat([g, m], dim=1)), dim=1)


class Recurrent(nn.Module):
    """An LSTM or GRU (unsupported: the error must name the recurrent op, not the
    Transpose the exporter puts before it)."""
    def __init__(self, kind):
        super().__init__()
        self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


class MidActivation(nn.Module):
    """Softmax or Sigmoid followed by another layer (only supported as the last op)."""
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 3)

    def forward(self, x):
        h = self.a(x)
        return self.b(F.softmax(h, dim=1) if self.kind == "softmax" else torch.sigmoid(h))


class BinaryHead(nn.Module):
    """A binary classifier ending in one sigmoid output (class: p > 0.5)."""
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(8, 1)

    def forward(self, x):
        return torch.sigmoid(self.b(F.relu(self.a(x))))


class ViewCnn(nn.Module):
    """x.view(x.size(0), -1): Shape, Gather, Unsqueeze (axes an attribute before
    opset 13), Concat, Reshape in the legacy exporter."""
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3, stride=2)
        self.fc = nn.Linear(2 * 3 * 3, 3)

    def forward(self, x):
        x = F.relu(self.c(x))
        return self.fc(x.view(x.size(0), -1))


class RawPixelMlp(nn.Module):
    """784 -> 32 -> 10 for raw 0..255 pixels: large inputs and a wide first layer,
    where the fixed-point error is largest (weight rounding times input magnitude)."""
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(784, 32)
        self.b = nn.Linear(32, 10)

    def forward(self, x):
        return self.b(F.relu(self.a(x)))


def export(model, shape, name, dynamic=False, opset=17):
    model.eval()
    x = torch.randn(*shape)
    kw = {"dynamic_axes": {"x": {0: "batch"}, "y": {0: "batch"}}} if dynamic else {}
    path = os.path.join(OUT, name)
    torch.onnx.export(model, x, path, input_names=["x"], output_names=["y"], opset_version=opset,
                      dynamo=False, do_constant_folding=True, **kw)
    print("wrote", path, os.path.getsize(path), "bytes")


def export_dynamo(model, shape, name, dynamic=False):
    """The torch.export-based exporter (opset 18+, e.g. ReduceMean for adaptive pooling)."""
    model.eval()
    kw = {"dynamic_shapes": ({0: torch.export.Dim("batch", min=1, max=64)},)} if dynamic else {}
    prog = torch.onnx.export(model, (torch.randn(*shape),), dynamo=True, input_names=["x"], output_names=["y"],
                             **kw)
    path = os.path.join(OUT, name)
    prog.save(path)
    print("wrote", path, os.path.getsize(path), "bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(7)
    for cls, shape, name, dyn in ((CnnBn, (1, 1, 12, 12), "torch_cnn_bn.onnx", True),
                                  (Mlp, (1, 20), "torch_mlp.onnx", True),
                                  (ResBlock, (1, 3, 8, 8), "torch_resblock.onnx", False),
                                  (Misc, (1, 3, 6, 6), "torch_misc.onnx", True),
                                  (LeNet, (1, 1, 28, 28), "torch_lenet.onnx", True),
                                  (Extra, (1, 2, 9, 10), "torch_extra.onnx", True)):
        m = cls()
        _bn_stats(m)
        export(m, shape, name, dyn)
    for cls, shape, name in ((ResBlock, (2, 3, 8, 8), "torch_dynamo_resblock.onnx"),
                             (Misc, (2, 3, 6, 6), "torch_dynamo_misc.onnx"),
                             (CnnBn, (2, 1, 12, 12), "torch_dynamo_cnn_bn.onnx"),
                             (Extra, (2, 2, 9, 10), "torch_dynamo_extra.onnx")):
        m = cls()
        _bn_stats(m)
        export_dynamo(m, shape, name)
    # unsupported models (the error must name the right op and node)
    for kind in ("lstm", "gru"):
        export(Recurrent(kind), (2, 5, 3), f"torch_bad_{kind}.onnx", True)
        export_dynamo(Recurrent(kind), (2, 5, 3), f"torch_dynamo_bad_{kind}.onnx", True)
    for kind in ("softmax", "sigmoid"):
        export(MidActivation(kind), (2, 6), f"torch_bad_{kind}_mid.onnx", True)
    # a final sigmoid (binary classifier); view() at the opsets where Unsqueeze had axes attributes
    export(BinaryHead(), (2, 6), "torch_binary_sigmoid.onnx", True)
    export_dynamo(BinaryHead(), (2, 6), "torch_dynamo_binary_sigmoid.onnx", True)
    for opset in (9, 11, 12):
        export(ViewCnn(), (2, 1, 8, 8), f"torch_view_op{opset}.onnx", True, opset=opset)
    export(RawPixelMlp(), (2, 784), "torch_raw_pixel_mlp.onnx", True)


if __name__ == "__main__":
    main()
