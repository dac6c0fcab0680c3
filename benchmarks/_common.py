"""Machine facts that every benchmark script prints with its results."""

from __future__ import annotations

import os
import platform
import re

#: CPU features that decide which precision is fast (bf16, int8) on x86
SPEED_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx2")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return fh.read()
    except OSError:  # not Linux
        return ""


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    name = re.search(r"^model name\s*:\s*(.*)$", _cpuinfo(), re.M)
    return name.group(1).strip() if name else (platform.processor() or "unknown")


def cpu_flags() -> str:
    """The speed-relevant CPU flags present, comma-separated (:data:`SPEED_FLAGS`)."""
    flags = re.search(r"^flags\s*:\s*(.*)$", _cpuinfo(), re.M)
    have = set(flags.group(1).split()) if flags else set()
    return ", ".join(f for f in SPEED_FLAGS if f in have)


def cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


def loadavg() -> float:
    """The 1-minute load average (NaN where the system does not say)."""
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")
