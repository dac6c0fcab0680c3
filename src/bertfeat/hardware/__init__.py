"""The machine: CPU model and flags, device and precision, the measured ``"auto"`` decision.

CPU flags do not predict speed: the same flags (AVX512-BF16 without AMX) ran bf16 encoding
at 0.73x fp32 on one Intel CPU and at about 4x fp32 on an AMD EPYC. So ``"auto"`` is
decided by measurement, once per (model, device, CPU model and flags, torch version):

1. :func:`calibrate` loads the model in each candidate precision (fp32 and bf16 on a CPU;
   fp32, bf16 and fp16 on a CUDA GPU), encodes a few batches of calibration texts
   (shipped with the package: short and long texts, so the model's own shapes), checks each
   candidate's pooled statistics against fp32 (every layer, every statistic, per text:
   cosine mean >= :data:`FAITHFUL_MEAN` and min >= :data:`FAITHFUL_MIN`) and times it.
2. :func:`choose` keeps the fastest faithful candidate; one other than fp32 must be at least
   :data:`MIN_SPEEDUP` times fp32's speed (fp32 is the reference, and a measured tie is noise).
3. The decision is remembered in one small JSON file in the cache folder
   (:func:`decisions_path`), so later runs decide in microseconds (:func:`decide`).

``BERTFEAT_PRECISION`` (or an explicit ``precision=`` other than ``"auto"``) overrides the
decision; :func:`resolve_precision` applies both. Fine-tuning measures its own decision
(``purpose="train"``: a forward and backward pass under autocast).

One module per concern: :mod:`.machine` (CPU flags and model, int8 path, candidates),
:mod:`.devices` (``device`` and ``precision`` resolved), :mod:`.calibration` (measuring),
:mod:`.decision` (choosing and remembering). Each function has one home there; a test that
replaces one patches that home. Nothing here imports torch at module level:
:mod:`bertfeat.runtime` reads the CPU flags too.
"""

from __future__ import annotations

from .calibration import TIME_BUDGET_S, Calibration, calibrate, calibration_texts
from .decision import (
    DECISIONS_FILE,
    FAITHFUL_MEAN,
    FAITHFUL_MIN,
    FORMAT,
    MIN_SPEEDUP,
    Decision,
    choose,
    decide,
    decision_key,
    decisions_path,
    describe,
    forget_decisions,
    remembered_decisions,
)
from .devices import ENV_PRECISION, PRECISIONS, resolve_device, resolve_precision
from .machine import (
    FAST_INT8_PATHS,
    INT8_PATHS,
    candidates,
    cpu_flags,
    cpu_model,
    device_name,
    int8_path,
)

__all__ = [
    "DECISIONS_FILE",
    "ENV_PRECISION",
    "FAITHFUL_MEAN",
    "FAITHFUL_MIN",
    "FAST_INT8_PATHS",
    "FORMAT",
    "INT8_PATHS",
    "MIN_SPEEDUP",
    "PRECISIONS",
    "TIME_BUDGET_S",
    "Calibration",
    "Decision",
    "calibrate",
    "calibration_texts",
    "candidates",
    "choose",
    "cpu_flags",
    "cpu_model",
    "decide",
    "decision_key",
    "decisions_path",
    "describe",
    "device_name",
    "forget_decisions",
    "int8_path",
    "remembered_decisions",
    "resolve_device",
    "resolve_precision",
]
