"""Sharded secure validation on Dask, with retries and a resumable checkpoint.

The data owner (P1) splits its samples into shards; each shard is one two-party
session against the model owner's server (``serve --workers N``), run as a
Dask task on any worker.  A shard session ends *without opening anything*
(:data:`~ezprotocols.nn.secure.FLAG_SHARD`): each party keeps its additive shares
of the shard's counts (correct predictions, confusion matrix, ROC counts), which
are uniformly random on their own:

* P0 keeps them in a :class:`ShardStore` under (validation id, shard index),
  with the 16-byte token P1 drew for that attempt;
* P1's coordinator writes them to its checkpoint file (:class:`Checkpoint`)
  as each shard finishes.

When every shard is done, one small *aggregate* session sends the list of
(shard, token) pairs; each party sums its own shares over exactly those shards
and the total is opened once (:func:`~ezprotocols.nn.secure.aggregate_session`).
P0 then burns the validation id: it never opens it again, so no per-shard value
(nor a difference of two totals) is ever revealed.  Sums of additive shares are
additive shares of the sum, so the result equals an unsharded validation's:
bit for bit with deterministic truncation (``serve --trunc faithful``).  With the
default local truncation every run (sharded or not) has its own +-1-unit noise
per truncation, so a score within that noise of a threshold (about 1e-3 logits
on DenseNet) may fall on either side in two runs: measured on 16 images of the
mini DenseNet, one of three sharded runs differed from the unsharded run by one
positive/negative pair in one output's AUROC (0.010); with faithful truncation
1, 2 and 4 shards all gave the unsharded result exactly.

Failures.  A shard whose worker dies or whose session fails is retried by Dask
(``retries``) with a fresh token; P0 overwrites that shard's shares, and the
token pairs P1's copy with P0's, so a half-finished attempt can never be mixed
in or counted twice.  After a crash of the coordinator, running the same
validation with the same checkpoint skips the finished shards (their shares are
in both stores) and runs only the others.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time

import numpy as np

from ..errors import ProtocolError

__all__ = ["ShardStore", "Checkpoint", "split", "run_shard", "sharded_validate", "fingerprint"]

U64 = np.uint64
FORMAT = "ezprotocols-shards/1"


# ---------------------------------------------------------------------- P0
class ShardStore:
    """P0's shares of finished shards, keyed by validation id (thread-safe).  With
    ``directory`` every validation is also kept on disk (one .npz per validation
    id, written atomically), so a restarted server still aggregates."""

    def __init__(self, directory: str | None = None, max_validations: int = 1024):
        self.dir = directory
        self.lock = threading.Lock()
        self.data: dict = {}                   # vid -> {"shards": {idx: (token, vec)}, "meta": {...}}
        self.opened: set = set()
        self.max = max_validations
        if directory:
            os.makedirs(directory, exist_ok=True)

    def _path(self, vid: bytes) -> str:
        return os.path.join(self.dir, vid.hex() + ".npz")

    def _load(self, vid: bytes):
        if vid in self.data or not self.dir or not os.path.exists(self._path(vid)):
            return
        with np.load(self._path(vid), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("opened"):
                self.opened.add(vid)
                return
            shards = {int(i): (bytes.fromhex(t), z[f"s{i}"], int(k)) for i, (t, k) in meta["tokens"].items()}
        self.data[vid] = {"shards": shards, "meta": meta["meta"]}

    def _save(self, vid: bytes, opened: bool = False):
        if not self.dir:
            return
        d = self.data.get(vid, {"shards": {}, "meta": {}})
        meta = {"meta": d["meta"], "tokens": {str(i): [t.hex(), k] for i, (t, _, k) in d["shards"].items()},
                "opened": opened}
        tmp = self._path(vid) + ".tmp.npz"
        arrays = {} if opened else {f"s{i}": v for i, (_, v, _) in d["shards"].items()}
        np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, self._path(vid))

    def put(self, vid: bytes, idx: int, token: bytes, vec: np.ndarray, meta: dict) -> None:
        """Keep (or replace: a retried shard) the shares of shard ``idx``."""
        with self.lock:
            self._load(vid)
            if vid in self.opened:
                raise ProtocolError("nn.shard: this validation id was already opened")
            d = self.data.get(vid)
            if d is None:
                if len(self.data) >= self.max:
                    raise ProtocolError("nn.shard: too many open validations on this server")
                d = self.data[vid] = {"shards": {}, "meta": {k: meta[k] for k in ("flags", "T", "size")}}
            if any(d["meta"][k] != meta[k] for k in ("flags", "T", "size")):
                raise ProtocolError("nn.shard: this shard's options differ from the validation's other shards")
            d["shards"][idx] = (bytes(token), np.array(vec, dtype=U64), int(meta["n"]))
            self._save(vid)

    def take(self, vid: bytes, want: list, meta: dict) -> np.ndarray:
        """Sum of the shares of the listed (shard, token) pairs, once: checks that
        every shard is present with that token, the options match and the sizes add
        up to ``meta["n"]``; then the validation id is burnt."""
        with self.lock:
            self._load(vid)
            if vid in self.opened:
                raise ProtocolError("nn.shards: this validation id was already opened (a total is opened once)")
            d = self.data.get(vid)
            if d is None:
                raise ProtocolError("nn.shards: unknown validation id")
            if any(d["meta"][k] != meta[k] for k in ("flags", "T", "size")):
                raise ProtocolError("nn.shards: options differ from those of the shards")
            idxs = [i for i, _ in want]
            if len(set(idxs)) != len(idxs):
                raise ProtocolError("nn.shards: a shard is listed twice")
            total = np.zeros(meta["size"], U64)
            count = 0
            for i, tok in want:
                got = d["shards"].get(i)
                if got is None or not secrets.compare_digest(got[0], tok):
                    raise ProtocolError(f"nn.shards: shard {i} is not finished here (or another attempt's)")
                total += got[1]
                count += got[2]
            if count != meta["n"]:
                raise ProtocolError(f"nn.shards: the shards hold {count} samples, not {meta['n']}")
            del self.data[vid]
            self.opened.add(vid)
            self._save(vid, opened=True)
            return total


# ---------------------------------------------------------------------- P1
def fingerprint(x, labels, ranges, options: dict) -> str:
    """What a checkpoint belongs to: the data, the labels, the shard ranges, the options."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(x), np.ascontiguousarray(labels)):
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(memoryview(a).cast("B"))
    h.update(json.dumps({"ranges": ranges, **options}, sort_keys=True).encode())
    return h.hexdigest()


