"""Reference workloads in SPU 0.9.5 (secretflow/spu), for ezprotocols' figure scripts.

Run with the SPU venv's interpreter (SPU is not installed in the ezprotocols venv):

    /work/refs/spu-venv/bin/python bench/reference/spu_ref.py WORKLOAD [--json]
        [--reps N] [--mode procs|threads] [--fxp-bits F] [--breakdown] [--timeout S]
    /work/refs/spu-venv/bin/python bench/reference/spu_ref.py --list

Every workload runs two SPU parties on this machine. ``--mode procs`` (default): two OS
processes, each with its own SPU runtime, linked by yacl's brpc channel over loopback TCP,
i.e. real two-party execution with real sockets. ``--mode threads``: both parties as
threads of one process over yacl's in-memory link (what ``spu.utils.simulation.Simulator``
does). Byte/message counts come from the yacl link context of each party (SPU prints them
at the end of every run when ``enable_pphlo_profile`` is on: "Link details: total send
bytes ..., send actions ..."); they are the payload bytes of every message, identical in
both modes. SPU does not count rounds; ``messages`` is the number of send actions of both
parties (an upper bound on the rounds).

Timing: one warm-up run (it pays the one-time setup: Ferret/IKNP base OTs, HE key
exchange, lazily built kernels; reported as ``first_run_s``/``first_run_bytes``), then
``--reps`` timed runs; each timed run starts at a link barrier and ends when both parties
hold their outputs; the run's time is the slower party's. Reported ``time_s``/``bytes`` are
medians over the timed runs. JIT/compile time is excluded (``compile_s``). Inputs: shared
inputs are handed to the runtimes already secret-shared (sharing them is not timed);
private inputs (weights of P0, data of P1) are given only to their owner (SPU's
``Priv2k`` values, enabled by ``experimental_enable_colocated_optimization``). Inference
workloads reveal the logits inside the program (``spu.experimental.reveal``, counted);
the other workloads leave the result shared.

Latency: with ``EZP_SPU_DELAY=S`` (``--mode procs``) each party's listening port is fronted
by the shared tools' ``delayproxy.py`` (S seconds one way, both directions), and the peer
connects through it: the same link model as ezprotocols' figures behind that proxy.

The only output on stdout is the result: one JSON object (``--json``) or a short table.
SPU's own log lines go to stderr (parent) or to per-party log files that are parsed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

SPU_VERSION_EXPECTED = "0.9.5"

# --------------------------------------------------------------------------- workloads
# Each builder returns (fn, inputs, reveal_out, protocol, note) where inputs is a list of
# (array, owner) with owner -1 = secret-shared, 0/1 = private to that party.


def _rng(seed=1):
    return np.random.default_rng(seed)   # test data only


def _relu(n, protocol="CHEETAH"):
    import jax.numpy as jnp

    def relu(x):
        return jnp.maximum(x, 0.0)
    x = _rng().standard_normal(n).astype(np.float32)
    return relu, [(x, -1)], False, protocol, f"ReLU on {n} shared fixed-point values"


def _mul(n):
    def mul(x, y):
        return x * y
    r = _rng()
    x = r.standard_normal(n).astype(np.float32)
    y = r.standard_normal(n).astype(np.float32)
    return mul, [(x, -1), (y, -1)], False, "CHEETAH", f"elementwise multiply of {n} shared fixed-point values (with truncation)"


def _matmul(owner_w):
    def matmul(x, w):
        return x @ w
    r = _rng()
    x = r.standard_normal((128, 784)).astype(np.float32)
    w = (r.standard_normal((784, 128)) / 28).astype(np.float32)
    what = "shared by shared" if owner_w < 0 else f"shared x by weights private to P{owner_w}"
    return matmul, [(x, -1), (w, owner_w)], False, "CHEETAH", f"matmul 128x784 by 784x128, {what} (with truncation)"


def _argmax():
    import jax.numpy as jnp

    def argmax(x):
        return jnp.argmax(x, axis=1)
    x = _rng().standard_normal((1000, 10)).astype(np.float32)
    return argmax, [(x, -1)], False, "CHEETAH", "argmax over 10 classes for 1000 shared rows"


def _maxpool():
    def maxpool(x):
        return _maxpool2(x)
    x = _rng().standard_normal((16, 24, 24)).astype(np.float32)
    return maxpool, [(x, -1)], False, "CHEETAH", "maxpool 2x2 stride 2 on a shared 16x24x24 tensor"


def _maxpool2(x):
    """2x2/stride-2 max pooling over the last two axes (jax.lax.reduce_window)."""
    import jax
    import jax.numpy as jnp
    nd = x.ndim
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1,) * (nd - 2) + (2, 2),
                                 (1,) * (nd - 2) + (2, 2), "VALID")


def _he(r, shape, fan_in):
    return (r.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _mlp(batch):
    import jax.numpy as jnp
    from spu.experimental import reveal

    def mlp(x, w1, b1, w2, b2, w3, b3):
        h = jnp.maximum(x @ w1 + b1, 0.0)
        h = jnp.maximum(h @ w2 + b2, 0.0)
        return reveal(h @ w3 + b3)
    r = _rng()
    x = r.random((batch, 784)).astype(np.float32)
    ws = [(_he(r, (784, 128), 784), 0), ((r.standard_normal(128) * 0.1).astype(np.float32), 0),
          (_he(r, (128, 128), 128), 0), ((r.standard_normal(128) * 0.1).astype(np.float32), 0),
          (_he(r, (128, 10), 128), 0), ((r.standard_normal(10) * 0.1).astype(np.float32), 0)]
    return (mlp, [(x, 1)] + ws, True, "CHEETAH",
            f"MLP 784-128-128-10 (ReLU), batch {batch}; weights private to P0, input private to P1, logits revealed")


def _lenet(batch):
    import jax
    import jax.numpy as jnp
    from spu.experimental import reveal

    dn = ("NHWC", "HWIO", "NHWC")

    def conv(x, w, b):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dn) + b

    def lenet(x, c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b):
        h = _maxpool2_nhwc(jnp.maximum(conv(x, c1w, c1b), 0.0))      # 28 -> 24 -> 12, 6 ch
        h = _maxpool2_nhwc(jnp.maximum(conv(h, c2w, c2b), 0.0))      # 12 -> 8 -> 4, 16 ch
        h = h.reshape(h.shape[0], -1)                                 # 256
        h = jnp.maximum(h @ f1w + f1b, 0.0)
        return reveal(h @ f2w + f2b)
    r = _rng()
    x = r.random((batch, 28, 28, 1)).astype(np.float32)

    def bias(n):
        return ((r.standard_normal(n)) * 0.1).astype(np.float32)
    ws = [(_he(r, (5, 5, 1, 6), 25), 0), (bias(6), 0),
          (_he(r, (5, 5, 6, 16), 150), 0), (bias(16), 0),
          (_he(r, (256, 100), 256), 0), (bias(100), 0),
          (_he(r, (100, 10), 100), 0), (bias(10), 0)]
    return (lenet, [(x, 1)] + ws, True, "CHEETAH",
            f"LeNet (conv5x5 1->6, relu, maxpool2, conv5x5 6->16, relu, maxpool2, fc 256->100, relu, fc 100->10), "
            f"batch {batch}, NHWC; weights private to P0, input private to P1, logits revealed")


def _maxpool2_nhwc(x):
    import jax
    import jax.numpy as jnp
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _densenet(size, blocks, growth, init, classes=14):
    """DenseNet (torchvision layout, as scripts/make_densenet.py), NHWC, one image: the
    BatchNorms after a convolution folded into its bias, the others (after every
    concatenation) a per-channel x * s + t with s, t private to P0; logits revealed."""
    import jax
    import jax.numpy as jnp
    from spu.experimental import reveal
    dn = ("NHWC", "HWIO", "NHWC")
    r = _rng()
    ws, plan = [], []

    def param(a):
        ws.append((np.asarray(a, dtype=np.float32), 0))
        return len(ws) - 1

    def conv_p(cin, cout, k):
        return param(_he(r, (k, k, cin, cout), cin * k * k)), param(r.standard_normal(cout) * 0.1)

    def bn_p(c):
        return param(r.uniform(0.5, 1.5, c)), param(r.standard_normal(c) * 0.1)
    plan.append(("conv", conv_p(3, init, 7), 2, 3))
    plan.append(("relu",))
    plan.append(("maxpool",))
    c = init
    for i, L in enumerate(blocks):
        plan.append(("block_start",))
        for _ in range(L):
            plan.append(("dense", bn_p(c), conv_p(c, 4 * growth, 1), conv_p(4 * growth, growth, 3)))
            c += growth
        if i != len(blocks) - 1:
            plan.append(("transition", bn_p(c), conv_p(c, c // 2, 1)))
            c //= 2
    plan.append(("final", bn_p(c), param(_he(r, (c, classes), c)), param(r.standard_normal(classes) * 0.1)))

    def conv(x, w, b, stride=1, pad=0):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                            dimension_numbers=dn) + b

    def net(x, *p):
        for step in plan:
            k = step[0]
            if k == "conv":
                (w, b), st, pd = step[1], step[2], step[3]
                x = conv(x, p[w], p[b], st, pd)
            elif k == "relu":
                x = jnp.maximum(x, 0.0)
            elif k == "maxpool":
                x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                                          [(0, 0), (1, 1), (1, 1), (0, 0)])
            elif k == "dense":
                (s, t), (w1, b1), (w2, b2) = step[1:]
                h = jnp.maximum(x * p[s] + p[t], 0.0)
                h = jnp.maximum(conv(h, p[w1], p[b1]), 0.0)
                x = jnp.concatenate([x, conv(h, p[w2], p[b2], 1, 1)], axis=3)
            elif k == "transition":
                (s, t), (w, b) = step[1:]
                h = conv(jnp.maximum(x * p[s] + p[t], 0.0), p[w], p[b])
                x = jax.lax.reduce_window(h, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") * 0.25
            elif k == "final":
                (s, t), w, b = step[1:]
                h = jnp.maximum(x * p[s] + p[t], 0.0)
                x = reveal(jnp.mean(h, axis=(1, 2)) @ p[w] + p[b])
        return x
    x = r.standard_normal((1, size, size, 3)).astype(np.float32)
    return (net, [(x, 1)] + ws, True, "CHEETAH",
            f"DenseNet blocks {blocks}, growth {growth}, init {init}, {size}x{size}, {classes} outputs, batch 1; "
            f"weights private to P0, input private to P1, logits revealed")


WORKLOADS = {
    "densenet_mini": lambda: _densenet(32, (2, 2, 2, 2), 8, 16),
    "densenet121_32": lambda: _densenet(32, (6, 12, 24, 16), 32, 64),
    "densenet121_224": lambda: _densenet(224, (6, 12, 24, 16), 32, 64),
    "relu_1e5": lambda: _relu(10 ** 5),
    "relu_1e6": lambda: _relu(10 ** 6),
    "relu_1e5_semi2k": lambda: _relu(10 ** 5, "SEMI2K"),
    "mul_1e6": lambda: _mul(10 ** 6),
    "matmul_ss": lambda: _matmul(-1),
    "matmul_p0w": lambda: _matmul(0),
    "argmax_1000x10": _argmax,
    "maxpool_16x24x24": _maxpool,
    "mlp_b1": lambda: _mlp(1),
    "mlp_b64": lambda: _mlp(64),
    "lenet_b1": lambda: _lenet(1),
    "lenet_b64": lambda: _lenet(64),
}

# Not run: OT/COT throughput. SPU 0.9.5's Python module exposes no OT primitive (yacl's
# IKNP/Ferret and SPU's Cheetah OT live only inside libspu.so and are reachable only
# through whole MPC kernels), so there is no SPU reference for the OT micro-workload.

# --------------------------------------------------------------------------- config

_LINK_RE = re.compile(r"Link details: total send bytes (\d+), recv bytes (\d+), "
                      r"send actions (\d+), recv actions (\d+)")
_OP_RE = re.compile(r"\] - (.+?), executed (\d+) times, duration ([0-9.e+-]+)s, send bytes (\d+) "
                    r"recv bytes (\d+), send actions (\d+), recv actions (\d+)")


def _make_config(protocol: str, fxp_bits: int, colocated: bool, breakdown: bool):
    import spu.libspu as libspu
    cfg = libspu.RuntimeConfig(protocol=getattr(libspu.ProtocolKind, protocol),
                               field=libspu.FieldType.FM64)
    if fxp_bits:
        cfg.fxp_fraction_bits = fxp_bits
    cfg.enable_pphlo_profile = True           # makes SPU print per-run link statistics
    if breakdown:
        cfg.enable_hal_profile = True
    if colocated:
        cfg.experimental_enable_colocated_optimization = True   # private (Priv2k) inputs
    return cfg


def _effective_fxp_bits(cfg):
    """SPU fills fxp_fraction_bits=0 with its default; read it back from an encoded 1.0."""
    import spu.api as spu_api
    import spu.libspu as libspu
    io = spu_api.Io(2, cfg)
    one = io.make_shares(np.ones(1, np.float32), libspu.Visibility.VIS_PUBLIC)[0]
    raw = one.share_chunks[0]
    # protobuf ValueChunk: the last 8 bytes are the encoded FM64 ring element
    v = int.from_bytes(raw[-8:], "little")
    return v.bit_length() - 1 if v and (v & (v - 1)) == 0 else None


def _free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


# --------------------------------------------------------------------------- parties

def _delay_proxies(ports, delay):
    """With ``EZP_SPU_DELAY`` (seconds, one way) > 0: one delayproxy (the shared tools'
    ``delayproxy.py``, ``EZP_DELAYPROXY`` overrides its path) in front of each party's
    listening port; returns (the ports peers connect to, the proxy processes)."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    tool = os.environ.get("EZP_DELAYPROXY") or os.path.normpath(
        os.path.join(here, "..", "..", "..", "shared", "tools", "delayproxy.py"))
    if not os.path.isfile(tool):
        raise RuntimeError(f"EZP_SPU_DELAY is set but there is no delay proxy at {tool} (set EZP_DELAYPROXY)")
    front = _free_ports(len(ports))
    procs = [subprocess.Popen([sys.executable, tool, str(f), str(p), str(delay)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for f, p in zip(front, ports)]
    time.sleep(0.5)
    return front, procs


def _party_process(ranks, link_kind, ports, cfg_bytes, exe_bytes, shares, iters, log_path, conn):
    """Entry of a party process (spawned). Runs the given ranks (threads) and sends back
    {rank: {"times": [...], "outputs": [(meta, chunks), ...]}} or {"error": str}."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        res = _run_parties(ranks, link_kind, ports[:2], cfg_bytes, exe_bytes, shares, iters,
                           ports[2:] if len(ports) > 2 else None)
        conn.send(res)
    except BaseException as e:  # report, do not hang the parent
        import traceback
        traceback.print_exc()
        conn.send({"error": f"{type(e).__name__}: {e}"})
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        conn.close()


def _run_parties(ranks, link_kind, ports, cfg_bytes, exe_bytes, shares, iters, peer_ports=None):
    import spu.api as spu_api
    import spu.libspu as libspu

    cfg = libspu.RuntimeConfig()
    cfg.ParseFromString(cfg_bytes)
    exe = libspu.Executable()
    exe.ParseFromString(exe_bytes)
    desc = libspu.link.Desc()
    desc.recv_timeout_ms = 3600 * 1000
    for r in range(2):
        port = ports[r] if peer_ports is None or r in ranks else peer_ports[r]   # peers through the proxy
        desc.add_party(f"P{r}", f"127.0.0.1:{port}" if link_kind == "brpc" else f"mem_{r}")
    out, errors = {}, []

    def party(rank):
        try:
            lctx = (libspu.link.create_brpc if link_kind == "brpc" else libspu.link.create_mem)(desc, rank)
            rt = spu_api.Runtime(lctx, cfg)
            my = []
            for meta, chunks in shares[rank]:
                s = libspu.Share()
                s.meta = meta
                s.share_chunks = chunks
                my.append(s)
            times, outs = [], None
            for _ in range(iters):
                lctx.barrier()
                t0 = time.perf_counter()
                for name, s in zip(exe.input_names, my):
                    rt.set_var(name, s)
                rt.run(exe)
                outs = [rt.get_var(name) for name in exe.output_names]
                times.append(time.perf_counter() - t0)
                sys.stdout.flush()
            lctx.barrier()
            out[rank] = {"times": times,
                         "outputs": [(o.meta, list(o.share_chunks)) for o in outs]}
            lctx.stop_link()
        except BaseException as e:
            errors.append(f"P{rank}: {type(e).__name__}: {e}")

    ths = [threading.Thread(target=party, args=(r,), daemon=True) for r in ranks]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errors:
        return {"error": "; ".join(errors)}
    return out


def _parse_log(path):
    with open(path, errors="replace") as f:
        text = f.read()
    links = [tuple(int(g) for g in m.groups()) for m in _LINK_RE.finditer(text)]
    return text, links


def _parse_ops(text):
    """Per-op lines of the last run of one party: {op: [seconds, sent, recv, send_actions]}."""
    blocks = text.split("Link details")
    if len(blocks) < 2:
        return {}
    ops = {}
    for m in _OP_RE.finditer(blocks[-2]):
        name, _n, dur, sb, rb, sa, _ra = m.groups()
        ops[name.strip()] = [float(dur), int(sb), int(rb), int(sa)]
    return ops


# --------------------------------------------------------------------------- driver

def run_workload(name, reps=3, mode="procs", fxp_bits=0, breakdown=False, timeout=1800.0,
                 shared_inputs=False):
    import multiprocessing as mp

    import jax
    import spu
    import spu.api as spu_api
    import spu.libspu as libspu
    from spu.utils import frontend as spu_fe

    fn, inputs, reveal_out, protocol, note = WORKLOADS[name]()
    if shared_inputs and any(owner >= 0 for _, owner in inputs):
        inputs = [(a, -1) for a, _ in inputs]
        note += " [--shared-inputs: every input secret-shared instead of private]"
    colocated = any(owner >= 0 for _, owner in inputs)
    cfg = _make_config(protocol, fxp_bits, colocated, breakdown)

    # plaintext reference (cpu jax); spu's reveal is the identity outside SPU
    expected = [np.asarray(v) for v in jax.tree_util.tree_leaves(jax.jit(fn)(*[a for a, _ in inputs]))]

    t = time.perf_counter()
    in_names = [f"in{i}" for i in range(len(inputs))]
    exe, _ = spu_fe.compile(spu_fe.Kind.JAX, fn, tuple(a for a, _ in inputs), {}, in_names,
                            [libspu.Visibility.VIS_SECRET] * len(inputs),
                            lambda outs: [f"out{i}" for i in range(len(outs))])
    compile_s = time.perf_counter() - t

    io = spu_api.Io(2, cfg)
    per_rank = [[], []]
    for arr, owner in inputs:
        sh = io.make_shares(arr, libspu.Visibility.VIS_SECRET, owner)
        for r in range(2):
            per_rank[r].append((sh[r].meta, list(sh[r].share_chunks)))

    iters = 1 + reps
    logdir = tempfile.mkdtemp(prefix="spu_ref_")
    try:
        return _run_and_collect(name, reps, mode, breakdown, timeout, fxp_bits, exe, io, per_rank, iters,
                                logdir, expected, compile_s, note, reveal_out, protocol, colocated, cfg)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def _run_and_collect(name, reps, mode, breakdown, timeout, fxp_bits, exe, io, per_rank, iters,
                     logdir, expected, compile_s, note, reveal_out, protocol, colocated, cfg):
    import multiprocessing as mp

    import spu
    import spu.libspu as libspu

    ctx = mp.get_context("spawn")
    proxies = []
    if mode == "procs":
        ports = _free_ports(2)
        groups = [([0], "brpc"), ([1], "brpc")]
        delay = float(os.environ.get("EZP_SPU_DELAY") or 0)
        if delay > 0:
            front, proxies = _delay_proxies(ports, delay)
            ports = ports + front
    elif mode == "threads":
        ports = [0, 0]
        groups = [([0, 1], "mem")]
    else:
        raise ValueError(f"mode must be 'procs' or 'threads', not {mode!r}")
    procs, conns, logs = [], [], []
    for gi, (ranks, kind) in enumerate(groups):
        rx, tx = ctx.Pipe(duplex=False)
        log = os.path.join(logdir, f"party{gi}.log")
        p = ctx.Process(target=_party_process,
                        args=(ranks, kind, ports, cfg.SerializeToString(), exe.SerializeToString(),
                              {r: per_rank[r] for r in ranks}, iters, log, tx), daemon=True)
        p.start()
        tx.close()
        procs.append(p)
        conns.append(rx)
        logs.append(log)
    results, deadline, err = {}, time.monotonic() + timeout, None
    for p, c in zip(procs, conns):
        left = max(0.0, deadline - time.monotonic())
        if not c.poll(left):
            err = f"timeout after {timeout:.0f} s"
            break
        try:
            got = c.recv()
        except EOFError:
            err = "party process died (see its log)"
            break
        if "error" in got:
            err = got["error"]
            break
        results.update(got)
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
    for p in proxies:
        p.kill()
        p.wait()
    if err:
        tails = []
        for log in logs:
            try:
                with open(log, errors="replace") as f:
                    tails.append(f.read()[-3000:])
            except OSError:
                pass
        raise RuntimeError(f"{name}: {err}\n--- party logs (tail) ---\n" + "\n".join(tails))

    # link statistics: per rank, one "Link details" line per run
    if mode == "procs":
        texts, per = [], []
        for log in logs:
            text, links = _parse_log(log)
            texts.append(text)
            per.append(links)
    else:
        text, links = _parse_log(logs[0])
        texts = [text]
        # both parties log each run before the next run starts (barrier); pair them up
        per = [links[0::2], links[1::2]]
    if any(len(p) != iters for p in per):
        raise RuntimeError(f"{name}: expected {iters} link reports per party, got {[len(p) for p in per]}")
    sent = [[per[r][i][0] for i in range(iters)] for r in range(2)]
    actions = [[per[r][i][2] for i in range(iters)] for r in range(2)]
    if mode == "procs":
        # party r's own line says what it sent; check against what the other received
        for i in range(iters):
            if per[0][i][0] != per[1][i][1] or per[1][i][0] != per[0][i][1]:
                raise RuntimeError(f"{name}: send/recv byte counts of the parties disagree in run {i}")
    times = [max(results[0]["times"][i], results[1]["times"][i]) for i in range(iters)]
    tot = [sent[0][i] + sent[1][i] for i in range(iters)]
    msgs = [actions[0][i] + actions[1][i] for i in range(iters)]
    timed = list(range(1, iters))
    med_i = sorted(timed, key=lambda i: times[i])[len(timed) // 2]

    # check the result of the last run against plaintext
    outs = []
    for k in range(len(exe.output_names)):
        shs = []
        for r in range(2):
            meta, chunks = results[r]["outputs"][k]
            s = libspu.Share()
            s.meta = meta
            s.share_chunks = chunks
            shs.append(s)
        outs.append(np.asarray(io.reconstruct(shs)))
    check = {}
    for got, want in zip(outs, expected):
        if np.issubdtype(want.dtype, np.integer):
            check["match_rate"] = float(np.mean(got.astype(np.int64) == want.astype(np.int64)))
        else:
            check["max_abs_err"] = float(np.max(np.abs(got.astype(np.float64) - want)))
    ok = check.get("match_rate", 1.0) >= 0.99 and check.get("max_abs_err", 0.0) < 0.05

    res = {
        "workload": name,
        "impl": f"spu {spu.__version__}",
        "protocol": protocol.lower(),
        "trusted_party": "first party (TrustedFirstParty beaver)" if protocol == "SEMI2K" else "none",
        "field": "FM64",
        "fxp_fraction_bits": fxp_bits or _effective_fxp_bits(cfg),
        "mode": "2 processes, brpc over loopback TCP" if mode == "procs" else "2 threads, in-memory link",
        "description": note,
        "output_revealed": reveal_out,
        "reps": reps,
        "time_s": statistics.median(times[1:]),
        "times_s": [round(x, 4) for x in times[1:]],
        # mean over the timed runs: amortizes the periodic Ferret COT refills (see README)
        "time_mean_s": statistics.fmean(times[1:]),
        "bytes": int(statistics.median(tot[1:])),
        "bytes_runs": tot[1:],
        "bytes_mean": int(statistics.fmean(tot[1:])),
        # per-direction split is known only when each party logs to its own file
        "bytes_p0_sent": sent[0][med_i] if mode == "procs" else None,
        "bytes_p1_sent": sent[1][med_i] if mode == "procs" else None,
        "messages": int(statistics.median(msgs[1:])),
        "messages_runs": msgs[1:],
        "first_run_s": round(times[0], 4),
        "first_run_bytes": tot[0],
        "compile_s": round(compile_s, 3),
        "correct": ok,
        **check,
        "config": {"protocol": protocol, "field": "FM64",
                   "fxp_fraction_bits": int(fxp_bits) if fxp_bits else "SPU default",
                   "experimental_enable_colocated_optimization": colocated,
                   "enable_pphlo_profile": True,
                   "beaver_type": "TrustedFirstParty (SPU default)" if protocol == "SEMI2K" else None,
                   "cheetah_2pc_config": "SPU defaults (YACL_Ferret OT, matmul packing on, exact mul)"
                   if protocol == "CHEETAH" else None,
                   "other": "SPU defaults"},
    }
    if breakdown:
        res["ops_p0_last_run"] = _parse_ops(texts[0])
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", nargs="?", choices=sorted(WORKLOADS))
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--list", action="store_true", help="list workload names")
    ap.add_argument("--reps", type=int, default=3, help="timed runs after the warm-up (default 3)")
    ap.add_argument("--mode", choices=("procs", "threads"), default="procs")
    ap.add_argument("--fxp-bits", type=int, default=0, help="fxp_fraction_bits (0 = SPU default, 18 for FM64)")
    ap.add_argument("--breakdown", action="store_true", help="add per-op time/bytes of P0's last run")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--shared-inputs", action="store_true",
                    help="secret-share private inputs too (weights and data as shared values)")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(WORKLOADS))
        return 0
    if not args.workload:
        ap.error("a workload is required (see --list)")
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    # SPU/brpc write their logs to fd 1; keep the real stdout for our result only.
    real_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        res = run_workload(args.workload, args.reps, args.mode, args.fxp_bits, args.breakdown, args.timeout,
                           args.shared_inputs)
    except Exception as e:
        print(f"spu_ref: {e}", file=sys.stderr)
        return 1
    if args.json:
        real_out.write(json.dumps(res) + "\n")
    else:
        real_out.write(f"{res['workload']}: {res['description']}\n"
                       f"  {res['impl']} {res['protocol']} ({res['mode']}), FM64 f={res['fxp_fraction_bits']}\n"
                       f"  time {res['time_s']:.3f} s (median of {res['times_s']}), "
                       f"{res['bytes'] / 1e6:.2f} MB, {res['messages']} messages; "
                       f"first run {res['first_run_s']:.2f} s / {res['first_run_bytes'] / 1e6:.2f} MB; "
                       f"correct={res['correct']}\n")
    real_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
