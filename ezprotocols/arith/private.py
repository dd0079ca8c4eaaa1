"""Linear and convolution layers whose weights one party knows (inference: P0 holds
``W``, activations are shared).

Protocol (the MiniONN/SecureML-style offline/online split, eprint 2017/452 and
2017/396): for a shared input ``X = X_o + X_m`` (``o`` = the weight owner, ``m`` =
the other party)

* offline: ``m`` draws a random mask ``R`` shaped like ``X``; the parties obtain
  additive shares ``Z_o + Z_m = op(R, W)`` with OT (:mod:`ezprotocols.arith.cross`);
* online: ``m`` sends ``E = X_m - R`` (one message, ``|X|`` ring elements, one way);
  the owner outputs ``op(X_o + E, W) + Z_o`` (+ its private bias), ``m`` outputs ``Z_m``.
  Their sum is ``op(X, W)`` by linearity; ``E`` is uniformly random to the owner.

The OT step decomposes either the mask (64 OTs per mask entry, the weights'
rows as vector correlations) or the weights (fixed-point weights are small:
``weight_bits`` OTs per weight, offset to non-negative, the mask's rows as
vector correlations).  Both parties compute both costs from public shapes and
pick the fewer bytes; :meth:`PrivateLinear.costs` shows them.

``weight_bits`` is public: the bit length of the signed fixed-point weights
(``|W| * 2^f < 2^(weight_bits - 1)``).  Pass it on both sides, or leave it to the
owner, who then announces the smallest that fits (this reveals ``ceil(log2
max|W|)``, a coarse scale of the weights, like the fixed-point format itself).

With ``Session(..., triples="dealer")`` the masks come from the trusted dealer
(:mod:`ezprotocols.arith.dealer`, research comparisons only, insecure).
"""
from __future__ import annotations

from collections import defaultdict, deque

import numpy as np

from .._ext import ring
from ..errors import ProtocolError
from . import he
from .conv import Conv2dGeom, conv2d_ring
from .cross import conv2d_costs, cross_conv2d, cross_matmul, matmul_costs
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

    def _apply(self, x, geom):
        raise NotImplementedError

    def _costs(self, geom) -> dict:
        raise NotImplementedError

    def _cross(self, R, geom, which):
        raise NotImplementedError

    # ---- public API
    def _choose(self, c: dict) -> str:
        if self.decompose != "auto":
            if c.get(self.decompose) is None:
                raise ValueError(f"{self.kind}: decompose={self.decompose!r} is not feasible for this shape")
            return self.decompose
        return min((k for k in c if c[k] is not None), key=lambda k: c[k])

    def costs(self, x_shape) -> dict:
        """Bytes of the offline step for each method (OT decompositions ``mask``/``weights``,
        homomorphic ``he``; ``None``: not feasible), the choice, and the online bytes."""
        geom = self._geom(tuple(x_shape))
        c = self._costs(geom)
        return {"mask": c["mask"], "weights": c["weights"], "he": c.get("he"), "chosen": self._choose(c),
                "online": int(np.prod(geom_in_shape(geom), dtype=np.int64)) * 8,
                "weight_bits": self.weight_bits}

    def prepare(self, x_shape, count: int = 1) -> None:
        """Offline: masks for ``count`` future calls on inputs of shape ``x_shape``."""
        x_shape = tuple(int(v) for v in x_shape)
        geom = self._geom(x_shape)
        for _ in range(int(count)):
            self._pool[x_shape].append(self._make_mask(geom))
            self.prepared += 1

    def _make_mask(self, geom):
        s = self.s
        tr = s.triples
        with tr.phase():
            if tr.source == "dealer":
                apply = (lambda R: self._apply(R, geom)) if self.is_owner else None
                R, Z = tr.dealer().private_mask(self.owner, geom_in_shape(geom), geom_out_shape(geom), apply)
                tr.generated[f"private_{self.kind}"] += 1
                return R, Z
            R = None if self.is_owner else s.prg.random_uint64(geom_in_shape(geom))
            which = self._choose(self._costs(geom))
            Z = self._cross(R, geom, which)
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
        if not q and self.s.triples.source != "dealer" and self._choose(self._costs(geom)) == "he":
            # nothing prepared: the product runs on the non-owner's share itself (Cheetah):
            # one round trip, no masked-input message
            with s.phase(f"{self.kind}.he"):
                Z = self._cross(None if self.is_owner else xin, geom, "he")
            y = self._apply(xin, geom) + Z if self.is_owner else Z
            return self._finish(y, x, geom, method, truncate)
        R, Z = q.popleft() if q else self._make_mask(geom)
        step = f"arith.{self.kind}.open"
        if self.is_owner:
            E = s.channel.recv_array(step, U64, xin.shape)
            y = self._apply(xin + E, geom) + Z
        else:
            s.channel.send(step, xin - R)
            y = Z
        return self._finish(y, x, geom, method, truncate)

    def _finish(self, y, x, geom, method, truncate):
        s = self.s
        y = self._shape_out(y, x.shape, geom)
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


