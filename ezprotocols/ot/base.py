"""Base OT: the "simplest OT" of Chou and Orlandi (eprint 2015/267) in the
prime-order subgroup of the RFC 3526 3072-bit MODP group, with gmpy2.

Group.  ``p`` is the RFC 3526 group 15 safe prime (``p = 2q + 1``, both prime);
the group is the subgroup of quadratic residues, of prime order ``q``, generated
by ``g = 4 = 2^2``.  Every element received from the peer is checked before use:
``1 < x < p - 1`` and Legendre symbol ``(x | p) = 1`` (in a safe-prime group the
quadratic residues are exactly the order-``q`` subgroup, so this is the full
membership test, at the cost of a Jacobi symbol instead of ``x^q``).

Exponents.  Secret exponents are uniform in ``[1, 2^256)``, from :mod:`secrets`.
This follows NIST SP 800-56A Rev. 3 for the safe-prime (MODP) groups, which
allows private keys of ``N = 2s`` bits for security strength ``s`` (here
``s = 128``, the strength NIST assigns to the 3072-bit groups), and RFC 3526
section 8, which pairs this group with exponents of about 260 bits.  Security
then rests on the discrete log with short exponents (DLSE), under which
``g^x`` for a short ``x`` is indistinguishable from a uniform group element
(Koshiba and Kurosawa, PKC 2004), so the receiver's messages still hide its
choices.  Full-length exponents would cost ~7 ms each (about 2.6 s for 128 OTs);
256-bit ones cost ~0.6 ms, and fixed-base tables cut the receiver's cost further.

Protocol, for ``n`` OTs (the sender's ``a`` and ``A`` are shared by all of them):

* sender: ``a``, ``A = g^a``; sends ``A``.
* receiver, OT i with choice ``c_i``: ``b_i``, ``B_i = g^{b_i} A^{c_i}``; sends all ``B_i``;
  key ``k_i = H(i, A, B_i, A^{b_i})``.
* sender: ``k0_i = H(i, A, B_i, B_i^a)``, ``k1_i = H(i, A, B_i, (B_i / A)^a)``.

``H`` is BLAKE2b-128 with a personalisation string and the step name (so the two
directions of a session never share keys).  Semi-honest security; this is the
setting in which the original proof of the simplest OT is sound (the issues
found later concern malicious receivers / UC security).

Elements travel as 384-byte big-endian strings.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor

import gmpy2
import numpy as np

from ..errors import ProtocolError

__all__ = ["P", "Q", "G", "ELEMENT_BYTES", "EXP_BITS", "check_element", "BaseOTSender",
           "BaseOTReceiver", "base_ot_send", "base_ot_recv"]

# RFC 3526, group 15: p = 2^3072 - 2^3008 - 1 + 2^64 * ( [2^2942 pi] + 1690314 )
_P_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64"
    "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D226"
    "1AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF")
P = gmpy2.mpz(_P_HEX, 16)
Q = (P - 1) // 2
G = gmpy2.mpz(4)
ELEMENT_BYTES = 384
EXP_BITS = 256
_PERSON = b"ezp-co15-baseot"  # BLAKE2b personalisation (<= 16 bytes)

assert P.bit_length() == 3072


def _rand_exp() -> gmpy2.mpz:
    """Uniform in [1, 2^EXP_BITS) from the OS CSPRNG."""
    return gmpy2.mpz(secrets.randbelow((1 << EXP_BITS) - 1) + 1)


def _to_bytes(x) -> bytes:
    return int(x).to_bytes(ELEMENT_BYTES, "big")


def _from_bytes(b) -> gmpy2.mpz:
    return gmpy2.mpz(int.from_bytes(bytes(b), "big"))


def check_element(x, step: str, what: str) -> None:
    """Raise ProtocolError unless ``x`` is in the order-q subgroup: 1 < x < p-1, (x|p) = 1."""
    if not (1 < x < P - 1):
        raise ProtocolError(f"{step}: {what} is not a valid group element (out of range 1 < x < p-1)")
    if gmpy2.legendre(x, P) != 1:
        raise ProtocolError(f"{step}: {what} is not in the prime-order subgroup (not a quadratic residue)")


class _FixedBase:
    """Fixed-base exponentiation with a table of ``h^(d * 2^(w k))``: an exponent of
    EXP_BITS bits then costs ceil(EXP_BITS / w) multiplications."""

    def __init__(self, h, w: int):
        self.w = w
        self.nwin = (EXP_BITS + w - 1) // w
        self.mask = (1 << w) - 1
        table = []
        base = gmpy2.mpz(h)
        for _ in range(self.nwin):
            row = [gmpy2.mpz(1), base]
            for _d in range(2, 1 << w):
                row.append(row[-1] * base % P)
            table.append(row)
            base = row[-1] * base % P      # h^(2^w * 2^(w k))
        self.table = table

    def pow(self, e) -> gmpy2.mpz:
        e = int(e)
        w, m = self.w, self.mask
        acc = gmpy2.mpz(1)
        for k, row in enumerate(self.table):
            d = (e >> (w * k)) & m
            if d:
                acc = acc * row[d] % P
        return acc


_G_TABLE: _FixedBase | None = None


def _g_table() -> _FixedBase:
    global _G_TABLE
    if _G_TABLE is None:
        _G_TABLE = _FixedBase(G, 6)
    return _G_TABLE


def _kdf(step: str, i: int, A: bytes, B: bytes, K) -> bytes:
    h = hashlib.blake2b(digest_size=16, person=_PERSON)
    h.update(step.encode())
    h.update(b"\x00")
    h.update(i.to_bytes(4, "little"))
    h.update(A)
    h.update(B)
    h.update(_to_bytes(K))
    return h.digest()


def _powmod_many(bases, e):
    """``[b^e mod P for b in bases]``; gmpy2 releases the GIL, so split over 2 threads."""
    bases = list(bases)
    nthreads = min(2, os.cpu_count() or 1)
    if nthreads < 2 or len(bases) < 16:
        return gmpy2.powmod_base_list(bases, e, P)
    half = len(bases) // 2
    with ThreadPoolExecutor(nthreads) as ex:
        f = ex.submit(gmpy2.powmod_base_list, bases[half:], e, P)
        first = gmpy2.powmod_base_list(bases[:half], e, P)
        return list(first) + list(f.result())


class BaseOTSender:
    """Sender side of ``n`` base OTs: ``first_message()`` -> A; ``finish(B)`` -> (k0, k1)."""

    def __init__(self, n: int, step: str):
        self.n = int(n)
        self.step = step
        self._a = _rand_exp()
        self._A = _g_table().pow(self._a)
        self._A_bytes = _to_bytes(self._A)

    def first_message(self) -> np.ndarray:
        return np.frombuffer(self._A_bytes, dtype=np.uint8)

    def finish(self, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Check the receiver's ``uint8[n, 384]`` elements and derive the key pairs."""
        if B.shape != (self.n, ELEMENT_BYTES):
            raise ProtocolError(f"{self.step}.B: expected {self.n} group elements")
        Bs = [_from_bytes(B[i]) for i in range(self.n)]
        for i, x in enumerate(Bs):
            check_element(x, f"{self.step}.B", f"element {i}")
        K0 = _powmod_many(Bs, self._a)
        T_inv = gmpy2.invert(gmpy2.powmod(self._A, self._a, P), P)    # (A^a)^-1
        k0 = np.empty((self.n, 16), np.uint8)
        k1 = np.empty((self.n, 16), np.uint8)
        for i in range(self.n):
            Bb = B[i].tobytes()
            k0[i] = np.frombuffer(_kdf(self.step, i, self._A_bytes, Bb, K0[i]), np.uint8)
            k1[i] = np.frombuffer(_kdf(self.step, i, self._A_bytes, Bb, K0[i] * T_inv % P), np.uint8)
        self._a = None
        return k0, k1


