"""``python -m ezprotocols.party demo`` with a chosen engine set: the demo CLI has no
backend options, so this runs its own code (ezprotocols.party.demo._demo_secure) with
``run_pair`` bound to the given Session keyword arguments, and prints the total time,
bytes and rounds (offline / online) as one line (or JSON).

    python bench/demo_ot.py [--ot ferret] [--linear he] [--compare ot] [--samples 100] [--batch 50] [--json]

Without options it is exactly the demo's configuration (library defaults). Like the
demo, both parties run as threads of one process over the in-memory link (run_pair's
default transport).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    ap = argparse.ArgumentParser()
    for k in ("ot", "linear", "triples", "compare"):
        ap.add_argument(f"--{k}", default=None)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--frac-bits", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from ezprotocols import runner
    from ezprotocols.party import demo
    kw = {k: getattr(args, k) for k in ("ot", "linear", "triples", "compare") if getattr(args, k)}
    demo.run_pair = functools.partial(runner.run_pair, **kw)
    args.json = True                                   # no progress bar
    res = demo._demo_secure(args)
    s = res["secure"]
    row = {"config": kw or "defaults", "samples": res["samples"], "batch": res["batch"],
           "accuracy": s["accuracy"], "plain_accuracy": res["plaintext"]["accuracy"],
           "seconds": s["total"]["seconds"], "bytes": s["total"]["bytes"], "rounds": s["total"]["rounds"],
           "offline": {k: s["offline"][k] for k in ("seconds", "bytes", "rounds")},
           "online": {k: s["online"][k] for k in ("seconds", "bytes", "rounds")}}
    if "--json" in (argv or sys.argv[1:]):
        print(json.dumps(row))
    else:
        o, n = row["offline"], row["online"]
        print(f"demo {row['config']}: {row['samples']} digits, batch {row['batch']}, acc {row['accuracy']:.3f} "
              f"(plain {row['plain_accuracy']:.3f}); total {row['seconds']:.2f} s {row['bytes'] / 1e6:.1f} MB "
              f"{row['rounds']} rounds; offline {o['seconds']:.2f} s {o['bytes'] / 1e6:.1f} MB {o['rounds']} r; "
              f"online {n['seconds']:.2f} s {n['bytes'] / 1e6:.1f} MB {n['rounds']} r")


if __name__ == "__main__":
    main()
