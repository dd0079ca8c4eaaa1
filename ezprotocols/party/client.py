"""``query`` and ``validate`` (P1, the data owner): connect to a model owner and run
secure inference (learn the predicted classes) or validation (learn the accuracy)."""
from __future__ import annotations

import json
import time

import numpy as np

from .common import (EXIT_FAIL, CliError, check_address, check_samples, check_writable, fmt_bytes, jsonable,
                     load_npy, print_costs, read_keypair)


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
    from ..errors import PeerGone, ServerBusy
    from ..nn.serving import open_client
    from ..session import Session
    for i in range(attempts):
        try:
            ch = open_client(args.connect, **_connect_opts(args, keypair))
        except ServerBusy as e:                     # refused at once: every worker busy, the queue full
            raise CliError(str(e), EXIT_FAIL, "ServerBusy") from None
        try:
            with Session(1, ch, backends_from=0) as s:      # engines as the model owner chose them
                return fn(s)
        except PeerGone as e:
            if i == attempts - 1 or not str(e).startswith(("nn.arch", "setup")):
                raise
            time.sleep(0.2)
        except ValueError as e:
            raise CliError(str(e), kind="input") from None


def _connect_opts(args, keypair) -> dict:
    return {"timeout": args.timeout, "curve_server_key": args.server_key, "curve_keypair": keypair}


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


def _check_labels(x, y, T):
    """Local checks before connecting (the model's shape is only known after)."""
    if y.ndim not in (1, 2) or len(y) != len(x):
        raise CliError(f"labels must be one per sample (N,) or one row of 0/1 per sample (N, K): {len(x)} samples, "
                       f"labels of shape {y.shape}", kind="input")
    if y.ndim == 2 and (y.dtype.kind not in "biuf" or not np.all((y == 0) | (y == 1))):
        raise CliError("multi-label labels (N, K) must be 0 or 1", kind="input")
    from ..nn.metrics import MAX_THRESHOLDS
    if not 1 <= T <= MAX_THRESHOLDS:
        raise CliError(f"--thresholds must be in 1..{MAX_THRESHOLDS}, not {T}", kind="usage")


def _check_scheduler(address):
    """An unreachable Dask scheduler is a usage error, found before connecting to the model owner."""
    from ..net import _check_address
    try:
        _check_address(address, "--scheduler")
    except ValueError as e:
        raise CliError(str(e)) from None
    import socket
    import re
    m = re.match(r"^tcp://([^:/]+):(\d+)$", address)
    if m:
        try:
            socket.create_connection((m.group(1), int(m.group(2))), timeout=5).close()
        except OSError as e:
            raise CliError(f"cannot reach the Dask scheduler at {address}: {e}", kind="scheduler") from None


def cmd_validate(args) -> int:
    from ..nn.secure import validate_session
    keypair = _preflight(args)
    x = load_npy(args.data, "data")
    y = load_npy(args.labels, "labels")
    check_samples(x, "data")
    _check_labels(x, y, args.thresholds)
    auroc = "auroc" in args.metrics
    confusion = args.confusion or "confusion" in args.metrics
    sharded = args.workers > 1 or args.scheduler is not None or (args.shards or 1) > 1
    if args.scheduler:
        _check_scheduler(args.scheduler)
    if args.checkpoint and not sharded:
        raise CliError("--checkpoint is for sharded validation (--workers > 1, --shards or --scheduler)")
    if sharded:
        from ..nn.shards import sharded_validate
        res = sharded_validate(args.connect, args.data, args.labels, shards=args.shards or args.workers,
                               workers=args.workers, scheduler=args.scheduler, checkpoint=args.checkpoint,
                               confusion=confusion, auroc=auroc, thresholds=args.thresholds, batch=args.batch,
                               connect=_connect_opts(args, keypair))
    else:
        res = _client(args, lambda s: validate_session(s, x, y, confusion=confusion, batch=args.batch,
                                                         auroc=auroc, thresholds=args.thresholds,
                                                         progress=not args.json), keypair)
    if args.json:
        print(json.dumps(jsonable(res)))
        return 0
    if "accuracy_per_output" in res:
        print(f"accuracy : {res['accuracy'] * 100:.2f}% over {res['outputs']} outputs (per output: "
              + " ".join(f"{a * 100:.1f}%" for a in res["accuracy_per_output"]) + ")")
    else:
        print(f"accuracy : {res['accuracy'] * 100:.2f}% ({res['correct']}/{res['samples']})")
    if "auroc" in res:
        print("AUROC    : " + " ".join("-" if a is None else f"{a:.4f}" for a in res["auroc"])
              + f"  ({args.thresholds} thresholds; approximation within "
              + " ".join(f"{b:.4f}" for b in res["auroc_error_bound"]) + ")")
    if "confusion" in res:
        print("confusion (rows: true class, columns: predicted):")
        for row in res["confusion"]:
            print("  " + " ".join(f"{v:5d}" for v in row))
    elif confusion:
        print("confusion: refused by the model owner (or not defined for a multi-label model)")
    if sharded:
        print(f"shards   : {res['shards']} ({res['resumed']} from the checkpoint)")
    else:
        print(f"time     : {res['total']['seconds']:.2f} s, {fmt_bytes(res['total']['bytes'])}")
        print_costs(res)
    return 0
