"""Figures of the foundation (kernels): PRG bytes/s, hash blocks/s, transpose bytes/s
and 1 GiB loopback channel throughput, each beside ``openssl speed -evp
aes-128-ecb`` measured in the same run.

    python bench/figures_foundation.py [--json]
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_foundation import _throughput  # noqa: E402
from bench.common import best_of, fmt_rate, openssl_aes_ecb  # noqa: E402
from ezprotocols import Prg  # noqa: E402
from ezprotocols._ext import crypto  # noqa: E402


def main():
    ref = openssl_aes_ecb()
    prg = Prg()
    n = 1 << 22                                   # 64 MiB of blocks
    buf = np.empty((n, 16), np.uint8)
    out = np.empty((n, 16), np.uint8)
    prg.fill(buf)
    out.fill(0)
    rows = {}
    t = best_of(lambda: prg.fill(buf))
    rows["prg_bytes_per_s"] = buf.nbytes / t
    for name, fn in (("cr", crypto.cr_hash), ("ccr", crypto.ccr_hash), ("tccr", crypto.tccr_hash)):
        t = best_of(lambda: fn(buf, out=out))
        rows[f"{name}_hash_blocks_per_s"] = n / t
    cols = 1 << 24
    mat = prg.random_uint8((128, cols // 8))
    tout = np.zeros((cols, 16), np.uint8)
    back = np.zeros((128, cols // 8), np.uint8)
    rows["transpose_128xn_bytes_per_s"] = mat.nbytes / best_of(lambda: crypto.transpose_bits(mat, 128, cols, out=tout))
    rows["transpose_nx128_bytes_per_s"] = mat.nbytes / best_of(lambda: crypto.transpose_bits(tout, cols, 128, out=back))
    del buf, out, mat, tout, back
    for tr in ("tcp", "ipc", "local"):
        rows[f"channel_1gib_{tr}_warm_GBps"] = max(_throughput(tr, 1 << 30, warm=True) for _ in range(2))
    rows["channel_1gib_tcp_fresh_buffer_GBps"] = _throughput("tcp", 1 << 30, warm=False)
    rows["vaes"] = crypto.vaes_enabled()
    rows["openssl"] = ref
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=1))
        return
    print(f"OpenSSL aes-128-ecb (same run): {fmt_rate(ref['bytes_per_s'], 'B/s')} = "
          f"{fmt_rate(ref['blocks_per_s'], 'blocks/s')}")
    print(f"VAES path: {rows['vaes']}")
    print(f"PRG (AES-CTR)        {fmt_rate(rows['prg_bytes_per_s'], 'B/s'):>14}  "
          f"{rows['prg_bytes_per_s'] / ref['bytes_per_s']:.2f}x OpenSSL ECB bytes/s")
    for name in ("cr", "ccr", "tccr"):
        v = rows[f"{name}_hash_blocks_per_s"]
        print(f"{name.upper():5s} hash           {fmt_rate(v, 'blk/s'):>14}  {v / ref['blocks_per_s']:.2f}x OpenSSL blocks/s")
    for k in ("transpose_128xn_bytes_per_s", "transpose_nx128_bytes_per_s"):
        v = rows[k]
        print(f"{k[:-12]:20s} {fmt_rate(v, 'B/s'):>14}  {v / ref['bytes_per_s']:.2f}x OpenSSL bytes/s")
    for k, v in rows.items():
        if k.startswith("channel_"):
            print(f"{k:35s} {v:.2f} GB/s")


if __name__ == "__main__":
    main()
