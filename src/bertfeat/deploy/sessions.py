"""onnxruntime sessions of the runtime, and the CPU check an int8 export needs.

No torch, transformers or scikit-learn: :mod:`bertfeat.deploy.runtime` imports this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..hardware import INT8_PATHS, cpu_flags

__all__ = ["check_int8_cpu", "session"]


def session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session of the graph at ``path`` on ``threads`` threads.

    Parameters
    ----------
    path : Path
        An ``.onnx`` file.
    threads : int
        onnxruntime intra-op threads.

    Returns
    -------
    onnxruntime.InferenceSession
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_int8_cpu(flags: frozenset[str] | None = None) -> None:
    """Refuse an int8 export on an x86 CPU without int8 dot-product instructions.

    There onnxruntime's int8 kernels multiply-add pairs of bytes into 16-bit sums
    (``vpmaddubsw``), which can saturate with full 8-bit weights: vectors would be wrong
    without an error. The fidelity printed at export was measured on a CPU with VNNI/AMX.

    Parameters
    ----------
    flags : frozenset of str, optional
        The CPU's flags (default: this machine's, :func:`bertfeat.hardware.cpu_flags`).

    Raises
    ------
    ValueError
        An x86 CPU without AMX, AVX512-VNNI or AVX-VNNI.
    """
    flags = cpu_flags() if flags is None else flags
    if "sse2" not in flags:  # not x86 (or unreadable): nothing known to be wrong
        return
    if not any(flag in flags for flag, _ in INT8_PATHS):
        raise ValueError(
            "this export is int8, and this CPU has no int8 dot-product instructions (AMX, "
            "AVX512-VNNI or AVX-VNNI): onnxruntime's int8 kernels here can saturate and "
            "change the vectors silently. Export with precision='fp32' (bertfeat export "
            "--precision fp32) for this machine.")
