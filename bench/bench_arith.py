"""asv suite for the arithmetic layer: exact ring GEMM against numpy float64
matmul, 64-bit elementwise triples/s, the 10^6 elementwise multiply, and the
128x784 by 784x128 matmul (shared by shared, and with P0-known weights); time and
bytes, offline and online, OT triples (default) and the trusted dealer.

Run: ``asv run --python=same --quick --bench bench_arith`` (or the figures script
``python bench/figures_arith.py`` for the table).

:func:`measure` is shared with the figures script: both parties run the workload
``reps`` times in one session (base OTs and inputs outside the timing); each
repetition starts at a barrier; a repetition's time is the slower party's.
"""
import time

import numpy as np

from ezprotocols._ext import ring
from ezprotocols.runner import run_pair

N_MUL = 10 ** 6
MM = (128, 784, 128)


def _barrier(s, tag):
    s.channel.exchange(f"bench.{tag}", np.zeros(1, np.uint8))


def _party(workload, n, reps):
    def run(s):
        from ezprotocols.arith import PrivateLinear
        rng = np.random.default_rng(7)           # test data only
        m, k, nn = MM
        if s.triples_source == "ot":
            s.ot.setup()
        if workload in ("mul", "triples"):
            x = s.input(rng.normal(size=n) if s.role == 0 else None, 0, shape=(n,))
            y = s.input(rng.normal(size=n) if s.role == 1 else None, 1, shape=(n,))
        else:
            x = s.input(rng.normal(size=(m, k)) if s.role == 1 else None, 1, shape=(m, k))
            wv = rng.uniform(-1, 1, size=(k, nn)) * np.sqrt(6.0 / (k + nn))     # Glorot-uniform weights
            if workload == "matmul_ss":
                w = s.input(wv if s.role == 0 else None, 0, shape=(k, nn))
            else:
                layer = PrivateLinear(s, wv if s.role == 0 else None, shape=(k, nn), owner=0)
        out = []
        for r in range(reps):
            _barrier(s, f"b{r}")
            before = s.counters("total").copy()
            t0 = time.perf_counter()
            with s.phase(f"offline{r}"):
                if workload in ("mul", "triples"):
                    s.triples.prepare_mul(n)
                elif workload == "matmul_ss":
                    s.triples.prepare_matmul((m, k), (k, nn))
                else:
                    layer.prepare((m, k))
            t1 = time.perf_counter()
            with s.phase(f"online{r}"):
                if workload == "mul":
                    z = x * y
                elif workload == "triples":
                    z = None
                elif workload == "matmul_ss":
                    z = x @ w
                else:
                    z = layer(x)
            t2 = time.perf_counter()
            st = s.stats()
            tot = s.counters("total") - before
            out.append({"offline_s": t1 - t0, "online_s": t2 - t1,
                        "offline_bytes": st[f"offline{r}"]["bytes"], "online_bytes": st[f"online{r}"]["bytes"],
                        "online_rounds": st[f"online{r}"]["rounds"], "bytes": tot.bytes})
            del z
        info = {"source": s.triples.report()["source"], "trusted_dealer": s.triples.trusted_dealer}
        if workload == "matmul_p0w":
            info["costs"] = layer.costs((m, k))
        return out, info
    return run


def measure(workload: str, source: str = "ot", transport: str = "local", reps: int = 3, n: int = N_MUL):
    """Run ``workload`` ("mul", "triples", "matmul_ss", "matmul_p0w") ``reps`` times; returns a
    list of per-repetition dicts (slower party's times, total payload bytes both ways) and info."""
    f = _party(workload, n, reps)
    # the OT figures keep the OT product engine (the default "he" engine would pick HE for the layer)
    kw = {"linear": "ot"} if source == "ot" else {}
    (r0, info), (r1, _) = run_pair(f, f, transport=transport, triples=source, timeout=1800, **kw)
    runs = []
    for a, b in zip(r0, r1):
        d = dict(a)
        for key in ("offline_s", "online_s"):
            d[key] = max(a[key], b[key])
        d["total_s"] = max(a["offline_s"] + a["online_s"], b["offline_s"] + b["online_s"])
        runs.append(d)
    return runs, info


