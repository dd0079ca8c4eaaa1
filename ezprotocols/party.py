"""Command line: ``python -m ezprotocols.party {demo,serve,query,validate}``.

``demo`` runs both parties locally on the most complete two-party protocol the
package offers and prints the result, the time and the bytes moved.
"""
from __future__ import annotations

import argparse
import json
import os
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


def _print_costs(res, out=sys.stdout):
    """The closing summary: time, bytes and rounds, offline and online, per op."""
    off, on = res["offline"], res["online"]
    print(f"offline  : {off['seconds']:.2f} s, {_fmt_bytes(off['bytes'])}, {off['rounds']} rounds", file=out)
    print(f"online   : {on['seconds']:.2f} s, {_fmt_bytes(on['bytes'])}, {on['rounds']} rounds", file=out)
    if res.get("per_op"):
        print("online per op:", file=out)
        for k, v in sorted(res["per_op"].items(), key=lambda kv: -kv[1]["seconds"]):
            print(f"  {k:<10} {v['seconds']:7.3f} s  {_fmt_bytes(v['bytes']):>11}  {v['rounds']:5d} rounds", file=out)


def _jsonable(res):
    out = {}
    for k, v in res.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _load_plan(path, frac_bits, output=None, act_bits=64):
    from .nn import OnnxImportError, load_onnx
    try:
        return load_onnx(path, frac_bits=frac_bits, output=output, act_bits=act_bits)
    except (OnnxImportError, FileNotFoundError) as e:
        print(f"error: {path}: {e}", file=sys.stderr)
        return None


def _secure_ready() -> bool:
    from .nn.secure import missing_layers
    miss = missing_layers()
    if miss:
        print("error: secure inference needs the arithmetic and hybrid protocol layers, not available in this "
              "build (missing: " + ", ".join(miss) + ")", file=sys.stderr)
        return False
    return True


def _demo_secure(args):
    from .nn import demo_model_path, demo_validation_set, load_onnx, predict_classes, run_plaintext
    from .nn.secure import serve_session, validate_session
    plan = load_onnx(demo_model_path(), frac_bits=args.frac_bits)
    x, y = demo_validation_set(args.samples)
    t = time.perf_counter()
    pred = predict_classes(plan, run_plaintext(plan, x, logits=True))
    t_plain = time.perf_counter() - t
    plain_correct = int((pred == y).sum())
    r0, r1 = run_pair(lambda s: serve_session(s, plan, allow_confusion=True),
                      lambda s: validate_session(s, x, y, confusion=True, batch=args.batch, progress=not args.json),
                      timeout=max(600.0, 5.0 * len(y)), frac_bits=args.frac_bits)
    return {"model": "LeNet-5 style CNN, MNIST (ezprotocols/nn/data/lenet_mnist.onnx)",
            "samples": int(len(y)), "batch": r1["batch"],
            "plaintext": {"correct": plain_correct, "accuracy": plain_correct / len(y), "seconds": t_plain},
            "secure": {"correct": r1["correct"], "accuracy": r1["accuracy"], "agree": r0["correct"] == r1["correct"],
                       "confusion": r1.get("confusion"),
                       "offline": r1["offline"], "online": r1["online"], "per_op": r1["per_op"],
                       "total": r1["total"]},
            "triples": "ot (no trusted party)"}


def cmd_demo(args) -> int:
    from .nn.secure import layers_available
    if not layers_available() and not args.require_secure:
        return _cmd_demo_fallback(args)
    if not _secure_ready():
        return 3
    res = _demo_secure(args)
    if args.json:
        print(json.dumps(res))
        return 0
    p, s = res["plaintext"], res["secure"]
    print(f"model    : {res['model']}")
    print(f"data     : {res['samples']} held-out MNIST digits (P1), weights (P0), batch {res['batch']}")
    print(f"{'':9}  {'plaintext':>12}  {'secure 2PC':>12}")
    print(f"{'accuracy':9}  {p['accuracy'] * 100:11.1f}%  {s['accuracy'] * 100:11.1f}%")
    print(f"{'correct':9}  {p['correct']:>12}  {s['correct']:>12}")
    print(f"{'time':9}  {p['seconds']:>10.2f} s  {s['total']['seconds']:>10.2f} s")
    print(f"{'traffic':9}  {'-':>12}  {_fmt_bytes(s['total']['bytes']):>12}")
    _print_costs(s)
    print("both parties learned only the accuracy and the confusion matrix (both agreed); no trusted party")
    return 0


