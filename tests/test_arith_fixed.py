"""Fixed-point encoding (ezprotocols.arith.fixed)."""
import numpy as np
import pytest

from ezprotocols.arith.fixed import decode, encode, encode_int, to_signed

U64 = np.uint64


def test_encode_decode_roundtrip(rng):
    x = rng.normal(size=1000) * 100
    e = encode(x, 16)
    assert e.dtype == U64
    assert np.all(np.abs(decode(e, 16) - x) <= 2.0 ** -17)


def test_two_complement_and_rounding():
    assert [int(v) for v in encode([0.0, 1.0, -1.0, 2 ** -17, -(2 ** -17), 3 * 2 ** -17], 16)] == \
        [0, 65536, 2**64 - 65536, 0, 0, 2]          # ties to even: 0.5 -> 0, 1.5 -> 2
    assert decode(np.array([2**64 - 1], U64), 16)[0] == -(2.0 ** -16)


def test_extremes():
    big = (2.0 ** 63 - 2.0 ** 10) / 2.0 ** 16       # largest magnitude (exactly representable)
    e = encode([big, -big], 16)
    assert decode(e, 16).tolist() == [big, -big]
    with pytest.raises(ValueError, match="too large"):
        encode([2.0 ** 47], 16)
    with pytest.raises(ValueError, match="NaN"):
        encode([np.nan], 16)
    with pytest.raises(ValueError, match="too large"):
        encode(np.array([1 << 47], dtype=np.int64), 16)


def test_integers():
    v = np.array([0, -1, 2**62, -(2**62), 2**63 - 1, -(2**63)], dtype=np.int64)
    assert np.array_equal(to_signed(encode_int(v)), v)
    assert int(encode_int(2**64 + 5)) == 5
    assert int(encode_int(-1)) == 2**64 - 1
    assert np.array_equal(encode(np.array([3, -2]), 16).view(np.int64), [3 << 16, -2 << 16])
    assert decode(encode_int(v), 0).tolist() == v.tolist()
    with pytest.raises(TypeError):
        encode_int(np.array([1.5]))
