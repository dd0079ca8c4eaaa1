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
per-feature scaling folded into the following MatMul; an ``affine`` op followed
by a ReLU that only feeds convs (group 1) / matmuls split by positive homogeneity,
``relu(x s + t) = |s| relu(x sign(s) + t/|s|)``: ``|s|`` folded into those layers'
input channels, the op kept as ``affine_sign`` (signs in {-1, 0, 1}: 2-bit
weights instead of ~17) when every nonzero ``|s| >= 2^-6`` and ``t/|s|`` fits
the activation range (``Passes.fold_relu_scale``); the weights finally
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

import os

import onnx

from .activations import ActivationOps
from .common import MIN_OPSET, OnnxImportError, UnsupportedOp
from .core import ImporterCore
from .final import FinalOps
from .fold import ConstantFolding
from .linear import LinearOps
from .ml import MlOps
from .passes import Passes
from .pooling import PoolingOps
from .shape import ShapeOps
from ..plan import Plan

__all__ = ["load_onnx", "OnnxImportError", "UnsupportedOp", "MIN_OPSET"]


class _Importer(ShapeOps, LinearOps, ActivationOps, PoolingOps, FinalOps, MlOps, Passes, ConstantFolding,
                ImporterCore):
    """One import: the driver (:class:`.core.ImporterCore`) with the op handlers of every family."""


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
    imp = _Importer(model, frac_bits, batch, output)
    imp.act_bits = act_bits                # bounds what fold_relu_scale may put into an affine_sign bias
    plan = imp.run(encode)
    plan.act_bits = act_bits
    return plan
