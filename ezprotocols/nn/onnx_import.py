"""ONNX front end (P0's side): ``load_onnx(path)`` checks a model and builds a :class:`Plan`.

Steps: ``onnx.checker``; opset range; one float input (the data owner's), whose
shape is static except the batch axis; choice of the output (below); a scan of
the nodes that output depends on for op types that are not supported at all (so
``unsupported ONNX op LSTM at node /l/LSTM`` names the LSTM, not the Transpose an
exporter puts before it); ONNX shape inference with a fixed batch size,
cross-checked against the plan's own shapes; constant folding of constant-only
subgraphs (``Constant`` nodes, ``Shape`` of an activation, weight transposes...)
at the model's own opset; translation of each node into plan ops;
BatchNormalization folded into the preceding Conv/Gemm/MatMul (kept as an
``affine`` op otherwise), biases and per-channel scales folded likewise, a
per-feature scaling folded into the following MatMul; the weights finally
converted to fixed point.

Any op outside the supported set fails before any protocol starts with
:class:`UnsupportedOp`: ``unsupported ONNX op X at node Y`` (plus the reason when
the op is known but the variant is not, e.g. a Gemm whose right operand is an
activation, or a Softmax that is not the last op).

Supported: Gemm, MatMul, Conv (1-D, 2-D; pads, strides, dilations, group,
auto_pad), Add, Sub, Mul (activations or constants), Div by a constant, Relu,
MaxPool, AveragePool, GlobalAveragePool, ReduceMean / ReduceSum (not over the
batch axis), BatchNormalization, Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, Identity, Dropout, Cast (float to float),
Pad (constant zeros), Clip (two ReLUs), LeakyRelu and PRelu (one ReLU), Slice
(constant bounds, not on the batch axis), ReduceMax and GlobalMaxPool,
Softmax / LogSoftmax / Sigmoid / ArgMax as the last op (monotone: evaluated as an
argmax when only the class is revealed; a single sigmoid logit z is the binary
decision [z > 0]), any op on constants only, and from ``ai.onnx.ml`` (scikit-learn
models converted by skl2onnx): LinearClassifier (post_transform NONE, LOGISTIC,
SOFTMAX), LinearRegressor, Scaler, Normalizer (L1, of softmax or sigmoid
outputs), ZipMap (stands for its probability tensor) and the class-label outputs
``classes[ArgMax(scores)]`` (ArrayFeatureExtractor; the labels travel with the
architecture).

Output choice (``output=`` / CLI ``--output-name`` overrides it): a ZipMap output
stands for its input tensor (the probabilities) and a class-label output for its
score tensor; the plan computes the only floating-point output (for an skl2onnx
classifier: the probabilities, next to the label), or, without one, the score
tensor of the only class label or the only output; the class labels (when the
model declares them) are attached if they are the argmax of the same logits.
Several floating-point outputs need ``output=``.
"""
from __future__ import annotations

import math
import os

import numpy as np
import onnx
from onnx import numpy_helper

from .plan import Op, Plan, infer_shape

__all__ = ["load_onnx", "OnnxImportError", "UnsupportedOp", "MIN_OPSET"]

MIN_OPSET = 6
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}


class OnnxImportError(ValueError):
    """The model cannot be used (malformed, wrong input, shapes, opset...)."""


class UnsupportedOp(OnnxImportError):
    """``unsupported ONNX op X at node Y``: the model uses an op (or a variant of an
    op) the secure executor does not implement."""

    def __init__(self, op_type: str, node: str, reason: str = ""):
        self.op_type = op_type
        self.node = node
        self.reason = reason
        super().__init__(f"unsupported ONNX op {op_type} at node {node}" + (f": {reason}" if reason else ""))


class _Act:
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v


class _Post:
    """A final, monotone op (softmax, logsoftmax, sigmoid, argmax...) of the
    activation ``src``: evaluated as an argmax when only the class is revealed,
    in the clear by P1 on revealed logits otherwise.  ``op_type``/``node``: the
    ONNX node it came from (for error messages)."""
    __slots__ = ("kind", "src", "axis", "keepdims", "op_type", "node")

    def __init__(self, kind, src, axis, keepdims=False, op_type="", node=""):
        self.kind, self.src, self.axis, self.keepdims = kind, src, axis, keepdims
        self.op_type, self.node = op_type, node


#: post kinds whose argmax along their axis is the argmax of the logits
_MONOTONE = ("softmax", "logsoftmax", "sigmoid", "sigmoid_l1")
#: ops (default domain) that only pass a value through
_PASS = ("Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten")


def load_onnx(path, *, frac_bits: int = 16, batch: int | None = None, output: str | None = None,
              encode: bool = True, act_bits: int = 64) -> Plan:
    """Load an ONNX model (file path, bytes or ``ModelProto``) into a :class:`Plan`.

    ``frac_bits``: fixed-point fractional bits (the session's).  ``batch``: batch
    size for ONNX shape inference when the model's batch axis is symbolic
    (default 1; the plan itself works for any batch size).  ``output``: name of
    the graph output to compute when the model has several (default: the only
    floating-point one; see the module docstring for ZipMap and class-label
    outputs).  ``encode=False`` keeps float weights (for inspection and
    :func:`~ezprotocols.nn.run_float`).  Errors: FileNotFoundError, and
    OnnxImportError (UnsupportedOp) for anything else, including a file that is
    not an ONNX model.
    ``act_bits``: a public bound (two's-complement bits of the fixed-point
    activations that reach a comparison: ReLU, max-pool, argmax); 64 is always
    exact, fewer make the garbled comparisons cheaper but are only correct if every
    activation fits (check it on sample data with :func:`run_plaintext`, which
    raises OverflowError otherwise).
    """
    if isinstance(act_bits, bool) or not isinstance(act_bits, int) or not frac_bits + 2 <= act_bits <= 64:
        raise ValueError(f"act_bits must be an int in {frac_bits + 2}..64")
    if isinstance(path, onnx.ModelProto):
        model = path
    else:
        if not isinstance(path, (bytes, bytearray)) and not os.path.exists(path):
            raise FileNotFoundError(f"model file not found: {path}")
        try:
            model = onnx.load_from_string(bytes(path)) if isinstance(path, (bytes, bytearray)) else onnx.load(path)
        except Exception as e:             # protobuf DecodeError, a directory, missing external data...
            raise OnnxImportError(f"not a readable ONNX model: {type(e).__name__}: {e}") from None
    plan = _Importer(model, frac_bits, batch, output).run(encode)
    plan.act_bits = act_bits
    return plan


def _tensor_type(v: np.ndarray) -> int:
    if v.dtype.kind in "OUS":
        return onnx.TensorProto.STRING
    return onnx.helper.np_dtype_to_tensor_dtype(v.dtype)


def _legacy_fold(node, opset, ins):
    """Ops whose older versions the onnx reference evaluator does not implement
    (it runs the latest semantics): evaluated here.  Returns the outputs or None."""
    if node.domain not in ("", "ai.onnx"):
        return None
    op = node.op_type
    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
    if op in ("Softmax", "LogSoftmax", "Hardmax") and opset < 13:
        x = np.asarray(ins[0])
        ax = a.get("axis", 1)
        ax = ax + x.ndim if ax < 0 else ax
        z = x.reshape(math.prod(x.shape[:ax]), -1)          # coerced to 2-D at axis
        if op == "Hardmax":
            y = np.zeros_like(z)
            y[np.arange(z.shape[0]), z.argmax(axis=1)] = 1
        else:
            z = z - z.max(axis=1, keepdims=True)
            lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
            y = z - lse if op == "LogSoftmax" else np.exp(z - lse)
        return [y.astype(x.dtype).reshape(x.shape)]
    if (op == "Resize" and opset < 11) or op == "Upsample":
        x = np.asarray(ins[0])
        scales = a["scales"] if "scales" in a else ins[1]
        scales = [float(v) for v in np.asarray(scales).reshape(-1)]
        mode = a.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "nearest":
            return None                                   # linear: asymmetric coordinates, below
        y = x
        for axis, sc in enumerate(scales):               # Upsample-7..9 / Resize-10 nearest
            n = x.shape[axis]
            out = int(math.floor(n * sc))
            pos = np.arange(out) / sc
            idx = np.floor(pos) if sc >= 1 else np.ceil(pos)
            y = np.take(y, np.minimum(idx.astype(np.int64), n - 1), axis=axis)
        return [y]
    return None


