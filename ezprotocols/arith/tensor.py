"""``ArithTensor``: additive secret shares over Z_2^64 with a fixed-point scale.

Each party holds ``share`` (numpy ``uint64``); the value is ``share_0 + share_1
mod 2^64``, read as a signed integer and divided by ``2^scale`` (``scale`` = the
number of fractional bits; 0 for raw ring integers).  The session is attached,
so operators run the two-party protocols directly.

Local (no communication): shape ops (indexing, ``reshape``, ``transpose``,
broadcasting, ``sum``), ``+``/``-`` of tensors, and every operation with a
public constant (Python/numpy ints and floats, numpy arrays): P0 alone adds a
public constant; multiplying by one multiplies both shares.  Floats are encoded
at the session's ``frac_bits``; ints are exact integers (scale 0).

Interactive: ``x * y`` of two tensors (Beaver multiplication with elementwise
triples), ``x @ y`` (matrix triples, SecureML eprint 2017/396), ``conv2d`` with
a shared kernel (convolution triples), and truncation when it is not local.
Comparisons ``x > y``, ``x < y``, ``x >= y``, ``x <= y`` give XOR-shared bits
(:class:`~ezprotocols.protocols.BoolTensor`) through the session's comparison
engine (:func:`ezprotocols.protocols.compare`, one layer up).

Scales: ``x + y`` brings both to the larger scale (multiplying the other share
by a power of two, exact); a product has scale ``sa + sb`` and is truncated by
``min(sa, sb)`` (so fixed x fixed stays at ``f``, int x fixed needs no
truncation).

>>> from ezprotocols.runner import run_pair
>>> import numpy as np, ezprotocols
>>> def party(s):
...     x = s.input(np.array([1.5, -2.0]) if s.role == 0 else None, owner=0, shape=(2,))
...     y = s.input(np.array([4.0, 0.25]) if s.role == 1 else None, owner=1, shape=(2,))
...     return s.reveal(x * y + 1).tolist()
>>> run_pair(party, party)
([7.0, 0.5], [7.0, 0.5])
"""
from __future__ import annotations

import numbers

import numpy as np

from .._ext import ring
from .._ext.crypto import Prg
from ..errors import ProtocolError
from .conv import Conv2dGeom, avg_pool_sum_ring, conv2d_ring, pair
from .fixed import decode, encode, encode_int, is_float_like
from .trunc import truncate_shares

__all__ = ["ArithTensor", "share_input", "reveal", "from_public", "concatenate", "stack", "where_public"]

U64 = np.dtype(np.uint64)
MAX_NDIM = 16


def _is_public(x) -> bool:
    return isinstance(x, (numbers.Number, np.ndarray, np.generic, list, tuple)) and not isinstance(x, ArithTensor)


def _public_enc(x, scale_if_float: int):
    """(ring array, scale) of a public constant: floats at ``scale_if_float``, ints at 0."""
    if is_float_like(x):
        return encode(x, scale_if_float), scale_if_float
    return encode_int(x), 0


