"""Ferret silent correlated OT (eprint 2020/924): parameters, kernels, the COT relation in
all flavours, continuation across iterations, what each side sees, malformed frames."""
import os

import numpy as np
import pytest

import ezprotocols
from ezprotocols._ext import ferret as F
from ezprotocols._ext.crypto import AES128
from ezprotocols.errors import ProtocolError
from ezprotocols.ot import ferret as fm
from ezprotocols.ot.ferret import MAIN, SETUP, Ferret
from ezprotocols.testing import run_pair

# long tests run only with EZP_SLOW=1 (CI stays short)
slow = pytest.mark.skipif(os.environ.get("EZP_SLOW") != "1", reason="long test: set EZP_SLOW=1")


# ---------------------------------------------------------------------- parameters

def test_parameters_from_the_paper():
    # eprint 2020/924, Table 2 (LPN with regular noise, 128-bit security)
    assert (MAIN.n, MAIN.k, MAIN.t) == (10_805_248, 589_760, 1_319)
    assert (SETUP.n, SETUP.k, SETUP.t) == (649_728, 36_288, 1_269)
    for p in (MAIN, SETUP):
        assert p.t * p.N == p.n                   # regular noise: one error per bin of 2^h
        assert p.reserve == p.k + p.t * p.h
    assert (MAIN.h, SETUP.h) == (13, 9)
    assert MAIN.reserve == 606_907 and SETUP.reserve == 47_709
    assert MAIN.reserve <= SETUP.n                # a setup iteration can bootstrap the main one
    assert MAIN.n - MAIN.reserve == 10_198_341
    assert F.LPN_D == 10
    # communication of a main iteration: t*h bits up, t*(2h+1) blocks down: < 0.06 bytes/COT
    assert (MAIN.t * MAIN.h / 8 + MAIN.t * (2 * MAIN.h + 1) * 16) / (MAIN.n - MAIN.reserve) < 0.06


# ---------------------------------------------------------------------- kernels

_KEYS = bytes.fromhex("a4093822299f31d0082efa98ec4e6c89452821e638d01377be5466cf34e90c6c")


def _ref_tree(seed, h):
    al, ar = AES128(_KEYS[:16]), AES128(_KEYS[16:])
    lv, sums = seed.reshape(1, 16), []
    for _ in range(h):
        L, R = al.encrypt(lv) ^ lv, ar.encrypt(lv) ^ lv
        nxt = np.empty((2 * len(lv), 16), np.uint8)
        nxt[0::2], nxt[1::2] = L, R
        sums.append((np.bitwise_xor.reduce(L, 0), np.bitwise_xor.reduce(R, 0)))
        lv = nxt
    lv = lv.copy()
    lv[:, 0] &= 0xFE
    return lv, sums


@pytest.mark.parametrize("h", [1, 2, 3, 4, 5, 6, 9])
def test_ggm_kernels_match_reference(h):
    rng = np.random.default_rng(h)
    t, N = 5, 1 << h
    seeds = rng.integers(0, 256, (t, 16), dtype=np.uint8)
    out = np.empty((t * N, 16), np.uint8)
    sums = np.empty((t, h, 2, 16), np.uint8)
    ls = np.empty((t, 16), np.uint8)
    F.ggm_send(seeds, h, out, sums, ls)
    for i in range(t):
        lv, sm = _ref_tree(seeds[i], h)
        assert np.array_equal(out[i * N:(i + 1) * N], lv)
        assert np.array_equal(ls[i], np.bitwise_xor.reduce(lv, 0))
        for lvl in range(h):
            assert np.array_equal(sums[i, lvl, 0], sm[lvl][0]) and np.array_equal(sums[i, lvl, 1], sm[lvl][1])
    delta = rng.integers(0, 256, 16, dtype=np.uint8)
    delta[0] |= 1
    alpha = rng.integers(0, N, t).astype(np.uint32)
    alpha[0], alpha[-1] = 0, N - 1                               # both ends of a bin
    ksib = np.empty((t, h, 16), np.uint8)
    for i in range(t):
        for lvl in range(h):
            ksib[i, lvl] = sums[i, lvl, 1 - ((int(alpha[i]) >> (h - 1 - lvl)) & 1)]
    w = np.empty_like(out)
    F.ggm_recv(alpha, ksib, ls ^ delta, h, w)
    e = np.zeros(t * N, np.uint8)
    e[np.arange(t) * N + alpha] = 1
    assert np.array_equal(w, out ^ e[:, None] * delta)
    pre = rng.integers(0, 256, out.shape, dtype=np.uint8)
    w2 = pre.copy()
    F.ggm_recv(alpha, ksib, ls ^ delta, h, w2, True)                   # XOR mode
    assert np.array_equal(w2, pre ^ w)


