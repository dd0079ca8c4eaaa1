"""ONNX front end, plaintext and secure execution of models, secure validation.

P0 (model owner) loads a model with :func:`load_onnx` into a :class:`Plan` of
secure operations; P1 (data owner) receives only the architecture (shapes and
op attributes, no weights) and checks it with :func:`parse_architecture`.
:func:`run_plaintext` is the fixed-point reference; :mod:`ezprotocols.nn.secure`
runs the plan between the two parties.

Related work that guided the design: CrypTen (eprint 2109.00984 on arXiv; ONNX
import, ``unsupported ONNX op`` errors), SecureML (eprint 2017/396; fixed-point
truncation), MiniONN (eprint 2017/452; oblivious neural network transformations).
"""
from .demo import demo_model_path, demo_validation_set
from .plan import LIMITS, OP_KINDS, Op, Plan, parse_architecture
from .plaintext import (class_labels, decode, encode, error_bound, postprocess, predict_classes, run_fixed, run_float,
                        run_plaintext)

__all__ = ["load_onnx", "UnsupportedOp", "OnnxImportError", "Plan", "Op", "OP_KINDS", "LIMITS",
           "parse_architecture", "run_plaintext", "run_fixed", "run_float", "error_bound", "class_labels",
           "encode", "decode", "postprocess",
           "predict_classes", "demo_model_path", "demo_validation_set"]


_LAZY = {"load_onnx", "OnnxImportError", "UnsupportedOp"}


def __getattr__(name):
    """The ONNX importer (and the ``onnx`` package, about a second to import) is loaded
    only where a model is loaded: a client (query/validate) never needs it."""
    if name in _LAZY:
        from . import onnx_import
        return getattr(onnx_import, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
