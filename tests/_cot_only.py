"""A correlated-OT source implementing only the interface's core (test helper shared by
test_backends and test_tweak_domains)."""
from ezprotocols.ot.source import CotSource


class CotOnly(CotSource):
    """Implements only the interface's core (through IKNP's correlated OT): every other
    flavour comes from the base class."""

    def __init__(self, session):
        super().__init__(session)
        self.inner = session.engine("ot", "iknp")

    def setup(self):
        self.inner.setup()

    @property
    def delta(self):
        return self.inner.delta

    def send_cot(self, n, *, out=None):
        return self.inner.send_cot(n, out=out)

    def recv_cot(self, bits, *, out=None):
        return self.inner.recv_cot(bits, out=out)
