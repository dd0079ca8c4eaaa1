"""Half-gates garbling and the Yao protocol.

Kernels (one process): tables equal a straightforward Python implementation of the
half-gates scheme with the documented TCCR tweaks, on the VAES and on the 128-bit
path; garbling then evaluating decodes to the cleartext result for every circuit,
batch size and chunking.

Protocol (two parties): every known-answer circuit with its input values split
between the parties (both assignments, and each party owning everything), single
and batched; either party garbling; every reveal mode; the exact bytes (32 per AND
gate, 16 per garbler input bit, 1 bit per revealed output bit, nothing for XOR/INV);
mismatched calls raise ProtocolError; the composable label API.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from ezprotocols import Prg, ProtocolError
from ezprotocols._ext import crypto
from ezprotocols.gc import Circuit, CircuitBuilder, YaoTensor, bits_to_ints, ints_to_bits
from ezprotocols.gc import halfgates as hg
from ezprotocols.gc.yao import HEADER_BYTES
from ezprotocols.testing import run_pair

from test_gc_circuit import NAMES, load, vector_batch

HERE = os.path.dirname(os.path.abspath(__file__))
P_XOR, P_AND, P_INV, P_COPY, P_ZERO, P_ONE = 0, 1, 2, 3, 4, 5


def _delta(prg):
    d = prg.random_uint8(16)
    d[0] |= 1
    return d


# ---------------------------------------------------------------------- reference garbler

def _H(x, tweak_lo):
    """TCCR(x, (0x47 << 56, tweak_lo)) = pi(pi(x) ^ j) ^ pi(x), straight from the definition."""
    pi = crypto.fixed_key_aes
    j = np.zeros(16, np.uint8)
    j[:8] = np.frombuffer(int(tweak_lo).to_bytes(8, "little"), np.uint8)
    j[8:] = np.frombuffer(int(hg.TWEAK_HI).to_bytes(8, "little"), np.uint8)
    p = pi(x.reshape(1, 16))[0]
    return pi((p ^ j).reshape(1, 16))[0] ^ p


def reference_garble(circuit, zero_inputs, delta, tweak):
    """Half-gates (eprint 2014/756, fig. 2) over W copies, gate by gate in the program's
    execution order; returns (tables, output zero-labels)."""
    prog = circuit.program
    W = zero_inputs.shape[0]
    slots = np.zeros((prog.nslots, W, 16), np.uint8)
    slots[:circuit.n_input_wires] = zero_inputs.transpose(1, 0, 2)
    op, sa, sb, so = (np.asarray(x) for x in (prog.op, prog.sa, prog.sb, prog.so))
    tables = []
    t = 0
    lsb = lambda x: int(x[0] & 1)  # noqa: E731
    for i in range(prog.ninstr):
        A, B = slots[sa[i]].copy(), slots[sb[i]].copy()
        if op[i] == P_XOR:
            slots[so[i]] = A ^ B
        elif op[i] == P_INV:
            slots[so[i]] = A ^ delta
        elif op[i] == P_COPY:
            slots[so[i]] = A
        elif op[i] == P_ZERO:
            slots[so[i]] = 0
        elif op[i] == P_ONE:
            slots[so[i]] = delta
        else:
            for c in range(W):
                a0, b0 = A[c], B[c]
                pa, pb = lsb(a0), lsb(b0)
                j, j2 = tweak + 2 * t, tweak + 2 * t + 1
                ha0, ha1 = _H(a0, j), _H(a0 ^ delta, j)
                hb0, hb1 = _H(b0, j2), _H(b0 ^ delta, j2)
                tg = ha0 ^ ha1 ^ (delta if pb else 0)
                wg0 = ha0 ^ (tg if pa else 0)
                te = hb0 ^ hb1 ^ a0
                we0 = hb0 ^ ((te ^ a0) if pb else 0)
                tables.append(np.concatenate([tg, te]))
                slots[so[i], c] = wg0 ^ we0
                t += 1
    outs = slots[np.asarray(prog.out_slots)].transpose(1, 0, 2)
    return (np.concatenate(tables) if tables else np.zeros(0, np.uint8)), outs


def _small_circuit():
    b = CircuitBuilder()
    x, y = b.input(6), b.input(6)
    s = b.add(x, y)
    b.output(s)
    b.output(b.lt(x, y, signed=True)[None])
    b.output(b.const(5, 3))                  # constant outputs (EQ gates)
    b.output(b.inv(b.and_(x[:3], y[:3])))   # INV after AND
    return b.build()


def check_reference():
    """Kernel tables == reference tables (run in-process and with EZP_NO_VAES=1)."""
    prg = Prg(b"\x01" * 16)
    delta = _delta(prg)
    circs = [_small_circuit(), load("zero_equal")]
    for c in circs:
        for batch in (1, 3, 8, 12):
            zero = prg.random_uint8((batch, c.n_input_wires, 16))
            tweak = 1000 + 7 * batch
            ref_tab, ref_out = reference_garble(c, zero, delta, tweak)
            ins, off = [], 0
            for w in c.input_widths:
                ins.append(zero[:, off:off + w])
                off += w
            tabs = []
            outs = hg.garble(c, batch, ins, delta, tweak, tabs.append, W=batch)
            got = np.concatenate(tabs) if tabs else np.zeros(0, np.uint8)
            assert got.size == 32 * c.n_and * batch
            assert np.array_equal(got, ref_tab), (c, batch)
            assert np.array_equal(np.concatenate(outs, axis=1), ref_out)
    return True


def test_tables_match_reference_vaes_or_native():
    assert check_reference()


def test_tables_match_reference_sse_path():
    env = dict(os.environ, EZP_NO_VAES="1")
    code = ("import sys; sys.path.insert(0, %r); import test_yao; from ezprotocols._ext import garble; "
            "assert not garble.vaes_enabled(); assert test_yao.check_reference(); print('ok')" % HERE)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


# ---------------------------------------------------------------------- local garble + evaluate

@pytest.mark.parametrize("name", NAMES)
def test_local_garble_evaluate_all_circuits(rng, name):
    c = load(name)
    prg = Prg()
    delta = _delta(prg)
    for batch in (1, 5, 16, 37):
        ins = [rng.integers(0, 2, (batch, w), dtype=np.uint8) for w in c.input_widths]
        bits, tables, _, _ = hg.GarbledRun(c, batch, delta).run(ins, prg)
        assert sum(t.size for t in tables) == 32 * c.n_and * batch
        for got, exp in zip(bits, c.evaluate(ins)):
            assert np.array_equal(got, exp)


@pytest.mark.parametrize("kw", [dict(chunk_bytes=64), dict(chunk_bytes=4096, label_bytes=1),
                                dict(W=4), dict(W=6), dict(label_bytes=1 << 14)])
def test_local_chunking(rng, kw):
    c = load("aes_128")
    prg = Prg()
    batch = 9
    ins = [rng.integers(0, 2, (batch, w), dtype=np.uint8) for w in c.input_widths]
    bits, tables, _, _ = hg.GarbledRun(c, batch, _delta(prg), **kw).run(ins, prg)
    assert sum(t.size for t in tables) == 32 * c.n_and * batch
    if "chunk_bytes" in kw:
        assert max(t.size for t in tables) <= kw["chunk_bytes"]
    assert np.array_equal(bits[0], c.evaluate(ins)[0])


def test_schedule_is_bounded_and_complete():
    c = load("sha256")
    prog = c.program
    for batch, W, cb in ((1, 1, 1 << 12), (10, 4, 1 << 14), (33, 8, 1 << 20)):
        total = 0
        for items, ops in hg.schedule(prog, batch, W, cb):
            assert 32 * items <= cb
            total += items
        assert total == prog.nand * batch


def test_wrong_labels_decode_wrong(rng):
    # a flipped input label bit changes the evaluator's result (labels carry the values)
    c = load("adder64")
    prg = Prg()
    delta = _delta(prg)
    zero = [prg.random_uint8((4, 64, 16)) for _ in range(2)]
    x = [rng.integers(0, 2, (4, 64), dtype=np.uint8) for _ in range(2)]
    act = [z ^ (b[..., None] * delta) for z, b in zip(zero, x)]
    tabs = []
    out0 = hg.garble(c, 4, zero, delta, 0, tabs.append)
    act[0][:, 0] ^= delta                       # flip bit 0 of a
    it = iter(tabs)
    out1 = hg.evaluate(c, 4, act, 0, lambda n: next(it))
    got = (out1[0][..., 0] ^ out0[0][..., 0]) & 1
    x[0][:, 0] ^= 1
    assert np.array_equal(got, c.evaluate(x)[0])


# ---------------------------------------------------------------------- two parties

def split(inputs, owners):
    return ({i: x for i, x in enumerate(inputs) if owners[i] == 0},
            {i: x for i, x in enumerate(inputs) if owners[i] == 1})


def yao_pair(circ, inputs, owners, reveal_to="both", transport="local", **kw):
    in0, in1 = split(inputs, owners)
    return run_pair(lambda s: s.yao(circ, in0, owners, reveal_to, **kw),
                    lambda s: s.yao(circ, in1, owners, reveal_to, **kw), transport=transport)


def test_known_answers_two_party():
    """Every circuit and vector; input values split both ways and wholly owned by one
    party; each vector alone and all vectors in one batch; P0 and P1 garbling."""
    cases = []
    for name in NAMES:
        c = load(name)
        ins, outs = vector_batch(name)
        nv = len(c.input_widths)
        owner_sets = [[k % 2 for k in range(nv)], [(k + 1) % 2 for k in range(nv)], [0] * nv, [1] * nv]
        cases.append((c, ins, outs, owner_sets))

    def party(role):
        def f(s):
            res = []
            for c, ins, outs, owner_sets in cases:
                for oi, owners in enumerate(owner_sets):
                    garbler = oi % 2
                    mine = {i: x for i, x in enumerate(ins) if owners[i] == role}
                    res.append(s.yao(c, mine, owners, garbler=garbler))        # batched
                    k = oi % ins[0].shape[0]
                    one = {i: x[k:k + 1] for i, x in mine.items()}
                    res.append(s.yao(c, one, owners, garbler=1 - garbler))     # single
            return res, s.gc.tweak
        return f

    (r0, tw0), (r1, tw1) = run_pair(party(0), party(1), timeout=300)
    assert tw0 == tw1 > 0
    it0, it1 = iter(r0), iter(r1)
    for c, ins, outs, owner_sets in cases:
        for oi in range(len(owner_sets)):
            k = oi % ins[0].shape[0]
            for exp_rows in (slice(None), slice(k, k + 1)):
                a, b = next(it0), next(it1)
                for j, e in enumerate(outs):
                    assert np.array_equal(a[j], e[exp_rows]) and np.array_equal(b[j], e[exp_rows])


@pytest.mark.parametrize("garbler", [0, 1])
def test_reveal_modes(rng, garbler):
    c = load("mult64")
    B = 7
    a = rng.integers(0, 2**64, B, dtype=np.uint64)
    b = rng.integers(0, 2**64, B, dtype=np.uint64)
    a[0], b[0] = 0, 2**64 - 1
    ins = [ints_to_bits(a, 64), ints_to_bits(b, 64)]
    with np.errstate(over="ignore"):
        exp = ints_to_bits(a * b, 64)
    in0, in1 = split(ins, [0, 1])

    def party(role, mine):
        def f(s):
            return [s.yao(c, mine, [0, 1], r, garbler=garbler) for r in ("both", 0, 1, "shares")]
        return f

    r0, r1 = run_pair(party(0, in0), party(1, in1))
    assert np.array_equal(r0[0][0], exp) and np.array_equal(r1[0][0], exp)
    assert np.array_equal(r0[1][0], exp) and r1[1] == [None]
    assert r0[2] == [None] and np.array_equal(r1[2][0], exp)
    s0, s1 = r0[3][0], r1[3][0]
    assert s0.shape == s1.shape == (B, 64) and np.array_equal(s0 ^ s1, exp)
    assert not np.array_equal(s0, exp)        # a share alone is not the output


@pytest.mark.parametrize("garbler", [0, 1])
def test_communication_is_exact(rng, garbler):
    """32 bytes per AND gate and copy, 16 per garbler input bit, nothing per XOR/INV,
    1 bit per revealed output bit; the COTs are accounted in the sub-phase 'cot'."""
    c = load("aes_128")
    B = 5
    ins = [rng.integers(0, 2, (B, 128), dtype=np.uint8) for _ in range(2)]
    owners = [0, 1]
    in0, in1 = split(ins, owners)

    def party(mine):
        def f(s):
            s.ot.setup()
            out = []
            for reveal in ("both", 0, 1, "shares"):
                s.channel.stats.reset()
                s.yao(c, mine, owners, reveal, garbler=garbler)
                cnt = s.counters("yao")
                cot = s.counters("yao/cot")
                out.append((cnt.bytes_sent - cot.bytes_sent, cnt.bytes_recv - cot.bytes_recv))
            return out
        return f

    r0, r1 = run_pair(party(in0), party(in1))
    hdr = HEADER_BYTES
    assert hdr == 88
    wG = 128                         # the garbler owns one 128-bit value whichever party it is
    out_bytes = (B * 128 + 7) // 8
    tables = 32 * c.n_and * B
    assert tables == 6400 * 32 * B
    for k, reveal in enumerate(("both", 0, 1, "shares")):
        to_g = reveal == "both" or reveal == garbler
        to_e = reveal == "both" or reveal == 1 - garbler
        g_sent = hdr + 16 * B * wG + tables + (out_bytes if to_e else 0)
        e_sent = hdr + (out_bytes if to_g else 0)
        rg, re_ = (r0, r1) if garbler == 0 else (r1, r0)
        assert rg[k] == (g_sent, e_sent), reveal
        assert re_[k] == (e_sent, g_sent), reveal


def test_xor_inv_are_free():
    b = CircuitBuilder()
    x, y = b.input(64), b.input(64)
    b.output(b.inv(b.xor(x, b.inv(y))))
    c = b.build()
    assert c.n_and == 0 and c.n_xor == 64 and c.n_inv > 0
    rng = np.random.default_rng(3)
    ins = [rng.integers(0, 2, (10, 64), dtype=np.uint8) for _ in range(2)]

    def party(mine):
        def f(s):
            r = s.yao(c, mine, [0, 1], "shares")
            cnt, cot = s.counters("yao"), s.counters("yao/cot")
            return r, cnt.bytes_sent - cot.bytes_sent
        return f

    in0, in1 = split(ins, [0, 1])
    (a, sent0), (b_, sent1) = run_pair(party(in0), party(in1))
    assert np.array_equal(a[0] ^ b_[0], c.evaluate(ins)[0])
    assert sent0 == HEADER_BYTES + 16 * 10 * 64 and sent1 == HEADER_BYTES


def test_tcp_batched_aes(rng):
    name = "aes_128"
    c = load(name)
    ins, outs = vector_batch(name)
    rep = 40
    ins = [np.tile(x, (rep, 1)) for x in ins]
    r0, r1 = yao_pair(c, ins, [1, 0], transport="tcp", garbler=1)
    assert np.array_equal(r0[0], np.tile(outs[0], (rep, 1))) and np.array_equal(r1[0], r0[0])


def test_many_inputs_and_outputs_and_eq_gates():
    """A circuit with several input values of odd widths, constants, EQW copies and MAND."""
    text = """9 19
