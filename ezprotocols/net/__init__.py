"""Channels between the two parties: ZeroMQ PAIR sockets over tcp:// or ipc://, or an
in-process pair (inproc://) for tests and local demos.

>>> from ezprotocols.net import local_pair
>>> a, b = local_pair()
>>> import numpy as np
>>> a.send("x", np.arange(3, dtype=np.uint64))
>>> b.recv_array("x", np.uint64, (3,)).tolist()
[0, 1, 2]
>>> a.close(); b.close()
"""
from __future__ import annotations

import re
import secrets
import time
import weakref

import zmq

from ..errors import PeerTimeout
from .channel import CHUNK, DEFAULT_TIMEOUT, INLINE_MAX, HDR_MAX, MONITOR_EVENTS, Channel
from .stats import Counters, Stats

__all__ = ["Channel", "Counters", "Stats", "listen", "connect", "local_pair", "curve_keypair", "DEFAULT_TIMEOUT",
           "check_address", "is_loopback"]

HWM = 64                        # queued messages per direction (each at most CHUNK bytes)
MAX_FRAME = CHUNK + HDR_MAX + 64  # inbound frame cap: nothing larger is ever allocated
ZAP_DOMAIN = "ezprotocols"      # set on every network socket (see _configure)


_LIVE_CONTEXTS: set = set()


def _context() -> zmq.Context:
    """The process-wide ZeroMQ context, used by in-process pairs (inproc delivers at
    once, nothing to flush).  Never terminated."""
    return zmq.Context.instance()


def _own_context() -> zmq.Context:
    """A context for one network channel.  ``Channel.close()`` terminates it, which is
    what flushes queued messages to the peer (bounded by the linger time).  It stays
    referenced from ``_LIVE_CONTEXTS`` until then, so the garbage collector never
    terminates it (that could block forever inside a collection)."""
    ctx = zmq.Context(io_threads=1)
    _LIVE_CONTEXTS.add(ctx)
    return ctx


_ADDRESS = re.compile(r"^(tcp://[^/\s]+:(\d{1,5}|\*)|ipc://\S+|inproc://\S+)$")


def check_address(address, what: str = "address") -> None:
    """Raise ValueError unless ``address`` is ``tcp://host:port`` (port 1..65535 or ``*``),
    ``ipc:///path`` or ``inproc://name``."""
    m = _ADDRESS.match(address) if isinstance(address, str) else None
    if m is None:
        raise ValueError(f"{what}: bad address {address!r}: expected tcp://host:port, ipc:///path or inproc://name")
    port = m.group(2)
    if port is not None and port != "*" and not 1 <= int(port) <= 65535:
        raise ValueError(f"{what}: bad address {address!r}: port {int(port)} is not in 1..65535")


_check_address = check_address


def is_loopback(address: str) -> bool:
    """True for addresses that never leave this machine (ipc, inproc, tcp to 127.x, ::1, localhost)."""
    if not address.startswith("tcp://"):
        return True
    host = address[6:].rsplit(":", 1)[0].strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def _discard(sock: zmq.Socket, mon: zmq.Socket | None) -> None:
    """Close a socket that failed to bind/connect, and its monitor: a context with an open
    socket would make the termination that follows wait forever."""
    if mon is not None:
        try:
            sock.disable_monitor()
        except zmq.ZMQError:
            pass
        mon.close(linger=0)
    sock.close(linger=0)


def _release_context(ctx: zmq.Context) -> None:
    """Terminate a channel's own context (all its sockets are closed by then)."""
    try:
        ctx.term()
    finally:
        _LIVE_CONTEXTS.discard(ctx)


def _configure(sock: zmq.Socket, *, network: bool) -> None:
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    sock.setsockopt(zmq.LINGER, 2000)
    if network:
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 10000)
        sock.setsockopt(zmq.HEARTBEAT_TTL, 10000)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        # A non-empty ZAP domain makes libzmq refuse unversioned (ZMTP 1.0) peers: random
        # bytes on the port would otherwise be taken for a legacy peer and attached as the
        # PAIR socket's one pipe, locking the real client out.  (No ZAP handler is needed
        # for plaintext sockets: ZAP_ENFORCE_DOMAIN stays off.)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())


def _monitored(sock: zmq.Socket) -> zmq.Socket:
    return sock.get_monitor_socket(MONITOR_EVENTS)


def curve_keypair() -> tuple[bytes, bytes]:
    """A new CurveZMQ key pair ``(public, secret)`` (Z85-encoded, 40 bytes each)."""
    return zmq.curve_keypair()


def _z85_key(k, what: str) -> bytes:
    k = k.encode() if isinstance(k, str) else bytes(k)
    if len(k) != 40:
        raise ValueError(f"{what} must be a Z85-encoded CurveZMQ key (40 characters)")
    return k


class _AllowList:
    """ZAP credentials callback: accept exactly the listed client public keys."""

    def __init__(self, keys):
        self.keys = {_z85_key(k, "allowed client key") for k in keys}

    def callback(self, domain, key):          # pyzmq passes the Z85-encoded client key
        return bytes(key) in self.keys


