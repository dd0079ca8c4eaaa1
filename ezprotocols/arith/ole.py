"""Oblivious linear evaluation with vector correlations from random OT.

Gilboa's multiplication (Gilboa, CRYPTO 1999; used for matrix triples by
SecureML, Mohassel and Zhang, eprint 2017/396, section 4.1): to share ``v * c``
where the *receiver* holds an ``nbits``-bit integer ``v`` and the *sender* a
vector ``c`` of ``m`` ring elements, run one OT per bit ``b`` of ``v``, the
receiver choosing with ``v_b``.  OT ``b`` carries the correlation ``c`` modulo
``2^(64-b)`` only (the bits that survive the final shift by ``b``): the sender
outputs ``x_b``, the receiver ``y_b = x_b + v_b c``, and
``sum_b 2^b (y_b - x_b) = v c mod 2^64``.

Each OT is a random OT (IKNP, ``s.ot.send_rot``/``recv_rot``) derandomised
with one correction ``d = G(k0) + c - G(k1) mod 2^(64-b)``, bit-packed to exactly
``64 - b`` bits per value; ``G`` expands a 16-byte OT key with the
correlation-robust hash of fixed-key AES (eprint 2019/074, 7.2; tweak domain
0x41).  The expansion, the packing and the accumulation run in
``ezprotocols._ext.ring`` (``vole_send``/``vole_recv``).

:func:`ole_accumulate` is the one primitive on which matrix triples, convolution
triples and the linear layers with one party's weights are built:

    acc[ai[p], :] += values[p] * corr[ci[p], :]      for p in range(P), mod 2^64

with ``values`` (``uint64[P]``, each below ``2^nbits``) at the receiver,
``corr`` (``uint64[R, m]``) at the sender, and ``ci``, ``ai`` public.  Each
party gets an additive share of ``acc``.  Cost (:func:`ole_bytes`):
``P * nbits`` OTs and ``P * m * sum_{b<nbits} (64 - b)`` bits of corrections.
"""
from __future__ import annotations

import numpy as np

from .._ext import ring
from ..errors import ProtocolError

__all__ = ["ole_accumulate", "ole_bytes", "ole_ots", "OT_BYTES", "TWEAK_DOMAIN", "bits_of"]

U64 = np.uint64
TWEAK_DOMAIN = 0x41 << 56
OT_BYTES = 16            # IKNP: the receiver's u-matrix column, kappa = 128 bits per OT
ROT_BATCH = 1 << 20      # OTs per random-OT call
CHUNK_BYTES = 4 << 20    # packed corrections per message (streamed while the next is computed)


