"""Exceptions shared by every layer."""


class EzpError(Exception):
    """Base class of the errors ezprotocols raises on purpose."""


class ProtocolError(EzpError):
    """The peer sent something the protocol step did not expect (type, dtype, shape,
    length, tag or value), or the two parties disagree on the protocol.  The message
    names the step."""


class ChannelError(EzpError):
    """The channel to the peer failed."""


class PeerTimeout(ChannelError, TimeoutError):
    """The peer stayed silent (or stopped reading) past the channel timeout."""


class PeerGone(ChannelError, ConnectionError):
    """The peer closed the channel, aborted, or its process disappeared."""


class CircuitError(EzpError, ValueError):
    """A circuit description is malformed (the message gives the line when read from a file)."""
