"""Reference implementations measured in the same run as ezprotocols' figures.

SPU lives in its own venv (it pins its own jax/numpy), so the figure scripts, which run
in the ezprotocols venv, call it through a subprocess:

    from bench.reference import run_spu
    ref = run_spu("relu_1e5")          # dict (see spu_ref.py) or None if SPU is unavailable
    if ref:
        print(ref["time_s"], ref["bytes"])

The SPU interpreter is taken from the environment variable ``EZP_SPU_PYTHON``
(default ``/work/refs/spu-venv/bin/python``). See README.md in this directory for the
setup, the SPU configuration and the numbers measured on this machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

__all__ = ["SPU_WORKLOADS", "spu_python", "run_spu"]

DEFAULT_SPU_PYTHON = "/work/refs/spu-venv/bin/python"
SPU_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spu_ref.py")

# Keep in sync with spu_ref.WORKLOADS (``python spu_ref.py --list``).
SPU_WORKLOADS = (
    "relu_1e5", "relu_1e6", "relu_1e5_semi2k", "mul_1e6", "matmul_ss", "matmul_p0w",
    "argmax_1000x10", "maxpool_16x24x24", "mlp_b1", "mlp_b64", "lenet_b1", "lenet_b64",
    "densenet_mini", "densenet121_32", "densenet121_224",
)


def spu_python() -> str:
    """Path of the SPU venv's interpreter (``EZP_SPU_PYTHON`` or the default)."""
    return os.environ.get("EZP_SPU_PYTHON") or DEFAULT_SPU_PYTHON


def run_spu(workload: str, timeout: float = 900.0, *, reps: int = 3, mode: str = "procs",
            fxp_bits: int = 0, shared_inputs: bool = False, quiet: bool = False) -> dict | None:
    """Run one SPU reference workload in a subprocess and return its result dict.

    Keys of the dict (all from one invocation of ``spu_ref.py WORKLOAD --json``):
    ``time_s`` (median wall time of ``reps`` warm runs, both parties), ``bytes`` (median
    total payload bytes, both directions), ``messages``, ``times_s``, ``bytes_runs``,
    ``first_run_s``/``first_run_bytes`` (the warm-up run, including one-time OT/HE setup),
    ``protocol``, ``fxp_fraction_bits``, ``mode``, ``correct`` and the ``config`` used.

    Returns None (after printing why on stderr unless ``quiet``) if the SPU interpreter
    is missing, the run fails or times out, or its output is not the expected JSON.
    """
    if workload not in SPU_WORKLOADS:
        raise ValueError(f"unknown SPU workload {workload!r}; known: {', '.join(SPU_WORKLOADS)}")

    def fail(msg):
        if not quiet:
            print(f"SPU reference {workload} unavailable: {msg}", file=sys.stderr)
        return None

    py = spu_python()
    if not (os.path.isfile(py) and os.access(py, os.X_OK)):
        return fail(f"no SPU interpreter at {py} (set EZP_SPU_PYTHON; setup in bench/reference/README.md)")
    cmd = [py, SPU_SCRIPT, workload, "--json", "--reps", str(int(reps)), "--mode", mode,
           "--timeout", str(float(timeout))]
    if fxp_bits:
        cmd += ["--fxp-bits", str(int(fxp_bits))]
    if shared_inputs:
        cmd.append("--shared-inputs")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)          # keep the ezprotocols venv's paths out of SPU's venv
    env.pop("PYTHONHOME", None)
    try:
        # a little slack over the script's own timeout, which kills its party processes
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120, env=env)
    except subprocess.TimeoutExpired:
        return fail(f"timed out after {timeout:.0f} s")
    except OSError as e:
        return fail(str(e))
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        return fail(f"exit code {proc.returncode}\n{tail}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        res = json.loads(lines[-1])
    except (IndexError, ValueError):
        return fail(f"unexpected output: {proc.stdout[-500:]!r}")
    if not isinstance(res, dict) or res.get("workload") != workload:
        return fail(f"unexpected result: {str(res)[:300]}")
    return res
