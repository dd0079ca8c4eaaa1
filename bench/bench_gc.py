"""asv suite for the garbled-circuit layer: Bristol parsing, the garbling
kernels in one process, and the two-party Yao protocol over TCP loopback.

Run: ``asv run --python=same --quick --bench bench_gc`` (or ``python
bench/figures_gc.py`` for the table, with the OpenSSL yardstick measured in
the same run).

Two-party figures (two processes over tcp://127.0.0.1):

* ``aes10k``: ``s.yao`` on the Bristol AES-128 circuit over 10,000 blocks in one
  batch (key from P0, block from P1, output revealed to both): the whole protocol
  (header, COTs for P1's 1.28 M input bits, P0's input labels, 2 GiB of garbled
  tables, output decoding), timed from a common start to the last party's end.
* ``and_layer``: one layer of 4096 independent AND gates (all pairs ``x_i & y_j`` of
  two 64-bit values; 64 of them are outputs) garbled for a batch of 16,384 copies =
  2^26 ANDs, through the label API (``s.gc.run`` on labels made beforehand): garble,
  stream the tables, evaluate.
"""
from __future__ import annotations

import os
import time

import numpy as np

SHARED = os.environ.get("EZP_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data"))
AES_PATH = os.path.join(SHARED, "circuits", "aes_128.txt")
SHA_PATH = os.path.join(SHARED, "circuits", "sha256.txt")


def and_layer_circuit(k: int = 64):
    """k*k independent ANDs x_i & y_j (one AND layer); the k diagonal ones are outputs."""
    from ezprotocols.gc import Circuit
    from ezprotocols.gc.circuit import OP_AND
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    i, j = i.ravel(), j.ravel()
    off = i != j
    a = np.concatenate([i[off], np.arange(k)])          # off-diagonal ANDs first, outputs last
    b = np.concatenate([k + j[off], k + np.arange(k)])
    n = a.size
    c = np.arange(2 * k, 2 * k + n)
    return Circuit(np.full(n, OP_AND, np.uint8), a, b, c, 2 * k + n, (k, k), (k,))


def _sync(s, tag):
    s.channel.exchange(tag, np.zeros(1, np.uint8))


def aes_e2e(batch: int = 10_000, reps: int = 3, transport: str = "tcp"):
    """Per-repetition wall times (max over the two parties) of ``s.yao`` on AES-128 x
    batch, plus P0's byte counters of the last run."""
    from ezprotocols.gc import Circuit
    from ezprotocols.gc import halfgates as hg
    from ezprotocols.runner import run_pair
    circ = Circuit.from_bristol(AES_PATH)
    rng = np.random.default_rng(1)              # benchmark data only
    key = rng.integers(0, 2, (batch, 128), dtype=np.uint8)
    blk = rng.integers(0, 2, (batch, 128), dtype=np.uint8)

    def party(role):
        def f(s):
            s.ot.setup()
            mine = {0: key} if role == 0 else {1: blk}
            s.yao(circ, mine, [0, 1], "both")          # warm-up (pages, caches)
            times = []
            for r in range(reps):
                _sync(s, f"sync{r}")
                s.channel.stats.reset()
                t = time.perf_counter()
                s.yao(circ, mine, [0, 1], "both")
                times.append(time.perf_counter() - t)
            cnt = s.counters("yao")
            cot = s.counters("yao/cot")
            return times, dict(sent=cnt.bytes_sent, recv=cnt.bytes_recv, cot_sent=cot.bytes_sent,
                               cot_recv=cot.bytes_recv, cot_seconds=cot.seconds,
                               tables=dict(hg.last_timing))
        return f

    (t0, st0), (t1, st1) = run_pair(party(0), party(1), transport=transport, timeout=1200)
    times = [max(a, b) for a, b in zip(t0, t1)]
    return dict(times=times, n_and=circ.n_and * batch, stats=st0, stats_evaluator=st1)