def test_lpn_kernel_matches_reference():
    rng = np.random.default_rng(7)
    k = 1000
    base = rng.integers(0, 256, (k, 16), dtype=np.uint8)
    M = F.LpnMatrix(bytes(range(16)), k)
    for row0, n in [(0, 1), (5, 1777), (1024, 600)]:
        o = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        ref = o.copy()
        idx = M.indices(row0, n)
        assert idx.shape == (n, 10) and idx.max() < k
        for e in range(10):
            ref ^= base[idx[:, e]]
        M.encode(base, o, row0)
        assert np.array_equal(o, ref)
        o2 = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        M.encode(base, o2, row0, True)                                  # overwrite mode
        assert np.array_equal(o2, np.bitwise_xor.reduce([base[idx[:, e]] for e in range(10)]))
        o3 = np.empty(16 * n + 1, np.uint8)[1:].reshape(n, 16)           # unaligned: regular stores
        o3[:] = ref ^ o2
        M.encode(base, o3, row0)
        assert np.array_equal(o3, ref)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1001])
def test_choice_correction_kernels(n):
    rng = np.random.default_rng(n)
    blocks = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    lsb = blocks[:, 0] & 1
    assert np.array_equal(F.lsb_pack(blocks), np.packbits(lsb, bitorder="little"))
    b = rng.integers(0, 2, n).astype(np.uint8)
    pb = np.packbits(b, bitorder="little")
    assert np.array_equal(F.lsb_pack(blocks, pb), np.packbits(lsb ^ b, bitorder="little"))
    delta = rng.integers(0, 256, 16, dtype=np.uint8)
    x = blocks.copy()
    F.cond_xor_packed(x, pb, delta)
    assert np.array_equal(x, blocks ^ b[:, None] * delta)


def test_lpn_matrix_public_and_fixed():
    assert fm.lpn_matrix(SETUP).seed == fm.lpn_matrix(SETUP).seed != fm.lpn_matrix(MAIN).seed
    idx = fm.lpn_matrix(SETUP).indices(0, 20000)
    counts = np.bincount(idx.reshape(-1), minlength=SETUP.k)
    assert counts.mean() == pytest.approx(200000 / SETUP.k) and counts.max() < 30   # spread over all columns


# ---------------------------------------------------------------------- protocol

def _rcot_pair(sizes, **kw):
    def p0(s):
        f = Ferret(s)
        return [f.send_rcot(n) for n in sizes], f.delta.copy()

    def p1(s):
        f = Ferret(s)
        return [f.recv_rcot(n) for n in sizes]

    return run_pair(p0, p1, **kw)


def _check_rcot(res, sizes):
    (snd, delta), rcv = res
    assert delta[0] & 1
    for n, (q, d), (r, t) in zip(sizes, snd, rcv):
        assert q.shape == t.shape == (n, 16) and r.shape == (n,)
        assert np.array_equal(d, delta)
        assert np.array_equal(t, q ^ r[:, None] * delta)
        assert np.array_equal(r, t[:, 0] & 1)
        assert not (q[:, 0] & 1).any()
    allq = np.concatenate([q for q, _ in snd])
    assert len({bytes(x) for x in allq[:50000]}) == min(50000, len(allq))     # no repeats


