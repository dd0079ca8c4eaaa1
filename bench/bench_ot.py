"""asv suite for the OT layer: base OT, IKNP extension (COT, random OT,
chosen-message OT with 16-byte messages, additive OT) between two processes over
tcp loopback, and the extension kernels in one process.

Run: ``asv run --python=same --quick --bench bench_ot`` (or the figures script
``python bench/figures_ot.py`` for the table).
"""
import time

import numpy as np

from ezprotocols._ext import ot as K
from ezprotocols.runner import run_pair

FLAVOURS = ("cot", "rot", "chosen", "acot")


def measure(flavour, n, *, transport="tcp", repeat=3, reuse=True, timeout=600):
    """Run ``repeat`` batches of ``n`` OTs of one flavour between two parties after a
    warm-up batch (base OTs done before).  Returns ``(seconds list, bytes per OT,
    base-OT seconds)``; each time is the receiver's wall clock from its "go" message
    to the sender's "done" (so it covers the whole batch on both sides plus one
    round trip).  ``reuse``: outputs go into preallocated, already touched arrays;
    otherwise every batch allocates fresh outputs (page faults included)."""

    def sender(s):
        t = time.perf_counter()
        s.ot.send_cot(0)                       # base OTs of this direction (+ an empty header)
        t_base = time.perf_counter() - t
        m0 = np.full((n, 16), 1, np.uint8)
        m1 = np.full((n, 16), 2, np.uint8)
        c = np.arange(n, dtype=np.uint64)
        outs = (np.ones((n, 16), np.uint8), np.ones((n, 16), np.uint8)) if reuse else None

        def one():
            if flavour == "cot":
                s.ot.send_cot(n, out=outs[0] if reuse else None)
            elif flavour == "rot":
                s.ot.send_rot(n, out=outs if reuse else None)
            elif flavour == "chosen":
                s.ot.send(m0, m1)
            else:
                s.ot.send_acot(c, bits=64)

        one()                                  # warm-up (buffers, page tables, caches)
        before = s.counters().bytes
        for _ in range(repeat):
            s.channel.recv_bytes("bench.go", 1)
            one()
            s.channel.send("bench.done", b"d")
        per_ot = (s.counters().bytes - before - 2 * repeat) / (repeat * n) if repeat * n else 0.0
        return t_base, per_ot

    def receiver(s):
        t = time.perf_counter()
        s.ot.recv_cot(np.zeros(0, np.uint8))
        t_base = time.perf_counter() - t
        bits = (np.arange(n) % 3 == 1).astype(np.uint8)
        out = np.ones((n, 16), np.uint8) if reuse else None

        def one():
            if flavour == "cot":
                s.ot.recv_cot(bits, out=out)
            elif flavour == "rot":
                s.ot.recv_rot(bits, out=out)
            elif flavour == "chosen":
                s.ot.recv(bits, 16, out=out)
            else:
                s.ot.recv_acot(bits, bits=64)

        one()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            s.channel.send("bench.go", b"g")
            one()
            s.channel.recv_bytes("bench.done", 1)
            times.append(time.perf_counter() - t)
        return t_base, times

    (tb0, per_ot), (tb1, times) = run_pair(sender, receiver, transport=transport, timeout=timeout)
    return times, per_ot, max(tb0, tb1)


def measure_base_ot(transport="tcp", repeat=3):
    """Seconds for 128 base OTs (one extension direction), one fresh session each."""
    out = []
    for _ in range(repeat):
        _, _, tb = measure("cot", 0, transport=transport, repeat=0)
        out.append(tb)
    return out


class TwoParty:
    """Throughput between two processes over tcp loopback (OTs per second)."""
    params = [FLAVOURS, [1 << 20, 1 << 24]]
    param_names = ["flavour", "n"]
    timeout = 900
    number = 1
    repeat = 1

    def track_ots_per_s(self, flavour, n):
        times, _, _ = measure(flavour, n, repeat=3)
        return n / min(times)
    track_ots_per_s.unit = "OT/s"

    def track_bytes_per_ot(self, flavour, n):
        _, per_ot, _ = measure(flavour, n, repeat=1)
        return per_ot
    track_bytes_per_ot.unit = "bytes"


class BaseOT:
    timeout = 300
    number = 1
    repeat = 1

    def track_base_ot_128_seconds(self):
        return min(measure_base_ot(repeat=3))
    track_base_ot_128_seconds.unit = "s"


class Kernels:
    """Single-process kernels: the extension (PRG + u + transpose) on each side, the
    128 x 128 tile transpose, TCCR hashing of rows."""
    params = [1 << 16, 1 << 22]
    param_names = ["ots"]

    def setup(self, n):
        rng = np.random.default_rng(1)          # test data only; keys are not secrets here
        seeds = [rng.integers(0, 256, (128, 16), dtype=np.uint8) for _ in range(2)]
        s = rng.integers(0, 2, 128, dtype=np.uint8)
        s[0] = 1
        self.k0, self.k1 = K.ColumnKeys(seeds[0]), K.ColumnKeys(seeds[1])
        self.ks = K.ColumnKeys(np.where(s[:, None] == 1, seeds[1], seeds[0]))
        self.mask = np.repeat(s * np.uint8(255), 16).astype(np.uint8)
        self.delta = np.packbits(s, bitorder="little")
        _, self.packed = K.pack_bits(rng.integers(0, 2, n, dtype=np.uint8))
        self.u = np.ones(K.ubytes(n), np.uint8)
        self.t = np.ones((n, 16), np.uint8)
        self.q = np.ones((n, 16), np.uint8)
        self.h = np.ones((n, 16), np.uint8)
        self.tiles = rng.integers(0, 256, (n // 128, 128, 16), dtype=np.uint8)
        self.sc = K.Scratch()
        K.recv_extend(self.k0, self.k1, 0, self.packed, 0, n, self.u, self.t, 0, self.sc)

    def time_recv_extend(self, n):
        K.recv_extend(self.k0, self.k1, 0, self.packed, 0, n, self.u, self.t, 0, self.sc)

    def time_send_extend(self, n):
        K.send_extend(self.ks, self.mask, 0, self.u, n, self.q, 0, self.sc)

    def time_tccr_rows_delta(self, n):
        K.tccr_rows(self.q, self.delta, 1, 0, self.h)

    def time_transpose128_tiles(self, n):
        K.transpose128(self.tiles)
