"""Cost table of the hybrid operations, measured by running them.

    python -m ezprotocols.costs [--n 1200] [--json] [--markdown] [--compare gc|ot]
    python -m ezprotocols.costs --linear densenet121|lenet [--batch B] [--hw 224] [--weight-bits 18]

Both parties run each operation on ``n`` random elements (in-process channel).
The OT engine and the garbled-circuit engine are instrumented to count the
correlated OTs (by flavour) and the AND gates garbled; the channel statistics give
the payload bytes in each direction and the rounds (runs of same-direction
messages, as each party sees them).  Base OTs are set up before measuring, so the
numbers are the per-operation (online) costs.  Every figure is divided by the
number of elements the operation produces (``per``).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .protocols import setup
from .runner import run_pair

__all__ = ["measure", "main"]


class _CountingOT:
    """Wraps ``session.ot`` and counts OTs per flavour (both roles count the same calls)."""

    def __init__(self, real, counts):
        self._real = real
        self._counts = counts

    def _count(self, kind, n):
        self._counts[kind] = self._counts.get(kind, 0) + int(n)

    def send_cot(self, n, **kw):
        self._count("cot", n)
        return self._real.send_cot(n, **kw)

    def recv_cot(self, bits, **kw):
        self._count("cot", len(bits))
        return self._real.recv_cot(bits, **kw)

    def send_acot(self, c, bits=64):
        self._count("acot", len(c))
        return self._real.send_acot(c, bits=bits)

    def recv_acot(self, b, bits=64):
        self._count("acot", len(b))
        return self._real.recv_acot(b, bits=bits)

    def send_rot(self, n, **kw):
        self._count("rot", n)
        return self._real.send_rot(n, **kw)

    def recv_rot(self, bits, **kw):
        self._count("rot", len(bits))
        return self._real.recv_rot(bits, **kw)

    def send_rcot(self, n, **kw):
        self._count("rcot", n)
        return self._real.send_rcot(n, **kw)

    def recv_rcot(self, n, **kw):
        self._count("rcot", n)
        return self._real.recv_rcot(n, **kw)

    def send(self, m0, m1):
        self._count("chosen", len(m0))
        return self._real.send(m0, m1)

    def recv(self, bits, L, **kw):
        self._count("chosen", len(bits))
        return self._real.recv(bits, L, **kw)

    def __getattr__(self, name):
        return getattr(self._real, name)


def _instrument(s, counts):
    """Count OTs and AND gates of session ``s`` into ``counts``; returns the undo function."""
    real_ot = s.ot
    s.__dict__["ot"] = _CountingOT(real_ot, counts)
    gc = s.gc
    real_run = gc.run

    def run(circuit, inputs, **kw):
        out = real_run(circuit, inputs, **kw)
        b = kw.get("batch") or (inputs[0].shape[0] if inputs else 0)
        counts["and"] = counts.get("and", 0) + circuit.n_and * b
        return out

    gc.run = run

    def undo():
        s.__dict__["ot"] = real_ot
        del gc.run

    return undo




def _ops():
    from . import protocols as P
    from .arith.tensor import ArithTensor

    def bits_of(t, w):
        return P.BoolTensor(t.session, ((t.share[..., None] >> np.arange(w, dtype=np.uint64)) & np.uint64(1))
                            .astype(np.uint8))

    return {
        # name: (function of an ArithTensor x of n elements and a BoolTensor b, outputs per call, note)
        "b2a (1 bit)": (lambda x, b: b.to_arith(), lambda n: n, "additive COT, P0 sends -2 b0"),
        "b2a (64-bit word)": (lambda x, b: P.b2a(bits_of(x, 64)), lambda n: n, "63 additive COTs, widths 63..1"),
        "mux (bit * value)": (lambda x, b: P.mux(b, x), lambda n: n, "two additive COTs"),
        "a2y (64-bit)": (lambda x, b: P.a2y(x, 64), lambda n: n, "garbled adder, P0's bits free"),
        "a2b (64-bit)": (lambda x, b: P.a2b(x, 64), lambda n: n, "a2y, then label lsbs"),
        "b2y (64-bit)": (lambda x, b: P.b2y(bits_of(x, 64)), lambda n: n, "COT per bit"),
        "y2a (64-bit)": (lambda x, b: P.y2a(P.a2y(x, 64), x.session), lambda n: n, "includes the a2y"),
        "msb / x < 0 (64-bit)": (lambda x, b: P.msb(x), lambda n: n, "s.compare: garbled carry (gc) or millionaires (ot)"),
        "msb (32-bit bound)": (lambda x, b: P.msb(x, bits=32), lambda n: n, "abs(x) < 2^31 ring units"),
        "compare x > y": (lambda x, b: P.compare(x, x[::-1]), lambda n: n, "sign of y - x"),
        "relu (64-bit)": (lambda x, b: P.relu(x), lambda n: n, "sign + mux"),
        "relu (32-bit bound)": (lambda x, b: P.relu(x, bits=32), lambda n: n, "abs(x) < 2^31 ring units"),
        "max of 2": (lambda x, b: P.max(x.reshape(-1, 2), axis=1), lambda n: n // 2, "one level"),
        "argmax over 10": (lambda x, b: P.argmax(x.reshape(-1, 10), axis=1), lambda n: n // 10,
                           "4 levels, value and index muxed"),
        "maxpool 2x2": (lambda x, b: P.maxpool2d(x.reshape(1, -1, 20, 20), 2), lambda n: n // 4,
                        "2 levels per window"),
    }, ArithTensor


def measure(n: int = 1200, compare: str = "gc") -> list[dict]:
    """Run every operation on ``n`` elements (rounded to a multiple of 400) with the
    comparison engine ``compare`` and return one row of per-output costs each."""
    n = max(400, n - n % 400)
    ops, ArithTensor = _ops()
    from .protocols import BoolTensor

    def party(s):
        setup(s)
        rows = []
        x = ArithTensor(s, s.prg.random_uint64(n) >> np.uint64(2), 0)   # values inside the ring's range
        b = BoolTensor(s, s.prg.random_bits(n))
        for i, (name, (fn, per, note)) in enumerate(ops.items()):
            counts = {}
            undo = _instrument(s, counts)
            try:
                with s.phase(f"cost{i}"):
                    fn(x, b)
            finally:
                undo()
            c = s.counters(f"cost{i}")
            rows.append(dict(op=name, per=per(n), note=note, counts=counts, sent=c.bytes_sent,
                             recv=c.bytes_recv, rounds=c.rounds))
        return rows

    r0, r1 = run_pair(party, party, compare=compare)
    out = []
    for a, b in zip(r0, r1):
        k = a["per"]
        out.append({
            "op": a["op"],
            "and_gates": a["counts"].get("and", 0) / k,
            "cots": a["counts"].get("cot", 0) / k,
            "rots": (a["counts"].get("rot", 0) + a["counts"].get("rcot", 0)) / k,
            "additive_cots": a["counts"].get("acot", 0) / k,
            "bytes_p0_to_p1": a["sent"] / k,
            "bytes_p1_to_p0": b["sent"] / k,
            "bytes": (a["sent"] + b["sent"]) / k,
            "rounds_p0": a["rounds"],
            "rounds_p1": b["rounds"],
            "outputs": k,
            "note": a["note"],
        })
    return out


def _table(rows, markdown: bool) -> str:
    hdr = ["operation", "AND/elem", "COT/elem", "ROT/elem", "addCOT/elem", "bytes/elem", "P0->P1", "P1->P0",
           "rounds P0/P1", "construction"]
    lines = []
    fmt = []
    for r in rows:
        fmt.append([r["op"], f"{r['and_gates']:.1f}", f"{r['cots']:.1f}", f"{r['rots']:.1f}", f"{r['additive_cots']:.1f}",
                    f"{r['bytes']:.0f}", f"{r['bytes_p0_to_p1']:.0f}", f"{r['bytes_p1_to_p0']:.0f}",
                    f"{r['rounds_p0']}/{r['rounds_p1']}", r["note"]])
    if markdown:
        lines.append("| " + " | ".join(hdr) + " |")
        lines.append("|" + "---|" * len(hdr))
        lines += ["| " + " | ".join(f) + " |" for f in fmt]
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(hdr, *fmt)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(hdr, widths)))
        lines += ["  ".join(str(x).ljust(w) for x, w in zip(f, widths)) for f in fmt]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ezprotocols.costs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1200, help="elements per operation (a multiple of 400; default 1200)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--markdown", action="store_true", help="a markdown table")
    ap.add_argument("--compare", choices=("gc", "ot"), default="ot",
                    help="comparison engine: OT millionaires (ot, the library default) or garbled carry (gc)")
    ap.add_argument("--linear", metavar="NET", help="plan-level bytes of NET's linear layers, OT vs HE "
                    "(densenet121, lenet; see ezprotocols.arith.plan_costs)")
    ap.add_argument("--batch", type=int, default=None, help="with --linear: batch size")
    ap.add_argument("--hw", type=int, default=224, help="with --linear densenet121: image size")
    ap.add_argument("--weight-bits", type=int, default=18, help="with --linear: signed bits of the weights")
    args = ap.parse_args(argv)
    if args.linear:
        return _linear_main(args, ap)
    if args.n < 400 or args.n % 400:
        ap.error(f"--n must be a positive multiple of 400, got {args.n}")
    rows = measure(args.n, args.compare)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"Per-output cost of the hybrid operations, comparison engine {args.compare!r} "
              f"(measured on {args.n} inputs each; "
              "bytes are payload bytes, rounds are for the whole batch):")
        print(_table(rows, args.markdown))
    return 0


def _linear_main(args, ap) -> int:
    from .arith.plan_costs import NETWORKS, plan_bytes
    if args.linear not in NETWORKS:
        ap.error(f"--linear must be one of {sorted(NETWORKS)}")
    if (args.batch is not None and args.batch < 1) or args.hw < 32 or not 2 <= args.weight_bits <= 64:
        ap.error("--batch must be >= 1, --hw >= 32, --weight-bits in [2, 64]")
    kw = {} if args.batch is None else {"batch": args.batch}
    if args.linear == "densenet121":
        kw["hw"] = args.hw
    res = plan_bytes(NETWORKS[args.linear](**kw), args.weight_bits)
    if args.json:
        print(json.dumps(res, indent=1, default=str))
        return 0
    print(f"{args.linear} {kw}: linear-layer bytes (both directions, weights at {args.weight_bits} bits; "
          "HE key set-up and non-linear layers excluded)")
    for kind, d in res["by_kind"].items():
        print(f"  {kind:7s} x{d['layers']:3d}  OT {d['ot'] / 1e9:10.3f} GB   HE {d['he'] / 1e9:10.3f} GB")
    print(f"  total         OT {res['ot'] / 1e9:10.3f} GB   HE {res['he'] / 1e9:10.3f} GB   "
          f"({res['ot'] / max(res['he'], 1):.0f}x fewer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
