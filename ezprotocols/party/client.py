"""``query`` and ``validate`` (P1, the data owner): connect to a model owner and run
secure inference (learn the predicted classes) or validation (learn the accuracy)."""
from __future__ import annotations

import json
import time

import numpy as np

from .common import (CliError, check_address, check_samples, check_writable, fmt_bytes, jsonable, load_npy,
                     print_costs, read_keypair)


def _preflight(args) -> tuple | None:
    """Everything the user gave, checked before connecting: the address (and CurveZMQ
    for a non-loopback one), the server key, the key file.  Returns the key pair."""
    if args.server_key is not None and len(args.server_key) != 40:
        raise CliError("--server-key must be the model owner's 40-character CurveZMQ public key", kind="input")
    keypair = read_keypair(args.curve_key)
    if keypair is not None and args.server_key is None:
        raise CliError("--curve-key needs --server-key", kind="usage")
    check_address(args.connect, "--connect", args.insecure, args.server_key is not None)
    return keypair


def _client(args, fn, keypair, attempts: int = 3):
    """Connect and run ``fn(session)``; a connection lost while still receiving the
    architecture (nothing of ours was sent yet) is retried.  A ValueError of ours
    after connecting (our input does not fit the model) is a usage error (exit 2)."""
    from .. import net
    from ..errors import PeerGone
    from ..session import Session
    for i in range(attempts):
        ch = net.connect(args.connect, timeout=args.timeout, curve_server_key=args.server_key,
                         curve_keypair=keypair)
        try:
            with Session(1, ch) as s:
                return fn(s)
        except PeerGone as e:
            if i == attempts - 1 or not str(e).startswith(("nn.arch", "setup")):
                raise
            time.sleep(0.2)
        except ValueError as e:
            raise CliError(str(e), kind="input") from None


def cmd_query(args) -> int:
    from ..nn.secure import query_session
    keypair = _preflight(args)
    check_writable(args.output, "--output")
    x = load_npy(args.input, "input")
    check_samples(x, "input")
    res = _client(args, lambda s: query_session(s, x, want_logits=args.logits, batch=args.batch,
                                                  progress=not args.json), keypair)
    pred = res.get("labels", res["classes"])
    out = res.get("output", pred) if args.logits else pred
    if args.output:
        np.save(args.output, np.asarray(out))
    if args.json:
        print(json.dumps(jsonable(res)))
    else:
        print("classes  : " + np.array2string(np.asarray(res["classes"]), threshold=50))
        if "labels" in res:
            print("labels   : " + np.array2string(np.asarray(res["labels"]), threshold=50))
        if args.output:
            print(f"saved    : {args.output}")
        print_costs(res)
    return 0


def cmd_validate(args) -> int:
    from ..nn.secure import validate_session
    keypair = _preflight(args)
    x = load_npy(args.data, "data")
    y = load_npy(args.labels, "labels")
    check_samples(x, "data")
    if y.ndim != 1 or len(y) != len(x):
        raise CliError(f"labels must be one per sample: {len(x)} samples, labels of shape {y.shape}",
                       kind="input")
    res = _client(args, lambda s: validate_session(s, x, y, confusion=args.confusion, batch=args.batch,
                                                     progress=not args.json), keypair)
    if args.json:
        print(json.dumps(jsonable(res)))
    else:
        print(f"accuracy : {res['accuracy'] * 100:.2f}% ({res['correct']}/{res['samples']})")
        if "confusion" in res:
            print("confusion (rows: true class, columns: predicted):")
            for row in res["confusion"]:
                print("  " + " ".join(f"{v:5d}" for v in row))
        elif args.confusion:
            print("confusion: refused by the model owner")
        print(f"time     : {res['total']['seconds']:.2f} s, {fmt_bytes(res['total']['bytes'])}")
        print_costs(res)
    return 0

