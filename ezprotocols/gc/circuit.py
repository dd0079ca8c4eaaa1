"""Boolean circuits: a flat numpy representation, Bristol Fashion I/O, cleartext
evaluation, levelisation.

A :class:`Circuit` is a list of single-output gates in topological order, held as
four flat arrays: ``op`` (uint8: XOR, AND, INV, EQW, EQ), ``a`` and ``b`` (input
wires; ``b`` is 0 for one-input gates, and for EQ ``a`` is the constant 0/1) and
``c`` (output wire), all uint32.  Wire numbering follows Bristol Fashion
(https://nigelsmart.github.io/MPC-Circuits/): the input values come first, in
order, and the outputs are the last wires; bit k of a value is wire k of that
value (least significant bit first).  A MAND line is stored as one AND per output.

>>> import numpy as np
>>> from ezprotocols.gc import CircuitBuilder
>>> b = CircuitBuilder()
>>> x, y = b.input(8), b.input(8)
>>> b.output(b.add(x, y))
>>> c = b.build()
>>> c.n_and, c.input_widths, c.output_widths
(7, (8, 8), (8,))
>>> bits = lambda v: np.array([[(v >> k) & 1 for k in range(8)]], np.uint8)
>>> out = c.evaluate([bits(200), bits(100)])[0]
>>> int(sum(int(v) << k for k, v in enumerate(out[0])))
44
"""
from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np

from .._ext import garble as _k
from ..errors import CircuitError

__all__ = ["Circuit", "OP_XOR", "OP_AND", "OP_INV", "OP_EQW", "OP_EQ", "OP_NAMES",
           "ints_to_bits", "bits_to_ints"]

OP_XOR, OP_AND, OP_INV, OP_EQW, OP_EQ = _k.OP_XOR, _k.OP_AND, _k.OP_INV, _k.OP_EQW, _k.OP_EQ
OP_NAMES = _k.OP_NAMES
MAX_WIRES = 0xFFFFFFFE
SPARSE_WIRES_OK = 1 << 20    # any file may declare this many wires (sparse numbering), whatever its size


def _err(line: int, msg: str) -> CircuitError:
    e = CircuitError(f"line {line}: {msg}")
    e.line = line
    return e


def _ro(x, dtype) -> np.ndarray:
    arr = np.array(x, dtype=dtype, copy=True, order="C")
    if arr.ndim != 1:
        raise CircuitError("gate arrays must be one-dimensional")
    arr.flags.writeable = False
    return arr


