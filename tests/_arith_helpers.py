"""Helpers for the arithmetic-layer tests: run both parties, reconstruct, reference math."""
import numpy as np

from ezprotocols.testing import run_pair

U64 = np.uint64
F = 16


def pair(f, **kw):
    """Run the same function at both parties (it branches on ``s.role``)."""
    kw.setdefault("timeout", 300)
    return run_pair(f, f, **kw)


def enc(x, f=F):
    """Test-side fixed-point encoding as int64 (round to nearest even, like numpy.rint)."""
    return np.rint(np.asarray(x, dtype=np.float64) * 2.0 ** f).astype(np.int64)


def raw(v):
    """uint64 ring elements -> signed int64."""
    return np.asarray(v, dtype=U64).view(np.int64)


def floor_shift(v_int64, f=F):
    """floor(v / 2^f) of signed int64 values (arithmetic shift)."""
    return np.asarray(v_int64, dtype=np.int64) >> np.int64(f)
