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


#: Exit codes: 1 a failed session or protocol error, 2 bad usage or input (model,
#: files, arguments), 3 the secure layers are missing, 130 interrupted (Ctrl-C).
EXIT_FAIL, EXIT_USAGE, EXIT_LAYERS, EXIT_INTERRUPTED = 1, 2, 3, 130

JSON_HELP = ("machine-readable output: one JSON object on stdout; on failure {\"error\": message, "
             "\"type\": kind} on stdout (and the message on stderr) with a non-zero exit code")


class CliError(Exception):
    """A failure reported as ``error: message`` (or JSON with --json), exit ``code``."""

    def __init__(self, msg, code=EXIT_USAGE, kind="usage"):
        super().__init__(msg)
        self.code, self.kind = code, kind


def _report(args_json: bool, msg: str, kind: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    if args_json:
        print(json.dumps({"error": msg, "type": kind}), flush=True)


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
    from .nn import load_onnx
    if not os.path.isfile(path):
        raise CliError(f"model file not found: {path}", kind="model")
    try:
        return load_onnx(path, frac_bits=frac_bits, output=output, act_bits=act_bits)
    except KeyboardInterrupt:
        raise
    except Exception as e:               # any load failure: not ONNX, unsupported op, bad shapes...
        raise CliError(f"cannot load model {path}: {e}", kind=type(e).__name__) from None


def _secure_ready() -> bool:
    from .nn.secure import missing_layers
    miss = missing_layers()
    if miss:
        raise CliError("secure inference needs the arithmetic and hybrid protocol layers, not available in this "
                       "build (missing: " + ", ".join(miss) + ")", EXIT_LAYERS, "missing_layers")
    return True


def _demo_secure(args):
    from .nn import demo_model_path, demo_validation_set, load_onnx, predict_classes, run_plaintext
    from .nn.secure import serve_session, validate_session
    plan = load_onnx(demo_model_path(), frac_bits=args.frac_bits)
    x, y = demo_validation_set(args.samples)
    if len(y) < args.samples:
        print(f"note: --samples {args.samples} clamped to the {len(y)} shipped digits", file=sys.stderr)
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
    _secure_ready()
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
        raise CliError(f"{args.out} exists (keygen never overwrites a key)", kind="exists") from None
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
    if args.error_bound:
        from .nn import error_bound
        xs = _load_npy(args.error_bound, "samples")
        _check_samples(xs, "samples")
        try:
            b = error_bound(plan, xs)
        except (ValueError, OverflowError) as e:
            raise CliError(f"error bound on {args.error_bound}: {e}", kind="input") from None
        eb = {"samples": int(len(b)), "max": float(b.max()), "median": float(np.median(b))}
        if args.json:
            print(json.dumps({"error_bound": eb}), flush=True)
        else:
            print(f"fixed-point error bound of the logits on {eb['samples']} samples: max {eb['max']:.3g}, "
                  f"median {eb['median']:.3g} (rigorous; typical errors are far smaller)", file=sys.stderr)
    keypair = _read_keypair(args.curve_key)
    if args.allow_client and keypair is None:
        raise CliError("--allow-client needs --curve-key")
    _secure_ready()
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
                raise CliError(str(e), EXIT_FAIL, "PeerTimeout") from None
            except EzpError as e:
                # e.g. the previous client's socket reconnecting to the new listener to say goodbye
                print(f"handshake failed ({e}); listening again", file=sys.stderr)
                time.sleep(0.1)
                continue
            except zmq.ZMQError as e:
                if e.errno != zmq.EADDRINUSE or attempt == 49:
                    raise CliError(f"cannot listen on {args.listen}: {e}", EXIT_FAIL, "listen") from None
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
        raise CliError(f"cannot read {what} {path}: {e}", kind="input") from None


def _check_samples(x, what):
    """Local checks before connecting (the model's shape is only known after)."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise CliError(f"{what} must be a numeric array, not {getattr(x, 'dtype', type(x))}", kind="input")
    if x.ndim == 0 or x.size == 0:
        raise CliError(f"{what} has no samples (shape {x.shape})", kind="input")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise CliError(f"{what} has non-finite values", kind="input")


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
    _check_samples(x, "input")
    _secure_ready()
    res = _client(args, lambda s: query_session(s, x, want_logits=args.logits, batch=args.batch,
                                                  progress=not args.json))
    pred = res.get("labels", res["classes"])
    out = res.get("output", pred) if args.logits else pred
    if args.output:
        np.save(args.output, np.asarray(out))
    if args.json:
        print(json.dumps(_jsonable(res)))
    else:
        print("classes  : " + np.array2string(np.asarray(res["classes"]), threshold=50))
        if "labels" in res:
            print("labels   : " + np.array2string(np.asarray(res["labels"]), threshold=50))
        if args.output:
            print(f"saved    : {args.output}")
        _print_costs(res)
    return 0


def cmd_validate(args) -> int:
    from .nn.secure import validate_session
    x = _load_npy(args.data, "data")
    y = _load_npy(args.labels, "labels")
    _check_samples(x, "data")
    if y.ndim != 1 or len(y) != len(x):
        raise CliError(f"labels must be one per sample: {len(x)} samples, labels of shape {y.shape}",
                       kind="input")
    _secure_ready()
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


def _positive_int(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as JSON too when --json is on the command line."""
    json_errors = False

    def error(self, message):
        if _Parser.json_errors:
            print(json.dumps({"error": f"{self.prog}: {message}", "type": "usage"}), flush=True)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m ezprotocols.party",
                                description="Two-party secure inference and validation. P0 (serve) holds an "
                                            "ONNX model, P1 (query, validate) holds data; neither sees the "
                                            "other's secrets.")
    sub = p.add_subparsers(dest="command", required=True)

    def client_args(sp):
        sp.add_argument("--connect", required=True, help="model owner's address, e.g. tcp://host:5555")
        sp.add_argument("--server-key", default=None, metavar="PUBKEY",
                        help="the model owner's CurveZMQ public key: encrypt the channel and authenticate the owner")
        sp.add_argument("--curve-key", default=None, metavar="FILE",
                        help="this client's key pair (from 'keygen'; needed when the owner lists allowed clients)")

    def common(sp, timeout=True):
        sp.add_argument("--json", action="store_true", help=JSON_HELP)
        if timeout:
            sp.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the peer (default 120)")

    d = sub.add_parser("demo", help="run both parties locally on the shipped MNIST model and print results and costs",
                       description="Both parties locally: P0 serves the shipped LeNet-style MNIST model, P1 "
                                   "validates it on held-out digits; prints plaintext and secure accuracy and costs.")
    common(d, timeout=False)
    d.add_argument("--samples", type=_positive_int, default=100,
                   help="validation digits to use (default 100; more than the 500 shipped is clamped, with a note)")
    d.add_argument("--batch", type=_positive_int, default=50, help="batch size (default 50)")
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
    s.add_argument("--output-name", default=None,
                   help="graph output to compute when the model has several floating-point outputs (by default "
                        "the only floating-point one, e.g. an skl2onnx classifier's probabilities: a ZipMap output "
                        "stands for its probability tensor, a class-label output classes[argmax] for its scores "
                        "and supplies the class labels)")
    s.add_argument("--act-bits", type=int, default=64,
                   help="public bound on the bits of the fixed-point activations compared in ReLU/max-pool/argmax "
                        "(default 64: always exact; fewer is cheaper but wrong if an activation does not fit)")
    s.add_argument("--curve-key", default=None, metavar="FILE",
                   help="encrypt and authenticate with CurveZMQ using this key pair (from 'keygen'); "
                        "clients then need --server-key with its public key")
    s.add_argument("--allow-client", action="append", default=None, metavar="PUBKEY",
                   help="accept only clients with this CurveZMQ public key (repeatable; needs --curve-key)")
    s.add_argument("--sessions", type=int, default=0, help="stop after this many completed sessions (default 0: forever)")
    s.add_argument("--error-bound", default=None, metavar="X.npy",
                   help="print the fixed-point error bound of the logits on these sample inputs (the owner's own "
                        "data; see ezprotocols.nn.error_bound) before serving")
    s.add_argument("--accept-timeout", type=float, default=24 * 3600.0,
                   help="seconds to wait for a client (default one day)")
    s.set_defaults(func=cmd_serve)

    q = sub.add_parser("query", help="P1: secure inference on your samples; learn the predicted classes",
                       description="P1: connect to a model owner and learn the predicted class of each sample "
                                   "(or the model's output with --logits, if the owner allows it).")
    common(q)
    client_args(q)
    q.add_argument("--input", required=True, help=".npy file: samples of shape (N, *model input) or one sample")
    q.add_argument("--output", default=None,
                   help=".npy file for the predictions: the model's class labels when it declares them (skl2onnx "
                        "classifiers), else class indices; with --logits the model's output")
    q.add_argument("--logits", action="store_true", help="ask for the logits / model output")
    q.add_argument("--batch", type=_positive_int, default=None, help="samples per batch (default: all)")
    q.set_defaults(func=cmd_query)

    v = sub.add_parser("validate", help="P1: secure validation; both parties learn only the accuracy",
                       description="P1: connect to a model owner and measure the model's accuracy on your "
                                   "labelled data; both parties learn the accuracy (and the confusion matrix "
                                   "if both agree), nothing per sample.")
    common(v)
    client_args(v)
    v.add_argument("--data", required=True, help=".npy file: samples (N, *model input)")
    v.add_argument("--labels", required=True,
                   help=".npy file: N labels (class indices, or the model's class labels when it declares them)")
    v.add_argument("--confusion", action="store_true", help="ask for the confusion matrix too")
    v.add_argument("--batch", type=_positive_int, default=64, help="samples per batch (default 64)")
    v.set_defaults(func=cmd_validate)

    k = sub.add_parser("keygen", help="write a CurveZMQ key pair for encrypted, authenticated sessions",
                       description="Write a new CurveZMQ key pair to a file (mode 0600) and print its public key. "
                                   "The model owner passes the file to 'serve --curve-key'; clients pass the "
                                   "public key to '--server-key' (and may have their own pair for --curve-key).")
    k.add_argument("--out", required=True, help="file to create (refuses to overwrite)")
    k.add_argument("--json", action="store_true", help=JSON_HELP)
    k.set_defaults(func=cmd_keygen)
    return p


def main(argv=None) -> int:
    from .errors import EzpError
    argv = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_errors = "--json" in argv
    args = build_parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        return args.func(args)
    except CliError as e:
        _report(as_json, str(e), e.kind)
        return e.code
    except KeyboardInterrupt:
        _report(as_json, "interrupted", "interrupted")
        return EXIT_INTERRUPTED
    except (EzpError, PermissionError, ValueError, OSError) as e:
        _report(as_json, f"{type(e).__name__}: {e}", type(e).__name__)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
