"""Circuit builder: every word operation against its cleartext function on random and
edge values (0, 1, -1, the signed extremes), its AND count, constant folding, dead
gate removal and the Bristol layout of built circuits."""
import numpy as np
import pytest

from ezprotocols.gc import ONE, ZERO, Circuit, CircuitBuilder, bits_to_ints, ints_to_bits

WIDTHS = [1, 2, 8, 64]


def values(rng, w, n=300):
    """Random w-bit unsigned values with the edge cases first."""
    mask = (1 << w) - 1 if w < 64 else 2**64 - 1
    edges = [0, 1, mask, mask >> 1, (mask >> 1) + 1, 2 % (mask + 1)]
    r = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    v = np.concatenate([np.array(edges, np.uint64), r & np.uint64(mask)])
    return v


def pairs(rng, w):
    a = values(rng, w)
    b = values(rng, w)
    # all edge pairs, then random pairs
    e = a[:6]
    ea, eb = np.meshgrid(e, e)
    return np.concatenate([ea.ravel(), a]), np.concatenate([eb.ravel(), b[::-1]])


def signed(v, w):
    v = v.astype(np.uint64)
    if w == 64:
        return v.view(np.int64)
    sign = np.uint64(1 << (w - 1))
    return ((v ^ sign) - sign).view(np.int64)


def mask(w):
    return np.uint64(2**64 - 1) if w == 64 else np.uint64((1 << w) - 1)


def run2(circ, a, b, w):
    return circ.evaluate([ints_to_bits(a, w), ints_to_bits(b, w)])


def binary_circuit(w, fn):
    bld = CircuitBuilder()
    x, y = bld.input(w), bld.input(w)
    out = fn(bld, x, y)
    bld.output(out)
    return bld.build()


@pytest.mark.parametrize("w", WIDTHS)
def test_add_sub_neg(rng, w):
    a, b = pairs(rng, w)
    m = mask(w)
    with np.errstate(over="ignore"):
        c = binary_circuit(w, lambda B, x, y: B.add(x, y))
        assert c.n_and == max(w - 1, 0)
        assert np.array_equal(bits_to_ints(run2(c, a, b, w)[0]), (a + b) & m)
        c = binary_circuit(w, lambda B, x, y: B.sub(x, y))
        assert c.n_and == max(w - 1, 0)
        assert np.array_equal(bits_to_ints(run2(c, a, b, w)[0]), (a - b) & m)
        bld = CircuitBuilder()
        x = bld.input(w)
        bld.output(bld.neg(x))
        c = bld.build()
        assert c.n_and == max(w - 2, 0)
        assert np.array_equal(bits_to_ints(c.evaluate([ints_to_bits(a, w)])[0]), (np.uint64(0) - a) & m)


@pytest.mark.parametrize("w", WIDTHS)
@pytest.mark.parametrize("sgn", [False, True])
def test_comparisons(rng, w, sgn):
    a, b = pairs(rng, w)
    av, bv = (signed(a, w), signed(b, w)) if sgn else (a, b)
    for name, ref in (("lt", av < bv), ("le", av <= bv), ("gt", av > bv), ("ge", av >= bv)):
        c = binary_circuit(w, lambda B, x, y: getattr(B, name)(x, y, signed=sgn)[..., None])
        assert c.n_and == w, (name, c.n_and)
        assert np.array_equal(run2(c, a, b, w)[0][:, 0], ref.astype(np.uint8)), name


@pytest.mark.parametrize("w", WIDTHS)
def test_eq_ne_iszero(rng, w):
    a, b = pairs(rng, w)
    b = np.where(np.arange(a.size) % 3 == 0, a, b)       # plenty of equal pairs
    c = binary_circuit(w, lambda B, x, y: np.stack([B.eq(x, y), B.ne(x, y), B.is_zero(x)], -1))
    assert c.n_and == 3 * (w - 1)            # one AND tree each (the builder does no CSE)
    out = run2(c, a, b, w)[0]
    assert np.array_equal(out[:, 0], (a == b).astype(np.uint8))
    assert np.array_equal(out[:, 1], (a != b).astype(np.uint8))
    assert np.array_equal(out[:, 2], (a == 0).astype(np.uint8))