def gemm_gmacs(m, k, n, repeat=5):
    """(ring GMAC/s, numpy float64 GMAC/s, numpy uint64 GMAC/s) on random operands, best of repeat."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**64, (m, k), dtype=np.uint64)
    b = rng.integers(0, 2**64, (k, n), dtype=np.uint64)
    out = np.empty((m, n), np.uint64)
    af, bf = rng.random((m, k)), rng.random((k, n))

    def best(fn, rep):
        fn()
        ts = []
        for _ in range(rep):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return m * k * n / min(ts) / 1e9

    g_ring = best(lambda: ring.matmul(a, b, out=out), repeat)
    g_f64 = best(lambda: af @ bf, repeat)
    small = min(m, 128)
    g_u64 = (small * k * n) / _time_once(lambda: a[:small] @ b) / 1e9
    return g_ring, g_f64, g_u64


def _time_once(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ------------------------------------------------------------------------------ asv

class RingGemm:
    params = [[(128, 784, 128), (512, 512, 512)]]
    param_names = ["shape"]

    def setup(self, shape):
        m, k, n = shape
        rng = np.random.default_rng(1)
        self.a = rng.integers(0, 2**64, (m, k), dtype=np.uint64)
        self.b = rng.integers(0, 2**64, (k, n), dtype=np.uint64)
        self.out = np.empty((m, n), np.uint64)
        self.af, self.bf = rng.random((m, k)), rng.random((k, n))

    def time_ring_matmul_u64(self, shape):
        ring.matmul(self.a, self.b, out=self.out)

    def time_numpy_matmul_f64(self, shape):
        self.af @ self.bf

    def track_gmacs_ring_over_f64(self, shape):
        g_ring, g_f64, _ = gemm_gmacs(*shape, repeat=3)
        return g_ring / g_f64
    track_gmacs_ring_over_f64.unit = "ratio"


class Protocols:
    """Offline/online seconds and bytes of the reference workloads."""
    params = [["mul", "matmul_ss", "matmul_p0w"], ["ot", "dealer"], ["local", "tcp"]]
    param_names = ["workload", "source", "transport"]
    timeout = 1800
    number = 1
    repeat = 1

    def setup_cache(self):
        res = {}
        for wl in self.params[0]:
            for src in self.params[1]:
                for tr in self.params[2]:
                    runs, _ = measure(wl, src, tr, reps=2)
                    res[(wl, src, tr)] = min(runs, key=lambda r: r["total_s"])
        return res

    def track_total_s(self, cache, wl, src, tr):
        return cache[(wl, src, tr)]["total_s"]
    track_total_s.unit = "s"

    def track_offline_s(self, cache, wl, src, tr):
        return cache[(wl, src, tr)]["offline_s"]
    track_offline_s.unit = "s"

    def track_online_s(self, cache, wl, src, tr):
        return cache[(wl, src, tr)]["online_s"]
    track_online_s.unit = "s"

    def track_offline_MB(self, cache, wl, src, tr):
        return cache[(wl, src, tr)]["offline_bytes"] / 1e6
    track_offline_MB.unit = "MB"

    def track_online_MB(self, cache, wl, src, tr):
        return cache[(wl, src, tr)]["online_bytes"] / 1e6
    track_online_MB.unit = "MB"


class Triples:
    timeout = 600
    number = 1
    repeat = 1

    def track_triples_per_s_ot_local(self):
        n = 1 << 20
        runs, _ = measure("triples", "ot", "local", reps=2, n=n)
        return n / min(r["offline_s"] for r in runs)
    track_triples_per_s_ot_local.unit = "triples/s"