def and_layer(total_log2: int = 26, k: int = 64, reps: int = 3, transport: str = "tcp"):
    """Per-repetition wall times of ``s.gc.run`` on a bare AND layer of 2^total_log2 gates."""
    from ezprotocols.runner import run_pair
    circ = and_layer_circuit(k)
    batch = (1 << total_log2) // circ.n_and
    rng = np.random.default_rng(2)
    xb = rng.integers(0, 2, (batch, k), dtype=np.uint8)
    yb = rng.integers(0, 2, (batch, k), dtype=np.uint8)

    def party(role):
        def f(s):
            s.ot.setup()
            X = s.gc.input(xb if role == 0 else None, owner=0, shape=(batch, k))
            Y = s.gc.input(yb if role == 1 else None, owner=1, shape=(batch, k))
            s.gc.run(circ, [X, Y])                          # warm-up
            times = []
            for r in range(reps):
                _sync(s, f"sync{r}")
                c0 = s.counters()
                t = time.perf_counter()
                (Z,) = s.gc.run(circ, [X, Y])
                times.append(time.perf_counter() - t)
                c1 = s.counters()
            out = s.gc.reveal(Z[:4], to="both")
            ok = bool(np.array_equal(out, xb[:4] & yb[:4]))
            return times, (c1 - c0).bytes_sent, ok
        return f

    (t0, sent0, ok0), (t1, _, ok1) = run_pair(party(0), party(1), transport=transport, timeout=1200)
    times = [max(a, b) for a, b in zip(t0, t1)]
    return dict(times=times, n_and=circ.n_and * batch, bytes_sent=sent0, ok=ok0 and ok1)


def local_kernels(batch: int = 10_000):
    """Garble and evaluate AES-128 x batch in one process (no network): AND/s of each."""
    from ezprotocols import Prg
    from ezprotocols.gc import Circuit
    from ezprotocols.gc import halfgates as hg
    circ = Circuit.from_bristol(AES_PATH)
    prg = Prg()
    delta = prg.random_uint8(16)
    delta[0] |= 1
    zero = [prg.random_uint8((batch, w, 16)) for w in circ.input_widths]
    hg.garble(circ, batch, zero, delta, 0, lambda t: None)          # warm-up
    t = time.perf_counter()
    hg.garble(circ, batch, zero, delta, 0, lambda t: None)
    tg = time.perf_counter() - t
    # evaluation speed does not depend on the table contents: reuse one message buffer
    tab = prg.random_uint8(hg.CHUNK_BYTES)
    hg.evaluate(circ, batch, zero, 0, lambda n: tab[:n])
    t = time.perf_counter()
    hg.evaluate(circ, batch, zero, 0, lambda n: tab[:n])
    te = time.perf_counter() - t
    n = circ.n_and * batch
    return dict(garble_and_per_s=n / tg, evaluate_and_per_s=n / te)


# ---------------------------------------------------------------------- asv classes

class Parse:
    timeout = 120

    def time_parse_sha256(self):
        from ezprotocols.gc import Circuit
        Circuit.from_bristol(SHA_PATH)

    def time_compile_sha256(self):
        from ezprotocols.gc import Circuit
        c = Circuit.from_bristol(SHA_PATH)
        c.program


class Kernels:
    timeout = 600

    def track_local_garble_aes10k(self):
        return local_kernels()["garble_and_per_s"] / 1e6
    track_local_garble_aes10k.unit = "M AND/s"

    def track_local_evaluate_aes10k(self):
        return local_kernels()["evaluate_and_per_s"] / 1e6
    track_local_evaluate_aes10k.unit = "M AND/s"


class YaoTcp:
    timeout = 1800

    def track_aes10k_and_per_s(self):
        r = aes_e2e(reps=2)
        return r["n_and"] / min(r["times"]) / 1e6
    track_aes10k_and_per_s.unit = "M AND/s"

    def track_and_layer_2p26_and_per_s(self):
        r = and_layer(reps=2)
        return r["n_and"] / min(r["times"]) / 1e6
    track_and_layer_2p26_and_per_s.unit = "M AND/s"

    def track_table_bytes_per_and(self):
        from ezprotocols.gc.yao import HEADER_BYTES
        r = and_layer(total_log2=20, reps=1)
        return (r["bytes_sent"] - HEADER_BYTES) / r["n_and"]
    track_table_bytes_per_and.unit = "bytes"
