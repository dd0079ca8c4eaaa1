"""Linear and convolution layers whose weights one party knows (inference: P0 holds
``W``, activations are shared).

Protocol (the MiniONN/SecureML-style offline/online split, eprint 2017/452 and
2017/396): for a shared input ``X = X_o + X_m`` (``o`` = the weight owner, ``m`` =
the other party)

* offline: ``m`` draws a random mask ``R`` shaped like ``X``; the parties obtain
  additive shares ``Z_o + Z_m = op(R, W)`` with the session's product engine
  (``s.linear``, :mod:`ezprotocols.arith.products`; OT by default);
* online: ``m`` sends ``E = X_m - R`` (one message, ``|X|`` ring elements, one way);
  the owner outputs ``op(X_o + E, W) + Z_o`` (+ its private bias), ``m`` outputs ``Z_m``.
  Their sum is ``op(X, W)`` by linearity; ``E`` is uniformly random to the owner.

With the default product engine (``linear="he"``, :mod:`ezprotocols.arith.he`) the
layer may also use homomorphic encryption (option ``"he"``, Cheetah, eprint 2022/207):
when it is the cheapest option and nothing was prepared for the call, the product runs
on the non-owner's share itself (one round trip, no masked-input message); prepared
masks use it like any other option.

With the OT products the offline step decomposes either the mask (64 OTs per
mask entry, the weights' rows as vector correlations) or the weights (fixed-point
weights are small: ``weight_bits`` OTs per weight, offset to non-negative, the
mask's rows as vector correlations).  Both parties compute both costs from public
shapes and pick the fewer bytes; :meth:`PrivateLinear.costs` shows them.

``weight_bits`` is public: the bit length of the signed fixed-point weights
(``|W| * 2^f < 2^(weight_bits - 1)``).  Pass it on both sides, or leave it to the
owner, who then announces the smallest that fits (this reveals ``ceil(log2
max|W|)``, a coarse scale of the weights, like the fixed-point format itself).

The masks come from the session's triple source
(:meth:`~ezprotocols.arith.triples.TripleSource.private_mask`): through ``s.linear``
by default; with ``Session(..., triples="dealer")`` from the trusted dealer
(:mod:`ezprotocols.arith.dealer`, research comparisons only, insecure).
"""
from __future__ import annotations

from collections import defaultdict, deque

import numpy as np

from .._ext import ring
from ..errors import ProtocolError
from .conv import Conv2dGeom, conv2d_ring
from .fixed import encode, encode_int, is_float_like, to_signed
from .tensor import ArithTensor

__all__ = ["PrivateLinear", "PrivateConv2d", "PrivateScale", "linear", "conv2d_private", "linear_p0", "conv2d_p0"]

U64 = np.uint64


def _bits_needed(enc: np.ndarray) -> int:
    """Smallest b with -2^(b-1) <= v < 2^(b-1) for all signed v (at least 2)."""
    if enc.size == 0:
        return 2
    v = to_signed(enc)
    lo, hi = int(v.min()), int(v.max())
    b = 2
    while not (-(1 << (b - 1)) <= lo and hi < (1 << (b - 1))):
        b += 1
    return min(b, 64)


