"""``demo``: both parties locally on the shipped LeNet-style MNIST model; prints
plaintext and secure accuracy, time, bytes and rounds."""
from __future__ import annotations

import json
import sys
import time

from ..runner import run_pair
from .common import fmt_bytes, print_costs


def _demo_secure(args):
    from ..nn import demo_model_path, demo_validation_set, load_onnx, predict_classes, run_plaintext
    from ..nn.secure import serve_session, validate_session
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
                      timeout=max(600.0, 5.0 * len(y)), frac_bits=args.frac_bits,
                      ot=args.ot, linear=args.linear, compare=args.compare)
    return {"model": "LeNet-5 style CNN, MNIST (ezprotocols/nn/data/lenet_mnist.onnx)",
            "samples": int(len(y)), "batch": r1["batch"],
            "plaintext": {"correct": plain_correct, "accuracy": plain_correct / len(y), "seconds": t_plain},
            "secure": {"correct": r1["correct"], "accuracy": r1["accuracy"], "agree": r0["correct"] == r1["correct"],
                       "confusion": r1.get("confusion"),
                       "offline": r1["offline"], "online": r1["online"], "per_op": r1["per_op"],
                       "total": r1["total"]},
            "engines": {"ot": args.ot, "linear": args.linear, "compare": args.compare},
            "triples": "no trusted party"}


def cmd_demo(args) -> int:
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
    print(f"{'traffic':9}  {'-':>12}  {fmt_bytes(s['total']['bytes']):>12}")
    print_costs(s)
    e = res["engines"]
    print(f"engines  : ot={e['ot']}, linear={e['linear']}, compare={e['compare']}")
    print("both parties learned only the accuracy and the confusion matrix (both agreed); no trusted party")
    return 0

