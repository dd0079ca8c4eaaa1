"""The command line parser and entry point of ``python -m ezprotocols.party``."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from .client import cmd_query, cmd_validate
from .common import EXIT_FAIL, EXIT_INTERRUPTED, JSON_HELP, CliError, report_error
from .demo import cmd_demo
from .serve import cmd_serve


def cmd_keygen(args) -> int:
    from .. import net
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


def _positive_int(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _int_in(lo: int, hi: int):
    def conv(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{v!r} is not an integer") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}, got {n}")
        return n
    return conv


def _seconds(v: str) -> float:
    """A timeout: a finite number of seconds > 0."""
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a number of seconds") from None
    if not math.isfinite(x) or x <= 0 or x > 1e7:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds in (0, 1e7], got {v}")
    return x


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as JSON too when --json is on the command line."""
    json_errors = False

    def error(self, message):
        if _Parser.json_errors:
            print(json.dumps({"error": f"{self.prog}: {message}", "type": "usage"}), flush=True)
        super().error(message)


METRICS = ("accuracy", "auroc", "confusion")


def _metrics(v: str) -> tuple:
    names = tuple(m.strip() for m in v.split(",") if m.strip())
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown metric {', '.join(bad) or repr(v)} (choose from {', '.join(METRICS)})")
    return names


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

    def engines(sp):
        sp.add_argument("--ot", choices=("ferret", "iknp", "iknp-modp"), default="ferret",
                        help="correlated-OT source: ferret (silent OT, the default: about 0.05 B per OT, the fewest "
                             "bytes on any real link) or iknp (16 B per OT; faster on loopback only)")
        sp.add_argument("--linear", choices=("he", "ot"), default="he",
                        help="linear layers with the owner's weights: he (RLWE, the default) or ot")
        sp.add_argument("--compare", choices=("ot", "gc"), default="ot",
                        help="non-linear layers (ReLU, max pool, argmax): ot (OT millionaires, the default: "
                             "the fewest bytes) or gc (each layer, with the truncation before it, one garbled "
                             "circuit: two message flights per layer, about 10-50x the bytes; for single queries "
                             "and small batches over high-latency links)")

    def common(sp, timeout=True):
        sp.add_argument("--json", action="store_true", help=JSON_HELP)
        if timeout:
            sp.add_argument("--timeout", type=_seconds, default=120.0, help="seconds to wait for the peer (default 120)")
            sp.add_argument("--insecure", action="store_true",
                            help="allow a plaintext channel to a non-loopback address (otherwise CurveZMQ is required)")

    d = sub.add_parser("demo", help="run both parties locally on the shipped MNIST model and print results and costs",
                       description="Both parties locally: P0 serves the shipped LeNet-style MNIST model, P1 "
                                   "validates it on held-out digits; prints plaintext and secure accuracy and costs.")
    common(d, timeout=False)
    d.add_argument("--samples", type=_positive_int, default=100,
                   help="validation digits to use (default 100; more than the 500 shipped is clamped, with a note)")
    d.add_argument("--batch", type=_positive_int, default=50, help="batch size (default 50)")
    d.add_argument("--frac-bits", type=_int_in(0, 30), default=16, help="fixed-point fractional bits, 0..30 (default 16)")
    engines(d)
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("serve", help="P0: serve an ONNX model to clients (weights never leave)",
                       description="P0: load an ONNX model, then serve query/validate sessions one at a time.")
    common(s)
    s.add_argument("--model", required=True, help="ONNX model file")
    engines(s)
    s.add_argument("--listen", required=True, help="address to bind, e.g. tcp://0.0.0.0:5555")
    s.add_argument("--allow-logits", action="store_true",
                   help="let clients learn the logits, not only the class (use with --trunc faithful: local "
                        "truncation errors in opened logits depend on the client's shares)")
    s.add_argument("--allow-confusion", action="store_true",
                   help="agree to reveal the confusion matrix when a validating client asks for it")
    s.add_argument("--frac-bits", type=_int_in(0, 30), default=None,
                   help="fixed-point fractional bits, 0..30 (default 16, or the one --calibrate picks)")
    s.add_argument("--output-name", default=None,
                   help="graph output to compute when the model has several floating-point outputs (by default "
                        "the only floating-point one, e.g. an skl2onnx classifier's probabilities: a ZipMap output "
                        "stands for its probability tensor, a class-label output classes[argmax] for its scores "
                        "and supplies the class labels)")
    s.add_argument("--act-bits", type=_int_in(2, 64), default=None,
                   help="public bound on the bits of the fixed-point activations compared in ReLU/max-pool/argmax "
                        "(default 64: always exact; fewer is cheaper but wrong if an activation does not fit)")
    s.add_argument("--curve-key", default=None, metavar="FILE",
                   help="encrypt and authenticate with CurveZMQ using this key pair (from 'keygen'); "
                        "clients then need --server-key with its public key")
    s.add_argument("--allow-client", action="append", default=None, metavar="PUBKEY",
                   help="accept only clients with this CurveZMQ public key (repeatable; needs --curve-key)")
    s.add_argument("--sessions", type=_int_in(0, 1 << 62), default=0,
                   help="stop after this many completed sessions (default 0: forever)")
    s.add_argument("--allow", choices=("query", "validate", "both"), default="both",
                   help="which requests to answer: per-sample queries, validations (aggregate accuracy only), "
                        "or both (default); see DESIGN.md, threat model")
    s.add_argument("--min-samples", type=_int_in(1, 1 << 22), default=1,
                   help="fewest samples a validation may have, and fewest a confusion-matrix cell must hold to "
                        "be revealed (smaller cells are opened as -1); default 1")
    s.add_argument("--max-batch", type=_int_in(1, 4096), default=4096,
                   help="largest batch a client may ask for (default 4096)")
    s.add_argument("--memory-budget", type=_int_in(1, 1 << 40), default=None, metavar="MiB",
                   help="refuse requests whose batches would need more than this (estimated) memory per session")
    s.add_argument("--error-bound", default=None, metavar="X.npy",
                   help="print the fixed-point error bound of the logits on these sample inputs (the owner's own "
                        "data; see ezprotocols.nn.error_bound) before serving")
    s.add_argument("--conv-pack", choices=("off", "auto", "bytes"), default="auto",
                   help="HE convolutions: pack the results of the channel-interleaved encoding where the bytes "
                        "saved outweigh the extra compute at 100 Mbit/s (auto, default), wherever it saves bytes "
                        "(bytes), or never (off); published to clients")
    s.add_argument("--stage-bytes", type=_int_in(0, 1 << 40), default=None, metavar="BYTES",
                   help="with --compare ot: run a non-linear layer as one garbled circuit (2 message runs) when its "
                        "garbled bytes are at most BYTES per message run it saves (default 131072: a 100 Mbit/s "
                        "link with a 10 ms round trip; 0: never; raise it for links with a long round trip); "
                        "published to clients")
    s.add_argument("--trunc", choices=("local", "faithful"), default="local",
                   help="truncation of fixed-point products: local (no communication; fails with a small "
                        "probability, printed with --error-bound) or faithful (exact, through OT; more traffic)")
    s.add_argument("--input-range", type=float, default=None, metavar="R",
                   help="publish |x| <= R as the input range the model was checked on; clients refuse inputs "
                        "outside it (default: the largest |x| of --error-bound's samples, else none)")
    s.add_argument("--workers", type=_int_in(1, 1 << 16), default=1,
                   help="serve this many sessions concurrently on the one listening address (default 1; clients "
                        "beyond that wait in --queue; needs a tcp:// address when above 1)")
    s.add_argument("--single-port", action="store_true",
                   help="run every session on the listening connection itself, one at a time (waiting clients "
                        "retry their connect), instead of redirecting it to an ephemeral port: for a model owner "
                        "reachable through one forwarded port or a TCP proxy only (with --workers 1)")
    s.add_argument("--queue", type=_int_in(0, 1 << 16), default=8,
                   help="while every worker is busy, let up to this many clients wait (served in order); a client "
                        "beyond that is told at once that the model owner is busy (default 8; 0: refuse at once; "
                        "tcp:// addresses only: on ipc/inproc clients wait in their connect retry)")
    s.add_argument("--calibrate", default=None, metavar="X.npy",
                   help="measure the fixed-point error on these samples (your own data) for several precisions, "
                        "report the worst error, the decision margins and the worst-case bound, and serve with the "
                        "picked --frac-bits/--act-bits (unless given explicitly)")
    s.add_argument("--shard-state", default=None, metavar="DIR",
                   help="keep the shares of sharded validations in this directory (default: in memory), so a "
                        "restarted server can still open them")
    s.add_argument("--accept-timeout", type=_seconds, default=24 * 3600.0,
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
                   help=".npy file: N labels (class indices, or the model's class labels when it declares them); "
                        "for a multi-label model (a sigmoid over K findings) an (N, K) array of 0/1")
    v.add_argument("--metrics", type=_metrics, default=("accuracy",), metavar="LIST",
                   help="comma-separated: accuracy (always), auroc (ROC at --thresholds points, per output; "
                        "binary or multi-label models), confusion (same as --confusion)")
    v.add_argument("--thresholds", type=_positive_int, default=100,
                   help="ROC thresholds for auroc (default 100; at most 4096)")
    v.add_argument("--workers", type=_positive_int, default=1,
                   help="run the validation as shards on this many Dask workers (a local cluster; the model owner "
                        "runs serve --workers); each shard's counts stay secret-shared and only the total is "
                        "opened, once")
    v.add_argument("--shards", type=_positive_int, default=None,
                   help="number of shards (default: the number of workers)")
    v.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing Dask scheduler (e.g. tcp://host:8786) instead of a local cluster; its workers "
                        "read --data/--labels at the same paths and connect to --connect themselves")
    v.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="sharded runs: record finished shards (your shares only) here; rerunning the same "
                        "validation resumes from it")
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
    from ..errors import EzpError
    argv = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_errors = "--json" in argv
    args = build_parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        return args.func(args)
    except CliError as e:
        report_error(as_json, str(e), e.kind)
        return e.code
    except KeyboardInterrupt:
        report_error(as_json, "interrupted", "interrupted")
        return EXIT_INTERRUPTED
    except (EzpError, PermissionError, ValueError, OSError) as e:
        report_error(as_json, f"{type(e).__name__}: {e}", type(e).__name__)
        return EXIT_FAIL

