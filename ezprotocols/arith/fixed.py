"""Fixed-point encoding over Z_2^64.

A real ``x`` at scale ``f`` (``f`` fractional bits) is the ring element
``round(x * 2^f) mod 2^64``: signed two's complement, so ``-1.0`` at ``f = 16`` is
``2^64 - 2^16``.  Decoding reads the element as a signed 64-bit integer and
divides by ``2^f``.  Scale 0 means raw ring integers (no fractional bits).

Encodable range: ``|x * 2^f| < 2^63``; :func:`encode` refuses larger magnitudes
(and NaN/inf) instead of wrapping silently.  Callers that need headroom pass a
smaller ``bound_bits`` (the nn executor uses 62, so that truncation is exact).
This is the one fixed-point encoder of the package (the nn layer's
``encode``/``decode`` and the plan's constants use it).  Products of two fixed-point values
are at scale ``2f`` and must stay below ``2^62`` in magnitude for the
truncation protocols (``|x y| < 2^(62 - 2f)``, i.e. below 2^30 = 1.07e9 at
``f = 16``).

>>> import numpy as np
>>> e = encode(np.array([1.5, -1.0, 0.0]), 16)
>>> [int(v) for v in e]
[98304, 18446744073709486080, 0]
>>> decode(e, 16).tolist()
[1.5, -1.0, 0.0]
"""
from __future__ import annotations

import numpy as np

__all__ = ["encode", "decode", "encode_int", "encode_signed", "to_signed", "MAX_ABS", "U64", "is_float_like"]

U64 = np.dtype(np.uint64)
MAX_ABS = float(2 ** 63)


def is_float_like(x) -> bool:
    if isinstance(x, float):
        return True
    if isinstance(x, (int, bool, np.integer, np.bool_)):
        return False
    a = np.asarray(x)
    return a.dtype.kind == "f"


def encode_int(x) -> np.ndarray:
    """Integers (Python ints of any size, numpy integer/bool arrays) as ring elements mod 2^64."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return np.asarray(int(x) % (1 << 64), dtype=U64)
    a = np.asarray(x)
    if a.dtype == U64:
        return a
    if a.dtype.kind in "iub":
        return a.astype(np.int64).astype(U64) if a.dtype.kind == "i" else a.astype(U64)
    raise TypeError(f"expected integers, got dtype {a.dtype}")


def encode(x, f: int, *, bound_bits: int = 63, what: str = "value") -> np.ndarray:
    """Encode reals (or integers, as values) at scale ``f``: ``round(x * 2^f) mod 2^64``.

    Integers are scaled exactly (``v * 2^f``, refused when ``|v| >= 2^(63-f)``);
    floats are rounded to nearest (ties to even, as numpy's ``rint``) and refused
    when ``|round(x * 2^f)| >= 2^bound_bits`` or not finite (``what`` names the
    value in the error)."""
    if not is_float_like(x):
        v = encode_int(x)
        if f == 0:
            return v
        s = v.view(np.int64) if v.ndim else np.asarray(v).view(np.int64)
        lim = 1 << (63 - f)
        if np.any((s >= lim) | (s < -lim)):
            raise ValueError(f"integer value too large for fixed point with {f} fractional bits")
        return np.asarray(v << np.uint64(f), dtype=U64)
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} has non-finite values (NaN or infinity cannot be encoded in fixed point)")
    y = np.rint(a * float(2 ** f))
    if np.any(np.abs(y) >= float(2 ** bound_bits)):
        raise ValueError(f"{what} too large for fixed point: outside the fixed-point range |x| < 2^{bound_bits - f} "
                         f"at {f} fractional bits")
    return np.asarray(y.astype(np.int64).astype(U64))


def encode_signed(x, f: int, *, bound_bits: int = 63, what: str = "value") -> np.ndarray:
    """Reals at scale ``f`` as signed int64 fixed point (:func:`encode` read as two's
    complement): the plaintext executor's form."""
    return to_signed(encode(np.asarray(x, dtype=np.float64), f, bound_bits=bound_bits, what=what))


def to_signed(v) -> np.ndarray:
    """Ring elements as signed 64-bit integers (two's complement)."""
    return np.asarray(v, dtype=U64).view(np.int64)


def decode(v, f: int) -> np.ndarray:
    """Ring elements at scale ``f`` as float64 (``f = 0``: as int64)."""
    s = to_signed(v)
    if f == 0:
        return s.copy()
    return s.astype(np.float64) / float(2 ** f)
