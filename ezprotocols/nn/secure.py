"""Secure inference and secure validation of a :class:`~ezprotocols.nn.plan.Plan`.

P0 (model owner) holds the weights, P1 (data owner) holds the inputs (and, for
validation, the labels).  Every activation is additively shared over Z_2^64 in
fixed point.  Ops that are linear in the shares (add, sub, reshape, transpose,
concat, pooling windows and sums, multiplication by a public constant, adding a
P0 constant) run locally on the share arrays; the others go to the protocol
layers through a :class:`Backend`:

* P0-known weights times shared activations (matmul, conv): the arithmetic
  layer's linear layers (offline preparation through OT, SecureML eprint
  2017/396 / MiniONN eprint 2017/452 style);
* products of shared values and truncation: the arithmetic layer;
* relu, max over windows, argmax: the hybrid layer (garbled circuits).

Inference reveals to P1 only the predicted class (for a multi-label head, the K
decisions [p_k > 1/2]; or the logits, if P0 allows it); P0 learns nothing but the
public metadata (number of samples, batch size).  Validation reveals to both only
aggregates: the number of correct predictions (per output for a multi-label
head), the confusion matrix if both parties agree, and with ``auroc`` the ROC
counts at T public thresholds (:mod:`.metrics`), never a per-sample value.

Sharded validation (:mod:`.shards`): with FLAG_SHARD a validation session ends
without opening anything; each party keeps its additive shares of the counts
(P0 in a :class:`~ezprotocols.nn.shards.ShardStore` under the validation id, the
shard index and a fresh token of P1; P1 in its checkpoint).  A final
``aggregate`` session sums each party's shares over all listed shards and opens
the total once; P0 refuses to open a validation id twice.

Wire protocol of a session (P0 = server)::

    P0 -> P1  nn.arch     JSON architecture (no weights), at most LIMITS["max_bytes"]
    P1 -> P0  nn.request  uint64[6]: magic, mode (1 query, 2 validate, 3 aggregate), samples, batch, flags, classes
    P1 -> P0  nn.metrics  uint64[2]: magic, T                     (only with FLAG_AUROC)
    P1 -> P0  nn.shard    uint64[5]: validation id (2), shard, token (2)   (FLAG_SHARD or mode 3)
    P0 -> P1  nn.accept   uint64[2]: magic, flags granted
    ...       batches of the plan (steps named by the protocol layers)
    mode 2 with FLAG_SHARD: P1 -> P0 nn.commit uint64[1], P0 -> P1 nn.committed uint64[1] (shares kept)
    mode 3:   P1 -> P0 nn.nshards uint64[1], nn.shards uint64[S, 3] (shard, token); then the opening
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import sys
import time

import numpy as np

from ..errors import ProtocolError, RequestRefused
from .plan import LIMITS, Plan, parse_architecture
from . import metrics
from .plaintext import (MIN_FIXED, class_labels, class_scores, encode, postprocess, recip, slice_index,
                        window_counts, window_view)

__all__ = ["serve_session", "query_session", "validate_session", "aggregate_session", "check_labels",
           "send_architecture", "recv_architecture", "Backend", "SecureResult", "MAX_SAMPLES", "MAX_BATCH",
           "ServePolicy", "session_memory_estimate"]

REQ_MAGIC = 0x455A504E4E310001          # "EZPNN1" + version
MODE_QUERY, MODE_VALIDATE, MODE_AGGREGATE = 1, 2, 3
FLAG_LOGITS, FLAG_CONFUSION, FLAG_AUROC, FLAG_SHARD = 1, 2, 4, 8
MAX_SHARDS = 1 << 16
MAX_SAMPLES = 1 << 22
MAX_BATCH = 4096
U64 = np.uint64


# ---------------------------------------------------------------------- backend
class Backend:
    """The protocol layers as seen by the executor: additive shares are numpy
    uint64 arrays (this party's share) of integers at a scale the executor
    tracks (every ArithTensor handed to the layers is at scale 0: raw ring
    elements).

    The default implementation uses :mod:`ezprotocols.arith` (input, reveal,
    Beaver products, truncation, layers with P0-known weights prepared offline)
    and the hybrid ops ``ezprotocols.relu/max/argmax/compare``.
    """

    def __init__(self, session):
        self.s = session
        import ezprotocols
        from ezprotocols import arith
        self.ez = ezprotocols
        self.arith = arith
        self.layers: dict = {}
        self.act_bits = 64
        #: constant-round garbled layers (:mod:`ezprotocols.protocols.gcstage`) when the
        #: session's comparison engine is the garbled one: each non-linear stage (with
        #: the truncation before it and a ReLU after a max pool fused in) is one circuit,
        #: two message flights, instead of a comparison tree with a multiplexer per level
        self.fuse = bool(getattr(session.compare, "fused_stages", False))
        #: what one message round is worth in bytes when the executor picks, per stage, the
        #: OT comparisons (about OT_RUNS_PER_LEVEL runs per comparison level) or one garbled
        #: stage (2 runs): a stage is garbled when its bytes <= round_bytes x the runs saved;
        #: a plan's ``stage_bytes`` (the model owner's ``serve --stage-bytes``) replaces it
        self.round_bytes = math.inf if self.fuse else ROUND_BYTES

    # -- conversions between share arrays and ArithTensor
    def _t(self, share: np.ndarray):
        return self.arith.ArithTensor.from_share(self.s, np.ascontiguousarray(share, dtype=U64), scale=0)

    @staticmethod
    def _a(t) -> np.ndarray:
        return np.asarray(t.share, dtype=U64)

    # -- sharing and opening
    def share_input(self, x, owner: int, shape) -> np.ndarray:
        """Share a fixed-point int64 array owned by ``owner`` (the other passes None)."""
        if owner == self.s.role:
            x = np.ascontiguousarray(x, dtype=np.int64).view(U64)
            return self._a(self.s.input(x, owner, shape=tuple(shape), raw=True))
        return self._a(self.s.input(None, owner, shape=tuple(shape), raw=True))

    def reveal(self, share: np.ndarray, to=None):
        r = self.s.reveal(self._t(share), to=to, raw=True)
        return None if r is None else np.asarray(r, dtype=U64).view(np.int64)

    # -- products (results at the sum of the scales, untruncated)
    def _layer(self, key, kind, W, wshape, attrs):
        lay = self.layers.get(key)
        if lay is None:
            Wr = None if W is None else np.ascontiguousarray(W, dtype=np.int64)
            if kind == "matmul":
                lay = self.arith.PrivateLinear(self.s, Wr, shape=None if Wr is not None else tuple(wshape),
                                               owner=0, fixed=False)
            else:
                lay = self.arith.PrivateConv2d(self.s, Wr, shape=None if Wr is not None else tuple(wshape),
                                               owner=0, fixed=False, stride=tuple(attrs["strides"]),
                                               padding=tuple(attrs["pads"]), dilation=tuple(attrs["dilations"]),
                                               groups=attrs["group"])
            self.layers[key] = lay
        return lay

    def linear(self, x, kind, W, wshape, attrs, key=None) -> np.ndarray:
        """P0's weights times shared activations.  ``kind`` "matmul": x[..., K] @ W[K, M];
        "conv": conv2d(x[N, C, H, W], W[O, C/g, kh, kw], attrs).  P1 passes W=None."""
        lay = self._layer(key, kind, W, wshape, attrs)
        return self._a(lay(self._t(x), truncate=False))

    def prepare_linear(self, key, kind, W, wshape, attrs, x_shape, count: int = 1) -> None:
        self._layer(key, kind, W, wshape, attrs).prepare(tuple(x_shape), count)

    def mul_p0(self, x, c, cshape) -> np.ndarray:
        """Elementwise product with a P0-private constant (broadcast)."""
        ct = self.s.input(None if c is None else np.ascontiguousarray(c, np.int64).view(U64), 0,
                          shape=tuple(cshape), raw=True)
        shape = np.broadcast_shapes(x.shape, (1,) + tuple(cshape))
        xt = self._t(np.broadcast_to(x, shape))
        return self._a(xt.mul_raw(ct.broadcast_to(shape)))

    def mul(self, a, b) -> np.ndarray:
        shape = np.broadcast_shapes(a.shape, b.shape)
        return self._a(self._t(np.broadcast_to(a, shape)).mul_raw(self._t(np.broadcast_to(b, shape))))

    def matmul(self, a, b) -> np.ndarray:
        return self._a(self._t(a).matmul_raw(self._t(b)))

    def trunc(self, x, f: int) -> np.ndarray:
        return self._a(self.arith.truncate(self._t(x), f))

    # -- non-linear (``bits``: public bound on the two's-complement width of the values;
    #    64 is always exact, fewer bits make the garbled comparison cheaper)
    def relu(self, x) -> np.ndarray:
        if self.fuse:
            return self.stage(x, "relu")
        return self._a(self.ez.relu(self._t(x), bits=self.act_bits))

    def max(self, x, axis=-1) -> np.ndarray:
        if self.fuse:
            return self.stage(np.moveaxis(x, axis, -1), "max")
        return self._a(self.ez.max(self._t(x), axis=axis, bits=self.act_bits))

    def argmax(self, x) -> np.ndarray:
        """Index of the maximum along the last axis (lowest on ties), as integer shares
        (one garbled stage where :func:`stage_pays`)."""
        k = x.shape[-1] if x.ndim else 0
        if k and stage_pays(self, "argmax", x.size // k, k, 0, self.act_bits):
            return self.stage(x, "argmax")
        return self._a(self.ez.argmax(self._t(x), axis=-1, bits=self.act_bits))

    def stage(self, x, op: str, f: int = 0, reveal: bool = False):
        """One fused garbled stage (:func:`ezprotocols.protocols.gcstage.stage`) on shares
        ``x`` still to be truncated by ``f`` bits; the words are ``act_bits + f`` wide.
        ``reveal``: the result goes to P1 in the clear (None at P0)."""
        from ..protocols.gcstage import stage
        # an opened result uses the whole ring: a value beyond act_bits then cannot make P1
        # learn a function of the wrapped values instead of the agreed one
        w_in = 64 if reveal else min(64, self.act_bits + f)
        return stage(self.s, x, op, f=f, w_in=w_in, reveal_to=1 if reveal else None, step=f"gc.{op}")

    def gt_zero(self, x, bits: int = 64) -> np.ndarray:
        """[x > 0] (signed, ``bits`` wide) as 0/1 integer shares; one batched comparison."""
        return self._a(self.ez.compare(self._t(x), 0, arith=True, bits=bits))

    def galois_first(self, plan: Plan, batch: int, count: int = 1) -> bool:
        """Send the data owner's Galois keys (output packing, 1.35 MB once per session) before
        the layers when the packed products they enable save more than the keys cost over these
        ``count`` runs, rather than layer by layer (each of which alone may not pay for them).
        Public: both parties decide from the plan and the batch size.  True if sent."""
        from ..arith import he
        lin = self.s.linear
        if not isinstance(lin, he.HeProducts) or he._have_galois(self.s, 1):
            return False
        saving = 0
        for i, op in enumerate(plan.ops):
            form = linear_form(plan, op, self.s.role == 0)
            if form is None:
                continue
            lay = self._layer(i, *form)
            geom = lay._geom((batch,) + tuple(plan.value_shape(op.inputs[0])))
            with lin.assuming_galois(()):
                now = min(lay._costs(geom).values())
            with lin.assuming_galois((1,)):
                after = min(lay._costs(geom).values())
            saving += max(now - after, 0)
        if saving * count <= he._gk_bytes():
            return False
        with self.s.phase("he.galois"):
            he._setup(self.s, 1, galois=True)
        return True

    def prepare(self, plan: Plan, batch: int, count: int = 1) -> None:
        """Offline phase for ``count`` runs of a known plan at a batch size: the masks of
        every layer with P0-known weights (OT), before any input is known (and the Galois keys
        first where :meth:`galois_first` says they pay)."""
        self.galois_first(plan, batch, count)
        for i, op in enumerate(plan.ops):
            lin = linear_form(plan, op, self.s.role == 0)
            if lin is not None:
                x_shape = (batch,) + tuple(plan.value_shape(op.inputs[0]))
                with self.s.phase(op.kind):
                    self.prepare_linear(i, *lin, x_shape, count)
        if self.round_bytes:
            # garbled stages: the shared coins and the garbler's delta before any input
            self.s.shared_prg()
            self.s.gc.delta(0)
        if self.fuse:
            # with the garbled engine: base OTs and the evaluator's input COTs of every stage
            # (P0 sends), so each stage stays two message flights
            from ..protocols.otcmp import PRIME_COTS, prime_silent
            self.s.compare.setup()
            need = sum(math.prod(plan.value_shape(op.inputs[0])) for op in plan.ops if op.kind in ("relu", "maxpool"))
            need = (need + math.prod(plan.output_shape)) * batch * count * min(64, self.act_bits + plan.frac_bits)
            if need > PRIME_COTS:
                prime_silent(self.s)        # worth a main-size iteration (cheaper per COT) only for many
            self.s.ot.prefill(need, senders=(0,))


def linear_form(plan: Plan, op, p0: bool):
    """``(kind, W, wshape, attrs)`` of an op that runs as a layer with P0's weights:
    matmul, conv, and a per-channel affine map (x * s + t with s of shape (C, 1, 1),
    a BatchNormalization that could not be folded, e.g. after a concatenation in
    DenseNet) as a depthwise 1x1 convolution: its offline material is made by the
    linear engine like a conv's, and online it costs one masked message instead of
    a Beaver product per element; ``affine_sign`` likewise, with weights in
    {-1, 0, 1} (weight_bits 2).  None for other ops."""
    if op.kind in ("matmul", "conv"):
        return op.kind, (plan.consts[op.consts[0]] if p0 else None), plan.const_shapes[op.consts[0]], op.attrs
    if op.kind in ("affine", "affine_sign"):
        xs = plan.value_shape(op.inputs[0])
        ss = plan.const_shapes[op.consts[0]]
        if len(xs) == 3 and tuple(ss) == (xs[0], 1, 1) and tuple(op.shape) == tuple(xs):
            C = xs[0]
            W = plan.consts[op.consts[0]].reshape(C, 1, 1, 1) if p0 else None
            return "conv", W, (C, 1, 1, 1), {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1),
                                             "group": C}
    return None


# ---------------------------------------------------------------------- executor
class _Pending:
    """Shares of a value whose truncation by ``f`` bits (and, with ``relu``, a ReLU) is
    still to be applied: fused into the garbled stage that consumes it."""

    __slots__ = ("share", "f", "relu")

    def __init__(self, share, f: int, relu: bool = False):
        self.share, self.f, self.relu = share, f, relu


_LINEAR_TRUNC = ("matmul", "conv", "affine")

#: default :attr:`Backend.round_bytes`: 128 KiB, a 100 Mbit/s link with a 10 ms round trip
#: (public: both parties make the same per-stage choices)
ROUND_BYTES = 128 << 10
#: message runs of one comparison level over the OT comparison engine (millionaires'
#: tree, then the multiplexer), measured on LeNet: ReLU 9, 2x2 max pool 17, argmax of 10 34
OT_RUNS_PER_LEVEL = 8


def stage_pays(be, op: str, n: int, k: int, f: int, act_bits: int, shares: bool = True) -> bool:
    """Whether a non-linear stage runs as one garbled circuit (:meth:`Backend.stage`):
    always with the garbled comparison engine; otherwise when its garbled bytes are at
    most ``be.round_bytes`` per message run it saves.  Public inputs only."""
    from ..protocols.gcstage import stage_costs
    rb = getattr(be, "round_bytes", 0)
    if not rb or n <= 0 or k < 1:
        return False
    if rb == math.inf:
        return True
    lv = max(1, math.ceil(math.log2(k))) if op != "relu" else 1
    lv += op == "max_relu"
    saved = OT_RUNS_PER_LEVEL * lv - 2
    w_in = min(64, act_bits + f) if shares else 64          # as Backend.stage
    sess = getattr(be, "s", None)
    silent = True
    if sess is not None:
        from ..protocols.otcmp import is_silent
        silent = is_silent(sess)                                # the evaluator's COTs: 1 bit or 16 bytes each
    return stage_costs(op, n, k, w_in, f, shares, silent)["bytes"] <= rb * saved


class _Exec:
    """Runs a plan on shares; ``consts`` is P0's list of int64 constants (None on P1).

    Non-linear stages (a max pool with an adjacent ReLU, a ReLU, the final argmax of a
    query with ``pending_out``) run as single garbled circuits where :func:`stage_pays`
    says so (always with the garbled comparison engine); the truncation of a linear layer
    whose only consumer is such a stage is deferred into it.  Both parties make the same
    choices from the public plan and batch size."""

    def __init__(self, session, plan: Plan, backend: Backend, pending_out: bool = False):
        self.s = session
        self.plan = plan
        self.b = backend
        if hasattr(backend, "act_bits"):
            backend.act_bits = plan.act_bits
        if plan.stage_bytes is not None and getattr(backend, "round_bytes", math.inf) != math.inf:
            backend.round_bytes = plan.stage_bytes          # the owner's public choice, followed by both
        if plan.conv_pack is not None:
            session.he_conv_pack = plan.conv_pack           # likewise (the HE convolution encoding)
        self.p0 = session.role == 0
        self.f = plan.frac_bits
        self._keys = {id(op): i for i, op in enumerate(plan.ops)}
        self.pending_out = pending_out
        self._plans: dict = {}
        self.fp = self._fusion(0)

    def _fusion(self, N: int) -> dict:
        """The stage choices at batch ``N`` (sets of op indices): ``stage`` max pools and
        ReLUs run as garbled stages, ``defer`` linear ops returning untruncated shares,
        ``relu_pass`` ReLUs applied by the max pool before them, ``relu_defer`` ReLUs
        applied by the max pool after them, ``pool_relu`` max pools applying a ReLU;
        ``out``: the final argmax is a garbled stage revealed to P1."""
        got = self._plans.get(N)
        if got is not None:
            return got
        ops, plan = self.plan.ops, self.plan
        act = plan.act_bits
        fp = {"stage": set(), "defer": set(), "relu_pass": set(), "relu_defer": set(), "pool_relu": set(),
              "out": False}
        self._plans[N] = fp
        if N == 0 or not getattr(self.b, "round_bytes", 0):
            return fp
        users = [[] for _ in range(len(ops) + 1)]
        for i, op in enumerate(ops):
            for j in set(op.inputs):
                users[j].append(i)
        sole = [u[0] if len(u) == 1 and ops[u[0]].inputs.count(j) == 1 else None for j, u in enumerate(users)]

        def lin(j, output=False):
            """The linear op producing value j (read by one op only, or the output) whose
            truncation can be deferred, or None."""
            i = j - 1
            if i < 0 or (users[j] if output else sole[j] is None):
                return None
            op = ops[i]
            if op.kind not in _LINEAR_TRUNC or (op.kind == "affine" and linear_form(plan, op, False) is None):
                return None
            return i

        size = [math.prod(plan.input_shape)] + [math.prod(op.shape) for op in ops]
        for i, op in enumerate(ops):
            if op.kind != "maxpool":
                continue
            k = op.attrs["kernel"][0] * op.attrs["kernel"][1]
            src = op.inputs[0]
            before = src - 1 >= 0 and ops[src - 1].kind == "relu" and sole[src] == i
            after = sole[i + 1] is not None and ops[sole[i + 1]].kind == "relu"
            feed = ops[src - 1].inputs[0] if before else src
            li = lin(feed)
            f = self.f if li is not None else 0
            relu = before or after
            if k > 1 and stage_pays(self.b, "max_relu" if relu else "max", N * size[i + 1], k, f, act):
                fp["stage"].add(i)
                if li is not None:
                    fp["defer"].add(li)
                if before:
                    fp["relu_defer"].add(src - 1)
                    fp["pool_relu"].add(i)
                elif after:
                    fp["relu_pass"].add(sole[i + 1])
                    fp["pool_relu"].add(i)
        for i, op in enumerate(ops):
            if op.kind != "relu" or i in fp["relu_pass"] or i in fp["relu_defer"]:
                continue
            li = lin(op.inputs[0])
            f = self.f if li is not None else 0
            if stage_pays(self.b, "relu", N * size[i + 1], 1, f, act):
                fp["stage"].add(i)
                if li is not None:
                    fp["defer"].add(li)
        if self.pending_out and ops:
            li = lin(len(ops), output=True)
            rest = size[-1] // max(1, plan.n_classes)
            if stage_pays(self.b, "argmax", N * rest, plan.n_classes, self.f if li is not None else 0, act,
                          shares=False):
                fp["out"] = True
                if li is not None:
                    fp["defer"].add(li)
        return fp

    def materialize(self, v) -> np.ndarray:
        """Shares of a value (a pending truncation/ReLU applied by one garbled stage)."""
        if not isinstance(v, _Pending):
            return v
        if v.relu:
            return self.b.stage(v.share, "relu", f=v.f)
        return self.b.stage(v.share, "id", f=v.f) if v.f else v.share

    def key(self, op):
        return self._keys[id(op)]

    def c(self, i):
        return self.plan.consts[i] if self.p0 else None

    def p0_add(self, share, c):
        """Add a public-to-P0 constant (int64) to the shared value: only P0's share moves."""
        if self.p0:
            return share + np.asarray(c, dtype=np.int64).view(U64)
        return np.broadcast_to(share, np.broadcast_shapes(share.shape, np.shape(c))).copy()

    def run(self, x: np.ndarray, N: int, jit: bool = False) -> np.ndarray:
        """``x``: this party's share of the input (uint64, (N,) + input_shape).

        Memory stays bounded by the live activations: a value is dropped after its
        last use.  With ``jit`` the offline material of each layer with P0's weights
        is made just before that layer runs (phase ``offline/<kind>``), not for the
        whole model ahead of time (see :func:`offline_bytes`); ``self.t_prep`` is
        the time spent in it."""
        vals = [x]
        last = self.last_use()
        self.t_prep = 0.0
        self.fp = self._fusion(N)
        s, plan = self.s, self.plan
        for i, op in enumerate(plan.ops):
            lin = linear_form(plan, op, self.p0) if jit else None
            if lin is not None:
                t = time.perf_counter()
                with s.phase("offline"):
                    with s.phase(op.kind):
                        self.b.prepare_linear(i, *lin, (N,) + tuple(plan.value_shape(op.inputs[0])), 1)
                self.t_prep += time.perf_counter() - t
            with s.phase("online"):
                with s.phase(op.kind):
                    vals.append(self.op(op, [vals[j] for j in op.inputs], N, i))
            if OP_PROBE is not None:
                OP_PROBE(op.kind)
            for j in set(op.inputs):
                if last[j] == i:
                    vals[j] = None
        return vals[-1]

    def last_use(self) -> list:
        """Per value, the index of the last op that reads it (-1: never read)."""
        last = [-1] * (len(self.plan.ops) + 1)
        for i, op in enumerate(self.plan.ops):
            for j in op.inputs:
                last[j] = i
        return last

    def _pool_windows(self, share, at, lowest: int) -> np.ndarray:
        """The max-pool windows of ``share`` as ``(N, C, OH, OW, kh kw)``; padding holds a
        sharing of ``lowest`` (P0's share, P1's 0)."""
        pad = np.int64(lowest).astype(U64) if self.p0 else U64(0)
        v = window_view(share, at["kernel"], at["strides"], at["pads"], at["dilations"], at["ceil_mode"], pad)
        sh = v.shape
        return np.ascontiguousarray(v).reshape(sh[:4] + (sh[4] * sh[5],))

    def _fused(self, i, op, a, N):
        """The ops run as (parts of) garbled stages (None: the ordinary way)."""
        k, fp = op.kind, self.fp
        if k == "relu":
            v = a[0]
            if i in fp["relu_pass"]:
                return v
            if i in fp["relu_defer"]:
                return v if isinstance(v, _Pending) else _Pending(v, 0)
            if i in fp["stage"]:
                return self.materialize(_Pending(v.share, v.f, True) if isinstance(v, _Pending) else
                                        _Pending(v, 0, True))
            return None
        if k == "maxpool" and i in fp["stage"]:
            v = a[0]
            pf, pre_relu = (v.f, v.relu) if isinstance(v, _Pending) else (0, False)
            sh0 = v.share if isinstance(v, _Pending) else v
            at = op.attrs
            w_in = min(64, self.plan.act_bits + pf)
            vw = self._pool_windows(sh0, at, -(1 << (w_in - 1)))
            return self.b.stage(vw, "max_relu" if (pre_relu or i in fp["pool_relu"]) else "max", f=pf)
        if i in fp["defer"]:
            return _Pending(self.op(op, a, N, i, trunc=False), self.f)
        return None

    def op(self, op, a, N, i=None, trunc: bool = True):
        if trunc and i is not None:
            r = self._fused(i, op, a, N)
            if r is not None:
                return r
        a = [self.materialize(v) for v in a]
        k, at, f, b = op.kind, op.attrs, self.f, self.b
        cs = [self.plan.const_shapes[i] for i in op.consts]
        if not trunc:
            def tr(y, f):
                return y
        else:
            tr = b.trunc
        if k in ("matmul", "conv"):
            y = b.linear(a[0], k, self.c(op.consts[0]), cs[0], at, key=self.key(op))
            if len(op.consts) > 1:
                bias = self.c(op.consts[1]) if self.p0 else np.zeros(cs[1], np.int64)
                y = self.p0_add(y, bias.reshape(-1, 1, 1) if k == "conv" else bias)
            return tr(y, f)
        if k == "add":
            return a[0] + a[1]
        if k == "sub":
            return a[0] - a[1]
        if k == "neg":
            return U64(0) - a[0]
        if k == "mul":
            return b.trunc(b.mul(a[0], a[1]), f)
        if k == "add_const":
            return self.p0_add(a[0], self.c(op.consts[0]) if self.p0 else np.zeros(cs[0], np.int64))
        if k == "mul_const":
            return b.trunc(b.mul_p0(a[0], self.c(op.consts[0]), cs[0]), f)
        if k in ("affine", "affine_sign"):
            if linear_form(self.plan, op, False) is not None:
                kind, W, wshape, attrs = linear_form(self.plan, op, self.p0)
                y = b.linear(a[0], kind, W, wshape, attrs, key=self.key(op))
            else:
                y = b.mul_p0(a[0], self.c(op.consts[0]), cs[0])
            y = self.p0_add(y, self.c(op.consts[1]) if self.p0 else np.zeros(cs[1], np.int64))
            return tr(y, f) if k == "affine" else y         # affine_sign: integer signs, exact
        if k == "relu":
            return b.relu(a[0])
        if k == "maxpool":
            v = self._pool_windows(a[0], at, MIN_FIXED)
            if v.shape[-1] == 1:
                return v[..., 0]
            return b.max(v, axis=-1)
        if k == "avgpool":
            v = window_view(a[0], at["kernel"], at["strides"], at["pads"], (1, 1), at["ceil_mode"], U64(0))
            s = v.sum(axis=(-1, -2), dtype=U64)
            cnt = window_counts(a[0].shape[2], a[0].shape[3], at["kernel"], at["strides"], at["pads"],
                                at["ceil_mode"], at["count_include_pad"])
            return b.trunc(s * recip(cnt, f).view(U64), f)
        if k == "gap":
            axes = tuple(range(2, a[0].ndim))
            cnt = int(np.prod(a[0].shape[2:]))
            return b.trunc(a[0].sum(axis=axes, keepdims=True, dtype=U64) * U64(int(recip(cnt, f))), f)
        if k == "reduce":
            y = a[0].sum(axis=tuple(at["axes"]), keepdims=at["keepdims"], dtype=U64)
            if at["mean"]:
                cnt = int(np.prod([a[0].shape[i] for i in at["axes"]]))
                y = b.trunc(y * U64(int(recip(cnt, f))), f)
            return y
        if k == "reduce_max":
            axes = tuple(at["axes"])
            rest = [i for i in range(a[0].ndim) if i not in axes]
            v = np.ascontiguousarray(a[0].transpose(rest + list(axes)))
            v = v.reshape(v.shape[:len(rest)] + (-1,))
            y = v[..., 0] if v.shape[-1] == 1 else b.max(v, axis=-1)
            if at["keepdims"]:
                y = y.reshape(tuple(1 if i in axes else d for i, d in enumerate(a[0].shape)))
            return y
        if k == "slice":
            return np.ascontiguousarray(a[0][(slice(None),) + slice_index(at)])
        if k == "pad":                     # zeros are a valid sharing of zero
            r = a[0].ndim - 1
            return np.pad(a[0], [(0, 0)] + [(at["pads"][i], at["pads"][i + r]) for i in range(r)])
        if k == "reshape":
            return a[0].reshape((N,) + tuple(at["shape"]))
        if k == "transpose":
            return np.ascontiguousarray(a[0].transpose(at["perm"]))
        if k == "concat":
            return np.concatenate(a, axis=at["axis"])
        raise ProtocolError(f"nn: unknown op {k}")   # pragma: no cover - plans are checked


def _class_matrix(plan: Plan, logits: np.ndarray) -> np.ndarray:
    """Logit shares (N,) + out_shape -> (N * rest, C) with the class axis last (a
    single sigmoid logit z becomes [0, z]: zeros are a sharing of zero)."""
    z = class_scores(plan, logits)
    return np.ascontiguousarray(z).reshape(-1, z.shape[-1])


def n_classes(plan: Plan) -> int:
    return plan.n_classes


# ---------------------------------------------------------------------- architecture exchange
def send_architecture(session, plan: Plan, allow_logits: bool = False) -> None:
    """P0: send the weight-free architecture."""
    if session.frac_bits != plan.frac_bits:
        raise ValueError(f"the plan uses {plan.frac_bits} fractional bits, the session {session.frac_bits}")
    with session.phase("setup"):
        session.channel.send("nn.arch", plan.architecture(allow_logits))


def recv_architecture(session, adopt_frac_bits: bool = True) -> tuple[Plan, bool]:
    """P1: receive and strictly check P0's architecture (ProtocolError naming nn.arch).
    The fixed-point precision is public: with ``adopt_frac_bits`` this session takes
    the model's (before any protocol engine runs)."""
    with session.phase("setup"):
        data = session.channel.recv_bytes("nn.arch", max_nbytes=LIMITS["max_bytes"])
    plan, allow = parse_architecture(data, "nn.arch")
    if plan.trunc != "local":
        session.arith.trunc = plan.trunc        # the owner's public choice, followed by both
    if adopt_frac_bits:
        session.frac_bits = plan.frac_bits
    if plan.frac_bits != session.frac_bits:
        raise ProtocolError(f"nn.arch: the model uses {plan.frac_bits} fractional bits, "
                            f"this session {session.frac_bits}")
    return plan, allow


@dataclass(frozen=True)
class ServePolicy:
    """What a model owner agrees to answer (``serve --allow/--min-samples/--max-batch/
    --memory-budget``), checked when the request arrives, before any computation.

    ``allow``: the modes served (``"query"``, ``"validate"``).  ``min_samples``: the
    fewest samples a validation may have, and the fewest samples a confusion-matrix
    cell must hold to be revealed (cells with fewer are opened as -1: the comparison
    is done in secret, so neither party learns more than "below the threshold").
    ``max_batch``/``max_samples``: bounds on the request.  ``memory_bytes``: a
    per-session budget, compared with :func:`session_memory_estimate`."""
    allow: tuple = ("query", "validate")
    min_samples: int = 1
    max_batch: int = MAX_BATCH
    max_samples: int = MAX_SAMPLES
    memory_bytes: int | None = None


#: bytes a secure activation element costs at its peak (garbled comparison on 64
#: wires: labels, tables and OT blocks), for the memory estimate
BYTES_PER_ELEMENT = 4096


def session_memory_estimate(plan: Plan, batch: int) -> int:
    """A coarse upper estimate of one session's peak memory at this batch size: the
    largest per-sample activation times the batch times BYTES_PER_ELEMENT."""
    peak = max([math.prod(plan.input_shape)] + [math.prod(op.shape) for op in plan.ops])
    return int(batch) * int(peak) * BYTES_PER_ELEMENT


def check_input_range(plan: Plan, xf: np.ndarray) -> None:
    """Refuse inputs outside the range the model owner checked its model on (published
    as ``input_bound`` in the architecture): beyond it the fixed-point ring may
    overflow inside the network and the classes come back silently wrong."""
    if plan.input_bound is None or xf.size == 0:
        return
    top = int(np.max(np.abs(xf)))
    if top > plan.input_bound:
        u = 2.0 ** -plan.frac_bits
        raise ValueError(f"inputs reach |x| = {top * u:.6g}, outside the range +-{plan.input_bound * u:.6g} the model "
                         f"owner checked the model on (the fixed-point arithmetic could overflow and return wrong "
                         f"results); rescale the inputs")


class Request:
    """What P1 asked for (both sides hold the same after nn.accept)."""

    def __init__(self, mode, n, batch, flags, T=0, shard=None):
        self.mode, self.n, self.batch, self.granted, self.T, self.shard = mode, n, batch, flags, T, shard

    @property
    def auroc(self) -> bool:
        return bool(self.granted & FLAG_AUROC)

    @property
    def sharded(self) -> bool:
        return bool(self.granted & FLAG_SHARD) or self.mode == MODE_AGGREGATE


def _shard_words(shard) -> np.ndarray:
    """(validation id: 16 bytes, shard index, token: 16 bytes) -> uint64[5]."""
    vid, idx, tok = shard
    if len(vid) != 16 or len(tok) != 16 or not 0 <= idx < MAX_SHARDS:
        raise ValueError("shard: a 16-byte validation id, an index below MAX_SHARDS and a 16-byte token")
    v, t = np.frombuffer(vid, "<u8"), np.frombuffer(tok, "<u8")
    return np.array([v[0], v[1], idx, t[0], t[1]], dtype=U64)


def _send_request(session, mode, n, batch, flags, classes, T: int = 0, shard=None):
    with session.phase("setup"):
        session.channel.send("nn.request", np.array([REQ_MAGIC, mode, n, batch, flags, classes], dtype=U64))
        if flags & FLAG_AUROC:
            session.channel.send("nn.metrics", np.array([REQ_MAGIC, T], dtype=U64))
        if flags & FLAG_SHARD or mode == MODE_AGGREGATE:
            session.channel.send("nn.shard", _shard_words(shard))
        acc = session.channel.recv_array("nn.accept", U64, (2,))
    granted = int(acc[1])
    if int(acc[0]) != REQ_MAGIC or (granted & 0xFF) & ~flags or (granted >> 8) > MAX_SAMPLES:
        raise ProtocolError("nn.accept: malformed answer from the model owner")
    return granted


def _recv_request(session, plan: Plan, allow_logits: bool, allow_confusion: bool,
                  policy: ServePolicy | None = None, shards=None) -> Request:
    with session.phase("setup"):
        r = session.channel.recv_array("nn.request", U64, (6,))
    magic, mode, n, batch, flags, classes = (int(v) for v in r)
    if magic != REQ_MAGIC:
        raise ProtocolError("nn.request: bad magic (the peer is not an ezprotocols nn client of this version)")
    if mode not in (MODE_QUERY, MODE_VALIDATE, MODE_AGGREGATE):
        raise ProtocolError(f"nn.request: unknown mode {mode}")
    if not 1 <= n <= MAX_SAMPLES or not 1 <= batch <= min(MAX_BATCH, n):
        raise ProtocolError(f"nn.request: {n} samples in batches of {batch} out of bounds")
    if flags & ~(FLAG_LOGITS | FLAG_CONFUSION | FLAG_AUROC | FLAG_SHARD):
        raise ProtocolError(f"nn.request: unknown flags {flags:#x}")
    if classes != n_classes(plan):
        raise ProtocolError(f"nn.request: the peer counts {classes} classes, the model has {n_classes(plan)}")
    if mode == MODE_QUERY and flags & FLAG_LOGITS and not allow_logits:
        raise ProtocolError("nn.request: the peer asks for the logits, which the model owner does not allow")
    if mode == MODE_QUERY and flags & (FLAG_CONFUSION | FLAG_AUROC | FLAG_SHARD) or \
            mode != MODE_QUERY and flags & FLAG_LOGITS or mode == MODE_AGGREGATE and flags & FLAG_SHARD:
        raise ProtocolError("nn.request: flags do not fit the mode")
    pol = policy or ServePolicy()
    name = "query" if mode == MODE_QUERY else "validate"
    if name not in pol.allow:
        raise RequestRefused(f"nn.request: the model owner does not answer {name} requests "
                             f"(it serves: {', '.join(pol.allow) or 'nothing'})")
    if (mode == MODE_VALIDATE and not flags & FLAG_SHARD or mode == MODE_AGGREGATE) and n < pol.min_samples:
        raise RequestRefused(f"nn.request: a validation needs at least {pol.min_samples} samples, the peer has {n}")
    if batch > pol.max_batch or n > pol.max_samples:
        raise RequestRefused(f"nn.request: {n} samples in batches of {batch}; the model owner allows batches of "
                             f"at most {pol.max_batch} and {pol.max_samples} samples")
    if pol.memory_bytes is not None and session_memory_estimate(plan, batch) > pol.memory_bytes:
        raise RequestRefused(f"nn.request: batches of {batch} would need about "
                             f"{session_memory_estimate(plan, batch) >> 20} MiB, more than the model owner's "
                             f"budget of {pol.memory_bytes >> 20} MiB per session; use smaller batches")
    T = 0
    if flags & FLAG_AUROC:
        with session.phase("setup"):
            m = session.channel.recv_array("nn.metrics", U64, (2,))
        T = int(m[1])
        if int(m[0]) != REQ_MAGIC or not 1 <= T <= metrics.MAX_THRESHOLDS:
            raise ProtocolError(f"nn.metrics: {T} thresholds out of 1..{metrics.MAX_THRESHOLDS}")
        if not metrics.auroc_supported(plan):
            raise ProtocolError("nn.metrics: AUROC needs a binary or multi-label model")
    shard = None
    if flags & FLAG_SHARD or mode == MODE_AGGREGATE:
        with session.phase("setup"):
            w = session.channel.recv_array("nn.shard", U64, (5,))
        if shards is None:
            raise ProtocolError("nn.shard: this server keeps no shard shares (sharded validation not enabled)")
        if int(w[2]) >= MAX_SHARDS:
            raise ProtocolError(f"nn.shard: shard index {int(w[2])} out of range")
        shard = (w[0:2].astype("<u8").tobytes(), int(w[2]), w[3:5].astype("<u8").tobytes())
    if mode != MODE_QUERY and \
            math.prod(d for i, d in enumerate(plan.output_shape) if i != plan.class_axis) != 1:
        raise ProtocolError("nn.request: validation needs a model with one class decision per sample")
    granted = flags & (FLAG_LOGITS | FLAG_AUROC | FLAG_SHARD)
    if flags & FLAG_CONFUSION and allow_confusion and not plan.multilabel:
        granted |= FLAG_CONFUSION | (max(1, pol.min_samples) << 8)
    with session.phase("setup"):
        session.channel.send("nn.accept", np.array([REQ_MAGIC, granted], dtype=U64))
    return Request(mode, n, batch, granted, T, shard)


# ---------------------------------------------------------------------- results
class SecureResult(dict):
    """Result dict: ``mode``, ``samples``, ``seconds``, ``offline``/``online`` costs and,
    per mode, ``classes`` / ``output`` (P1) or ``accuracy``, ``correct``, ``confusion``."""


def _costs(session, t_off, t_on):
    st = session.stats()

    def agg(prefix):
        c = {"bytes_sent": 0, "bytes_recv": 0, "rounds": 0}
        for k, v in st.items():
            if k == prefix:
                c = {x: v[x] for x in ("bytes_sent", "bytes_recv", "rounds")}
        c["bytes"] = c["bytes_sent"] + c["bytes_recv"]
        return c

    phases, off_phases = {}, {}
    for k, v in st.items():
        for pre, d in (("online/", phases), ("offline/", off_phases)):
            if k.startswith(pre) and k.count("/") == 1:
                d[k[len(pre):]] = {"bytes": v["bytes_sent"] + v["bytes_recv"], "rounds": v["rounds"],
                                   "seconds": v["seconds"]}
    off, on = agg("offline"), agg("online")
    off["seconds"], on["seconds"] = t_off, t_on
    tot = st["total"]
    return {"offline": off, "online": on, "per_op": phases, "offline_per_op": off_phases,
            "total": {"bytes": tot["bytes_sent"] + tot["bytes_recv"], "rounds": tot["rounds"],
                      "seconds": t_off + t_on}}


class _Progress:
    def __init__(self, total, enabled, label):
        self.total, self.enabled, self.label = total, enabled, label
        self.t0 = time.perf_counter()
        self.tty = enabled and sys.stderr.isatty()
        self.last = -1

    def update(self, done):
        if not self.enabled:
            return
        frac = done / max(1, self.total)
        pct = int(frac * 100)
        if not self.tty and pct // 10 == self.last // 10 and done < self.total:
            return
        self.last = pct
        bar = "#" * int(frac * 30)
        el = time.perf_counter() - self.t0
        msg = f"{self.label} [{bar:<30}] {done}/{self.total} samples, {el:.1f} s"
        sys.stderr.write(("\r" + msg) if self.tty else (msg + "\n"))
        if self.tty and done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _batches(n, batch):
    return [(i, min(n, i + batch)) for i in range(0, n, batch)]


#: Benchmarks only: called with the op kind after each op of the secure executor
#: (e.g. to sample the resident memory per layer kind).
OP_PROBE = None

#: Offline material (masks and their products, both parties) prepared ahead for
#: a whole group of batches when it fits in this many bytes; beyond, each layer's
#: material is made just before the layer runs (e.g. DenseNet-121 at 224x224).
OFFLINE_BUDGET = 256 << 20


def offline_bytes(plan: Plan, batch: int) -> int:
    """Memory of the offline material of one run at this batch size (public: both
    parties compute the same): per layer with P0's weights, the input mask and the
    output shares, 8 bytes per ring element."""
    tot = 0
    for i, op in enumerate(plan.ops):
        if linear_form(plan, op, False) is not None:
            tot += 8 * batch * (math.prod(plan.value_shape(op.inputs[0])) + math.prod(op.shape))
    return tot


def _run_batches(session, plan, backend, n, batch, feed, consume, progress, label, group: int = 8,
                 pending_out: bool = False):
    """Shared loop over groups of ``group`` batches: the offline phase prepares the
    correlated randomness of the whole group (before any of its inputs is shared),
    then the group's batches run online.  Memory stays bounded by one group; when
    one group's material exceeds :data:`OFFLINE_BUDGET`, each layer's material is
    made just ahead of that layer instead (one batch at a time)."""
    ex = _Exec(session, plan, backend, pending_out)
    t_off = 0.0
    t_on = 0.0
    bar = _Progress(n, progress, label)
    bar.update(0)
    todo = _batches(n, batch)
    jit = offline_bytes(plan, batch) * min(group, len(todo)) > OFFLINE_BUDGET
    if jit:
        for lo, hi in todo:
            t = time.perf_counter()
            with session.phase("online"):
                with session.phase("input"):
                    x = feed(lo, hi)
            logits = ex.run(x, hi - lo, jit=True)
            with session.phase("online"):
                with session.phase("output"):
                    consume(lo, hi, logits)
            el = time.perf_counter() - t
            t_off += ex.t_prep
            t_on += el - ex.t_prep
            bar.update(hi)
        return t_off, t_on
    for g in range(0, len(todo), group):
        chunk = todo[g:g + group]
        sizes = {}
        for lo, hi in chunk:
            sizes[hi - lo] = sizes.get(hi - lo, 0) + 1
        t = time.perf_counter()
        with session.phase("offline"):
            for m, count in sizes.items():
                backend.prepare(plan, m, count)
        t_off += time.perf_counter() - t
        for lo, hi in chunk:
            m = hi - lo
            t = time.perf_counter()
            with session.phase("online"):
                with session.phase("input"):
                    x = feed(lo, hi)
            logits = ex.run(x, m)
            with session.phase("online"):
                with session.phase("output"):
                    consume(lo, hi, logits)
            t_on += time.perf_counter() - t
            bar.update(hi)
    return t_off, t_on


# ---------------------------------------------------------------------- validation state
class _Validation:
    """What a validation accumulates, as additive shares (uint64), in a layout both
    parties derive from public data (the plan, the granted flags, T):

    multi-class models: ``correct`` (1,), ``conf`` (C, C) if granted;
    binary models with AUROC, in addition: ``d``, ``tp`` (1, T), ``pos`` (1,);
    multi-label heads (K outputs): ``d``, ``tp`` (K, T'), ``pos`` (K,) where the
    first of the T' = 1 (+ T with AUROC) thresholds is 0 (the decision p > 1/2).
    """

    def __init__(self, plan: Plan, granted: int, T: int):
        self.plan, self.granted, self.T = plan, granted, T
        self.C = n_classes(plan)
        self.multi = plan.multilabel
        f = plan.frac_bits
        thr = [np.zeros(1, np.int64)] if self.multi else []
        if granted & FLAG_AUROC:
            thr.append(metrics.logit_thresholds(T, f))
        self.thr = np.concatenate(thr) if thr else None
        K = self.C if self.multi else 1
        self.K = K
        lay = []
        if not self.multi:
            lay.append(("correct", (1,)))
            if granted & FLAG_CONFUSION:
                lay.append(("conf", (self.C, self.C)))
        if self.thr is not None:
            lay += [("d", (K, self.thr.size)), ("tp", (K, self.thr.size)), ("pos", (K,))]
        self.layout = lay
        self.acc = {k: np.zeros(shp, U64) for k, shp in lay}
        # |score - threshold| < 2^(act_bits - 1) + max |c|
        cmax = int(np.abs(self.thr).max()) if self.thr is not None and self.thr.size else 0
        self.bits = min(64, max(plan.act_bits, cmax.bit_length() + 1) + 1)

    @property
    def size(self) -> int:
        return sum(math.prod(shp) for _, shp in self.layout)

    def flat(self) -> np.ndarray:
        return np.concatenate([self.acc[k].reshape(-1) for k, _ in self.layout]).astype(U64)

    def unflat(self, v: np.ndarray) -> dict:
        out, off = {}, 0
        for k, shp in self.layout:
            n = math.prod(shp)
            out[k] = v[off:off + n].reshape(shp)
            off += n
        return out

    def batch(self, be, logits, labels, m):
        """Accumulate the shares of one batch (``labels``: P1's, None on P0)."""
        plan = self.plan
        z = _class_matrix(plan, logits)
        if z.shape[0] != m:
            raise ProtocolError("nn: validation needs one class decision per sample")
        p1 = be.s.role == 1
        if not self.multi:
            _validate_batch(be, plan, z, labels, m, self.acc, self.granted)
        if self.thr is None:
            return
        scores = metrics.score_matrix(plan, z)                        # (m, K) shares
        if p1:
            y = (labels if self.multi else (labels == 1)[:, None]).astype(np.int64)
        ysh = be.share_input(y if p1 else None, 1, (m, self.K))
        c = metrics.secure_counts(be, scores, ysh, self.thr, bits=self.bits)
        self.acc["d"] = self.acc["d"] + c["d"]
        self.acc["tp"] = self.acc["tp"] + c["tp"]
        if p1:                                  # P1 knows its label counts: its share is the value, P0's is 0
            self.acc["pos"] = self.acc["pos"] + y.sum(axis=0).astype(np.int64).view(U64)

    def finish(self, be, share: np.ndarray, n: int) -> dict:
        """Open the (summed) shares once and compute the report (a confusion matrix
        through :func:`_open_confusion`: cells below the owner's minimum show -1)."""
        parts = self.unflat(np.ascontiguousarray(share, dtype=U64))
        rest = [k for k, _ in self.layout if k != "conf"]
        with be.s.phase("online"):
            with be.s.phase("output"):
                v = be.reveal(np.concatenate([parts[k].reshape(-1) for k in rest]), to=None).astype(np.int64)
                conf = _open_confusion(be, parts["conf"], n, self.granted >> 8) if "conf" in parts else None
        o, off = {}, 0
        for k, shp in self.layout:
            if k == "conf":
                o[k] = conf
                continue
            o[k] = v[off:off + math.prod(shp)].reshape(shp)
            off += math.prod(shp)
        return self.report(o, n)

    def report(self, o: dict, n: int) -> dict:
        out = {"classes_count": self.C}
        if not self.multi:
            correct = int(o["correct"][0])
            if not 0 <= correct <= n:
                raise ProtocolError(f"nn.validate: opened {correct} correct predictions out of {n}")
            out.update(correct=correct, accuracy=correct / n)
            if "conf" in o:
                conf = o["conf"]
                shown = conf[conf >= 0]
                if conf.min() < -1 or int(shown.sum()) > n or (shown.size == conf.size and int(shown.sum()) != n):
                    raise ProtocolError("nn.validate: the opened confusion matrix is inconsistent")
                out["confusion"] = conf.tolist()
        if self.thr is not None:
            d, tp, pos = o["d"], o["tp"], o["pos"]
            if pos.min() < 0 or pos.max() > n or tp.min() < 0 or (d - tp).min() < 0 or d.max() > n or \
                    (tp > pos[:, None]).any() or (d - tp > (n - pos)[:, None]).any():
                raise ProtocolError("nn.validate: the opened ROC counts are inconsistent")
            if self.multi:
                corr = n - d[:, 0] - pos + 2 * tp[:, 0]          # [decision == label] summed per output
                out.update(correct=int(corr.sum()), accuracy=float(corr.sum()) / (n * self.K),
                           correct_per_output=corr.tolist(), accuracy_per_output=(corr / n).tolist(),
                           outputs=self.K)
                d, tp = d[:, 1:], tp[:, 1:]
            if self.granted & FLAG_AUROC:
                out.update(metrics.roc_summary(tp, d - tp, pos, n,
                                               metrics.prob_thresholds(self.T, self.plan.frac_bits)))
        return out


# ---------------------------------------------------------------------- P0: serve one session
def serve_session(session, plan: Plan, *, allow_logits: bool = False, allow_confusion: bool = False,
                  backend: Backend | None = None, progress: bool = False,
                  policy: ServePolicy | None = None, shards=None) -> SecureResult:
    """P0's side of one client session (query, validation, shard of a validation, or
    the aggregation of a sharded validation).  Returns what P0 learns: for a
    validation the accuracy (and the confusion matrix if granted, the ROC counts
    and AUROC if asked); for a query only the number of samples; for a shard
    nothing but its size.  ``policy``: what the owner answers (:class:`ServePolicy`);
    ``shards``: a :class:`~ezprotocols.nn.shards.ShardStore` keeping the shares of
    shard sessions (None: sharded validation refused)."""
    if not plan.encoded:
        raise ValueError("the plan's weights are not encoded")
    send_architecture(session, plan, allow_logits)
    if plan.trunc != "local":
        session.arith.trunc = plan.trunc
    req = _recv_request(session, plan, allow_logits, allow_confusion, policy, shards)
    mode, n, batch, granted = req.mode, req.n, req.batch, req.granted
    be = backend or Backend(session)
    in_shape = plan.input_shape
    val = _Validation(plan, granted, req.T)
    if mode == MODE_AGGREGATE:
        return _aggregate(session, be, val, req, shards)

    def feed(lo, hi):
        return be.share_input(None, 1, (hi - lo,) + tuple(in_shape))

    def consume(lo, hi, logits):
        if mode == MODE_QUERY:
            if granted & FLAG_LOGITS:
                be.reveal(logits, to=1)
            else:
                _reveal_decisions(be, plan, logits)
        else:
            val.batch(be, logits, None, hi - lo)

    t_off, t_on = _run_batches(session, plan, be, n, batch, feed, consume, progress, "P0",
                               pending_out=mode == MODE_QUERY and not granted & FLAG_LOGITS
                               and _fused_output(be, plan))
    res = SecureResult(mode="query" if mode == MODE_QUERY else "validate", samples=n, batch=batch)
    if mode == MODE_VALIDATE:
        if req.sharded:
            _commit_shard(session, val, req, shards)
            res.update(shard=req.shard[1], committed=True)
        else:
            res.update(val.finish(be, val.flat(), n))
    res.update(_costs(session, t_off, t_on))
    return res


def _commit_shard(session, val, req, store):
    """End of a shard session: nothing is opened.  P1 says it finished (nn.commit);
    P0 stores its shares under (validation id, shard) with P1's token and confirms."""
    ch = session.channel
    if store is None:               # P1's side
        with session.phase("setup"):
            ch.send("nn.commit", np.array([REQ_MAGIC], U64))
            ok = ch.recv_array("nn.committed", U64, (1,))
        if int(ok[0]) != REQ_MAGIC:
            raise ProtocolError("nn.committed: malformed answer from the model owner")
        return
    with session.phase("setup"):
        c = ch.recv_array("nn.commit", U64, (1,))
        if int(c[0]) != REQ_MAGIC:
            raise ProtocolError("nn.commit: malformed")
        vid, idx, tok = req.shard
        store.put(vid, idx, tok, val.flat(), {"n": req.n, "flags": req.granted & ~FLAG_SHARD, "T": req.T, "size": val.size})
        ch.send("nn.committed", np.array([REQ_MAGIC], U64))


def _aggregate(session, be, val, req, store=None, entries=None):
    """Mode 3: sum each party's shares over the listed shards and open the total once.
    P1 passes ``entries`` [(shard, token, share vector)], P0 its ``store``."""
    ch = session.channel
    vid = req.shard[0]
    with session.phase("setup"):
        if store is None:
            ch.send("nn.nshards", np.array([len(entries)], U64))
            ch.send("nn.shards", np.array([[i] + list(np.frombuffer(t, "<u8")) for i, t, _ in entries], U64))
            total = np.zeros(val.size, U64)
            for _, _, v in entries:
                total += np.asarray(v, dtype=U64)
        else:
            S = int(ch.recv_array("nn.nshards", U64, (1,))[0])
            if not 1 <= S <= MAX_SHARDS:
                raise ProtocolError(f"nn.nshards: {S} shards out of 1..{MAX_SHARDS}")
            lst = ch.recv_array("nn.shards", U64, (S, 3))
            want = [(int(r[0]), r[1:3].astype("<u8").tobytes()) for r in lst]
            total = store.take(vid, want, {"n": req.n, "flags": req.granted & ~FLAG_SHARD, "T": req.T,
                                           "size": val.size})
    res = SecureResult(mode="validate", samples=req.n, batch=req.batch, shards=len(entries or want))
    t = time.perf_counter()
    res.update(val.finish(be, total, req.n))
    res.update(_costs(session, 0.0, time.perf_counter() - t))
    return res


def _fused_output(be, plan) -> bool:
    """Whether a query's decisions may come out of one garbled argmax stage revealed to
    P1 (a multi-class head, a backend with garbled stages); public, the same on both
    sides.  Per batch, :func:`stage_pays` decides."""
    return bool(getattr(be, "round_bytes", 0)) and not plan.multilabel


def _reveal_decisions(be, plan, logits):
    """Open the decisions (:func:`_decisions`) to P1: the classes there, None at P0.
    As one garbled stage (the logits' pending truncation, the argmax and the opening)
    when the executor deferred the logits' truncation into it or the stage pays."""
    if isinstance(logits, _Pending) or (_fused_output(be, plan) and stage_pays(
            be, "argmax", logits.size // max(1, plan.n_classes), plan.n_classes, 0, plan.act_bits, shares=False)):
        f = logits.f if isinstance(logits, _Pending) else 0
        sh = logits.share if isinstance(logits, _Pending) else logits
        return be.stage(_class_matrix(plan, sh), "argmax", f=f, reveal=True)
    return be.reveal(_decisions(be, plan, logits), to=1)


def _decisions(be, plan, logits):
    """What a query reveals by default: the class index per decision, or for a
    multi-label head the K decisions [z_k > 0] (0/1)."""
    z = _class_matrix(plan, logits)
    if plan.multilabel:
        return be.gt_zero(z.reshape(-1), bits=plan.act_bits).reshape(z.shape)
    return be.argmax(z)


def _is_zero(be, d: np.ndarray, bound: int) -> np.ndarray:
    """[d == 0] for integer shares with |d| < bound: [d + 1 > 0] - [d > 0], one
    comparison call on (bound + 1).bit_length() + 1 bits."""
    one = U64(be.s.role == 0)
    both = be.gt_zero(np.concatenate([(d + one).reshape(-1), d.reshape(-1)]), bits=(bound + 1).bit_length() + 1)
    n = d.size
    return (both[:n] - both[n:]).reshape(d.shape)


def _validate_batch(be, plan, z, labels, m, acc, granted):
    """Accumulate the shares of #correct (and of the confusion matrix) for one batch
    of a multi-class model (``z``: the class matrix (m, C)): correct_i = [argmax_i ==
    label_i], compared in secret; only sums are kept."""
    C = n_classes(plan)
    p1 = be.s.role == 1
    idx = be.argmax(z)                                          # (m,) integer shares
    lab = be.share_input(labels if p1 else None, 1, (m,))       # P1's labels, shared
    correct = _is_zero(be, idx - lab, C)
    acc["correct"] = acc["correct"] + correct.reshape(1, -1).sum(axis=1, dtype=U64)
    if granted & FLAG_CONFUSION:
        one = U64(be.s.role == 0)
        pred = _is_zero(be, idx[:, None] - np.arange(C, dtype=U64)[None, :] * one, C)   # (m, C) one-hot
        lab1 = be.share_input(np.eye(C, dtype=np.int64)[labels] if p1 else None, 1, (m, C))
        acc["conf"] = acc["conf"] + be.matmul(np.ascontiguousarray(lab1.T), pred)       # [true, predicted]


def _open_confusion(be, conf, n: int, min_cell: int) -> np.ndarray:
    """Open the confusion matrix; with ``min_cell > 1`` a cell holding fewer samples
    is opened as -1: ``keep = [cell - (min_cell - 1) > 0]`` is computed in secret and
    only ``keep * cell`` and ``keep`` are opened (one comparison and one product per
    cell), so a suppressed cell reveals only that it is below the threshold."""
    if min_cell <= 1:
        return be.reveal(conf, to=None).astype(np.int64)
    one = U64(be.s.role == 0)
    keep = be.gt_zero(conf - U64(min_cell - 1) * one, bits=max(4, (n + min_cell).bit_length() + 2))
    shown = be.mul(conf, keep)
    both = be.reveal(np.concatenate([shown.reshape(-1), keep.reshape(-1)]), to=None).astype(np.int64)
    k = conf.size
    vals, kept = both[:k].reshape(conf.shape), both[k:].reshape(conf.shape)
    if not np.isin(kept, (0, 1)).all():
        raise ProtocolError("nn.validate: the opened confusion-matrix mask is not 0/1")
    return np.where(kept == 1, vals, -1)


# ---------------------------------------------------------------------- P1: query / validate
def query_session(session, x, *, want_logits: bool = False, batch: int | None = None,
                  backend: Backend | None = None, progress: bool = False) -> SecureResult:
    """P1's side of a query: ``x`` float (N,) + input_shape.  Returns the predicted
    classes (for a multi-label head: ``classes`` (N, K) 0/1, the K decisions p_k > 1/2;
    and, with ``want_logits`` if P0 allows it, the logits and the model's output)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples")
    plan, allow_logits = recv_architecture(session)
    if x.ndim == len(plan.input_shape):
        x = x[None]
    if x.shape[1:] != tuple(plan.input_shape):
        raise ValueError(f"input shape {x.shape[1:]} per sample; the model expects {tuple(plan.input_shape)}")
    n = x.shape[0]
    if want_logits and not allow_logits:
        raise PermissionError("the model owner does not reveal logits (only the predicted class)")
    batch = min(batch or n, n, MAX_BATCH)
    C = n_classes(plan)
    xf = encode(x, plan.frac_bits)
    check_input_range(plan, xf)
    granted = _send_request(session, MODE_QUERY, n, batch, FLAG_LOGITS if want_logits else 0, C)
    be = backend or Backend(session)
    outs = []

    def feed(lo, hi):
        return be.share_input(xf[lo:hi], 1, (hi - lo,) + tuple(plan.input_shape))

    def consume(lo, hi, logits):
        if granted & FLAG_LOGITS:
            outs.append(be.reveal(logits, to=1))
        else:
            outs.append(_reveal_decisions(be, plan, logits))

    t_off, t_on = _run_batches(session, plan, be, n, batch, feed, consume, progress, "P1",
                               pending_out=not granted & FLAG_LOGITS and _fused_output(be, plan))
    res = SecureResult(mode="query", samples=n, batch=batch)
    out_ps = plan.output_shape
    rest = tuple(d for i, d in enumerate(out_ps) if i != plan.class_axis)
    if granted & FLAG_LOGITS:
        lg = np.concatenate(outs).astype(np.float64) / float(1 << plan.frac_bits)
        res["logits"] = lg
        res["output"] = postprocess(plan, lg)
        if plan.multilabel:
            res["classes"] = (class_scores(plan, lg) > 0).astype(np.int64)
        else:
            res["classes"] = np.argmax(class_scores(plan, lg), axis=-1)
    else:
        cls = np.concatenate(outs).astype(np.int64)
        res["classes"] = cls.reshape((n,) + rest + ((C,) if plan.multilabel else ()))
    if plan.multilabel:
        res["multilabel"] = True
    if plan.class_labels is not None:
        res["labels"] = class_labels(plan, res["classes"])
    res.update(_costs(session, t_off, t_on))
    return res


def label_indices(plan: Plan, labels) -> np.ndarray:
    """P1's labels as class indices: through the model's class labels when it declares
    them (e.g. skl2onnx classifiers: ints or strings), unchanged otherwise."""
    labels = np.asarray(labels)
    if plan.class_labels is None or labels.ndim != 1:
        return labels
    cl = np.asarray(plan.class_labels)
    if cl.dtype.kind == "U":
        if labels.dtype.kind == "S":
            labels = np.char.decode(labels, "utf-8", "replace")
        elif labels.dtype.kind not in "UO":
            raise ValueError(f"the model's classes are strings {plan.class_labels}; got {labels.dtype} labels")
        lab = labels.astype(str)
    else:
        if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.rint(labels)):
            labels = labels.astype(np.int64)
        if labels.dtype.kind not in "iu":
            raise ValueError(f"the model's classes are integers {plan.class_labels}; got {labels.dtype} labels")
        lab = labels.astype(np.int64)
    order = np.argsort(cl, kind="stable")
    pos = np.minimum(np.searchsorted(cl[order], lab), len(cl) - 1)
    bad = np.flatnonzero(cl[order][pos] != lab)
    if bad.size:
        raise ValueError(f"label {lab[bad[0]].item()!r} (sample {int(bad[0])}) is not one of the model's classes "
                         f"{plan.class_labels}")
    return order[pos].astype(np.int64)


def check_labels(plan: Plan, labels, n: int) -> np.ndarray:
    """P1's labels in the form the validation needs: class indices (n,) for a
    multi-class / binary model, a 0/1 matrix (n, K) for a multi-label head
    (ValueError naming the problem otherwise)."""
    if plan.multilabel:
        K = n_classes(plan)
        labels = np.asarray(labels)
        if labels.shape != (n, K):
            raise ValueError(f"the model has {K} outputs (multi-label): labels must have shape ({n}, {K}), "
                             f"not {labels.shape}")
        if labels.dtype.kind not in "biuf" or not np.all((labels == 0) | (labels == 1)):
            raise ValueError("multi-label labels must be 0 or 1")
        return labels.astype(np.int64)
    rest = tuple(d for i, d in enumerate(plan.output_shape) if i != plan.class_axis)
    if math.prod(rest) != 1:
        raise ValueError("validation needs a model with one class decision per sample")
    C = n_classes(plan)
    labels = label_indices(plan, labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or \
            (n and (labels.min() < 0 or labels.max() >= C)):
        raise ValueError(f"labels must be {n} integers in 0..{C - 1}")
    return labels.astype(np.int64)


def validate_session(session, x, labels, *, confusion: bool = False, batch: int = 64,
                     backend: Backend | None = None, progress: bool = False, auroc: bool = False,
                     thresholds: int = metrics.DEFAULT_THRESHOLDS, shard=None) -> SecureResult:
    """P1's side of a validation: both parties learn the accuracy (per output for a
    multi-label head; and the confusion matrix if both agree; with ``auroc`` the ROC
    counts at ``thresholds`` public thresholds and the AUROC per output), nothing per
    sample.  ``shard=(validation id, index, token)``: a shard of a sharded
    validation; nothing is opened and the result carries this party's ``shares``
    (see :mod:`ezprotocols.nn.shards`)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples")
    if auroc:
        metrics._check_T(thresholds)
    plan, _ = recv_architecture(session)
    if x.shape[1:] != tuple(plan.input_shape):
        raise ValueError(f"samples have shape {x.shape[1:]}; the model expects {tuple(plan.input_shape)}")
    n = x.shape[0]
    labels = check_labels(plan, labels, n)
    if auroc and not metrics.auroc_supported(plan):
        raise ValueError("AUROC needs a binary or multi-label model (one positive class per output); this model "
                         f"has {n_classes(plan)} exclusive classes")
    C = n_classes(plan)
    batch = max(1, min(batch, n, MAX_BATCH))
    flags = (FLAG_CONFUSION if confusion else 0) | (FLAG_AUROC if auroc else 0) | (FLAG_SHARD if shard else 0)
    T = thresholds if auroc else 0
    xf = encode(x, plan.frac_bits)
    check_input_range(plan, xf)
    granted = _send_request(session, MODE_VALIDATE, n, batch, flags, C, T, shard)
    be = backend or Backend(session)
    val = _Validation(plan, granted, T)

    def feed(lo, hi):
        return be.share_input(xf[lo:hi], 1, (hi - lo,) + tuple(plan.input_shape))

    def consume(lo, hi, logits):
        val.batch(be, logits, labels[lo:hi], hi - lo)

    t_off, t_on = _run_batches(session, plan, be, n, batch, feed, consume, progress, "P1")
    res = SecureResult(mode="validate", samples=n, batch=batch, confusion_requested=confusion)
    if shard is not None:
        _commit_shard(session, val, Request(MODE_VALIDATE, n, batch, granted, T, shard), None)
        res.update(shard=shard[1], shares=val.flat(), layout_size=val.size, granted=granted)
    else:
        res.update(val.finish(be, val.flat(), n))
    res.update(_costs(session, t_off, t_on))
    return res


def aggregate_session(session, vid: bytes, entries, n: int, *, confusion: bool = False, auroc: bool = False,
                      thresholds: int = metrics.DEFAULT_THRESHOLDS, granted: int | None = None,
                      backend: Backend | None = None) -> SecureResult:
    """P1's side of the final step of a sharded validation: ``entries`` lists
    (shard index, token, this party's share vector) of every finished shard of
    validation ``vid`` (``n`` samples in all).  Each party sums its shares; the
    total is opened once (P0 then forgets the validation id)."""
    plan, _ = recv_architecture(session)
    C = n_classes(plan)
    flags = (FLAG_CONFUSION if confusion else 0) | (FLAG_AUROC if auroc else 0)
    if granted is not None:
        flags = granted & 0xFF & ~FLAG_SHARD
    T = thresholds if flags & FLAG_AUROC else 0
    got = _send_request(session, MODE_AGGREGATE, n, 1, flags, C, T, (vid, 0, bytes(16)))
    if got & 0xFF != flags:
        raise ProtocolError("nn.accept: the model owner grants other flags than the shards had")
    be = backend or Backend(session)
    val = _Validation(plan, got, T)
    for _, _, v in entries:
        if np.asarray(v).shape != (val.size,):
            raise ValueError("aggregate: a shard's shares do not fit this validation's layout")
    return _aggregate(session, be, val, Request(MODE_AGGREGATE, n, 1, got, T, (vid, 0, bytes(16))),
                      None, list(entries))
