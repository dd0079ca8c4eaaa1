"""Sizes a peer announces are bounded by what this side expects before anything is
allocated or iterated."""
import time
import tracemalloc

import numpy as np
import pytest

from ezprotocols import PeerGone, PeerTimeout, ProtocolError

from _fuzzpeer import run_hostile


@pytest.mark.parametrize("hdr", [
    [2 ** 40 - 1, 3, 2 ** 62, 0],       # chosen OT: ~2^33 chunks of 128 OTs, huge L
    [2 ** 40, 1, 0, 0],                 # cot: 2^24 chunks
    [2 ** 64 - 1, 4, 64, 0],            # acot, n beyond any bound
    [5, 3, 0, 0],                       # chosen, L = 0
    [2 ** 63, 9, 1, 1],                 # unknown flavour
])
def test_hostile_ot_header_is_refused_at_once(hdr):
    """A chosen-OT header with a huge length made IknpSender._drain build a list of
    billions of chunk tuples; now the sender reads at most a few chunks of its own
    size for at most DRAIN_SECONDS, and names the step."""
    m = np.zeros((100, 24), np.uint8)

    def honest(s):
        s.ot.setup()
        return s.ot.send(m, m)

    def hostile(s):
        s.ot.setup()
        s.channel.send("ot.s0.hdr", np.array(hdr, dtype=np.uint64))
        s.channel.recv_bytes("never", 1)

    tracemalloc.start()
    t = time.perf_counter()
    res, _, took = run_hostile(honest, hostile, 0, timeout=20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert isinstance(res, ProtocolError) and "ot.s0.hdr" in str(res), res
    assert took < 4, took
    assert peak < 64 << 20, peak
    assert time.perf_counter() - t < 30


def test_architecture_and_request_bounds():
    """A huge nn.arch or a request for absurd sizes are refused before allocation."""
    from ezprotocols.nn.secure import LIMITS, recv_architecture

    def honest(s):
        return recv_architecture(s)

    def hostile(s):
        s.channel.send("nn.arch", b"x" * (LIMITS["max_bytes"] + 1))
        s.channel.recv_bytes("never", 1)

    res, _, took = run_hostile(honest, hostile, 1, timeout=10)
    assert isinstance(res, ProtocolError) and "nn.arch" in str(res), res
    assert took < 3
