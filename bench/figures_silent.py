"""Figures of the elliptic-curve base OT and Ferret silent correlated OT
(eprint 2020/924), two processes over tcp loopback, with ``openssl speed -evp
aes-128-ecb`` and IKNP measured in the same run.

    python bench/figures_silent.py [--n LOG2] [--repeat R] [--json]

Rows:

* base OT set-up of both directions (128 base OTs each, interleaved in two
  messages): the Ed25519 Chou-Orlandi (default) and the MODP-3072 one;
* random COT (``send_rcot/recv_rcot``) from Ferret, n = 2^LOG2 per batch: "first" is
  the first batch of a fresh session (IKNP bootstrap, one setup iteration, main
  iterations), "steady" the best/median of R further batches; bytes are both
  directions, per OT, over everything the batch sent (including the bootstrap for
  "first");
* chosen-choice COT (``send_cot/recv_cot``) from Ferret and from IKNP, same n; the three
  COT rows run in one session pair, batch by batch in turn, so they share the load
  of this (shared, noisy) machine; the set-up (base OTs, Ferret's IKNP bootstrap) falls
  in the first batch of the first row;
* rounds: runs of same-direction messages inside the batch as the sender counts them
  (an iteration is one exchange: 2; rcot batches that need no iteration: 0);
* end to end: ReLU on 100 and 100,000 inputs in a fresh session with ot="iknp" vs
  ot="ferret" (Ferret would be the default only if it were faster here);
* M OT/s = all steady OTs / all steady seconds (sustained: batches needing one or two
  main iterations averaged), also as a ratio of OpenSSL AES-128 blocks/s (target >= 0.05x; emp's
  Ferret reached 0.03-0.04x on this machine), bytes per OT (target <= 0.3).

Each time is the receiver's wall clock from its "go" message to the sender's "done"
(the whole batch on both sides plus one round trip); outputs go into preallocated
arrays ("reused", steady state, as in figures_ot.py).
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import ezprotocols.ot  # noqa: E402,F401
from bench.common import openssl_aes_ecb  # noqa: E402
from ezprotocols.ot.engine import OT  # noqa: E402
from ezprotocols.ot.ferret import MAIN, SETUP, Ferret  # noqa: E402
from ezprotocols.testing import run_pair  # noqa: E402


def _sync(s):
    s.channel.send("bench.sync", b"s")
    s.channel.recv_bytes("bench.sync", 1)


def measure_base(group: str, repeat: int = 3, transport: str = "tcp") -> list[float]:
    """Seconds for the base OTs of both directions (max over the two parties), fresh sessions."""
    out = []
    for _ in range(repeat):
        def f(s):
            eng = OT(s, base_ot=group)
            _sync(s)
            t = time.perf_counter()
            eng.setup()
            return time.perf_counter() - t
        out.append(max(run_pair(f, f, transport=transport)))
    return out


ROWS = (("ferret", "rcot"), ("ferret", "cot"), ("iknp", "cot"))


def measure_cots(n: int, repeat: int = 3, rows=ROWS, transport: str = "tcp", timeout=900):
    """The rows ``(engine, flavour)`` (engine "ferret" or "iknp", flavour "rcot" or "cot")
    measured in ONE session pair, batch by batch in turn (row 1, row 2, row 3, row 1, ...),
    so that every row sees the same machine load.  Ferret is bootstrapped by the session's
    IKNP, which the "iknp" row also uses.  Returns ``{row: dict}`` with the first batch
    (seconds, bytes/OT, rounds) and the steady batches."""

    def engines(s):
        f = Ferret(s)
        return {"ferret": f, "iknp": s.engine("ot", "iknp")}

    def sender(s):
        e = engines(s)
        q = np.ones((n, 16), np.uint8)
        res = {r: [] for r in rows}
        for i in range(repeat + 1):
            for r in rows:
                eng, fl = e[r[0]], r[1]
                s.channel.recv_bytes("bench.go", 1)
                with s.phase(f"{r[0]}_{r[1]}_{i}"):
                    eng.send_rcot(n, out=q) if fl == "rcot" else eng.send_cot(n, out=q)
                s.channel.send("bench.done", b"d")
                c = s.counters(f"{r[0]}_{r[1]}_{i}")
                res[r].append((c.bytes, c.rounds))
        return res

    def receiver(s):
        e = engines(s)
        t = np.ones((n, 16), np.uint8)
        bits = (np.arange(n) % 3 == 1).astype(np.uint8)
        times = {r: [] for r in rows}
        for _ in range(repeat + 1):
            for r in rows:
                eng, fl = e[r[0]], r[1]
                t0 = time.perf_counter()
                s.channel.send("bench.go", b"g")
                eng.recv_rcot(n, out=t) if fl == "rcot" else eng.recv_cot(bits, out=t)
                s.channel.recv_bytes("bench.done", 1)
                times[r].append(time.perf_counter() - t0)
        return times

    counts, times = run_pair(sender, receiver, transport=transport, timeout=timeout)
    out = {}
    for r in rows:
        tm, ct = times[r], counts[r]
        steady = tm[1:]
        out[r] = {"first_s": tm[0], "first_bytes_per_ot": ct[0][0] / n, "first_rounds": ct[0][1],
                  "best_s": min(steady), "median_s": statistics.median(steady), "sum_s": sum(steady),
                  "steady_bytes_per_ot": statistics.mean(c[0] for c in ct[1:]) / n,
                  "steady_rounds": max(c[1] for c in ct[1:])}
    return out


def measure_cot(engine: str, flavour: str, n: int, repeat: int = 3, **kw):
    """One row of :func:`measure_cots` (for the asv suite)."""
    return measure_cots(n, repeat, rows=((engine, flavour),), **kw)[(engine, flavour)]


def measure_relu(ot: str, n: int, transport: str = "tcp", timeout=900):
    """End to end: a fresh session (base OTs, bootstrap included) that inputs n values,
    squares them and applies ReLU (garbled carry + triples: every COT of the hybrid
    protocols comes from ``ot``).  Returns (seconds, bytes both ways, rounds)."""
    import ezprotocols
    x = (np.arange(n) % 2001 - 1000) / 8.0

    def f(s):
        _sync(s)
        t0 = time.perf_counter()
        t = s.input(x if s.role == 0 else None, 0, shape=x.shape)
        s.reveal(ezprotocols.relu(t * t - 100.0))
        dt = time.perf_counter() - t0
        c = s.counters()
        return dt, c.bytes, c.rounds

    r = run_pair(f, f, transport=transport, timeout=timeout, ot=ot)
    return max(a[0] for a in r), r[0][1], r[0][2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="log2 of the batch size (default 24)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    n = 1 << a.n
    ref = openssl_aes_ecb()
    rows = {"n": n, "load": os.getloadavg(), "openssl": ref, "params": {"main": MAIN.__dict__, "setup": SETUP.__dict__}}
    rows["base_ec_s"] = measure_base("ec", a.repeat)
    rows["base_modp_s"] = measure_base("modp", a.repeat)
    for (engine, flavour), r in measure_cots(n, a.repeat).items():
        rows[f"{engine}_{flavour}"] = r
    for n_relu in (100, 100_000):
        for ot in ("iknp", "ferret"):
            rows[f"relu_{n_relu}_{ot}"] = min((measure_relu(ot, n_relu) for _ in range(2)), key=lambda r: r[0])
    rows["openssl_after"] = openssl_aes_ecb()
    if a.json:
        print(json.dumps(rows, indent=1, default=str))
        return
    blk = ref["blocks_per_s"]
    print(f"load average (1 min) at the start {rows['load'][0]:.1f}, at the end {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cpus (the machine is shared: compare rows of one run)")
    print(f"OpenSSL aes-128-ecb (same run): {blk / 1e6:.0f} M blocks/s; after: "
          f"{rows['openssl_after']['blocks_per_s'] / 1e6:.0f} M")
    print(f"Ferret parameters (eprint 2020/924 Table 2): main n={MAIN.n} k={MAIN.k} t={MAIN.t}; "
          f"setup n={SETUP.n} k={SETUP.k} t={SETUP.t}; d=10")
    for g in ("ec", "modp"):
        v = rows[f"base_{g}_s"]
        print(f"base OT set-up, both directions, {g:4s}: best {min(v) * 1e3:6.1f} ms, "
              f"median {statistics.median(v) * 1e3:6.1f} ms   (target <= 40 ms)")
    print(f"batch n = 2^{a.n}, two processes over tcp loopback, {a.repeat} steady batches")
    print(f"{'engine/flavour':14s} {'first s':>8s} {'B/OT':>6s} {'rnds':>5s} | {'best s':>7s} {'median':>7s} "
          f"{'M OT/s':>7s} {'xOpenSSL':>9s} {'B/OT':>6s} {'rnds':>5s}")
    for key in ("ferret_rcot", "ferret_cot", "iknp_cot"):
        r = rows[key]
        rate = len(range(a.repeat)) * n / r["sum_s"]
        print(f"{key:14s} {r['first_s']:8.3f} {r['first_bytes_per_ot']:6.3f} {r['first_rounds']:5d} | "
              f"{r['best_s']:7.3f} {r['median_s']:7.3f} {rate / 1e6:7.1f} {rate / blk:9.3f} "
              f"{r['steady_bytes_per_ot']:6.3f} {r['steady_rounds']:5d}")
    print("end to end, fresh session, x -> relu(x*x - 100) (best of 2):")
    for n_relu in (100, 100_000):
        for ot in ("iknp", "ferret"):
            t, b, rd = rows[f"relu_{n_relu}_{ot}"]
            print(f"  n={n_relu:<7d} ot={ot:7s} {t:7.3f} s {b / 1e6:9.2f} MB {rd:5d} rounds")


if __name__ == "__main__":
    main()
