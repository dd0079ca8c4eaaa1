"""atheris fuzz target for long runs outside CI: arbitrary bytes as the
frames a peer sends, against the receiving code of the channel and the architecture
parser.  Anything but a ProtocolError/PeerGone/PeerTimeout (or a hang) is a bug.

    pip install atheris
    python scripts/fuzz_channel.py -max_total_time=3600 [corpus_dir]

The in-CI counterpart is tests/test_fuzz_protocols.py (hypothesis, scripted peers).
"""
import sys

import atheris

with atheris.instrument_imports():
    import numpy as np

    from ezprotocols.errors import PeerGone, PeerTimeout, ProtocolError
    from ezprotocols.net import local_pair
    from ezprotocols.nn.plan import parse_architecture

_A, _B = local_pair(timeout=0.05)
EXPECT = [
    lambda ch: ch.recv_array("s", np.uint64, (4,)),
    lambda ch: ch.recv_array("s", np.uint8, (3, 5)),
    lambda ch: ch.recv_bytes("s", max_nbytes=1 << 16),
    lambda ch: ch.recv_bytes("s", 0),
    lambda ch: ch.exchange("s", np.zeros(70000, np.uint8)),
]


def one_input(data: bytes) -> None:
    global _A, _B
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, len(EXPECT))
    if which == len(EXPECT):
        try:
            parse_architecture(fdp.ConsumeBytes(fdp.remaining_bytes()))
        except ProtocolError:
            pass
        return
    nframes = fdp.ConsumeIntInRange(1, 4)
    for _ in range(nframes):
        _A._sock.send(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2048)))
    try:
        EXPECT[which](_B)
    except (ProtocolError, PeerGone, PeerTimeout):
        pass
    if _B.closed or _A.closed or _B._gone_reason:      # an abort/close frame: start afresh
        _A.close()
        _B.close()
        _A, _B = local_pair(timeout=0.05)
    while _B._sock.poll(0):                             # leftovers of this input
        _B._sock.recv()


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
