# Compiled without -maes/-msse4.1: safe to import on any x86-64 CPU.
"""CPU feature check, imported before any kernel module."""

cdef extern from *:
    """
    static int ezp_cpu_flag(const char *name) {
    #if defined(__x86_64__) || defined(__i386__)
        __builtin_cpu_init();
        if (!__builtin_strcmp(name, "aes")) return __builtin_cpu_supports("aes");
        if (!__builtin_strcmp(name, "pclmul")) return __builtin_cpu_supports("pclmul");
        if (!__builtin_strcmp(name, "sse4.1")) return __builtin_cpu_supports("sse4.1");
        if (!__builtin_strcmp(name, "ssse3")) return __builtin_cpu_supports("ssse3");
        if (!__builtin_strcmp(name, "avx2")) return __builtin_cpu_supports("avx2");
        if (!__builtin_strcmp(name, "avx512f")) return __builtin_cpu_supports("avx512f");
        if (!__builtin_strcmp(name, "avx512bw")) return __builtin_cpu_supports("avx512bw");
        if (!__builtin_strcmp(name, "avx512vl")) return __builtin_cpu_supports("avx512vl");
        if (!__builtin_strcmp(name, "vaes")) return __builtin_cpu_supports("vaes");
        if (!__builtin_strcmp(name, "vpclmulqdq")) return __builtin_cpu_supports("vpclmulqdq");
        if (!__builtin_strcmp(name, "gfni")) return __builtin_cpu_supports("gfni");
        return 0;
    #else
        (void)name;
        return 0;
    #endif
    }
    """
    int ezp_cpu_flag(const char *name)

REQUIRED = ("aes", "pclmul", "sse4.1", "ssse3")
OPTIONAL = ("avx2", "avx512f", "avx512bw", "avx512vl", "vaes", "vpclmulqdq", "gfni")


def cpu_flags():
    """Return {flag: bool} for the instruction set extensions the kernels care about."""
    return {name: bool(ezp_cpu_flag(name.encode())) for name in REQUIRED + OPTIONAL}


def check():
    """Raise ImportError when a required extension (AES-NI above all) is missing.

    ``EZP_PRETEND_NO_AESNI=1`` in the environment makes the check fail as on such a
    CPU (used by the test of this message)."""
    import os
    flags = cpu_flags()
    if os.environ.get("EZP_PRETEND_NO_AESNI", "") not in ("", "0"):
        flags["aes"] = False
    missing = [n for n in REQUIRED if not flags[n]]
    if missing:
        raise ImportError(
            "ezprotocols needs a CPU with AES-NI, PCLMULQDQ, SSSE3 and SSE4.1; this CPU lacks: "
            + ", ".join(missing)
            + ". The fixed-key AES kernels (PRG, hashes, garbling, OT extension) have no portable fallback."
        )
    return flags
