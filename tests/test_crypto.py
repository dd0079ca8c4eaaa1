"""Kernels: AES-128 against FIPS-197 and the `cryptography` package, the CTR PRG,
correlation-robust hashes against their definitions, the bit transpose."""
import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ezprotocols import Prg
from ezprotocols._ext import crypto as c


FIXED_KEY = bytes.fromhex("243f6a8885a308d313198a2e03707344")


def ref_ecb(key, data: bytes) -> bytes:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(data)


def blocks_from(b: bytes):
    return np.frombuffer(b, dtype=np.uint8).reshape(-1, 16)


def test_fips197_vector():
    a = c.AES128(bytes(range(16)))
    ct = a.encrypt(blocks_from(bytes.fromhex("00112233445566778899aabbccddeeff")))
    assert ct.tobytes().hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"


@pytest.mark.parametrize("n", [0, 1, 7, 8, 31, 32, 33, 1000])
def test_ecb_matches_reference(rng, n):
    key = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    x = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    out = c.AES128(key).encrypt(x)
    assert out.shape == (n, 16)
    assert out.tobytes() == ref_ecb(key, x.tobytes())


def test_fixed_key_aes_is_aes_under_the_published_key(rng):
    x = rng.integers(0, 256, (100, 16), dtype=np.uint8)
    assert c.fixed_key_aes(x).tobytes() == ref_ecb(FIXED_KEY, x.tobytes())


def _sigma(x):
    lo = x[:, :8].copy()
    hi = x[:, 8:].copy()
    return np.concatenate([hi, hi ^ lo], axis=1)   # sigma(hi||lo) = (hi^lo)||hi


@pytest.mark.parametrize("n", [0, 1, 5, 32, 77])
def test_hashes_match_definitions(rng, n):
    x = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    pi = lambda b: blocks_from(ref_ecb(FIXED_KEY, b.tobytes())) if len(b) else b  # noqa: E731
    assert np.array_equal(c.cr_hash(x), pi(x) ^ x)
    s = _sigma(x)
    assert np.array_equal(c.ccr_hash(x), pi(s) ^ s)
    tw0 = (5 << 64) | 0xFFFFFFFFFFFFFFF0
    tw = np.zeros((n, 16), np.uint8)
    lo = (np.uint64(0xFFFFFFFFFFFFFFF0) + np.arange(n, dtype=np.uint64))  # low word counts, wraps
    tw[:, :8] = lo.view(np.uint8).reshape(n, 8) if n else tw[:, :8]
    tw[:, 8] = 5
    px = pi(x)
    assert np.array_equal(c.tccr_hash(x, tweak=tw0), pi(px ^ tw) ^ px)
    assert np.array_equal(c.tccr_hash(x, tweaks=tw), pi(px ^ tw) ^ px)


def test_hash_rejects_bad_shapes():
    with pytest.raises(ValueError):
        c.cr_hash(np.zeros(15, np.uint8))
    with pytest.raises(ValueError):
        c.tccr_hash(np.zeros((2, 16), np.uint8), tweaks=np.zeros((3, 16), np.uint8))
    with pytest.raises(ValueError):
        c.tccr_hash(np.zeros((2, 16), np.uint8), tweak=-1)


def test_prg_is_aes_ctr(rng):
    seed = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    p = Prg(seed)
    got = p.random_bytes(16 * 40 + 3) + p.random_bytes(16)
    ctr = np.zeros((42, 16), np.uint8)
    ctr[:, :8] = np.arange(42, dtype="<u8").view(np.uint8).reshape(-1, 8)
    ks = ref_ecb(seed, ctr.tobytes())
    assert got == ks[:16 * 40 + 3] + ks[16 * 41:16 * 42]
    assert p.counter == 42