4 3 1 2 2
3 2 1 2

1 1 1 8 EQ
6 3 0 1 2 3 4 5 9 10 11 MAND
2 1 9 8 12 XOR
1 1 6 13 EQW
2 1 10 11 14 AND
1 1 12 15 INV
2 1 7 14 16 AND
1 1 13 17 EQW
2 1 15 16 18 XOR
"""
    c = Circuit.from_bristol_bytes(text)
    rng = np.random.default_rng(5)
    ins = [rng.integers(0, 2, (6, w), dtype=np.uint8) for w in c.input_widths]
    exp = c.evaluate(ins)
    for owners in ([0, 1, 0, 1], [1, 1, 0, 0]):
        r0, r1 = yao_pair(c, ins, owners, garbler=owners[0])
        for j, e in enumerate(exp):
            assert np.array_equal(r0[j], e) and np.array_equal(r1[j], e)


def test_empty_batch_and_no_input_circuit():
    c = load("adder64")
    z = np.zeros((0, 64), np.uint8)
    r0, r1 = yao_pair(c, [z, z], [0, 1])
    assert r0[0].shape == (0, 64) and r1[0].shape == (0, 64)
    b = CircuitBuilder()
    b.output(b.const(0b1011, 4))
    k = b.build()
    r0, r1 = run_pair(lambda s: s.yao(k, {}, [], batch=3), lambda s: s.yao(k, {}, [], batch=3))
    assert r0[0].tolist() == [[1, 1, 0, 1]] * 3 == r1[0].tolist()
    r0, r1 = run_pair(lambda s: s.yao(k, {}, [], "shares", batch=2), lambda s: s.yao(k, {}, [], "shares", batch=2))
    assert (r0[0] ^ r1[0]).tolist() == [[1, 1, 0, 1]] * 2


def test_batch_known_only_to_owner():
    c = load("neg64")
    x = ints_to_bits(np.array([5, 0, 2**63], np.uint64), 64)
    r0, r1 = run_pair(lambda s: s.yao(c, {}, [1]), lambda s: s.yao(c, {0: x}, [1]))
    with np.errstate(over="ignore"):
        exp = ints_to_bits(np.uint64(0) - np.array([5, 0, 2**63], np.uint64), 64)
    assert np.array_equal(r0[0], exp) and np.array_equal(r1[0], exp)


@pytest.mark.parametrize("what", ["batch", "circuit", "owners", "reveal", "garbler", "chunk"])
def test_mismatch_raises_protocol_error(what):
    c = load("adder64")
    c2 = load("sub64")
    x = np.zeros((2, 64), np.uint8)
    y = np.zeros((3 if what == "batch" else 2, 64), np.uint8)
    kw0, kw1 = {}, {}
    owners0 = owners1 = [0, 1]
    in1 = {1: y}
    circ1 = c2 if what == "circuit" else c
    if what == "owners":
        owners1 = [0, 0]
        in1 = {}
    if what == "reveal":
        kw1 = {"reveal_to": 1}
    if what == "garbler":
        kw1 = {"garbler": 1}
    if what == "chunk":
        kw1 = {"chunk_bytes": 1 << 16}
    with pytest.raises(ProtocolError, match="yao.setup"):
        run_pair(lambda s: s.yao(c, {0: x}, owners0, **kw0), lambda s: s.yao(circ1, in1, owners1, **kw1),
                 timeout=30)


def test_misuse_errors():
    c = load("adder64")

    def f(s):
        errs = []
        for bad in (lambda: s.yao(c, {1: np.zeros((1, 64), np.uint8)}, [0, 1]),      # not owned
                    lambda: s.yao(c, {}, [0, 1]),                                      # missing
                    lambda: s.yao(c, {0: np.zeros((1, 63), np.uint8)}, [0, 1]),        # width
                    lambda: s.yao(c, {0: np.full((1, 64), 2, np.uint8)}, [0, 1]),      # not bits
                    lambda: s.yao(c, {0: np.zeros((1, 64), np.uint8)}, [0]),           # owners
                    lambda: s.yao(c, {0: np.zeros((1, 64), np.uint8)}, [0, 1], "all"),
                    lambda: s.yao(c, {0: np.zeros((1, 64), np.uint8)}, [0, 1], garbler=2)):
            try:
                bad()
            except (ValueError, TypeError) as e:
                errs.append(type(e).__name__)
        return errs

    r0, _ = run_pair(f, lambda s: None)
    assert len(r0) == 7


# ---------------------------------------------------------------------- composable label API

def test_label_api_composition(rng):
    """x (P0) + y (P1) through the adder, then compare with z given as XOR shares, all
    without revealing the sum; reveal only the comparison.  Also xor_public/not_,
    reshape/indexing/concatenate of YaoTensors and shares()."""
    bld = CircuitBuilder()
    a, b = bld.input(16), bld.input(16)
    bld.output(bld.add(a, b))
    add = bld.build()
    bld = CircuitBuilder()
    a, b = bld.input(16), bld.input(16)
    bld.output(bld.lt(a, b)[None])
    lt = bld.build()
    B = 50
    x = rng.integers(0, 2**16, B, dtype=np.uint64)
    y = rng.integers(0, 2**16, B, dtype=np.uint64)
    z = rng.integers(0, 2**16, B, dtype=np.uint64)
    z0 = rng.integers(0, 2**16, B, dtype=np.uint64)
    z1 = z ^ z0
    pub = rng.integers(0, 2, (B, 16), dtype=np.uint8)

    def party(role):
        def f(s):
            g = s.gc
            X = g.input(ints_to_bits(x, 16) if role == 0 else None, owner=0, shape=(B, 16))
            Y = g.input(ints_to_bits(y, 16) if role == 1 else None, owner=1, shape=(B, 16))
            Z = g.input_shared(ints_to_bits(z0 if role == 0 else z1, 16))
            assert isinstance(X, YaoTensor) and X.shape == (B, 16)
            (S,) = g.run(add, [X, Y])
            (L,) = g.run(lt, [S, Z])
            opened = g.reveal(L, to="both")
            sh = g.shares(S)
            # free operations: ~(X ^ pub) revealed to P1 only
            T = g.not_(g.xor_public(X, pub))
            t_open = g.reveal([T[:10], T[10:].reshape(B - 10, 16)], to=1)
            cat = YaoTensor.concatenate([X[:5], Y[:5]], axis=0)
            cat_open = g.reveal(cat, to=0)
            return opened, sh, t_open, cat_open
        return f

    (o0, sh0, t0, c0), (o1, sh1, t1, c1) = run_pair(party(0), party(1))
    with np.errstate(over="ignore"):
        ssum = (x + y) & np.uint64(0xFFFF)
    exp = (ssum < z).astype(np.uint8)
    assert np.array_equal(o0[:, 0], exp) and np.array_equal(o1[:, 0], exp)
    assert np.array_equal(bits_to_ints(sh0 ^ sh1), ssum)
    assert t0 == [None, None]
    tt = np.concatenate(t1)
    assert np.array_equal(tt, 1 - (ints_to_bits(x, 16) ^ pub))
    assert c1 is None
    assert np.array_equal(c0, np.concatenate([ints_to_bits(x[:5], 16), ints_to_bits(y[:5], 16)]))


def test_label_api_garbler_p1_and_run_mismatch():
    bld = CircuitBuilder()
    a = bld.input(8)
    bld.output(bld.neg(a))
    neg = bld.build()
    v = np.array([0, 1, 200], np.uint64)

    def party(role):
        def f(s):
            X = s.gc.input(ints_to_bits(v, 8) if role == 0 else None, owner=0, shape=(3, 8), garbler=1)
            assert X.garbler == 1
            (N,) = s.gc.run(neg, [X])
            return s.gc.reveal(N)
        return f

    r0, r1 = run_pair(party(0), party(1))
    exp = ints_to_bits((np.uint64(256) - v) & np.uint64(255), 8)
    assert np.array_equal(r0, exp) and np.array_equal(r1, exp)

    def bad(role):
        def f(s):
            X = s.gc.input(np.zeros((2 + role, 8), np.uint8) if role == 0 else None, owner=0,
                           shape=(2 + role, 8))
            return s.gc.run(neg, [X])
        return f

    with pytest.raises(ProtocolError):
        run_pair(bad(0), bad(1), timeout=30)


def test_unusual_circuits():
    """Outputs that are input wires (no gates), a width-0 value, 40 one-bit values."""
    c = Circuit.from_bristol_bytes("0 3\n3 1 0 2\n2 2 1\n\n")
    ins = [np.array([[1], [0]], np.uint8), np.zeros((2, 0), np.uint8), np.array([[1, 0], [0, 1]], np.uint8)]
    exp = c.evaluate(ins)
    r0, r1 = yao_pair(c, ins, [0, 1, 1])
    assert all(np.array_equal(a, e) and np.array_equal(b, e) for a, b, e in zip(r0, r1, exp))
    n = 40
    gates = [f"2 1 {0 if i == 1 else n + i - 2} {i} {n + i - 1} AND" for i in range(1, n)]
    text = f"{len(gates)} {2 * n - 1}\n{n} " + " ".join(["1"] * n) + "\n1 1\n\n" + "\n".join(gates) + "\n"
    c2 = Circuit.from_bristol_bytes(text)
    ins = [np.ones((3, 1), np.uint8) for _ in range(n)]
    ins[5][1] = 0
    r0, r1 = yao_pair(c2, ins, [i % 2 for i in range(n)], garbler=1)
    assert r0[0][:, 0].tolist() == r1[0][:, 0].tolist() == [1, 0, 1]


def test_evaluator_view_does_not_depend_on_garbler_input():
    """What P1 receives (P0's input labels, the garbled tables, the decoding bits of a
    'shares' run: none) looks the same whether P0's input is all zeros or all ones:
    the label lsbs (point-and-permute bits) and table bits are unbiased in both cases."""
    c = load("adder64")
    B = 256
    views = {}
    for val in (0, 1):
        x = np.full((B, 64), val, np.uint8)
        y = np.zeros((B, 64), np.uint8)
        seen = []

        def p1(s):
            real = s.channel.recv_array

            def spy(step, dtype, shape, out=None):
                a = real(step, dtype, shape, out=out)
                if step in ("yao.inputs", "yao.tables"):
                    seen.append((step, a.copy()))
                return a
            s.channel.recv_array = spy
            return s.yao(c, {1: y}, [0, 1], "shares")

        run_pair(lambda s: s.yao(c, {0: x}, [0, 1], "shares"), p1)
        views[val] = seen
    for val in (0, 1):
        labels = [a for st, a in views[val] if st == "yao.inputs"][0]
        tables = np.concatenate([a for st, a in views[val] if st == "yao.tables"])
        lsb = labels[..., 0] & 1
        n = lsb.size
        assert abs(lsb.mean() - 0.5) < 5 * 0.5 / np.sqrt(n)          # 5 sigma
        bits = np.unpackbits(tables)
        assert abs(bits.mean() - 0.5) < 5 * 0.5 / np.sqrt(bits.size)
        assert tables.size == 32 * c.n_and * B
