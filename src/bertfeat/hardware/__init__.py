"""The machine: CPU model and flags, device and precision, the ``"auto"`` decision rule.

CPU flags do not predict speed: the same flags (AVX512-BF16 without AMX) ran bf16 encoding
at 0.73x fp32 on one Intel CPU and at about 4x fp32 on an AMD EPYC. So ``"auto"`` is
decided by measurement, once per (model, device, CPU model and flags, torch version). This
package is a bottom layer (it imports nothing of bertfeat above it: the torch-free runtime
reads the CPU flags here) and holds what needs no model:

* :mod:`.machine`: CPU flags and model, the int8 path, the GPU's name, the candidate
  precisions of a device (:func:`candidates`);
* :mod:`.devices`: ``device`` resolved (:func:`resolve_device`); ``precision`` checked for
  the device, ``BERTFEAT_PRECISION`` applied (:func:`requested_precision`);
* :mod:`.calibration`: what a calibration is (:class:`Calibration`, its texts
  :func:`calibration_texts`, :data:`TIME_BUDGET_S`, :func:`cosine_to_reference`);
* :mod:`.decision`: the rule (:func:`choose`: the fastest candidate whose cosine to fp32 has
  mean >= :data:`FAITHFUL_MEAN` and min >= :data:`FAITHFUL_MIN`, at least
  :data:`MIN_SPEEDUP` times fp32's speed) and the memory (:class:`Decision`, one small JSON
  file in the cache folder, :func:`decisions_path`;
  :func:`~bertfeat.hardware.decision.decide_once`).

Measuring loads the model and runs the encoder, so it is the engine's:
:mod:`bertfeat.engine.precision` (``calibrate``, ``decide``, ``decision_key``,
``resolve_precision``). Those four names were exported here before that move and still
import from here (``from bertfeat.hardware import decide``) for backward compatibility
only: the module-level ``__getattr__`` below looks them up in
:mod:`bertfeat.engine.precision` on first access, so importing this package never imports
a layer above it; they are not in ``__all__``, and nothing in bertfeat uses these old paths
(a test replacing one patches :mod:`bertfeat.engine.precision`).

Each function has one home module; a test that replaces one patches that home. Nothing
here imports torch at module level.
"""

from __future__ import annotations

from .._compat import forwarding
from .calibration import TIME_BUDGET_S, Calibration, calibration_texts, cosine_to_reference
from .decision import (
    DECISIONS_FILE,
    FAITHFUL_MEAN,
    FAITHFUL_MIN,
    FORMAT,
    MIN_SPEEDUP,
    Decision,
    choose,
    decisions_path,
    describe,
    forget_decisions,
    remembered_decisions,
)
from .devices import ENV_PRECISION, PRECISIONS, requested_precision, resolve_device
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
    "calibration_texts",
    "candidates",
    "choose",
    "cosine_to_reference",
    "cpu_flags",
    "cpu_model",
    "decisions_path",
    "describe",
    "device_name",
    "forget_decisions",
    "int8_path",
    "remembered_decisions",
    "requested_precision",
    "resolve_device",
]

#: names exported here before measuring moved to the engine -> their home now; for
#: backward compatibility only (see the module docstring)
_MOVED_UP = {"calibrate": "bertfeat.engine.precision", "decide": "bertfeat.engine.precision",
             "decision_key": "bertfeat.engine.precision",
             "resolve_precision": "bertfeat.engine.precision"}

__getattr__, __dir__ = forwarding(__name__, _MOVED_UP, globals())
