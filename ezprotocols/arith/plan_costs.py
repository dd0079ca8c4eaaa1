"""Plan-level byte estimates of the linear layers of a network, OT against HE.

    python -m ezprotocols.costs --linear densenet121 [--batch 1] [--hw 224] [--weight-bits 18]

Each layer with the model owner's weights is costed from public shapes only, with the
same cost functions the protocols use to choose (so no protocol runs):

* OT (``linear="ot"``): the cheaper decomposition of :mod:`ezprotocols.arith.cross`
  (offline, IKNP at 16 bytes per OT) plus the online masked input (8 bytes per input
  element);
* HE (``linear="he"``): :func:`ezprotocols.arith.he.matmul_costs` /
  :func:`~ezprotocols.arith.he.conv2d_costs` / :func:`~ezprotocols.arith.he.scale_costs`
  (the product runs on the share, nothing else is sent), or OT where that is cheaper
  (what the ``"he"`` engine does);
* BatchNorm that cannot be folded (DenseNet's after every concatenation) is a per-channel
  scale known to the owner (:class:`~ezprotocols.arith.private.PrivateScale`).

The one-time key set-up of HE (one public key per direction, ~0.23 MB each) is not
included; neither are the non-linear layers.
"""
from __future__ import annotations

from . import he
from .conv import Conv2dGeom
from .cross import conv2d_costs as ot_conv2d_costs
from .cross import matmul_costs as ot_matmul_costs

__all__ = ["densenet121_layers", "lenet_layers", "layer_bytes", "plan_bytes", "NETWORKS"]


def densenet121_layers(batch: int = 1, hw: int = 224) -> list:
    """The linear layers of DenseNet-121 (Huang et al. 2017; torchvision's layout: growth 32,
    bottleneck 4x, blocks 6/12/24/16, compression 0.5): ``(kind, x_shape, w_shape, kwargs)``.
    BatchNorms before a concatenation's consumer are ``scale`` layers; the BatchNorm after
    each 1x1 bottleneck conv and after conv0 fold into that conv."""
    L = []
    h = (hw + 2 * 3 - 7) // 2 + 1
    L.append(("conv", (batch, 3, hw, hw), (64, 3, 7, 7), dict(stride=2, padding=3)))
    h = (h + 2 - 3) // 2 + 1                       # maxpool 3x3 s2 p1
    c = 64
    for bi, nl in enumerate((6, 12, 24, 16)):
        for _ in range(nl):
            L.append(("scale", (batch, c, h, h), (c,), {}))
            L.append(("conv", (batch, c, h, h), (128, c, 1, 1), {}))
            L.append(("conv", (batch, 128, h, h), (32, 128, 3, 3), dict(padding=1)))
            c += 32
        if bi < 3:
            L.append(("scale", (batch, c, h, h), (c,), {}))
            L.append(("conv", (batch, c, h, h), (c // 2, c, 1, 1), {}))
            c //= 2
            h //= 2                                 # avgpool 2x2
    L.append(("scale", (batch, c, h, h), (c,), {}))
    L.append(("linear", (batch, c), (c, 1000), {}))
    return L


def lenet_layers(batch: int = 64) -> list:
    """LeNet as in bench/reference/spu_ref.py (conv5x5 1->6, conv5x5 6->16, fc 256->100, fc 100->10)."""
    return [("conv", (batch, 1, 28, 28), (6, 1, 5, 5), {}), ("conv", (batch, 6, 12, 12), (16, 6, 5, 5), {}),
            ("linear", (batch, 256), (256, 100), {}), ("linear", (batch, 100), (100, 10), {})]


NETWORKS = {"densenet121": densenet121_layers, "lenet": lenet_layers}


def _numel(shape) -> int:
    n = 1
    for v in shape:
        n *= int(v)
    return n


def layer_bytes(kind: str, x_shape, w_shape, kw: dict, weight_bits: int = 18) -> dict:
    """``{"ot": bytes, "he": bytes, "he_option": "he" or the OT option}`` of one layer."""
    online = 8 * _numel(x_shape)
    if kind == "linear":
        M, k = x_shape
        n = w_shape[1]
        c = ot_matmul_costs(M, k, n, nbits_l=64, nbits_r=weight_bits)
        h = [v for v in he.matmul_costs(M, k, n, nbits_l=64, nbits_r=weight_bits).values() if v is not None]
    elif kind == "conv":
        g = Conv2dGeom.make(x_shape, w_shape, **kw)
        c = ot_conv2d_costs(g, nbits_x=64, nbits_k=weight_bits)
        h = [v for v in he.conv2d_costs(g, nbits=weight_bits).values() if v is not None]
    elif kind == "scale":
        C = x_shape[1]
        hw = _numel(x_shape[2:])
        g = Conv2dGeom.make((x_shape[0], C, hw, 1), (C, 1, 1, 1), groups=C)
        c = ot_conv2d_costs(g, nbits_x=64, nbits_k=weight_bits)
        h = [v for v in he.scale_costs(x_shape, nbits=weight_bits).values() if v is not None]
    else:
        raise ValueError(f"unknown layer kind {kind!r}")
    ot = min(c.values()) + online
    best_he = min(h) if h else None
    if best_he is not None and best_he <= ot:
        return {"ot": ot, "he": best_he, "he_option": "he"}
    return {"ot": ot, "he": ot, "he_option": "ot"}


def plan_bytes(layers, weight_bits: int = 18) -> dict:
    """Per-layer and total bytes of ``layers`` (from the functions above)."""
    rows = []
    for kind, xs, ws, kw in layers:
        r = layer_bytes(kind, xs, ws, kw, weight_bits)
        rows.append({"kind": kind, "x_shape": xs, "w_shape": ws, **r})
    tot_ot = sum(r["ot"] for r in rows)
    tot_he = sum(r["he"] for r in rows)
    by_kind = {}
    for r in rows:
        d = by_kind.setdefault(r["kind"], {"layers": 0, "ot": 0, "he": 0})
        d["layers"] += 1
        d["ot"] += r["ot"]
        d["he"] += r["he"]
    return {"layers": rows, "ot": tot_ot, "he": tot_he, "by_kind": by_kind}
