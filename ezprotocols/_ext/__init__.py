"""Compiled kernels.  ``_cpu`` is imported first: it refuses CPUs without AES-NI."""
from . import _cpu

CPU_FLAGS = _cpu.check()
