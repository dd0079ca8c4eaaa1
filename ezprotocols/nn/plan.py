"""The plan: a model as a list of secure operations with static per-sample shapes.

A :class:`Plan` is what :func:`ezprotocols.nn.load_onnx` builds from an ONNX
graph and what the executors (plaintext and secure) run.  It is *batch
agnostic*: every activation has a leading batch axis that no op touches, and
every shape stored here is a per-sample shape (without that axis), so one plan
serves a query of one sample and a validation batch of 64.

Values are numbered: value 0 is the model input (owned by P1, the data owner);
op ``i`` produces value ``i + 1``.  Constants (weights, biases, BatchNorm
scales...) live in a separate table; they are owned by P0 (the model owner) and
only their shapes are public.

Architecture exchange: :meth:`Plan.architecture` is the weight-free description
P0 sends P1 (compact JSON, UTF-8); :func:`parse_architecture` is P1's strict
parser: bounded byte length, number of ops, ranks, dims and tensor sizes; only
known op kinds and attribute names, with checked types and ranges; every shape
recomputed from the attributes and compared with the declared one.  Nothing is
evaluated or unpickled.

Fixed-point semantics (shared by both executors, ``f`` = frac_bits)::

    matmul / conv    y = trunc_f(x @ W + b)      W at scale f, b at scale 2f
    mul_const        y = trunc_f(x * c)          c at scale f
    affine           y = trunc_f(x * s + t)      s at scale f, t at scale 2f
    affine_sign      y = x * s + t               s in {-1, 0, 1} (scale 0), t at scale f: exact
    add_const        y = x + c                   c at scale f
    mul              y = trunc_f(x * y)
    avgpool / gap    y = trunc_f(sum(window) * round(2^f / count))
    reduce (mean)    y = trunc_f(sum(axes) * round(2^f / count)); (sum) exact
    reduce_max, slice: exact
    add, sub, neg, relu, maxpool, pad (zeros), reshape, transpose, concat: exact

``trunc_f`` is the arithmetic shift right by ``f`` (floor); the secure
executor's truncation may differ from it by one unit in the last place.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ..arith.fixed import encode_signed
from ..arith.he import CONV_PACK_MODES
from ..errors import ProtocolError

__all__ = ["Op", "Plan", "OP_KINDS", "POST_KINDS", "infer_shape", "parse_architecture",
           "ARCH_FORMAT", "LIMITS", "pool_out_size"]

ARCH_FORMAT = "ezprotocols-plan/1"
#: fixed-point values (weights, inputs) stay below 2^BOUND_BITS in magnitude: headroom for truncation
BOUND_BITS = 62

#: Bounds P1 enforces on an architecture received from P0.
LIMITS = {
    "max_bytes": 1 << 20,        # JSON byte length
    "max_ops": 2048,
    "max_consts": 4096,
    "max_rank": 6,               # per-sample rank
    "max_dim": 1 << 16,
    "max_elems": 1 << 24,        # elements of one per-sample tensor or one constant
    "max_total_const_elems": 1 << 27,
    "max_kernel": 64,
    "max_inputs": 64,            # inputs of one concat
}

# kind -> (number of activation inputs (-1: variadic >= 1), const slots, optional const slots, attrs)
# attrs: name -> type spec: "int", "bool", ("ints", n) with n a fixed length or None (any length)
_SPEC = {
    "matmul": (1, ("w",), ("b",), {}),
    "conv": (1, ("w",), ("b",), {"strides": ("ints", 2), "pads": ("ints", 4),
                                 "dilations": ("ints", 2), "group": "int"}),
    "add": (2, (), (), {}),
    "sub": (2, (), (), {}),
    "mul": (2, (), (), {}),
    "neg": (1, (), (), {}),
    "add_const": (1, ("c",), (), {}),
    "mul_const": (1, ("c",), (), {}),
    "affine": (1, ("s", "t"), (), {}),
    # the sign part of a BatchNorm before a ReLU whose |scale| went into the next conv / matmul
    # (the ``fold_relu_scale`` pass of the ONNX import): integer signs, bias at scale f
    "affine_sign": (1, ("sg", "tf"), (), {}),
    "relu": (1, (), (), {}),
    "maxpool": (1, (), (), {"kernel": ("ints", 2), "strides": ("ints", 2), "pads": ("ints", 4),
                            "dilations": ("ints", 2), "ceil_mode": "bool"}),
    "avgpool": (1, (), (), {"kernel": ("ints", 2), "strides": ("ints", 2), "pads": ("ints", 4),
                            "ceil_mode": "bool", "count_include_pad": "bool"}),
    "gap": (1, (), (), {}),
    "reduce": (1, (), (), {"axes": ("ints", None), "keepdims": "bool", "mean": "bool"}),
    "reduce_max": (1, (), (), {"axes": ("ints", None), "keepdims": "bool"}),
    "slice": (1, (), (), {"starts": ("ints", None), "steps": ("ints", None), "sizes": ("ints", None)}),
    "reshape": (1, (), (), {"shape": ("ints", None)}),
    "pad": (1, (), (), {"pads": ("ints", None)}),
    "transpose": (1, (), (), {"perm": ("ints", None)}),
    "concat": (-1, (), (), {"axis": "int"}),
}
OP_KINDS = tuple(_SPEC)

#: What happens to the plan's last value (the logits): nothing, softmax/logsoftmax
#: along ``axis`` (of the full tensor, >= 1), argmax along ``axis``, the logistic
#: sigmoid (elementwise; ``axis`` is the class axis, the last one) or the sigmoid
#: normalised to sum one along ``axis`` (one-vs-rest classifiers).  All are
#: monotone along the class axis: the class is the argmax of the logits (with a
#: single sigmoid logit z, the class is [z > 0], i.e. the argmax of [0, z]).
POST_KINDS = ("logits", "softmax", "logsoftmax", "argmax", "sigmoid", "sigmoid_l1")

#: Bounds on the class labels a model may declare (sent to P1 with the architecture).
MAX_LABEL_CHARS = 256


@dataclass
class Op:
    kind: str
    inputs: list[int]                  # activation value ids
    consts: list[int]                  # constant ids, in the order of the kind's slots
    attrs: dict = field(default_factory=dict)
    shape: tuple = ()                  # per-sample output shape
    name: str = ""                     # ONNX node name (diagnostics only; not sent)

    def describe(self) -> dict:
        return {"op": self.kind, "in": list(self.inputs), "c": list(self.consts),
                "attrs": {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in self.attrs.items()},
                "shape": list(self.shape)}


@dataclass
class Plan:
    """A model as secure operations.  ``consts`` maps id -> array (P0's side: the
    weights, fixed-point int64 once :meth:`encode` ran, float64 before); on P1's
    side (from :func:`parse_architecture`) it is ``None`` and only
    ``const_shapes`` is known."""
    input_shape: tuple                      # per-sample
    ops: list[Op]
    const_shapes: list[tuple]
    consts: list | None = None
    frac_bits: int = 16
    post: str = "logits"
    post_axis: int = -1                     # axis (of the full tensor incl. batch) of softmax/argmax
    post_keepdims: bool = False
    input_name: str = "input"
    output_name: str = "output"
    encoded: bool = False
    act_bits: int = 64                      # public bound: activations fit in act_bits-bit two's complement
    class_labels: list | None = None        # public names of the classes (ints or strings), e.g. skl2onnx models
    input_bound: int | None = None          # public: |input| (fixed-point units) the owner checked the model on
    trunc: str = "local"                    # public: truncation of products, "local" or "faithful" (arith.trunc)
    stage_bytes: int | None = None          # public: garbled-stage budget per message run saved (None: default)
    conv_pack: str | None = None            # public: HE convolution packing mode (arith.he.CONV_PACK; None: default)

    # ------------------------------------------------------------------ shapes
    @property
    def output_shape(self) -> tuple:
        """Per-sample shape of the logits (the last op's output)."""
        return self.ops[-1].shape if self.ops else self.input_shape

    def value_shape(self, v: int) -> tuple:
        return self.input_shape if v == 0 else self.ops[v - 1].shape

    @property
    def class_axis(self) -> int:
        """Axis of the per-sample logits along which the class is chosen (>= 0)."""
        r = len(self.output_shape)
        if self.post != "logits":
            return self.post_axis - 1
        return r - 1

    @property
    def binary(self) -> bool:
        """A single sigmoid logit z per decision: the class is [z > 0] (argmax of [0, z])."""
        return self.post in ("sigmoid", "sigmoid_l1") and bool(self.output_shape) and \
            self.output_shape[self.class_axis] == 1

    @property
    def multilabel(self) -> bool:
        """A final sigmoid over K > 1 independent outputs (no declared class labels):
        K decisions per sample, each [z_k > 0] (p_k > 1/2), not one argmax."""
        return self.post == "sigmoid" and bool(self.output_shape) and \
            self.output_shape[self.class_axis] > 1 and self.class_labels is None

    @property
    def n_classes(self) -> int:
        """Number of classes of one decision (2 for a single sigmoid logit)."""
        if not self.output_shape:
            return 1
        return 2 if self.binary else self.output_shape[self.class_axis]

    def check(self) -> None:
        """Recompute every shape from the attributes; raise ValueError on any mismatch."""
        check_plan(self, ValueError)

    # ------------------------------------------------------------------ weights
    def encode(self) -> "Plan":
        """Convert float constants to fixed point (int64) at the scales of the
        module docstring; returns self."""
        if self.encoded:
            return self
        f = self.frac_bits
        scale = {}
        for op in self.ops:
            slots = _SPEC[op.kind][1] + _SPEC[op.kind][2]
            for slot, c in zip(slots, op.consts):
                s = 2 * f if slot in ("b", "t") else 0 if slot == "sg" else f
                if scale.setdefault(c, s) != s:
                    raise ValueError(f"constant {c} is used at two fixed-point scales")
        out = []
        for i, a in enumerate(self.consts):
            s = scale.get(i, f)
            out.append(encode_signed(a, s, bound_bits=BOUND_BITS, what=f"constant {i}"))
        self.consts = out
        self.encoded = True
        return self

    # ------------------------------------------------------------------ wire
    def architecture(self, allow_logits: bool = False) -> bytes:
        """The weight-free description P0 sends P1 (JSON, UTF-8)."""
        d = {"format": ARCH_FORMAT, "frac_bits": self.frac_bits, "act_bits": self.act_bits,
             "input": list(self.input_shape),
             "consts": [list(s) for s in self.const_shapes],
             "ops": [op.describe() for op in self.ops],
             "post": {"kind": self.post, "axis": self.post_axis, "keepdims": bool(self.post_keepdims)},
             "allow_logits": bool(allow_logits)}
        if self.class_labels is not None:
            d["labels"] = list(self.class_labels)
        if self.input_bound is not None:
            d["input_bound"] = int(self.input_bound)
        if self.trunc != "local":
            d["trunc"] = self.trunc
        if self.stage_bytes is not None:
            d["stage_bytes"] = int(self.stage_bytes)
        if self.conv_pack is not None:
            d["conv_pack"] = str(self.conv_pack)
        return json.dumps(d, separators=(",", ":"), allow_nan=False).encode("utf-8")

    def summary(self) -> str:
        lines = [f"input {self.input_shape} (P1)"]
        for i, op in enumerate(self.ops):
            a = ", ".join(f"{k}={v}" for k, v in op.attrs.items())
            cs = " ".join(f"c{c}{self.const_shapes[c]}" for c in op.consts)
            lines.append(f"v{i + 1} = {op.kind}({', '.join(f'v{j}' for j in op.inputs)}{' ' + cs if cs else ''}"
                         f"{'; ' + a if a else ''}) -> {op.shape}")
        lines.append(f"post: {self.post}" + (f" axis={self.post_axis}" if self.post != "logits" else ""))
        if self.class_labels is not None:
            lines.append(f"class labels: {self.class_labels}")
        return "\n".join(lines)


# ---------------------------------------------------------------------- geometry
def pool_out_size(n: int, k: int, s: int, pb: int, pe: int, d: int, ceil_mode: bool) -> int:
    """Output length of a window op (ONNX/PyTorch rule: with ceil_mode the last
    window must start inside the input or the left padding)."""
    eff = (k - 1) * d + 1
    span = n + pb + pe - eff
    if span < 0:
        return 0
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= n + pb:
            out -= 1
    else:
        out = span // s + 1
    return out


def _broadcast(a: tuple, b: tuple, what: str, err) -> tuple:
    if len(a) != len(b):
        raise err(f"{what}: ranks differ ({a} vs {b})")
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise err(f"{what}: shapes {a} and {b} do not broadcast")
    return tuple(out)


def infer_shape(kind: str, ins: list[tuple], cs: list[tuple], attrs: dict, err=ValueError) -> tuple:
    """Per-sample output shape of one op (raises ``err`` on inconsistent inputs)."""
    x = ins[0]
    if kind == "matmul":
        w = cs[0]
        if len(x) < 1 or len(w) != 2 or x[-1] != w[0]:
            raise err(f"matmul: input {x} and weight {w} do not match")
        if len(cs) > 1 and cs[1] != (w[1],):
            raise err(f"matmul: bias shape {cs[1]} is not ({w[1]},)")
        return x[:-1] + (w[1],)
    if kind == "conv":
        w = cs[0]
        g = attrs["group"]
        if len(x) != 3 or len(w) != 4:
            raise err(f"conv: input {x} and weight {w} must be CHW and OIHW")
        if g < 1 or x[0] % g or w[0] % g or w[1] * g != x[0]:
            raise err(f"conv: group {g} does not fit input channels {x[0]} and weight {w}")
        if len(cs) > 1 and cs[1] != (w[0],):
            raise err(f"conv: bias shape {cs[1]} is not ({w[0]},)")
        (sh, sw), (pt, pl, pb, pr), (dh, dw) = attrs["strides"], attrs["pads"], attrs["dilations"]
        oh = pool_out_size(x[1], w[2], sh, pt, pb, dh, False)
        ow = pool_out_size(x[2], w[3], sw, pl, pr, dw, False)
        if oh < 1 or ow < 1:
            raise err(f"conv: kernel {w[2:]} larger than the padded input {x}")
        return (w[0], oh, ow)
    if kind in ("add", "sub", "mul"):
        return _broadcast(ins[0], ins[1], kind, err)
    if kind in ("add_const", "mul_const"):
        return _broadcast(x, cs[0], kind, err)
    if kind in ("affine", "affine_sign"):
        s = _broadcast(x, cs[0], kind, err)
        return _broadcast(s, cs[1], kind, err)
    if kind in ("neg", "relu"):
        return x
    if kind in ("maxpool", "avgpool"):
        if len(x) != 3:
            raise err(f"{kind}: input {x} must be CHW")
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = attrs["kernel"], attrs["strides"], attrs["pads"]
        dh, dw = attrs.get("dilations", (1, 1))
        if max(pt, pb) >= (kh - 1) * dh + 1 or max(pl, pr) >= (kw - 1) * dw + 1:
            raise err(f"{kind}: padding {attrs['pads']} must be smaller than the window")
        oh = pool_out_size(x[1], kh, sh, pt, pb, dh, attrs["ceil_mode"])
        ow = pool_out_size(x[2], kw, sw, pl, pr, dw, attrs["ceil_mode"])
        if oh < 1 or ow < 1:
            raise err(f"{kind}: window larger than the padded input {x}")
        return (x[0], oh, ow)
    if kind == "gap":
        if len(x) < 2:
            raise err(f"gap: input {x} needs spatial axes")
        return (x[0],) + (1,) * (len(x) - 1)
    if kind == "slice":
        st, sp, sz = tuple(attrs["starts"]), tuple(attrs["steps"]), tuple(attrs["sizes"])
        if not len(st) == len(sp) == len(sz) == len(x):
            raise err(f"slice: starts/steps/sizes need {len(x)} entries")
        for d, a, b, c in zip(x, st, sp, sz):
            if not (0 <= a < d and b >= 1 and c >= 1 and a + (c - 1) * b < d):
                raise err(f"slice: start {a}, step {b}, size {c} out of range for a dimension of {d}")
        return sz
    if kind in ("reduce", "reduce_max"):
        axes = tuple(attrs["axes"])
        if not axes or len(set(axes)) != len(axes) or not all(1 <= a <= len(x) for a in axes):
            raise err(f"reduce: axes {axes} must be distinct axes in 1..{len(x)}")
        if attrs["keepdims"]:
            return tuple(1 if i + 1 in axes else d for i, d in enumerate(x))
        return tuple(d for i, d in enumerate(x) if i + 1 not in axes)
    if kind == "pad":
        p = tuple(attrs["pads"])
        if len(p) != 2 * len(x) or any(v < 0 for v in p):
            raise err(f"pad: {len(p)} non-negative pads for a per-sample rank {len(x)}")
        return tuple(d + p[i] + p[i + len(x)] for i, d in enumerate(x))
    if kind == "reshape":
        shp = tuple(attrs["shape"])
        if math.prod(shp) != math.prod(x):
            raise err(f"reshape: {x} has {math.prod(x)} elements, {shp} has {math.prod(shp)}")
        return shp
    if kind == "transpose":
        p = tuple(attrs["perm"])
        if sorted(p) != list(range(len(x) + 1)) or p[0] != 0:
            raise err(f"transpose: perm {p} must permute axes 1..{len(x)} and keep the batch axis 0")
        return tuple(x[i - 1] for i in p[1:])
    if kind == "concat":
        ax = attrs["axis"]
        if not 1 <= ax <= len(x):
            raise err(f"concat: axis {ax} out of range 1..{len(x)}")
        tot = 0
        for s in ins:
            if len(s) != len(x) or any(s[i] != x[i] for i in range(len(x)) if i != ax - 1):
                raise err(f"concat: shapes {ins} do not match off axis {ax}")
            tot += s[ax - 1]
        return x[:ax - 1] + (tot,) + x[ax:]
    raise err(f"unknown op kind {kind!r}")


def check_plan(plan: Plan, err) -> None:
    L = LIMITS
    if len(plan.ops) > L["max_ops"] or len(plan.const_shapes) > L["max_consts"]:
        raise err(f"more than {L['max_ops']} ops or {L['max_consts']} constants")
    _check_shape(plan.input_shape, "input", err)
    nconst = len(plan.const_shapes)
    for i, s in enumerate(plan.const_shapes):
        _check_shape(s, f"constant {i}", err)
    if sum(math.prod(s) for s in plan.const_shapes) > L["max_total_const_elems"]:
        raise err("constants: too many elements in total")
    used = [0] * nconst
    for i, op in enumerate(plan.ops):
        where = f"op {i} ({op.kind})"
        if op.kind not in _SPEC:
            raise err(f"{where}: unknown op kind")
        nin, cslots, cop, aspec = _SPEC[op.kind]
        if nin == -1:
            if not 1 <= len(op.inputs) <= L["max_inputs"]:
                raise err(f"{where}: 1..{L['max_inputs']} inputs expected")
        elif len(op.inputs) != nin:
            raise err(f"{where}: {nin} inputs expected, got {len(op.inputs)}")
        for v in op.inputs:
            if not 0 <= v <= i:
                raise err(f"{where}: input v{v} is not defined before this op")
        if not len(cslots) <= len(op.consts) <= len(cslots) + len(cop):
            raise err(f"{where}: {len(cslots)}..{len(cslots) + len(cop)} constants expected")
        for c in op.consts:
            if not 0 <= c < nconst:
                raise err(f"{where}: constant c{c} does not exist")
            used[c] += 1
        if set(op.attrs) != set(aspec):
            raise err(f"{where}: attributes {sorted(op.attrs)} (expected {sorted(aspec)})")
        for k, t in aspec.items():
            _check_attr(op.attrs[k], t, f"{where}.{k}", err)
        _check_attr_ranges(op, where, err)
        ins = [plan.value_shape(v) for v in op.inputs]
        cs = [plan.const_shapes[c] for c in op.consts]
        shp = infer_shape(op.kind, ins, cs, op.attrs, err=lambda m: err(f"{where}: {m}"))
        _check_shape(shp, where, err)
        if tuple(op.shape) != shp:
            raise err(f"{where}: declared shape {tuple(op.shape)}, computed {shp}")
    if any(u != 1 for u in used):
        raise err("every constant must be used by exactly one op")
    if plan.post not in POST_KINDS:
        raise err(f"post: unknown kind {plan.post!r}")
    if plan.post != "logits":
        r = len(plan.output_shape)
        if not 1 <= plan.post_axis <= r:
            raise err(f"post: axis {plan.post_axis} out of range 1..{r}")
        if plan.post in ("sigmoid", "sigmoid_l1") and plan.post_axis != r:
            raise err("post: the sigmoid's class axis must be the last one")
    if plan.class_labels is not None:
        _check_labels(plan.class_labels, plan.n_classes, err)


def _check_labels(labels, n, err) -> None:
    if not isinstance(labels, list) or len(labels) != n:
        raise err(f"labels: a list of {n} class labels expected")
    if all(type(v) is int for v in labels):
        if not all(-(1 << 63) <= v < (1 << 63) for v in labels):
            raise err("labels: integer labels must fit in int64")
    elif all(type(v) is str for v in labels):
        if not all(len(v) <= MAX_LABEL_CHARS for v in labels):
            raise err(f"labels: string labels are limited to {MAX_LABEL_CHARS} characters")
    else:
        raise err("labels: all ints or all strings expected")
    if len(set(labels)) != len(labels):
        raise err("labels: duplicate class labels")


def _check_shape(s, what, err) -> None:
    if not isinstance(s, tuple) or len(s) > LIMITS["max_rank"]:
        raise err(f"{what}: shape {s!r} must have rank <= {LIMITS['max_rank']}")
    for d in s:
        if type(d) is not int or not 1 <= d <= LIMITS["max_dim"]:
            raise err(f"{what}: dimension {d!r} out of range 1..{LIMITS['max_dim']}")
    if math.prod(s) > LIMITS["max_elems"]:
        raise err(f"{what}: {math.prod(s)} elements exceed {LIMITS['max_elems']}")


def _check_attr(v, t, what, err) -> None:
    if t == "int":
        if type(v) is not int or not -(1 << 31) <= v < (1 << 31):
            raise err(f"{what}: an int expected")
    elif t == "bool":
        if type(v) is not bool:
            raise err(f"{what}: a bool expected")
    else:
        n = t[1]
        if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n) or len(v) > 16:
            raise err(f"{what}: a list of {n or 'at most 16'} ints expected")
        for x in v:
            if type(x) is not int or not -(1 << 31) <= x < (1 << 31):
                raise err(f"{what}: a list of ints expected")


