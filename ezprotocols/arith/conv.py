"""Convolution geometry (NCHW) and exact ring convolution/pooling on share arrays.

``Conv2dGeom`` normalises ``stride``, ``padding``, ``dilation`` and ``groups``
(ints or pairs; ``padding`` may also be ``(top, left, bottom, right)`` as in
ONNX) and gives the output shape.  Convolution is cross-correlation, as in
every ML framework:

    y[n, o, i, j] = sum_{c, u, v} x[n, g*C/G + c, i*sh - pt + u*dh, j*sw - pl + v*dw] * w[o, c, u, v]

with ``g = o // (O/G)`` and out-of-range input positions reading 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._ext import ring

__all__ = ["Conv2dGeom", "conv2d_ring", "avg_pool_sum_ring", "pair"]

U64 = np.uint64


def pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    t = tuple(int(a) for a in v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v!r}")
    return t


def _pads(p) -> tuple[int, int, int, int]:
    if isinstance(p, (int, np.integer)):
        return (int(p),) * 4
    t = tuple(int(a) for a in p)
    if len(t) == 2:
        return t[0], t[1], t[0], t[1]
    if len(t) == 4:
        return t
    raise ValueError(f"padding must be an int, (ph, pw) or (top, left, bottom, right), got {p!r}")


@dataclass(frozen=True)
class Conv2dGeom:
    x_shape: tuple
    w_shape: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)       # top, left, bottom, right
    dilation: tuple = (1, 1)
    groups: int = 1

    @classmethod
    def make(cls, x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1) -> "Conv2dGeom":
        x_shape = tuple(int(a) for a in x_shape)
        w_shape = tuple(int(a) for a in w_shape)
        if len(x_shape) != 4 or len(w_shape) != 4:
            raise ValueError(f"conv2d: input must be [N, C, H, W] and weight [O, C/groups, KH, KW], "
                             f"got {x_shape} and {w_shape}")
        st, dl, pd = pair(stride, "stride"), pair(dilation, "dilation"), _pads(padding)
        g = int(groups)
        if min(st) < 1 or min(dl) < 1 or min(pd) < 0 or g < 1:
            raise ValueError("conv2d: stride, dilation, groups must be >= 1 and padding >= 0")
        N, C, H, W = x_shape
        O, Cg, KH, KW = w_shape
        if C % g or O % g or Cg != C // g:
            raise ValueError(f"conv2d: {C} input channels, weight {w_shape} and groups={g} do not match")
        if KH < 1 or KW < 1:
            raise ValueError("conv2d: empty kernel")
        geo = cls(x_shape, w_shape, st, pd, dl, g)
        if geo.out_hw[0] < 1 or geo.out_hw[1] < 1:
            raise ValueError(f"conv2d: kernel {KH}x{KW} (dilation {dl}) larger than the padded input {H}x{W}")
        return geo

    @property
    def symmetric(self) -> bool:
        t, l, b, r = self.padding
        return t == b and l == r

    @property
    def padded_hw(self) -> tuple[int, int]:
        t, l, b, r = self.padding
        return self.x_shape[2] + t + b, self.x_shape[3] + l + r

    @property
    def out_hw(self) -> tuple[int, int]:
        Hp, Wp = self.padded_hw
        KH, KW = self.w_shape[2:]
        ho = (Hp - self.dilation[0] * (KH - 1) - 1) // self.stride[0] + 1
        wo = (Wp - self.dilation[1] * (KW - 1) - 1) // self.stride[1] + 1
        return max(ho, 0), max(wo, 0)

    @property
    def out_shape(self) -> tuple:
        return (self.x_shape[0], self.w_shape[0]) + self.out_hw

    @property
    def k(self) -> int:
        """Inner dimension per group: C/G * KH * KW."""
        return self.w_shape[1] * self.w_shape[2] * self.w_shape[3]

    @property
    def ncols(self) -> int:
        ho, wo = self.out_hw
        return self.x_shape[0] * ho * wo

    def macs(self) -> int:
        return self.w_shape[0] * self.k * self.ncols

    def pad_input(self, x: np.ndarray) -> np.ndarray:
        """Zero-pad explicitly (used when the padding is asymmetric)."""
        t, l, b, r = self.padding
        return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))

    def im2col(self, x: np.ndarray) -> np.ndarray:
        """``uint64[C*KH*KW, N*HO*WO]`` of a ring array shaped like the input."""
        x = np.ascontiguousarray(x, dtype=U64)
        if x.shape != self.x_shape:
            raise ValueError(f"conv2d: input shape {x.shape}, expected {self.x_shape}")
        if self.symmetric:
            pads = (self.padding[0], self.padding[1])
        else:
            x = self.pad_input(x)
            pads = (0, 0)
        cols, hw = ring.im2col(x, self.w_shape[2:], self.stride, pads, self.dilation)
        assert hw == self.out_hw
        return cols

    def apply_cols(self, cols: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The convolution from an im2col matrix: ``uint64[N, O, HO, WO]``."""
        out = ring.conv2d_cols(cols, np.ascontiguousarray(w, dtype=U64), self.groups)
        return self.cols_to_out(out)

    def cols_to_out(self, out_on: np.ndarray) -> np.ndarray:
        """``[O, N*HO*WO]`` -> ``[N, O, HO, WO]``."""
        O = self.w_shape[0]
        N = self.x_shape[0]
        ho, wo = self.out_hw
        return np.ascontiguousarray(out_on.reshape(O, N, ho, wo).transpose(1, 0, 2, 3))

    def out_to_cols(self, y: np.ndarray) -> np.ndarray:
        """``[N, O, HO, WO]`` -> ``[O, N*HO*WO]``."""
        return np.ascontiguousarray(np.asarray(y).transpose(1, 0, 2, 3).reshape(self.w_shape[0], -1))


def conv2d_ring(x, w, geom: Conv2dGeom) -> np.ndarray:
    """Exact ``conv2d(x, w) mod 2^64`` for ring arrays."""
    return geom.apply_cols(geom.im2col(x), w)


def avg_pool_sum_ring(x: np.ndarray, kernel, stride, padding) -> tuple[np.ndarray, tuple]:
    """Window sums of ``x uint64[N, C, H, W]`` (zero padding counts as zeros):
    returns ``(sums uint64[N, C, HO, WO], (HO, WO))``."""
    N, C, H, W = x.shape
    kh, kw = pair(kernel, "kernel")
    geo = Conv2dGeom.make((N * C, 1, H, W), (1, 1, kh, kw), stride, padding, 1, 1)
    cols = geo.im2col(np.ascontiguousarray(x, dtype=U64).reshape(N * C, 1, H, W))
    ho, wo = geo.out_hw
    sums = cols.sum(axis=0, dtype=U64).reshape(N, C, ho, wo)
    return sums, (ho, wo)
