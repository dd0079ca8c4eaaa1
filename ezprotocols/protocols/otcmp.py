"""OT-based comparison backend ("ot"): the sign bit, truncation and ring extension on
top of the millionaires' protocol of :mod:`.millionaire` (CrypTFlow2, eprint
2020/1002; Cheetah, eprint 2022/207).

``OtCompare(session).msb(share, bits)``: XOR shares of bit ``bits - 1`` of
``x = x0 + x1 mod 2^bits``.  With ``a = x0 mod 2^(bits-1)`` and
``b = x1 mod 2^(bits-1)``, ``msb = x0[bits-1] ^ x1[bits-1] ^ [a + b >= 2^(bits-1)]`` and
the carry is one millionaires' comparison ``a > 2^(bits-1) - 1 - b`` on ``bits - 1``
bits (P0 holds the left side, P1 the right); the top bits are folded in locally.
One batched run per call, whatever the size (see :mod:`.millionaire` for rounds,
bytes and what each party sees; ``msb`` adds no message of its own).

Truncation (Cheetah, eprint 2022/207: truncation with a one-bit error and the
"known MSB" trick; SiRnn, eprint 2020/1002): for ``|x| < 2^62`` P0 adds ``2^62`` so that the top bit of ``x'`` is 0;
then the wrap of ``x'0 + x'1`` is ``w = msb(x'0) OR msb(x'1)`` (one additive COT of
``f`` bits) and ``floor(x'/2^f) = (x'0 >> f) + (x'1 >> f) + c - w 2^(64-f)`` with the
low-bit carry ``c = [l0 + l1 >= 2^f]``.  :func:`trunc` with ``exact=False`` drops
``c`` (Cheetah's truncation with a one-unit error, result ``floor(x/2^f)`` or one
less); ``exact=True`` gets ``c`` from an ``f``-bit millionaires' comparison and turns
it and ``w`` into arithmetic shares with one batch of additive COTs.
``known_msb=False`` drops the bound: exact on the whole ring, the wrap bit of
``x + 2^63`` read as unsigned from a 64-bit millionaires' comparison (batched with
the carry's, so still one run).  P0 sees only
OT messages and opened one-time-padded bits; P1 the same (see :mod:`.millionaire`);
the additive COTs reveal nothing (their outputs are uniform shares).

:func:`extend`: signed extension from ``Z_2^l`` to ``Z_2^64`` (the wrap bit of the
``l``-bit shares by one ``l``-bit millionaires, made arithmetic with one additive
COT of ``64 - l`` bits); reduction is local (``share mod 2^l``).
"""
from __future__ import annotations

import weakref

import numpy as np

from ..arith.tensor import ArithTensor
from .millionaire import best_digit, millionaire_costs, millionaire_gt
from .sign import CompareEngine, check_bits

__all__ = ["OtCompare", "msb_shares", "trunc", "trunc_shares", "extend", "prime_silent", "digit_for", "is_silent"]

U64 = np.uint64


def _mask(k: int) -> U64:
    return U64((1 << k) - 1) if k < 64 else U64(0xFFFFFFFFFFFFFFFF)


def msb_shares(s, share, bits: int, m: int | None = None, step: str = "cmp.msb") -> np.ndarray:
    """XOR shares (uint8, shape of ``share``) of bit ``bits - 1`` of the shared value
    (``m``: leaf digit width, default :func:`digit_for`)."""
    l = check_bits(bits)
    a = np.ascontiguousarray(share, dtype=U64)
    flat = a.reshape(-1)
    top = ((flat >> U64(l - 1)) & U64(1)).astype(np.uint8)
    if l == 1 or flat.size == 0:
        return top.reshape(a.shape)
    nb = l - 1
    low = flat & _mask(nb)
    val = low if s.role == 0 else _mask(nb) - low
    carry = millionaire_gt(s, val, nb, step, m=m or digit_for(s, nb))
    return (top ^ carry).reshape(a.shape)


def _cot_bytes(s) -> float:
    return float(getattr(s.ot, "cot_bytes", 16))            # CotSource.cot_bytes: IKNP 16, Ferret ~1


def is_silent(s) -> bool:
    """Whether the session's OT source is a silent one (random COTs almost free)."""
    return _cot_bytes(s) < 4


def digit_for(s, nbits: int) -> int:
    """Leaf digit width for an ``nbits`` comparison over the session's OT source: the one
    of 3, 4, 5 that moves the fewest bytes (:func:`~.millionaire.best_digit`).  Over IKNP
    (16 bytes a random OT) that is 5 at 63 bits (1,494 bytes per comparison against
    1,558 at 4); over silent OT 3 (the 2^m-entry tables dominate)."""
    return best_digit(nbits, _cot_bytes(s))