class Checkpoint:
    """P1's record of finished shards (its shares only), one JSON file written
    atomically after each shard.  ``path=None``: in memory only."""

    def __init__(self, path: str | None, fp: str, ranges):
        self.path = path
        self.state = None
        if path and os.path.exists(path):
            with open(path, "r", encoding="utf-8") as f:
                st = json.load(f)
            if st.get("format") != FORMAT:
                raise ValueError(f"{path}: not a checkpoint of this version")
            if st["fingerprint"] != fp:
                raise ValueError(f"{path}: the checkpoint belongs to another validation (data, labels, shards or "
                                 "options differ); use another file")
            self.state = st
        if self.state is None:
            self.state = {"format": FORMAT, "fingerprint": fp, "vid": secrets.token_bytes(16).hex(),
                          "ranges": [list(r) for r in ranges], "done": {}, "result": None}
        self.lock = threading.Lock()

    @property
    def vid(self) -> bytes:
        return bytes.fromhex(self.state["vid"])

    def done(self) -> dict:
        return self.state["done"]

    def record(self, out: dict) -> None:
        with self.lock:
            self.state["done"][str(out["shard"])] = {"token": out["token"], "granted": out["granted"],
                                                   "n": out["n"], "shares": [int(v) for v in out["shares"]]}
            self._write()

    def finish(self, result: dict) -> None:
        with self.lock:
            self.state["result"] = result
            self._write()

    def _write(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def split(n: int, shards: int) -> list:
    """Contiguous sample ranges of ``shards`` nearly equal shards."""
    shards = max(1, min(shards, n))
    edges = [round(i * n / shards) for i in range(shards + 1)]
    return [(edges[i], edges[i + 1]) for i in range(shards)]


def _load_part(src, lo, hi):
    if isinstance(src, str):
        return np.load(src, mmap_mode="r", allow_pickle=False)[lo:hi]
    return np.asarray(src)[lo:hi]


def run_shard(address: str, vid: bytes, idx: int, lo: int, hi: int, data, labels, options: dict,
              connect: dict | None = None, _die_once: str | None = None) -> dict:
    """One shard session (a Dask task): connect to the server, validate samples
    ``lo:hi`` of ``data`` (an array or a .npy path) without opening anything, and
    return this party's shares with the attempt's token."""
    from ..session import Session
    from .secure import validate_session
    from .serving import open_client
    x = np.asarray(_load_part(data, lo, hi), dtype=np.float64)
    y = np.asarray(_load_part(labels, lo, hi))
    token = secrets.token_bytes(16)
    ch = open_client(address, **(connect or {}))
    with Session(1, ch, backends_from=0) as s:     # engines as the model owner chose them
        if _die_once and not os.path.exists(_die_once):        # test hook: this worker dies mid-session
            open(_die_once, "w").close()
            os._exit(17)
        res = validate_session(s, x, y, shard=(vid, idx, token), **options)
    return {"shard": idx, "token": token.hex(), "shares": np.asarray(res["shares"]).tolist(),
            "granted": int(res["granted"]), "n": hi - lo,
            "bytes": res["total"]["bytes"], "seconds": res["total"]["seconds"], "rounds": res["total"]["rounds"]}


def sharded_validate(address: str, data, labels, *, shards: int | None = None, workers: int = 2,
                     scheduler: str | None = None, checkpoint: str | None = None, retries: int = 3,
                     confusion: bool = False, auroc: bool = False, thresholds: int = 100, batch: int = 64,
                     connect: dict | None = None, client=None, processes: bool = True,
                     _die_once: str | None = None, _stop_after: int | None = None) -> dict:
    """P1: run a validation as ``shards`` shard sessions on Dask (a local cluster of
    ``workers`` workers, or the scheduler at ``scheduler``), then open the total in
    one aggregate session.  ``checkpoint``: resume file.  Returns the validation
    result (as :func:`~ezprotocols.nn.secure.validate_session`) plus ``shards``,
    ``resumed`` (shards taken from the checkpoint) and per-shard costs."""
    from ..session import Session
    from .secure import aggregate_session
    from .serving import open_client
    xa = np.load(data, mmap_mode="r", allow_pickle=False) if isinstance(data, str) else np.asarray(data)
    ya = np.load(labels, allow_pickle=False) if isinstance(labels, str) else np.asarray(labels)
    n = len(xa)
    if n == 0:
        raise ValueError("no samples")
    if len(ya) != n:
        raise ValueError(f"{n} samples but {len(ya)} labels")
    ranges = split(n, shards or workers)
    options = {"confusion": confusion, "auroc": auroc, "thresholds": thresholds, "batch": batch}
    ck = Checkpoint(checkpoint, fingerprint(xa, ya, ranges, options), ranges)
    if ck.state["result"] is not None:
        return {**ck.state["result"], "resumed": len(ranges), "from_checkpoint": True}
    resumed = len(ck.done())
    todo = [(i, lo, hi) for i, (lo, hi) in enumerate(ranges) if str(i) not in ck.done()]
    costs = []
    if todo:
        own = None
        if client is None:
            from dask.distributed import Client, LocalCluster
            if scheduler:
                client = own = Client(scheduler, timeout="10s")
            else:
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                       dashboard_address=None)
                client = own = Client(cluster)
        try:
            from dask.distributed import as_completed
            futs = [client.submit(run_shard, address, ck.vid, i, lo, hi, data, labels, options, connect,
                                  _die_once, key=f"ezp-shard-{ck.state['vid'][:12]}-{i}-{secrets.token_hex(4)}",
                                  retries=retries, pure=False)
                    for i, lo, hi in todo]
            for k, fut in enumerate(as_completed(futs)):
                out = fut.result()
                ck.record(out)
                costs.append({x: out[x] for x in ("shard", "n", "bytes", "rounds", "seconds")})
                if _stop_after is not None and k + 1 >= _stop_after:     # test hook: the coordinator crashes
                    for f in futs:
                        f.cancel()
                    raise RuntimeError("simulated crash of the validation coordinator")
        finally:
            if own is not None:
                cluster = getattr(own, "cluster", None)
                own.close()
                if cluster is not None:
                    cluster.close()
    done = ck.done()
    entries = [(int(i), bytes.fromhex(d["token"]), np.array([int(v) for v in d["shares"]], dtype=U64))
               for i, d in sorted(done.items(), key=lambda kv: int(kv[0]))]
    granted = {d["granted"] for d in done.values()}
    if len(granted) != 1:
        raise ProtocolError("shards: the model owner granted different options to different shards")
    t = time.perf_counter()
    ch = open_client(address, **(connect or {}))
    with Session(1, ch, backends_from=0) as s:     # engines as the model owner chose them
        res = aggregate_session(s, ck.vid, entries, n, granted=granted.pop(), thresholds=thresholds)
    res = {k: v for k, v in res.items() if k not in ("offline", "online", "per_op", "total")}
    res.update(mode="validate", samples=n, shards=len(ranges), resumed=resumed,
               aggregate_seconds=time.perf_counter() - t, shard_costs=sorted(costs, key=lambda c: c["shard"]))
    ck.finish(res)
    return res
