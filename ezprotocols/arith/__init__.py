"""Arithmetic secret sharing over Z_2^64: fixed point, Beaver triples from OT (no
third party), truncation, and linear/convolution layers.

Used through :class:`ezprotocols.Session`:

* ``s.input(x, owner, shape=None, fixed=None)`` -> :class:`ArithTensor`
* ``s.reveal(t, to=None, raw=False)`` -> float64 / int64 / uint64 array (or None)
* ``s.from_public(value)`` -> :class:`ArithTensor`
* engines ``s.triples`` (:class:`TripleEngine`: sources ``"ot"``/``"dealer"``, pools,
  ``prepare_*``), ``s.linear`` (:class:`~ezprotocols.arith.products.Products`: cross
  products, ``"ot"``) and ``s.arith`` (:class:`ArithContext`: default truncation method).

References: SecureML (Mohassel, Zhang, eprint 2017/396) for fixed point with
local truncation and OT-based (matrix) triples; Gilboa (CRYPTO 1999) for OT-based
multiplication; MiniONN (eprint 2017/452) for the offline/online linear layers;
CrypTFlow2/SiRnn (eprint 2020/1002) and Cheetah for the faithful truncation.
"""
from .context import ArithContext
from .conv import Conv2dGeom
from .fixed import decode, encode
from .private import PrivateConv2d, PrivateLinear, PrivateScale, conv2d_p0, conv2d_private, linear, linear_p0
from .products import OtProducts, Products
from .tensor import ArithTensor, concatenate, from_public, reveal, share_input, stack, where_public
from .triples import TripleEngine, TripleSource
from .trunc import trunc_faithful, trunc_local


def truncate(t: ArithTensor, bits: int, method=None) -> ArithTensor:
    """``t / 2^bits`` (the scale drops by ``bits``); see :meth:`ArithTensor.truncate`
    (a ``local``/``onebit`` result must not be opened without further masking).
    A tensor at scale 0 (raw ring integers, as the nn executor keeps them) is treated
    as having ``bits`` fractional bits to remove: the result is again at scale 0."""
    if t.scale >= bits:
        return t.truncate(bits, method=method)
    lifted = ArithTensor(t.session, t.share, bits + t.scale)
    return ArithTensor(t.session, lifted.truncate(bits, method=method).share, t.scale)


__all__ = [
    "ArithTensor", "ArithContext", "TripleEngine", "TripleSource", "Products", "OtProducts",
    "PrivateLinear", "PrivateConv2d", "PrivateScale", "Conv2dGeom",
    "linear", "conv2d_private", "linear_p0", "conv2d_p0", "truncate", "concatenate", "stack", "where_public", "from_public",
    "share_input", "reveal", "encode", "decode", "trunc_local", "trunc_faithful",
]