class _PrivateOp:
    """Shared machinery: weights at the owner, announcement, mask pools, online step."""

    kind = "linear"
    #: the product engine's option names, as this layer calls them
    OPTION_NAMES: dict = {}

    def __init__(self, s, W, shape, owner: int, bias, weight_bits, fixed, decompose):
        if owner not in (0, 1):
            raise ValueError(f"owner must be 0 or 1, not {owner!r}")
        if decompose not in ("auto", "mask", "weights", "he"):
            raise ValueError("decompose must be 'auto', 'mask', 'weights' or 'he'")
        self.s = s
        self.owner = owner
        self.decompose = decompose
        self.is_owner = s.role == owner
        step = f"arith.{self.kind}.setup"
        if self.is_owner:
            if W is None:
                raise ValueError(f"{step}: P{owner} owns the weights and must pass them")
            Wa = np.asarray(W)
            if shape is not None and tuple(shape) != Wa.shape:
                raise ValueError(f"{step}: weights have shape {Wa.shape}, shape={tuple(shape)} given")
            as_fixed = is_float_like(Wa) if fixed is None else bool(fixed)
            self.w_scale = s.frac_bits if as_fixed else 0
            self.W = np.ascontiguousarray(encode(Wa, self.w_scale) if as_fixed else encode_int(Wa))
            self.w_shape = Wa.shape
            need = _bits_needed(self.W)
            if weight_bits is None:
                weight_bits = need
            elif int(weight_bits) < need:
                raise ValueError(f"{step}: the weights need {need} signed bits, weight_bits={weight_bits}")
            self.weight_bits = int(weight_bits)
            self.bias = None
            if bias is not None:
                b = np.asarray(bias)
                self.bias = b   # encoded at use (scale depends on the input's scale)
            hdr = np.zeros(4 + len(self.w_shape), dtype=U64)
            hdr[:4] = (self.w_scale, self.weight_bits, len(self.w_shape), 1 if bias is not None else 0)
            hdr[4:] = self.w_shape
            s.channel.send(step, hdr)
        else:
            if W is not None:
                raise ValueError(f"{step}: P{s.role} does not own the weights; pass None and the shape")
            if shape is None:
                raise ValueError(f"{step}: the non-owner must pass the weight shape")
            self.w_shape = tuple(int(v) for v in shape)
            hdr = s.channel.recv_array(step, U64, (4 + len(self.w_shape),))
            sc, wb, nd, hb = (int(v) for v in hdr[:4])
            if nd != len(self.w_shape) or tuple(int(v) for v in hdr[4:]) != self.w_shape:
                raise ProtocolError(f"{step}: P{owner} has weights of shape {tuple(int(v) for v in hdr[4:4 + nd])}, "
                                    f"this party expects {self.w_shape}")
            if sc not in (0, s.frac_bits) or not 2 <= wb <= 64:
                raise ProtocolError(f"{step}: invalid weight scale {sc} or weight_bits {wb}")
            if fixed is not None and (sc > 0) != bool(fixed):
                raise ProtocolError(f"{step}: weight scale {sc} does not match fixed={fixed}")
            if weight_bits is not None and int(weight_bits) != wb:
                raise ProtocolError(f"{step}: P{owner} uses weight_bits={wb}, this party {weight_bits}")
            self.w_scale, self.weight_bits, self.has_bias = sc, wb, bool(hb)
            self.W = None
            self.bias = None
        self._pool: dict = defaultdict(deque)
        self.prepared = 0

    # ---- to be provided by subclasses
    def _geom(self, x_shape):
        raise NotImplementedError

    def apply(self, x, geom):
        """The layer on ring elements ``x`` (owner only: needs the weights)."""
        raise NotImplementedError

    def _engine_costs(self, geom) -> dict:
        raise NotImplementedError

    def _engine_cross(self, R, geom, option):
        raise NotImplementedError

    # ---- the offline step through the product engine
    @staticmethod
    def in_shape(geom):
        return geom.x_shape

    @staticmethod
    def out_shape(geom):
        return geom.out_shape

    def _costs(self, geom) -> dict:
        c = {self.OPTION_NAMES.get(o, o): v["bytes"] for o, v in self._engine_costs(geom).items()}
        return dict(sorted(c.items(), key=lambda kv: kv[0] != "mask"))        # ties: the mask

    def _choice(self, geom) -> str:
        c = self._costs(geom)
        if self.decompose != "auto":
            if self.decompose not in c:
                raise ValueError(f"{self.kind}: option {self.decompose!r} is not offered by the product engine "
                                 f"{type(self.s.linear).__name__} for this shape (options: {sorted(c)})")
            return self.decompose
        return min(c, key=lambda k: c[k])

    def cross(self, R, geom):
        """This party's share of the layer applied to the non-owner's mask ``R`` (``None``
        at the owner), through ``s.linear`` with the cheapest (or the chosen) option."""
        which = self._choice(geom)
        option = {v: k for k, v in self.OPTION_NAMES.items()}.get(which, which)
        return self._engine_cross(R, geom, option)

    # ---- public API
    def costs(self, x_shape) -> dict:
        """Bytes of the offline step for each option of the product engine (OT: ``mask``,
        ``weights``; HE: ``he``, which runs online on the share when nothing is prepared),
        the choice, and the online bytes of the masked-input step."""
        geom = self._geom(tuple(x_shape))
        return {**self._costs(geom), "chosen": self._choice(geom),
                "online": int(np.prod(self.in_shape(geom), dtype=np.int64)) * 8,
                "weight_bits": self.weight_bits}

    def prepare(self, x_shape, count: int = 1) -> None:
        """Offline: masks for ``count`` future calls on inputs of shape ``x_shape``."""
        x_shape = tuple(int(v) for v in x_shape)
        geom = self._geom(x_shape)
        for _ in range(int(count)):
            self._pool[x_shape].append(self._make_mask(geom))
            self.prepared += 1

    def _make_mask(self, geom):
        tr = self.s.triples
        with tr.phase():
            R, Z = tr.impl.private_mask(self, geom)
            tr.generated[f"private_{self.kind}"] += 1
            return R, Z

    def __call__(self, x: ArithTensor, method=None, truncate: bool = True) -> ArithTensor:
        if not isinstance(x, ArithTensor):
            raise TypeError(f"{self.kind}: the input must be an ArithTensor")
        if x.session is not self.s:
            raise ValueError(f"{self.kind}: tensor of another session")
        s = self.s
        x_shape = x.shape
        geom = self._geom(x_shape)
        q = self._pool.get(x_shape)
        xin = np.ascontiguousarray(self._flat_in(x.share, geom))
        if not q and not s.triples.impl.trusted_dealer and self._choice(geom) == "he":
            # nothing prepared and the homomorphic product is the cheapest: it runs on the
            # non-owner's share itself (Cheetah), one round trip, no masked-input message
            with s.phase(f"{self.kind}.he"):
                Z = self._engine_cross(None if self.is_owner else xin, geom, "he")
            y = self.apply(xin, geom) + Z if self.is_owner else Z
        else:
            R, Z = q.popleft() if q else self._make_mask(geom)
            step = f"arith.{self.kind}.open"
            if self.is_owner:
                E = s.channel.recv_array(step, U64, xin.shape)
                y = self.apply(xin + E, geom) + Z
            else:
                s.channel.send(step, xin - R)
                y = Z
        y = self._shape_out(y, x_shape, geom)
        out = ArithTensor(s, y, x.scale + self.w_scale)
        if self.is_owner and self.bias is not None:
            b = np.asarray(self.bias)
            enc = encode(b, out.scale) if out.scale else encode_int(b)
            out = ArithTensor(s, out.share + self._bias_shape(enc), out.scale)
        if truncate:
            cut = min(x.scale, self.w_scale)
            if cut:
                out = out.truncate(cut, method=method)
        return out

    def _flat_in(self, share, geom):
        return share

    def _bias_shape(self, enc):
        return enc


