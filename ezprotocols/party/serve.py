"""``serve`` (P0, the model owner): load an ONNX model, then serve query/validate
sessions (``--workers`` at once, see :mod:`ezprotocols.nn.serving`); the weights
never leave this process."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from .common import EXIT_FAIL, CliError, check_address, check_samples, fmt_bytes, jsonable, load_npy, read_keypair


def _load_plan(path, frac_bits, output=None, act_bits=64):
    from ..nn import load_onnx
    if not os.path.isfile(path):
        raise CliError(f"model file not found: {path}", kind="model")
    try:
        return load_onnx(path, frac_bits=frac_bits, output=output, act_bits=act_bits)
    except KeyboardInterrupt:
        raise
    except Exception as e:               # any load failure: not ONNX, unsupported op, bad shapes...
        raise CliError(f"cannot load model {path}: {e}", kind=type(e).__name__) from None


_TRUNCATED = ("matmul", "conv", "mul", "mul_const", "affine", "avgpool", "gap", "reduce")


def _trunc_failure(plan, xs) -> float:
    """Per-inference probability that the local (SecureML) truncation fails, at most
    |value| / 2^64 per truncated value (ring units), summed over the truncations of
    one sample, with |value| the largest activation on the owner's samples."""
    from ..nn.plaintext import _execute, encode
    vals = _execute(plan, encode(np.asarray(xs, dtype=np.float64).reshape((-1,) + tuple(plan.input_shape)),
                                  plan.frac_bits), True)
    top = max(float(np.max(np.abs(v.astype(np.float64)))) for v in vals) * 2.0 ** plan.frac_bits
    count = sum(int(np.prod(op.shape)) for op in plan.ops if op.kind in _TRUNCATED)
    if plan.trunc == "faithful":
        return 0.0                             # exact for |x| < 2^62, checked by error_bound's overflow test
    return min(1.0, count * top / 2.0 ** 64)


def logits_warning(allow_logits: bool, trunc: str) -> str | None:
    """The warning ``serve`` prints when clients may see logits computed with a
    probabilistic truncation (see :mod:`ezprotocols.arith.trunc`, "Opening a truncated
    value"), else None."""
    if allow_logits and trunc in ("local", "onebit"):
        return (f"warning: --allow-logits with --trunc {trunc}: the opened logits carry truncation errors "
                "that depend on the client's own shares and on the discarded low bits of the products, "
                "so each query leaks a little more than the logits; use --trunc faithful")
    return None


def _calibrate(args):
    """serve --calibrate: measure, report, and pick the precision (explicit flags win)."""
    from ..nn.calibrate import calibrate
    xs = load_npy(args.calibrate, "calibration samples")
    check_samples(xs, "calibration samples")
    try:
        rep = calibrate(args.model, xs, output=args.output_name)
    except (ValueError, OverflowError) as e:
        raise CliError(f"calibration on {args.calibrate}: {e}", kind="input") from None
    if args.json:
        print(json.dumps({"calibration": rep}), flush=True)
    else:
        print(f"calibration on {rep['samples']} samples ({rep['decisions']} decisions): smallest decision margin "
              f"{rep['min_margin']:.3g} (median {rep['median_margin']:.3g})", file=sys.stderr)
        m = np.asarray(rep["margins"])
        low = np.argsort(m)[:5]
        print("  smallest margins (decision index: margin): "
              + ", ".join(f"{int(i)}: {m[i]:.3g}" for i in low), file=sys.stderr)
        print(f"  {'frac_bits':>9} {'max error':>10} {'median':>10} {'flipped':>8} {'act_bits':>8} {'bound':>10}",
              file=sys.stderr)
        for r in rep["candidates"]:
            if "max_error" in r:
                print(f"  {r['frac_bits']:>9} {r['max_error']:>10.3g} {r['median_error']:>10.3g} "
                      f"{r['flipped_decisions']:>8} {r['act_bits']:>8} {r.get('error_bound', float('nan')):>10.3g}",
                      file=sys.stderr)
            else:
                print(f"  {r['frac_bits']:>9} fails: {r['error']}", file=sys.stderr)
        print(f"  picked frac_bits {rep['frac_bits']}, act_bits {rep['act_bits']} "
              f"({'no decision flipped, error below a quarter of the smallest margin' if rep['safe'] else 'WARNING: no candidate keeps every decision'}); "
              f"{rep['note']}", file=sys.stderr)
    return rep


