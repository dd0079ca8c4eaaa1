"""The importer's driver: model checks, output choice, shape inference, node dispatch
(``op_<Type>`` / ``ml_<Type>`` handlers of the op-family mixins; constant folding in
:mod:`.fold`)."""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from ..plan import Op, Plan, infer_shape
from .common import FLOAT_TYPES, MONOTONE, PASS_THROUGH, MIN_OPSET, OnnxImportError, UnsupportedOp, Act, Post, node_name


class ImporterCore:
    """Op handlers (``op_<Type>``, ``ml_<Type>``) live in the op-family mixins of this package."""

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
        self.acts: dict[str, Act] = {}

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
        if tt.elem_type not in FLOAT_TYPES:
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
        while n is not None and n.domain in ("", "ai.onnx") and n.op_type in PASS_THROUGH:
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
            while idx is not None and idx.domain in ("", "ai.onnx") and idx.op_type in PASS_THROUGH:
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
            elif o.type.HasField("tensor_type") and o.type.tensor_type.elem_type in FLOAT_TYPES:
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

    def act_shape(self, a: Act) -> tuple:
        return self.input_ps if a.v == 0 else self.ops[a.v - 1].shape

    def full(self, a: Act) -> tuple:
        return (self.B,) + self.act_shape(a)

    def add_const(self, arr) -> int:
        self.consts.append(np.asarray(arr, dtype=np.float64))
        return len(self.consts) - 1

    def emit(self, kind, inputs, consts=(), attrs=None, **_) -> Act:
        attrs = dict(attrs or {})
        ins = [self.act_shape(Act(v)) for v in inputs]
        cs = [self.consts[c].shape for c in consts]
        try:
            shape = infer_shape(kind, ins, cs, attrs, err=OnnxImportError)
        except OnnxImportError as e:
            raise OnnxImportError(f"node {self.cur_name}: {e}") from None
        self.ops.append(Op(kind, list(inputs), list(consts), attrs, shape, self.cur_name))
        return Act(len(self.ops))

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
        self.env[self.inp.name] = Act(0)
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
            self.cur_name = node_name(node, idx)
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
                raise UnsupportedOp(op, node_name(node, idx))
            live.update(o for o in node.output if o)

    def check_labels(self, res):
        """The class labels of the chosen output (from its label output or ZipMap), if
        they describe the same decision as the plan: argmax of the same logits."""
        cand = self.label_cand
        if cand is None:
            return None
        T, classes, axis = cand

        def key(v):
            if isinstance(v, Post) and v.kind in MONOTONE:
                a = v.axis
                return (v.src.v, a, len(self.full(v.src)))
            if isinstance(v, Act):
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
        if any(isinstance(x, Post) for x in ins):
            out = self.after_post(node, ins, attrs)
            if out is None:
                p = next(x for x in ins if isinstance(x, Post))
                why = ("Sigmoid is supported only as the last op (the post-transform of a classifier)"
                       if p.op_type == "Sigmoid" else "Softmax/LogSoftmax/ArgMax must be the last op")
                raise UnsupportedOp(p.op_type, p.node, f"{why}; it is followed by {op} at node {self.cur_name}")
            self.env[node.output[0]] = out
            return
        if op == "Constant" and node.domain in ("", "ai.onnx"):
            self.env[node.output[0]] = self.constant(node, attrs)
            return
        if op in ("Shape", "Size") and node.domain in ("", "ai.onnx") and isinstance(ins[0], Act):
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
        if isinstance(out, Act) and out.v > 0:
            self.acts[node.output[0]] = out

    def after_post(self, node, ins, a):
        """Ops allowed after a final op: pass-throughs, ArgMax, and the ways skl2onnx
        builds class probabilities from sigmoids (1 - p, concatenation, L1 normalisation)."""
        op, P = node.op_type, ins[0]
        if node.domain in ("", "ai.onnx"):
            if op in ("Identity", "Cast") and isinstance(P, Post):
                if op == "Cast" and P.kind != "argmax" and a.get("to") not in FLOAT_TYPES:
                    return None                   # a class index may be cast to any type, not a probability
                return P
            if op == "ArgMax" and isinstance(P, Post):
                return self.op_ArgMax(node, ins, a)
            if op == "Sub" and isinstance(ins[0], np.ndarray) and isinstance(ins[1], Post) and \
                    ins[1].kind == "sigmoid" and ins[0].size >= 1 and np.all(np.asarray(ins[0]) == 1):
                q = ins[1]                                   # 1 - sigmoid(z) = sigmoid(-z)
                shp = np.broadcast_shapes(np.shape(ins[0]), self.full(q.src))
                if shp != self.full(q.src):
                    return None
                return Post("sigmoid", self.emit("neg", [q.src.v]), q.axis, op_type=q.op_type, node=q.node)
            if op == "Concat" and all(isinstance(x, Post) and x.kind == "sigmoid" for x in ins):
                r = len(self.full(ins[0].src))
                ax = a["axis"] + r if a["axis"] < 0 else a["axis"]
                if ax == 0:
                    return None
                c = self.op_Concat(node, [x.src for x in ins], a)
                return Post("sigmoid", c, r - 1, op_type=ins[0].op_type, node=ins[0].node)
            return None
        if node.domain == "ai.onnx.ml" and op == "Normalizer" and isinstance(P, Post):
            norm = a.get("norm", b"MAX")
            norm = norm.decode() if isinstance(norm, bytes) else norm
            r = len(self.full(P.src))
            if norm != "L1" or r != 2 or P.axis != 1:
                return None
            if P.kind == "softmax":
                return P                                     # already sums to one
            if P.kind == "sigmoid":
                return Post("sigmoid_l1", P.src, 1, op_type=P.op_type, node=P.node)
        return None

    def check_inferred(self, name, a):
        want = self.inferred.get(name)
        if want is not None and want != self.full(a):
            raise OnnxImportError(f"value {name!r}: shape {self.full(a)} differs from ONNX shape "
                                  f"inference {want}")


