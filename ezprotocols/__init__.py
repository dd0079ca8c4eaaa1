"""ezprotocols: two-party secure computation for machine learning.

Semi-honest security, kappa = 128, sigma = 40, no trusted third party in any
default path.  See README.md and DESIGN.md.
"""
from . import _ext  # noqa: F401  (first: refuses CPUs without AES-NI)
from ._ext.crypto import Prg
from .errors import (ChannelError, CircuitError, EzpError, HandshakeFailed, PeerGone, PeerTimeout, ProtocolError,
                     ServerBusy)
from . import net
from .session import Session
from . import backends, ot, gc, arith, protocols, nn  # noqa: E402  (layers, bottom up; no import side effects)
from .arith import ArithTensor, PrivateConv2d, PrivateLinear  # noqa: E402
from .protocols import BoolTensor, argmax, compare, max, maxpool2d, relu  # noqa: E402,A004

__version__ = "0.1.0"

__all__ = [
    "Prg", "Session", "backends", "net", "ot", "gc", "arith", "protocols", "nn",
    "ArithTensor", "PrivateLinear", "PrivateConv2d", "BoolTensor", "relu", "compare", "max", "argmax", "maxpool2d",
    "EzpError", "ProtocolError", "ChannelError", "PeerTimeout", "PeerGone", "HandshakeFailed", "ServerBusy",
    "CircuitError",
]