def geom_in_shape(geom):
    return geom.x_shape


def geom_out_shape(geom):
    return geom.out_shape


class PrivateLinear(_PrivateOp):
    """``y = x @ W (+ bias)`` with ``W[k, n]`` (and ``bias[n]``) known to ``owner`` only.

    ``x`` may have any leading dimensions (``[..., k]``).  The owner passes ``W`` (floats:
    fixed point at ``s.frac_bits``; ints: raw) and optionally ``bias`` (added before the
    truncation, at the product's scale); the other party passes ``shape=(k, n)``."""

    kind = "linear"

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

    def _apply(self, x, geom):
        return ring.matmul(x, self.W)

    def _costs(self, geom):
        (M, k), (_, n) = geom.x_shape, geom.out_shape
        c = matmul_costs(M, k, n, nbits_l=64, nbits_r=self.weight_bits, ot_bytes=self.s.arith.ot_bytes)
        h = he.matmul_costs(M, k, n, nbits_l=64, nbits_r=self.weight_bits)
        hb = [v for v in h.values() if v is not None]
        return {"mask": c["L"], "weights": c["R"], "he": min(hb) if hb else None}

    def _cross(self, R, geom, which):
        (M, k), (_, n) = geom.x_shape, geom.out_shape
        if which == "he":
            return he.cross_matmul(self.s, l_owner=1 - self.owner, m=M, k=k, n=n, L=R, R=self.W,
                                   nbits_l=64, nbits_r=self.weight_bits, step="arith.linear.he")
        if which == "mask":
            return cross_matmul(self.s, l_owner=1 - self.owner, m=M, k=k, n=n, L=R, R=self.W,
                                decompose="L", nbits=64, step="arith.linear.ole")
        return cross_matmul(self.s, l_owner=1 - self.owner, m=M, k=k, n=n, L=R, R=self.W,
                            decompose="R", nbits=self.weight_bits, signed=True, step="arith.linear.ole")


class PrivateConv2d(_PrivateOp):
    """``y = conv2d(x, W) (+ bias)`` with ``W[O, C/groups, KH, KW]`` known to ``owner`` only."""

    kind = "conv2d"

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

    def _apply(self, x, geom):
        return conv2d_ring(x, self.W, geom)

    def _bias_shape(self, enc):
        return enc.reshape(1, -1, 1, 1)

    def _costs(self, geom):
        c = conv2d_costs(geom, nbits_x=64, nbits_k=self.weight_bits, ot_bytes=self.s.arith.ot_bytes)
        return {"mask": c["X"], "weights": c["K"], "he": he.conv2d_costs(geom, nbits=self.weight_bits)["X"]}

    def _cross(self, R, geom, which):
        if which == "he":
            return he.cross_conv2d(self.s, x_owner=1 - self.owner, geom=geom, X=R, K=self.W,
                                   nbits=self.weight_bits, step="arith.conv2d.he")
        if which == "mask":
            return cross_conv2d(self.s, x_owner=1 - self.owner, geom=geom, X=R, K=self.W,
                                decompose="X", nbits=64, step="arith.conv2d.ole")
        return cross_conv2d(self.s, x_owner=1 - self.owner, geom=geom, X=R, K=self.W,
                            decompose="K", nbits=self.weight_bits, signed=True, step="arith.conv2d.ole")


