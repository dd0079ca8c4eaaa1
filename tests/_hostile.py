"""Helpers for the hardening tests: a TCP delay proxy and stray connections."""
from __future__ import annotations

import heapq
import socket
import threading
import time


class DelayProxy:
    """Forward ``127.0.0.1:port -> 127.0.0.1:upstream``, delaying every chunk by ``delay``
    seconds one way (both directions), like a long-distance link.  Threads only."""

    def __init__(self, upstream: int, delay: float):
        self.upstream, self.delay = upstream, delay
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.closed = False
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                c.close()
                continue
            self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                self._pump(a, b)

    def _pump(self, src, dst):
        q: list = []
        cv = threading.Condition()
        seq = [0]

        def reader():
            while True:
                try:
                    data = src.recv(1 << 16)
                except OSError:
                    data = b""
                with cv:
                    seq[0] += 1
                    heapq.heappush(q, (time.monotonic() + self.delay, seq[0], data))
                    cv.notify()
                if not data:
                    return

        def writer():
            while True:
                with cv:
                    while not q:
                        cv.wait()
                    due, _, data = q[0]
                    now = time.monotonic()
                    if due > now:
                        cv.wait(due - now)
                        continue
                    heapq.heappop(q)
                try:
                    if not data:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()

    def close(self):
        self.closed = True
        for s in [self.lsock] + self.socks:
            try:
                s.close()
            except OSError:
                pass


def stray(port: int, payload: bytes = b"", hold: float = 0.05) -> None:
    """A TCP connection that opens, optionally writes ``payload``, and closes (a port
    scan, a health check, a random-bytes client)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            if payload:
                try:
                    s.sendall(payload)
                except OSError:
                    pass
            time.sleep(hold)
    except OSError:
        pass
