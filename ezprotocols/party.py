"""Command line: ``python -m ezprotocols.party {demo,serve,query,validate}``.

``demo`` runs both parties locally on the most complete two-party protocol the
package offers and prints the result, the time and the bytes moved.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from .testing import run_pair


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def _demo_sum(args):
    """Fallback demo: additive sharing over Z_2^64 of one value per party and a
    jointly computed sum revealed to both."""
    def party(role, value):
        def f(s):
            t0 = time.perf_counter()
            mask = s.prg.random_uint64(1)
            mine = np.array([value], dtype=np.uint64)
            with s.phase("share"):
                s.channel.send("demo.share", mine - mask)
                other = s.channel.recv_array("demo.share", np.uint64, (1,))
            share = mask + other
            with s.phase("open"):
                s.channel.send("demo.open", share)
                total = share + s.channel.recv_array("demo.open", np.uint64, (1,))
            return int(total[0]), time.perf_counter() - t0, s.counters()
        return f

    (r0, t0, c0), (r1, _, _) = run_pair(party(0, 20), party(1, 22))
    return {"protocol": "additive sharing: x0 + x1 over Z_2^64", "inputs": [20, 22],
            "result": r0, "agree": r0 == r1, "seconds": t0,
            "bytes": c0.bytes, "rounds": c0.rounds}


def cmd_demo(args) -> int:
    res = _demo_sum(args)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"protocol : {res['protocol']}")
        print(f"result   : {res['result']} (both parties agree: {res['agree']})")
        print(f"time     : {res['seconds'] * 1000:.1f} ms")
        print(f"traffic  : {_fmt_bytes(res['bytes'])} in {res['rounds']} rounds")
    return 0


def _not_yet(name):
    def f(args) -> int:
        print(f"ezprotocols.party {name}: not available yet (needs the ONNX front end)", file=sys.stderr)
        return 2
    return f


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ezprotocols.party",
                                description="Two-party secure inference and validation.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run both parties locally and print results and costs")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.set_defaults(func=cmd_demo)
    for name in ("serve", "query", "validate"):
        sp = sub.add_parser(name, help=f"{name} (ONNX front end)")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=_not_yet(name))
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