PRIME_COTS = 1 << 21     # one request this large moves Ferret from its setup to its main parameter set
_PRIMED: "weakref.WeakSet" = weakref.WeakSet()


def prime_silent(s) -> None:
    """One-time set-up for a silent-OT source (both parties call it at the same point):
    draw one large batch of random COTs in each direction, so that the source runs its
    main LPN parameter set (0.06 instead of 0.6 bytes per COT for Ferret) from then on.
    The drawn COTs are discarded (about a fifth of one main iteration).  No-op for
    other sources."""
    ot = s.ot
    if not is_silent(s) or not hasattr(ot, "send_rcot") or ot in _PRIMED:
        return
    _PRIMED.add(ot)
    with s.phase("ot_base"):
        for sender in (0, 1):
            if s.role == sender:
                ot.send_rcot(PRIME_COTS)
            else:
                ot.recv_rcot(PRIME_COTS)


class OtCompare(CompareEngine):
    """Comparison engine "ot" (``Session(..., compare="ot")``): the sign bit through the
    OT-based millionaires' protocol.  ``m``: digit width of the leaves (1..5; default
    per call :func:`digit_for`)."""

    name = "ot"

    def __init__(self, session, m: int | None = None):
        super().__init__(session)
        self.m = None if m is None else int(m)

    def setup(self) -> None:
        """Base OTs of both directions, and a silent source primed (:func:`prime_silent`)."""
        self.session.ot.setup()
        prime_silent(self.session)

    def msb(self, share: np.ndarray, bits: int) -> np.ndarray:
        """XOR shares of bit ``bits - 1`` of ``x mod 2^bits`` (``share``: uint64, any shape)."""
        with self.session.phase("msb"):
            return msb_shares(self.session, share, bits, self.m)

    def msb_costs(self, n: int, bits: int) -> dict:
        """Counts and IKNP bytes of :meth:`msb` on ``n`` elements (see
        :func:`~.millionaire.millionaire_costs`)."""
        l = check_bits(bits)
        if l == 1:
            return millionaire_costs(0, 1)
        return millionaire_costs(n, l - 1, self.m or digit_for(self.session, l - 1))

    def __repr__(self):
        return f"<OtCompare m={self.m or 'auto'} P{self.session.role}>"


# ---------------------------------------------------------------------- truncation

def _acot_bits(s, c_p0: np.ndarray, choice_p1: np.ndarray, widths) -> np.ndarray:
    """One batch of additive COTs with P0 sending correlations ``c_p0`` and P1 choosing
    ``choice_p1``: returns P0's ``-x`` or P1's ``y = x + b c`` (so the two add to ``b c``)."""
    if s.role == 0:
        return U64(0) - np.asarray(s.ot.send_acot(c_p0, bits=widths), dtype=U64)
    return np.asarray(s.ot.recv_acot(choice_p1, bits=widths), dtype=U64)


