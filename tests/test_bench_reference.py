"""The SPU reference runner (bench/reference) knows every workload its script defines, so a
benchmark asking for one (``bench/densenet.py --spu``) is not refused."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_spu_workload_list_matches_the_script():
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "bench", "reference"))
    try:
        import spu_ref                      # importable without SPU: its imports are lazy
        from bench.reference import SPU_WORKLOADS
    finally:
        del sys.path[:2]
    assert sorted(SPU_WORKLOADS) == sorted(spu_ref.WORKLOADS)
    assert {"densenet_mini", "densenet121_32", "densenet121_224"} <= set(SPU_WORKLOADS)