class _LinGeom:
    """Shapes of a linear layer on a flattened input: ``[M, k] @ [k, n]``."""

    __slots__ = ("x_shape", "out_shape")

    def __init__(self, M, k, n):
        self.x_shape = (M, k)
        self.out_shape = (M, n)


class PrivateLinear(_PrivateOp):
    """``y = x @ W (+ bias)`` with ``W[k, n]`` (and ``bias[n]``) known to ``owner`` only.

    ``x`` may have any leading dimensions (``[..., k]``).  The owner passes ``W`` (floats:
    fixed point at ``s.frac_bits``; ints: raw) and optionally ``bias`` (added before the
    truncation, at the product's scale); the other party passes ``shape=(k, n)``."""

    kind = "linear"
    OPTION_NAMES = {"L": "mask", "R": "weights"}

    def __init__(self, s, W=None, *, shape=None, owner: int = 0, bias=None, weight_bits=None,
                 fixed=None, decompose: str = "auto"):
        super().__init__(s, W, shape, owner, bias, weight_bits, fixed, decompose)
        if len(self.w_shape) != 2:
            raise ValueError(f"linear: weights must be 2-D [k, n], got {self.w_shape}")

    def _geom(self, x_shape):
        k, n = self.w_shape
        if not x_shape or x_shape[-1] != k:
            raise ValueError(f"linear: input shape {x_shape} does not end with {k}")
        M = int(np.prod(x_shape[:-1], dtype=np.int64))
        return _LinGeom(M, k, n)

    def _flat_in(self, share, geom):
        return share.reshape(geom.x_shape)

    def _shape_out(self, y, x_shape, geom):
        return y.reshape(tuple(x_shape[:-1]) + (self.w_shape[1],))

    def apply(self, x, geom):
        return ring.matmul(x, self.W)

    def _engine_costs(self, geom):
        (M, k), (_, n) = geom.x_shape, geom.out_shape
        return self.s.linear.matmul_costs(M, k, n, nbits_l=64, nbits_r=self.weight_bits, l_owner=1 - self.owner)

    def _engine_cross(self, R, geom, option):
        (M, k), (_, n) = geom.x_shape, geom.out_shape
        return self.s.linear.cross_matmul(l_owner=1 - self.owner, m=M, k=k, n=n, L=R, R=self.W, nbits_l=64,
                                          nbits_r=self.weight_bits, decompose=option, step="arith.linear.ole")


