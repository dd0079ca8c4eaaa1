"""Sharded validation on Dask: equal to an unsharded run, a killed worker's shard
retried, a crashed coordinator resumed from its checkpoint, a total opened once;
and serve_forever running concurrent sessions on one address."""
import threading

import time

import numpy as np
import pytest

from ezprotocols.errors import ProtocolError
from ezprotocols.nn import load_onnx
from ezprotocols.nn.secure import serve_session, validate_session
from ezprotocols.nn.serving import open_client, serve_forever
from ezprotocols.nn.shards import ShardStore, sharded_validate, split
from ezprotocols.session import Session
from ezprotocols.testing import free_tcp_port, run_pair

from _nn_models import multilabel_mlp



class Server:
    """serve_forever in a thread with a shard store; counts sessions by mode."""

    def __init__(self, plan, workers=2, store=None):
        self.addr = f"tcp://127.0.0.1:{free_tcp_port()}"
        self.store = store or ShardStore()
        self.results, self.errors = [], []
        self.stop = threading.Event()
        self.t = threading.Thread(target=serve_forever, daemon=True, args=(
            self.addr, lambda ch: self._one(plan, ch)),
            kwargs=dict(workers=workers, timeout=60, accept_timeout=None, stop=self.stop,
                        on_result=self.results.append, on_error=self.errors.append))
        self.t.start()

    def _one(self, plan, ch):
        with Session(0, ch, backends_from=0) as s:
            return serve_session(s, plan, shards=self.store, allow_confusion=True)

    def close(self):
        self.stop.set()

    def wait(self, count, seconds=30):
        """The server records a session after the client closed: wait for ``count``."""
        import time
        end = time.monotonic() + seconds
        while len(self.results) < count and time.monotonic() < end:
            time.sleep(0.05)
        return self.results


@pytest.fixture
def data():
    r = np.random.default_rng(7)
    return r.standard_normal((12, 6)), (r.random((12, 3)) < 0.5).astype(np.int64)


@pytest.fixture
def plan():
    p = load_onnx(multilabel_mlp(k=3, seed=3))
    p.trunc = "faithful"            # deterministic truncation: every run gives the same counts, bit for bit
    return p


def _unsharded(plan, x, y, **kw):
    return run_pair(lambda s: serve_session(s, plan), lambda s: validate_session(s, x, y, **kw), timeout=120)[1]


def _client():
    from dask.distributed import Client, LocalCluster
    return Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None))


def test_sharded_equals_unsharded_and_opens_once(plan, data, tmp_path):
    x, y = data
    ref = _unsharded(plan, x, y, auroc=True, thresholds=10, batch=4)
    srv = Server(plan)
    c = _client()
    try:
        res = sharded_validate(srv.addr, x, y, shards=3, client=c, auroc=True, thresholds=10, batch=4,
                               checkpoint=str(tmp_path / "ck.json"))
        for k in ("auroc", "roc", "accuracy", "accuracy_per_output", "correct"):
            assert res[k] == ref[k], k
        assert res["shards"] == 3 and res["resumed"] == 0
        modes = [r.get("shard", "agg") for r in srv.wait(4)]
        assert sorted(m for m in modes if m != "agg") == [0, 1, 2] and modes.count("agg") == 1
        # the server opened only the total: what P0 got from the shard sessions has no counts
        assert all("auroc" not in r and "correct" not in r for r in srv.results if "shard" in r)
        agg = [r for r in srv.results if "shard" not in r][0]
        assert agg["auroc"] == ref["auroc"]
        # rerunning returns the recorded result; the server would refuse a second opening
        again = sharded_validate(srv.addr, x, y, shards=3, client=c, auroc=True, thresholds=10, batch=4,
                                 checkpoint=str(tmp_path / "ck.json"))
        assert again["from_checkpoint"] and again["auroc"] == ref["auroc"]
    finally:
        c.close()
        srv.close()


