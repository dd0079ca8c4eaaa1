"""A typed, checked, counted message channel between the two parties, over ZeroMQ.

Wire format of one message (all integers little endian)::

    header  = magic "EZ" | kind u8 | flags u8 | step tag u32 | dtype u8 | ndim u8 |
              reserved u16 | nbytes u64 | ndim x dim u64          (20 + 8*ndim bytes)
    payload = nbytes raw bytes (C order for arrays)

A payload of at most 64 KiB travels in the same ZeroMQ frame as its header; a
larger one follows the header as frames of exactly ``CHUNK`` bytes (the last one
shorter), so memory on both sides stays bounded by the high-water marks and the
receiver writes each chunk straight into the destination array.

The step tag is the CRC-32 of the step name: both parties name every message, so
parties that drift out of step fail at once with the name of the step.

Receiving is always *typed*: the caller states the dtype and exact shape (or the
exact byte length, or a maximum) and the header must match before anything is
allocated or read into the destination; the inbound frame size is also capped by
ZeroMQ (``MAXMSGSIZE``), so a peer can never make this side allocate what it did
not expect.  Nothing received is unpickled or evaluated.
"""
from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import zmq

from ..errors import ChannelError, HandshakeFailed, PeerGone, PeerTimeout, ProtocolError, abort_note, peer_text
from .stats import Stats

__all__ = ["Channel", "DTYPES", "CHUNK", "INLINE_MAX", "DEFAULT_TIMEOUT"]

MAGIC = b"EZ"
_HDR = struct.Struct("<2sBBIBBHQ")
KIND_BYTES, KIND_ARRAY, KIND_CLOSE, KIND_ABORT, KIND_HELLO = 1, 2, 3, 4, 5
_KIND_NAMES = {1: "bytes", 2: "array", 3: "close", 4: "abort", 5: "hello"}
FLAG_INLINE = 1
MAX_NDIM = 16
INLINE_MAX = 1 << 16
CHUNK = 1 << 20
HDR_MAX = _HDR.size + 8 * MAX_NDIM
ABORT_MAX = 1024
DEFAULT_TIMEOUT = 120.0
CLOSE_WAIT = 30.0        # longest wait in close() for the peer to close too (bounded by the timeout)
PROTOCOL_VERSION = b"ezprotocols-wire/1"

DTYPES = [np.dtype(t).newbyteorder("<") for t in (
    np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32,
    np.uint64, np.int64, np.float32, np.float64, np.bool_)]
_CODE = {d: i + 1 for i, d in enumerate(DTYPES)}


def _dtype_code(dt) -> int:
    dt = np.dtype(dt)
    if dt.byteorder == ">":
        raise TypeError(f"big-endian dtype {dt} not supported on the wire")
    code = _CODE.get(dt.newbyteorder("<"))
    if code is None:
        raise TypeError(f"dtype {dt} cannot be sent (allowed: {[str(d) for d in DTYPES]})")
    return code


_MONITOR_HEAD = struct.Struct("=Hi")      # libzmq monitor event frame: event id u16, value i32
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                     zmq.EVENT_HANDSHAKE_FAILED_AUTH)
HANDSHAKE_FAILURES = 3      # consecutive unexplained handshake failures taken as a key mismatch
MONITOR_EVENTS = zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED
for _e in _HANDSHAKE_FAILED:
    MONITOR_EVENTS |= _e