def _cmd_demo_fallback(args) -> int:
    res = _demo_sum(args)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"protocol : {res['protocol']}")
        print(f"result   : {res['result']} (both parties agree: {res['agree']})")
        print(f"time     : {res['seconds'] * 1000:.1f} ms")
        print(f"traffic  : {_fmt_bytes(res['bytes'])} in {res['rounds']} rounds")
    return 0


def _await_close(ch, wait: float = 5.0) -> None:
    """Let the client close first, so that its closing frame is not delivered to the
    next listener bound on the same address (ZeroMQ reconnects a PAIR socket)."""
    from .errors import EzpError
    save, ch.timeout = ch.timeout, wait
    try:
        ch.recv_bytes("nn.bye", max_nbytes=0)
    except EzpError:
        pass
    finally:
        ch.timeout = save


def _read_keypair(path):
    """A CurveZMQ key pair written by ``keygen``: JSON {"public": z85, "secret": z85}."""
    if path is None:
        return None
    try:
        with open(path, "r", encoding="ascii") as f:
            d = json.load(f)
        pub, sec = d["public"], d["secret"]
        if not (isinstance(pub, str) and isinstance(sec, str) and len(pub) == len(sec) == 40):
            raise ValueError("keys must be 40-character Z85 strings")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read the key file {path}: {e}") from None
    return pub.encode(), sec.encode()


def cmd_keygen(args) -> int:
    from . import net
    pub, sec = net.curve_keypair()
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"error: {args.out} exists (keygen never overwrites a key)", file=sys.stderr)
        return 2
    with os.fdopen(fd, "w", encoding="ascii") as f:
        json.dump({"public": pub.decode(), "secret": sec.decode()}, f)
        f.write("\n")
    if args.json:
        print(json.dumps({"public": pub.decode(), "file": args.out}))
    else:
        print(f"key pair written to {args.out} (keep it private); public key, to give to the other party:")
        print(pub.decode())
    return 0