def listen(address: str, timeout: float = DEFAULT_TIMEOUT, *, accept_timeout: float | None = None,
           on_bound=None, curve_keypair: tuple | None = None, allowed_clients=None) -> Channel:
    """Bind ``address`` (``tcp://host:port`` or ``ipc:///path``), wait for one peer to
    :func:`connect` and complete the handshake, and return the channel.

    ``accept_timeout`` (default: ``timeout``) bounds the wait for the peer;
    ``on_bound(endpoint)`` is called once the socket is bound (useful with port ``*``).

    Between organisations, pass ``curve_keypair=(public, secret)`` (see
    :func:`curve_keypair`): the channel is then encrypted and authenticated with
    CurveZMQ, the client proving it talks to the holder of the secret key.  With
    ``allowed_clients`` (a list of client public keys) only those clients are
    accepted; without it any client that knows our public key may connect.
    """
    if allowed_clients is not None and curve_keypair is None:
        raise ValueError("allowed_clients needs curve_keypair")
    _check_address(address, "listen")
    ctx = _own_context()
    sock = ctx.socket(zmq.PAIR)
    auth = mon = None
    try:
        _configure(sock, network=not address.startswith("inproc://"))
        if curve_keypair is not None:
            pub, sec = (_z85_key(k, "curve key") for k in curve_keypair)
            if allowed_clients is not None:
                from zmq.auth.thread import ThreadAuthenticator
                auth = ThreadAuthenticator(ctx)
                auth.start()
                auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=_AllowList(allowed_clients))
            sock.curve_secretkey = sec
            sock.curve_publickey = pub
            sock.curve_server = True
        mon = _monitored(sock)
        sock.bind(address)
    except Exception:
        _discard(sock, mon)
        if auth is not None:
            auth.stop()
        _release_context(ctx)
        raise

    def release(c, _auth=auth):
        if _auth is not None:
            _auth.stop()
        _release_context(c)

    ch = Channel(ctx, sock, timeout=timeout, monitor=mon, name=f"listen {address}", release=release)
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    if on_bound is not None:
        on_bound(endpoint)
    wait = timeout if accept_timeout is None else accept_timeout
    try:
        ch._hello(initiator=False, deadline=time.monotonic() + wait,
                  what=f"no peer connected to {endpoint} within {wait:g} s")
    except BaseException:
        ch._close(linger_ms=0)
        raise
    ch.endpoint = endpoint
    return ch


def connect(address: str, timeout: float = DEFAULT_TIMEOUT, *, connect_timeout: float | None = None,
            curve_server_key=None, curve_keypair: tuple | None = None) -> Channel:
    """Connect to a party that :func:`listen`\\ s on ``address`` and return the channel.

    Retries until ``connect_timeout`` (default: ``timeout``) and then raises
    :class:`PeerTimeout` saying that nobody answered at that address.

    ``curve_server_key``: the listener's CurveZMQ public key; the channel is then
    encrypted and the server authenticated (a wrong or missing key, or a server that
    does not accept this client, raises :class:`~ezprotocols.errors.HandshakeFailed`
    at once).  ``curve_keypair``: this client's key pair (an ephemeral one by default;
    give a fixed one when the server only accepts listed clients).
    """
    if curve_keypair is not None and curve_server_key is None:
        raise ValueError("curve_keypair needs curve_server_key")
    _check_address(address, "connect")
    ctx = _own_context()
    sock = ctx.socket(zmq.PAIR)
    mon = None
    try:
        _configure(sock, network=not address.startswith("inproc://"))
        if curve_server_key is not None:
            pub, sec = (zmq.curve_keypair() if curve_keypair is None
                        else tuple(_z85_key(k, "curve key") for k in curve_keypair))
            sock.curve_serverkey = _z85_key(curve_server_key, "curve_server_key")
            sock.curve_publickey = pub
            sock.curve_secretkey = sec
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        mon = _monitored(sock)
        sock.connect(address)
    except Exception:
        _discard(sock, mon)
        _release_context(ctx)
        raise
    ch = Channel(ctx, sock, timeout=timeout, monitor=mon, name=f"connect {address}", release=_release_context)
    wait = timeout if connect_timeout is None else connect_timeout
    try:
        ch._hello(initiator=True, deadline=time.monotonic() + wait,
                  what=f"could not reach a party at {address} within {wait:g} s (is it listening?)",
                  where=address)
    except BaseException:
        ch._close(linger_ms=0)
        raise
    ch.endpoint = address
    return ch


def local_pair(timeout: float = DEFAULT_TIMEOUT) -> tuple[Channel, Channel]:
    """Two connected channels in this process (inproc transport, one shared context)."""
    ctx = _context()
    addr = f"inproc://ezp-{secrets.token_hex(8)}"
    a = ctx.socket(zmq.PAIR)
    b = ctx.socket(zmq.PAIR)
    for s in (a, b):
        _configure(s, network=False)
    a.bind(addr)
    b.connect(addr)
    ca = Channel(ctx, a, timeout=timeout, name="local-0")
    cb = Channel(ctx, b, timeout=timeout, name="local-1")
    ca._peer_end, cb._peer_end = weakref.ref(cb), weakref.ref(ca)   # liveness without a monitor
    return ca, cb


