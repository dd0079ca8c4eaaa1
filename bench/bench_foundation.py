"""asv suite for the foundation: PRG, hashes, transpose, channel throughput.

Run: ``asv run --python=same --quick --bench bench_foundation`` (or the figures
script ``python bench/figures_foundation.py`` for the table).
"""
import time

import numpy as np

from ezprotocols import Prg
from ezprotocols._ext import crypto
from ezprotocols.runner import run_pair


class Kernels:
    params = [1 << 16, 1 << 22]
    param_names = ["blocks"]

    def setup(self, n):
        self.prg = Prg()
        self.buf = np.empty((n, 16), np.uint8)
        self.out = np.empty((n, 16), np.uint8)
        self.prg.fill(self.buf)
        self.prg.fill(self.out)
        cols = n
        self.mat = self.prg.random_uint8((128, cols // 8))
        self.tout = np.empty((cols, 16), np.uint8)
        self.back = np.empty((128, cols // 8), np.uint8)

    def time_prg_fill(self, n):
        self.prg.fill(self.buf)

    def time_cr_hash(self, n):
        crypto.cr_hash(self.buf, out=self.out)

    def time_ccr_hash(self, n):
        crypto.ccr_hash(self.buf, out=self.out)

    def time_tccr_hash(self, n):
        crypto.tccr_hash(self.buf, tweak=1, out=self.out)

    def time_transpose_128xn(self, n):
        crypto.transpose_bits(self.mat, 128, n, out=self.tout)

    def time_transpose_nx128(self, n):
        crypto.transpose_bits(self.tout, n, 128, out=self.back)


def _throughput(transport, nbytes, warm):
    n = nbytes // 8

    def p0(s):
        a = np.ones(n, np.uint64)
        s.channel.recv_bytes("go", 1)
        t = time.perf_counter()
        s.channel.send("big", a)
        s.channel.recv_bytes("ack", 1)
        return time.perf_counter() - t

    def p1(s):
        out = np.full(n, 1, np.uint64) if warm else None   # touched: no page faults while timing
        s.channel.send("go", b"g")
        s.channel.recv_array("big", np.uint64, (n,), out=out)
        s.channel.send("ack", b"k")

    dt, _ = run_pair(p0, p1, transport=transport, timeout=300)
    return nbytes / dt / 1e9


class Channel:
    params = ["local", "tcp", "ipc"]
    param_names = ["transport"]
    timeout = 300

    def track_gbps_256mib(self, transport):
        return _throughput(transport, 256 << 20, warm=True)
    track_gbps_256mib.unit = "GB/s"
