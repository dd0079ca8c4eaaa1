"""Build the Cython/C kernels in ezprotocols/_ext.

Every ``ezprotocols/_ext/*.pyx`` becomes an extension module.  The kernels use
AES-NI, PCLMULQDQ and SSE4.1 (``-maes -mpclmul -msse4.1``); wider units
(VAES, AVX-512) are compiled per function with target attributes and chosen at
run time.  ``_cpu.pyx`` is compiled without any ``-m`` flag: it is imported
first and refuses to continue on a CPU without AES-NI.

``EZP_EXT=name1,name2`` builds only the named modules (for quick rebuilds).
"""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
EXT_DIR = os.path.join("ezprotocols", "_ext")
INCLUDE = [os.path.join(EXT_DIR, "include"), numpy.get_include()]
BASE_FLAGS = ["-O3", "-fno-strict-aliasing", "-Wno-unused-function", "-Wno-unreachable-code"]
SIMD_FLAGS = ["-maes", "-mpclmul", "-msse4.1", "-mssse3"]


def extensions():
    only = {s.strip() for s in os.environ.get("EZP_EXT", "").split(",") if s.strip()}
    exts = []
    for pyx in sorted(glob.glob(os.path.join(HERE, EXT_DIR, "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        flags = BASE_FLAGS + ([] if name == "_cpu" else SIMD_FLAGS)
        exts.append(
            Extension(
                "ezprotocols._ext." + name,
                [os.path.relpath(pyx, HERE)],
                include_dirs=INCLUDE,
                extra_compile_args=flags,
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(ext_modules=extensions())
