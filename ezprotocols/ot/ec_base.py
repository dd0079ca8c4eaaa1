"""Base OT on an elliptic curve: the "simplest OT" of Chou and Orlandi (eprint
2015/267) in the prime-order subgroup of Ed25519 (order ``L = 2^252 +
27742317777372353535851937790883648493``, RFC 8032), with libsodium's group
operations from the PyNaCl wheel, batched in C (:mod:`ezprotocols._ext.ec`).
This is the default base OT; the RFC 3526 MODP version (:mod:`.base`) stays
selectable (``base_ot="modp"``).

Protocol, for ``n`` OTs (the sender's ``a``, ``A`` and ``T = aA`` are shared by all):

* sender: ``a`` uniform mod L, ``A = aG``; sends ``A`` (32 bytes).
* receiver, OT i with choice ``c_i``: ``b_i`` uniform mod L, ``B_i = b_i G + c_i A``
  (both candidates computed, one selected with a mask); sends all ``B_i``;
  its key ``k_{c_i} = H(i, A, B_i, b_i A)``.
* sender: ``k0_i = H(i, A, B_i, a B_i)``, ``k1_i = H(i, A, B_i, a B_i - T)``.

``H`` is BLAKE2b-128 with personalisation ``ezp-co15-ed25519``, the OT index as
salt, and a 32-byte digest of the step name first in the input (so the two
directions of a session, and every run, derive unrelated keys).  Scalars are
64 bytes from :mod:`secrets` reduced mod L (bias below 2^-250).

Validation.  Every point from the peer is checked before use: the receiver runs
libsodium's ``crypto_core_ed25519_is_valid_point`` on ``A`` (canonical encoding,
on the curve, order L, so not the identity or a small-order point); on the sender,
``crypto_scalarmult_ed25519_noclamp`` performs the same checks on each ``B_i`` and
refuses a zero product.  A refused point raises :class:`ProtocolError` naming the
step and the index.

What each party sees (semi-honest): the sender sees ``B_i``, which is a uniform
group element whatever ``c_i`` is (``b_i G`` is uniform and independent of ``A``),
so its view is simulatable without the choices; the receiver sees ``A`` (uniform)
and its own ``b_i``; the other key hashes ``a B_i - c'A``-type values it cannot
compute under CDH in the random-oracle model (the setting of the original proof;
the later issues with this protocol concern malicious receivers / UC security).

Cost: one fixed-base and one variable-base scalar multiplication per OT on the
receiver, one variable-base multiplication per OT on the sender (~10 ms for 128
OTs on each side, against ~90 ms in the 3072-bit group).  Wire: ``A`` is
``uint8[32]``, ``B`` is ``uint8[n, 32]``.
"""
from __future__ import annotations

import hashlib
import secrets
import sys

import numpy as np

from .._ext import ec as _ec
from ..errors import ProtocolError
from .base import run_base_ot_recv, run_base_ot_send

__all__ = ["ELEMENT_BYTES", "BaseOTSender", "BaseOTReceiver", "base_ot_send", "base_ot_recv",
           "available"]

ELEMENT_BYTES = 32


def available() -> bool:
    """True when PyNaCl's libsodium provides every function this module needs."""
    try:
        _ec.init()
    except RuntimeError:
        return False
    return True


def _ctx(step: str) -> np.ndarray:
    d = hashlib.blake2b(step.encode(), digest_size=32, person=b"ezp-co15-ctx").digest()
    return np.frombuffer(d, np.uint8)


class BaseOTSender:
    """Sender side of ``n`` base OTs: ``first_message()`` -> A; ``finish(B)`` -> (k0, k1)."""

    def __init__(self, n: int, step: str):
        self.n = int(n)
        self.step = step
        _ec.init()
        self._a, self._A, self._T = _ec.send_first(np.frombuffer(secrets.token_bytes(64), np.uint8))

    def first_message(self) -> np.ndarray:
        return self._A

    def finish(self, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Check the receiver's ``uint8[n, 32]`` points and derive the key pairs."""
        if not isinstance(B, np.ndarray) or B.dtype != np.uint8 or B.shape != (self.n, ELEMENT_BYTES):
            raise ProtocolError(f"{self.step}.B: expected {self.n} points of {ELEMENT_BYTES} bytes")
        if self._a is None:
            raise RuntimeError("finish() called twice")
        res = _ec.send_finish(_ctx(self.step), self._a, self._A, self._T, np.ascontiguousarray(B))
        self._a = None
        if isinstance(res, int):
            raise ProtocolError(f"{self.step}.B: point {res} is not a valid element of the prime-order "
                                f"Ed25519 subgroup (non-canonical, off the curve, small order or identity)")
        return res


class BaseOTReceiver:
    """Receiver side: ``respond(A)`` -> B (``uint8[n, 32]``); ``finish()`` -> keys ``uint8[n, 16]``."""

    def __init__(self, choices: np.ndarray, step: str):
        c = np.asarray(choices, dtype=np.uint8)
        if c.ndim != 1 or (c.size and c.max() > 1):
            raise ValueError("base OT choices must be a 1-d array of 0/1")
        self.c = np.ascontiguousarray(c)
        self.n = c.shape[0]
        self.step = step
        _ec.init()
        self._keys = None

    def respond(self, A: np.ndarray) -> np.ndarray:
        if not isinstance(A, np.ndarray) or A.dtype != np.uint8 or A.shape != (ELEMENT_BYTES,):
            raise ProtocolError(f"{self.step}.A: expected one point of {ELEMENT_BYTES} bytes")
        A = np.ascontiguousarray(A)
        if not _ec.is_valid_point(A):
            raise ProtocolError(f"{self.step}.A: the sender's point A is not a valid element of the "
                                f"prime-order Ed25519 subgroup (non-canonical, off the curve, small order "
                                f"or identity)")
        rand = np.frombuffer(secrets.token_bytes(64 * self.n), np.uint8)
        res = _ec.recv(_ctx(self.step), A, self.c, rand)
        if isinstance(res, int):     # only a zero scalar (probability 2^-250) gets here
            raise RuntimeError(f"{self.step}: degenerate scalar at OT {res}")
        B, self._keys = res
        return B

    def finish(self) -> np.ndarray:
        if self._keys is None:
            raise RuntimeError("respond() first")
        return self._keys


def base_ot_send(ch, n: int, step: str) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n`` base OTs as sender over channel ``ch``; returns ``(k0, k1)``, ``uint8[n, 16]`` each."""
    return run_base_ot_send(sys.modules[__name__], ch, n, step)


def base_ot_recv(ch, choices, step: str) -> np.ndarray:
    """Run base OTs as receiver with ``choices`` (``uint8[n]`` of 0/1); returns ``k_c``, ``uint8[n, 16]``."""
    return run_base_ot_recv(sys.modules[__name__], ch, choices, step)