def test_prg_api_shapes_and_values():
    p = Prg()
    assert len(p.seed) == 16
    assert p.random_uint64((3, 4)).shape == (3, 4)
    bits = p.random_bits(10001)
    assert bits.dtype == np.uint8 and bits.shape == (10001,) and set(np.unique(bits)) <= {0, 1}
    assert 4500 < int(bits.sum()) < 5500
    assert p.random_blocks(5).shape == (5, 16)
    assert p.random_bytes(0) == b"" and p.random_bits(0).shape == (0,)
    buf = np.zeros(1000, np.uint8)
    p.fill(buf)
    assert buf.any()
    ba = bytearray(33)
    p.fill(ba)
    assert any(ba)
    # two unseeded PRGs differ; the same seed repeats
    assert Prg().random_bytes(32) != Prg().random_bytes(32)
    assert Prg(b"k" * 16).random_bytes(64) == Prg(b"k" * 16).random_bytes(64)
    with pytest.raises(ValueError):
        Prg(b"short")
    with pytest.raises(ValueError):
        p.fill(b"readonly")


def _ref_transpose(m, rows, cols):
    bits = np.unpackbits(m, axis=1, bitorder="little")[:, :cols]
    return np.packbits(bits.T, axis=1, bitorder="little")


@pytest.mark.parametrize("rows,cols", [(128, 128), (128, 1024), (128, 128 * 37), (1024, 128),
                                       (4096 + 24, 128), (100, 77), (208, 264), (1, 1), (0, 5),
                                       (5000, 136), (2000, 300)])
def test_transpose(rng, rows, cols):
    m = rng.integers(0, 256, (rows, (cols + 7) // 8), dtype=np.uint8)
    if cols % 8:
        m[:, -1] &= (1 << (cols % 8)) - 1
    t = c.transpose_bits(m, rows, cols)
    assert t.shape == (cols, (rows + 7) // 8)
    assert np.array_equal(t, _ref_transpose(m, rows, cols))
    if rows % 8 == 0 and cols % 8 == 0:
        assert np.array_equal(c.transpose_bits(t, cols, rows), m)


def test_vaes_and_sse_paths_agree(rng):
    """Run the kernels in a child with EZP_NO_VAES=1 and compare outputs."""
    import subprocess
    import sys
    code = (
        "import numpy as np, sys\n"
        "from ezprotocols._ext import crypto as c\n"
        "from ezprotocols import Prg\n"
        "assert not c.vaes_enabled()\n"
        "x = np.frombuffer(bytes(range(256))*40, np.uint8).reshape(-1,16)\n"
        "m = np.frombuffer(bytes(range(256))*64, np.uint8).reshape(128,128)\n"
        "sys.stdout.write((c.cr_hash(x).tobytes()+c.ccr_hash(x).tobytes()+c.tccr_hash(x,7).tobytes()"
        "+Prg(b'0'*16).random_bytes(1000)+c.transpose_bits(m,128,1024).tobytes()).hex())\n"
    )
    import os
    env = dict(os.environ, EZP_NO_VAES="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    x = np.frombuffer(bytes(range(256)) * 40, np.uint8).reshape(-1, 16)
    m = np.frombuffer(bytes(range(256)) * 64, np.uint8).reshape(128, 128)
    mine = (c.cr_hash(x).tobytes() + c.ccr_hash(x).tobytes() + c.tccr_hash(x, 7).tobytes()
            + Prg(b"0" * 16).random_bytes(1000) + c.transpose_bits(m, 128, 1024).tobytes()).hex()
    assert out == mine


def test_import_fails_clearly_without_aesni():
    import os
    import subprocess
    import sys
    env = dict(os.environ, EZP_PRETEND_NO_AESNI="1")
    r = subprocess.run([sys.executable, "-c", "import ezprotocols"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "AES-NI" in r.stderr


@pytest.mark.parametrize("shape", [(0, 16), (1, 16), (7, 3, 16)])
def test_cond_xor_blocks(rng, shape):
    blocks = rng.integers(0, 256, shape, dtype=np.uint8)
    bits = rng.integers(0, 2, shape[:-1]).astype(np.uint8)
    delta = rng.integers(0, 256, 16, dtype=np.uint8)
    want = np.where(bits[..., None].astype(bool), blocks ^ delta, blocks)
    assert c.cond_xor_blocks(blocks, bits, delta) is blocks
    assert np.array_equal(blocks, want)
    with pytest.raises(ValueError):
        c.cond_xor_blocks(np.zeros((2, 15), np.uint8), np.zeros(2, np.uint8), delta)
    with pytest.raises(ValueError):
        c.cond_xor_blocks(np.zeros((2, 16), np.uint8), np.zeros(3, np.uint8), delta)