@pytest.mark.parametrize("w", WIDTHS)
def test_mux_max_relu(rng, w):
    a, b = pairs(rng, w)
    s = (rng.integers(0, 2, a.size)).astype(np.uint8)
    bld = CircuitBuilder()
    x, y, sel = bld.input(w), bld.input(w), bld.input(1)
    bld.output(bld.mux(sel[0], x, y))
    c = bld.build()
    assert c.n_and == w
    got = bits_to_ints(c.evaluate([ints_to_bits(a, w), ints_to_bits(b, w), s[:, None]])[0])
    assert np.array_equal(got, np.where(s == 1, a, b))
    for sgn in (False, True):
        c = binary_circuit(w, lambda B, x, y: B.max(x, y, signed=sgn))
        assert c.n_and == 2 * w
        got = bits_to_ints(run2(c, a, b, w)[0])
        ref = np.maximum(signed(a, w), signed(b, w)).view(np.uint64) & mask(w) if sgn else np.maximum(a, b)
        assert np.array_equal(got, ref)
    bld = CircuitBuilder()
    x = bld.input(w)
    bld.output(bld.relu(x))
    c = bld.build()
    assert c.n_and == w - 1
    got = bits_to_ints(c.evaluate([ints_to_bits(a, w)])[0], signed=True)
    assert np.array_equal(got, np.maximum(signed(a, w), 0))


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 10])
@pytest.mark.parametrize("sgn", [False, True])
def test_max_argmax_trees(rng, k, sgn):
    w = 16
    n = 400
    v = rng.integers(0, 2**16, (n, k), dtype=np.uint64)
    v[: n // 2] = rng.integers(0, 4, (n // 2, k), dtype=np.uint64)     # many ties
    v[0] = 0
    v[1] = 0xFFFF
    v[2, :] = 0x8000                                                   # signed minimum everywhere
    vv = signed(v, w) if sgn else v
    bld = CircuitBuilder()
    x = bld.input(w, shape=(k,))
    idx, mx = bld.argmax(x, signed=sgn, return_max=True)
    bld.output(idx)
    bld.output(bld.max(x, signed=sgn))
    c = bld.build()
    iw = max(1, int(np.ceil(np.log2(k)))) if k > 1 else 1
    assert c.output_widths == (iw, w)
    got_i, got_m = c.evaluate([ints_to_bits(v, w).reshape(n, k * w)])
    assert np.array_equal(bits_to_ints(got_i), np.argmax(vv, axis=1).astype(np.uint64))
    ref_m = vv.max(axis=1)
    assert np.array_equal(bits_to_ints(got_m, signed=sgn), ref_m)
    # max alone costs (k-1) * 2w ANDs
    bld = CircuitBuilder()
    x = bld.input(w, shape=(k,))
    bld.output(bld.max(x, signed=sgn))
    assert bld.build().n_and == (k - 1) * 2 * w


def test_argmax_vectorised_over_rows(rng):
    # one circuit computing argmax of 7 independent rows of 10 words: no loop per row
    bld = CircuitBuilder()
    x = bld.input(8, shape=(7, 10))
    bld.output(bld.argmax(x, axis=1))
    c = bld.build()
    v = rng.integers(0, 5, (50, 7, 10), dtype=np.uint64)
    got = bits_to_ints(c.evaluate([ints_to_bits(v, 8).reshape(50, -1)])[0].reshape(50, 7, 4))
    assert np.array_equal(got, np.argmax(v, axis=2).astype(np.uint64))


def test_bit_ops_and_reductions(rng):
    bld = CircuitBuilder()
    x, y = bld.input(8), bld.input(8)
    bld.output(bld.or_(x, y))
    bld.output(bld.xor(x, y))
    bld.output(bld.and_(x, y))
    bld.output(bld.inv(x))
    bld.output(bld.or_reduce(x)[None])
    bld.output(bld.xor_reduce(x)[None])
    bld.output(bld.and_reduce(x)[None])
    c = bld.build()
    a, b = rng.integers(0, 256, 500, dtype=np.uint64), rng.integers(0, 256, 500, dtype=np.uint64)
    o = c.evaluate([ints_to_bits(a, 8), ints_to_bits(b, 8)])
    assert np.array_equal(bits_to_ints(o[0]), a | b)
    assert np.array_equal(bits_to_ints(o[1]), a ^ b)
    assert np.array_equal(bits_to_ints(o[2]), a & b)
    assert np.array_equal(bits_to_ints(o[3]), ~a & np.uint64(255))
    assert np.array_equal(o[4][:, 0], (a != 0).astype(np.uint8))
    pop = np.array([bin(int(t)).count("1") & 1 for t in a], np.uint8)
    assert np.array_equal(o[5][:, 0], pop)
    assert np.array_equal(o[6][:, 0], (a == 255).astype(np.uint8))


def test_shifts_extend_bits(rng):
    bld = CircuitBuilder()
    x = bld.input(16)
    bld.output(bld.shl(x, 3))
    bld.output(bld.shr(x, 5))
    bld.output(bld.shr(x, 5, arithmetic=True))
    bld.output(bld.extend(x, 24, signed=True))
    bld.output(bld.extend(x, 20))
    bld.output(np.array([bld.msb(x), bld.bit(x, 2)]))
    c = bld.build()
    assert c.n_and == 0
    a = values(rng, 16)
    o = c.evaluate([ints_to_bits(a, 16)])
    s = signed(a, 16)
    assert np.array_equal(bits_to_ints(o[0]), (a << np.uint64(3)) & np.uint64(0xFFFF))
    assert np.array_equal(bits_to_ints(o[1]), a >> np.uint64(5))
    assert np.array_equal(bits_to_ints(o[2], signed=True), s >> 5)
    assert np.array_equal(bits_to_ints(o[3], signed=True), s)
    assert np.array_equal(bits_to_ints(o[4]), a)
    assert np.array_equal(o[5][:, 0], ((a >> np.uint64(15)) & np.uint64(1)).astype(np.uint8))
    assert np.array_equal(o[5][:, 1], ((a >> np.uint64(2)) & np.uint64(1)).astype(np.uint8))


def test_constants_fold():
    bld = CircuitBuilder()
    x = bld.input(8)
    k = bld.const(0b10110001, 8)
    assert set(k.tolist()) <= {ZERO, ONE}
    s = bld.add(x, k)                     # adding a constant folds the constant half of each carry
    bld.output(s)
    bld.output(bld.and_(x, bld.const(0, 8)))       # all zero: no gates
    bld.output(bld.xor(x, x))                       # zero
    bld.output(bld.const(-1, 3))                    # constant output
    c = bld.build()
    assert c.n_and <= 7
    assert c.counts["EQ"] == 8 + 8 + 3
    for v in (0, 1, 77, 255):
        o = c.evaluate([ints_to_bits(np.array([v]), 8)])
        assert bits_to_ints(o[0])[0] == (v + 0b10110001) & 255
        assert bits_to_ints(o[1])[0] == 0 and bits_to_ints(o[2])[0] == 0 and bits_to_ints(o[3])[0] == 7
    # big constants
    assert bits_to_ints(-1 - bld.const(np.array([2**64 - 1], np.uint64), 64)).tolist() == [2**64 - 1]
    wide = -1 - bld.const(2**100 + 5, 104)
    assert wide[100] == 1 and wide[0] == 1 and wide[2] == 1 and wide.sum() == 3


def test_dead_gates_removed_and_layout():
    bld = CircuitBuilder()
    x, y = bld.input(32), bld.input(32)
    bld.add(x, y)                        # unused: dropped
    lt = bld.lt(x, y)
    bld.output(lt[None])
    bld.output(x[:4])                    # an input as output: EQW copies
    bld.output(lt[None])                 # the same wire twice
    c = bld.build()
    assert c.n_and == 32
    assert c.input_widths == (32, 32) and c.output_widths == (1, 4, 1)
    assert c.counts["EQW"] == 5
    assert list(c.output_wires) == list(range(c.nwires - 6, c.nwires))
    rt = Circuit.from_bristol_bytes(c.to_bristol_bytes())
    assert rt == c
    o = c.evaluate([ints_to_bits(np.array([3, 9]), 32), ints_to_bits(np.array([5, 2]), 32)])
    assert o[0][:, 0].tolist() == [1, 0] and o[2][:, 0].tolist() == [1, 0]
    assert bits_to_ints(o[1]).tolist() == [3, 9]


def test_empty_and_misuse():
    bld = CircuitBuilder()
    c = bld.build()
    assert c.ngates == 0 and c.nwires == 0
    bld = CircuitBuilder()
    x = bld.input(4)
    with pytest.raises(ValueError):
        bld.add(x, bld.input(5))
    with pytest.raises(TypeError):
        bld.xor(x, np.zeros(4))
    with pytest.raises(ValueError):
        bld.argmax(bld.input(4, shape=(0,)))
