"""Channels: typed frames, chunking, checks on everything received, timeouts, dead peers, stats."""
import multiprocessing as mp
import os
import struct
import time

import numpy as np
import pytest
import zmq

from ezprotocols import PeerGone, PeerTimeout, ProtocolError
from ezprotocols.net import connect, listen, local_pair
from ezprotocols.net import channel as chmod
from ezprotocols.testing import free_tcp_port, run_pair


@pytest.fixture
def pair():
    a, b = local_pair(timeout=5)
    yield a, b
    a.close()
    b.close()


DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64,
          np.float32, np.float64, np.bool_]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (1,), (3, 5), (), (2, 0, 4), (chmod.CHUNK // 8 + 3,)])
def test_roundtrip_arrays(pair, rng, dt, shape):
    a, b = pair
    x = (rng.integers(0, 100, size=shape) % 2).astype(dt) if dt is np.bool_ else rng.integers(
        0, 100, size=shape).astype(dt)
    a.send("step", x)
    y = b.recv_array("step", dt, shape)
    assert y.dtype == np.dtype(dt) and y.shape == tuple(shape)
    assert np.array_equal(x, y)


def test_large_array_chunked_and_into_out(pair, rng):
    a, b = pair
    x = rng.integers(0, 2**63, size=(3 * chmod.CHUNK // 8 + 11,), dtype=np.uint64)
    a.send("big", x)
    out = np.zeros_like(x)
    y = b.recv_array("big", np.uint64, x.shape, out=out)
    assert y is out and np.array_equal(x, out)


def test_non_contiguous_array_is_sent_in_c_order(pair):
    a, b = pair
    x = np.arange(12, dtype=np.int32).reshape(3, 4).T
    a.send("t", x)
    assert np.array_equal(b.recv_array("t", np.int32, (4, 3)), x)


def test_bytes(pair):
    a, b = pair
    a.send("b", b"hello")
    assert b.recv_bytes("b", 5) == b"hello"
    a.send("b2", bytearray(b"x" * 70000))
    assert b.recv_bytes("b2", max_nbytes=100000) == b"x" * 70000
    a.send("b3", b"")
    assert b.recv_bytes("b3", 0) == b""


@pytest.mark.parametrize("case", ["dtype", "shape", "length", "step", "kind", "maxbytes"])
def test_mismatch_raises_protocol_error_naming_step(pair, case):
    a, b = pair
    x = np.zeros(10, np.uint64)
    if case == "dtype":
        a.send("mul.open", x)
        call = lambda: b.recv_array("mul.open", np.uint32, (10,))  # noqa: E731
    elif case == "shape":
        a.send("mul.open", x)
        call = lambda: b.recv_array("mul.open", np.uint64, (2, 5))  # noqa: E731
    elif case == "length":
        a.send("mul.open", b"abc")
        call = lambda: b.recv_bytes("mul.open", 4)  # noqa: E731
    elif case == "step":
        a.send("other.step", x)
        call = lambda: b.recv_array("mul.open", np.uint64, (10,))  # noqa: E731
    elif case == "kind":
        a.send("mul.open", b"12345678")
        call = lambda: b.recv_array("mul.open", np.uint64, (1,))  # noqa: E731
    else:
        a.send("mul.open", b"x" * 1000)
        call = lambda: b.recv_bytes("mul.open", max_nbytes=999)  # noqa: E731
    with pytest.raises(ProtocolError, match="mul.open"):
        call()


def _raw(ch):
    return ch._sock


def test_garbage_frames(pair):
    a, b = pair
    _raw(a).send(b"not a header at all")
    with pytest.raises(ProtocolError, match="step"):
        b.recv_array("step", np.uint8, (3,))
    _raw(a).send(b"")
    with pytest.raises(ProtocolError):
        b.recv_bytes("step", 0)


def test_absurd_size_in_header_allocates_nothing(pair):
    a, b = pair
    tag = chmod.step_tag("s")
    hdr = chmod._HDR.pack(b"EZ", chmod.KIND_ARRAY, 0, tag, 7, 1, 0, 1 << 62) + struct.pack("<Q", 1 << 59)
    _raw(a).send(hdr)
    t = time.perf_counter()
    with pytest.raises(ProtocolError, match="expected shape"):
        b.recv_array("s", np.uint64, (4,))
    assert time.perf_counter() - t < 1.0
    # same with bytes and a claimed huge length
    hdr = chmod._HDR.pack(b"EZ", chmod.KIND_BYTES, 0, tag, 0, 0, 0, 1 << 62)
    _raw(a).send(hdr)
    with pytest.raises(ProtocolError, match="bytes"):
        b.recv_bytes("s", max_nbytes=1 << 20)


def test_chunk_of_wrong_length(pair):
    a, b = pair
    n = chmod.CHUNK + 8
    tag = chmod.step_tag("c")
    hdr = chmod._HDR.pack(b"EZ", chmod.KIND_BYTES, 0, tag, 0, 0, 0, n)
    _raw(a).send(hdr)
    _raw(a).send(b"x" * 100)
    with pytest.raises(ProtocolError, match="chunk"):
        b.recv_bytes("c", n)


def test_silent_peer_times_out():
    a, b = local_pair(timeout=0.3)
    t = time.perf_counter()
    with pytest.raises(PeerTimeout, match="wait"):
        b.recv_array("wait", np.uint8, (1,))
    assert time.perf_counter() - t < 2
    a.close()
    b.close()


def test_closed_and_aborted_peer(pair):
    a, b = pair
    a.send("x", b"1")
    a.close()
    assert b.recv_bytes("x", 1) == b"1"
    with pytest.raises(PeerGone, match="closed"):
        b.recv_bytes("y", 1)


def test_abort_carries_reason():
    a, b = local_pair(timeout=5)
    a.abort("boom happened")
    with pytest.raises(PeerGone, match="boom happened"):
        b.recv_bytes("y", 1)
    b.close()


def test_connect_to_nothing_is_a_clear_error():
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    t = time.perf_counter()
    with pytest.raises(PeerTimeout, match="could not reach"):
        connect(addr, timeout=0.5)
    assert time.perf_counter() - t < 3


def test_listen_with_nobody_connecting():
    with pytest.raises(PeerTimeout, match="no peer connected"):
        listen(f"tcp://127.0.0.1:{free_tcp_port()}", timeout=0.5)


def _killed_sender(addr):
    ch = connect(addr, timeout=10)
    n = 64 * chmod.CHUNK
    tag = chmod.step_tag("big")
    ch._sock.send(chmod._HDR.pack(b"EZ", chmod.KIND_BYTES, 0, tag, 0, 0, 0, n))
    ch._sock.send(b"x" * chmod.CHUNK)
    time.sleep(0.2)
    os._exit(1)  # dies mid-transfer without closing


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_peer_killed_mid_transfer(tmp_path, transport):
    addr = (f"tcp://127.0.0.1:{free_tcp_port()}" if transport == "tcp"
            else f"ipc://{tmp_path / 'sock'}")
    p = mp.get_context("fork").Process(target=_killed_sender, args=(addr,))
    p.start()
    ch = listen(addr, timeout=10)
    ch.timeout = 5
    t = time.perf_counter()
    with pytest.raises((PeerGone, PeerTimeout)):
        ch.recv_bytes("big", 64 * chmod.CHUNK)
    assert time.perf_counter() - t < 6
    p.join(5)
    ch.close()


def _oversized_sender(addr):
    ch = connect(addr, timeout=10)
    ch._sock.send(b"y" * (4 * chmod.CHUNK))   # a single frame over the inbound cap
    time.sleep(3)
    ch.close()


def test_oversized_frame_is_refused_by_the_transport():
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    p = mp.get_context("fork").Process(target=_oversized_sender, args=(addr,))
    p.start()
    ch = listen(addr, timeout=10)
    ch.timeout = 2
    with pytest.raises((PeerGone, PeerTimeout)):
        ch.recv_bytes("x", max_nbytes=1 << 30)
    p.join(10)
    ch.close()


def test_stats_are_exact():
    def p0(s):
        with s.phase("a"):
            s.channel.send("m1", np.zeros(10, np.uint64))        # 80 bytes
            s.channel.send("m2", b"abc")                          # 3 bytes
            with s.phase("b"):
                s.channel.recv_array("m3", np.uint32, (2, 2))     # 16 bytes
        s.channel.send("m4", np.zeros(chmod.CHUNK // 4, np.uint64))  # chunked, one message
        return s.stats()

    def p1(s):
        with s.phase("a"):
            s.channel.recv_array("m1", np.uint64, (10,))
            s.channel.recv_bytes("m2", 3)
            with s.phase("b"):
                s.channel.send("m3", np.zeros((2, 2), np.uint32))
        s.channel.recv_array("m4", np.uint64, (chmod.CHUNK // 4,))
        return s.stats()

    s0, s1 = run_pair(p0, p1)
    assert s0["a"]["bytes_sent"] == 83 and s0["a"]["bytes_recv"] == 16
    assert s0["a"]["msgs_sent"] == 2 and s0["a"]["msgs_recv"] == 1
    assert s0["a"]["rounds"] == 2 and s1["a"]["rounds"] == 2
    assert s0["a/b"]["bytes_recv"] == 16 and s0["a/b"]["rounds"] == 1
    assert s1["a/b"]["bytes_sent"] == 16
    assert s0["a"]["header_bytes_sent"] == (20 + 8) + 20
    assert s0["main"]["bytes_sent"] == 2 * chmod.CHUNK and s0["main"]["msgs_sent"] == 1
    assert s0["total"]["bytes_sent"] == s1["total"]["bytes_recv"]
    assert s0["total"]["bytes_recv"] == s1["total"]["bytes_sent"]
    assert s0["a"]["seconds"] >= 0


def test_run_pair_reraises_root_cause():
    def p0(s):
        return s.channel.recv_bytes("never", 1)

    def p1(s):
        raise ValueError("party one broke")

    for transport in ("local", "tcp"):
        with pytest.raises(ValueError, match="party one broke"):
            run_pair(p0, p1, transport=transport, timeout=20)


def test_run_pair_never_hangs():
    def hang(s):
        time.sleep(30)

    t = time.perf_counter()
    with pytest.raises(PeerTimeout):
        run_pair(hang, lambda s: 1, timeout=0.5)
    assert time.perf_counter() - t < 10


def test_same_role_detected():
    from ezprotocols import Session
    a, b = local_pair(timeout=5)
    import threading
    errs = []

    def mk(ch):
        try:
            Session(0, ch)
        except ProtocolError as e:
            errs.append(e)

    ts = [threading.Thread(target=mk, args=(c,)) for c in (a, b)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert len(errs) == 2 and "both parties claim role 0" in str(errs[0])


def test_shared_prg_agrees():
    r0, r1 = run_pair(lambda s: s.shared_prg().random_bytes(32), lambda s: s.shared_prg().random_bytes(32))
    assert r0 == r1


def test_last_message_before_exit_is_delivered():
    """A party that sends and then closes and exits at once must not lose the message."""
    big = 8 * chmod.CHUNK

    def p0(s):
        s.channel.send("go", b"g")
        return s.channel.recv_array("last", np.uint8, (big,)).sum(dtype=np.int64)

    def p1(s):
        s.channel.recv_bytes("go", 1)
        s.channel.send("last", np.ones(big, np.uint8))

    for _ in range(3):
        assert run_pair(p0, p1, transport="tcp", timeout=30)[0] == big


def test_send_to_aborted_local_peer_fails_fast():
    """A blocked send notices that the other end of an in-process pair went away."""
    a, b = local_pair(timeout=20)
    b.abort("gave up")
    t = time.perf_counter()
    with pytest.raises(PeerGone, match="gave up"):
        for _ in range(200):                       # more than the high-water mark
            a.send("flood", np.zeros(chmod.CHUNK, np.uint8))
    assert time.perf_counter() - t < 5
    a.close()


def _curve_client(addr, server_pub, keypair, q):
    try:
        ch = connect(addr, timeout=3, curve_server_key=server_pub, curve_keypair=keypair)
        ch.send("hi", b"secret payload")
        ch.close()
        q.put("ok")
    except Exception as e:  # noqa: BLE001
        q.put(type(e).__name__)


@pytest.mark.parametrize("case", ["ok", "wrong_server_key", "client_not_allowed"])
def test_curve_encrypted_channel(case):
    from ezprotocols.net import curve_keypair
    spub, ssec = curve_keypair()
    cpub, csec = curve_keypair()
    other_pub, _ = curve_keypair()
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    server_key = other_pub if case == "wrong_server_key" else spub
    allowed = [other_pub] if case == "client_not_allowed" else [cpub]
    p = ctx.Process(target=_curve_client, args=(addr, server_key, (cpub, csec), q))
    p.start()
    try:
        if case == "ok":
            ch = listen(addr, timeout=5, curve_keypair=(spub, ssec), allowed_clients=allowed)
            assert ch.recv_bytes("hi", 14) == b"secret payload"
            ch.close()
            assert q.get(timeout=10) == "ok"
        else:
            with pytest.raises(PeerTimeout):
                listen(addr, timeout=2, curve_keypair=(spub, ssec), allowed_clients=allowed)
            assert q.get(timeout=10) == "HandshakeFailed"   # reported at once (see test_net_harden.py)
    finally:
        p.join(10)


@pytest.mark.parametrize("fn,addr", [("connect", "foo://bar"), ("listen", "foo://bar"), ("connect", "tcp://127.0.0.1"),
                                     ("connect", "127.0.0.1:5555"), ("listen", "0.0.0.0:5555"),
                                     ("connect", "tcp://localhost")])
def test_bad_address_is_a_clear_error(fn, addr):
    t = time.perf_counter()
    with pytest.raises(ValueError, match="bad address"):
        (connect if fn == "connect" else listen)(addr, timeout=2)
    assert time.perf_counter() - t < 1


def test_bind_failures_raise_at_once():
    import socket
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        t = time.perf_counter()
        with pytest.raises(zmq.ZMQError):
            listen(f"tcp://127.0.0.1:{port}", timeout=2)          # address in use
        with pytest.raises(zmq.ZMQError):
            listen("tcp://999.1.1.1:5", timeout=2)                 # no such interface
        assert time.perf_counter() - t < 2


def test_run_pair_prefers_a_timeout_over_the_resulting_peer_gone():
    def p0(s):
        s.channel.timeout = 0.5
        return s.channel.recv_bytes("never", 1)         # times out, then aborts

    def p1(s):
        return s.channel.recv_bytes("also.never", 1)    # sees the abort: PeerGone

    with pytest.raises(PeerTimeout, match="never"):
        run_pair(p0, p1, timeout=20)
