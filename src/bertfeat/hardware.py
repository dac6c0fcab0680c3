"""What the CPU offers, read without torch (the exported runtime uses it too)."""

from __future__ import annotations

__all__ = ["INT8_PATHS", "cpu_flags"]

#: CPU features that give int8 matrix products a dot-product kernel, best first, and the
#: path's name (what oneDNN's GEMM behind ``torch._int_mm`` uses)
INT8_PATHS = (("amx_int8", "amx"), ("avx512_vnni", "avx512_vnni"), ("avx_vnni", "avx_vnni"))


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()