def test_rcot_small_sizes_and_continuation():
    sizes = [0, 1, 2, 127, 129, 1000, 0, 4093, 65537, 300001, 250000, 7]   # > 1 setup iteration
    _check_rcot(_rcot_pair(sizes), sizes)


def test_rcot_over_a_million_two_modes():
    # after the 3, the pool holds 602,016; 1.3 M is then short by more than a setup
    # iteration: a setup iteration reserving the main set writes its 42,821 fresh COTs
    # straight into the output (at offset 602,016), then a main iteration fills the pool
    sizes = [3, 1_300_000, 5]
    seen = {}

    def p0(s):
        f = Ferret(s)
        r = [f.send_rcot(n) for n in sizes]
        seen["mode"], seen["it"] = f._sender.mode, f._sender.iteration
        return r, f.delta.copy()

    def p1(s):
        f = Ferret(s)
        return [f.recv_rcot(n) for n in sizes]

    _check_rcot(run_pair(p0, p1), sizes)
    assert seen == {"mode": "main", "it": 3}


@slow
def test_rcot_2_to_24_tcp():
    sizes = [1 << 24, 11]
    _check_rcot(_rcot_pair(sizes, transport="tcp", timeout=600), sizes)


def test_iteration_traffic_is_exact():
    """One setup iteration: receiver -> sender 32 + ceil(t h / 8) bytes, sender -> receiver
    t (2h + 1) 16 bytes, one exchange (2 rounds); pool hits cost nothing; a chosen-choice
    COT costs a 32-byte header and one bit per OT."""
    p = SETUP

    def f(s):
        fe = Ferret(s)
        fe.setup()
        out = []
        for i, n in enumerate((5, 1000, 17)):
            with s.phase(f"call{i}"):
                if i < 2:
                    fe.send_rcot(n) if s.role == 0 else fe.recv_rcot(n)
                else:
                    fe.send_cot(n) if s.role == 0 else fe.recv_cot(np.ones(n, np.uint8))
            c = s.counters(f"call{i}")
            out.append((c.bytes_sent, c.bytes_recv, c.rounds))
        return out

    a, b = run_pair(f, f)
    up, down = 32 + (p.t * p.h + 7) // 8, p.t * (2 * p.h + 1) * 16
    assert a[0] == (0 + down, up, 2) and b[0] == (up, down, 2)
    assert a[1][:2] == b[1][:2] == (0, 0)
    assert a[2][:2] == (0, 32 + 3) and b[2][:2] == (32 + 3, 0)


