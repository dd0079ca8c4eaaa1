"""Circuit IR: Bristol Fashion parsing (known-answer circuits, MAND/EQ/EQW, every
kind of malformed file with its line number), writing and round trips, cleartext
evaluation, AND layers, the compiled program."""
import json
import os

import numpy as np
import pytest

from ezprotocols import CircuitError
from ezprotocols.gc import Circuit, CircuitBuilder, bits_to_ints, ints_to_bits
from ezprotocols.gc.circuit import OP_AND, OP_EQ, OP_EQW, OP_INV, OP_XOR

from conftest import SHARED

CIRCUITS = os.path.join(SHARED, "circuits")
NAMES = ["adder64", "sub64", "neg64", "mult64", "divide64", "zero_equal", "aes_128", "sha256"]
_cache = {}


def load(name):
    if name not in _cache:
        _cache[name] = Circuit.from_bristol(os.path.join(CIRCUITS, name + ".txt"))
    return _cache[name]


def vectors():
    with open(os.path.join(CIRCUITS, "vectors.json")) as f:
        return json.load(f)


def hex_bits(h: str, width: int) -> np.ndarray:
    x = int(h, 16)
    return np.array([(x >> k) & 1 for k in range(width)], np.uint8)


def vector_batch(name):
    """All known answers of a circuit as one batch: (inputs, outputs) bit arrays."""
    c = load(name)
    vs = vectors()[name]
    ins = [np.stack([hex_bits(v["inputs"][i], w) for v in vs]) for i, w in enumerate(c.input_widths)]
    outs = [np.stack([hex_bits(v["outputs"][j], w) for v in vs]) for j, w in enumerate(c.output_widths)]
    return ins, outs


# ---------------------------------------------------------------------- known answers

@pytest.mark.parametrize("name", NAMES)
def test_known_answers_cleartext(name):
    c = load(name)
    ins, outs = vector_batch(name)
    got = c.evaluate(ins)
    for g, e in zip(got, outs):
        assert np.array_equal(g, e)
    # single copies (1-D inputs give 1-D outputs)
    for k in range(ins[0].shape[0]):
        one = c.evaluate([x[k] for x in ins])
        assert all(np.array_equal(o, e[k]) for o, e in zip(one, outs))


def test_gate_counts_match_readme():
    expected = {"adder64": 63, "sub64": 63, "neg64": 62, "mult64": 4033, "divide64": 4664,
                "zero_equal": 63, "aes_128": 6400, "sha256": 22573}
    for name, n in expected.items():
        c = load(name)
        assert c.n_and == n
        assert c.counts["AND"] == n
        assert c.n_and + c.n_xor + c.n_inv + c.counts["EQ"] + c.counts["EQW"] == c.ngates
    aes = load("aes_128")
    assert (aes.n_xor, aes.n_inv, aes.nwires) == (28176, 2087, 36919)
    assert aes.input_widths == (128, 128) and aes.output_widths == (128,)


