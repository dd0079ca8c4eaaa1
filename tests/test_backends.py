"""Engine registry and interfaces: session options, explicit engines, and the flavours
the CotSource base class derives from correlated OT alone (ideal functionality)."""
import numpy as np
import pytest

import ezprotocols
from ezprotocols import backends
from ezprotocols.arith.he import HeProducts
from ezprotocols.arith.products import OtProducts
from ezprotocols.arith.triples import TripleEngine
from ezprotocols.ot.engine import IknpSource
from ezprotocols.protocols.otcmp import OtCompare
from ezprotocols.protocols.sign import GcCompare
from ezprotocols.testing import run_pair

from _cot_only import CotOnly


@pytest.fixture(autouse=True)
def _cot_only():
    backends.register("ot", "test-cot-only", CotOnly)
    yield
    backends.KINDS["ot"].pop("test-cot-only", None)


def test_defaults_and_engines():
    def f(s):
        assert s.backends == backends.DEFAULTS
        assert isinstance(s.ot, IknpSource) and s.ot is s.engine("ot")
        # the default product engine is HE-or-OT by bytes; its OT part is the "ot" engine
        assert isinstance(s.linear, HeProducts) and s.linear is s.engine("linear", "he")
        assert isinstance(s.linear.ot, OtProducts) and s.linear.ot is s.engine("linear", "ot")
        assert isinstance(s.compare, OtCompare) and isinstance(s.engine("compare", "gc"), GcCompare)
        assert isinstance(s.triples, TripleEngine)
        assert s.triples.impl is s.engine("triples", "he") and not s.triples.trusted_dealer
        return True
    assert run_pair(f, f) == (True, True)


def test_unknown_implementation_is_refused():
    c0, _ = ezprotocols.net.local_pair()
    for kind in ("ot", "triples", "linear", "compare"):
        with pytest.raises(ValueError, match=f"{kind} must be one of"):
            ezprotocols.Session(0, c0, check_roles=False, **{kind: "nope"})
    with pytest.raises(ValueError, match="unknown engine kind"):
        backends.register("nope", "x", CotOnly)
    with pytest.raises(ValueError, match="module:attr"):
        backends.register("ot", "x", "no_colon")


@pytest.mark.parametrize("n", [0, 1, 130, 70000])
def test_derived_flavours(n, rng):
    bits = rng.integers(0, 2, n).astype(np.uint8)
    m0, m1 = rng.integers(0, 256, (2, n, 5), dtype=np.uint8)
    c = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    widths = rng.integers(1, 65, n).astype(np.uint8)

    def p0(s):
        q, d = s.ot.send_cot(n)
        r0, r1 = s.ot.send_rot(n)
        s.ot.send(m0, m1)
        x64 = s.ot.send_acot(c)
        xw = s.ot.send_acot(c, bits=widths)
        rq, rd = s.ot.send_rcot(n)
        return q, d, r0, r1, x64, xw, rq, rd

    def p1(s):
        t = s.ot.recv_cot(bits)
        rb = s.ot.recv_rot(bits)
        m = s.ot.recv(bits, 5)
        y64 = s.ot.recv_acot(bits)
        yw = s.ot.recv_acot(bits, bits=widths)
        rbits, rt = s.ot.recv_rcot(n)
        return t, rb, m, y64, yw, rbits, rt

    (q, d, r0, r1, x64, xw, rq, rd), (t, rb, m, y64, yw, rbits, rt) = run_pair(p0, p1, ot="test-cot-only")
    b = bits.astype(bool)
    assert d[0] & 1 and np.array_equal(t, q ^ (bits[:, None] * d))
    assert np.array_equal(rb, np.where(b[:, None], r1, r0)) and (n < 2 or not np.array_equal(r0, r1))
    assert np.array_equal(m, np.where(b[:, None], m1, m0))
    assert np.array_equal(y64 - x64, np.where(b, c, 0).astype(np.uint64))
    mask = np.where(widths == 64, np.uint64(2**64 - 1), (np.uint64(1) << widths.astype(np.uint64)) - np.uint64(1))
    assert np.array_equal((yw - xw) & mask, np.where(b, c, 0).astype(np.uint64) & mask)
    assert np.array_equal(rt, rq ^ (rbits[:, None] * rd)) and set(np.unique(rbits)) <= {0, 1}


def test_a_plugged_ot_source_runs_the_hybrid_protocols(rng):
    """Garbling, triples and ReLU on a source that implements only correlated OT."""
    x = rng.integers(-1000, 1000, 50) / 8.0

    def f(s):
        t = s.input(x if s.role == 0 else None, 0, shape=x.shape)
        return s.reveal(ezprotocols.relu(t * t - 100.0)), type(s.ot).__name__

    (r0, name), (r1, _) = run_pair(f, f, ot="test-cot-only")
    assert name == "CotOnly" and np.array_equal(r0, r1)
    assert np.allclose(r0, np.maximum(x * x - 100.0, 0), atol=2e-3)


def test_product_costs_match_the_traffic(rng):
    """The costs both parties compute from public shapes are the measured payload (plus
    the 32-byte OT header and the padding of the u matrix and corrections to whole
    bytes: below 192 bytes) and rounds."""
    n, (m, k, nn) = 1000, (7, 9, 5)
    a = rng.integers(0, 2**64, n, dtype=np.uint64)
    L = rng.integers(0, 2**64, (m, k), dtype=np.uint64)
    R = rng.integers(-100, 100, (k, nn)).astype(np.uint64)

    def f(s):
        s.ot.setup()
        s.linear.setup()              # HE keys (one-time, not in the per-product costs)
        mine = s.role == 0
        out = {}
        for opt in s.linear.mul_costs(n):          # acot, and he under linear="he"
            with s.phase(opt):
                z = s.linear.cross_mul(owner=0, n=n, a=a if mine else None, b=None if mine else a, decompose=opt)
            out[opt] = (s.stats()[opt], s.linear.mul_costs(n)[opt], z)
        for dec in ("L", "R"):
            with s.phase(dec):
                z = s.linear.cross_matmul(l_owner=0, m=m, k=k, n=nn, L=L if mine else None,
                                          R=None if mine else R, nbits_r=9, decompose=dec)
            out[dec] = (s.stats()[dec], s.linear.matmul_costs(m, k, nn, nbits_r=9)[dec], z)
        return out

    r0, r1 = run_pair(f, f)
    assert "acot" in r0
    for key, want in [(o, a * a) for o in r0 if o not in ("L", "R")] + [("L", L @ R), ("R", L @ R)]:
        (st, cost, z0), (_, cost1, z1) = r0[key], r1[key]
        assert cost == cost1 and np.array_equal(z0 + z1, want)
        assert cost["bytes"] <= st["bytes"] < cost["bytes"] + 192 and st["rounds"] == cost["rounds"]
