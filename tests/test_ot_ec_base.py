"""Base OT (Chou-Orlandi, eprint 2015/267) in Ed25519's prime-order subgroup via libsodium."""
import time

import numpy as np
import pytest

import ezprotocols.ot  # noqa: F401  (registers session.ot)
from ezprotocols.errors import ProtocolError
from ezprotocols.ot import ec_base
from ezprotocols.ot.engine import IknpModpSource, IknpSource, base_ot_group
from ezprotocols.testing import run_pair

# Encodings that are not elements of the order-L subgroup.
IDENTITY = bytes([1] + [0] * 31)                       # y = 1
ORDER2 = bytes([0xEC] + [0xFF] * 30 + [0x7F])          # y = -1, the point of order 2
NONCANONICAL = bytes([0xED] + [0xFF] * 30 + [0x7F])    # y = p (not reduced)
# a point of order 8 (torsion) from RFC 8032 / libsodium's blocklist
ORDER8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")


def _off_curve():
    # the smallest y whose x^2 = (y^2-1)/(d y^2+1) is not a square: libsodium refuses it
    for y in range(2, 200):
        enc = y.to_bytes(32, "little")
        if not ec_base._ec.is_valid_point(np.frombuffer(enc, np.uint8)):
            return enc
    raise AssertionError


def _mixed_order():
    # a valid subgroup point plus the order-8 point: on the curve, not in the order-L subgroup
    from nacl import _sodium
    good = bytes(ec_base.BaseOTSender(1, "t").first_message())
    out = _sodium.ffi.new("unsigned char[32]")
    assert _sodium.lib.crypto_core_ed25519_add(out, good, ORDER8) == 0
    return bytes(out)


BAD = {"identity": IDENTITY, "order 2": ORDER2, "non-canonical": NONCANONICAL, "order 8": ORDER8,
       "off curve": _off_curve(), "mixed order": _mixed_order()}


def test_available_and_generator_valid():
    assert ec_base.available()
    s = ec_base.BaseOTSender(1, "t")
    assert ec_base._ec.is_valid_point(s.first_message())


@pytest.mark.parametrize("n", [0, 1, 5, 128, 300])
def test_ec_base_ot_ideal(n):
    c = np.frombuffer(np.random.default_rng(n).bytes(n), np.uint8) & 1
    (k0, k1), kc = run_pair(lambda s: ec_base.base_ot_send(s.channel, n, "t.base"),
                            lambda s: ec_base.base_ot_recv(s.channel, c, "t.base"))
    assert k0.shape == k1.shape == kc.shape == (n, 16)
    assert np.array_equal(kc, np.where(c[:, None] == 1, k1, k0))
    assert not (kc == np.where(c[:, None] == 1, k0, k1)).all(axis=1).any()
    assert len({bytes(r) for r in np.concatenate([k0, k1])}) == 2 * n


def test_keys_bind_step_and_index():
    c = np.zeros(2, np.uint8)
    s = ec_base.BaseOTSender(2, "a")
    r = ec_base.BaseOTReceiver(c, "b")          # different step: keys must not match
    k0, _ = s.finish(r.respond(s.first_message()))
    assert not np.array_equal(k0, r.finish())
    s = ec_base.BaseOTSender(2, "a")
    r = ec_base.BaseOTReceiver(c, "a")
    B = r.respond(s.first_message())
    B2 = np.ascontiguousarray(B[::-1])           # same points, swapped indices: different keys
    k0, _ = s.finish(B2)
    assert not (k0 == r.finish()[::-1]).all(axis=1).any()


@pytest.mark.parametrize("what", sorted(BAD))
def test_bad_point_from_receiver(what):
    s = ec_base.BaseOTSender(3, "t.base")
    B = ec_base.BaseOTReceiver(np.array([0, 1, 1], np.uint8), "t.base").respond(s.first_message())
    B = B.copy()
    B[1] = np.frombuffer(BAD[what], np.uint8)
    with pytest.raises(ProtocolError, match=r"t\.base\.B: point 1"):
        s.finish(B)