class PrivateConv2d(_PrivateOp):
    """``y = conv2d(x, W) (+ bias)`` with ``W[O, C/groups, KH, KW]`` known to ``owner`` only."""

    kind = "conv2d"
    OPTION_NAMES = {"X": "mask", "K": "weights"}

    def __init__(self, s, W=None, *, shape=None, owner: int = 0, bias=None, stride=1, padding=0,
                 dilation=1, groups=1, weight_bits=None, fixed=None, decompose: str = "auto"):
        super().__init__(s, W, shape, owner, bias, weight_bits, fixed, decompose)
        if len(self.w_shape) != 4:
            raise ValueError(f"conv2d: weights must be [O, C/groups, KH, KW], got {self.w_shape}")
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def _geom(self, x_shape):
        return Conv2dGeom.make(x_shape, self.w_shape, self.stride, self.padding, self.dilation, self.groups)

    def _shape_out(self, y, x_shape, geom):
        return y

    def apply(self, x, geom):
        return conv2d_ring(x, self.W, geom)

    def _bias_shape(self, enc):
        return enc.reshape(1, -1, 1, 1)

    def _engine_costs(self, geom):
        return self.s.linear.conv2d_costs(geom, nbits_x=64, nbits_k=self.weight_bits, x_owner=1 - self.owner)

    def _engine_cross(self, R, geom, option):
        return self.s.linear.cross_conv2d(x_owner=1 - self.owner, geom=geom, X=R, K=self.W, nbits_x=64,
                                          nbits_k=self.weight_bits, decompose=option, step="arith.conv2d.ole")


