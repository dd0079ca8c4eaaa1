"""Print the figures of elementwise products of shared fixed-point values with truncation
(``z = x * y``, the engine's choice: batched BFV over CRT plaintext primes where it moves
fewer bytes, Gilboa OLE over the OT source otherwise), two processes over TCP loopback,
beside SPU 0.9.5 cheetah's ``mul_1e6`` measured in the same run.

    python bench/figures_mul.py [--n 1000000] [--ot ferret,iknp] [--no-spu] [--json]

Bytes are payload plus channel headers of both directions, as P0 counts them; the HE public
key (once per session) is set up before the timed product, as SPU's figure is its warm run.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ours(n: int, ot: str) -> dict:
    import numpy as np
    from ezprotocols.arith.tensor import ArithTensor
    from ezprotocols.runner import run_pair
    xs = [np.frombuffer(secrets.token_bytes(8 * n), np.uint64).copy() for _ in range(4)]

    def party(s):
        x, y = ArithTensor(s, xs[s.role], 16), ArithTensor(s, xs[2 + s.role], 16)
        s.linear.setup()
        s.channel.exchange("bench.sync", np.zeros(1, np.uint8))
        t = time.perf_counter()
        with s.phase("mul"):
            z = x * y
        dt = time.perf_counter() - t
        c = s.counters("mul")
        return z.share, dt, c.bytes_sent + c.bytes_recv + c.header_bytes_sent + c.header_bytes_recv, c.rounds

    (z0, t0, b0, k0), (z1, t1, b1, k1) = run_pair(party, party, transport="tcp", timeout=1800, ot=ot)
    return {"who": f"ours ({ot})", "n": n, "time_s": max(t0, t1), "bytes": b0, "rounds": max(k0, k1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10**6)
    ap.add_argument("--ot", default="ferret,iknp")
    ap.add_argument("--no-spu", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rows = [ours(a.n, ot) for ot in a.ot.split(",")]
    if not a.no_spu and a.n == 10**6:
        from bench.reference import run_spu
        ref = run_spu("mul_1e6", timeout=1800)
        if ref:
            rows.append({"who": "SPU 0.9.5 cheetah", "n": a.n, "time_s": ref["time_s"], "bytes": ref["bytes"],
                         "rounds": None})
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"elementwise products with truncation, n = {a.n}, tcp loopback; "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    for r in rows:
        print(f"  {r['who']:22} {r['time_s']:7.2f} s {r['bytes'] / 1e6:9.1f} MB  rounds {r['rounds'] or '-'}")


if __name__ == "__main__":
    main()