@pytest.mark.parametrize("n", [3001, pytest.param(1_000_003, marks=slow)])
def test_all_flavours_both_directions(n):
    rng = np.random.default_rng(3)
    bits = (rng.integers(0, 2, n)).astype(np.uint8)
    L = 37
    m0, m1 = rng.integers(0, 256, (n, L), dtype=np.uint8), rng.integers(0, 256, (n, L), dtype=np.uint8)
    c = rng.integers(0, 2 ** 63, n).astype(np.uint64)
    widths = rng.integers(1, 65, n).astype(np.uint8)

    def sender(f):
        out = {"cot": f.send_cot(n), "rot": f.send_rot(n)}
        f.send(m0, m1)
        out["acot"] = f.send_acot(c, 64)
        out["acotw"] = f.send_acot(c, widths)
        out["cot0"] = f.send_cot(0)
        return out

    def receiver(f):
        out = {"cot": f.recv_cot(bits), "rot": f.recv_rot(bits), "chosen": f.recv(bits, L),
               "acot": f.recv_acot(bits, 64), "acotw": f.recv_acot(bits, widths), "cot0": f.recv_cot(bits[:0])}
        return out

    def p0(s):
        f = Ferret(s)
        f.setup()
        return sender(f), receiver(f)

    def p1(s):
        f = Ferret(s)
        f.setup()
        return receiver(f), sender(f)

    (s0, r0), (r1, s1) = run_pair(p0, p1)
    for snd, rcv in ((s0, r1), (s1, r0)):
        q, d = snd["cot"]
        assert np.array_equal(rcv["cot"], q ^ bits[:, None] * d)
        a0, a1 = snd["rot"]
        assert np.array_equal(rcv["rot"], np.where(bits[:, None] == 1, a1, a0))
        assert not (a0 == a1).all(axis=1).any()
        assert np.array_equal(rcv["chosen"], np.where(bits[:, None] == 1, m1, m0))
        assert np.array_equal(rcv["acot"], snd["acot"] + bits.astype(np.uint64) * c)
        mask = np.where(widths == 64, ~np.uint64(0), (np.uint64(1) << widths.astype(np.uint64)) - np.uint64(1))
        assert np.array_equal(rcv["acotw"], (snd["acotw"] + bits.astype(np.uint64) * c) & mask)
        assert snd["cot0"][0].shape == (0, 16) and rcv["cot0"].shape == (0, 16)
    assert not np.array_equal(s0["cot"][1], s1["cot"][1])        # one delta per direction


def test_views_look_uniform():
    """What each side receives in an extension, and the receiver's choice bits, are balanced bits."""
    seen = {"d": [], "m": []}

    def spy(kind, fn):
        def f(step, *a, **k):
            x = fn(step, *a, **k)
            if step.endswith(".ext.d"):
                seen["d"].append(x.copy())
            elif step.endswith(".ext.m"):
                seen["m"].append(x.copy())
            return x
        return f

    def p0(s):
        s.channel.recv_array = spy("s", s.channel.recv_array)
        return Ferret(s).send_rcot(700_000)

    def p1(s):
        s.channel.recv_array = spy("r", s.channel.recv_array)
        return Ferret(s).recv_rcot(700_000)

    (q, _), (r, t) = run_pair(p0, p1)

    def balanced(bits, sigmas=6):
        bits = np.asarray(bits, np.float64)
        return abs(bits.mean() - 0.5) < sigmas * 0.5 / np.sqrt(bits.size)

    d = np.concatenate([np.unpackbits(x) for x in seen["d"]])
    assert d.size >= SETUP.t * SETUP.h and balanced(d)
    lv = np.concatenate([np.unpackbits(x[:, :-1].reshape(-1), bitorder="little") for x in seen["m"]])
    lv = lv.reshape(-1, 128)
    assert balanced(lv) and all(balanced(lv[:, j]) for j in range(128))    # per bit position too
    c = np.concatenate([np.unpackbits(x[:, -1].reshape(-1), bitorder="little") for x in seen["m"]]).reshape(-1, 128)
    assert c[:, 0].all()                      # c = delta ^ (leaves with bit 0 cleared): bit 0 is delta's, public 1
    assert all(balanced(c[:, j]) for j in range(1, 128))
    assert balanced(r)
    assert balanced(np.unpackbits(q[:, 1:].reshape(-1))) and balanced(np.unpackbits(t[:, 1:].reshape(-1)))
    # pairs of consecutive choice bits: all four patterns about equally likely
    pairs = r[:-1:2] * 2 + r[1::2]
    cnt = np.bincount(pairs, minlength=4)
    assert (abs(cnt - cnt.sum() / 4) < 6 * np.sqrt(cnt.sum() / 4)).all()


