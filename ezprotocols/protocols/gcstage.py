"""Fused garbled non-linear stages: truncation, ReLU, max, max-then-ReLU or argmax of
additively shared words in ONE garbled circuit, with additively shared (or revealed)
outputs: two message flights per stage, whatever the depth of the max tree.

This is the constant-round hybrid layer of MiniONN (Liu, Juuti, Lu, Asokan, eprint
2017/452) and Delphi (Mishra et al., eprint 2020/050): the garbler (P0) garbles, the
evaluator (P1) feeds its share bits through correlated OT, the circuit adds the two
shares, evaluates the layer and subtracts a fresh 64-bit mask ``R`` of the garbler,
and only the evaluator decodes the result ``y - R``; the garbler's share is ``R``.
Garbling is half-gates with free XOR (Zahur, Rosulek, Evans, eprint 2014/756) through
:class:`ezprotocols.gc.yao.YaoEngine`; the garbler's own bits (its share and ``R``)
need no transfer (shared-coin labels, :func:`.convert.private_labels`).

Per copy (``share`` of shape ``(n, k)``; words ``x_j = x0_j + x1_j``):

* ``t_j``: the low ``w_in`` bits of ``x_j`` read as a signed ``w_in``-bit integer,
  shifted right by ``f`` (exact floor division by ``2^f``: the fixed-point
  truncation of the layer before, fused in);
* ``op``: ``"id"`` ``t`` (k = 1), ``"relu"`` ``max(t, 0)`` (k = 1), ``"max"``
  ``max_j t_j``, ``"max_relu"`` ``max(max_j t_j, 0)``, ``"argmax"`` the lowest ``j``
  with ``t_j`` maximal (numpy's tie rule);
* output: additive shares in Z_2^64 (``reveal_to=None``), or the plain result to the
  evaluator only (``reveal_to`` = the evaluator: what a query reveals).

Exact when ``|x_j| < 2^(w_in - 1)`` (the public activation bound: ``w_in = act_bits +
f``, at most 64).  Messages: P1 -> P0: the chosen-choice corrections of ``n k w_in``
correlated OTs (one bit each over a silent OT source, 16 bytes over IKNP) and an
88-byte header the garbler checks; P0 -> P1: the garbled tables (32 bytes per AND
gate, :func:`stage_costs`) and one decoding bit per output wire.  One run each way:
a preceding masked-input message of P1 (a layer with P0's weights) shares P1's run.

What each party sees (semi-honest, simulatable):

* the garbler (P0): its COT outputs (independent of the evaluator's bits: the
  corrections are one-time padded by the random COT choices) and the evaluator's
  header (public shapes): simulated from its input alone;
* the evaluator (P1): its active input labels, the garbled tables and the decoding
  bits of the output wires only.  By the privacy of half-gates garbling (under the
  circular correlation-robust hash, eprint 2019/074; tweaks unique per gate and copy
  in a session) this view is simulated from the decoded output: ``y - R`` with ``R``
  uniform in Z_2^64 and unknown to P1 is a uniform word (or ``y`` itself when it is
  revealed to P1 by agreement).  Internal wires (the plain activations, comparison
  bits) are never decoded.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..gc import CircuitBuilder
from .convert import bits_word, private_labels, word_bits

__all__ = ["OPS", "stage", "stage_circuit", "stage_costs"]

U64 = np.uint64
OPS = ("id", "relu", "max", "max_relu", "argmax")
_OPCODE = {op: i + 1 for i, op in enumerate(OPS)}
#: input wires (both parties' bits) per protocol run: labels of one run stay ~ 64 MiB
CHUNK_BITS = 1 << 22


def _check(op: str, k: int, w_in: int, f: int) -> int:
    if op not in OPS:
        raise ValueError(f"gc stage: op must be one of {OPS}, not {op!r}")
    if isinstance(w_in, bool) or not 2 <= int(w_in) <= 64:
        raise ValueError(f"gc stage: w_in must be in [2, 64], got {w_in!r}")
    if isinstance(f, bool) or not 0 <= int(f) <= int(w_in) - 2:
        raise ValueError(f"gc stage: f must be in [0, w_in - 2] = [0, {int(w_in) - 2}], got {f!r}")
    if k < 1 or (op in ("id", "relu") and k != 1):
        raise ValueError(f"gc stage: op {op!r} takes {'one word' if op in ('id', 'relu') else 'k >= 1 words'} "
                         f"per copy, got k = {k}")
    return int(w_in) - int(f)


def _out_width(op: str, k: int) -> int:
    return max(1, math.ceil(math.log2(k))) if op == "argmax" else 64


@functools.lru_cache(maxsize=256)
def stage_circuit(op: str, k: int, w_in: int, f: int, shares: bool = True):
    """The circuit of one copy: inputs (garbler's share bits ``k w_in``, evaluator's
    share bits ``k w_in``[, the garbler's mask, 64 bits]); one output: ``y - R`` mod
    2^64 (``shares``) or ``y`` (64 bits two's complement; argmax: the index bits)."""
    _check(op, k, w_in, f)
    b = CircuitBuilder()
    A = b.input(w_in, shape=(k,))
    B = b.input(w_in, shape=(k,))
    R = b.input(64) if shares else None
    t = b.add(A, B)[..., f:]                     # (k, w): floor((x0 + x1) / 2^f), signed
    if op == "argmax":
        y = b.argmax(t, axis=-2, signed=True) if k > 1 else b.const(0, 1)
        y = b.extend(y, 64, signed=False) if shares else y
    else:
        y = b.max(t, axis=-2, signed=True) if op in ("max", "max_relu") else t[0]
        if op in ("relu", "max_relu"):
            y = b.relu(y)
        y = b.extend(y, 64, signed=True)
    b.output(b.sub(y, R) if shares else y)
    return b.build()


def stage_costs(op: str, n: int, k: int, w_in: int, f: int = 0, shares: bool = True, silent: bool = True) -> dict:
    """Bytes of one stage on ``n`` copies (public; one protocol run, ``n k w_in`` below
    :data:`CHUNK_BITS`): garbled tables, the evaluator's COTs (``silent``: a ready
    silent source, one bit each plus its 32-byte request header; else IKNP, 16 bytes
    each), decoding bits, the 88-byte header."""
    c = stage_circuit(op, k, w_in, f, shares)
    tables = 32 * c.n_and * n
    cot = (n * k * w_in + 7) // 8 + 32 if silent else 16 * n * k * w_in
    dec = (n * sum(c.output_widths) + 7) // 8
    return {"bytes": tables + cot + dec + 88, "tables": tables, "and_gates": c.n_and * n, "rounds": 2}


def stage(s, share, op: str, *, f: int = 0, w_in: int = 64, reveal_to=None, garbler: int = 0,
          step: str = "gc.stage") -> np.ndarray:
    """One fused stage on this party's ``share`` (uint64, shape ``(..., k)``; for
    ``"id"``/``"relu"`` any shape, elementwise).  Returns this party's uint64 shares of
    the result (shape ``share.shape[:-1]``, or ``share.shape`` elementwise), or with
    ``reveal_to`` equal to the evaluator the plain results there (int64; argmax
    indices) and None at the garbler.  Collective; see the module docstring."""
    ev = 1 - garbler
    if garbler not in (0, 1):
        raise ValueError(f"gc stage: garbler must be 0 or 1, not {garbler!r}")
    if reveal_to is not None and reveal_to != ev:
        raise ValueError(f"gc stage: results can be revealed to the evaluator P{ev} only")
    a = np.ascontiguousarray(share, dtype=U64)
    elementwise = op in ("id", "relu")
    if elementwise:
        out_shape = a.shape
        a = a.reshape(-1, 1)
    else:
        if a.ndim < 1:
            raise ValueError(f"gc stage: {op} needs a word axis (shape (..., k))")
        out_shape = a.shape[:-1]
        a = a.reshape(-1, a.shape[-1]) if a.shape[-1] else a.reshape(-1, 0)
    n, k = a.shape
    _check(op, max(k, 1), w_in, f)
    if k == 0:
        raise ValueError(f"gc stage: {op} of an empty set of words")
    shares = reveal_to is None
    mine = s.role == garbler
    if n == 0:
        return np.zeros(out_shape, U64) if shares else (np.zeros(out_shape, np.int64) if s.role == ev else None)
    circ = stage_circuit(op, k, w_in, f, shares)
    per = max(1, CHUNK_BITS // (k * w_in))
    res = np.empty(n, U64)
    with s.phase(step):
        for lo in range(0, n, per):
            hi = min(n, lo + per)
            m = hi - lo
            bits = word_bits(a[lo:hi], w_in).reshape(m, k * w_in)
            B = s.gc.input(None if mine else bits, owner=ev, shape=(m, k * w_in), garbler=garbler)
            A = private_labels(s, bits if mine else None, garbler, (m, k * w_in))
            ins = [A, B]
            if shares:
                Rw = s.prg.random_uint64(m) if mine else None
                ins.append(private_labels(s, word_bits(Rw, 64) if mine else None, garbler, (m, 64)))
            (out,) = s.gc.run(circ, ins, batch=m, oneway=True)
            dec = s.gc.reveal(out, to=ev)
            if mine:
                res[lo:hi] = Rw if shares else 0
            else:
                res[lo:hi] = bits_word(dec)
    if not shares:
        if mine:
            return None
        return res.view(np.int64).reshape(out_shape)
    return res.reshape(out_shape)