class BaseOTReceiver:
    """Receiver side: ``respond(A)`` -> B (``uint8[n, 384]``); ``finish()`` -> keys ``uint8[n, 16]``."""

    def __init__(self, choices: np.ndarray, step: str):
        c = np.asarray(choices, dtype=np.uint8)
        if c.ndim != 1 or (c.size and c.max() > 1):
            raise ValueError("base OT choices must be a 1-d array of 0/1")
        self.c = c
        self.n = c.shape[0]
        self.step = step
        self._b = [_rand_exp() for _ in range(self.n)]
        gt = _g_table()
        self._gb = [gt.pow(b) for b in self._b]     # independent of A: can run before it arrives
        self._keys = None

    def respond(self, A_arr: np.ndarray) -> np.ndarray:
        if A_arr.shape != (ELEMENT_BYTES,):
            raise ProtocolError(f"{self.step}.A: expected one group element")
        A_bytes = A_arr.tobytes()
        A = _from_bytes(A_bytes)
        check_element(A, f"{self.step}.A", "the sender's element A")
        B = np.empty((self.n, ELEMENT_BYTES), np.uint8)
        B_bytes = []
        for i in range(self.n):
            x = self._gb[i]
            cand = (x, x * A % P)                   # both computed: no branch on c_i
            bb = _to_bytes(cand[int(self.c[i])])
            B_bytes.append(bb)
            B[i] = np.frombuffer(bb, np.uint8)
        At = _FixedBase(A, 5)
        keys = np.empty((self.n, 16), np.uint8)
        for i in range(self.n):
            keys[i] = np.frombuffer(_kdf(self.step, i, A_bytes, B_bytes[i], At.pow(self._b[i])), np.uint8)
        self._keys = keys
        self._b = self._gb = None
        return B

    def finish(self) -> np.ndarray:
        if self._keys is None:
            raise RuntimeError("respond() first")
        return self._keys


def run_base_ot_send(group, ch, n: int, step: str) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n`` base OTs as sender in ``group`` (this module or :mod:`.ec_base`): send A,
    receive the n points B with their exact expected shape, derive the key pairs."""
    s = group.BaseOTSender(n, step)
    ch.send(f"{step}.A", s.first_message())
    B = ch.recv_array(f"{step}.B", np.uint8, (n, group.ELEMENT_BYTES))
    return s.finish(B)


def run_base_ot_recv(group, ch, choices, step: str) -> np.ndarray:
    """Run base OTs as receiver in ``group`` with ``choices`` (``uint8[n]`` of 0/1)."""
    r = group.BaseOTReceiver(choices, step)
    A = ch.recv_array(f"{step}.A", np.uint8, (group.ELEMENT_BYTES,))
    ch.send(f"{step}.B", r.respond(A))
    return r.finish()


def base_ot_send(ch, n: int, step: str) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n`` base OTs as sender over channel ``ch``; returns ``(k0, k1)``, ``uint8[n, 16]`` each."""
    return run_base_ot_send(sys.modules[__name__], ch, n, step)


def base_ot_recv(ch, choices, step: str) -> np.ndarray:
    """Run base OTs as receiver with ``choices`` (``uint8[n]`` of 0/1); returns ``k_c``, ``uint8[n, 16]``."""
    return run_base_ot_recv(sys.modules[__name__], ch, choices, step)