def test_coordinator_crash_resumes_without_recount(plan, data, tmp_path):
    x, y = data
    ref = _unsharded(plan, x, y, confusion=False, batch=3)
    srv = Server(plan)
    c = _client()
    ck = str(tmp_path / "ck.json")
    try:
        with pytest.raises(RuntimeError, match="simulated crash"):
            sharded_validate(srv.addr, x, y, shards=4, client=c, batch=3, checkpoint=ck, _stop_after=2)
        n_before = len([r for r in srv.results if "shard" in r])
        res = sharded_validate(srv.addr, x, y, shards=4, client=c, batch=3, checkpoint=ck)
        assert res["resumed"] == 2 and res["correct"] == ref["correct"]
        assert res["accuracy_per_output"] == ref["accuracy_per_output"]
        n_after = len([r for r in srv.results if "shard" in r])
        assert n_after - n_before <= 4 - 2 + 2           # at most the unfinished shards (and cancelled ones) ran
    finally:
        c.close()
        srv.close()


def test_killed_worker_shard_is_retried(plan, data, tmp_path):
    """A worker process dies in the middle of a shard session (os._exit): Dask
    reruns the shard on another worker with a fresh token; the result is exact."""
    from dask.distributed import Client, LocalCluster
    x, y = data
    ref = _unsharded(plan, x, y, batch=6)
    srv = Server(plan)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    c = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None))
    try:
        res = sharded_validate(srv.addr, str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), shards=2, client=c,
                               batch=6, _die_once=str(tmp_path / "died"))
        assert (tmp_path / "died").exists()
        assert res["correct"] == ref["correct"] and res["accuracy_per_output"] == ref["accuracy_per_output"]
        end = time.monotonic() + 60                 # the server notices the dead peer asynchronously
        while not srv.errors and time.monotonic() < end:
            time.sleep(0.1)
        assert srv.errors                          # the dead attempt failed on the server, which went on
    finally:
        c.close()
        c.cluster.close()
        srv.close()


def test_store_opens_a_validation_once_and_checks_tokens():
    st = ShardStore()
    vid, t0, t1 = b"v" * 16, b"a" * 16, b"b" * 16
    meta = {"n": 5, "flags": 0, "T": 0, "size": 3}
    st.put(vid, 0, t0, np.array([1, 2, 3], np.uint64), meta)
    st.put(vid, 1, t1, np.array([1, 1, 1], np.uint64), meta)
    with pytest.raises(ProtocolError, match="another attempt"):
        st.take(vid, [(0, t1), (1, t1)], {**meta, "n": 10})
    with pytest.raises(ProtocolError, match="samples"):
        st.take(vid, [(0, t0)], {**meta, "n": 10})
    assert st.take(vid, [(0, t0), (1, t1)], {**meta, "n": 10}).tolist() == [2, 3, 4]
    with pytest.raises(ProtocolError, match="already opened"):
        st.take(vid, [(0, t0), (1, t1)], {**meta, "n": 10})
    with pytest.raises(ProtocolError, match="already opened"):
        st.put(vid, 0, t0, np.zeros(3, np.uint64), meta)


def test_store_persists_across_restarts(tmp_path):
    vid, t0 = b"w" * 16, b"c" * 16
    meta = {"n": 2, "flags": 4, "T": 7, "size": 2}
    ShardStore(str(tmp_path)).put(vid, 3, t0, np.array([5, 6], np.uint64), meta)
    st = ShardStore(str(tmp_path))
    assert st.take(vid, [(3, t0)], meta).tolist() == [5, 6]
    with pytest.raises(ProtocolError, match="already opened"):
        ShardStore(str(tmp_path)).take(vid, [(3, t0)], meta)


def test_split():
    assert split(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert split(2, 5) == [(0, 1), (1, 2)]


def test_serve_forever_concurrent_sessions(plan, data):
    """Two clients at once on one address: both sessions overlap in time."""
    x, y = data
    srv = Server(plan, workers=2)
    out, spans = [], []

    def client():
        import time
        t = time.monotonic()
        with Session(1, open_client(srv.addr, timeout=60), backends_from=0) as s:
            out.append(validate_session(s, x, y, batch=2))
        spans.append((t, time.monotonic()))

    try:
        ts = [threading.Thread(target=client) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert len(out) == 2 and out[0]["correct"] == out[1]["correct"]
        (a0, a1), (b0, b1) = spans
        assert max(a0, b0) < min(a1, b1)
    finally:
        srv.close()