def _check_attr_ranges(op: Op, where, err) -> None:
    a = op.attrs
    K = LIMITS["max_kernel"]
    for k in ("strides", "dilations"):
        if k in a and not all(1 <= x <= K for x in a[k]):
            raise err(f"{where}: {k} must be in 1..{K}")
    if "kernel" in a and not all(1 <= x <= K for x in a["kernel"]):
        raise err(f"{where}: kernel must be in 1..{K}")
    if "pads" in a and (len(a["pads"]) > 2 * LIMITS["max_rank"] or not all(0 <= x <= K for x in a["pads"])):
        raise err(f"{where}: pads must be in 0..{K}")
    if "group" in a and not 1 <= a["group"] <= LIMITS["max_dim"]:
        raise err(f"{where}: group out of range")
    if "shape" in a and not 0 <= len(a["shape"]) <= LIMITS["max_rank"]:
        raise err(f"{where}: reshape rank out of range")
    for k in ("starts", "steps", "sizes"):
        if k in a and (len(a[k]) > LIMITS["max_rank"] or not all(0 <= v <= LIMITS["max_dim"] for v in a[k])):
            raise err(f"{where}: {k} out of range")
    if "axes" in a and not 1 <= len(a["axes"]) <= LIMITS["max_rank"]:
        raise err(f"{where}: axes length out of range")
    if "perm" in a and not 2 <= len(a["perm"]) <= LIMITS["max_rank"] + 1:
        raise err(f"{where}: perm length out of range")


