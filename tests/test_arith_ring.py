"""Ring kernels (ezprotocols._ext.ring): exact GEMM mod 2^64 (AVX-512 and scalar paths),
im2col/conv2d against a plain numpy reference convolution, col2im as the adjoint of
im2col, the vector-OLE kernels against their definition, shift_sum."""
import os
import subprocess
import sys

import numpy as np
import pytest

from ezprotocols._ext import crypto, ring

U64 = np.uint64
EDGE = np.array([0, 1, 2**64 - 1, 2**62, 2**64 - 2**62, 2**63, 2**63 - 1, 12345], dtype=U64)


def rnd(rng, shape):
    return rng.integers(0, 2**64, shape, dtype=U64, endpoint=False)


def ref_conv(x, w, stride=(1, 1), pad=(0, 0), dil=(1, 1), groups=1):
    """Plain numpy reference: loop over kernel taps, uint64 arithmetic wraps mod 2^64."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    xp = np.zeros((N, C, H + 2 * pad[0], W + 2 * pad[1]), U64)
    xp[:, :, pad[0]:pad[0] + H, pad[1]:pad[1] + W] = x
    HO = (H + 2 * pad[0] - dil[0] * (KH - 1) - 1) // stride[0] + 1
    WO = (W + 2 * pad[1] - dil[1] * (KW - 1) - 1) // stride[1] + 1
    out = np.zeros((N, O, HO, WO), U64)
    Og = O // groups
    for o in range(O):
        g = o // Og
        for i in range(KH):
            for j in range(KW):
                patch = xp[:, g * Cg:(g + 1) * Cg,
                           i * dil[0]:i * dil[0] + stride[0] * (HO - 1) + 1:stride[0],
                           j * dil[1]:j * dil[1] + stride[1] * (WO - 1) + 1:stride[1]]
                out[:, o] += (patch * w[o, :, i, j][None, :, None, None]).sum(axis=1, dtype=U64)
    return out


@pytest.mark.parametrize("m,k,n", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 1, 1), (1, 784, 128), (7, 13, 5),
                                   (6, 32, 32), (13, 300, 70), (250, 129, 2049), (128, 784, 128)])
def test_matmul_exact(rng, m, k, n):
    a, b = rnd(rng, (m, k)), rnd(rng, (k, n))
    assert np.array_equal(ring.matmul(a, b), a @ b)                 # numpy's uint64 matmul wraps exactly
    assert np.array_equal(ring.matmul(b.T, a.T), (a @ b).T)         # strided (transposed) operands
    out = np.full((m, n), 7, U64)
    ring.matmul(a, b, out=out, accumulate=True)
    assert np.array_equal(out, a @ b + U64(7))


def test_matmul_edge_values():
    a = np.tile(EDGE, (8, 1))
    b = np.tile(EDGE[:, None], (1, 5))
    assert np.array_equal(ring.matmul(a, b), a @ b)
    assert np.array_equal(ring.matmul(a.T.copy(), a), a.T @ a)


def test_matmul_errors(rng):
    with pytest.raises(TypeError, match="uint64"):
        ring.matmul(np.ones((2, 2)), np.ones((2, 2), U64))
    with pytest.raises(ValueError, match="align"):
        ring.matmul(rnd(rng, (2, 3)), rnd(rng, (2, 3)))
    with pytest.raises(ValueError, match="out must be"):
        ring.matmul(rnd(rng, (2, 3)), rnd(rng, (3, 2)), out=np.zeros((3, 3), U64))


def test_scalar_fallback_path():
    """EZP_NO_AVX512=1 selects the portable micro-kernel; it must agree too."""
    code = ("import numpy as np; from ezprotocols._ext import ring; r=np.random.default_rng(3);"
            "a=r.integers(0,2**64,(37,300),dtype=np.uint64); b=r.integers(0,2**64,(300,70),dtype=np.uint64);"
            "assert not ring.avx512_enabled(); assert np.array_equal(ring.matmul(a,b), a@b); print('ok')")
    env = dict(os.environ, EZP_NO_AVX512="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


CONV_CASES = [
    # N, C, H, W, O, KH, KW, stride, pad, dil, groups
    (2, 3, 7, 6, 4, 3, 3, (1, 1), (0, 0), (1, 1), 1),
    (1, 4, 9, 9, 6, 3, 2, (2, 1), (1, 2), (1, 2), 2),
    (3, 6, 5, 5, 6, 1, 1, (1, 1), (0, 0), (1, 1), 6),     # depthwise 1x1
    (1, 1, 28, 28, 6, 5, 5, (1, 1), (0, 0), (1, 1), 1),   # LeNet conv1
    (1, 2, 4, 4, 2, 4, 4, (1, 1), (0, 0), (1, 1), 1),     # kernel = input
    (0, 2, 4, 4, 2, 3, 3, (1, 1), (1, 1), (1, 1), 1),     # empty batch
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_against_reference(rng, case):
    N, C, H, W, O, KH, KW, st, pd, dl, g = case
    x, w = rnd(rng, (N, C, H, W)), rnd(rng, (O, C // g, KH, KW))
    got = ring.conv2d(x, w, st, pd, dl, g)
    assert np.array_equal(got, ref_conv(x, w, st, pd, dl, g))


def test_col2im_is_adjoint_of_im2col(rng):
    x = rnd(rng, (2, 3, 6, 5))
    cols, (ho, wo) = ring.im2col(x, (3, 2), (2, 1), (1, 1), (1, 2))
    c = rnd(rng, cols.shape)
    back = ring.col2im_add(c, np.zeros_like(x), (3, 2), (2, 1), (1, 1), (1, 2))
    # <im2col(x), c> == <x, col2im(c)> over Z_2^64
    assert (cols * c).sum(dtype=U64) == (x * back).sum(dtype=U64)


def test_shift_sum(rng):
    y = rnd(rng, (50, 64))
    exp = (y << np.arange(64, dtype=U64)).sum(axis=1, dtype=U64)
    assert np.array_equal(ring.shift_sum(y), exp)
    assert np.array_equal(ring.shift_sum(y, negate=True), -exp)
    assert ring.shift_sum(np.zeros((0, 64), U64)).shape == (0,)


def _vole_pair(rng, n_ot, m, rows=5, accs=3):
    s0 = rng.integers(0, 256, (n_ot, 16), dtype=np.uint8)
    s1 = rng.integers(0, 256, (n_ot, 16), dtype=np.uint8)
    ch = rng.integers(0, 2, n_ot).astype(np.uint8)
    corr = rnd(rng, (rows, m))
    ci = rng.integers(0, rows, n_ot)
    ai = rng.integers(0, accs, n_ot)
    sh = rng.integers(0, 64, n_ot).astype(np.uint8)
    a_s, a_r = np.zeros((accs, m), U64), np.zeros((accs, m), U64)
    pk = ring.vole_send(s0, s1, corr, ci, a_s, ai, sh, 0x41 << 56)
    ring.vole_recv(np.where(ch[:, None] == 1, s1, s0), ch, pk, a_r, ai, sh, 0x41 << 56)
    exp = np.zeros((accs, m), U64)
    for o in range(n_ot):              # test-only reference loop
        if ch[o]:
            exp[ai[o]] += corr[ci[o]] << U64(sh[o])
    return a_s + a_r, exp, pk, sh


@pytest.mark.parametrize("n_ot,m", [(1, 1), (300, 1), (100, 3), (200, 37), (20, 2047), (5, 2049), (3, 5000)])
def test_vole_relation_and_exact_size(rng, n_ot, m):
    got, exp, pk, sh = _vole_pair(rng, n_ot, m)
    assert np.array_equal(got, exp)
    bits = int(((64 - sh.astype(np.int64)) * m).sum())
    assert pk.nbytes == (bits + 63) // 64 * 8                          # exactly 64 - shift bits per value


def test_vole_expansion_is_the_cr_hash(rng):
    """Receiver with choice 0 and shift 0 gets G(seed0): pi(s ^ T_t) ^ s ^ T_t, T_t = (tweak_hi, t)."""
    m, tw = 7, (0x41 << 56) | 99
    s0 = rng.integers(0, 256, (1, 16), dtype=np.uint8)
    s1 = rng.integers(0, 256, (1, 16), dtype=np.uint8)
    acc = np.zeros((1, m), U64)
    pk = ring.vole_send(s0, s1, np.zeros((1, m), U64), [0], np.zeros((1, m), U64), [0], [0], tw)
    ring.vole_recv(s0, np.zeros(1, np.uint8), pk, acc, [0], [0], tw)
    nb = (m + 1) // 2
    inp = np.tile(s0, (nb, 1)).view(U64).reshape(nb, 2)
    inp[:, 0] ^= np.arange(nb, dtype=U64)
    inp[:, 1] ^= U64(tw)
    g = crypto.cr_hash(inp.view(np.uint8).reshape(nb, 16)).view(U64).reshape(-1)[:m]
    assert np.array_equal(acc[0], g)


def test_vole_rejects_bad_input(rng):
    acc = np.zeros((2, 4), U64)
    s = np.zeros((3, 16), np.uint8)
    with pytest.raises(ValueError, match="acc index"):
        ring.vole_send(s, s, np.zeros((1, 4), U64), [0, 0, 0], acc, [0, 5, 0], [0, 0, 0], 0)
    with pytest.raises(ValueError, match="shifts"):
        ring.vole_send(s, s, np.zeros((1, 4), U64), [0, 0, 0], acc, [0, 0, 0], [0, 64, 0], 0)
    with pytest.raises(ValueError, match="packed"):
        ring.vole_recv(s, np.zeros(3, np.uint8), np.zeros(1, U64), acc, [0, 0, 0], [0, 0, 0], 0)
