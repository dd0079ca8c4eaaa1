"""Base OT (Chou-Orlandi simplest OT, eprint 2015/267) in the RFC 3526 3072-bit MODP group."""
import gmpy2
import numpy as np
import pytest

from ezprotocols.errors import ProtocolError
from ezprotocols.ot import base
from ezprotocols.testing import run_pair


def test_group_is_rfc3526_group15_safe_prime():
    # RFC 3526 section 4: p = 2^3072 - 2^3008 - 1 + 2^64 * ( [2^2942 pi] + 1690314 )
    with gmpy2.context(precision=3400):
        pi_floor = int(gmpy2.floor(gmpy2.const_pi() * gmpy2.mpfr(2) ** 2942))
    p = 2 ** 3072 - 2 ** 3008 - 1 + 2 ** 64 * (pi_floor + 1690314)
    assert base.P == p
    assert gmpy2.is_prime(base.P, 30) and gmpy2.is_prime(base.Q, 30)
    assert base.P == 2 * base.Q + 1
    # g = 4 generates the order-q subgroup of quadratic residues
    assert gmpy2.powmod(base.G, base.Q, base.P) == 1 and base.G != 1


def test_fixed_base_table_matches_powmod():
    rng = np.random.default_rng(1)
    h = gmpy2.powmod(base.G, 123456789, base.P)
    for w in (4, 5, 6):
        t = base._FixedBase(h, w)
        for e in [1, 2, (1 << base.EXP_BITS) - 1] + [int(x) for x in rng.integers(1, 2 ** 62, 5)]:
            assert t.pow(e) == gmpy2.powmod(h, e, base.P)


def test_exponents_in_range():
    xs = [base._rand_exp() for _ in range(200)]
    assert all(1 <= x < (1 << base.EXP_BITS) for x in xs)
    assert len(set(xs)) == 200
    assert max(xs).bit_length() >= base.EXP_BITS - 8          # really 256-bit, not small


def test_check_element():
    ok = gmpy2.powmod(base.G, 987654321, base.P)
    base.check_element(ok, "s", "x")
    nonresidue = next(x for x in range(2, 100) if gmpy2.legendre(x, base.P) == -1)
    for bad in (0, 1, base.P - 1, base.P, base.P + 1, nonresidue, base.P - ok):
        with pytest.raises(ProtocolError, match="s: x"):
            base.check_element(gmpy2.mpz(bad), "s", "x")


@pytest.mark.parametrize("n", [1, 5, 128])
def test_base_ot_ideal(n):
    c = np.frombuffer(np.random.default_rng(n).bytes(n), np.uint8) & 1

    (k0, k1), kc = run_pair(lambda s: base.base_ot_send(s.channel, n, "t.base"),
                            lambda s: base.base_ot_recv(s.channel, c, "t.base"))
    assert k0.shape == k1.shape == kc.shape == (n, 16)
    assert np.array_equal(kc, np.where(c[:, None] == 1, k1, k0))
    assert not (kc == np.where(c[:, None] == 1, k0, k1)).all(axis=1).any()   # other key unknown
    assert len({bytes(r) for r in np.concatenate([k0, k1])}) == 2 * n        # all keys distinct


def _elem(x):
    return np.frombuffer(int(x).to_bytes(base.ELEMENT_BYTES, "big"), np.uint8)


@pytest.mark.parametrize("bad", ["p-1", "zero", "nonresidue", "too_big"])
def test_sender_rejects_bad_B(bad):
    nonres = next(x for x in range(2, 100) if gmpy2.legendre(x, base.P) == -1)
    val = {"p-1": base.P - 1, "zero": 0, "nonresidue": nonres, "too_big": base.P + 4}[bad]

    def fake_receiver(s):
        s.channel.recv_array("t.base.A", np.uint8, (base.ELEMENT_BYTES,))
        B = np.stack([_elem(gmpy2.powmod(base.G, i + 2, base.P)) for i in range(8)])
        B[5] = _elem(val) if val < 2 ** 3072 else np.full(base.ELEMENT_BYTES, 0xFF, np.uint8)
        s.channel.send("t.base.B", B)

    with pytest.raises(ProtocolError, match=r"t\.base\.B: element 5"):
        run_pair(lambda s: base.base_ot_send(s.channel, 8, "t.base"), fake_receiver)


def test_receiver_rejects_bad_A():
    def fake_sender(s):
        s.channel.send("t.base.A", _elem(1))

    with pytest.raises(ProtocolError, match=r"t\.base\.A: the sender's element"):
        run_pair(fake_sender, lambda s: base.base_ot_recv(s.channel, np.zeros(4, np.uint8), "t.base"))


def test_engine_setup_rejects_bad_group_element():
    """Through the session engine: P1 plays a base-OT sender that sends a non-residue."""
    nonres = next(x for x in range(2, 100) if gmpy2.legendre(x, base.P) == -1)

    def fake(s):
        s.channel.send("ot.s0.base.A", _elem(nonres))

    with pytest.raises(ProtocolError, match=r"ot\.s0\.base\.A"):
        run_pair(lambda s: s.ot.send_cot(10), fake)


def test_wrong_number_of_elements():
    def fake_receiver(s):
        s.channel.recv_array("t.base.A", np.uint8, (base.ELEMENT_BYTES,))
        s.channel.send("t.base.B", np.zeros((3, base.ELEMENT_BYTES), np.uint8))

    with pytest.raises(ProtocolError, match=r"t\.base\.B"):
        run_pair(lambda s: base.base_ot_send(s.channel, 4, "t.base"), fake_receiver)