def test_session_backend_and_hybrid_protocols():
    """Session(ot="ferret"): the source behind s.ot, garbling (delta, evaluator COTs),
    triples and ReLU end to end on Ferret's COTs."""
    rng = np.random.default_rng(5)
    x = rng.integers(-1000, 1000, 50) / 8.0
    x[:4] = [0.0, -1.0, 1.0, -0.125]

    def f(s):
        assert type(s.ot) is Ferret and s.ot.cot_bytes == 1
        t = s.input(x if s.role == 0 else None, 0, shape=x.shape)
        return s.reveal(ezprotocols.relu(t * t - 100.0))

    r0, r1 = run_pair(f, f, ot="ferret")
    assert np.array_equal(r0, r1)
    assert np.allclose(r0, np.maximum(x * x - 100.0, 0), atol=2e-3)


def test_session_rcot_through_s_ot():
    def f(s):
        return s.ot.send_rcot(1000) if s.role == 0 else s.ot.recv_rcot(1000)

    (q, d), (r, t) = run_pair(f, f, ot="ferret")
    assert np.array_equal(t, q ^ r[:, None] * d)


# ---------------------------------------------------------------------- malformed / mismatched

def test_mismatched_n_names_step():
    def p0(s):
        return Ferret(s).send_cot(10)

    def p1(s):
        return Ferret(s).recv_cot(np.zeros(11, np.uint8))

    with pytest.raises(ProtocolError, match=r"ferret\.s0\.hdr"):
        run_pair(p0, p1)


def test_mismatched_rcot_caught_at_extension():
    def p0(s):
        f = Ferret(s)
        f.send_rcot(10)
        return f.send_rcot(700_000)

    def p1(s):
        f = Ferret(s)
        f.recv_rcot(11)
        return f.recv_rcot(700_000)

    with pytest.raises(ProtocolError, match=r"ferret\.s0\.ext\.hdr"):
        run_pair(p0, p1)