@pytest.mark.parametrize("what", sorted(BAD))
def test_bad_point_from_sender(what):
    r = ec_base.BaseOTReceiver(np.array([0, 1], np.uint8), "t.base")
    with pytest.raises(ProtocolError, match=r"t\.base\.A"):
        r.respond(np.frombuffer(BAD[what], np.uint8).copy())


def test_wrong_shapes():
    with pytest.raises(ProtocolError, match=r"t\.B"):
        ec_base.BaseOTSender(3, "t").finish(np.zeros((2, 32), np.uint8))
    with pytest.raises(ProtocolError, match=r"t\.A"):
        ec_base.BaseOTReceiver(np.zeros(2, np.uint8), "t").respond(np.zeros(31, np.uint8))


def test_bad_point_over_the_wire():
    def p0(s):
        return ec_base.base_ot_send(s.channel, 4, "w")

    def p1(s):
        s.channel.recv_array("w.A", np.uint8, (32,))
        s.channel.send("w.B", np.tile(np.frombuffer(IDENTITY, np.uint8), (4, 1)))

    with pytest.raises(ProtocolError, match=r"w\.B: point 0"):
        run_pair(p0, p1)


@pytest.mark.parametrize("group", ["ec", "modp"])
def test_engine_groups(group):
    bits = np.array([0, 1, 1, 0, 1], np.uint8)

    def p0(s):
        ot = IknpSource(s, base_ot=group)
        assert ot.base_ot == group
        q, d = ot.send_cot(5)
        return q, d, ot.recv_cot(bits)

    def p1(s):
        ot = IknpSource(s, base_ot=group)
        t = ot.recv_cot(bits)
        q, d = ot.send_cot(5)
        return t, q, d

    (q0, d0, t1), (t0, q1, d1) = run_pair(p0, p1)
    assert np.array_equal(t0, q0 ^ bits[:, None] * d0)
    assert np.array_equal(t1, q1 ^ bits[:, None] * d1)


def test_session_option_iknp_modp():
    def f(s):
        assert type(s.ot) is IknpModpSource and s.ot.base_ot == "modp"
        return s.ot.send_cot(3) if s.role == 0 else s.ot.recv_cot(np.array([1, 0, 1], np.uint8))

    (q, d), t = run_pair(f, f, ot="iknp-modp")
    assert np.array_equal(t, q ^ np.array([1, 0, 1], np.uint8)[:, None] * d)


def test_missing_libsodium_symbol_is_a_clear_error(tmp_path):
    """A libsodium without one of the needed functions: init() names it (fresh interpreter
    with a stand-in ``nacl._sodium`` that lacks the scalar multiplication)."""
    import os
    import subprocess
    import sys
    fake = tmp_path / "nacl"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "_sodium.py").write_text("class _Lib:\n    pass\nlib = _Lib()\nffi = None\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), root]))
    code = ("from ezprotocols._ext import ec\n"
            "try:\n    ec.init()\nexcept RuntimeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "lacks crypto_scalarmult_ed25519_noclamp" in out.stdout, out.stderr
    assert "base_ot='modp'" in out.stdout


def test_default_is_ec_and_unknown_group():
    assert base_ot_group() is ec_base
    with pytest.raises(ValueError, match="base_ot"):
        base_ot_group("rsa")


def test_setup_time_tcp():
    """Both directions (128 base OTs each) over TCP loopback: well under the 40 ms target
    on an idle machine; asserted with slack for loaded CI runners."""
    def f(s):
        s.channel.send("sync", np.zeros(1, np.uint8))
        s.channel.recv_array("sync", np.uint8, (1,))
        t = time.perf_counter()
        s.ot.setup()
        return time.perf_counter() - t

    t0, t1 = run_pair(f, f, transport="tcp")
    assert max(t0, t1) < 0.4