def trunc_shares(s, share, f: int, exact: bool = True, m: int | None = None, step: str = "cmp.trunc", *,
                 known_msb: bool = True) -> np.ndarray:
    """``floor(x / 2^f)`` (``exact``) or it minus at most one (Cheetah's one-bit error) of a
    shared signed ``x``; shares of the same shape.  ``known_msb`` (default): ``|x| < 2^62``
    is the caller's promise and the wrap bit costs one ``f``-bit additive COT; with
    ``known_msb=False`` (exact only) any ``x`` of the ring is exact: the wrap bit comes
    from a 64-bit millionaires' comparison batched with the carry's.

    The one-bit-error variant (``exact=False``, the ``onebit`` method) drops the carry
    ``c = [l0 + l1 >= 2^f]`` of the low share bits: the error is a function of each
    party's own share and of ``x mod 2^f``, so its result (or a linear function of
    it) must not be opened without further masking -- the opening would leak a
    comparison of the discarded low bits with a threshold the opener knows
    (:mod:`ezprotocols.arith.trunc`, "Opening a truncated value").  ``exact=True``
    results may be opened."""
    if isinstance(f, bool) or not 0 <= int(f) < 62:
        raise ValueError("trunc: f must be in [0, 62)")
    if not known_msb and not exact:
        raise ValueError("trunc: the one-bit-error variant needs the known-MSB bound")
    f = int(f)
    a = np.ascontiguousarray(share, dtype=U64)
    if f == 0:
        return a.copy()
    xs = a.reshape(-1)
    n = xs.size
    if n == 0:
        return a.copy()
    off = 62 if known_msb else 63
    if s.role == 0:
        xs = xs + U64(1 << off)
    lo = xs & _mask(f)
    hi = xs >> U64(f)
    wf = np.full(n, f, np.uint8)
    if not known_msb:
        # x' = x + 2^63 read as unsigned; w = [x'0 + x'1 >= 2^64] = [x'0 > 2^64 - 1 - x'1],
        # c = [l0 + l1 >= 2^f]: 2n comparisons of 64 bits in one run
        mine = np.concatenate([xs, lo]) if s.role == 0 else np.concatenate([~xs, _mask(f) - lo])
        bits = millionaire_gt(s, mine, 64, step + ".wrap", m=m or digit_for(s, 64))
        corr = U64(0) - U64(2) * bits.astype(U64)
        prod = _acot_bits(s, corr if s.role == 0 else None, bits, np.concatenate([wf, np.full(n, 64, np.uint8)]))
        w = bits[:n].astype(U64) + prod[:n]
        c = bits[n:].astype(U64) + prod[n:]
    elif exact:
        mb = (xs >> U64(63)).astype(np.uint8)
        c_bool = millionaire_gt(s, lo if s.role == 0 else _mask(f) - lo, f, step + ".carry", m=m or digit_for(s, f))
        # one additive-COT batch: w = m0 + m1 - m0 m1 (mod 2^f) and c = c0 + c1 - 2 c0 c1 (mod 2^64)
        corr = np.concatenate([mb.astype(U64), U64(0) - U64(2) * c_bool.astype(U64)])
        widths = np.concatenate([wf, np.full(n, 64, np.uint8)])
        prod = _acot_bits(s, corr if s.role == 0 else None, np.concatenate([mb, c_bool]), widths)
        w = mb.astype(U64) - prod[:n]
        c = c_bool.astype(U64) + prod[n:]
    else:
        mb = (xs >> U64(63)).astype(np.uint8)
        prod = _acot_bits(s, mb.astype(U64) if s.role == 0 else None, mb, wf)
        w = mb.astype(U64) - prod
        c = U64(0)
    out = hi + c - (w << U64(64 - f))
    if s.role == 0:
        out -= U64(1 << (off - f))
    return out.reshape(a.shape)


def trunc(x: ArithTensor, f: int | None = None, exact: bool = True) -> ArithTensor:
    """Divide a fixed-point tensor by ``2^f`` (default ``f = x.scale - frac_bits``); the
    result has scale ``x.scale - f``.  Needs ``|x| < 2^62`` (ring units).

    ``exact=True`` (default): exactly ``floor(x / 2^f)``, safe to open.  ``exact=False``
    (Cheetah's one-bit error): ``floor(x / 2^f)`` or one less, where the error bit is
    the carry of the two shares' low bits and so correlated with each party's own
    share: do not open such a result (or a linear function of it) without further
    masking (see :func:`trunc_shares`)."""
    s = x.session
    if f is None:
        f = x.scale - s.frac_bits
    with s.phase("trunc"):
        out = trunc_shares(s, x.share, f, exact)
    return ArithTensor(s, out, x.scale - f)


def extend(s, share, l: int, m: int | None = None, step: str = "cmp.ext") -> np.ndarray:
    """Signed extension: shares mod 2^l of a value ``x`` in ``[-2^(l-1), 2^(l-1))`` ->
    shares of the same ``x`` mod 2^64 (uint64, same shape)."""
    l = check_bits(l)
    a = np.ascontiguousarray(share, dtype=U64)
    if l == 64:
        return a.copy()
    xs = a.reshape(-1) & _mask(l)
    n = xs.size
    if n == 0:
        return a.copy()
    if s.role == 0:
        xs = (xs + U64(1 << (l - 1))) & _mask(l)         # x' = x + 2^(l-1) in [0, 2^l)
    wrap = millionaire_gt(s, xs if s.role == 0 else _mask(l) - xs, l, step, m=m or digit_for(s, l))
    # x' = x'0 + x'1 - 2^l w over the integers; w arithmetic mod 2^(64-l) is enough
    wl = np.full(n, 64 - l, np.uint8)
    prod = _acot_bits(s, (U64(0) - U64(2) * wrap.astype(U64)) if s.role == 0 else None, wrap, wl)
    w = wrap.astype(U64) + prod
    out = xs - (w << U64(l))
    if s.role == 0:
        out -= U64(1 << (l - 1))
    return out.reshape(a.shape)
