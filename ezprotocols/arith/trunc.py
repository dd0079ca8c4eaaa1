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

Opening a truncated value.  ``local`` and ``onebit`` are probabilistic: their
result is ``floor(x / 2^f) + e`` with an error ``e`` in ``{0, 1}`` (``local``) or
``{-1, 0}`` (``onebit``) that is the carry of the two parties' low share bits,
``e = [l0 + l1 >= 2^f]`` up to sign (``local``: of ``x0 mod 2^f`` and
``(-x1) mod 2^f``).  Each party knows its own share, so for the party that sees an
opened result ``e`` is a function of its *own* share and of ``x mod 2^f``: it is
not independent noise but one comparison of the discarded low bits of ``x`` with a
threshold that party knows (the probability that ``e`` is set is about
``(x mod 2^f) / 2^f``), and ``local`` additionally fails catastrophically with
probability ``|x| / 2^64``, which again depends on ``x``.  So a result of ``local``
or ``onebit`` truncation -- and anything computed from it by linear operations --
must not be opened without further masking: the opened value cannot be simulated
from ``floor(x / 2^f)`` (the ideal output) alone.  Feeding it into a comparison,
ReLU, max or argmax whose outputs stay shared is fine; the opened result of such a
protocol (a class index, a count of comparisons) depends on the error only where
values are within one unit of each other.  Use ``faithful`` (or ``exact``) for
every truncation on the path to a value that is opened.  In the library the one
direct opening of this kind is the ``--allow-logits`` query (``nn/secure.py``:
``be.reveal(logits, to=1)``), whose logits come out of the plan's truncation
method; the CLI warns when ``serve --allow-logits`` runs with ``--trunc local`` or
``onebit``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["trunc_local", "trunc_faithful", "truncate_shares"]

U64 = np.uint64


def trunc_local(share: np.ndarray, f: int, role: int) -> np.ndarray:
    """SecureML local truncation of this party's share (no communication).

    Probabilistic: the reconstructed result is ``floor(x / 2^f)`` plus a carry bit of
    the two shares' low bits (or, with probability ``|x| / 2^64``, wrong by about
    ``2^(64-f)``).  Do not open it (or a linear function of it) without further
    masking: for the party that sees the opened value the carry is a function of its
    own share and of ``x mod 2^f``, so the opening leaks a comparison of the discarded
    low bits (module docstring, "Opening a truncated value"); use
    :func:`trunc_faithful` on the way to an opened value."""
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
    """Truncate this party's share by ``f`` bits with ``method`` (default: ``s.arith.trunc``).

    ``local`` (the default) and ``onebit`` leave a one-unit error that is correlated
    with the shares: their result must not be opened, directly or through linear
    operations, without further masking (module docstring, "Opening a truncated
    value"); ``faithful`` and ``exact`` give exactly ``floor(x / 2^f)`` and may be opened."""
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
