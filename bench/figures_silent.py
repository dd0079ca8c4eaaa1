"""Figures for issue 12 part A: elliptic-curve base OT and Ferret silent correlated OT
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
* chosen-choice COT (``send_cot/recv_cot``) from Ferret and from IKNP, same n;
* rounds: runs of same-direction messages inside the batch as the sender counts them
  (an iteration is one exchange: 2; rcot batches that need no iteration: 0);
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


def measure_cot(engine: str, flavour: str, n: int, repeat: int = 3, transport: str = "tcp", timeout=900):
    """``engine`` "ferret" or "iknp", ``flavour`` "rcot" or "cot".  Returns a dict with
    the first batch (seconds, bytes/OT, rounds) and the steady batches."""

    def make(s):
        if engine == "ferret":
            return Ferret(s)
        eng = OT(s)
        return eng

    def sender(s):
        e = make(s)
        q = np.ones((n, 16), np.uint8)

        def one():
            if flavour == "rcot":
                e.send_rcot(n, out=q)
            else:
                e.send_cot(n, out=q)
        res = []
        for i in range(repeat + 1):
            s.channel.recv_bytes("bench.go", 1)
            with s.phase(f"batch{i}"):
                one()
            s.channel.send("bench.done", b"d")
            c = s.counters(f"batch{i}")
            res.append((c.bytes, c.rounds))
        return res

    def receiver(s):
        e = make(s)
        t = np.ones((n, 16), np.uint8)
        bits = (np.arange(n) % 3 == 1).astype(np.uint8)

        def one():
            if flavour == "rcot":
                e.recv_rcot(n, out=t)
            else:
                e.recv_cot(bits, out=t)
        times = []
        for _ in range(repeat + 1):
            t0 = time.perf_counter()
            s.channel.send("bench.go", b"g")
            one()
            s.channel.recv_bytes("bench.done", 1)
            times.append(time.perf_counter() - t0)
        return times

    counts, times = run_pair(sender, receiver, transport=transport, timeout=timeout)
    steady = times[1:]
    return {"first_s": times[0], "first_bytes_per_ot": counts[0][0] / n, "first_rounds": counts[0][1],
            "best_s": min(steady), "median_s": statistics.median(steady), "sum_s": sum(steady),
            "steady_bytes_per_ot": statistics.mean(c[0] for c in counts[1:]) / n,
            "steady_rounds": max(c[1] for c in counts[1:])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="log2 of the batch size (default 24)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    n = 1 << a.n
    ref = openssl_aes_ecb()
    rows = {"n": n, "openssl": ref, "params": {"main": MAIN.__dict__, "setup": SETUP.__dict__}}
    rows["base_ec_s"] = measure_base("ec", a.repeat)
    rows["base_modp_s"] = measure_base("modp", a.repeat)
    for engine, flavour in (("ferret", "rcot"), ("ferret", "cot"), ("iknp", "cot")):
        rows[f"{engine}_{flavour}"] = measure_cot(engine, flavour, n, a.repeat)
    rows["openssl_after"] = openssl_aes_ecb()
    if a.json:
        print(json.dumps(rows, indent=1, default=str))
        return
    blk = ref["blocks_per_s"]
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


if __name__ == "__main__":
    main()