class PrivateScale(_PrivateOp):
    """``y = x * W[c] (+ bias[c])`` per channel (axis 1 of ``x``: ``[N, C, ...]``) with the scale
    ``W[C]`` known to ``owner`` only: BatchNorm that cannot be folded into a preceding layer.

    Options: ``"he"`` when the session's product engine offers per-channel scales
    (:meth:`ezprotocols.arith.he.HeProducts.scale_costs`: a block-diagonal homomorphic
    matmul, a few times the input share in bytes when the channels are large), else a
    depthwise 1x1 convolution through ``s.linear`` (``"mask"``/``"weights"``); ``"auto"``
    takes the fewest bytes (:meth:`costs` shows all)."""

    kind = "scale"
    OPTION_NAMES = {"X": "mask", "K": "weights"}

    def __init__(self, s, W=None, *, shape=None, owner: int = 0, bias=None, weight_bits=None,
                 fixed=None, decompose: str = "auto"):
        super().__init__(s, W, shape, owner, bias, weight_bits, fixed, decompose)
        if len(self.w_shape) != 1:
            raise ValueError(f"scale: the scale must be 1-D [C], got {self.w_shape}")
        self._nd = 2

    def _geom(self, x_shape):
        if len(x_shape) < 2 or x_shape[1] != self.w_shape[0]:
            raise ValueError(f"scale: input shape {x_shape} does not have {self.w_shape[0]} channels on axis 1")
        self._nd = len(x_shape)
        return _ScaleGeom(tuple(x_shape))

    def _shape_out(self, y, x_shape, geom):
        return y

    def apply(self, x, geom):
        return x * self.W.reshape((1, -1) + (1,) * (x.ndim - 2))

    def _bias_shape(self, enc):
        return enc.reshape((1, -1) + (1,) * (self._nd - 2))

    @staticmethod
    def _conv_geom(geom):
        xs = geom.x_shape
        hw = int(np.prod(xs[2:], dtype=np.int64)) if len(xs) > 2 else 1
        return Conv2dGeom.make((xs[0], xs[1], hw, 1), (xs[1], 1, 1, 1), groups=xs[1])

    def _engine_costs(self, geom):
        lin = self.s.linear
        c = {o: v for o, v in lin.conv2d_costs(self._conv_geom(geom), nbits_x=64, nbits_k=self.weight_bits,
                                               x_owner=1 - self.owner).items()
             if o in self.OPTION_NAMES}
        if hasattr(lin, "scale_costs"):
            c.update(lin.scale_costs(geom.x_shape, nbits=self.weight_bits))
        return c

    def _engine_cross(self, R, geom, option):
        lin = self.s.linear
        if option == "he":
            return lin.cross_scale(x_owner=1 - self.owner, x_shape=geom.x_shape, X=R, gamma=self.W,
                                   nbits=self.weight_bits, step="arith.scale.he")
        cg = self._conv_geom(geom)
        out = lin.cross_conv2d(x_owner=1 - self.owner, geom=cg, X=None if R is None else R.reshape(cg.x_shape),
                               K=None if self.W is None else self.W.reshape(cg.w_shape), nbits_x=64,
                               nbits_k=self.weight_bits, decompose=option, step="arith.scale.ole")
        return out.reshape(geom.x_shape)


class _ScaleGeom:
    __slots__ = ("x_shape", "out_shape")

    def __init__(self, x_shape):
        self.x_shape = x_shape
        self.out_shape = x_shape


def linear(x: ArithTensor, W=None, *, shape=None, owner: int = 0, bias=None, weight_bits=None,
           method=None, truncate: bool = True) -> ArithTensor:
    """One-shot :class:`PrivateLinear` (setup, mask and online step in one call)."""
    layer = PrivateLinear(x.session, W, shape=shape, owner=owner, bias=bias, weight_bits=weight_bits)
    return layer(x, method=method, truncate=truncate)


def conv2d_private(x: ArithTensor, W=None, *, shape=None, owner: int = 0, bias=None, stride=1, padding=0,
                   dilation=1, groups=1, weight_bits=None, method=None, truncate: bool = True) -> ArithTensor:
    """One-shot :class:`PrivateConv2d`."""
    layer = PrivateConv2d(x.session, W, shape=shape, owner=owner, bias=bias, stride=stride, padding=padding,
                          dilation=dilation, groups=groups, weight_bits=weight_bits)
    return layer(x, method=method, truncate=truncate)


def linear_p0(x: ArithTensor, W=None, *, wshape=None, owner: int = 0) -> ArithTensor:
    """``x @ W`` with ``W`` known to ``owner`` (default P0), untruncated (scale of ``x`` plus
    that of ``W``; integer ``W`` is taken as raw ring elements).  The other party passes
    ``W=None`` and ``wshape``."""
    return linear(x, W, shape=wshape, owner=owner, truncate=False)


def conv2d_p0(x: ArithTensor, W=None, *, wshape=None, stride=1, padding=0, dilation=1, groups=1,
              owner: int = 0) -> ArithTensor:
    """``conv2d(x, W)`` with ``W`` known to ``owner``, untruncated (see :func:`linear_p0`)."""
    return conv2d_private(x, W, shape=wshape, owner=owner, stride=stride, padding=padding,
                          dilation=dilation, groups=groups, truncate=False)
