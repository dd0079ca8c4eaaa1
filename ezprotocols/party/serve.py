"""``serve`` (P0, the model owner): load an ONNX model, then serve query/validate
sessions one at a time; the weights never leave this process."""
from __future__ import annotations

import json
import os
import sys
import time

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


def _await_close(ch, wait: float = 5.0) -> None:
    """Let the client close first, so that its closing frame is not delivered to the
    next listener bound on the same address (ZeroMQ reconnects a PAIR socket)."""
    from ..errors import EzpError
    save, ch.timeout = ch.timeout, wait
    try:
        ch.recv_bytes("nn.bye", max_nbytes=0)
    except EzpError:
        pass
    finally:
        ch.timeout = save


def cmd_serve(args) -> int:
    import zmq

    from .. import net
    from ..errors import EzpError, PeerTimeout
    from ..errors import peer_text
    from ..nn.secure import ServePolicy, serve_session
    from ..session import Session
    if args.input_range is not None and not (np.isfinite(args.input_range) and args.input_range > 0):
        raise CliError("--input-range must be a finite number > 0")
    keypair = read_keypair(args.curve_key)
    if args.allow_client and keypair is None:
        raise CliError("--allow-client needs --curve-key")
    check_address(args.listen, "--listen", args.insecure, keypair is not None)
    policy = ServePolicy(allow=("query", "validate") if args.allow == "both" else (args.allow,),
                         min_samples=args.min_samples, max_batch=args.max_batch,
                         memory_bytes=None if args.memory_budget is None else args.memory_budget << 20)
    plan = _load_plan(args.model, args.frac_bits, args.output_name, args.act_bits)
    plan.trunc = args.trunc
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
                res = serve_session(s, plan, allow_logits=args.allow_logits, allow_confusion=args.allow_confusion,
                                    policy=policy)
                _await_close(s.channel)
        except KeyboardInterrupt:
            raise
        except Exception as e:   # noqa: BLE001 - one session's failure (MemoryError included) ends that session only
            if not ch.closed:
                ch.abort(f"{type(e).__name__} (details withheld)")
            # the text may quote the peer: escaped and bounded
            print(f"session failed: {type(e).__name__}: {peer_text(str(e), 300)}", file=sys.stderr)
            if args.json:
                print(json.dumps({"session_failed": type(e).__name__, "message": peer_text(str(e), 300)}),
                      flush=True)
            del e
            time.sleep(1.5)       # let the failed client's socket go (it would reconnect to the next listener)
            continue
        served += 1
        if args.json:
            print(json.dumps(jsonable(res)), flush=True)
        else:
            line = f"session {served}: {res['mode']} of {res['samples']} samples"
            if res["mode"] == "validate":
                line += f", accuracy {res['accuracy'] * 100:.2f}% ({res['correct']}/{res['samples']})"
            print(line + f", {res['total']['seconds']:.2f} s, {fmt_bytes(res['total']['bytes'])}", flush=True)
    return 0