def _fake_receiver(s, d_len=None, hdr=None):
    f = Ferret(s)
    rx = f._rx()
    p = SETUP
    s.channel.send(f"{rx.prefix}.ext.hdr", np.array(hdr if hdr is not None else [0, p.ident, 0, 5], np.uint64))
    s.channel.send(f"{rx.prefix}.ext.d", np.zeros(d_len if d_len is not None else (p.t * p.h + 7) // 8, np.uint8))
    s.channel.recv_array(f"{rx.prefix}.ext.m", np.uint8, (p.t, 2 * p.h + 1, 16))


def test_malformed_derandomisation_bits():
    with pytest.raises(ProtocolError, match=r"ferret\.s0\.ext\.d"):
        run_pair(lambda s: Ferret(s).send_rcot(5), lambda s: _fake_receiver(s, d_len=3))


def test_malformed_extension_header():
    with pytest.raises(ProtocolError, match=r"ferret\.s0\.ext\.hdr"):
        run_pair(lambda s: Ferret(s).send_rcot(5), lambda s: _fake_receiver(s, hdr=[0, 1, 0, 5]))


def test_malformed_sender_reply():
    def fake_sender(s):
        f = Ferret(s)
        tx = f._tx()
        s.channel.recv_array(f"{tx.prefix}.ext.hdr", np.uint64, (4,))
        s.channel.recv_array(f"{tx.prefix}.ext.d", np.uint8, ((SETUP.t * SETUP.h + 7) // 8,))
        s.channel.send(f"{tx.prefix}.ext.m", np.zeros((SETUP.t, 2 * SETUP.h, 16), np.uint8))   # c missing

    with pytest.raises(ProtocolError, match=r"ferret\.s0\.ext\.m"):
        run_pair(fake_sender, lambda s: Ferret(s).recv_rcot(5))


def test_malformed_choice_correction():
    def fake_receiver(s):
        f = Ferret(s)
        rx = f._rx()
        from ezprotocols.ot.iknp import _header
        s.channel.send(f"{rx.prefix}.hdr", _header(8, "cot"))
        rx.take(8, np.empty((8, 16), np.uint8))
        s.channel.send(f"{rx.prefix}.b", np.zeros(2, np.uint8))      # 1 byte expected

    with pytest.raises(ProtocolError, match=r"ferret\.s0\.b"):
        run_pair(lambda s: Ferret(s).send_cot(8), fake_receiver)


def test_argument_errors_before_traffic():
    def p(s):
        f = Ferret(s)
        with pytest.raises(ValueError):
            f.recv_cot(np.array([0, 2], np.uint8))
        with pytest.raises(ValueError):
            f.send_rcot(-1)
        with pytest.raises(TypeError):
            f.send_rcot(1.5)
        return s.channel.stats.get("total").bytes_sent

    a, b = run_pair(p, p)
    assert a == b


def test_prefill_moves_the_iteration_offline():
    """prefill(n) runs an iteration when fewer than n COTs are ready (both ends decide
    alike); the next n chosen-choice COTs then cost only the one-bit corrections."""
    n = 200_000
    bits = np.frombuffer(os.urandom(n), np.uint8) & 1

    def party(s):
        s.ot.setup()
        s.ot.prefill(MAIN.n)                        # more than one iteration holds: capped, no hang
        with s.phase("pre"):
            s.ot.prefill(n, senders=(0,))
            s.ot.prefill(n, senders=(0,))           # already ready: nothing
        with s.phase("on"):
            out = s.ot.send_cot(n) if s.role == 0 else s.ot.recv_cot(bits)
        c = s.counters("on")
        return out, c.bytes_sent + c.bytes_recv, c.rounds

    ((q, delta), b0, k0), (t, b1, k1) = run_pair(party, party, ot="ferret", timeout=300)
    assert np.array_equal(t, np.where(bits[:, None].astype(bool), q ^ delta, q))
    assert b0 == b1 == 32 + n // 8 and k0 == k1 == 1


def test_secret_buffers_zeroed_after_use_and_on_close():
    """A used-up reserve is zeroed at the end of an iteration; closing the session zeroes
    and drops every buffer of both directions (reserve, spare, iteration output / pool,
    derived-flavour scratch) and the source refuses further use."""
    from ezprotocols import Session
    from ezprotocols.net import local_pair
    import threading

    got, errors = [None, None], []

    def party(role, ch):
        try:
            with Session(role, ch, ot="ferret") as s:
                fr = s.ot
                if role == 0:
                    s.ot.send_rcot(1 << 12)
                    s.ot.send_rot(1 << 12)              # derived flavour: scratch buffer
                    s.ot.recv_rcot(1 << 12)
                    side = fr._sender
                else:
                    s.ot.recv_rcot(1 << 12)
                    s.ot.recv_rot(np.ones(1 << 12, np.uint8))
                    s.ot.send_rcot(1 << 12)
                    side = fr._receiver
                first_reserve = side.base_full
                assert first_reserve.any()
                # a second iteration (more than the setup pool holds) uses up that reserve
                if role == 0:
                    s.ot.send_rcot(SETUP.n)
                else:
                    s.ot.recv_rcot(SETUP.n)
                assert side.iteration >= 2 and not first_reserve.any()
                held = [fr._sender.buf, fr._sender.base_full, fr._sender._spare,
                        fr._receiver.buf, fr._receiver.base_full, *fr._scratch_bufs]
                held = [a for a in held if a is not None]
                # the reserves and the derived flavours' scratch hold COTs (the spare and a
                # fully handed-out iteration buffer may already be zero)
                assert len(held) >= 5 and fr._sender.base_full.any() and fr._receiver.base_full.any()
                assert any(b is not None and b.any() for b in fr._scratch_bufs)
            got[role] = (fr, held)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    c0, c1 = local_pair(timeout=60)
    ts = [threading.Thread(target=party, args=(r, c)) for r, c in ((0, c0), (1, c1))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    for fr, held in got:
        assert fr._sender is None and fr._receiver is None and fr._scratch_bufs == [None, None]
        assert all(not a.any() for a in held), "a buffer still holds COTs after close"
        with pytest.raises(RuntimeError, match="released"):
            fr.send_rcot(1)
