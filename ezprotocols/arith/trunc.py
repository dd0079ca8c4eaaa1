"""Truncation of fixed-point shares: dividing a shared ``x`` by ``2^f``.

``local`` (default) -- SecureML local truncation (Mohassel and Zhang, eprint
2017/396, section 3.1, Theorem 1), no communication: P0 outputs
``x0 >> f`` (logical shift of the ring element), P1 outputs ``-((-x1) >> f)``.

  Error bound (two parties, ring Z_2^64).  Let ``x`` be the signed value,
  ``x = x0 + x1 mod 2^64`` with ``x0`` uniformly random.  Then with probability
  at least ``1 - |x| / 2^64`` the output is ``floor(x / 2^f)`` or
  ``floor(x / 2^f) + 1`` (so within one unit in the last place of the exact
  ``x / 2^f``); otherwise (the shares wrapped around the ring across the sign of
  ``x``) it is off by about ``2^(64-f)``, a catastrophic error.  For
  ``|x| < 2^l_x`` the failure probability is below ``2^(l_x - 64)``: a product of
  two values of magnitude below ``2^k`` (real) at ``f = 16`` has
  ``l_x = 2k + 32``, e.g. ``|x|, |y| < 2^8`` fail with probability below
  ``2^-16`` per element, ``< 1`` below ``2^-32``.  (When ``x0`` is uniform only on
  the multiples of ``2^s``, e.g. after multiplying by a public even constant, the
  bound is ``(|x| + 2^s) / 2^64``.)  Derivation: write ``x1' = -x1``; if
  ``x0 - x1'`` does not wrap, ``x0 - x1' = x`` over the integers and
  ``floor(x0/2^f) - floor(x1'/2^f)`` is ``floor(x/2^f)`` plus a carry in
  ``{0, 1}``; it wraps exactly when ``x0 < x`` (``x >= 0``) or
  ``x0 >= 2^64 - |x|`` (``x < 0``), probability ``|x| / 2^64``.

``exact`` -- ``floor(x / 2^f)`` for any ``x`` of the ring (no bound): the wrap bit
from a 64-bit millionaires' comparison instead of the known-MSB trick (about three
times the bytes of ``faithful``; :func:`ezprotocols.protocols.otcmp.trunc_shares`).

``onebit`` -- Cheetah's truncation (eprint 2022/207): as ``faithful`` without the
low-bit carry, ``floor(x / 2^f)`` or one less, for ``|x| < 2^62``; one batch of
``f``-bit additive COTs (2 rounds), no comparison.

``faithful`` -- exact ``floor(x / 2^f)`` (arithmetic shift) for ``|x| < 2^62``,
through OT, no third party.  With ``x' = x + 2^62`` (so ``0 <= x' < 2^63``) and
shares ``x'_i = h_i 2^f + l_i``:

  ``floor(x' / 2^f) = h0 + h1 + c - w 2^(64-f)``

where ``w`` is the wrap bit of ``x'0 + x'1`` and ``c = [l0 + l1 >= 2^f]`` the carry
of the low bits.  Because the top bit of ``x'`` is known to be 0,
``w = msb(x'0) OR msb(x'1)`` (the "known MSB" observation of Cheetah, Huang et al.,
USENIX Security 2022, and SiRnn, Rathee et al., eprint 2020/1002): one
additive correlated OT of ``f`` bits shares ``w 2^(64-f)``.  The carry is a
millionaires' comparison ``l0 > 2^f - 1 - l1`` of ``f``-bit values held by the two
parties (:func:`ezprotocols.protocols.millionaire.millionaire_gt`, CrypTFlow2's
construction with Cheetah's leaner variants); ``w`` and the carry become arithmetic in
one batch of additive COTs.  The protocol is
:func:`ezprotocols.protocols.otcmp.trunc_shares` (one layer up, imported where the
faithful truncation runs).  Per element at ``f = 16`` over IKNP: 16 leaf ROTs + 6
triple ROTs + 2 additive COTs, about 0.45 KB.
"""
from __future__ import annotations

import numpy as np

__all__ = ["trunc_local", "trunc_faithful", "truncate_shares"]

U64 = np.uint64


def trunc_local(share: np.ndarray, f: int, role: int) -> np.ndarray:
    """SecureML local truncation of this party's share (no communication)."""
    if f == 0:
        return share.copy()
    sh = np.uint64(f)
    if role == 0:
        return share >> sh
    return -((-share) >> sh)


def trunc_faithful(s, share: np.ndarray, f: int, step: str = "arith.trunc") -> np.ndarray:
    """Exact ``floor(x / 2^f)`` of a shared signed ``x`` with ``|x| < 2^62`` (see module doc)."""
    if f == 0:
        return share.copy()
    if not 0 < f < 62:
        raise ValueError("faithful truncation needs 0 < f < 62")
    from ..protocols.otcmp import trunc_shares
    return trunc_shares(s, share, f, exact=True, step=step)


def truncate_shares(s, share: np.ndarray, f: int, method: str | None = None) -> np.ndarray:
    """Truncate this party's share by ``f`` bits with ``method`` (default: ``s.arith.trunc``)."""
    method = method or s.arith.trunc
    a = np.asarray(share, dtype=U64)
    flat = a.reshape(-1)
    if method == "local":
        out = trunc_local(flat, f, s.role)
    elif method == "faithful":
        out = trunc_faithful(s, flat, f)
    elif method in ("onebit", "exact"):
        from ..protocols.otcmp import trunc_shares
        out = trunc_shares(s, flat, f, exact=method == "exact", known_msb=method == "onebit")
    else:
        raise ValueError(f"unknown truncation method {method!r} (use 'local', 'faithful', 'onebit' or 'exact')")
    return out.reshape(a.shape)
