"""What the commands share: exit codes, the error type, output formatting, input checks."""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

#: Exit codes: 1 a failed session or protocol error, 2 bad usage or input (model,
#: files, arguments), 130 interrupted (Ctrl-C).
EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

JSON_HELP = ("machine-readable output: one JSON object on stdout; on failure {\"error\": message, "
             "\"type\": kind} on stdout (and the message on stderr) with a non-zero exit code")


class CliError(Exception):
    """A failure reported as ``error: message`` (or JSON with --json), exit ``code``."""

    def __init__(self, msg, code=EXIT_USAGE, kind="usage"):
        super().__init__(msg)
        self.code, self.kind = code, kind


def report_error(args_json: bool, msg: str, kind: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    if args_json:
        print(json.dumps({"error": msg, "type": kind}), flush=True)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def print_costs(res, out=sys.stdout):
    """The closing summary: time, bytes and rounds, offline and online, per op."""
    off, on = res["offline"], res["online"]
    print(f"offline  : {off['seconds']:.2f} s, {fmt_bytes(off['bytes'])}, {off['rounds']} rounds", file=out)
    print(f"online   : {on['seconds']:.2f} s, {fmt_bytes(on['bytes'])}, {on['rounds']} rounds", file=out)
    if res.get("per_op"):
        print("online per op:", file=out)
        for k, v in sorted(res["per_op"].items(), key=lambda kv: -kv[1]["seconds"]):
            print(f"  {k:<10} {v['seconds']:7.3f} s  {fmt_bytes(v['bytes']):>11}  {v['rounds']:5d} rounds", file=out)


def jsonable(res):
    out = {}
    for k, v in res.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


#: largest .npy file loaded (its header is checked against this before any allocation)
MAX_NPY_BYTES = 8 << 30


def load_npy(path, what, max_bytes: int = MAX_NPY_BYTES):
    """Load a .npy file after checking its header: the shape it claims must match the
    file's size and stay under ``max_bytes`` (a forged header never allocates)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=1 << 16)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=1 << 16)
            if dtype.hasobject:
                raise ValueError("object arrays are not accepted")
            need = math.prod(shape) * dtype.itemsize
            have = os.fstat(f.fileno()).st_size - f.tell()
            if need > max_bytes:
                raise ValueError(f"its header claims shape {shape} ({need} bytes), more than the {max_bytes} allowed")
            if need > have:
                raise ValueError(f"its header claims shape {shape} ({need} bytes) but the file holds {have}")
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, MemoryError, TypeError) as e:
        raise CliError(f"cannot read {what} {path}: {e}", kind="input") from None


def check_writable(path, what: str = "output") -> None:
    """Fail now, not after a whole session, when ``path`` cannot be written."""
    if path is None:
        return
    d = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise CliError(f"{what} {path} is a directory", kind="input")
    if os.path.exists(path):
        ok = os.access(path, os.W_OK)
    else:
        ok = os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK)
    if not ok:
        raise CliError(f"cannot write {what} {path} (no such directory or no permission)", kind="input")


def check_address(address: str, what: str, insecure: bool, encrypted: bool) -> None:
    """The address is well formed; a non-loopback one needs CurveZMQ unless ``--insecure``
    (then a warning, once)."""
    from .. import net
    try:
        net.check_address(address, what)
    except ValueError as e:
        raise CliError(str(e), kind="usage") from None
    if not encrypted and not net.is_loopback(address):
        if not insecure:
            raise CliError(f"{address} leaves this machine: an eavesdropper would read the results and anyone "
                           "could pose as the model owner; use CurveZMQ (serve --curve-key, clients "
                           "--server-key) or pass --insecure", kind="insecure")
        print(f"warning: plaintext channel on {address} (--insecure): no encryption, no authentication",
              file=sys.stderr)


def check_samples(x, what):
    """Local checks before connecting (the model's shape is only known after)."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise CliError(f"{what} must be a numeric array, not {getattr(x, 'dtype', type(x))}", kind="input")
    if x.ndim == 0 or x.size == 0:
        raise CliError(f"{what} has no samples (shape {x.shape})", kind="input")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise CliError(f"{what} has non-finite values", kind="input")


def read_keypair(path):
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
        raise CliError(f"cannot read the key file {path}: {e}", kind="input") from None
    return pub.encode(), sec.encode()
