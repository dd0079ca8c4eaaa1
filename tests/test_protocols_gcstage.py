"""Fused garbled stages (protocols/gcstage.py): ideal functionality against numpy on
random and edge inputs, two message runs per stage, exact byte formula, what the
evaluator decodes is masked, and a disagreeing peer gets a ProtocolError."""
import types

import numpy as np
import pytest

from ezprotocols.errors import ProtocolError
from ezprotocols.protocols.gcstage import stage, stage_costs
from ezprotocols.testing import run_pair

U64 = np.uint64


def _split(rng, x):
    x = np.asarray(x, np.int64).view(U64)
    r = rng.integers(0, 2**64, size=x.shape, dtype=U64)
    return x - r, r


def _setup(s):
    s.compare.setup()                 # shared coins, base OTs, a primed silent source
    s.gc.delta(0)
    s.ot.prefill(300 * 4 * 41, senders=(0,))


def _ref(op, x, f):
    t = x >> f
    if op == "id":
        return t
    if op == "relu":
        return np.maximum(t, 0)
    if op == "max":
        return t.max(axis=-1)
    if op == "max_relu":
        return np.maximum(t.max(axis=-1), 0)
    return t.argmax(axis=-1)


def _edge_words(rng, shape, w_in):
    lo, hi = -(1 << (w_in - 1)), (1 << (w_in - 1)) - 1
    x = rng.integers(lo, hi, size=shape, dtype=np.int64, endpoint=True)
    flat = x.reshape(-1)
    edge = [v for v in (0, -1, 1, lo, hi, lo + 1, hi - 1, -(1 << 16), (1 << 16) - 1) if lo <= v <= hi]
    flat[:min(len(edge), flat.size)] = edge[:flat.size]
    return x


@pytest.mark.parametrize("op,k,w_in,f", [("id", 1, 64, 0), ("id", 1, 64, 16), ("id", 1, 30, 12),
                                         ("relu", 1, 64, 0), ("relu", 1, 41, 16), ("relu", 1, 2, 0),
                                         ("max", 4, 64, 0), ("max", 9, 33, 8), ("max", 1, 64, 16),
                                         ("max_relu", 4, 41, 16), ("max_relu", 3, 64, 0),
                                         ("argmax", 10, 64, 0), ("argmax", 10, 25, 0), ("argmax", 7, 40, 16),
                                         ("argmax", 1, 64, 0), ("argmax", 2, 8, 3)])
@pytest.mark.parametrize("reveal", [False, True])
def test_stage_matches_numpy(rng, op, k, w_in, f, reveal):
    shape = (37,) if op in ("id", "relu") else (37, k)
    x = _edge_words(rng, shape, w_in)
    a, b = _split(rng, x)
    rv = 1 if reveal else None
    r0, r1 = run_pair(lambda s: stage(s, a, op, f=f, w_in=w_in, reveal_to=rv),
                      lambda s: stage(s, b, op, f=f, w_in=w_in, reveal_to=rv))
    want = _ref(op, x, f)
    if reveal:
        assert r0 is None and r1.dtype == np.int64
        assert np.array_equal(r1, want)
    else:
        assert np.array_equal((r0 + r1).view(np.int64), want)


def test_argmax_ties_take_the_lowest_index(rng):
    x = rng.integers(-3, 3, size=(200, 6), dtype=np.int64)      # many ties
    x[0] = 5
    x[1] = -(1 << 39)
    a, b = _split(rng, x)
    r0, r1 = run_pair(lambda s: stage(s, a, "argmax", w_in=40), lambda s: stage(s, b, "argmax", w_in=40))
    assert np.array_equal((r0 + r1).view(np.int64), x.argmax(axis=1))


def test_the_input_bound_wraps_beyond_w_in(rng):
    """The documented precondition: only the low w_in bits of x enter."""
    x = np.array([(1 << 20) + 5, -(1 << 20) - 7], np.int64)
    a, b = _split(rng, x)
    r0, r1 = run_pair(lambda s: stage(s, a, "id", w_in=20), lambda s: stage(s, b, "id", w_in=20))
    low = ((x.view(U64) & U64((1 << 20) - 1)).astype(np.int64) ^ (1 << 19)) - (1 << 19)
    assert np.array_equal((r0 + r1).view(np.int64), low)


@pytest.mark.parametrize("shape", [(0,), (0, 4), (2, 0, 4)])
def test_empty_batches(shape):
    op = "relu" if len(shape) == 1 else "max"
    z = np.zeros(shape, U64)
    r0, r1 = run_pair(lambda s: stage(s, z, op), lambda s: stage(s, z, op))
    want = shape if op == "relu" else shape[:-1]
    assert r0.shape == r1.shape == want


def test_two_runs_and_the_byte_formula(rng):
    n, k, w_in, f = 300, 4, 41, 16
    x = _edge_words(rng, (n, k), w_in)
    a, b = _split(rng, x)

    def party(v):
        def fn(s):
            _setup(s)
            with s.phase("st"):
                r = stage(s, v, "max_relu", f=f, w_in=w_in)
            c = s.counters("st")
            return r, c.bytes_sent + c.bytes_recv, c.rounds
        return fn

    (r0, b0, k0), (r1, b1, k1) = run_pair(party(a), party(b), ot="ferret", compare="gc")
    assert np.array_equal((r0 + r1).view(np.int64), np.maximum((x >> f).max(axis=1), 0))
    assert k0 == k1 == 2
    cost = stage_costs("max_relu", n, k, w_in, f)
    assert b0 == b1 == cost["bytes"]


def test_evaluator_output_is_masked(rng):
    """What P1 decodes is y - R with P0's fresh uniform R: for a constant input its
    decoded words are uniform (each bit balanced) and never repeat."""
    x = np.zeros(4000, np.int64)
    a, b = _split(rng, x)
    r0, r1 = run_pair(lambda s: stage(s, a, "relu"), lambda s: stage(s, b, "relu"))
    assert np.array_equal((r0 + r1).view(np.int64), x)
    bits = np.unpackbits(r1.view(np.uint8)).reshape(-1, 64).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 0.05)                     # 4000 samples: 6.3 sigma
    assert np.unique(r1).size == r1.size


def test_disagreeing_peer_gets_a_protocol_error(rng):
    a = np.zeros((5, 4), U64)

    with pytest.raises(ProtocolError, match="yao.run"):
        run_pair(lambda s: stage(s, a, "max", w_in=40), lambda s: stage(s, a, "max", w_in=40, f=3), timeout=30)


@pytest.mark.parametrize("kw,msg", [({"op": "min"}, "op must be"), ({"op": "max", "w_in": 1}, "w_in"),
                                    ({"op": "max", "w_in": 65}, "w_in"), ({"op": "relu", "f": 63}, "f must"),
                                    ({"op": "relu", "reveal_to": 0}, "evaluator")])
def test_misuse_is_refused(kw, msg):
    s = types.SimpleNamespace(role=0)           # refused before any message
    with pytest.raises(ValueError, match=msg):
        stage(s, np.zeros((3, 2) if kw["op"] != "relu" else 3, U64), **kw)