def cmd_serve(args) -> int:
    import zmq

    from . import net
    from .errors import EzpError, PeerTimeout
    from .nn.secure import serve_session
    from .session import Session
    plan = _load_plan(args.model, args.frac_bits, args.output_name, args.act_bits)
    if plan is None:
        return 2
    keypair = _read_keypair(args.curve_key)
    if args.allow_client and keypair is None:
        print("error: --allow-client needs --curve-key", file=sys.stderr)
        return 2
    if not _secure_ready():
        return 3
    if not args.json:
        print(f"serving {args.model} ({len(plan.ops)} secure ops, input {plan.input_shape}) on {args.listen}",
              file=sys.stderr)
    served = 0
    while args.sessions == 0 or served < args.sessions:
        ch = None
        for attempt in range(50):            # the previous session's socket may still hold the port briefly
            try:
                ch = net.listen(args.listen, timeout=args.timeout, accept_timeout=args.accept_timeout,
                                curve_keypair=keypair, allowed_clients=args.allow_client)
                break
            except PeerTimeout as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
            except EzpError as e:
                # e.g. the previous client's socket reconnecting to the new listener to say goodbye
                print(f"handshake failed ({e}); listening again", file=sys.stderr)
                time.sleep(0.1)
                continue
            except zmq.ZMQError as e:
                if e.errno != zmq.EADDRINUSE or attempt == 49:
                    print(f"error: cannot listen on {args.listen}: {e}", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        if ch is None:
            continue
        try:
            with Session(0, ch, frac_bits=plan.frac_bits) as s:
                res = serve_session(s, plan, allow_logits=args.allow_logits, allow_confusion=args.allow_confusion)
                _await_close(s.channel)
        except EzpError as e:
            print(f"session failed: {type(e).__name__}: {e}", file=sys.stderr)
            time.sleep(1.5)       # let the failed client's socket go (it would reconnect to the next listener)
            continue
        served += 1
        if args.json:
            print(json.dumps(_jsonable(res)), flush=True)
        else:
            line = f"session {served}: {res['mode']} of {res['samples']} samples"
            if res["mode"] == "validate":
                line += f", accuracy {res['accuracy'] * 100:.2f}% ({res['correct']}/{res['samples']})"
            print(line + f", {res['total']['seconds']:.2f} s, {_fmt_bytes(res['total']['bytes'])}", flush=True)
    return 0


def _load_npy(path, what):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        print(f"error: cannot read {what} {path}: {e}", file=sys.stderr)
        return None


def _client(args, fn, attempts: int = 3):
    """Connect and run ``fn(session)``; a connection lost while still receiving the
    architecture (nothing of ours was sent yet) is retried."""
    from . import net
    from .errors import PeerGone
    from .session import Session
    for i in range(attempts):
        ch = net.connect(args.connect, timeout=args.timeout, curve_server_key=args.server_key,
                         curve_keypair=_read_keypair(args.curve_key))
        try:
            with Session(1, ch) as s:
                return fn(s)
        except PeerGone as e:
            if i == attempts - 1 or not str(e).startswith(("nn.arch", "setup")):
                raise
            time.sleep(0.2)


def cmd_query(args) -> int:
    from .nn.secure import query_session
    x = _load_npy(args.input, "input")
    if x is None:
        return 2
    if not _secure_ready():
        return 3
    res = _client(args, lambda s: query_session(s, x, want_logits=args.logits, batch=args.batch,
                                                  progress=not args.json))
    out = res.get("output", res["classes"]) if args.logits else res["classes"]
    if args.output:
        np.save(args.output, np.asarray(out))
    if args.json:
        print(json.dumps(_jsonable(res)))
    else:
        print("classes  : " + np.array2string(np.asarray(res["classes"]), threshold=50))
        if args.output:
            print(f"saved    : {args.output}")
        _print_costs(res)
    return 0


def cmd_validate(args) -> int:
    from .nn.secure import validate_session
    x = _load_npy(args.data, "data")
    y = _load_npy(args.labels, "labels")
    if x is None or y is None:
        return 2
    if not _secure_ready():
        return 3
    res = _client(args, lambda s: validate_session(s, x, y, confusion=args.confusion, batch=args.batch,
                                                     progress=not args.json))
    if args.json:
        print(json.dumps(_jsonable(res)))
    else:
        print(f"accuracy : {res['accuracy'] * 100:.2f}% ({res['correct']}/{res['samples']})")
        if "confusion" in res:
            print("confusion (rows: true class, columns: predicted):")
            for row in res["confusion"]:
                print("  " + " ".join(f"{v:5d}" for v in row))
        elif args.confusion:
            print("confusion: refused by the model owner")
        print(f"time     : {res['total']['seconds']:.2f} s, {_fmt_bytes(res['total']['bytes'])}")
        _print_costs(res)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ezprotocols.party",
                                description="Two-party secure inference and validation. P0 (serve) holds an "
                                            "ONNX model, P1 (query, validate) holds data; neither sees the "
                                            "other's secrets.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, timeout=True):
        sp.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
        if timeout:
            sp.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the peer (default 120)")

    d = sub.add_parser("demo", help="run both parties locally on the shipped MNIST model and print results and costs",
                       description="Both parties locally: P0 serves the shipped LeNet-style MNIST model, P1 "
                                   "validates it on held-out digits; prints plaintext and secure accuracy and costs.")
    common(d, timeout=False)
    d.add_argument("--samples", type=int, default=100, help="validation digits to use (max 500, default 100)")
    d.add_argument("--batch", type=int, default=50, help="batch size (default 50)")
    d.add_argument("--frac-bits", type=int, default=16, help="fixed-point fractional bits (default 16)")
    d.add_argument("--require-secure", action="store_true",
                   help="fail instead of running the fallback demo when the secure layers are missing")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("serve", help="P0: serve an ONNX model to clients (weights never leave)",
                       description="P0: load an ONNX model, then serve query/validate sessions one at a time.")
    common(s)
    s.add_argument("--model", required=True, help="ONNX model file")
    s.add_argument("--listen", required=True, help="address to bind, e.g. tcp://0.0.0.0:5555")
    s.add_argument("--allow-logits", action="store_true", help="let clients learn the logits, not only the class")
    s.add_argument("--allow-confusion", action="store_true",
                   help="agree to reveal the confusion matrix when a validating client asks for it")
    s.add_argument("--frac-bits", type=int, default=16, help="fixed-point fractional bits (default 16)")
    s.add_argument("--output-name", default=None, help="graph output to compute when the model has several")
    s.add_argument("--act-bits", type=int, default=64,
                   help="public bound on the bits of the fixed-point activations compared in ReLU/max-pool/argmax "
                        "(default 64: always exact; fewer is cheaper but wrong if an activation does not fit)")
    s.add_argument("--curve-key", default=None, metavar="FILE",
                   help="encrypt and authenticate with CurveZMQ using this key pair (from 'keygen'); "
                        "clients then need --server-key with its public key")
    s.add_argument("--allow-client", action="append", default=None, metavar="PUBKEY",
                   help="accept only clients with this CurveZMQ public key (repeatable; needs --curve-key)")
    s.add_argument("--sessions", type=int, default=0, help="stop after this many completed sessions (default 0: forever)")
    s.add_argument("--accept-timeout", type=float, default=24 * 3600.0,
                   help="seconds to wait for a client (default one day)")
    s.set_defaults(func=cmd_serve)

    q = sub.add_parser("query", help="P1: secure inference on your samples; learn the predicted classes",
                       description="P1: connect to a model owner and learn the predicted class of each sample "
                                   "(or the model's output with --logits, if the owner allows it).")
    common(q)
    q.add_argument("--connect", required=True, help="model owner's address, e.g. tcp://host:5555")
    q.add_argument("--server-key", default=None, metavar="PUBKEY",
                   help="the model owner's CurveZMQ public key: encrypt the channel and authenticate the owner")
    q.add_argument("--curve-key", default=None, metavar="FILE",
                   help="this client's key pair (from 'keygen'; needed when the owner lists allowed clients)")
    q.add_argument("--input", required=True, help=".npy file: samples of shape (N, *model input) or one sample")
    q.add_argument("--output", default=None, help=".npy file for the classes (or outputs with --logits)")
    q.add_argument("--logits", action="store_true", help="ask for the logits / model output")
    q.add_argument("--batch", type=int, default=None, help="samples per batch (default: all)")
    q.set_defaults(func=cmd_query)

    v = sub.add_parser("validate", help="P1: secure validation; both parties learn only the accuracy",
                       description="P1: connect to a model owner and measure the model's accuracy on your "
                                   "labelled data; both parties learn the accuracy (and the confusion matrix "
                                   "if both agree), nothing per sample.")
    common(v)
    v.add_argument("--connect", required=True, help="model owner's address, e.g. tcp://host:5555")
    v.add_argument("--server-key", default=None, metavar="PUBKEY",
                   help="the model owner's CurveZMQ public key: encrypt the channel and authenticate the owner")
    v.add_argument("--curve-key", default=None, metavar="FILE",
                   help="this client's key pair (from 'keygen'; needed when the owner lists allowed clients)")
    v.add_argument("--data", required=True, help=".npy file: samples (N, *model input)")
    v.add_argument("--labels", required=True, help=".npy file: N integer labels")
    v.add_argument("--confusion", action="store_true", help="ask for the confusion matrix too")
    v.add_argument("--batch", type=int, default=64, help="samples per batch (default 64)")
    v.set_defaults(func=cmd_validate)

    k = sub.add_parser("keygen", help="write a CurveZMQ key pair for encrypted, authenticated sessions",
                       description="Write a new CurveZMQ key pair to a file (mode 0600) and print its public key. "
                                   "The model owner passes the file to 'serve --curve-key'; clients pass the "
                                   "public key to '--server-key' (and may have their own pair for --curve-key).")
    k.add_argument("--out", required=True, help="file to create (refuses to overwrite)")
    k.add_argument("--json", action="store_true", help="machine-readable output")
    k.set_defaults(func=cmd_keygen)
    return p


def main(argv=None) -> int:
    from .errors import EzpError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (EzpError, PermissionError, ValueError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