def _node_name(node, idx):
    return node.name or f"#{idx}"


class _Importer:
    def __init__(self, model, frac_bits, batch, output):
        self.model = model
        self.f = int(frac_bits)
        if not 0 <= self.f <= 30:
            raise ValueError("frac_bits must be in 0..30")
        self.batch_opt = batch
        self.output_opt = output
        self.ops: list[Op] = []
        self.consts: list[np.ndarray] = []
        self.env: dict[str, object] = {}
        self.acts: dict[str, _Act] = {}

    # ------------------------------------------------------------------ checks
    def check_model(self):
        m = self.model
        try:
            onnx.checker.check_model(m)
        except Exception as e:  # onnx raises ValidationError and others
            raise OnnxImportError(f"onnx.checker rejected the model: {e}") from None
        self.opset = None
        for imp in m.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = imp.version
        if self.opset is None:
            raise OnnxImportError("the model imports no version of the default ONNX opset")
        if not MIN_OPSET <= self.opset <= onnx.defs.onnx_opset_version():
            raise OnnxImportError(f"opset {self.opset} outside the supported range "
                                  f"{MIN_OPSET}..{onnx.defs.onnx_opset_version()}")
        g = m.graph
        inits = {t.name for t in g.initializer}
        ins = [i for i in g.input if i.name not in inits]
        if len(ins) != 1:
            raise OnnxImportError(f"the model must have exactly one data input, it has {len(ins)}: "
                                  f"{[i.name for i in ins]}")
        self.inp = ins[0]
        tt = self.inp.type.tensor_type
        if tt.elem_type not in _FLOAT_TYPES:
            raise OnnxImportError(f"input {self.inp.name!r} must be a float tensor")
        dims = list(tt.shape.dim)
        if not dims:
            raise OnnxImportError(f"input {self.inp.name!r} needs a shape with a leading batch axis")
        full = []
        for k, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                full.append(int(d.dim_value))
            elif k == 0:
                full.append(None)
            else:
                raise OnnxImportError(f"input {self.inp.name!r}: axis {k} must have a static size")
        if full[0] is None:
            full[0] = int(self.batch_opt or 1)
        elif self.batch_opt is not None and self.batch_opt != full[0]:
            raise OnnxImportError(f"the model's batch size is fixed to {full[0]}")
        self.B = full[0]
        self.input_full = tuple(full)
        self.select_output()

    # ------------------------------------------------------------------ outputs
    def _const_value(self, name):
        g = self.model.graph
        for t in g.initializer:
            if t.name == name:
                return numpy_helper.to_array(t)
        for n in g.node:
            if n.op_type == "Constant" and n.output[0] == name:
                a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
                if "value" in a:
                    return numpy_helper.to_array(a["value"])
                for k in ("value_ints", "value_strings", "value_int", "value_string"):
                    if k in a:
                        return np.array(a[k])
        return None

    def _label_of(self, name, producer):
        """If graph value ``name`` is a class label computed as ``classes[argmax(T)]``
        (LinearClassifier's label output, or skl2onnx's ArgMax + ArrayFeatureExtractor),
        returns ``(T, classes, argmax axis)``; else None."""
        n = producer.get(name)
        while n is not None and n.domain in ("", "ai.onnx") and n.op_type in _PASS:
            name = n.input[0]
            n = producer.get(name)
        if n is None or n.domain != "ai.onnx.ml":
            return None
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        if n.op_type == "LinearClassifier" and name == n.output[0]:
            classes = a.get("classlabels_ints", a.get("classlabels_strings"))
            if classes is None or len(n.output) < 2:
                return None
            return n.output[1], list(classes), 1
        if n.op_type == "ArrayFeatureExtractor":
            classes = self._const_value(n.input[0])
            if classes is None or classes.ndim != 1:
                return None
            idx = producer.get(n.input[1])
            while idx is not None and idx.domain in ("", "ai.onnx") and idx.op_type in _PASS:
                idx = producer.get(idx.input[0])
            if idx is None or idx.op_type != "ArgMax" or idx.domain not in ("", "ai.onnx"):
                return None
            ia = {x.name: onnx.helper.get_attribute_value(x) for x in idx.attribute}
            if ia.get("select_last_index", 0):
                return None
            return idx.input[0], classes.tolist(), int(ia.get("axis", 0))
        return None

    def select_output(self):
        """Choose the graph value the plan computes (``self.out_name``) and, when the
        model declares them, the class labels (``self.label_cand``).

        Rules: a ZipMap output (a map wrapper on probabilities) stands for its input
        tensor; a class-label output (int or string, ``classes[argmax(T)]``) stands for
        its score tensor ``T`` and supplies the labels.  With ``output=`` that output
        is used.  Otherwise the only floating-point output (e.g. the probabilities of
        an skl2onnx classifier next to its label), or the label's score tensor when
        there is no floating-point output; several floating-point outputs need
        ``output=`` (CLI: ``--output-name``)."""
        g = self.model.graph
        if any(n.domain == "ai.onnx.ml" and n.op_type == "LinearClassifier" and (len(n.output) < 2 or not n.output[1])
               for n in g.node):
            # a LinearClassifier whose scores output is unnamed: name it (on a copy of the model)
            m = onnx.ModelProto()
            m.CopyFrom(self.model)
            self.model = m
            g = m.graph
            for n in g.node:
                if n.domain == "ai.onnx.ml" and n.op_type == "LinearClassifier":
                    if len(n.output) < 2:
                        n.output.append("")
                    if not n.output[1]:
                        n.output[1] = f"{n.output[0]}__ezp_scores"
        producer = {o: n for n in g.node for o in n.output if o}
        outs = list(g.output)
        kinds = {}
        for o in outs:
            zm = producer.get(o.name)
            if zm is not None and zm.domain == "ai.onnx.ml" and zm.op_type == "ZipMap":
                a = {x.name: onnx.helper.get_attribute_value(x) for x in zm.attribute}
                cl = a.get("classlabels_int64s", a.get("classlabels_strings"))
                kinds[o.name] = ("float", zm.input[0], (zm.input[0], list(cl), -1) if cl else None)
            elif o.type.HasField("tensor_type") and o.type.tensor_type.elem_type in _FLOAT_TYPES:
                kinds[o.name] = ("float", o.name, None)
            else:
                lab = self._label_of(o.name, producer)
                kinds[o.name] = ("label", lab[0], lab) if lab else ("other", None, None)
        names = [o.name for o in outs]
        labels = [k[2] for k in kinds.values() if k[0] == "label"]
        self.label_cand = labels[0] if len(labels) == 1 else None
        self.label_explicit = False
        if self.output_opt is not None:
            if self.output_opt not in kinds:
                raise OnnxImportError(f"no graph output named {self.output_opt!r} (outputs: {names})")
            kind, target, lab = kinds[self.output_opt]
            if kind == "other":
                target = self.output_opt                  # e.g. an ArgMax output: the import decides
            if kind == "label":
                self.label_cand, self.label_explicit = lab, True
        else:
            floats = [k[1] for k in kinds.values() if k[0] == "float"]
            if len(outs) == 1 and kinds[names[0]][0] == "other":
                target = names[0]                         # e.g. an ArgMax output: the import decides
            elif len(floats) == 1:
                target = floats[0]
            elif not floats and len(labels) == 1:
                target = labels[0][0]
            elif not floats:
                raise OnnxImportError(f"the model has no floating-point output and no recognised class label "
                                      f"among {names}")
            else:
                raise OnnxImportError(f"the model has several outputs {names}: choose one with output= "
                                      "(CLI: --output-name)")
        if self.label_cand is None:
            zl = [k[2] for k in kinds.values() if k[0] == "float" and k[2] is not None and k[1] == target]
            self.label_cand = zl[0] if zl else None
        self.out_name = target

    def shape_inference(self):
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        inp = next(i for i in m.graph.input if i.name == self.inp.name)
        d0 = inp.type.tensor_type.shape.dim[0]
        d0.Clear()
        d0.dim_value = self.B
        try:
            m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        except Exception as e:
            raise OnnxImportError(f"ONNX shape inference failed: {e}") from None
        self.inferred = {}
        for vi in list(m.graph.value_info) + list(m.graph.output):
            t = vi.type.tensor_type
            if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
                self.inferred[vi.name] = tuple(int(d.dim_value) for d in t.shape.dim)

    # ------------------------------------------------------------------ helpers
    def fail(self, node, reason=""):
        raise UnsupportedOp(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}",
                            self.cur_name, reason)

    def act_shape(self, a: _Act) -> tuple:
        return self.input_ps if a.v == 0 else self.ops[a.v - 1].shape

    def full(self, a: _Act) -> tuple:
        return (self.B,) + self.act_shape(a)

    def add_const(self, arr) -> int:
        self.consts.append(np.asarray(arr, dtype=np.float64))
        return len(self.consts) - 1

    def emit(self, kind, inputs, consts=(), attrs=None, **_) -> _Act:
        attrs = dict(attrs or {})
        ins = [self.act_shape(_Act(v)) for v in inputs]
        cs = [self.consts[c].shape for c in consts]
        try:
            shape = infer_shape(kind, ins, cs, attrs, err=OnnxImportError)
        except OnnxImportError as e:
            raise OnnxImportError(f"node {self.cur_name}: {e}") from None
        self.ops.append(Op(kind, list(inputs), list(consts), attrs, shape, self.cur_name))
        return _Act(len(self.ops))

    def const_per_sample(self, node, c: np.ndarray, rank_full: int) -> np.ndarray:
        """A constant broadcast against an activation of full rank ``rank_full``,
        as a per-sample constant of rank ``rank_full - 1``."""
        c = np.asarray(c, dtype=np.float64)
        if c.ndim > rank_full:
            if any(d != 1 for d in c.shape[:c.ndim - rank_full + 1]):
                self.fail(node, "constant operand has more axes than the activation")
            c = c.reshape(c.shape[c.ndim - rank_full:])
        c = c.reshape((1,) * (rank_full - c.ndim) + c.shape)
        if c.shape[0] != 1:
            self.fail(node, "constant operand varies along the batch axis")
        return c.reshape(c.shape[1:])

    def get(self, name):
        if name == "":
            return None
        if name not in self.env:
            raise OnnxImportError(f"node {self.cur_name}: input {name!r} is not defined")
        return self.env[name]

    # ------------------------------------------------------------------ main
    def run(self, encode: bool) -> Plan:
        self.check_model()
        g = self.model.graph
        self.input_ps = self.input_full[1:]
        self.env[self.inp.name] = _Act(0)
        for t in g.initializer:
            self.env[t.name] = numpy_helper.to_array(t)
        # prune: nodes the chosen output depends on
        producer = {}
        for idx, n in enumerate(g.node):
            for o in n.output:
                if o:
                    producer[o] = idx
        need, stack = set(), [self.out_name]
        while stack:
            nm = stack.pop()
            idx = producer.get(nm)
            if idx is None or idx in need:
                continue
            need.add(idx)
            stack.extend(i for i in g.node[idx].input if i)
        self.precheck(need)
        self.name_of_value = {0: self.inp.name}
        for idx, node in enumerate(g.node):
            if idx not in need:
                continue
            self.cur_name = _node_name(node, idx)
            self.node(node)
        res = self.get_final()
        self.class_labels = self.check_labels(res)
        # ONNX shape inference (after the walk, so an unsupported op is reported as such first)
        self.shape_inference()
        for name, a in self.acts.items():
            self.check_inferred(name, a)
        return self.finish(res, encode)

    def supported(self, node) -> bool:
        if node.domain in ("", "ai.onnx"):
            return node.op_type in ("Constant", "Shape", "Size") or hasattr(self, "op_" + node.op_type)
        if node.domain == "ai.onnx.ml":
            return hasattr(self, "ml_" + node.op_type)
        return False

    def precheck(self, need):
        """Before translating anything: the first node (graph order) applied to the
        activation whose op type is not supported at all is reported as such (and not
        as a failure of some supported op before it, e.g. the Transpose that feeds an
        LSTM).  Nodes on constants only are folded, whatever their type; ``Shape`` and
        ``Size`` of an activation are constants."""
        g = self.model.graph
        live = {self.inp.name}
        for idx, node in enumerate(g.node):
            if idx not in need or not any(i in live for i in node.input if i):
                continue
            if node.domain in ("", "ai.onnx") and node.op_type in ("Shape", "Size"):
                continue
            if not self.supported(node):
                op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
                raise UnsupportedOp(op, _node_name(node, idx))
            live.update(o for o in node.output if o)

    def check_labels(self, res):
        """The class labels of the chosen output (from its label output or ZipMap), if
        they describe the same decision as the plan: argmax of the same logits."""
        cand = self.label_cand
        if cand is None:
            return None
        T, classes, axis = cand

        def key(v):
            if isinstance(v, _Post) and v.kind in _MONOTONE:
                a = v.axis
                return (v.src.v, a, len(self.full(v.src)))
            if isinstance(v, _Act):
                r = len(self.full(v))
                return (v.v, r - 1, r)
            return None

        t, k = self.env.get(T), key(res)
        ok = t is not None and k is not None and key(t) == k
        if ok:
            r = k[2]
            ok = (axis + r if axis < 0 else axis) == k[1]
        if ok:
            ok = all(isinstance(c, (int, np.integer)) for c in classes) or \
                all(isinstance(c, (str, bytes, np.str_, np.bytes_)) for c in classes)
        if not ok:
            if self.label_explicit:
                raise OnnxImportError(f"output {self.output_opt!r}: the class label is not the argmax of a "
                                      "monotone function of the computed scores")
            return None
        return [int(c) if isinstance(c, (int, np.integer)) else
                (c.decode("utf-8") if isinstance(c, (bytes, np.bytes_)) else str(c)) for c in classes]

    def get_final(self):
        if self.out_name not in self.env:
            raise OnnxImportError(f"output {self.out_name!r} is not computed by the graph")
        r = self.env[self.out_name]
        if isinstance(r, np.ndarray):
            raise OnnxImportError(f"output {self.out_name!r} does not depend on the input")
        return r

    # ------------------------------------------------------------------ nodes
    def node(self, node):
        op = node.op_type
        if node.domain not in ("", "ai.onnx", "ai.onnx.ml"):
            self.fail(node)
        ins = [self.get(i) for i in node.input]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if any(isinstance(x, _Post) for x in ins):
            out = self.after_post(node, ins, attrs)
            if out is None:
                p = next(x for x in ins if isinstance(x, _Post))
                why = ("Sigmoid is supported only as the last op (the post-transform of a classifier)"
                       if p.op_type == "Sigmoid" else "Softmax/LogSoftmax/ArgMax must be the last op")
                raise UnsupportedOp(p.op_type, p.node, f"{why}; it is followed by {op} at node {self.cur_name}")
            self.env[node.output[0]] = out
            return
        if op == "Constant" and node.domain in ("", "ai.onnx"):
            self.env[node.output[0]] = self.constant(node, attrs)
            return
        if op in ("Shape", "Size") and node.domain in ("", "ai.onnx") and isinstance(ins[0], _Act):
            full = np.array(self.full(ins[0]), dtype=np.int64)
            if op == "Size":
                self.env[node.output[0]] = np.array(math.prod(full), dtype=np.int64)
                return
            s, e = attrs.get("start", 0), attrs.get("end", None)
            self.env[node.output[0]] = full[s:e]
            return
        live = [x for x in ins if x is not None]
        if live and all(isinstance(x, np.ndarray) for x in live):
            self.fold(node)
            return
        if node.domain == "ai.onnx.ml":
            h = getattr(self, "ml_" + op, None)
        elif node.domain in ("", "ai.onnx"):
            h = getattr(self, "op_" + op, None)
        else:
            h = None
        if h is None:
            self.fail(node)
        out = h(node, ins, attrs)
        if out is None:                       # the handler set its outputs itself
            return
        self.env[node.output[0]] = out
        if isinstance(out, _Act) and out.v > 0:
            self.acts[node.output[0]] = out

    def after_post(self, node, ins, a):
        """Ops allowed after a final op: pass-throughs, ArgMax, and the ways skl2onnx
        builds class probabilities from sigmoids (1 - p, concatenation, L1 normalisation)."""
        op, P = node.op_type, ins[0]
        if node.domain in ("", "ai.onnx"):
            if op in ("Identity", "Cast") and isinstance(P, _Post):
                if op == "Cast" and P.kind != "argmax" and a.get("to") not in _FLOAT_TYPES:
                    return None                   # a class index may be cast to any type, not a probability
                return P
            if op == "ArgMax" and isinstance(P, _Post):
                return self.op_ArgMax(node, ins, a)
            if op == "Sub" and isinstance(ins[0], np.ndarray) and isinstance(ins[1], _Post) and \
                    ins[1].kind == "sigmoid" and ins[0].size >= 1 and np.all(np.asarray(ins[0]) == 1):
                q = ins[1]                                   # 1 - sigmoid(z) = sigmoid(-z)
                shp = np.broadcast_shapes(np.shape(ins[0]), self.full(q.src))
                if shp != self.full(q.src):
                    return None
                return _Post("sigmoid", self.emit("neg", [q.src.v]), q.axis, op_type=q.op_type, node=q.node)
            if op == "Concat" and all(isinstance(x, _Post) and x.kind == "sigmoid" for x in ins):
                r = len(self.full(ins[0].src))
                ax = a["axis"] + r if a["axis"] < 0 else a["axis"]
                if ax == 0:
                    return None
                c = self.op_Concat(node, [x.src for x in ins], a)
                return _Post("sigmoid", c, r - 1, op_type=ins[0].op_type, node=ins[0].node)
            return None
        if node.domain == "ai.onnx.ml" and op == "Normalizer" and isinstance(P, _Post):
            norm = a.get("norm", b"MAX")
            norm = norm.decode() if isinstance(norm, bytes) else norm
            r = len(self.full(P.src))
            if norm != "L1" or r != 2 or P.axis != 1:
                return None
            if P.kind == "softmax":
                return P                                     # already sums to one
            if P.kind == "sigmoid":
                return _Post("sigmoid_l1", P.src, 1, op_type=P.op_type, node=P.node)
        return None

    def check_inferred(self, name, a):
        want = self.inferred.get(name)
        if want is not None and want != self.full(a):
            raise OnnxImportError(f"value {name!r}: shape {self.full(a)} differs from ONNX shape "
                                  f"inference {want}")

    def constant(self, node, attrs):
        if "value" in attrs:
            return numpy_helper.to_array(attrs["value"])
        for k, dt in (("value_float", np.float32), ("value_floats", np.float32),
                      ("value_int", np.int64), ("value_ints", np.int64)):
            if k in attrs:
                return np.array(attrs[k], dtype=dt)
        self.fail(node, "only dense tensor, float(s) and int(s) constants are supported")

    def fold(self, node):
        """Evaluate an op whose inputs are all constants (P0's own computation).

        The node is wrapped in a one-node model that imports the model's own opsets
        (all domains) and local functions, so the reference evaluator runs the op
        version the model was written for (e.g. Unsqueeze-11 with an ``axes``
        attribute, not Unsqueeze-13 with an ``axes`` input)."""
        from onnx.reference import ReferenceEvaluator
        legacy = _legacy_fold(node, self.opset, [self.env[i] if i else None for i in node.input])
        if legacy is not None:
            for nm, v in zip([o for o in node.output if o], legacy):
                self.env[nm] = np.asarray(v)
            return
        feeds, vin, vout = {}, [], []
        n2 = onnx.NodeProto()
        n2.CopyFrom(node)
        for k, nm in enumerate(node.input):
            if nm:
                key = f"in{k}"
                n2.input[k] = key
                v = np.asarray(self.env[nm])
                feeds[key] = v
                vin.append(onnx.helper.make_tensor_value_info(key, _tensor_type(v), list(v.shape)))
        for k, nm in enumerate(node.output):
            if nm:
                n2.output[k] = f"out{k}"
                vout.append(onnx.helper.make_tensor_value_info(f"out{k}", onnx.TensorProto.UNDEFINED, None))
        default_opset = None
        if node.domain in ("", "ai.onnx") and (node.op_type == "Upsample" or
                                               node.op_type == "Resize" and self.opset < 11):
            # linear Upsample-7..9 / Resize-10 = Resize-11 with asymmetric coordinates
            at = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
            sc = np.asarray(at["scales"] if "scales" in at else feeds.pop("in1"), np.float32).reshape(-1)
            n2 = onnx.helper.make_node("Resize", ["in0", "", "sc"], list(n2.output), mode="linear",
                                       coordinate_transformation_mode="asymmetric")
            feeds["sc"] = sc
            vin = vin[:1] + [onnx.helper.make_tensor_value_info("sc", onnx.TensorProto.FLOAT, [sc.size])]
            default_opset = 11
        g = onnx.helper.make_graph([n2], "fold", vin, vout)
        opsets = {}
        for imp in self.model.opset_import:
            d = "" if imp.domain == "ai.onnx" else imp.domain
            opsets[d] = max(opsets.get(d, 0), imp.version)
        if default_opset is not None:
            opsets[""] = default_opset
        m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()],
                                   functions=list(self.model.functions))
        m.ir_version = max(self.model.ir_version, 3)
        try:
            outs = ReferenceEvaluator(m).run(None, feeds)
        except Exception as e:
            raise OnnxImportError(f"node {self.cur_name}: constant folding of {node.op_type} "
                                  f"(opset {opsets.get(node.domain or '', self.opset)}) failed: {e}") from None
        for nm, v in zip([o for o in node.output if o], outs):
            self.env[nm] = np.asarray(v)

    # -- pass-through
    def op_Identity(self, node, ins, a):
        return ins[0]

    def op_Dropout(self, node, ins, a):
        if len(node.output) > 1 and node.output[1] and self.used(node.output[1]):
            self.fail(node, "the dropout mask output is used")
        if a.get("is_test", 1) == 0 and self.opset < 7:
            pass  # inference: dropout is the identity
        if len(ins) > 2 and isinstance(ins[2], np.ndarray) and bool(ins[2]):
            self.fail(node, "training_mode=True")
        return ins[0]

    def used(self, name):
        return any(name in n.input for n in self.model.graph.node) or \
            any(o.name == name for o in self.model.graph.output)

    def op_Cast(self, node, ins, a):
        if a.get("to") not in _FLOAT_TYPES:
            self.fail(node, "only casts between floating-point types are supported")
        return ins[0]

    # -- linear
    def op_Gemm(self, node, ins, a):
        A, Bm = ins[0], ins[1]
        C = ins[2] if len(ins) > 2 else None
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        if not isinstance(A, _Act) or not isinstance(Bm, np.ndarray):
            self.fail(node, "only activation x constant weights are supported (the right operand is secret)")
        if a.get("transA", 0):
            self.fail(node, "transA=1 on an activation would move the batch axis")
        if len(self.full(A)) != 2:
            self.fail(node, "Gemm input must be 2-D")
        W = np.asarray(Bm, np.float64)
        W = (W.T if a.get("transB", 0) else W) * alpha
        consts = [self.add_const(W)]
        M = W.shape[1]
        post = None
        if isinstance(C, np.ndarray):
            c = np.asarray(C, np.float64) * beta
            c = self.const_per_sample(node, c, 2)
            if c.shape == (M,):
                consts.append(self.add_const(c))
            else:
                post = c
        out = self.emit("matmul", [A.v], consts)
        if post is not None:
            out = self.emit("add_const", [out.v], [self.add_const(post)])
        if isinstance(C, _Act):
            if beta != 1.0:
                C = self.emit("mul_const", [C.v], [self.add_const(np.full((1,) * len(self.act_shape(C)), beta))])
            out = self.emit("add", [out.v, C.v])
        return out

    def op_MatMul(self, node, ins, a):
        A, Bm = ins
        if not isinstance(A, _Act) or not isinstance(Bm, np.ndarray):
            self.fail(node, "only activation x constant weights are supported (the right operand is secret)")
        if Bm.ndim != 2 or len(self.full(A)) < 2:
            self.fail(node, "the weight must be 2-D and the activation at least 2-D")
        return self.emit("matmul", [A.v], [self.add_const(Bm)])

    def conv_geometry(self, node, a, spatial, kernel, dil, strides):
        pads = list(a.get("pads", [0] * (2 * len(kernel))))
        ap = a.get("auto_pad", b"NOTSET")
        ap = ap.decode() if isinstance(ap, bytes) else ap
        if ap in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0] * (2 * len(kernel))
            for i, (n, k, d, s) in enumerate(zip(spatial, kernel, dil, strides)):
                out = -(-n // s)
                tot = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
                lo = tot // 2 if ap == "SAME_UPPER" else tot - tot // 2
                pads[i], pads[i + len(kernel)] = lo, tot - lo
        elif ap == "VALID":
            pads = [0] * (2 * len(kernel))
        elif ap != "NOTSET":
            self.fail(node, f"auto_pad={ap}")
        return pads

    def op_Conv(self, node, ins, a):
        X, W = ins[0], ins[1]
        Bv = ins[2] if len(ins) > 2 else None
        if not isinstance(X, _Act) or not isinstance(W, np.ndarray) or isinstance(Bv, _Act):
            self.fail(node, "weights and bias must be constants")
        nd = W.ndim - 2
        if nd not in (1, 2):
            self.fail(node, f"{nd}-D convolution (1-D and 2-D are supported)")
        xs = self.act_shape(X)
        if len(xs) != nd + 1:
            self.fail(node, "input rank does not match the kernel")
        kernel = list(W.shape[2:])
        if "kernel_shape" in a and list(a["kernel_shape"]) != kernel:
            self.fail(node, "kernel_shape differs from the weight shape")
        strides = list(a.get("strides", [1] * nd))
        dil = list(a.get("dilations", [1] * nd))
        pads = self.conv_geometry(node, a, xs[1:], kernel, dil, strides)
        group = int(a.get("group", 1))
        W = np.asarray(W, np.float64)
        x = X
        if nd == 1:
            x = self.emit("reshape", [X.v], attrs={"shape": (xs[0], 1, xs[1])})
            W = W[:, :, None, :]
            strides, dil, pads = [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
        consts = [self.add_const(W)]
        if Bv is not None:
            consts.append(self.add_const(np.asarray(Bv, np.float64).reshape(-1)))
        out = self.emit("conv", [x.v], consts, {"strides": tuple(strides), "pads": tuple(pads),
                                                "dilations": tuple(dil), "group": group})
        if nd == 1:
            s = self.act_shape(out)
            out = self.emit("reshape", [out.v], attrs={"shape": (s[0], s[2])})
        return out

    # -- elementwise
    def binary(self, node, ins, kind):
        A, Bx = ins
        if isinstance(A, _Act) and isinstance(Bx, _Act):
            if kind == "div":
                self.fail(node, "division by an activation")
            if len(self.act_shape(A)) != len(self.act_shape(Bx)):
                self.fail(node, "operands of different ranks")
            return self.emit(kind, [A.v, Bx.v])
        act, c, rev = (A, Bx, False) if isinstance(A, _Act) else (Bx, A, True)
        c = self.const_per_sample(node, c, len(self.full(act)))
        if kind == "add":
            return self.emit("add_const", [act.v], [self.add_const(c)])
        if kind == "sub":
            if rev:
                n = self.emit("neg", [act.v])
                return self.emit("add_const", [n.v], [self.add_const(c)])
            return self.emit("add_const", [act.v], [self.add_const(-c)])
        if kind == "mul":
            return self.emit("mul_const", [act.v], [self.add_const(c)])
        if rev:
            self.fail(node, "division by an activation")
        if np.any(c == 0):
            raise OnnxImportError(f"node {self.cur_name}: division by zero")
        return self.emit("mul_const", [act.v], [self.add_const(1.0 / c)])

    def op_Add(self, node, ins, a):
        return self.binary(node, ins, "add")

    def op_Sub(self, node, ins, a):
        return self.binary(node, ins, "sub")

    def op_Mul(self, node, ins, a):
        return self.binary(node, ins, "mul")

    def op_Div(self, node, ins, a):
        return self.binary(node, ins, "div")

    def op_Neg(self, node, ins, a):
        return self.emit("neg", [ins[0].v])

    def _relu_of_shift(self, X, shift):
        """relu(x + shift) for a constant scalar shift (0: plain relu)."""
        v = X
        if shift != 0:
            v = self.emit("add_const", [X.v], [self.add_const(np.full((1,) * len(self.act_shape(X)), shift))])
        return self.emit("relu", [v.v])

    def op_Clip(self, node, ins, a):
        """clip(x, lo, hi) = lo + relu(x - lo) - relu(x - hi) (two ReLUs), e.g. ReLU6."""
        X = ins[0]
        lo, hi = a.get("min"), a.get("max")
        if len(ins) > 1 and ins[1] is not None:
            lo = ins[1]
        if len(ins) > 2 and ins[2] is not None:
            hi = ins[2]
        if isinstance(lo, _Act) or isinstance(hi, _Act):
            self.fail(node, "the bounds must be constants")
        lo = None if lo is None else float(np.asarray(lo).reshape(-1)[0])
        hi = None if hi is None else float(np.asarray(hi).reshape(-1)[0])
        one = (1,) * len(self.act_shape(X))
        if lo is not None and hi is not None and lo > hi:
            raise OnnxImportError(f"node {self.cur_name}: Clip with min > max")
        if lo is None and hi is None:
            return X
        if lo is not None:
            y = self._relu_of_shift(X, -lo)                     # relu(x - lo)
        else:
            y = X
        if hi is not None:
            r2 = self._relu_of_shift(X, -hi)                    # relu(x - hi)
            y = self.emit("sub", [y.v, r2.v])
            if lo is None:
                return y                                        # x - relu(x - hi) = min(x, hi)
        if lo is not None and lo != 0:
            y = self.emit("add_const", [y.v], [self.add_const(np.full(one, lo))])
        return y

    def op_LeakyRelu(self, node, ins, a):
        """leaky(x) = alpha * x + (1 - alpha) * relu(x)."""
        X = ins[0]
        alpha = float(a.get("alpha", 0.01))
        return self._leaky(X, np.full((1,) * len(self.act_shape(X)), alpha))

    def op_PRelu(self, node, ins, a):
        X, slope = ins
        if not isinstance(slope, np.ndarray):
            self.fail(node, "the slope must be a constant")
        sl = np.asarray(slope, np.float64)
        xs = self.act_shape(X)
        if self.opset < 7 and sl.ndim == 1 and len(xs) >= 1 and sl.size == xs[0]:
            sl = sl.reshape((-1,) + (1,) * (len(xs) - 1))       # opset 6: per channel
        return self._leaky(X, self.const_per_sample(node, sl, len(xs) + 1))

    def _leaky(self, X, alpha):
        r = self.emit("relu", [X.v])
        r = self.emit("mul_const", [r.v], [self.add_const(1.0 - alpha)])
        ax = self.emit("mul_const", [X.v], [self.add_const(alpha)])
        return self.emit("add", [ax.v, r.v])

    def op_Pad(self, node, ins, a):
        X = ins[0]
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            self.fail(node, f"mode={mode} (only constant zero padding)")
        pads = a.get("pads", a.get("paddings"))
        if len(ins) > 1 and ins[1] is not None:
            if not isinstance(ins[1], np.ndarray):
                self.fail(node, "pads must be a constant")
            pads = ins[1]
        value = a.get("value", 0.0)
        if len(ins) > 2 and ins[2] is not None:
            if not isinstance(ins[2], np.ndarray):
                self.fail(node, "the pad value must be a constant")
            value = float(np.asarray(ins[2]).reshape(-1)[0]) if np.asarray(ins[2]).size else 0.0
        if float(value) != 0.0:
            self.fail(node, "non-zero pad value")
        r = len(self.full(X))
        pads = [int(v) for v in np.asarray(pads).reshape(-1)]
        if len(ins) > 3 and ins[3] is not None:             # opset 18 axes
            axes = [int(v) + r if int(v) < 0 else int(v) for v in np.asarray(ins[3]).reshape(-1)]
            full = [0] * (2 * r)
            for k, ax in enumerate(axes):
                full[ax], full[ax + r] = pads[k], pads[k + len(axes)]
            pads = full
        if len(pads) != 2 * r or any(v < 0 for v in pads):
            self.fail(node, "negative or malformed pads")
        if pads[0] or pads[r]:
            self.fail(node, "padding the batch axis")
        ps = pads[1:r] + pads[r + 1:]
        if not any(ps):
            return X
        return self.emit("pad", [X.v], attrs={"pads": tuple(ps)})

    def op_Relu(self, node, ins, a):
        return self.emit("relu", [ins[0].v])

    # -- pooling
    def pool(self, node, ins, a, kind):
        X = ins[0]
        xs = self.act_shape(X)
        kernel = list(a["kernel_shape"])
        nd = len(kernel)
        if nd not in (1, 2) or len(xs) != nd + 1:
            self.fail(node, f"{nd}-D pooling (1-D and 2-D are supported)")
        if len(node.output) > 1 and node.output[1] and self.used(node.output[1]):
            self.fail(node, "the Indices output is used")
        strides = list(a.get("strides", [1] * nd))
        dil = list(a.get("dilations", [1] * nd))
        if kind == "avgpool" and any(d != 1 for d in dil):
            self.fail(node, "dilated average pooling")
        pads = self.conv_geometry(node, a, xs[1:], kernel, dil, strides)
        ceil = bool(a.get("ceil_mode", 0))
        x = X
        if nd == 1:
            x = self.emit("reshape", [X.v], attrs={"shape": (xs[0], 1, xs[1])})
            kernel, strides, dil, pads = [1] + kernel, [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
        at = {"kernel": tuple(kernel), "strides": tuple(strides), "pads": tuple(pads), "ceil_mode": ceil}
        if kind == "maxpool":
            at["dilations"] = tuple(dil)
        else:
            at["count_include_pad"] = bool(a.get("count_include_pad", 0))
        try:
            out = self.emit(kind, [x.v], attrs=at)
        except OnnxImportError as e:
            self.fail(node, str(e))
        if nd == 1:
            s = self.act_shape(out)
            out = self.emit("reshape", [out.v], attrs={"shape": (s[0], s[2])})
        return out

    def op_MaxPool(self, node, ins, a):
        return self.pool(node, ins, a, "maxpool")

    def op_AveragePool(self, node, ins, a):
        return self.pool(node, ins, a, "avgpool")

    def op_GlobalAveragePool(self, node, ins, a):
        return self.emit("gap", [ins[0].v])

    def _reduce_axes(self, node, ins, a):
        """Sorted non-negative reduction axes, or None for a no-op (noop_with_empty_axes)."""
        r = len(self.full(ins[0]))
        axes = self.axes_of(node, ins, a)
        if axes is None or len(axes) == 0:
            if a.get("noop_with_empty_axes", 0):
                return None
            axes = list(range(r))
        axes = sorted({x + r if x < 0 else x for x in axes})
        if 0 in axes:
            self.fail(node, "reduction over the batch axis")
        return tuple(axes)

    def reduce(self, node, ins, a, mean):
        axes = self._reduce_axes(node, ins, a)
        if axes is None:
            return ins[0]
        return self.emit("reduce", [ins[0].v], attrs={"axes": axes, "keepdims": bool(a.get("keepdims", 1)),
                                                      "mean": mean})

    def op_ReduceMax(self, node, ins, a):
        axes = self._reduce_axes(node, ins, a)
        if axes is None:
            return ins[0]
        return self.emit("reduce_max", [ins[0].v], attrs={"axes": axes, "keepdims": bool(a.get("keepdims", 1))})

    def op_GlobalMaxPool(self, node, ins, a):
        X = ins[0]
        r = len(self.full(X))
        if r < 3:
            self.fail(node, "input without spatial axes")
        return self.emit("reduce_max", [X.v], attrs={"axes": tuple(range(2, r)), "keepdims": True})

    def op_Slice(self, node, ins, a):
        X = ins[0]
        full = self.full(X)
        r = len(full)
        if self.opset < 10:
            starts, ends = list(a["starts"]), list(a["ends"])
            axes = list(a.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        else:
            if not all(isinstance(t, np.ndarray) for t in ins[1:] if t is not None):
                self.fail(node, "starts, ends, axes and steps must be constants")
            starts = [int(v) for v in np.asarray(ins[1]).reshape(-1)]
            ends = [int(v) for v in np.asarray(ins[2]).reshape(-1)]
            axes = [int(v) for v in np.asarray(ins[3]).reshape(-1)] if len(ins) > 3 and ins[3] is not None \
                else list(range(len(starts)))
            steps = [int(v) for v in np.asarray(ins[4]).reshape(-1)] if len(ins) > 4 and ins[4] is not None \
                else [1] * len(starts)
        st, sp, sz = [0] * r, [1] * r, list(full)
        for s0, e0, ax, stp in zip(starts, ends, axes, steps):
            ax = ax + r if ax < 0 else ax
            if stp < 1:
                self.fail(node, "negative or zero steps")
            idx = range(full[ax])[slice(s0, e0, stp)]
            if ax == 0:
                if len(idx) == full[0] and stp == 1:
                    continue                                      # the whole batch axis
                self.fail(node, "slicing the batch axis")
            if len(idx) == 0:
                self.fail(node, "empty slice")
            st[ax], sp[ax], sz[ax] = idx.start, idx.step, len(idx)
        if st[1:] == [0] * (r - 1) and sz[1:] == list(full[1:]):
            return X
        return self.emit("slice", [X.v], attrs={"starts": tuple(st[1:]), "steps": tuple(sp[1:]),
                                                "sizes": tuple(sz[1:])})

    def op_ReduceMean(self, node, ins, a):
        return self.reduce(node, ins, a, True)

    def op_ReduceSum(self, node, ins, a):
        return self.reduce(node, ins, a, False)

    def op_BatchNormalization(self, node, ins, a):
        X = ins[0]
        if a.get("training_mode", 0):
            self.fail(node, "training_mode=1")
        if len([o for o in node.output if o]) > 1:
            self.fail(node, "training outputs (running mean/var) are requested")
        if not all(isinstance(t, np.ndarray) for t in ins[1:5]):
            self.fail(node, "scale, bias, mean and variance must be constants")
        scale, bias, mean, var = (np.asarray(t, np.float64).reshape(-1) for t in ins[1:5])
        eps = float(a.get("epsilon", 1e-5))
        s = scale / np.sqrt(var + eps)
        t = bias - mean * s
        xs = self.act_shape(X)
        if len(xs) < 1 or xs[0] != s.size:
            raise OnnxImportError(f"node {self.cur_name}: {s.size} BatchNorm channels, input {xs}")
        cs = (xs[0],) + (1,) * (len(xs) - 1)
        return self.emit("affine", [X.v], [self.add_const(s.reshape(cs)), self.add_const(t.reshape(cs))])

    # -- layout
    def to_per_sample(self, node, full_out):
        if len(full_out) < 1 or full_out[0] != self.B:
            self.fail(node, f"target shape {tuple(full_out)} would mix the batch axis")
        return tuple(int(d) for d in full_out[1:])

    def reshape_to(self, node, X, ps):
        if ps == self.act_shape(X):
            return X
        return self.emit("reshape", [X.v], attrs={"shape": ps})

    def op_Flatten(self, node, ins, a):
        X = ins[0]
        full = self.full(X)
        ax = a.get("axis", 1)
        ax = ax + len(full) if ax < 0 else ax
        if ax == 0 or any(d != 1 for d in full[1:ax]):
            if not (ax == 0 and self.B == 1):
                self.fail(node, f"axis={a.get('axis', 1)} would mix the batch axis")
        return self.reshape_to(node, X, (math.prod(full[ax:]) if ax else math.prod(full[1:]),))

    def op_Reshape(self, node, ins, a):
        X, shp = ins
        if not isinstance(shp, np.ndarray):
            self.fail(node, "the target shape must be a constant")
        full = self.full(X)
        tgt = [int(d) for d in np.asarray(shp).reshape(-1)]
        allowzero = a.get("allowzero", 0)
        out = [full[i] if (d == 0 and not allowzero and i < len(full)) else d for i, d in enumerate(tgt)]
        if out.count(-1) > 1:
            raise OnnxImportError(f"node {self.cur_name}: several -1 in the target shape")
        if -1 in out:
            rest = math.prod(d for d in out if d != -1)
            if rest == 0 or math.prod(full) % rest:
                raise OnnxImportError(f"node {self.cur_name}: cannot reshape {full} to {tgt}")
            out[out.index(-1)] = math.prod(full) // rest
        return self.reshape_to(node, X, self.to_per_sample(node, out))

    def axes_of(self, node, ins, a):
        if len(ins) > 1 and ins[1] is not None:
            if not isinstance(ins[1], np.ndarray):
                self.fail(node, "axes must be a constant")
            return [int(x) for x in np.asarray(ins[1]).reshape(-1)]
        return list(a["axes"]) if "axes" in a else None

    def op_Squeeze(self, node, ins, a):
        X = ins[0]
        full = self.full(X)
        axes = self.axes_of(node, ins, a)
        if axes is None:
            axes = [i for i in range(1, len(full)) if full[i] == 1]
        axes = [x + len(full) if x < 0 else x for x in axes]
        if 0 in axes:
            self.fail(node, "squeezing the batch axis")
        return self.reshape_to(node, X, tuple(d for i, d in enumerate(full) if i not in axes)[1:])

    def op_Unsqueeze(self, node, ins, a):
        X = ins[0]
        full = list(self.full(X))
        axes = self.axes_of(node, ins, a)
        r = len(full) + len(axes)
        axes = sorted(x + r if x < 0 else x for x in axes)
        if 0 in axes:
            self.fail(node, "unsqueezing before the batch axis")
        for x in axes:
            full.insert(x, 1)
        return self.reshape_to(node, X, tuple(full[1:]))

    def op_Transpose(self, node, ins, a):
        X = ins[0]
        r = len(self.full(X))
        perm = list(a.get("perm", list(range(r))[::-1]))
        if perm[0] != 0:
            self.fail(node, f"perm {perm} moves the batch axis")
        if perm == list(range(r)):
            return X
        return self.emit("transpose", [X.v], attrs={"perm": tuple(perm)})

    def op_Concat(self, node, ins, a):
        if not all(isinstance(x, _Act) for x in ins):
            self.fail(node, "concatenating an activation with a constant")
        r = len(self.full(ins[0]))
        ax = a["axis"] + r if a["axis"] < 0 else a["axis"]
        if ax == 0:
            self.fail(node, "concatenation along the batch axis")
        if len(ins) == 1:
            return ins[0]
        return self.emit("concat", [x.v for x in ins], attrs={"axis": ax})

    # -- final ops
    def op_Softmax(self, node, ins, a, kind="softmax"):
        X = ins[0]
        full = self.full(X)
        r = len(full)
        default = -1 if self.opset >= 13 else 1
        ax = a.get("axis", default)
        ax = ax + r if ax < 0 else ax
        if ax == 0:
            self.fail(node, "softmax over the batch axis")
        if self.opset < 13 and ax != r - 1:
            # opset < 13 coerces the input to 2-D at `axis`
            X = self.reshape_to(node, X, (math.prod(full[ax:]),) if ax == 1 else self.fail(
                node, "opset < 13 softmax with 1 < axis < rank-1"))
            ax = 1
        return _Post(kind, X, ax, op_type=node.op_type, node=self.cur_name)

    def op_LogSoftmax(self, node, ins, a):
        return self.op_Softmax(node, ins, a, "logsoftmax")

    def op_Sigmoid(self, node, ins, a):
        """Sigmoid as the final op (e.g. a binary classifier): monotone, so the class is
        the argmax of the logits (one logit z: class [z > 0]); P1 evaluates it in the
        clear on revealed logits when the model owner allows them."""
        X = ins[0]
        return _Post("sigmoid", X, len(self.full(X)) - 1, op_type="Sigmoid", node=self.cur_name)

    def op_ArgMax(self, node, ins, a):
        X = ins[0]
        if a.get("select_last_index", 0):
            self.fail(node, "select_last_index=1")
        src = X.src if isinstance(X, _Post) else X
        r = len(self.full(src))
        ax = a.get("axis", 0)
        ax = ax + r if ax < 0 else ax
        if ax == 0:
            self.fail(node, "argmax over the batch axis")
        if isinstance(X, _Post):
            # argmax of a monotone row-wise transform = argmax of the logits along the same axis
            if X.kind not in _MONOTONE or (X.kind != "sigmoid" and X.axis != ax):
                raise UnsupportedOp(X.op_type, X.node, f"{X.op_type} must be the last op; it is followed by an "
                                    f"ArgMax along another axis at node {self.cur_name}")
            if X.kind == "sigmoid" and self.full(src)[ax] == 1:
                self.fail(node, "argmax over a single sigmoid output")
        return _Post("argmax", src, ax, bool(a.get("keepdims", 1)), op_type="ArgMax", node=self.cur_name)

    # -- ai.onnx.ml (scikit-learn models converted by skl2onnx)
    def _ml_linear(self, node, X, coef, intercepts, n_out):
        if not isinstance(X, _Act) or len(self.full(X)) != 2:
            self.fail(node, "the input must be a 2-D activation")
        K = self.act_shape(X)[0]
        coef = np.asarray(coef, np.float64)
        if coef.size != n_out * K:
            raise OnnxImportError(f"node {self.cur_name}: {coef.size} coefficients for {n_out} outputs of "
                                  f"{K} features")
        W = coef.reshape(n_out, K).T
        b = np.zeros(n_out) if intercepts is None or len(intercepts) == 0 else \
            np.broadcast_to(np.asarray(intercepts, np.float64), (n_out,)).copy()
        return W, b

    def ml_LinearClassifier(self, node, ins, a):
        """scores = X @ coefficients^T + intercepts, then post_transform (NONE,
        LOGISTIC, SOFTMAX); the label output is classes[argmax(scores)].  One
        coefficient row with two classes (LOGISTIC only) is the binary case:
        logits [-s, s], probabilities [1 - sigmoid(s), sigmoid(s)]."""
        X = ins[0]
        classes = a.get("classlabels_ints", a.get("classlabels_strings"))
        if classes is None:
            self.fail(node, "no class labels")
        n_cls = len(classes)
        n_rows = len(a.get("intercepts", [])) or (len(a["coefficients"]) // max(1, self.act_shape(X)[0]))
        W, b = self._ml_linear(node, X, a["coefficients"], a.get("intercepts"), n_rows)
        pt = a.get("post_transform", b"NONE")
        pt = pt.decode() if isinstance(pt, bytes) else pt
        if n_rows == 1 and n_cls == 2:
            if pt != "LOGISTIC":
                # onnxruntime's scores are then [1 - s, s], whose argmax is not the label [s > 0]
                self.fail(node, f"one coefficient row for two classes with post_transform={pt} "
                          "(only LOGISTIC: probabilities [1 - p, p])")
            W, b = np.concatenate([-W, W], axis=1), np.concatenate([-b, b])
        elif n_rows != n_cls:
            self.fail(node, f"{n_rows} coefficient rows for {n_cls} classes")
        z = self.emit("matmul", [X.v], [self.add_const(W), self.add_const(b)])
        if pt == "NONE":
            out = z
        elif pt == "LOGISTIC":
            out = _Post("sigmoid", z, 1, op_type="ai.onnx.ml.LinearClassifier", node=self.cur_name)
        elif pt == "SOFTMAX":
            out = _Post("softmax", z, 1, op_type="ai.onnx.ml.LinearClassifier", node=self.cur_name)
        else:
            self.fail(node, f"post_transform={pt} (NONE, LOGISTIC and SOFTMAX are supported)")
        self.env[node.output[1]] = out
        self.acts[node.output[1]] = z
        return None

    def ml_LinearRegressor(self, node, ins, a):
        pt = a.get("post_transform", b"NONE")
        pt = pt.decode() if isinstance(pt, bytes) else pt
        if pt != "NONE":
            self.fail(node, f"post_transform={pt}")
        W, b = self._ml_linear(node, ins[0], a["coefficients"], a.get("intercepts"), int(a.get("targets", 1)))
        return self.emit("matmul", [ins[0].v], [self.add_const(W), self.add_const(b)])

    def ml_Scaler(self, node, ins, a):
        """(x - offset) * scale, per feature or one value for all."""
        X = ins[0]
        if not isinstance(X, _Act) or len(self.full(X)) != 2:
            self.fail(node, "the input must be a 2-D activation")
        K = self.act_shape(X)[0]
        vals = {}
        for key, default in (("offset", 0.0), ("scale", 1.0)):
            v = np.asarray(a.get(key, []), np.float64).reshape(-1)
            if v.size not in (0, 1, K):
                raise OnnxImportError(f"node {self.cur_name}: {v.size} {key} values for {K} features")
            vals[key] = np.broadcast_to(v if v.size else np.array([default]), (K,)).copy()
        sc, off = vals["scale"], vals["offset"]
        if np.all(off == 0) and np.all(sc == 1):
            return X
        return self.emit("affine", [X.v], [self.add_const(sc), self.add_const(-off * sc)])

    def ml_Normalizer(self, node, ins, a):
        self.fail(node, "normalising an activation needs a division (supported only as the L1 normalisation "
                  "of softmax or sigmoid outputs)")

    # ------------------------------------------------------------------ finish
    def finish(self, res, encode) -> Plan:
        if isinstance(res, _Post):
            post, axis, keep, last = res.kind, res.axis, res.keepdims, res.src
        else:
            post, axis, keep, last = "logits", -1, False, res
        if not isinstance(last, _Act):
            raise OnnxImportError("the model's final op is not applied to an activation")
        self.fold_linear()
        self.fold_affine()
        self.fold_into_next_matmul()
        self.swap_relu_maxpool()
        ops, consts, last_v = self.compact(last.v)
        plan = Plan(input_shape=self.input_ps, ops=ops, const_shapes=[c.shape for c in consts], consts=consts,
                    frac_bits=self.f, post=post, post_axis=axis, post_keepdims=keep,
                    input_name=self.inp.name, output_name=self.out_name, class_labels=self.class_labels)
        from .plan import _check_plan
        _check_plan(plan, OnnxImportError)
        return plan.encode() if encode else plan

    def fold_linear(self):
        """Fold affine / add_const / mul_const that follow a conv or matmul along its
        output-channel axis into that op's weight and bias."""
        uses = {}
        for op in self.ops:
            for v in op.inputs:
                uses[v] = uses.get(v, 0) + 1
        for j, op in enumerate(self.ops):
            if op.kind not in ("affine", "add_const", "mul_const"):
                continue
            src = op.inputs[0]
            if src == 0 or uses.get(src, 0) != 1:
                continue
            lin = self.ops[src - 1]
            if lin.kind not in ("conv", "matmul") or lin.shape != op.shape:
                continue
            chan_axis = 0 if lin.kind == "conv" else len(lin.shape) - 1
            vecs = []
            ok = True
            for c in op.consts:
                arr = self.consts[c]
                if any(d != 1 for i, d in enumerate(arr.shape) if i != chan_axis):
                    ok = False
                    break
                n = lin.shape[chan_axis]
                vecs.append(np.broadcast_to(arr.reshape(-1), (n,)) if arr.size in (1, n) else None)
            if not ok or any(v is None for v in vecs):
                continue
            if op.kind == "affine":
                s, t = vecs
            elif op.kind == "mul_const":
                s, t = vecs[0], np.zeros_like(vecs[0])
            else:
                s, t = np.ones_like(vecs[0]), vecs[0]
            W = self.consts[lin.consts[0]]
            n = s.size
            b = self.consts[lin.consts[1]] if len(lin.consts) > 1 else np.zeros(n)
            W2 = W * (s.reshape(-1, *([1] * (W.ndim - 1))) if lin.kind == "conv" else s.reshape(1, -1))
            self.consts[lin.consts[0]] = W2
            if len(lin.consts) > 1:
                self.consts[lin.consts[1]] = b * s + t
            else:
                lin.consts.append(self.add_const(b * s + t))
            # op j becomes an identity of its input
            op.kind, op.consts, op.attrs = "identity", [], {}

    def _uses(self):
        uses = {}
        for op in self.ops:
            for v in op.inputs:
                uses[v] = uses.get(v, 0) + 1
        return uses

    def fold_affine(self):
        """mul_const followed by add_const (x * s + t, e.g. a normalisation) becomes one
        affine op: one private product and one truncation instead of two ops."""
        uses = self._uses()
        for op in self.ops:
            if op.kind == "mul_const" and op.inputs[0] != 0 and uses.get(op.inputs[0], 0) == 1:
                src = self.ops[op.inputs[0] - 1]
                if src.kind == "affine" and src.shape == op.shape:
                    c = self.consts[op.consts[0]]
                    sc, tc = self.consts[src.consts[0]], self.consts[src.consts[1]]
                    if sc.ndim == tc.ndim == c.ndim:
                        s_new, t_new = self.add_const(sc * c), self.add_const(tc * c)
                        op.kind, op.inputs, op.consts, op.attrs = "affine", list(src.inputs), [s_new, t_new], {}
                        src.kind, src.consts, src.attrs = "identity", [], {}
                        uses = self._uses()
                continue
            if op.kind != "add_const" or op.inputs[0] == 0 or uses.get(op.inputs[0], 0) != 1:
                continue
            src = self.ops[op.inputs[0] - 1]
            if src.kind != "mul_const" or src.shape != op.shape:
                continue
            sc, tc = self.consts[src.consts[0]], self.consts[op.consts[0]]
            if sc.ndim != tc.ndim:
                continue
            shp = tuple(max(a, b) for a, b in zip(sc.shape, tc.shape))
            s_new = self.add_const(np.broadcast_to(sc, shp).copy())
            t_new = self.add_const(np.broadcast_to(tc, shp).copy())
            op.kind, op.inputs, op.consts, op.attrs = "affine", list(src.inputs), [s_new, t_new], {}
            src.kind, src.consts, src.attrs = "identity", [], {}
            uses = self._uses()

    def fold_into_next_matmul(self):
        """A per-feature affine map (x * s + t along the last axis, e.g. a scaler) whose
        only user is a matmul folds into that matmul: (x * s + t) @ W + b =
        x @ (diag(s) W) + (t @ W + b): one product and one truncation fewer."""
        changed = True
        while changed:
            changed = False
            uses = self._uses()
            for lin in self.ops:
                if lin.kind != "matmul" or lin.inputs[0] == 0 or uses.get(lin.inputs[0], 0) != 1:
                    continue
                op = self.ops[lin.inputs[0] - 1]
                if op.kind not in ("affine", "mul_const", "add_const") or \
                        op.shape != self.act_shape(_Act(op.inputs[0])):
                    continue
                W = self.consts[lin.consts[0]]
                K = W.shape[0]
                vecs = []
                for c in op.consts:
                    arr = self.consts[c]
                    if any(d != 1 for d in arr.shape[:-1]) or (arr.ndim and arr.shape[-1] not in (1, K)):
                        break
                    vecs.append(np.broadcast_to(arr.reshape(-1), (K,)))
                else:
                    if op.kind == "affine":
                        sc, t = vecs
                    elif op.kind == "mul_const":
                        sc, t = vecs[0], np.zeros(K)
                    else:
                        sc, t = np.ones(K), vecs[0]
                    b = self.consts[lin.consts[1]] if len(lin.consts) > 1 else np.zeros(W.shape[1])
                    # the affine op's t is at scale 2f in an affine op, f in add_const: both are floats here
                    self.consts[lin.consts[0]] = sc[:, None] * W
                    nb = b + t @ W
                    if len(lin.consts) > 1:
                        self.consts[lin.consts[1]] = nb
                    else:
                        lin.consts.append(self.add_const(nb))
                    lin.inputs = [op.inputs[0]]
                    changed = True
                    break

    def swap_relu_maxpool(self):
        """maxpool(relu(x)) == relu(maxpool(x)) exactly (max is monotone and every
        window holds at least one input element): run the ReLU on the pooled,
        smaller tensor."""
        uses = self._uses()
        for j, op in enumerate(self.ops):
            if op.kind != "maxpool" or op.inputs[0] == 0 or uses.get(op.inputs[0], 0) != 1:
                continue
            r = self.ops[op.inputs[0] - 1]
            if r.kind != "relu":
                continue
            # value r (index i) becomes maxpool(x), value j+1 becomes relu(value i+1)
            i = op.inputs[0] - 1
            x = r.inputs[0]
            self.ops[i] = Op("maxpool", [x], [], op.attrs, op.shape, op.name)
            self.ops[j] = Op("relu", [i + 1], [], {}, op.shape, r.name)

    def compact(self, last_v):
        """Drop identities and ops not needed for value ``last_v``; renumber values and constants."""
        alias = {0: 0}
        keep_idx = []
        need = set()
        stack = [last_v]
        while stack:
            v = stack.pop()
            if v == 0 or v in need:
                continue
            need.add(v)
            stack.extend(self.ops[v - 1].inputs)
        ops, consts, cmap = [], [], {}
        for i, op in enumerate(self.ops):
            v = i + 1
            if v not in need:
                continue
            if op.kind == "identity":
                alias[v] = alias[op.inputs[0]]
                continue
            new_c = []
            for c in op.consts:
                cmap[c] = len(consts)
                consts.append(self.consts[c])
                new_c.append(cmap[c])
            ops.append(Op(op.kind, [alias[x] for x in op.inputs], new_c, op.attrs, op.shape, op.name))
            alias[v] = len(ops)
            keep_idx.append(i)
        if alias[last_v] != len(ops):
            raise OnnxImportError("internal: the logits are not the last op")
        return ops, consts, alias[last_v]
