"""ezprotocols: two-party secure computation for machine learning.

Semi-honest security, kappa = 128, sigma = 40, no trusted third party in any
default path.  See README.md and DESIGN.md.
"""
from . import _ext  # noqa: F401  (first: refuses CPUs without AES-NI)
from ._ext.crypto import Prg
from .errors import ChannelError, CircuitError, EzpError, HandshakeFailed, PeerGone, PeerTimeout, ProtocolError
from . import net
from .session import Session
from . import ot  # noqa: E402  (registers session.ot)
from . import gc  # noqa: E402  (registers session.yao and session.gc)
from . import arith  # noqa: E402  (registers session.input/reveal, session.triples)
from .arith import ArithTensor, PrivateConv2d, PrivateLinear  # noqa: E402
from . import protocols  # noqa: E402  (hybrid ops; comparison operators on ArithTensor)
from .protocols import BoolTensor, argmax, compare, max, maxpool2d, relu  # noqa: E402,A004
from . import nn  # noqa: E402  (ONNX front end, secure inference and validation)

__version__ = "0.1.0"

__all__ = [
    "Prg", "Session", "net", "ot", "gc", "arith", "protocols", "nn",
    "ArithTensor", "PrivateLinear", "PrivateConv2d", "BoolTensor", "relu", "compare", "max", "argmax", "maxpool2d",
    "EzpError", "ProtocolError", "ChannelError", "PeerTimeout", "PeerGone", "HandshakeFailed", "CircuitError",
]
