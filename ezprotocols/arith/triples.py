"""The triple engine ``session.triples``: pools and the offline/online split over a
pluggable :class:`TripleSource`.

Sources (``Session(..., triples=...)``, see :mod:`ezprotocols.backends`):

* ``"ot"`` (default): Beaver triples from oblivious transfer, no third party
  (:class:`ezprotocols.arith.ot_source.OtTriples`).
* ``"dealer"``: a trusted dealer simulated by P0, for research comparisons only
  (:class:`ezprotocols.arith.dealer.DealerSource`; not secure against P0).  Never
  used unless chosen; everything it does runs in phases named ``triples.dealer``
  and :meth:`TripleEngine.report` says ``trusted_dealer: True``.

Offline/online: ``prepare_*`` (or :meth:`TripleEngine.prepare` with a plan)
generates triples ahead, typically inside ``with s.phase("offline"):``; the
online operations take them from the pools in order.  An operation that finds
its pool empty generates what it needs on the spot (in a ``triples.<source>``
sub-phase of whatever phase is current), so preparing is an optimisation, never
a requirement.  Both parties must prepare and consume in the same order.

>>> from ezprotocols.runner import run_pair
>>> import ezprotocols.arith
>>> def f(s):
...     s.triples.prepare_mul(10)
...     a, b, c = s.triples.mul(10)
...     return s.triples.report()["source"]
>>> run_pair(f, f, triples="dealer")
('dealer', 'dealer')
"""
from __future__ import annotations

from collections import Counter, defaultdict, deque

import numpy as np

from .conv import Conv2dGeom

__all__ = ["TripleEngine", "TripleSource"]

U64 = np.uint64


class TripleSource:
    """Interface of the triple sources.  Every method is collective (both parties, same
    order, same shapes) and returns this party's shares; the engine calls them inside
    the phase ``triples.<source>``.  Constructing a source runs no protocol."""

    #: True only for sources that are not secure against one of the parties
    trusted_dealer = False

    def __init__(self, session):
        self.session = session

    def mul_triples(self, n: int):
        """``n`` elementwise triples ``(a, b, c)``, ``uint64[n]`` each, ``c = a b``."""
        raise NotImplementedError

    def matmul_triple(self, m: int, k: int, n: int):
        """``A[m, k]``, ``B[k, n]``, ``C = A B``."""
        raise NotImplementedError

    def conv2d_triple(self, geom: Conv2dGeom):
        """``A`` (input-shaped), ``B`` (kernel-shaped), ``C = conv2d(A, B)``."""
        raise NotImplementedError

    def private_mask(self, layer, geom):
        """The offline mask of a layer whose weights one party owns
        (:mod:`ezprotocols.arith.private`): ``(R, Z)`` with ``R`` the non-owner's random
        input-shaped mask (``None`` at the owner) and ``Z`` this party's share of the
        layer applied to ``R``.  By default through the session's product engine
        (``s.linear``), which sees only ``R`` at the non-owner and the weights at the owner."""
        R = None if layer.is_owner else self.session.prg.random_uint64(layer.in_shape(geom))
        return R, layer.cross(R, geom)

    def __repr__(self):
        return f"<{type(self).__name__} P{self.session.role}>"


