"""Session(backends_from=k): one party decides the implementations, the other adopts them."""
import threading

import numpy as np
import pytest

from ezprotocols import Session
from ezprotocols.errors import PeerGone, ProtocolError
from ezprotocols.net import local_pair


def _pair(kw0, kw1, f=lambda s: (dict(s.backends), type(s.ot).__name__)):
    c0, c1 = local_pair(timeout=20)
    out, err = [None, None], [None, None]

    def run(role, ch, kw):
        try:
            with Session(role, ch, **kw) as s:
                out[role] = f(s)
        except BaseException as e:  # noqa: BLE001
            err[role] = e

    ts = [threading.Thread(target=run, args=(r, c, k)) for r, c, k in ((0, c0, kw0), (1, c1, kw1))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return out, err


@pytest.mark.parametrize("chooser", [0, 1])
def test_adopts_the_choosers_backends(chooser):
    mine = {"ot": "ferret", "triples": "ot", "linear": "ot", "compare": "gc"}
    kws = [{"backends_from": chooser}, {"backends_from": chooser}]
    kws[chooser].update(mine)
    out, err = _pair(*kws)
    assert err == [None, None]
    assert out[0][0] == out[1][0] == mine
    assert out[0][1] == out[1][1] == "Ferret"


def test_adopted_backends_compute_correctly():
    def relu(s):
        x = s.input(np.array([-3.0, 0.0, 2.5, -1e-3]) if s.role == 0 else None, owner=0, shape=(4,))
        from ezprotocols import relu as r
        return s.reveal(r(x))
    out, err = _pair({"backends_from": 0, "ot": "ferret", "compare": "ot"}, {"backends_from": 0}, relu)
    assert err == [None, None]
    np.testing.assert_allclose(out[0], [0, 0, 2.5, 0], atol=1e-4)
    np.testing.assert_allclose(out[1], out[0])


def test_trusted_dealer_is_never_adopted():
    out, err = _pair({"backends_from": 0, "triples": "dealer"}, {"backends_from": 0}, lambda s: s.shared_prg())
    assert isinstance(err[1], ProtocolError) and "trusted dealer" in str(err[1])
    assert isinstance(err[0], (PeerGone, ProtocolError))    # the chooser hears of it at its next step


def _named(*names):
    rec = np.zeros((4, 16), np.uint8)
    for i, n in enumerate(names):
        rec[i, :len(n)] = np.frombuffer(n, np.uint8)
    return rec


@pytest.mark.parametrize("record,match", [
    (_named(b"nope!"), "setup.backends: the peer chose ot='nope!'"),
    (np.full((4, 16), 0x1b, np.uint8), "not printable ASCII"),
    (np.zeros((5, 16), np.uint8), "setup.backends"),
])
def test_unknown_or_garbage_names_are_refused(record, match):
    c0, c1 = local_pair(timeout=10)

    def hostile():          # an honest role exchange, then a bad backends record
        c0.send("setup.role", np.array([0], np.uint8))
        c0.recv_array("setup.role", np.uint8, (1,))
        c0.send("setup.backends", record)

    t = threading.Thread(target=hostile)
    t.start()
    with pytest.raises(ProtocolError, match=match):
        Session(1, c1, backends_from=0)
    t.join(10)


def test_bad_chooser_index():
    out, err = _pair({"backends_from": 2}, {"backends_from": 2})
    assert isinstance(err[0], ValueError) or isinstance(err[1], ValueError)