# ---------------------------------------------------------------------- parsing (P1)
def _no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _reject_constant(name):
    raise ValueError(f"non-finite number {name}")


def parse_architecture(data: bytes, step: str = "nn.arch") -> tuple[Plan, bool]:
    """P1's strict parser of P0's architecture.  Returns ``(plan, allow_logits)``;
    the plan has no constants (``consts is None``).  Raises :class:`ProtocolError`
    naming ``step`` on anything malformed or out of bounds."""
    def err(msg):
        return ProtocolError(f"{step}: malformed architecture: {msg}")

    if not isinstance(data, (bytes, bytearray)) or len(data) > LIMITS["max_bytes"]:
        raise err(f"more than {LIMITS['max_bytes']} bytes")
    try:
        d = json.loads(bytes(data).decode("utf-8"), object_pairs_hook=_no_dupes,
                       parse_constant=_reject_constant, parse_float=_reject_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise err(f"not valid JSON ({e})") from None

    def need(obj, keys, what):
        if not isinstance(obj, dict) or set(obj) != set(keys):
            raise err(f"{what}: keys {sorted(obj) if isinstance(obj, dict) else type(obj).__name__} "
                      f"(expected {sorted(keys)})")

    def shape(v, what):
        if not isinstance(v, list) or len(v) > LIMITS["max_rank"] or any(type(x) is not int for x in v):
            raise err(f"{what}: a list of at most {LIMITS['max_rank']} ints expected")
        t = tuple(v)
        _check_shape(t, what, err)
        return t

    base = ("format", "frac_bits", "act_bits", "input", "consts", "ops", "post", "allow_logits")
    optional = tuple(k for k in ("labels", "input_bound", "trunc", "stage_bytes", "conv_pack") if isinstance(d, dict) and k in d)
    need(d, base + optional, "top level")
    if d["format"] != ARCH_FORMAT:
        raise err(f"format {d['format']!r} (expected {ARCH_FORMAT!r})")
    fb = d["frac_bits"]
    if type(fb) is not int or not 0 <= fb <= 30:
        raise err("frac_bits must be an int in 0..30")
    if type(d["allow_logits"]) is not bool:
        raise err("allow_logits must be a bool")
    ab = d["act_bits"]
    if type(ab) is not int or not fb + 2 <= ab <= 64:
        raise err(f"act_bits must be an int in {fb + 2}..64")
    inp = shape(d["input"], "input")
    if not isinstance(d["consts"], list) or len(d["consts"]) > LIMITS["max_consts"]:
        raise err(f"consts: a list of at most {LIMITS['max_consts']} shapes expected")
    cshapes = [shape(s, f"constant {i}") for i, s in enumerate(d["consts"])]
    if not isinstance(d["ops"], list) or not len(d["ops"]) <= LIMITS["max_ops"]:
        raise err(f"ops: a list of at most {LIMITS['max_ops']} ops expected")
    ops = []
    for i, o in enumerate(d["ops"]):
        need(o, ("op", "in", "c", "attrs", "shape"), f"op {i}")
        kind = o["op"]
        if not isinstance(kind, str) or kind not in _SPEC:
            raise err(f"op {i}: unknown op kind {str(kind)[:40]!r}")
        for k in ("in", "c"):
            if not isinstance(o[k], list) or len(o[k]) > LIMITS["max_inputs"] or \
                    any(type(x) is not int for x in o[k]):
                raise err(f"op {i}: {k!r} must be a list of ints")
        if not isinstance(o["attrs"], dict):
            raise err(f"op {i}: attrs must be an object")
        aspec = _SPEC[kind][3]
        if set(o["attrs"]) != set(aspec):
            raise err(f"op {i} ({kind}): attributes {sorted(o['attrs'])[:8]} (expected {sorted(aspec)})")
        attrs = {}
        for k, t in aspec.items():
            v = o["attrs"][k]
            _check_attr(v, t, f"op {i} ({kind}).{k}", err)
            attrs[k] = tuple(v) if isinstance(v, list) else v
        ops.append(Op(kind, list(o["in"]), list(o["c"]), attrs, shape(o["shape"], f"op {i} shape")))
    p = d["post"]
    need(p, ("kind", "axis", "keepdims"), "post")
    if p["kind"] not in POST_KINDS or type(p["axis"]) is not int or type(p["keepdims"]) is not bool:
        raise err("post: kind, axis or keepdims invalid")
    labels = d.get("labels")
    if "labels" in d and (not isinstance(labels, list) or len(labels) > LIMITS["max_dim"]):
        raise err("labels: a list of class labels expected")
    ib = d.get("input_bound")
    if "input_bound" in d and (type(ib) is not int or not 1 <= ib < 1 << 62):
        raise err("input_bound must be an int in 1..2^62")
    tr = d.get("trunc", "local")
    if tr not in ("local", "faithful"):
        raise err("trunc must be 'local' or 'faithful'")
    sb = d.get("stage_bytes")
    if "stage_bytes" in d and (type(sb) is not int or not 0 <= sb <= 1 << 40):
        raise err("stage_bytes must be an int in 0..2^40")
    cp = d.get("conv_pack")
    if "conv_pack" in d and cp not in CONV_PACK_MODES:
        raise err(f"conv_pack must be one of {', '.join(CONV_PACK_MODES)}")
    plan = Plan(input_shape=inp, ops=ops, const_shapes=cshapes, consts=None, frac_bits=fb, act_bits=ab,
                post=p["kind"], post_axis=p["axis"], post_keepdims=p["keepdims"], class_labels=labels,
                input_bound=ib, trunc=tr, stage_bytes=sb, conv_pack=cp)
    check_plan(plan, err)
    return plan, d["allow_logits"]


def _reject_float(s):
    raise ValueError(f"unexpected float {s[:20]}")
