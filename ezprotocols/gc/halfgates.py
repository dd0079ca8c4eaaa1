"""Streaming half-gates garbling and evaluation of a circuit over a batch of copies.

Zahur, Rosulek, Evans, "Two Halves Make a Whole" (eprint 2014/756): free XOR, point
and permute, two ciphertexts (32 bytes) per AND gate, nothing for XOR and INV.  The
hash is the tweakable circular correlation-robust hash from fixed-key AES of Guo,
Kumar, Wang, Katz (eprint 2019/074): ``H(x, j) = pi(pi(x) ^ j) ^ pi(x)``; the tweak
of table entry t is ``(0x47 << 56, base + 2t)`` and ``(.., base + 2t + 1)`` (domain
byte 'G'; ``base`` is a per-session counter, so a tweak never repeats under the same
delta).  The kernels are in ``ezprotocols/_ext/include/ezp_garble.h``.

Layout: the batch is cut into chunks of W copies; for a chunk, the labels of the
circuit's live values sit in ``nslots`` rows of W labels (see the circuit program,
``Circuit.program``), so the kernels work on contiguous copies and the label memory
is ``nslots * W * 16`` bytes (about ``LABEL_BYTES``) whatever the batch.  The garbled
tables stream in messages of at most ``CHUNK_BYTES``: the garbler hands each one to
``send`` as soon as it is full and garbles on while it travels; the evaluator
evaluates each message as it arrives.  Both sides derive the same schedule from
(program, batch, W, CHUNK_BYTES) alone.

The garbler's labels are zero-labels (label of bit 0), the evaluator's are active
labels; delta (the free-XOR offset) has its least significant bit set, so the
permute bit of a wire is the lsb of its zero-label.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from .._ext import garble as _k

__all__ = ["TWEAK_HI", "CHUNK_BYTES", "LABEL_BYTES", "copies_per_chunk", "schedule", "garble", "evaluate",
           "GarbledRun"]

TWEAK_HI = 0x47 << 56           # tweak domain 'G' (garbling), high 64-bit word
CHUNK_BYTES = 4 << 20           # garbled tables per message
LABEL_BYTES = 1 << 20           # target size of a chunk's label rows (cache resident)


#: timing of the last garble/evaluate call in this process: total seconds, seconds in
#: send/recv (waiting for the channel), the rest (kernels, label gathers), messages
last_timing: dict = {}


def copies_per_chunk(nslots: int, batch: int, label_bytes: int = LABEL_BYTES,
                     chunk_bytes: int = CHUNK_BYTES) -> int:
    """W: copies garbled together (multiple of 4 when >= 8, so VAES loads whole rows)."""
    if batch <= 0:
        return 1
    row = 16 * max(nslots, 1)
    w = max(1, label_bytes // row)
    if w < 4:            # big circuits: still 4 copies at a time while that stays under 64 MiB
        w = max(w, min(4, (64 << 20) // row))
    w = min(w, max(1, chunk_bytes // 32), batch)
    if w >= 8:
        w -= w % 4
    return max(1, w)


def schedule(prog, batch: int, W: int, chunk_bytes: int = CHUNK_BYTES):
    """Yield ``(items, ops)`` per message: ``items`` AND tables (32 bytes each) and the
    operations that produce/consume them: ``("load", c0, w)``, ``("exec", i0, i1,
    item_offset, w)``, ``("store", c0, w)``.  A last message may have 0 items (only
    free gates left); it is executed but not sent."""
    cap = max(1, chunk_bytes // 32)
    if W > cap:
        raise ValueError("W copies of one AND gate must fit in a message")
    pref = prog.and_prefix
    n = int(prog.ninstr)
    total_and = int(pref[n])
    ops: list = []
    items = 0
    for c0 in range(0, batch, W):
        w = min(W, batch - c0)
        ops.append(("load", c0, w))
        i = 0
        while i < n:
            room = cap - items
            if room < w and total_and - int(pref[i]) > 0:
                yield items, ops
                ops, items = [], 0
                room = cap
            j = int(np.searchsorted(pref, pref[i] + room // w, side="right")) - 1
            j = min(max(j, i + 1), n)
            k = int(pref[j] - pref[i]) * w
            ops.append(("exec", i, j, items, w))
            items += k
            i = j
        ops.append(("store", c0, w))
    if ops or items:
        yield items, ops


def _views(arrs, slots, what):
    out = []
    for x, s in zip(arrs, slots):
        x = np.asarray(x)
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (s.size, 16) or (x.size and x.strides[1:] != (16, 1)):
            raise ValueError(f"{what}: expected uint8 (batch, {s.size}, 16) label arrays with contiguous labels")
        out.append((x, s))
    return out


def _run(gb: int, prog, batch: int, inputs, in_slots, outputs, out_slots, delta, tweak: int, io,
         chunk_bytes: int, label_bytes: int, W: int | None):
    ins = _views(inputs, in_slots, "inputs")
    outs = _views(outputs, out_slots, "outputs")
    for x, _ in ins + outs:
        if x.shape[0] != batch:
            raise ValueError(f"label arrays must have {batch} copies, got {x.shape[0]}")
    W = W or copies_per_chunk(prog.nslots, batch, label_bytes, chunk_bytes)
    lab_all = np.empty(prog.nslots * W * 16, np.uint8)
    delta = np.ascontiguousarray(delta, np.uint8).reshape(16) if delta is not None else np.zeros(16, np.uint8)
    hi = TWEAK_HI
    total = 0
    t_io = 0.0
    t_start = time.perf_counter()
    nmsg = 0
    for items, ops in schedule(prog, batch, W, chunk_bytes):
        nbytes = 32 * items
        if gb:
            tab = np.empty(nbytes, np.uint8) if nbytes else None
        elif nbytes:
            t = time.perf_counter()
            tab = io(nbytes)
            t_io += time.perf_counter() - t
        else:
            tab = None
        lab = None
        for op in ops:
            kind = op[0]
            if kind == "exec":
                _, i0, i1, off, w = op
                lab = lab_all[:prog.nslots * w * 16]
                prog.exec_(gb, i0, i1, lab, w, delta, hi, tweak + 2 * (total + off),
                           tab[32 * off:] if tab is not None else None)
            elif kind == "load":
                _, c0, w = op
                lab = lab_all[:prog.nslots * w * 16]
                for x, s in ins:
                    _k.gather_in(lab, w, s, x[c0:c0 + w])
            else:
                _, c0, w = op
                lab = lab_all[:prog.nslots * w * 16]
                for x, s in outs:
                    _k.scatter_out(lab, w, s, x[c0:c0 + w])
        if gb and nbytes:
            t = time.perf_counter()
            io(tab)
            t_io += time.perf_counter() - t
        nmsg += bool(nbytes)
        total += items
    elapsed = time.perf_counter() - t_start
    last_timing.update(seconds=elapsed, io_seconds=t_io, compute_seconds=elapsed - t_io, messages=nmsg,
                       tables=total, W=W)
    return total


def _slots(prog, widths, offsets=None, out=False):
    res = []
    if out:
        allslots = np.asarray(prog.out_slots, np.uint32)
        off = 0
        for w in widths:
            res.append(np.ascontiguousarray(allslots[off:off + w]))
            off += w
    else:
        off = 0
        for w in widths:
            res.append(np.arange(off, off + w, dtype=np.uint32))
            off += w
    return res


def garble(circuit, batch: int, inputs: Sequence[np.ndarray], delta, tweak: int,
           send: Callable[[np.ndarray], None], *, chunk_bytes: int = CHUNK_BYTES,
           label_bytes: int = LABEL_BYTES, W: int | None = None) -> list[np.ndarray]:
    """Garble ``batch`` copies.  ``inputs[i]``: zero-labels uint8[batch, width_i, 16]
    (any copy stride, contiguous labels per copy).  Calls ``send(tables)`` per message
    (a fresh uint8 array, never touched again).  Returns the output zero-labels, one
    uint8[batch, width_j, 16] per output value.  Consumes ``2 * n_and * batch`` tweaks
    from ``tweak``."""
    prog = circuit.program
    outs = [np.empty((batch, w, 16), np.uint8) for w in circuit.output_widths]
    _run(1, prog, batch, inputs, _slots(prog, circuit.input_widths), outs,
         _slots(prog, circuit.output_widths, out=True), delta, tweak, send, chunk_bytes, label_bytes, W)
    return outs


def evaluate(circuit, batch: int, inputs: Sequence[np.ndarray], tweak: int,
             recv: Callable[[int], np.ndarray], *, chunk_bytes: int = CHUNK_BYTES,
             label_bytes: int = LABEL_BYTES, W: int | None = None) -> list[np.ndarray]:
    """Evaluate ``batch`` garbled copies: ``inputs[i]`` active labels; ``recv(nbytes)``
    returns the next table message (uint8[nbytes]).  Returns the output active labels."""
    prog = circuit.program
    outs = [np.empty((batch, w, 16), np.uint8) for w in circuit.output_widths]
    _run(0, prog, batch, inputs, _slots(prog, circuit.input_widths), outs,
         _slots(prog, circuit.output_widths, out=True), None, tweak, recv, chunk_bytes, label_bytes, W)
    return outs


class GarbledRun:
    """Garble and evaluate in one process (tests, benchmarks of the kernels):
    ``GarbledRun(circuit, batch, delta).run(bits)``."""

    def __init__(self, circuit, batch: int, delta: np.ndarray, tweak: int = 0, **kw):
        self.circuit, self.batch, self.delta, self.tweak, self.kw = circuit, batch, delta, tweak, kw

    def run(self, inputs_bits: Sequence[np.ndarray], prg=None):
        from .._ext.crypto import Prg
        prg = prg or Prg()
        c, batch = self.circuit, self.batch
        zero = [prg.random_uint8((batch, w, 16)) for w in c.input_widths]
        active = [z ^ (np.asarray(x, np.uint8)[..., None] * self.delta) for z, x in zip(zero, inputs_bits)]
        tables: list[np.ndarray] = []
        out0 = garble(c, batch, zero, self.delta, self.tweak, tables.append, **self.kw)
        it = iter(tables)

        def recv(n):
            t = next(it)
            assert t.size == n
            return t

        out1 = evaluate(c, batch, active, self.tweak, recv, **self.kw)
        bits = [(a[..., 0] ^ z[..., 0]) & 1 for a, z in zip(out1, out0)]
        return bits, tables, out0, out1
