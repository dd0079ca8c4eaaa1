"""Soak test (marked slow, not in CI): a ``serve`` process answers queries
for EZP_SOAK_SECONDS (default 600) with flat memory and no leaked sockets or
threads.  Run: ``EZP_SLOW=1 python -m pytest tests/test_soak.py``."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from ezprotocols.nn.serving import open_client
from ezprotocols.testing import free_tcp_port

from _hostile import stray

DATA = os.path.join(os.path.dirname(__file__), "data")
MLP = os.path.join(DATA, "torch_mlp.onnx")


def _proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        st = dict(line.split(":", 1) for line in f if ":" in line)
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:                     # closed meanwhile
            pass
    socks = sum(1 for link in links if link.startswith("socket:"))
    return int(st["VmRSS"].split()[0]) * 1024, int(st["Threads"]), len(links), socks


SOAK_SECONDS = float(os.environ.get("EZP_SOAK_SECONDS", "600"))


@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 300)
def test_serve_soak():
    from ezprotocols import Session, net
    from ezprotocols.nn import load_onnx
    from ezprotocols.nn.secure import query_session
    seconds = SOAK_SECONDS
    plan = load_onnx(MLP)
    x = np.random.default_rng(0).standard_normal((2,) + plan.input_shape)
    port = free_tcp_port()
    addr = f"tcp://127.0.0.1:{port}"
    srv = subprocess.Popen([sys.executable, "-m", "ezprotocols.party", "serve", "--model", MLP, "--listen", addr,
                            "--timeout", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def query():
        with Session(1, open_client(addr, timeout=30), backends_from=0) as s:
            return query_session(s, x)["classes"]

    try:
        warm = []
        for i in range(20):                 # warm-up: allocator and caches settle
            query()
            if i >= 15:
                warm.append(_proc_stats(srv.pid))
        # a snapshot may fall inside a session (its socket and context): compare the
        # largest of the warm-up snapshots with the smallest of the last ones
        base = tuple(max(w[j] for w in warm) for j in range(4))
        t_end = time.monotonic() + seconds
        n = 0
        samples = []
        while time.monotonic() < t_end:
            query()
            n += 1
            if n % 25 == 0:
                stray(port)                 # strays along the way
            samples.append(_proc_stats(srv.pid))
        end = tuple(min(w[j] for w in samples[-5:]) for j in range(4))
    finally:
        srv.terminate()
        srv.wait(10)
    rss0, thr0, fd0, sock0 = base
    rss1, thr1, fd1, sock1 = end
    print(f"soak: {n} queries in {seconds:g} s; RSS {rss0 >> 20} -> {rss1 >> 20} MiB, threads {thr0} -> {thr1}, "
          f"fds {fd0} -> {fd1}, sockets {sock0} -> {sock1}")
    assert n > 0
    # flat after warm-up: a closed session frees its engines at once (no reference cycles
    # left for the cyclic collector; before the fix RSS grew by hundreds of MiB)
    assert rss1 <= rss0 + (16 << 20), (rss0, rss1)
    assert thr1 <= thr0 + 2 and fd1 <= fd0 + 4 and sock1 <= sock0 + 4, (base, end)