def bits_of(values: np.ndarray, nbits: int) -> np.ndarray:
    """``uint8[P * nbits]``: bit ``b`` of ``values[p]`` at ``p * nbits + b`` (LSB first)."""
    v = np.ascontiguousarray(values, dtype=U64)
    if v.size == 0:
        return np.zeros(0, np.uint8)
    bits = np.unpackbits(v.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    if nbits != 64:
        bits = bits[:, :nbits]
    return np.ascontiguousarray(bits).reshape(-1)


def _width_sum(nbits: int) -> int:
    return sum(64 - b for b in range(nbits))


def ole_ots(P: int, nbits: int) -> int:
    return int(P) * int(nbits)


def ole_bytes(P: int, m: int, nbits: int, ot_bytes: int = OT_BYTES) -> int:
    """Payload bytes of :func:`ole_accumulate` (both directions, excluding base OTs and the
    at most 7 bytes of padding per streamed message)."""
    return int(P) * int(nbits) * ot_bytes + (int(P) * int(m) * _width_sum(nbits) + 7) // 8


def ole_accumulate(s, *, receiver: int, nbits: int, ci, ai, n_acc: int, m: int,
                   values=None, corr=None, step: str = "arith.ole") -> np.ndarray:
    """This party's additive share of ``acc[ai[p]] += values[p] * corr[ci[p]]`` (see the
    module docstring).  The receiver passes ``values``, the sender ``corr``."""
    ci = np.ascontiguousarray(ci, dtype=np.int64).reshape(-1)
    ai = np.ascontiguousarray(ai, dtype=np.int64).reshape(-1)
    P = ci.shape[0]
    if ai.shape[0] != P:
        raise ValueError(f"{step}: ci and ai must have the same length")
    if not 1 <= nbits <= 64:
        raise ValueError(f"{step}: nbits must be in [1, 64]")
    if receiver not in (0, 1):
        raise ValueError(f"{step}: receiver must be 0 or 1")
    acc = np.zeros((int(n_acc), int(m)), dtype=U64)
    is_recv = s.role == receiver
    if is_recv:
        if values is None:
            raise ValueError(f"{step}: the receiver (P{receiver}) must pass values")
        values = np.ascontiguousarray(values, dtype=U64).reshape(-1)
        if values.shape[0] != P:
            raise ValueError(f"{step}: {values.shape[0]} values for {P} index pairs")
        if nbits < 64 and P and int(values.max()) >> nbits:
            raise ValueError(f"{step}: values do not fit in {nbits} bits")
    else:
        if corr is None:
            raise ValueError(f"{step}: the sender (P{1 - receiver}) must pass corr")
        corr = np.ascontiguousarray(corr, dtype=U64)
        if corr.ndim != 2 or corr.shape[1] != m:
            raise ValueError(f"{step}: corr must be uint64[rows, {m}], got {corr.shape}")
        if P and (ci.min() < 0 or ci.max() >= corr.shape[0]):
            raise ValueError(f"{step}: correlation index out of range")
    if P and (ai.min() < 0 or ai.max() >= n_acc):
        raise ValueError(f"{step}: accumulator index out of range")
    if P == 0 or m == 0 or n_acc == 0:
        return acc
    tweak_hi = TWEAK_DOMAIN | ((s.arith.next_tweak() & 0xFFFFFFFF) << 8)
    shifts_one = np.arange(nbits, dtype=np.uint8)
    rot_p = max(1, ROT_BATCH // nbits)
    msg_p = max(1, (CHUNK_BYTES * 8) // max(1, m * _width_sum(nbits)))
    for p0 in range(0, P, rot_p):
        p1 = min(P, p0 + rot_p)
        n_ot = (p1 - p0) * nbits
        if is_recv:
            bits = bits_of(values[p0:p1], nbits)
            keys = np.ascontiguousarray(s.ot.recv_rot(bits), dtype=np.uint8).reshape(-1, 16)
            if keys.shape[0] != n_ot:
                raise ProtocolError(f"{step}: random OT returned {keys.shape[0]} keys for {n_ot} OTs")
        else:
            k0, k1 = s.ot.send_rot(n_ot)
            k0 = np.ascontiguousarray(k0, dtype=np.uint8).reshape(-1, 16)
            k1 = np.ascontiguousarray(k1, dtype=np.uint8).reshape(-1, 16)
        for q0 in range(p0, p1, msg_p):
            q1 = min(p1, q0 + msg_p)
            o0, o1 = (q0 - p0) * nbits, (q1 - p0) * nbits
            sh = np.tile(shifts_one, q1 - q0)
            ais = np.repeat(ai[q0:q1], nbits)
            if is_recv:
                nw = ring.vole_words(m, sh)
                pk = np.empty(nw + 1, dtype=U64)        # + a padding word the kernel reads
                pk[nw] = 0
                s.channel.recv_array(step, U64, (nw,), out=pk[:nw])
                ring.vole_recv(keys[o0:o1], bits[o0:o1], pk, acc, ais, sh, tweak_hi)
            else:
                cis = np.repeat(ci[q0:q1], nbits)
                pk = ring.vole_send(k0[o0:o1], k1[o0:o1], corr, cis, acc, ais, sh, tweak_hi)
                s.channel.send(step, pk)
    return acc