def _ring_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy-semantics matmul of uint64 arrays with the exact ring kernel."""
    a = np.asarray(a, dtype=U64)
    b = np.asarray(b, dtype=U64)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: scalar operands are not allowed (use *)")
    va, vb = a.ndim == 1, b.ndim == 1
    A = a[None, :] if va else a
    B = b[:, None] if vb else b
    if A.shape[-1] != B.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    if A.ndim == 2 and B.ndim == 2:
        out = ring.matmul(A, B)
    else:
        batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        Ab = np.broadcast_to(A, batch + A.shape[-2:])
        Bb = np.broadcast_to(B, batch + B.shape[-2:])
        out = np.empty(batch + (A.shape[-2], B.shape[-1]), dtype=U64)
        for idx in np.ndindex(*batch):
            ring.matmul(Ab[idx], Bb[idx], out=out[idx])
    if va:
        out = out[..., 0, :]
    if vb:
        out = out[..., 0]
    return out


class ArithTensor:
    """Additive shares over Z_2^64 of a fixed-point (or integer) tensor; see the module doc."""

    __slots__ = ("session", "share", "scale")
    __array_ufunc__ = None          # numpy defers to our reflected operators

    def __init__(self, session, share: np.ndarray, scale: int):
        share = np.asarray(share)
        if share.dtype != U64:
            raise TypeError(f"ArithTensor shares must be uint64, got {share.dtype}")
        if not 0 <= int(scale) <= 62:
            raise ValueError(f"scale must be in [0, 62], got {scale}")
        self.session = session
        self.share = share
        self.scale = int(scale)

    @classmethod
    def from_share(cls, session, share, scale: int = 0) -> "ArithTensor":
        """Wrap this party's share array (``uint64``; the peer must wrap its own share)."""
        return cls(session, np.asarray(share, dtype=U64, order="C"), scale)

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple:
        return self.share.shape

    @property
    def ndim(self) -> int:
        return self.share.ndim

    @property
    def size(self) -> int:
        return self.share.size

    def __len__(self):
        return len(self.share)

    @property
    def is_fixed(self) -> bool:
        return self.scale > 0

    def _new(self, share, scale=None) -> "ArithTensor":
        return ArithTensor(self.session, share, self.scale if scale is None else scale)

    def copy(self) -> "ArithTensor":
        return self._new(self.share.copy())

    def __repr__(self):
        kind = f"fixed f={self.scale}" if self.scale else "int"
        return f"<ArithTensor P{self.session.role} shape={self.shape} {kind}>"

    def __bool__(self):
        raise TypeError("the truth value of a secret-shared tensor is not available; reveal it first")

    def reveal(self, to=None, raw: bool = False):
        """Open to both parties (``to=None``) or to party ``to`` (the other gets None)."""
        return reveal(self.session, self, to=to, raw=raw)

    # ------------------------------------------------------------------ shape ops (local)
    def __getitem__(self, key) -> "ArithTensor":
        if isinstance(key, ArithTensor):
            raise TypeError("indexing with a secret-shared index is not supported")
        return self._new(self.share[key])

    def __setitem__(self, key, value) -> None:
        if isinstance(key, ArithTensor):
            raise TypeError("indexing with a secret-shared index is not supported")
        if isinstance(value, ArithTensor):
            self._check_peer(value)
            v = value.rescale(self.scale) if value.scale != self.scale else value
            if v.scale != self.scale:
                raise ValueError("cannot store a tensor of higher scale without truncation")
            self.share[key] = v.share
        else:
            if not self.scale and is_float_like(value):
                raise TypeError("cannot store floats into an integer tensor")
            enc = encode(value, self.scale) if self.scale else encode_int(value)
            tgt = self.share[key]
            enc = np.broadcast_to(enc, np.shape(tgt))
            r = self.session.shared_prg().random_uint64(np.shape(tgt))   # zero sharing: keeps shares uniform
            self.share[key] = (enc + r) if self.session.role == 0 else (-r).astype(U64)

    def reshape(self, *shape) -> "ArithTensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._new(self.share.reshape(shape))

    def flatten(self) -> "ArithTensor":
        return self._new(self.share.reshape(-1).copy())

    def ravel(self) -> "ArithTensor":
        return self._new(self.share.reshape(-1))

    def transpose(self, *axes) -> "ArithTensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return self._new(self.share.transpose(*axes) if axes else self.share.T)

    @property
    def T(self) -> "ArithTensor":
        return self.transpose()

    def swapaxes(self, a, b) -> "ArithTensor":
        return self._new(self.share.swapaxes(a, b))

    def squeeze(self, axis=None) -> "ArithTensor":
        return self._new(self.share.squeeze(axis))

    def expand_dims(self, axis) -> "ArithTensor":
        return self._new(np.expand_dims(self.share, axis))

    def broadcast_to(self, shape) -> "ArithTensor":
        return self._new(np.broadcast_to(self.share, tuple(shape)))

    def sum(self, axis=None, keepdims=False) -> "ArithTensor":
        return self._new(np.asarray(self.share.sum(axis=axis, keepdims=keepdims, dtype=U64)))

    def mean(self, axis=None, keepdims=False, method=None) -> "ArithTensor":
        n = self.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        if n == 0:
            raise ValueError("mean of an empty axis")
        return self.sum(axis=axis, keepdims=keepdims).mul(1.0 / n, method=method)

    def pad(self, pad_width) -> "ArithTensor":
        """Zero padding (``numpy.pad`` widths)."""
        return self._new(np.pad(self.share, pad_width))

    # ------------------------------------------------------------------ scale
    def rescale(self, scale: int, method=None) -> "ArithTensor":
        """The same value at another scale: up is exact (local), down truncates."""
        scale = int(scale)
        if scale == self.scale:
            return self
        if scale > self.scale:
            return self._new(self.share << np.uint64(scale - self.scale), scale)
        return self.truncate(self.scale - scale, method=method)

    def truncate(self, bits: int, method=None) -> "ArithTensor":
        """Divide by ``2^bits`` (the scale drops by ``bits``): ``local``, ``faithful``,
        ``onebit`` or ``exact`` (default: ``session.arith.trunc``); see
        :mod:`ezprotocols.arith.trunc`.  A ``local`` or ``onebit`` result carries a
        one-unit error correlated with the shares: do not open it (or a linear function
        of it) without further masking; truncate ``faithful`` before an opening."""
        bits = int(bits)
        if bits < 0 or bits > self.scale:
            raise ValueError(f"cannot truncate {bits} bits from a tensor at scale {self.scale}")
        if bits == 0:
            return self
        s = self.session
        return self._new(truncate_shares(s, self.share, bits, method), self.scale - bits)

    def _finish_product(self, share, sa, sb, method, truncate=True) -> "ArithTensor":
        cut = min(sa, sb) if truncate else 0
        if sa + sb - cut > 62:
            raise ValueError(f"product scale {sa + sb - cut} exceeds 62 bits")
        if cut:
            share = truncate_shares(self.session, share, cut, method)
        return ArithTensor(self.session, share, sa + sb - cut)

    # ------------------------------------------------------------------ arithmetic
    def _check_peer(self, other: "ArithTensor"):
        if other.session is not self.session:
            raise ValueError("tensors belong to different sessions")

    def _align(self, other: "ArithTensor"):
        s = max(self.scale, other.scale)
        return self.rescale(s), other.rescale(s)

    def __neg__(self) -> "ArithTensor":
        return self._new(-self.share)

    def __pos__(self):
        return self

    def add_ring(self, enc) -> "ArithTensor":
        """Add a public constant already encoded as ring elements at this tensor's scale
        (P0 adds it to its share; broadcasting as numpy)."""
        enc = np.asarray(enc, dtype=U64)
        shape = np.broadcast_shapes(self.shape, enc.shape)
        if self.session.role == 0:
            return self._new(self.share + enc)
        return self._new(np.broadcast_to(self.share, shape).copy() if shape != self.shape else self.share.copy())

    def _add_public(self, c, sign: int) -> "ArithTensor":
        x = self
        if is_float_like(c) and x.scale == 0:
            x = x.rescale(self.session.frac_bits)
        enc = encode(c, x.scale) if x.scale else encode_int(c)
        return x.add_ring(-enc if sign < 0 else enc)

    def __add__(self, other):
        if isinstance(other, ArithTensor):
            self._check_peer(other)
            a, b = self._align(other)
            return a._new(a.share + b.share)
        if _is_public(other):
            return self._add_public(other, +1)
        return NotImplemented

    def __radd__(self, other):
        return self.__add__(other)

    def __sub__(self, other):
        if isinstance(other, ArithTensor):
            self._check_peer(other)
            a, b = self._align(other)
            return a._new(a.share - b.share)
        if _is_public(other):
            return self._add_public(other, -1)
        return NotImplemented

    def __rsub__(self, other):
        if _is_public(other):
            return (-self)._add_public(other, +1)
        return NotImplemented

    def mul(self, other, method=None, truncate: bool = True) -> "ArithTensor":
        """Elementwise product; ``method`` chooses the truncation (see :meth:`truncate`);
        ``truncate=False`` keeps the product at scale ``sa + sb``."""
        if isinstance(other, ArithTensor):
            self._check_peer(other)
            share = beaver_mul(self.session, self.share, other.share)
            return self._finish_product(share, self.scale, other.scale, method, truncate)
        if _is_public(other):
            enc, sc = _public_enc(other, self.session.frac_bits)
            return self._finish_product(self.share * enc, self.scale, sc, method, truncate)
        raise TypeError(f"cannot multiply an ArithTensor by {type(other).__name__}")

    def mul_raw(self, other) -> "ArithTensor":
        """Elementwise product without truncation (scale ``sa + sb``)."""
        return self.mul(other, truncate=False)

    def __mul__(self, other):
        if not (isinstance(other, ArithTensor) or _is_public(other)):
            return NotImplemented
        return self.mul(other)

    def __rmul__(self, other):
        return self.__mul__(other)

    def __truediv__(self, other):
        if _is_public(other) and not isinstance(other, ArithTensor):
            return self.mul(1.0 / np.asarray(other, dtype=np.float64))
        return NotImplemented

    def matmul(self, other, method=None, truncate: bool = True) -> "ArithTensor":
        """``self @ other``: a shared operand uses matrix triples, a public one is local."""
        if isinstance(other, ArithTensor):
            self._check_peer(other)
            share = beaver_matmul(self.session, self.share, other.share)
            return self._finish_product(share, self.scale, other.scale, method, truncate)
        if _is_public(other):
            enc, sc = _public_enc(other, self.session.frac_bits)
            return self._finish_product(_ring_matmul(self.share, enc), self.scale, sc, method, truncate)
        raise TypeError(f"cannot matmul an ArithTensor with {type(other).__name__}")

    def matmul_raw(self, other) -> "ArithTensor":
        """``self @ other`` without truncation (scale ``sa + sb``)."""
        return self.matmul(other, truncate=False)

    def rmatmul_public(self, other, method=None, truncate: bool = True) -> "ArithTensor":
        enc, sc = _public_enc(other, self.session.frac_bits)
        return self._finish_product(_ring_matmul(enc, self.share), sc, self.scale, method, truncate)

    def __matmul__(self, other):
        if not (isinstance(other, ArithTensor) or _is_public(other)):
            return NotImplemented
        return self.matmul(other)

    def __rmatmul__(self, other):
        if _is_public(other):
            return self.rmatmul_public(other)
        return NotImplemented

    # ------------------------------------------------------------------ convolution / pooling
    def conv2d(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, method=None,
               truncate: bool = True) -> "ArithTensor":
        """2-D convolution (NCHW, cross-correlation) with a public (numpy) or shared kernel.
        ``bias`` (public or shared) is added before truncation, at the product's scale."""
        s = self.session
        if isinstance(weight, ArithTensor):
            self._check_peer(weight)
            geom = Conv2dGeom.make(self.shape, weight.shape, stride, padding, dilation, groups)
            share = beaver_conv2d(s, self.share, weight.share, geom)
            wscale = weight.scale
        else:
            w = np.asarray(weight)
            enc, wscale = _public_enc(w, s.frac_bits)
            geom = Conv2dGeom.make(self.shape, enc.shape, stride, padding, dilation, groups)
            share = conv2d_ring(self.share, enc, geom)
        out = ArithTensor(s, share, self.scale + wscale)
        if bias is not None:
            if isinstance(bias, ArithTensor):
                out = out + bias.rescale(out.scale).reshape(1, -1, 1, 1)
            else:
                b = np.asarray(bias)
                enc = encode(b, out.scale) if out.scale else encode_int(b)
                out = out.add_ring(enc.reshape(1, -1, 1, 1))
        if truncate:
            cut = min(self.scale, wscale)
            if cut:
                out = out.truncate(cut, method=method)
        return out

    def avg_pool2d(self, kernel, stride=None, padding=0, method=None) -> "ArithTensor":
        """Average pooling over windows (zero padding counts in the divisor, as ONNX's
        ``count_include_pad=1``); the division is a fixed-point multiplication by the
        public ``1/(kh*kw)``."""
        if self.ndim != 4:
            raise ValueError(f"avg_pool2d expects [N, C, H, W], got {self.shape}")
        kh, kw = pair(kernel, "kernel")
        stride = (kh, kw) if stride is None else stride
        sums, _ = avg_pool_sum_ring(self.share, (kh, kw), stride, padding)
        x = self._new(sums)
        if x.scale == 0:
            x = x.rescale(self.session.frac_bits)
        return x.mul(1.0 / (kh * kw), method=method)

    def sum_pool2d(self, kernel, stride=None, padding=0) -> "ArithTensor":
        """Window sums (local)."""
        kh, kw = pair(kernel, "kernel")
        stride = (kh, kw) if stride is None else stride
        sums, _ = avg_pool_sum_ring(self.share, (kh, kw), stride, padding)
        return self._new(sums)

    # -- comparisons: XOR-shared bits, exact in the fixed-point range (see protocols.comparison)
    def __gt__(self, other):
        from ..protocols.comparison import compare
        return compare(self, other)

    def __lt__(self, other):
        from ..protocols.comparison import compare
        return compare(other, self)

    def __ge__(self, other):
        from ..protocols.comparison import compare
        return ~compare(other, self)

    def __le__(self, other):
        from ..protocols.comparison import compare
        return ~compare(self, other)


