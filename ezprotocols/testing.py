"""Test helpers: both parties of a protocol in one process (see :mod:`ezprotocols.runner`).

>>> from ezprotocols.testing import run_pair
>>> run_pair(lambda s: s.role, lambda s: s.role)
(0, 1)
"""
from .runner import free_tcp_port, run_pair

__all__ = ["run_pair", "free_tcp_port"]
