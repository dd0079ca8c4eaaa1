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
from .onnx_import import OnnxImportError, UnsupportedOp, load_onnx
from .plan import LIMITS, OP_KINDS, Op, Plan, parse_architecture
from .plaintext import (class_labels, decode, encode, error_bound, postprocess, predict_classes, run_fixed, run_float,
                        run_plaintext)

__all__ = ["load_onnx", "UnsupportedOp", "OnnxImportError", "Plan", "Op", "OP_KINDS", "LIMITS",
           "parse_architecture", "run_plaintext", "run_fixed", "run_float", "error_bound", "class_labels",
           "encode", "decode", "postprocess",
           "predict_classes", "demo_model_path", "demo_validation_set"]
