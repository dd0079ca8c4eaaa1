"""Exceptions shared by every layer."""


class EzpError(Exception):
    """Base class of the errors ezprotocols raises on purpose."""


class ProtocolError(EzpError):
    """The peer sent something the protocol step did not expect (type, dtype, shape,
    length, tag or value), or the two parties disagree on the protocol.  The message
    names the step."""


class RequestRefused(ProtocolError):
    """A well-formed request that this party's policy refuses (the message says which
    rule: a mode the owner does not serve, too few samples, too large a batch, the
    memory budget).  Its text is sent to the peer."""


class ChannelError(EzpError):
    """The channel to the peer failed."""


class PeerTimeout(ChannelError, TimeoutError):
    """The peer stayed silent (or stopped reading) past the channel timeout."""


class PeerGone(ChannelError, ConnectionError):
    """The peer closed the channel, aborted, or its process disappeared."""


class ServerBusy(ChannelError):
    """The model owner runs as many sessions as it serves at once and its wait queue
    is full (or it keeps none): refused at once, try again later."""


class HandshakeFailed(ChannelError, ConnectionError):
    """The encrypted (CurveZMQ) handshake with the peer failed: a wrong or missing
    server key, a client the server does not accept, or one side encrypting and the
    other not.  Reported at once, not after the timeout."""


class CircuitError(EzpError, ValueError):
    """A circuit description is malformed (the message gives the line when read from a file)."""


#: longest peer-supplied text ever shown (abort reasons, version strings)
PEER_TEXT_MAX = 200


def peer_text(raw, limit: int = PEER_TEXT_MAX) -> str:
    """Text that came from the peer, safe to print: decoded as UTF-8, every control
    character (escape codes included), backslash and non-ASCII character escaped,
    cut to ``limit`` characters."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[:4 * limit]).decode("utf-8", "replace")
    raw = str(raw)[:4 * limit]
    out = []
    for c in raw:
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif 0x20 <= o < 0x7F:
            out.append(c)
        elif o < 0x100:
            out.append(f"\\x{o:02x}")
        else:
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    s = "".join(out)
    return s if len(s) <= limit else s[:limit] + "..."


def abort_note(exc: BaseException) -> str:
    """What to tell the peer when this side fails with ``exc``: the text of a protocol
    error (it is about the peer's own messages) and only the kind of anything else (a
    local failure's text may carry private values: a label, a shape, an overflow)."""
    if isinstance(exc, ProtocolError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__} (details withheld; see the peer's log)"
