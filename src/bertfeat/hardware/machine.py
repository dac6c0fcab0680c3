"""The machine itself: CPU model and flags, the int8 kernel path, the GPU's name, and the
precisions ``"auto"`` may choose among on a device.

Read from ``/proc/cpuinfo`` once per call, here only: nothing else in bertfeat reads the
CPU flags. No torch import at module level (:mod:`bertfeat.runtime` reads the flags too).
"""

from __future__ import annotations

import functools
import os
import platform

__all__ = ["FAST_INT8_PATHS", "INT8_PATHS", "candidates", "cpu_flags", "cpu_model",
           "device_name", "int8_path"]


def _cpuinfo_lines() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return fh.readlines()
    except OSError:
        return []


#: CPU features that give int8 matrix products a dot-product kernel, best first, and the
#: path's name (what oneDNN's GEMM behind ``torch._int_mm`` uses)
INT8_PATHS = (("amx_int8", "amx"), ("avx512_vnni", "avx512_vnni"), ("avx_vnni", "avx_vnni"))


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it cannot be read).

    The one place bertfeat reads them (int8 paths, the runtime's int8 check, the
    decision key).

    Returns
    -------
    frozenset of str
    """
    for line in _cpuinfo_lines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says.

    Returns
    -------
    str
    """
    for line in _cpuinfo_lines():
        if line.startswith(("model name", "Model", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def device_name(device: str) -> str:
    """What the decision key records for ``device``: the CPU model, or the GPU's name.

    Parameters
    ----------
    device : str
        Concrete device (``"cpu"``, ``"cuda:1"`` ...).

    Returns
    -------
    str
    """
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch

        index = int(device.partition(":")[2] or torch.cuda.current_device())
        return f"cuda {torch.cuda.get_device_name(index)}"
    if kind == "cpu":
        return f"cpu {cpu_model()}"
    return kind


@functools.cache
def _bf16_runs() -> bool:
    import torch

    try:
        a = torch.ones(2, 2, dtype=torch.bfloat16)
        return bool((a @ a).float().sum() == 8)
    except RuntimeError:  # pragma: no cover - no bf16 matmul on this CPU
        return False


def candidates(device: str) -> tuple[str, ...]:
    """Precisions ``"auto"`` chooses among on ``device``, fp32 (the reference) first.

    Parameters
    ----------
    device : str
        Concrete device.

    Returns
    -------
    tuple of str
        CPU: fp32, bf16 (where a bf16 matmul runs). CUDA: fp32, bf16 (where supported),
        fp16. Other devices: fp32. Never int8: its mean cosine to fp32 (about 0.997) is
        under the faithful bar.
    """
    kind = device.split(":")[0]
    if kind == "cpu":
        return ("fp32", "bf16") if _bf16_runs() else ("fp32",)
    if kind == "cuda":
        import torch

        return ("fp32", "bf16", "fp16") if torch.cuda.is_bf16_supported() else ("fp32", "fp16")
    return ("fp32",)


#: the paths where per-token int8 encoding was measured faster than fp32
#: (benchmarks/README.md): AMX 1.25x. AVX512-VNNI without AMX: 0.5x (slower; the per-token
#: quantisation ops cost more than the int8 GEMM saves); AVX2 alone: up to 39x slower
#: (issue 17). precision="int8" is refused on every other path.
FAST_INT8_PATHS = ("amx",)
#: ONEDNN_MAX_CPU_ISA values (prefixes) that keep oneDNN off every int8 dot-product kernel
_ONEDNN_NO_VNNI = ("SSE41", "AVX", "AVX2", "AVX512_CORE")


def int8_path(flags: frozenset[str] | None = None) -> str | None:
    """Which fast int8 kernel path this CPU has.

    Parameters
    ----------
    flags : frozenset of str, optional
        CPU flags; default :func:`cpu_flags`.

    Returns
    -------
    str or None
        ``"amx"``, ``"avx512_vnni"``, ``"avx_vnni"``, or ``None`` (no int8 dot-product
        instructions, or oneDNN capped below them by ``ONEDNN_MAX_CPU_ISA``).
    """
    flags = cpu_flags() if flags is None else flags
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap in _ONEDNN_NO_VNNI:
        return None
    for flag, path in INT8_PATHS:
        if flag in flags:
            if cap == "AVX2_VNNI" and path != "avx_vnni":
                continue
            return path
    return None

