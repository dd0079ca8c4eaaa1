"""A closed session frees its engines at once, without the cyclic garbage collector
(found by the soak test: the engines point back at the session, and a ``serve`` process kept
many sessions' Ferret buffers -- tens of MiB each -- alive between collections)."""
import gc
import threading
import weakref


from ezprotocols import Session
from ezprotocols.net import local_pair


def _engines(s):
    return [s.ot, s.triples, s.gc, s.arith, s.linear, s.compare]


def test_closed_session_frees_engines_without_gc():
    refs = [[], []]
    errors = []

    def party(role, ch):
        try:
            with Session(role, ch, ot="ferret") as s:
                refs[role] += [weakref.ref(e) for e in _engines(s)]
                if role == 0:
                    q, delta = s.ot.send_rcot(1 << 16)
                else:
                    bits, t = s.ot.recv_rcot(1 << 16)
                refs[role].append(weakref.ref(s))
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            c0, c1 = local_pair(timeout=60)
            ts = [threading.Thread(target=party, args=(r, c)) for r, c in ((0, c0), (1, c1))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(120)
            del c0, c1, ts
            assert not errors, errors
            alive = [type(r()).__name__ for side in refs for r in side if r() is not None]
            assert alive == [], f"kept alive after close (reference cycles): {alive}"
            refs = [[], []]
    finally:
        gc.enable()