class Circuit:
    """``Circuit(op, a, b, c, nwires, input_widths, output_widths)``.

    The arrays are validated (wires in range, every wire set before it is read,
    constants 0/1, every output wire set) and frozen.  Attributes: ``op, a, b, c``,
    ``nwires``, ``input_widths``, ``output_widths``, ``ngates``, ``n_and``,
    ``n_xor``, ``n_inv``, ``counts`` (per op name), ``and_depth``.
    """

    def __init__(self, op, a, b, c, nwires: int, input_widths: Sequence[int], output_widths: Sequence[int],
                 *, _checked: bool = False):
        self.op = _ro(op, np.uint8)
        self.a = _ro(a, np.uint32)
        self.b = _ro(b, np.uint32)
        self.c = _ro(c, np.uint32)
        self.nwires = int(nwires)
        self.input_widths = tuple(int(w) for w in input_widths)
        self.output_widths = tuple(int(w) for w in output_widths)
        if any(w < 0 for w in self.input_widths + self.output_widths):
            raise CircuitError("input and output widths must be non-negative")
        if not (0 <= self.nwires <= MAX_WIRES):
            raise CircuitError(f"nwires must be in [0, {MAX_WIRES}]")
        if self.n_input_wires > self.nwires or self.n_output_wires > self.nwires:
            raise CircuitError(f"{self.n_input_wires} input and {self.n_output_wires} output wires "
                               f"do not fit in {self.nwires} wires")
        if not _checked:
            isset = _k.validate(self.op, self.a, self.b, self.c, self.nwires, self.n_input_wires)
            self._check_outputs_set(isset, None)
        self._program = None
        self._fingerprint = None
        self._levels = None

    # ------------------------------------------------------------------ shape
    @property
    def ngates(self) -> int:
        return int(self.op.shape[0])

    @property
    def n_input_wires(self) -> int:
        return sum(self.input_widths)

    @property
    def n_output_wires(self) -> int:
        return sum(self.output_widths)

    @property
    def input_offsets(self) -> tuple:
        """First wire of each input value."""
        return tuple(int(x) for x in np.cumsum((0,) + self.input_widths)[:-1])

    @property
    def output_wires(self) -> np.ndarray:
        """The output wires (the last ``n_output_wires`` wires), in output order."""
        return np.arange(self.nwires - self.n_output_wires, self.nwires, dtype=np.uint32)

    @property
    def counts(self) -> dict:
        cnt = np.bincount(self.op, minlength=len(OP_NAMES))
        return {name: int(cnt[i]) for i, name in enumerate(OP_NAMES)}

    @property
    def n_and(self) -> int:
        return int(np.count_nonzero(self.op == OP_AND))

    @property
    def n_xor(self) -> int:
        return int(np.count_nonzero(self.op == OP_XOR))

    @property
    def n_inv(self) -> int:
        return int(np.count_nonzero(self.op == OP_INV))

    def __repr__(self):
        return (f"<Circuit {self.ngates} gates ({self.n_and} AND, {self.n_xor} XOR, {self.n_inv} INV), "
                f"{self.nwires} wires, inputs {list(self.input_widths)}, outputs {list(self.output_widths)}>")

    def __eq__(self, other):
        if not isinstance(other, Circuit):
            return NotImplemented
        return (self.nwires == other.nwires and self.input_widths == other.input_widths
                and self.output_widths == other.output_widths
                and all(np.array_equal(getattr(self, f), getattr(other, f)) for f in ("op", "a", "b", "c")))

    __hash__ = None

    # ------------------------------------------------------------------ structure
    def _compute_levels(self):
        if self._levels is None:
            self._levels = _k.and_levels(self.op, self.a, self.b, self.c, self.nwires)
        return self._levels

    @property
    def and_depth(self) -> int:
        """Number of AND gates on the longest path (the rounds of a GMW evaluation)."""
        return self._compute_levels()[1]

    def and_levels(self) -> np.ndarray:
        """AND level of every gate (1 + the AND depth of its inputs for an AND gate; 0 for
        the free gates)."""
        return self._compute_levels()[0]

    def and_layers(self) -> list[np.ndarray]:
        """Gate indices of the AND gates, one array per AND level: the gates of a layer
        are independent of each other (this is what the garbling kernels pipeline)."""
        lev = self.and_levels()
        idx = np.flatnonzero(self.op == OP_AND)
        lv = lev[idx]
        order = np.argsort(lv, kind="stable")
        bounds = np.searchsorted(lv[order], np.arange(1, self.and_depth + 2))
        return [idx[order[bounds[i]:bounds[i + 1]]] for i in range(self.and_depth)]

    @property
    def program(self):
        """The circuit compiled for the garbling kernels (cached)."""
        if self._program is None:
            self._program = _k.Program(self.op, self.a, self.b, self.c, self.nwires, self.n_input_wires,
                                       self.output_wires)
        return self._program

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 (first 16 bytes) of the circuit: both parties compare it before running."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(np.array([self.nwires, len(self.input_widths), len(self.output_widths)], np.uint64).tobytes())
            h.update(np.array(self.input_widths + self.output_widths, np.uint64).tobytes())
            for arr in (self.op, self.a, self.b, self.c):
                h.update(arr.tobytes())
            self._fingerprint = h.digest()[:16]
        return self._fingerprint

    # ------------------------------------------------------------------ Bristol Fashion
    def _check_outputs_set(self, isset, line):
        if self.n_output_wires == 0:
            return
        bits = np.unpackbits(isset, bitorder="little")
        ow = self.output_wires
        missing = np.flatnonzero(bits[ow] == 0)
        if missing.size:
            w = int(ow[missing[0]])
            if line is None:
                raise CircuitError(f"output wire {w} is never set")
            raise _err(line, f"output wire {w} is never set")

    @classmethod
    def from_bristol(cls, path) -> "Circuit":
        """Read a Bristol Fashion file.  Raises :class:`CircuitError` (with ``.line``) on
        any malformed content."""
        with open(os.fspath(path), "rb") as f:
            data = f.read()
        return cls.from_bristol_bytes(data)

    @classmethod
    def from_bristol_bytes(cls, data: bytes | str) -> "Circuit":
        if isinstance(data, str):
            data = data.encode()
        data = bytes(data)
        pos, line = 0, 1
        header = []
        header_lines = []
        n = len(data)
        while len(header) < 3:
            if pos >= n:
                raise _err(line, "file ends inside the header (3 lines expected)")
            end = data.find(b"\n", pos)
            if end < 0:
                end = n
            raw = data[pos:end]
            toks = raw.split()
            if toks:
                header.append(toks)
                header_lines.append(line)
            pos = end + 1
            line += 1

        def ints(toks, ln, what):
            out = []
            for t in toks:
                if not t.isdigit():
                    raise _err(ln, f"expected {what}, got {t[:30].decode('ascii', 'replace')!r}")
                out.append(int(t))
            return out

        l1, l2, l3 = header_lines
        h1 = ints(header[0], l1, "an integer")
        if len(h1) != 2:
            raise _err(l1, f"expected 'ngates nwires', got {len(h1)} numbers")
        ngates, nwires = h1
        if nwires > MAX_WIRES:
            raise _err(l1, f"{nwires} wires, at most {MAX_WIRES} are supported")
        widths = []
        for toks, ln, what in ((header[1], l2, "input"), (header[2], l3, "output")):
            v = ints(toks, ln, "an integer")
            if v[0] != len(v) - 1:
                raise _err(ln, f"announces {v[0]} {what} values but lists {len(v) - 1} widths")
            widths.append(tuple(v[1:]))
        nin, nout = sum(widths[0]), sum(widths[1])
        if nin > nwires:
            raise _err(l2, f"{nin} input wires do not fit in the {nwires} wires of line 1")
        if nout > nwires:
            raise _err(l3, f"{nout} output wires do not fit in the {nwires} wires of line 1")
        # wire numbers may be sparse (unused wires are legal); a wire count far beyond what
        # the file could ever use would only make us allocate for nothing
        if nwires > max(nin + nout + 2 * n, SPARSE_WIRES_OK):
            raise _err(l1, f"{nwires} wires is more than a file of {n} bytes can use")
        op, a, b, c, isset = _k.parse_gates(data, min(pos, n), line, ngates, nwires, nin)
        circ = cls(op, a, b, c, nwires, widths[0], widths[1], _checked=True)
        circ._check_outputs_set(isset, l3)
        return circ

    def to_bristol_bytes(self) -> bytes:
        head = (f"{self.ngates} {self.nwires}\n"
                f"{len(self.input_widths)} {' '.join(map(str, self.input_widths))}\n"
                f"{len(self.output_widths)} {' '.join(map(str, self.output_widths))}\n\n").encode()
        return head + _k.write_gates(self.op, self.a, self.b, self.c)

    def to_bristol(self, path) -> None:
        """Write the circuit as Bristol Fashion (AND gates of a MAND line come out as
        separate AND lines)."""
        with open(os.fspath(path), "wb") as f:
            f.write(self.to_bristol_bytes())

    # ------------------------------------------------------------------ cleartext evaluation
    def _check_inputs(self, inputs, what="inputs"):
        if len(inputs) != len(self.input_widths):
            raise ValueError(f"{what}: the circuit has {len(self.input_widths)} input values, got {len(inputs)}")
        arrs = [np.asarray(x) for x in inputs]
        single = all(x.ndim == 1 for x in arrs) and len(arrs) > 0
        out = []
        batch = None
        for i, (x, w) in enumerate(zip(arrs, self.input_widths)):
            if single:
                x = x.reshape(1, -1)
            if x.ndim != 2 or x.shape[1] != w:
                raise ValueError(f"{what}[{i}] must have shape (batch, {w}), got {x.shape}")
            if batch is None:
                batch = x.shape[0]
            elif x.shape[0] != batch:
                raise ValueError(f"{what}: input values have different batch sizes ({batch} and {x.shape[0]})")
            out.append(x)
        return out, (batch if batch is not None else 1), single

    def evaluate(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Evaluate in the clear.  ``inputs[i]``: 0/1 array of shape (batch, width_i) (or
        (width_i,) for one copy).  Returns one (batch, width_j) uint8 array per output.
        Bit-sliced: 64 copies per machine word, the gate loop is in C."""
        xs, batch, single = self._check_inputs(inputs)
        nw = (batch + 63) // 64
        wires = np.zeros((self.nwires, max(nw, 1)), np.uint64)
        off = 0
        for x, w in zip(xs, self.input_widths):
            if w and batch:
                xt = np.zeros((w, nw * 64), np.uint8)
                xt[:, :batch] = x.T & 1
                wires[off:off + w, :nw] = np.packbits(xt, axis=1, bitorder="little").view("<u8")
            off += w
        if batch:
            _k.eval_plain(self.op, self.a, self.b, self.c, wires)
        outs = []
        ow = self.output_wires
        off = 0
        for w in self.output_widths:
            rows = wires[ow[off:off + w]].astype("<u8").view(np.uint8)
            bits = np.unpackbits(rows, axis=1, bitorder="little")[:, :batch] if w else np.zeros((0, batch), np.uint8)
            o = np.ascontiguousarray(bits.T)
            outs.append(o[0] if single else o)
            off += w
        return outs


# ---------------------------------------------------------------------- bit helpers

def ints_to_bits(values, width: int) -> np.ndarray:
    """Integers (numpy integer array of any shape, two's complement for signed) to bits,
    LSB first: shape (..., width), uint8.  Widths above 64 need Python ints (object
    arrays)."""
    v = np.asarray(values)
    if v.dtype == object or width > 64:
        flat = [int(x) for x in v.reshape(-1)]
        out = np.array([[(x >> k) & 1 for k in range(width)] for x in flat], np.uint8)
        return out.reshape(v.shape + (width,))
    u = v.astype(np.int64).view(np.uint64) if v.dtype.kind == "i" else v.astype(np.uint64)
    return ((u[..., None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)


def bits_to_ints(bits, signed: bool = False) -> np.ndarray:
    """Bits (..., width) LSB first to uint64 (or int64 if ``signed``); width <= 64."""
    b = np.asarray(bits, np.uint64)
    w = b.shape[-1]
    if w > 64:
        raise ValueError("bits_to_ints supports widths up to 64")
    v = (b << np.arange(w, dtype=np.uint64)).sum(axis=-1, dtype=np.uint64) if w else np.zeros(b.shape[:-1], np.uint64)
    if signed and 0 < w:
        if w < 64:
            sign = np.uint64(1) << np.uint64(w - 1)
            v = (v ^ sign) - sign
        return v.view(np.int64) if isinstance(v, np.ndarray) else np.int64(v)
    return v