def cmd_serve(args) -> int:
    import zmq

    from ..errors import PeerTimeout, peer_text
    from ..nn.secure import ServePolicy, serve_session
    from ..nn.serving import serve_forever
    from ..nn.shards import ShardStore
    from ..session import Session
    if args.input_range is not None and not (np.isfinite(args.input_range) and args.input_range > 0):
        raise CliError("--input-range must be a finite number > 0")
    keypair = read_keypair(args.curve_key)
    if args.allow_client and keypair is None:
        raise CliError("--allow-client needs --curve-key")
    check_address(args.listen, "--listen", args.insecure, keypair is not None)
    if args.workers > 1 and not args.listen.startswith("tcp://"):
        raise CliError("--workers above 1 needs a tcp:// --listen address")
    policy = ServePolicy(allow=("query", "validate") if args.allow == "both" else (args.allow,),
                         min_samples=args.min_samples, max_batch=args.max_batch,
                         memory_bytes=None if args.memory_budget is None else args.memory_budget << 20)
    frac, act = args.frac_bits, args.act_bits
    if args.calibrate:
        if not os.path.isfile(args.model):
            raise CliError(f"model file not found: {args.model}", kind="model")
        rep = _calibrate(args)
        frac = rep["frac_bits"] if frac is None else frac
        act = rep["act_bits"] if act is None else act
    frac = 16 if frac is None else frac
    act = 64 if act is None else act
    plan = _load_plan(args.model, frac, args.output_name, act)
    plan.trunc = args.trunc
    plan.stage_bytes = args.stage_bytes
    plan.conv_pack = args.conv_pack
    note = logits_warning(args.allow_logits, plan.trunc)
    if note:
        print(note, file=sys.stderr)
    if args.error_bound:
        from ..nn import error_bound
        xs = load_npy(args.error_bound, "samples")
        check_samples(xs, "samples")
        try:
            b = error_bound(plan, xs)
        except (ValueError, OverflowError) as e:
            raise CliError(f"error bound on {args.error_bound}: {e}", kind="input") from None
        eb = {"samples": int(len(b)), "max": float(b.max()), "median": float(np.median(b)),
              "input_range": float(np.max(np.abs(xs))),
              "trunc_failure_per_inference": _trunc_failure(plan, xs)}
        if args.input_range is None:           # publish the range the bound was checked on
            args.input_range = eb["input_range"]
        if args.json:
            print(json.dumps({"error_bound": eb}), flush=True)
        else:
            print(f"fixed-point error bound of the logits on {eb['samples']} samples: max {eb['max']:.3g}, "
                  f"median {eb['median']:.3g} (rigorous; typical errors are far smaller) for inputs within "
                  f"+-{eb['input_range']:.6g}; it holds except with probability at most "
                  f"{eb['trunc_failure_per_inference']:.2g} per inference (local truncation)", file=sys.stderr)
    if args.input_range is not None:
        from ..nn.plaintext import encode
        plan.input_bound = int(encode(np.array([args.input_range]), plan.frac_bits)[0])
        try:                                   # the range itself must not overflow the network
            from ..nn import error_bound
            error_bound(plan, np.full((1,) + tuple(plan.input_shape), args.input_range))
        except OverflowError as e:
            raise CliError(f"--input-range {args.input_range:g}: {e}", kind="input") from None
    store = ShardStore(args.shard_state)
    if not args.json:
        print(f"serving {args.model} ({len(plan.ops)} secure ops, input {plan.input_shape}) on {args.listen}"
              + (f" with {args.workers} workers" if args.workers > 1 else ""), file=sys.stderr)
    served = [0]

    def handle(ch):
        # the model owner chooses the engines; the client adopts them (names only, all secure)
        with Session(0, ch, frac_bits=plan.frac_bits, ot=args.ot, linear=args.linear, compare=args.compare,
                     backends_from=0) as s:
            return serve_session(s, plan, allow_logits=args.allow_logits, allow_confusion=args.allow_confusion,
                                 shards=store, policy=policy)

    def on_result(res):
        served[0] += 1
        if args.json:
            print(json.dumps(jsonable(res)), flush=True)
            return
        line = f"session {served[0]}: {res['mode']} of {res['samples']} samples"
        if "shard" in res:
            line += f" (shard {res['shard']}, shares kept)"
        elif res["mode"] == "validate":
            line += f", accuracy {res['accuracy'] * 100:.2f}% ({res['correct']})"
            if res.get("auroc"):
                line += ", AUROC " + " ".join("-" if a is None else f"{a:.3f}" for a in res["auroc"])
        print(line + f", {res['total']['seconds']:.2f} s, {fmt_bytes(res['total']['bytes'])}", flush=True)

    def on_error(e):
        # one session's failure (MemoryError included) ends that session only; the text may quote the peer
        print(f"session failed: {type(e).__name__}: {peer_text(str(e), 300)}", file=sys.stderr)
        if args.json:
            print(json.dumps({"session_failed": type(e).__name__, "message": peer_text(str(e), 300)}), flush=True)

    try:
        serve_forever(args.listen, handle, workers=args.workers, queue=args.queue, sessions=args.sessions,
                      timeout=args.timeout,
                      accept_timeout=args.accept_timeout, curve_keypair=keypair, allowed_clients=args.allow_client,
                      on_result=on_result, on_error=on_error, single_port=args.single_port)
    except PeerTimeout as e:
        raise CliError(str(e), EXIT_FAIL, "PeerTimeout") from None
    except (OSError, ValueError, zmq.ZMQError) as e:
        raise CliError(f"cannot listen on {args.listen}: {e}", EXIT_FAIL, "listen") from None
    return 0