def _handshake_message(ev, value, where: str) -> str:
    """What a failed CurveZMQ handshake (libzmq monitor event) most likely means."""
    if ev == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return (f"{where} refused this client's CurveZMQ key (status {int(value)}): the server accepts only "
                "listed clients; give your key pair (--curve-key) and have the server allow its public key")
    if ev == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and int(value) == getattr(
            zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", 0x11000002):
        return (f"{where}: one side uses CurveZMQ encryption and the other does not (a missing or extra "
                "server key)")
    return (f"the encrypted handshake with {where} failed: its CurveZMQ public key is not the one given "
            "(wrong server key?), or it does not use CurveZMQ encryption")


def step_tag(step: str) -> int:
    return zlib.crc32(step.encode("utf-8")) & 0xFFFFFFFF


class Channel:
    """One end of a two-party channel.  Create with :func:`ezprotocols.net.listen`,
    :func:`ezprotocols.net.connect` or :func:`ezprotocols.net.local_pair`.

    ``send(step, x)`` sends a numpy array or a bytes-like object.  Arrays are sent
    without copying (the buffer is handed to ZeroMQ): do not modify an array in
    place after sending it.  ``recv_array(step, dtype, shape)`` and
    ``recv_bytes(step, nbytes)`` receive exactly what is stated or raise
    :class:`ProtocolError` naming the step.  A silent peer raises
    :class:`PeerTimeout` after ``timeout`` seconds, a peer that closed, aborted or
    vanished raises :class:`PeerGone`.
    """

    def __init__(self, ctx: zmq.Context, sock: zmq.Socket, *, timeout: float,
                 monitor: zmq.Socket | None = None, name: str = "channel", release=None):
        self._ctx = ctx
        self._sock = sock
        self._release = release       # terminates an owned context on close (flushes the queue)
        self._monitor = monitor
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        if monitor is not None:
            self._poller.register(monitor, zmq.POLLIN)
        self.timeout = float(timeout)
        self.name = name
        self.stats = Stats()
        self._scratch = bytearray(HDR_MAX + max(INLINE_MAX, ABORT_MAX))
        self._peer_fd: int | None = None       # the accepted peer's connection (fd its hello came on)
        self._handshake_failure: tuple | None = None   # (event, value) of the last failed CurveZMQ handshake
        self._tcp_reached = False             # a connecting side reached the address (TCP connected)
        self._tcp_connects = 0
        self._hs_no_detail = 0
        self._gone_reason: str | None = None
        self._closed = False
        self._close_note: str | None = None   # what the peer should be told when this end is closed
        self._peer_end = None                 # weakref to the other end of an in-process pair

    # ---------------------------------------------------------------- properties
    @property
    def closed(self) -> bool:
        return self._closed

    def phase(self, name: str):
        """``with channel.phase("name"):`` attributes traffic to a named phase."""
        return self.stats.phase(name)

    # ---------------------------------------------------------------- liveness
    def _poll_monitor(self) -> None:
        """Read the socket's connection events.  Only the accepted peer's own connection
        (the file descriptor its hello arrived on) can end the session: any other TCP
        connection to a listening port -- a port scan, a health check, a client with a
        wrong key, a second client, a failed client's lingering socket -- comes and goes
        without effect.  Before the hello, a failed CurveZMQ handshake is recorded
        (the connecting side reports it at once, see :meth:`_hello`)."""
        if self._monitor is None:
            return
        while True:
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            if len(frames) < 1 or len(frames[0]) != 6:
                continue                 # never from libzmq; ignore rather than fail the session
            ev, value = _MONITOR_HEAD.unpack(frames[0])   # (zmq.utils.monitor would import asyncio)
            if ev == zmq.EVENT_DISCONNECTED:
                if self._peer_fd is not None and (self._peer_fd < 0 or value == self._peer_fd):
                    self._gone_reason = "the peer's connection dropped (process ended or network lost)"
            elif ev == zmq.EVENT_CONNECTED:
                self._tcp_reached = True
                self._tcp_connects += 1
            elif ev in _HANDSHAKE_FAILED and self._peer_fd is None:
                if ev == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                    # also what a connection reset in mid-handshake looks like: only a repeated
                    # failure (one per reconnection) means a wrong key
                    self._hs_no_detail += 1
                    if self._hs_no_detail >= HANDSHAKE_FAILURES:
                        self._handshake_failure = (ev, value)
                else:
                    self._handshake_failure = (ev, value)

    def _peer_gone(self) -> str | None:
        """Why the peer is gone, if known: a dropped connection (network), or the other
        end of an in-process pair having closed or aborted (no monitor there)."""
        if self._gone_reason is None and self._peer_end is not None:
            peer = self._peer_end()
            if peer is None:
                self._gone_reason = "the peer's channel was discarded"
            elif peer._closed:
                self._gone_reason = peer._close_note or "the peer closed the channel"
        return self._gone_reason

    def _check_open(self, step: str) -> None:
        if self._closed:
            raise ChannelError(f"{step}: channel is closed")

    def _wait_readable(self, step: str, deadline: float) -> None:
        while True:
            remaining = deadline - time.monotonic()
            if self._sock.poll(0, zmq.POLLIN):
                return
            if self._peer_gone() is not None:
                # what the peer sent before going (its close message at least) may still be in flight
                if self._sock.poll(200, zmq.POLLIN):
                    return
                raise PeerGone(f"{step}: {self._gone_reason}")
            if remaining <= 0:
                raise PeerTimeout(f"{step}: no message from the peer within {self.timeout:g} s")
            events = dict(self._poller.poll(max(1, int(min(remaining, 1.0) * 1000))))
            if self._monitor is not None and self._monitor in events:
                self._poll_monitor()

    def _raise_handshake_failure(self, step: str, where: str = "the server") -> None:
        """Raise HandshakeFailed if the connection's CurveZMQ handshake failed (recorded by the
        monitor before a peer was accepted; a failure without detail counts only on an
        encrypted socket, where it means a wrong key rather than a reset)."""
        hf = self._handshake_failure
        if hf is None:
            return
        if hf[0] == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            try:
                if self._sock.getsockopt(zmq.MECHANISM) != zmq.CURVE:
                    return
            except zmq.ZMQError:
                return
        raise HandshakeFailed(f"{step}: " + _handshake_message(*hf, where))

    def _zsend(self, step: str, data, copy: bool) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._sock.send(data, copy=copy, flags=zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
            self._poll_monitor()
            if self._peer_gone() is not None:
                raise PeerGone(f"{step}: {self._gone_reason}")
            self._raise_handshake_failure(step)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PeerTimeout(f"{step}: the peer did not take our message within {self.timeout:g} s")
            self._sock.poll(max(1, int(min(remaining, 0.2) * 1000)), zmq.POLLOUT)

    # ---------------------------------------------------------------- send
    def _send_frame(self, step: str, kind: int, code: int, shape: tuple, payload: memoryview,
                    count: bool = True) -> None:
        nbytes = payload.nbytes
        inline = nbytes <= INLINE_MAX
        hdr = _HDR.pack(MAGIC, kind, FLAG_INLINE if inline else 0, step_tag(step), code,
                        len(shape), 0, nbytes)
        if shape:
            hdr += struct.pack(f"<{len(shape)}Q", *shape)
        if inline:
            self._zsend(step, hdr + payload.tobytes() if nbytes else hdr, copy=True)
        else:
            self._zsend(step, hdr, copy=True)
            for off in range(0, nbytes, CHUNK):
                self._zsend(step, payload[off:off + CHUNK], copy=False)
        if count:
            self.stats.record("s", nbytes, len(hdr))

    def send(self, step: str, data) -> None:
        """Send a numpy array (any supported dtype, any shape) or a bytes-like object."""
        self._check_open(step)
        if isinstance(data, np.generic):
            data = np.asarray(data)
        if isinstance(data, np.ndarray):
            if data.ndim > MAX_NDIM:
                raise ValueError(f"{step}: arrays of more than {MAX_NDIM} dimensions cannot be sent")
            code = _dtype_code(data.dtype)
            arr = data if data.flags.c_contiguous else data.copy(order="C")
            flat = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"")
            self._send_frame(step, KIND_ARRAY, code, tuple(arr.shape), flat)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            mv = memoryview(data)
            if not mv.c_contiguous:
                mv = memoryview(mv.tobytes())
            self._send_frame(step, KIND_BYTES, 0, (), mv.cast("B") if mv.nbytes else mv)
        else:
            raise TypeError(f"{step}: can send numpy arrays or bytes, not {type(data).__name__}")

    # ---------------------------------------------------------------- receive
    def _recv_header(self, step: str, deadline: float, kind: int, code: int, shape: tuple | None,
                     nbytes: int | None, max_nbytes: int | None):
        """Receive and check a header; returns (nbytes, inline_payload_view_or_None)."""
        while True:
            self._wait_readable(step, deadline)
            got = self._sock.recv_into(self._scratch)
            if self._peer_fd is not None and got >= _HDR.size and self._scratch[:2] == MAGIC and \
                    self._scratch[2] == KIND_HELLO and kind != KIND_HELLO:
                continue        # a repeated hello of a client that reconnected while queued
            return self._check_header(step, got, kind, code, shape, nbytes, max_nbytes)

    def _check_header(self, step: str, got: int, kind: int, code: int, shape: tuple | None,
                      nbytes: int | None, max_nbytes: int | None):
        buf = self._scratch
        if got > len(buf):
            raise ProtocolError(f"{step}: peer sent a frame of {got} bytes where a header was expected")
        mv = memoryview(buf)[:got]
        if got < _HDR.size or bytes(mv[:2]) != MAGIC:
            raise ProtocolError(f"{step}: peer sent a malformed frame ({got} bytes, no valid header)")
        magic, k, flags, tag, dcode, ndim, _res, n = _HDR.unpack_from(mv)
        if k == KIND_CLOSE:
            self._gone_reason = "the peer closed the channel"
            raise PeerGone(f"{step}: the peer closed the channel")
        if k == KIND_ABORT:
            msg = peer_text(bytes(mv[_HDR.size:min(got, _HDR.size + ABORT_MAX)]))
            self._gone_reason = f"the peer aborted: {msg}"
            raise PeerGone(f"{step}: the peer aborted: {msg}")
        if k != kind:
            raise ProtocolError(f"{step}: expected a {_KIND_NAMES.get(kind)} message, the peer sent "
                                f"kind {_KIND_NAMES.get(k, k)}")
        if tag != step_tag(step):
            raise ProtocolError(f"{step}: the peer sent a message for a different protocol step "
                                f"(tag {tag:08x}, expected {step_tag(step):08x}); the parties are out of step")
        if dcode != code:
            got_dt = DTYPES[dcode - 1] if 1 <= dcode <= len(DTYPES) else f"code {dcode}"
            exp_dt = DTYPES[code - 1] if code else "bytes"
            raise ProtocolError(f"{step}: expected dtype {exp_dt}, the peer sent {got_dt}")
        hlen = _HDR.size + 8 * ndim
        if ndim > MAX_NDIM or got < hlen:
            raise ProtocolError(f"{step}: malformed header (ndim {ndim})")
        dims = struct.unpack_from(f"<{ndim}Q", mv, _HDR.size) if ndim else ()
        if shape is not None and tuple(dims) != tuple(shape):
            raise ProtocolError(f"{step}: expected shape {tuple(shape)}, the peer sent {tuple(dims)}")
        if nbytes is not None and n != nbytes:
            raise ProtocolError(f"{step}: expected {nbytes} bytes, the peer announced {n}")
        if max_nbytes is not None and n > max_nbytes:
            raise ProtocolError(f"{step}: the peer announced {n} bytes, more than the {max_nbytes} allowed")
        inline = n <= INLINE_MAX
        if bool(flags & FLAG_INLINE) != inline:
            raise ProtocolError(f"{step}: framing flag does not match the payload size {n}")
        if inline:
            if got != hlen + n:
                raise ProtocolError(f"{step}: frame holds {got - hlen} payload bytes, header says {n}")
            return n, mv[hlen:hlen + n], hlen
        if got != hlen:
            raise ProtocolError(f"{step}: header frame has {got - hlen} trailing bytes")
        return n, None, hlen

    def _recv_chunks(self, step: str, deadline: float, dest: memoryview, n: int) -> None:
        for off in range(0, n, CHUNK):
            size = min(CHUNK, n - off)
            self._wait_readable(step, deadline)
            got = self._sock.recv_into(dest[off:off + size])
            if got != size:
                raise ProtocolError(f"{step}: payload chunk of {got} bytes where {size} were expected")

    def recv_array(self, step: str, dtype, shape, out: np.ndarray | None = None) -> np.ndarray:
        """Receive an array of exactly this dtype and shape (into ``out`` if given)."""
        self._check_open(step)
        dt = np.dtype(dtype)
        code = _dtype_code(dt)
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        if any(s < 0 for s in shape) or len(shape) > MAX_NDIM:
            raise ValueError(f"{step}: invalid expected shape {shape}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize if shape else dt.itemsize
        deadline = time.monotonic() + self.timeout
        n, inline, hlen = self._recv_header(step, deadline, KIND_ARRAY, code, shape, nbytes, None)
        if out is None:
            out = np.empty(shape, dtype=dt)
        elif out.dtype != dt or out.shape != shape or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"{step}: out must be a writeable C-contiguous {dt}{shape} array")
        if n:
            dest = memoryview(out.reshape(-1).view(np.uint8))
            if inline is not None:
                dest[:] = inline
            else:
                self._recv_chunks(step, deadline, dest, n)
        self.stats.record("r", n, hlen)
        return out

    def recv_bytes(self, step: str, nbytes: int | None = None, *, max_nbytes: int | None = None) -> bytes:
        """Receive a byte string of exactly ``nbytes`` bytes, or of at most ``max_nbytes``."""
        self._check_open(step)
        if (nbytes is None) == (max_nbytes is None):
            raise ValueError(f"{step}: give exactly one of nbytes and max_nbytes")
        deadline = time.monotonic() + self.timeout
        n, inline, hlen = self._recv_header(step, deadline, KIND_BYTES, 0, (), nbytes, max_nbytes)
        if inline is not None:
            data = bytes(inline)
        else:
            dest = bytearray(n)
            self._recv_chunks(step, deadline, memoryview(dest), n)
            data = bytes(dest)
        self.stats.record("r", n, hlen)
        return data

    # ---------------------------------------------------------------- exchange helpers
    def exchange(self, step: str, data: np.ndarray) -> np.ndarray:
        """Send ``data`` and receive the peer's array of the same dtype and shape.

        Sending and receiving are interleaved chunk by chunk, so that two parties
        exchanging more than the queues hold (high-water marks plus socket buffers)
        never both block in a send; memory stays bounded by the high-water marks.
        The timeout bounds the time without any progress in either direction."""
        self._check_open(step)
        arr = np.asarray(data)
        if arr.ndim > MAX_NDIM:
            raise ValueError(f"{step}: arrays of more than {MAX_NDIM} dimensions cannot be sent")
        code = _dtype_code(arr.dtype)
        arr = arr if arr.flags.c_contiguous else arr.copy(order="C")
        nbytes = arr.nbytes
        if nbytes <= INLINE_MAX:            # one frame each way: always fits in the queues
            self.send(step, arr)
            return self.recv_array(step, arr.dtype, arr.shape)
        flat = memoryview(arr.reshape(-1).view(np.uint8))
        hdr = _HDR.pack(MAGIC, KIND_ARRAY, 0, step_tag(step), code, arr.ndim, 0, nbytes)
        hdr += struct.pack(f"<{arr.ndim}Q", *arr.shape)
        out = np.empty(arr.shape, dtype=arr.dtype)
        dest = memoryview(out.reshape(-1).view(np.uint8))
        n_out = 1 + (nbytes + CHUNK - 1) // CHUNK          # header + chunks, each way
        sent = recvd = 0
        hlen = None
        deadline = time.monotonic() + self.timeout
        while sent < n_out or recvd < n_out:
            progress = False
            if sent < n_out:
                frame = hdr if sent == 0 else flat[(sent - 1) * CHUNK:sent * CHUNK]
                try:
                    self._sock.send(frame, copy=sent == 0, flags=zmq.NOBLOCK)
                    sent += 1
                    progress = True
                except zmq.Again:
                    pass
            if recvd < n_out and self._sock.poll(0, zmq.POLLIN):
                if recvd == 0:
                    _n, _inl, hlen = self._recv_header(step, deadline, KIND_ARRAY, code, arr.shape, nbytes, None)
                else:
                    off = (recvd - 1) * CHUNK
                    size = min(CHUNK, nbytes - off)
                    got = self._sock.recv_into(dest[off:off + size], flags=zmq.NOBLOCK)
                    if got != size:
                        raise ProtocolError(f"{step}: payload chunk of {got} bytes where {size} were expected")
                recvd += 1
                progress = True
            if progress:
                deadline = time.monotonic() + self.timeout
                continue
            self._poll_monitor()
            if self._peer_gone() is not None and not self._sock.poll(200, zmq.POLLIN):
                raise PeerGone(f"{step}: {self._gone_reason}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PeerTimeout(f"{step}: no progress in the exchange with the peer within {self.timeout:g} s")
            flags = (zmq.POLLOUT if sent < n_out else 0) | (zmq.POLLIN if recvd < n_out else 0)
            self._sock.poll(max(1, int(min(remaining, 0.2) * 1000)), flags)
        self.stats.record("s", nbytes, len(hdr))
        self.stats.record("r", nbytes, hlen)
        return out

    # ---------------------------------------------------------------- handshake
    def _hello(self, initiator: bool, deadline: float, what: str, where: str = "the server") -> None:
        payload = memoryview(PROTOCOL_VERSION)

        def wait():
            hellos = 1
            while True:
                remaining = deadline - time.monotonic()
                if self._sock.poll(0, zmq.POLLIN):
                    return
                self._poll_monitor()
                if initiator and self._tcp_connects > hellos:
                    # reconnected (a busy server dropped us, or a new listener is up): the
                    # hello may have died with the old connection; the listener ignores repeats
                    hellos = self._tcp_connects
                    self._send_frame("hello", KIND_HELLO, 0, (), payload, count=False)
                if initiator:
                    self._raise_handshake_failure("handshake", where)
                if remaining <= 0:
                    if initiator and self._tcp_reached:
                        raise PeerTimeout(f"handshake: {where} accepted the connection but started no session in "
                                          f"time: it is busy with another client (it serves one session at a "
                                          f"time; this client was queued until the timeout) or it is not an "
                                          f"ezprotocols party; try again later or with a longer timeout")
                    raise PeerTimeout(f"handshake: {what}")
                self._poller.poll(max(1, int(min(remaining, 0.5) * 1000)))

        if initiator:
            self._send_frame("hello", KIND_HELLO, 0, (), payload, count=False)
        wait()
        frame = self._sock.recv(copy=False)
        try:
            fd = int(frame.get(zmq.SRCFD))     # the connection the peer's hello came on
        except (zmq.ZMQError, AttributeError, ValueError, TypeError):
            fd = -1                            # unknown: any disconnection ends the session
        got = len(frame.buffer)
        if got <= len(self._scratch):
            self._scratch[:got] = frame.buffer
        _n, inline, _ = self._check_header("hello", got, KIND_HELLO, 0, (), None, 256)
        if bytes(inline) != PROTOCOL_VERSION:
            raise ProtocolError(f"handshake: peer speaks {peer_text(bytes(inline))}, expected "
                                f"{PROTOCOL_VERSION.decode()}")
        self._poll_monitor()                   # events of earlier connections that had this fd number
        self._peer_fd = fd
        if not initiator:
            self._send_frame("hello", KIND_HELLO, 0, (), payload, count=False)

    # ---------------------------------------------------------------- close
    def abort(self, reason: str) -> None:
        """Tell the peer this side failed (it gets :class:`PeerGone` with the reason), then close."""
        if self._closed:
            return
        self._close_note = f"the peer aborted: {reason}"
        if self._gone_reason is not None and self._release is not None:
            # the peer's connection is gone: the PAIR socket may already have attached the
            # next client's connection, which must not receive an abort meant for the old peer
            self._close(linger_ms=0)
            return
        try:
            msg = reason.encode("utf-8", "replace")[:ABORT_MAX]
            hdr = _HDR.pack(MAGIC, KIND_ABORT, FLAG_INLINE, 0, 0, 0, 0, len(msg))
            self._sock.send(hdr + msg, flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
        self._close(linger_ms=1000)

    def close(self) -> None:
        """Close this end; the peer's pending or next receive raises :class:`PeerGone`.

        Over a network, closing is a handshake so that everything sent before reaches a
        live peer and nobody waits for a dead one: this side sends a close message, then
        (discarding anything unread) waits up to ``min(timeout, CLOSE_WAIT)`` seconds
        for the peer's own close message or for its connection to drop.  A peer that
        is still reading gets our queued messages in that time; once it has closed (or
        is gone) nothing more can be delivered and the socket is dropped at once."""
        if self._closed:
            return
        if self._gone_reason is not None and self._release is not None:
            self._close(linger_ms=0)           # nobody to tell (see abort)
            return
        try:
            hdr = _HDR.pack(MAGIC, KIND_CLOSE, FLAG_INLINE, 0, 0, 0, 0, 0)
            self._sock.send(hdr, flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
        if self._release is None:
            # in-process: nothing to flush, but a linger keeps our unread messages alive for
            # the peer (linger 0 would drop them); it never blocks (the context is not terminated)
            self._close(linger_ms=int(self.timeout * 1000))
            return
        done = self._gone_reason is not None
        deadline = time.monotonic() + min(self.timeout, CLOSE_WAIT)
        while not done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            events = dict(self._poller.poll(max(1, int(min(remaining, 0.5) * 1000))))
            if self._sock in events:
                try:
                    got = self._sock.recv_into(self._scratch, flags=zmq.NOBLOCK)
                except zmq.ZMQError:
                    got = 0
                if got >= _HDR.size and bytes(self._scratch[:2]) == MAGIC and \
                        self._scratch[2] in (KIND_CLOSE, KIND_ABORT):
                    done = True
            if self._monitor is not None and self._monitor in events:
                self._poll_monitor()
                done = done or self._gone_reason is not None
        self._close(linger_ms=0 if done else 1000)

    def _close(self, linger_ms: int, release: bool = True) -> None:
        self._closed = True
        if self._monitor is not None:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self._monitor.close(linger=0)
        self._sock.close(linger=linger_ms)
        if release and self._release is not None:
            # blocks until queued messages reached the peer, at most linger_ms
            self._release(self._ctx)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None and et is not GeneratorExit:
            self.abort(abort_note(ev) if ev is not None else et.__name__)
        else:
            self.close()

    def __del__(self):
        # never terminate a context from the garbage collector (it may block); the
        # context of a channel that was never closed stays alive until exit
        try:
            if not self._closed:
                self._close(linger_ms=0, release=False)
        except Exception:
            pass

    def __repr__(self):
        return f"<Channel {self.name} {'closed' if self._closed else 'open'} timeout={self.timeout:g}s>"
