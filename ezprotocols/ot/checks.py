"""Argument checks shared by the OT sources: done before anything is sent (or any
base OT runs), so misuse raises on the calling side without touching the channel."""
from __future__ import annotations

import zlib

import numpy as np

__all__ = ["check_n", "check_len", "out_blocks", "check_msgs", "check_c", "check_widths"]


def check_n(n) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    return n


def check_len(L) -> int:
    if isinstance(L, (bool, np.bool_)) or not isinstance(L, (int, np.integer)):
        raise TypeError(f"L must be an int, not {type(L).__name__}")
    if L < 0:
        raise ValueError(f"message length L must be >= 0, got {L}")
    return int(L)


def out_blocks(out, n, name) -> np.ndarray:
    if out is None:
        return np.empty((n, 16), np.uint8)
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != (n, 16) \
            or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous uint8[{n}, 16] array")
    return out


def check_msgs(m0, m1):
    a0, a1 = np.asarray(m0), np.asarray(m1)
    for name, a in (("m0", a0), ("m1", a1)):
        if a.dtype != np.uint8 or a.ndim != 2:
            raise ValueError(f"{name} must be a uint8[n, L] array, got {a.dtype}{list(a.shape)}")
    if a0.shape != a1.shape:
        raise ValueError(f"m0 and m1 must have the same shape, got {a0.shape} and {a1.shape}")
    return np.ascontiguousarray(a0), np.ascontiguousarray(a1)


def check_c(c) -> np.ndarray:
    a = np.asarray(c)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"c must be a 1-d integer array (uint64[n]), got {a.dtype}{list(a.shape)}")
    return np.ascontiguousarray(a.astype(np.uint64, copy=False))


def check_widths(width, n):
    """-> (w, widths or None, header param, header check)."""
    if isinstance(width, (bool, np.bool_)):
        raise TypeError("bits must be an int in [1, 64] or a uint8 array of per-OT widths")
    if isinstance(width, (int, np.integer)):
        w = int(width)
        if not 1 <= w <= 64:
            raise ValueError(f"bits must be in [1, 64], got {w}")
        return w, None, w, 0
    a = np.asarray(width)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError("bits must be an int in [1, 64] or a 1-d integer array of per-OT widths")
    if a.shape[0] != n:
        raise ValueError(f"bits (per-OT widths) must have one entry per OT: {a.shape[0]} != {n}")
    if n and (a.min() < 1 or a.max() > 64):
        raise ValueError("per-OT widths must be in [1, 64]")
    a = np.ascontiguousarray(a.astype(np.uint8))
    return 64, a, 0, zlib.crc32(a.data) if n else 0
