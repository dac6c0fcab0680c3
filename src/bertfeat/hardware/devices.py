"""Resolving a device and a precision: what an estimator's ``device`` and ``precision``
parameters mean on this machine.

``device="auto"`` is CUDA where there is a GPU, else the CPU. ``precision="auto"`` is
``BERTFEAT_PRECISION`` where it names one, the device's only candidate where there is one,
and else a measurement (:func:`requested_precision` returns ``"auto"`` then; the
measurement loads the model, so it is the engine's:
:func:`bertfeat.engine.precision.resolve_precision`). An explicit ``int8`` is refused where
it was measured slower than fp32.
"""

from __future__ import annotations

import os

from . import machine

__all__ = ["ENV_PRECISION", "PRECISIONS", "requested_precision", "resolve_device"]

#: environment variable that overrides the ``"auto"`` decision (``fp32``, ``bf16`` ...)
ENV_PRECISION = "BERTFEAT_PRECISION"
#: values of a featurizer's ``precision`` (see :func:`resolve_precision`)
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def resolve_device(device: str) -> str:
    """Turn ``"auto"`` (or None) into ``"cuda"`` or ``"cpu"``; check that a device exists.

    ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (N below the number of CUDA devices) and ``"mps"``
    are accepted; ``"cpu:7"`` is refused (the CPU takes no index).

    Parameters
    ----------
    device : str or None
        The requested device.

    Returns
    -------
    str
        A concrete device.
    """
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be a string, got {type(device).__name__}")
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use 'cpu' or 'auto'")
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} but MPS is not available here; use 'cpu' or 'auto'")
    if kind not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    index = device.partition(":")[2]
    if kind != "cuda" and index:
        raise ValueError(f"device={device!r}: the {kind} device takes no index; use {kind!r}")
    if kind == "cuda" and index:
        if not index.isdigit():
            raise ValueError(f"device={device!r}: the CUDA index must be a number, e.g. 'cuda:0'")
        if int(index) >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}, but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
                             f"cuda:{torch.cuda.device_count() - 1})")
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from exc
    return device

def _int8_refusal(flags: frozenset[str], path: str | None) -> str:
    shown = ", ".join(sorted(f for f in flags if f.startswith(("avx", "amx", "sse4")))) \
        or "none readable"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if path is not None:
        why = (f"this CPU's int8 path is {path} without AMX, where per-token int8 encoding "
               "was measured at about half the speed of fp32")
    elif cap and cap.upper() in machine._ONEDNN_NO_VNNI:
        why = f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN off the int8 dot-product kernels"
    else:
        why = ("this CPU has no int8 dot-product instructions (vector flags: "
               f"{shown}), where int8 encoding was measured up to 39x slower than fp32")
    return (
        "precision='int8' is used only where it is faster than fp32: CPUs with AMX "
        f"(amx_int8); {why}. Use precision='fp32' (or 'auto', which picks bf16 where it "
        "measures faster and faithful), or export the fitted pipeline with `bertfeat "
        "export` and run it with onnxruntime (bertfeat.runtime).")


def requested_precision(precision: str, device: str) -> str:
    """``precision`` checked for ``device``, and ``"auto"`` resolved where no measurement
    is needed.

    ``"auto"`` becomes ``BERTFEAT_PRECISION`` when that is set, else the device's only
    candidate (:func:`.machine.candidates`) where it has one; where there is a choice it
    stays ``"auto"``: only measuring the model can decide
    (:func:`bertfeat.engine.precision.resolve_precision` does). Never ``int8`` for
    ``"auto"``: its mean cosine to fp32 (about 0.997) is under the faithful bar. ``fp16``
    is refused on a CPU, ``int8`` off the CPU, and on a CPU whose int8 path
    (:func:`.machine.int8_path`) is not in :data:`.machine.FAST_INT8_PATHS`.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}
        The requested precision.
    device : str
        Concrete device.

    Returns
    -------
    str
        A concrete precision, or ``"auto"`` where a measurement must decide.
    """
    kind = device.split(":")[0]
    if precision == "auto":
        forced = os.environ.get(ENV_PRECISION, "").strip().lower()
        if forced and forced != "auto":
            if forced not in PRECISIONS:
                raise ValueError(f"{ENV_PRECISION}={forced!r}: use one of "
                                 f"{', '.join(PRECISIONS)}")
            precision = forced
        else:
            allowed = machine.candidates(device)
            return allowed[0] if len(allowed) == 1 else "auto"
    if precision == "fp16" and kind == "cpu":
        raise ValueError("precision='fp16' is for GPUs; on a CPU use 'bf16', 'int8' or 'fp32'")
    if precision == "int8" and kind != "cpu":
        raise ValueError("precision='int8' (dynamic quantization) runs on the CPU only")
    if precision == "int8":
        flags = machine.cpu_flags()
        path = machine.int8_path(flags)
        if path not in machine.FAST_INT8_PATHS:
            raise ValueError(_int8_refusal(flags, path))
    return precision