# ---------------------------------------------------------------------- Beaver protocols

def _open(s, step: str, arrays):
    """Open several shared arrays in one exchange; returns the opened arrays."""
    flat = [np.ascontiguousarray(a, dtype=U64).reshape(-1) for a in arrays]
    mine = np.concatenate(flat) if len(flat) > 1 else flat[0]
    theirs = s.channel.exchange(step, mine)
    tot = mine + theirs
    out, pos = [], 0
    for a in arrays:
        out.append(tot[pos:pos + a.size].reshape(a.shape))
        pos += a.size
    return out


def beaver_mul(s, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shares of ``x * y`` (numpy broadcasting) with elementwise Beaver triples, or the product
    engine's direct shared x shared product (``s.linear.shared_mul``) when it has one, the triple
    source is not the dealer and no elementwise triple is in the pool."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    xb = np.broadcast_to(x, shape).reshape(-1)
    yb = np.broadcast_to(y, shape).reshape(-1)
    n = xb.shape[0]
    fn = getattr(s.linear, "shared_mul", None)
    if fn is not None and not s.triples.trusted_dealer and not s.triples.available()["mul"]:
        # the engine's direct product (no triple, no opening) unless triples were prepared
        return fn(xb, yb).reshape(shape)
    a, b, c = s.triples.mul(n)
    e, f = _open(s, "arith.mul.open", [xb - a, yb - b])
    z = c + e * b + f * a
    if s.role == 0:
        z += e * f
    return z.reshape(shape)


def beaver_matmul(s, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shares of ``x @ y`` with matrix triples (1-D and batched operands as numpy)."""
    vx, vy = x.ndim == 1, y.ndim == 1
    X = x[None, :] if vx else x
    Y = y[:, None] if vy else y
    if X.ndim < 2 or Y.ndim < 2 or X.shape[-1] != Y.shape[-2]:
        raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not align")
    batch = np.broadcast_shapes(X.shape[:-2], Y.shape[:-2])
    Xb = np.broadcast_to(X, batch + X.shape[-2:])
    Yb = np.broadcast_to(Y, batch + Y.shape[-2:])
    m, k = X.shape[-2:]
    n = Y.shape[-1]
    out = np.empty(batch + (m, n), dtype=U64)
    direct = _direct(s, "shared_matmul", "matmul", (m, k, n))
    for idx in np.ndindex(*batch) if batch else [()]:
        if direct is not None:
            out[idx] = direct(Xb[idx], Yb[idx])
            continue
        A, B, C = s.triples.matmul(m, k, n)
        E, F = _open(s, "arith.matmul.open", [Xb[idx] - A, Yb[idx] - B])
        Z = C + ring.matmul(E, B) + ring.matmul(A, F)
        if s.role == 0:
            Z += ring.matmul(E, F)
        out[idx] = Z
    if vx:
        out = out[..., 0, :]
    if vy:
        out = out[..., 0]
    return out


def _direct(s, method: str, kind: str, key):
    """The product engine's direct shared x shared product (cross terms of the actual shares,
    no triple, no opening: :class:`ezprotocols.arith.he.HeProducts`) when it has one, the
    triple source is not the dealer and no triple of this shape was prepared; else None."""
    fn = getattr(s.linear, method, None)
    if fn is None or s.triples.trusted_dealer or s.triples.available()[kind].get(key):
        return None
    return fn


def beaver_conv2d(s, x: np.ndarray, w: np.ndarray, geom: Conv2dGeom) -> np.ndarray:
    """Shares of ``conv2d(x, w)`` with a convolution triple (or the engine's direct product)."""
    direct = _direct(s, "shared_conv2d", "conv2d", geom.out_shape)
    if direct is not None:
        return direct(x, w, geom)
    A, B, C = s.triples.conv2d(geom)
    E, F = _open(s, "arith.conv2d.open", [x - A, w - B])
    colsE = geom.im2col(E)
    Z = C + geom.apply_cols(colsE, B) + conv2d_ring(A, F, geom)
    if s.role == 0:
        Z += geom.apply_cols(colsE, F)
    return Z


# ---------------------------------------------------------------------- input / reveal / public

_HDR = 4 + MAX_NDIM


def share_input(s, x, owner: int, shape=None, fixed: bool | None = None, raw: bool = False) -> ArithTensor:
    """``s.input(x, owner, shape=None, fixed=None, raw=False)``: share a value owned by ``owner``.

    The owner passes ``x``; the other party passes ``None`` and the ``shape``.
    ``fixed=None`` decides by dtype at the owner: floats become fixed point at
    ``s.frac_bits``, integers/bools raw ring elements (scale 0, two's complement);
    ``fixed=True`` encodes integers as fixed point too, ``fixed=False`` refuses floats;
    ``raw=True`` (same as ``fixed=False``) shares integer arrays as ring elements as they are.
    The owner sends a 16-byte seed from which the other party expands its share,
    with the scale and shape (checked, so mismatched calls fail here)."""
    if owner not in (0, 1):
        raise ValueError(f"input: owner must be 0 or 1, not {owner!r}")
    if raw:
        if fixed:
            raise ValueError("input: raw=True and fixed=True contradict each other")
        fixed = False
    step = "arith.input"
    if s.role == owner:
        if x is None:
            raise ValueError(f"{step}: P{owner} owns this input and must pass a value")
        if isinstance(x, ArithTensor):
            raise TypeError(f"{step}: already shared")
        arr = np.asarray(x)
        if shape is not None and tuple(shape) != arr.shape:
            raise ValueError(f"{step}: value has shape {arr.shape}, but shape={tuple(shape)} was given")
        if arr.ndim > MAX_NDIM:
            raise ValueError(f"{step}: at most {MAX_NDIM} dimensions")
        as_fixed = is_float_like(arr) if fixed is None else bool(fixed)
        if not as_fixed and is_float_like(arr):
            raise TypeError(f"{step}: fixed=False but the value is floating point")
        scale = s.frac_bits if as_fixed else 0
        enc = encode(arr, scale) if as_fixed else encode_int(arr)
        enc = np.broadcast_to(enc, arr.shape)
        seed = s.prg.random_bytes(16)
        peer = Prg(seed).random_uint64(arr.shape)
        hdr = np.zeros(_HDR, dtype=U64)
        hdr[:2] = np.frombuffer(seed, dtype=U64)
        hdr[2] = scale
        hdr[3] = arr.ndim
        hdr[4:4 + arr.ndim] = arr.shape
        s.channel.send(step, hdr)
        return ArithTensor(s, (enc - peer).astype(U64), scale)
    if x is not None:
        raise ValueError(f"{step}: P{s.role} does not own this input (owner={owner}); pass None and the shape")
    if shape is None:
        raise ValueError(f"{step}: the non-owner must pass the shape")
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(v) for v in shape)
    hdr = s.channel.recv_array(step, U64, (_HDR,))
    scale, ndim = int(hdr[2]), int(hdr[3])
    if ndim > MAX_NDIM:
        raise ProtocolError(f"{step}: peer announced {ndim} dimensions")
    their_shape = tuple(int(v) for v in hdr[4:4 + ndim])
    if their_shape != shape:
        raise ProtocolError(f"{step}: P{owner} shares a value of shape {their_shape}, this party expects {shape}")
    if scale > 62 or (scale not in (0, s.frac_bits)):
        raise ProtocolError(f"{step}: peer announced scale {scale} (expected 0 or {s.frac_bits})")
    if fixed is not None and (scale > 0) != bool(fixed):
        raise ProtocolError(f"{step}: P{owner} shares {'fixed point' if scale else 'integers'}, "
                            f"this party expects fixed={fixed}")
    share = Prg(hdr[:2].tobytes()).random_uint64(shape)
    return ArithTensor(s, share, scale)


def reveal(s, t: ArithTensor, to=None, raw: bool = False):
    """``s.reveal(t, to=None, raw=False)``: open ``t`` to both parties or to ``to``.

    Returns float64 for fixed-point tensors, int64 for integer tensors, the ``uint64``
    ring elements with ``raw=True``; ``None`` at the party that does not receive."""
    if not isinstance(t, ArithTensor):
        raise TypeError(f"reveal expects an ArithTensor, got {type(t).__name__}")
    if to not in (None, 0, 1):
        raise ValueError(f"reveal: to must be None, 0 or 1, not {to!r}")
    share = np.asarray(t.share, dtype=U64, order="C")
    step = "arith.reveal"
    if to is None:
        other = s.channel.exchange(step, share)
    elif to == s.role:
        other = s.channel.recv_array(step, U64, share.shape)
    else:
        s.channel.send(step, share)
        return None
    v = share + other
    if raw:
        return v
    return decode(v, t.scale)


def from_public(s, value, fixed: bool | None = None) -> ArithTensor:
    """A public value as a tensor, with shares re-randomised by a zero sharing from the
    shared PRG (no communication after the first coin toss)."""
    arr = np.asarray(value)
    as_fixed = is_float_like(arr) if fixed is None else bool(fixed)
    scale = s.frac_bits if as_fixed else 0
    enc = np.broadcast_to(encode(arr, scale) if as_fixed else encode_int(arr), arr.shape)
    r = s.shared_prg().random_uint64(arr.shape)
    return ArithTensor(s, (enc + r) if s.role == 0 else (-r).astype(U64), scale)


def concatenate(tensors, axis=0) -> ArithTensor:
    ts = list(tensors)
    if not ts:
        raise ValueError("concatenate: nothing to concatenate")
    sc = max(t.scale for t in ts)
    ts = [t.rescale(sc) for t in ts]
    return ArithTensor(ts[0].session, np.concatenate([t.share for t in ts], axis=axis), sc)


def stack(tensors, axis=0) -> ArithTensor:
    ts = list(tensors)
    if not ts:
        raise ValueError("stack: nothing to stack")
    sc = max(t.scale for t in ts)
    ts = [t.rescale(sc) for t in ts]
    return ArithTensor(ts[0].session, np.stack([t.share for t in ts], axis=axis), sc)


def where_public(cond, a: ArithTensor, b: ArithTensor) -> ArithTensor:
    """Select with a *public* condition (local)."""
    a, b = a._align(b)
    return a._new(np.where(np.asarray(cond, dtype=bool), a.share, b.share))
