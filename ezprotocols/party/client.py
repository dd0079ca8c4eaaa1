"""``query`` and ``validate`` (P1, the data owner): connect to a model owner and run
secure inference (learn the predicted classes) or validation (learn the accuracy)."""
from __future__ import annotations

import json
import time

import numpy as np

from .common import CliError, check_samples, fmt_bytes, jsonable, load_npy, print_costs, read_keypair


def _client(args, fn, attempts: int = 3):
    """Connect and run ``fn(session)``; a connection lost while still receiving the
    architecture (nothing of ours was sent yet) is retried."""
    from .. import net
    from ..errors import PeerGone
    from ..session import Session
    for i in range(attempts):
        ch = net.connect(args.connect, timeout=args.timeout, curve_server_key=args.server_key,
                         curve_keypair=read_keypair(args.curve_key))
        try:
            with Session(1, ch) as s:
                return fn(s)
        except PeerGone as e:
            if i == attempts - 1 or not str(e).startswith(("nn.arch", "setup")):
                raise
            time.sleep(0.2)


def cmd_query(args) -> int:
    from ..nn.secure import query_session
    x = load_npy(args.input, "input")
    check_samples(x, "input")
    res = _client(args, lambda s: query_session(s, x, want_logits=args.logits, batch=args.batch,
                                                  progress=not args.json))
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
    x = load_npy(args.data, "data")
    y = load_npy(args.labels, "labels")
    check_samples(x, "data")
    if y.ndim != 1 or len(y) != len(x):
        raise CliError(f"labels must be one per sample: {len(x)} samples, labels of shape {y.shape}",
                       kind="input")
    res = _client(args, lambda s: validate_session(s, x, y, confusion=args.confusion, batch=args.batch,
                                                     progress=not args.json))
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

