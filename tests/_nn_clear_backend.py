"""TEST ONLY, NOT SECURE: a stand-in for the protocol layers that opens every
shared value to both parties and re-shares the result with public randomness.

It exercises the secure executor's data flow (local ops on shares, message
flow, validation aggregation, errors) while the arithmetic and hybrid layers
are not available.  Its truncation is exact (floor), so results must equal the
plaintext executor bit for bit.  Never use it outside tests.
"""
import numpy as np

from ezprotocols.nn.secure import Backend
from ezprotocols.nn.plaintext import conv_cols, conv_out, conv_weight_mat

U64 = np.uint64


class ClearBackend(Backend):
    def __init__(self, session):          # no layer check: this backend needs none
        self.s = session
        self.prg = session.shared_prg()
        self.n = 0

    def _open(self, share):
        self.n += 1
        share = np.ascontiguousarray(share, dtype=U64)
        self.s.channel.send(f"clear.open{self.n}", share)
        other = self.s.channel.recv_array(f"clear.open{self.n}", U64, share.shape)
        return (share + other).view(np.int64)

    def _share(self, value):
        value = np.ascontiguousarray(value, dtype=np.int64).view(U64)
        r = self._rand(value.shape)
        return value - r if self.s.role == 0 else r

    def _rand(self, shape):
        n = int(np.prod(shape))
        return self.prg.random_uint64(max(1, n))[:n].reshape(shape)

    def share_input(self, x, owner, shape):
        r = self._rand(tuple(shape))
        return np.ascontiguousarray(x, np.int64).view(U64) - r if self.s.role == owner else r

    def reveal(self, share, to=None):
        v = self._open(share)
        return v if to is None or to == self.s.role else None

    def linear(self, x, kind, W, wshape, attrs, key=None):
        v = self._open(x)
        Wv = self._p0_public(W, wshape)
        if kind == "matmul":
            y = v @ Wv
        else:
            cols, OH, OW = conv_cols(v, wshape[2:], attrs["strides"], attrs["pads"], attrs["dilations"],
                                     attrs["group"])
            y = conv_out(np.matmul(cols, conv_weight_mat(Wv, attrs["group"])), v.shape[0], OH, OW)
        return self._share(y)

    def _p0_public(self, c, shape):
        self.n += 1
        if self.s.role == 0:
            self.s.channel.send(f"clear.w{self.n}", np.ascontiguousarray(c, np.int64))
            return c
        return self.s.channel.recv_array(f"clear.w{self.n}", np.int64, tuple(shape))

    def mul_p0(self, x, c, cshape):
        return self._share(self._open(x) * self._p0_public(c, cshape))

    def mul(self, a, b):
        return self._share(self._open(a) * self._open(b))

    def matmul(self, a, b):
        return self._share(self._open(a) @ self._open(b))

    def trunc(self, x, f):
        return self._share(self._open(x) >> f)

    def relu(self, x):
        return self._share(np.maximum(self._open(x), 0))

    def max(self, x, axis=-1):
        return self._share(self._open(x).max(axis=axis))

    def argmax(self, x):
        return self._share(self._open(x).argmax(axis=-1))

    def gt_zero(self, x, bits=64):
        return self._share((self._open(x) > 0).astype(np.int64))

    def prepare(self, plan, batch, count=1):
        pass


class ArithClearNonlinBackend(Backend):
    """TEST ONLY, NOT SECURE: the real arithmetic layer (inputs, Beaver products,
    truncation, P0-weight layers prepared offline through OT) with the non-linear
    ops (relu, max, argmax, equality) done in the clear.  Lets the executor's use
    of the arithmetic layer be tested before the hybrid layer exists."""

    def __init__(self, session):
        super().__init__(session)
        self.prg = session.shared_prg()
        self.n = 0

    _open = ClearBackend._open
    _rand = ClearBackend._rand
    _share = ClearBackend._share

    def relu(self, x):
        return self._share(np.maximum(self._open(x), 0))

    def max(self, x, axis=-1):
        return self._share(self._open(x).max(axis=axis))

    def argmax(self, x):
        return self._share(self._open(x).argmax(axis=-1))

    def gt_zero(self, x, bits=64):
        return self._share((self._open(x) > 0).astype(np.int64))