class PrivateScale(_PrivateOp):
    """``y = x * W[c] (+ bias[c])`` per channel (axis 1 of ``x``: ``[N, C, ...]``) with the scale
    ``W[C]`` known to ``owner`` only: BatchNorm that cannot be folded into a preceding layer.

    The cross term is a block-diagonal homomorphic matmul (``decompose="he"``,
    :func:`ezprotocols.arith.he.cross_scale`, about 5x the input share in bytes when the
    channels are large) or a depthwise 1x1 convolution by OT (``"weights"``/``"mask"``); both
    costs are in :meth:`costs` and ``"auto"`` takes the fewer bytes."""

    kind = "scale"

    def __init__(self, s, W=None, *, shape=None, owner: int = 0, bias=None, weight_bits=None,
                 fixed=None, decompose: str = "auto"):
        super().__init__(s, W, shape, owner, bias, weight_bits, fixed, decompose)
        if len(self.w_shape) != 1:
            raise ValueError(f"scale: the scale must be 1-D [C], got {self.w_shape}")

    def _geom(self, x_shape):
        if len(x_shape) < 2 or x_shape[1] != self.w_shape[0]:
            raise ValueError(f"scale: input shape {x_shape} does not have {self.w_shape[0]} channels on axis 1")
        return _ScaleGeom(tuple(x_shape))

    def _shape_out(self, y, x_shape, geom):
        return y

    def _bshape(self, nd):
        return (1, -1) + (1,) * (nd - 2)

    def _apply(self, x, geom):
        return x * self.W.reshape(self._bshape(x.ndim))

    def _bias_shape(self, enc):
        return enc.reshape(self._bshape(len(self._last_nd)))

    def _conv_geom(self, geom):
        xs = geom.x_shape
        C = xs[1]
        hw = int(np.prod(xs[2:], dtype=np.int64)) if len(xs) > 2 else 1
        return Conv2dGeom.make((xs[0], C, hw, 1), (C, 1, 1, 1), groups=C)

    def _costs(self, geom):
        cg = self._conv_geom(geom)
        c = conv2d_costs(cg, nbits_x=64, nbits_k=self.weight_bits, ot_bytes=self.s.arith.ot_bytes)
        return {"mask": c["X"], "weights": c["K"], "he": he.scale_costs(geom.x_shape, nbits=self.weight_bits)["he"]}

    def _cross(self, R, geom, which):
        if which == "he":
            return he.cross_scale(self.s, x_owner=1 - self.owner, x_shape=geom.x_shape, X=R, gamma=self.W,
                                  nbits=self.weight_bits, step="arith.scale.he")
        cg = self._conv_geom(geom)
        Rc = None if R is None else R.reshape(cg.x_shape)
        Wc = None if self.W is None else self.W.reshape(cg.w_shape)
        if which == "mask":
            out = cross_conv2d(self.s, x_owner=1 - self.owner, geom=cg, X=Rc, K=Wc,
                               decompose="X", nbits=64, step="arith.scale.ole")
        else:
            out = cross_conv2d(self.s, x_owner=1 - self.owner, geom=cg, X=Rc, K=Wc,
                               decompose="K", nbits=self.weight_bits, signed=True, step="arith.scale.ole")
        return out.reshape(geom.x_shape)

    def __call__(self, x, method=None, truncate: bool = True):
        self._last_nd = x.shape
        return super().__call__(x, method=method, truncate=truncate)


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