def test_batch_evaluation_matches_reference_functions(rng):
    n = 257
    a = rng.integers(0, 2**64, n, dtype=np.uint64)
    b = rng.integers(0, 2**64, n, dtype=np.uint64)
    a[:4] = [0, 2**64 - 1, 2**63, 1]
    b[:4] = [0, 2**64 - 1, 2**63 - 1, 2**64 - 1]
    A, B = ints_to_bits(a, 64), ints_to_bits(b, 64)
    with np.errstate(over="ignore"):
        assert np.array_equal(bits_to_ints(load("adder64").evaluate([A, B])[0]), a + b)
        assert np.array_equal(bits_to_ints(load("sub64").evaluate([A, B])[0]), a - b)
        assert np.array_equal(bits_to_ints(load("mult64").evaluate([A, B])[0]), a * b)
        assert np.array_equal(bits_to_ints(load("neg64").evaluate([A])[0]), np.uint64(0) - a)
    z = load("zero_equal").evaluate([A])[0][:, 0]
    assert np.array_equal(z, (a == 0).astype(np.uint8))
    sa, sb = a.view(np.int64), b.view(np.int64)
    ok = (sb != 0) & ~((sa == np.iinfo(np.int64).min) & (sb == -1))
    q = bits_to_ints(load("divide64").evaluate([A, B])[0], signed=True)
    ref = [int(abs(int(x)) // abs(int(y))) * (1 if (x < 0) == (y < 0) else -1)   # truncation toward zero
           for x, y in zip(sa[ok], sb[ok])]
    assert q[ok].tolist() == ref


def test_empty_batch():
    c = load("adder64")
    out = c.evaluate([np.zeros((0, 64), np.uint8), np.zeros((0, 64), np.uint8)])
    assert out[0].shape == (0, 64)


def test_evaluate_checks_shapes():
    c = load("adder64")
    with pytest.raises(ValueError):
        c.evaluate([np.zeros((2, 64), np.uint8)])
    with pytest.raises(ValueError):
        c.evaluate([np.zeros((2, 64), np.uint8), np.zeros((2, 63), np.uint8)])
    with pytest.raises(ValueError):
        c.evaluate([np.zeros((2, 64), np.uint8), np.zeros((3, 64), np.uint8)])


# ---------------------------------------------------------------------- other gate kinds

MAND_TEXT = """3 11
2 3 3
2 2 1

1 1 1 6 EQ
6 3 0 1 2 3 4 5 7 8 9 MAND
2 1 7 6 10 XOR
"""


def test_mand_eq_eqw():
    c = Circuit.from_bristol_bytes(MAND_TEXT)
    # wires: a = 0..2, b = 3..5; 6 = 1; 7..9 = a & b; 10 = (a0 & b0) ^ 1; outputs: 9 (2 bits: 9, 10)
    assert c.n_and == 3 and c.counts["EQ"] == 1
    assert c.output_widths == (2, 1) and list(c.output_wires) == [8, 9, 10]
    for x in range(8):
        for y in range(8):
            xa, yb = ints_to_bits(np.array([x]), 3), ints_to_bits(np.array([y]), 3)
            o1, o2 = c.evaluate([xa, yb])
            m = x & y
            assert o1[0].tolist() == [(m >> 1) & 1, (m >> 2) & 1]
            assert o2[0].tolist() == [(m & 1) ^ 1]
    # EQW and EQ 0
    t = """4 5
1 2
1 3

1 1 0 4 EQW
1 1 0 2 EQ
1 1 1 3 INV
2 1 3 4 3 XOR
"""
    c2 = Circuit.from_bristol_bytes(t)
    for x in range(4):
        o = c2.evaluate([ints_to_bits(np.array([x]), 2)])[0][0]
        x0, x1 = x & 1, x >> 1
        assert o.tolist() == [0, (1 - x1) ^ x0, x0]


def test_wire_reassignment_is_sequential():
    # wire 2 is written twice; the later value wins for the gates after it
    t = """3 4
1 2
1 1

2 1 0 1 2 AND
2 1 0 1 2 XOR
2 1 2 0 3 AND
"""
    c = Circuit.from_bristol_bytes(t)
    for x in range(4):
        a, b = x & 1, x >> 1
        assert c.evaluate([ints_to_bits(np.array([x]), 2)])[0][0, 0] == ((a ^ b) & a)


# ---------------------------------------------------------------------- round trip

@pytest.mark.parametrize("name", NAMES)
def test_round_trip(tmp_path, name):
    c = load(name)
    p = tmp_path / "c.txt"
    c.to_bristol(p)
    c2 = Circuit.from_bristol(p)
    assert c2 == c
    assert c2.fingerprint == c.fingerprint
    assert c2.to_bristol_bytes() == p.read_bytes()


def test_round_trip_mand_and_constants(tmp_path):
    c = Circuit.from_bristol_bytes(MAND_TEXT)
    c2 = Circuit.from_bristol_bytes(c.to_bristol_bytes())
    assert c2 == c
    b = CircuitBuilder()
    x = b.input(4)
    b.output(np.concatenate([x[:2], b.const(5, 3), x[:1]]))
    c3 = b.build()
    assert Circuit.from_bristol_bytes(c3.to_bristol_bytes()) == c3


def test_whitespace_variants():
    t = "  1 3 \r\n\r\n 1\t2\r\n1 1\r\n\r\n2 1 0 1 2 AND"     # CRLF, tabs, no final newline
    c = Circuit.from_bristol_bytes(t)
    assert c.n_and == 1
    assert c.evaluate([np.array([1, 1], np.uint8)])[0].tolist() == [1]


# ---------------------------------------------------------------------- malformed files

GOOD = """2 5
2 2 1
1 1

2 1 0 1 3 AND
2 1 3 2 4 XOR
"""

MALFORMED = [
    # (text, line, message fragment)
    ("3 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n2 1 3 2 4 XOR\n", 7, "announced 3"),            # too few gates
    ("1 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n2 1 3 2 4 XOR\n", 6, "more gate lines"),       # too many gates
    ("2 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n2 1 3 2 4 NAND\n", 6, "unknown gate operation 'NAND'"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n2 1 3 9 4 XOR\n", 6, "wire 9 out of range"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n2 1 3 2 5 XOR\n", 6, "wire 5 out of range"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 4 3 AND\n2 1 3 2 4 XOR\n", 5, "wire 4 is read before it is set"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n2 1 3 2", 6, "wire number, the line ends"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n2 1 3 2 4\n", 6, "missing gate operation"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 x1 3 AND\n2 1 3 2 4 XOR\n", 5, "got 'x1'"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND extra\n2 1 3 2 4 XOR\n", 5, "unexpected token 'extra'"),
    ("2 5\n2 2 1\n1 1\n\n3 1 0 1 2 3 AND\n2 1 3 2 4 XOR\n", 5, "AND gate with 3 inputs"),
    ("2 5\n2 2 1\n1 1\n\n1 1 0 3 INV\n1 1 2 4 EQ\n", 6, "EQ constant must be 0 or 1"),
    ("2 5\n2 2 1\n1 1\n\n4 2 0 1 1 2 3 0 MAND\n2 1 3 2 4 XOR\n", 5, "MAND output wire 0 is also one of its inputs"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n2 1 3 2 2 XOR\n", 3, "output wire 4 is never set"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n\xff\xfe 1 3 2 4 XOR\n", 6, "got '??'"),
    ("2 5x\n2 2 1\n1 1\n", 1, "got '5x'"),
    ("2 5 7\n2 2 1\n1 1\n", 1, "expected 'ngates nwires'"),
    ("2 5\n3 2 1\n1 1\n", 2, "announces 3 input values but lists 2"),
    ("2 5\n2 2 1\n", 3, "file ends inside the header"),
    ("2 5\n2 2 1\n1 9\n", 3, "do not fit"),
    ("2 3\n2 2 1\n1 1\n\n2 1 0 1 3 AND\n", 5, "wire 3 out of range"),
    ("2 99999999999\n2 2 1\n1 1\n", 1, "wires"),
    ("2 5\n2 2 1\n1 1\n\n2 1 0 1 99999999999999999999999 AND\n", 5, "too large"),
    ("2 5\n2 2 1\n1 1\n\n0 1 3 AND\n", 5, "invalid gate arity"),
]


@pytest.mark.parametrize("text,line,frag", MALFORMED)
def test_malformed_raises_with_line(text, line, frag):
    with pytest.raises(CircuitError) as ei:
        Circuit.from_bristol_bytes(text.encode("latin-1"))
    assert ei.value.line == line, str(ei.value)
    assert str(ei.value).startswith(f"line {line}:")
    assert frag in str(ei.value)


def test_good_file_parses():
    c = Circuit.from_bristol_bytes(GOOD)
    assert c.evaluate([np.array([[1, 1]], np.uint8), np.array([[1]], np.uint8)])[0].tolist() == [[0]]
    assert c.evaluate([np.array([[1, 0]], np.uint8), np.array([[1]], np.uint8)])[0].tolist() == [[1]]


def test_truncated_real_file(tmp_path):
    data = open(os.path.join(CIRCUITS, "aes_128.txt"), "rb").read()
    cut = data[: len(data) // 2]
    cut = cut[: cut.rfind(b"\n") + 1]
    nlines = cut.count(b"\n")
    with pytest.raises(CircuitError) as ei:
        Circuit.from_bristol_bytes(cut)
    assert ei.value.line == nlines + 1 and "truncated" in str(ei.value)
    with pytest.raises(CircuitError):     # cut in the middle of a line
        Circuit.from_bristol_bytes(data[: len(data) // 2])


def test_constructor_validates():
    ok = dict(nwires=4, input_widths=(2,), output_widths=(1,))
    Circuit([OP_AND, OP_XOR], [0, 2], [1, 0], [2, 3], **ok)
    with pytest.raises(CircuitError, match="gate 1: wire 3 is read before it is set"):
        Circuit([OP_AND, OP_XOR], [0, 3], [1, 0], [2, 3], **ok)
    with pytest.raises(CircuitError, match="out of range"):
        Circuit([OP_AND], [0], [7], [3], **ok)
    with pytest.raises(CircuitError, match="never set"):
        Circuit([OP_AND], [0], [1], [2], **ok)
    with pytest.raises(CircuitError, match="unknown op"):
        Circuit([9], [0], [1], [3], **ok)
    with pytest.raises(CircuitError, match="EQ constant"):
        Circuit([OP_EQ], [2], [0], [3], **ok)
    with pytest.raises(CircuitError, match="do not fit"):
        Circuit([], [], [], [], nwires=1, input_widths=(2,), output_widths=(1,))
    c = Circuit([OP_INV, OP_EQW], [0, 2], [0, 0], [2, 3], **ok)
    assert c.evaluate([np.array([1, 0], np.uint8)])[0].tolist() == [0]
    with pytest.raises(ValueError):           # frozen arrays
        c.op[0] = 1


# ---------------------------------------------------------------------- structure

@pytest.mark.parametrize("name", ["adder64", "zero_equal", "aes_128", "sha256"])
def test_and_layers(name):
    c = load(name)
    layers = c.and_layers()
    assert len(layers) == c.and_depth
    allg = np.concatenate(layers) if layers else np.zeros(0, np.int64)
    assert np.array_equal(np.sort(allg), np.flatnonzero(c.op == OP_AND))
    lev = c.and_levels()
    assert all((lev[ly] == i + 1).all() for i, ly in enumerate(layers))
    if c.ngates < 20000:
        # reference AND depth of every wire, gate by gate (test-only loop)
        depth = np.zeros(c.nwires, np.int64)
        for g in range(c.ngates):
            o, a, b = int(c.op[g]), int(c.a[g]), int(c.b[g])
            if o in (OP_AND, OP_XOR):
                d = max(depth[a], depth[b]) + (o == OP_AND)
                if o == OP_AND:
                    assert d == lev[g]
            elif o in (OP_INV, OP_EQW):
                d = depth[a]
            else:
                d = 0
            depth[c.c[g]] = d
    if name == "zero_equal":
        assert c.and_depth == 6 and [len(x) for x in layers] == [32, 16, 8, 4, 2, 1]
    if name == "adder64":
        assert c.and_depth == 63


def test_program_properties():
    c = load("aes_128")
    p = c.program
    assert p is c.program                        # cached
    assert p.nand == 6400 and p.ninstr == c.ngates - c.counts["EQW"]
    assert p.and_depth == c.and_depth
    assert p.nslots < c.nwires // 10            # liveness keeps the label memory small
    ops = np.asarray(p.op)[:p.ninstr]
    runs = np.asarray(p.run_end)[:p.ninstr]
    # AND runs are contiguous and end where the run_end says
    idx = np.flatnonzero(ops == OP_AND)
    assert (runs[idx] > idx).all()
    assert (ops[idx] == OP_AND).all()


def test_ops_constants_exported():
    assert (OP_XOR, OP_AND, OP_INV, OP_EQW, OP_EQ) == (0, 1, 2, 3, 4)


def test_sparse_wire_numbers_are_legal(tmp_path):
    """Unused wire numbers are allowed: a small file may declare many wires."""
    p = tmp_path / "sparse.txt"
    p.write_text("2 300\n2 1 1\n1 1\n\n2 1 0 1 150 AND\n1 1 150 299 INV\n")
    c = Circuit.from_bristol(p)
    assert c.nwires == 300 and c.n_and == 1
    for a in (0, 1):
        for b in (0, 1):
            (out,) = c.evaluate([np.array([[a]], np.uint8), np.array([[b]], np.uint8)])
            assert out[0, 0] == 1 - (a & b)
    with pytest.raises(CircuitError, match="line 1"):
        q = tmp_path / "absurd.txt"
        q.write_text("2 4000000000\n2 1 1\n1 1\n\n2 1 0 1 150 AND\n1 1 150 299 INV\n")
        Circuit.from_bristol(q)