class TripleEngine:
    def __init__(self, s):
        self.s = s
        self.source = s.triples_source
        self._impl = None
        self._mul: deque = deque()          # [a, b, c] chunks, consumed from the front
        self._mul_off = 0
        self._mul_avail = 0
        self._mat: dict = defaultdict(deque)
        self._conv: dict = defaultdict(deque)
        self.generated: Counter = Counter()
        self.consumed: Counter = Counter()

    # ------------------------------------------------------------------ sources
    @property
    def impl(self) -> TripleSource:
        """The source object (created on first use, without any traffic)."""
        if self._impl is None:
            self._impl = self.s.engine("triples", self.source)
        return self._impl

    @property
    def trusted_dealer(self) -> bool:
        return bool(self.impl.trusted_dealer)

    @property
    def phase_name(self) -> str:
        return f"triples.{self.source}"

    def phase(self):
        return self.s.phase(self.phase_name)

    def dealer(self):
        """The dealer source; refuses unless the session chose ``triples="dealer"``."""
        if self.source != "dealer":
            raise RuntimeError("the trusted dealer is only available with Session(..., triples='dealer')")
        return self.impl

    # ------------------------------------------------------------------ generation
    def _gen_mul(self, n: int):
        with self.phase():
            t = self.impl.mul_triples(n)
        self.generated["mul"] += n
        return t

    def _gen_matmul(self, m: int, k: int, n: int):
        with self.phase():
            t = self.impl.matmul_triple(m, k, n)
        self.generated["matmul"] += 1
        self.generated["matmul_macs"] += m * k * n
        return t

    def _gen_conv2d(self, geom: Conv2dGeom):
        with self.phase():
            t = self.impl.conv2d_triple(geom)
        self.generated["conv2d"] += 1
        self.generated["conv2d_macs"] += geom.macs()
        return t

    # ------------------------------------------------------------------ prepare (offline)
    def prepare_mul(self, n: int) -> None:
        """Generate ``n`` elementwise triples into the pool."""
        n = int(n)
        if n < 0:
            raise ValueError("prepare_mul: n must be >= 0")
        if n == 0:
            return
        a, b, c = self._gen_mul(n)
        self._mul.append((a, b, c))
        self._mul_avail += n

    def prepare_matmul(self, a_shape, b_shape, count: int = 1) -> None:
        """Generate ``count`` matrix triples for ``[m, k] @ [k, n]``."""
        m, k, n = _mm_dims(a_shape, b_shape)
        for _ in range(int(count)):
            self._mat[(m, k, n)].append(self._gen_matmul(m, k, n))

    def prepare_conv2d(self, x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1,
                       count: int = 1) -> None:
        """Generate ``count`` convolution triples for this geometry."""
        geom = Conv2dGeom.make(x_shape, w_shape, stride, padding, dilation, groups)
        for _ in range(int(count)):
            self._conv[geom].append(self._gen_conv2d(geom))

    def prepare(self, plan) -> None:
        """Prepare from a plan: an iterable of ``("mul", n)``, ``("matmul", a_shape, b_shape)``
        and ``("conv2d", x_shape, w_shape, {stride, padding, dilation, groups})`` items."""
        for item in plan:
            kind = item[0]
            if kind == "mul":
                self.prepare_mul(item[1])
            elif kind == "matmul":
                self.prepare_matmul(item[1], item[2])
            elif kind == "conv2d":
                self.prepare_conv2d(item[1], item[2], **(item[3] if len(item) > 3 else {}))
            else:
                raise ValueError(f"prepare: unknown plan item {kind!r}")

    # ------------------------------------------------------------------ take (online)
    def mul(self, n: int):
        """``n`` elementwise triples ``(a, b, c)`` (``uint64[n]`` shares), from the pool first."""
        n = int(n)
        if self._mul_avail < n:
            self.prepare_mul(n - self._mul_avail)
        parts = ([], [], [])
        need = n
        while need:
            a, b, c = self._mul[0]
            take = min(need, a.shape[0] - self._mul_off)
            sl = slice(self._mul_off, self._mul_off + take)
            for lst, arr in zip(parts, (a, b, c)):
                lst.append(arr[sl])
            self._mul_off += take
            need -= take
            if self._mul_off == a.shape[0]:
                self._mul.popleft()
                self._mul_off = 0
        self._mul_avail -= n
        self.consumed["mul"] += n
        if len(parts[0]) == 1:
            return parts[0][0], parts[1][0], parts[2][0]
        if not parts[0]:
            z = np.zeros(0, U64)
            return z, z, z
        return tuple(np.concatenate(p) for p in parts)

    def matmul(self, m: int, k: int, n: int):
        q = self._mat.get((m, k, n))
        self.consumed["matmul"] += 1
        if q:
            return q.popleft()
        return self._gen_matmul(m, k, n)

    def conv2d(self, geom: Conv2dGeom):
        q = self._conv.get(geom)
        self.consumed["conv2d"] += 1
        if q:
            return q.popleft()
        return self._gen_conv2d(geom)

    # ------------------------------------------------------------------ reporting
    def available(self) -> dict:
        return {"mul": self._mul_avail,
                "matmul": {key: len(q) for key, q in self._mat.items() if q},
                "conv2d": {g.out_shape: len(q) for g, q in self._conv.items() if q}}

    def report(self) -> dict:
        """Source, whether a trusted dealer was involved, what was generated and consumed."""
        return {"source": self.source, "trusted_dealer": self.trusted_dealer,
                "phase": self.phase_name, "generated": dict(self.generated),
                "consumed": dict(self.consumed)}

    def __repr__(self):
        flag = " TRUSTED-DEALER" if self.trusted_dealer else ""
        return f"<TripleEngine source={self.source}{flag} pooled_mul={self._mul_avail}>"


def _mm_dims(a_shape, b_shape):
    a_shape = tuple(int(v) for v in a_shape)
    b_shape = tuple(int(v) for v in b_shape)
    if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[1] != b_shape[0]:
        raise ValueError(f"matmul triple: shapes {a_shape} and {b_shape} must be [m, k] and [k, n]")
    return a_shape[0], a_shape[1], b_shape[1]
