"""``precision="auto"`` by measurement: calibrating a model's candidate precisions, and the
decision that measures only when nothing remembers one.

CPU flags do not predict speed (the same flags, AVX512-BF16 without AMX, ran bf16 encoding
at 0.73x fp32 on one Intel CPU and at about 4x fp32 on an AMD EPYC), so ``"auto"`` is
decided by measuring the model itself, once per (model, device, CPU model and flags, torch
version):

1. :func:`calibrate` loads the model in each candidate precision, runs the encoder's own
   pass (or, for fine-tuning, a forward and backward pass under
   :func:`bertfeat.engine.training.autocast`) on the calibration texts, compares each
   candidate's outputs with fp32's and times it;
2. :func:`decide` keys the decision by the model's files and the machine
   (:func:`decision_key`) and hands :func:`calibrate` to
   :func:`bertfeat.hardware.decision.decide_once`, which measures only when neither this
   process nor the decisions file remembers the key, and chooses the fastest faithful
   candidate (:func:`bertfeat.hardware.choose`);
3. :func:`resolve_precision` is what estimators call: an explicit precision, or
   ``BERTFEAT_PRECISION``, is checked by :func:`bertfeat.hardware.requested_precision`;
   ``"auto"`` with a choice to make is :func:`decide`'s.

The machine facts, the decision rule and the decisions file are the hardware layer's
(:mod:`bertfeat.hardware`, which imports nothing above it); what loads and runs a model is
here. A test that fakes timings replaces :data:`_clock`, :func:`_encode_runner` or
:func:`_train_runner` of this module; one that fakes the decision replaces :func:`decide`.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from .. import models
from ..hardware import decision, devices, machine
from ..hardware.calibration import (
    TIME_BUDGET_S,
    Calibration,
    calibration_texts,
    cosine_to_reference,
)
from .batching import default_batch_tokens

__all__ = ["calibrate", "decide", "decision_key", "resolve_precision"]

#: the clock calibration reads; tests replace it to fake timings
_clock = time.perf_counter


def _encode_runner(info: Any, device: str, precision: str, texts: list[str],
                   trust_remote_code: bool):
    """A callable that encodes the texts in ``precision`` and returns every layer's
    (cls, mean, max) statistics, shape (texts, layers + 1, 3, hidden)."""
    import numpy as np

    from . import encoder

    tokenizer, model = models.load(info, depth=info.n_layers, device=device,
                                   precision=precision, trust_remote_code=trust_remote_code)
    max_length = min(int(info.max_length), 512)

    def run():
        out = np.zeros((len(texts), info.n_layers + 1, 3, info.hidden_size), np.float32)

        def on_batch(positions, stats, pooler, truncated):
            out[positions] = stats

        encoder.encode(tokenizer, model, texts, depth=info.n_layers, max_length=max_length,
                       batch_size=128, max_tokens=default_batch_tokens(device), device=device,
                       want_pooler=False, on_batch=on_batch)
        return out

    lengths = [len(ids) for ids in encoder.tokenize(tokenizer, texts, max_length).input_ids]
    return run, int(sum(lengths))


def _train_runner(info: Any, device: str, precision: str, texts: list[str],
                  trust_remote_code: bool):
    """A callable that runs one forward and backward pass under ``precision``'s autocast
    (as fine-tuning does) and returns the last layer's mean over real tokens."""
    import numpy as np

    from .training import autocast

    tokenizer, model = models.load_trainable(info, device=device,
                                             trust_remote_code=trust_remote_code)
    model.eval()  # no dropout: the outputs of the candidates compare
    texts = texts[:32]
    max_length = min(int(info.max_length), 128)
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt")
    inputs = {k: v.to(device) for k, v in enc.items()
              if k in ("input_ids", "attention_mask", "token_type_ids")}
    mask = inputs["attention_mask"].unsqueeze(-1)

    def run():
        model.zero_grad(set_to_none=True)
        with autocast(device, precision):  # the autocast fine-tuning runs under
            hidden = model(**inputs, return_dict=True).last_hidden_state
        pooled = (hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1)
        pooled.pow(2).mean().backward()
        return pooled.detach().cpu().numpy()[:, None, :]

    return run, int(np.asarray(enc["attention_mask"]).sum())


def calibrate(info: models.ModelInfo, device: str, precisions: tuple[str, ...] | None = None,
              *, purpose: str = "encode", trust_remote_code: bool = False,
              budget_s: float = TIME_BUDGET_S) -> Calibration:
    """Time each candidate precision and compare its outputs with fp32.

    Each candidate is loaded and run on the calibration texts
    (:func:`bertfeat.hardware.calibration_texts`; its outputs are compared with fp32's);
    while the runs so far took less than ``budget_s``, more rounds follow, interleaved
    across the candidates (so a drifting machine treats them alike). A candidate's speed
    is its best run. A first run can be slower (kernels are set up): on a slow machine,
    where only first runs fit in the budget, the
    :data:`bertfeat.hardware.MIN_SPEEDUP` margin absorbs that. On a CPU it runs on the
    threads of one of the encoder's streams (:func:`bertfeat.engine.encoder.cpu_streams`),
    the way a pass runs its batches.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    device : str
        Concrete device.
    precisions : tuple of str, optional
        Candidates, fp32 first; default :func:`bertfeat.hardware.candidates`.
    purpose : {"encode", "train"}
        ``"encode"``: the encoder's own pass (every layer's pooled statistics).
        ``"train"``: forward and backward under autocast, as fine-tuning runs.
    trust_remote_code : bool
        Passed to the model loader.
    budget_s : float
        Seconds of encoding after which no further round starts (loads come on top).

    Returns
    -------
    Calibration
    """
    import torch

    precisions = tuple(precisions or machine.candidates(device))
    if precisions[0] != "fp32":
        raise ValueError(f"calibration needs fp32 first (the reference), got {precisions}")
    if device != "cpu":
        return _calibrate(info, device, precisions, purpose, trust_remote_code, budget_s)
    from .encoder import cpu_streams

    # a CPU pass runs two batches at once, each on its share of the threads: measure one
    # such stream (on a busy machine one batch on every thread waits on the slowest one,
    # and measures the machine's load more than the precision)
    caller = torch.get_num_threads()
    torch.set_num_threads(max(1, cpu_streams()[1]))
    try:
        return _calibrate(info, device, precisions, purpose, trust_remote_code, budget_s)
    finally:
        torch.set_num_threads(caller)


def _calibrate(info: Any, device: str, precisions: tuple[str, ...], purpose: str,
               trust_remote_code: bool, budget_s: float) -> Calibration:
    import torch

    start = _clock()
    make = _train_runner if purpose == "train" else _encode_runner
    texts = calibration_texts()
    runners, outputs, errors, tokens = {}, {}, {}, 0
    best: dict[str, float] = {}
    measuring = 0.0

    def timed(p: str, run: Any) -> Any:
        nonlocal measuring
        t0 = _clock()
        out = run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = max(_clock() - t0, 1e-9)
        measuring += seconds
        best[p] = min(best.get(p, float("inf")), seconds)
        return out

    for p in precisions:
        try:
            run, tokens = make(info, device, p, texts, trust_remote_code)
            # the first run: its outputs are compared with fp32's, and it is timed too
            outputs[p] = timed(p, run)
            runners[p] = run
        except Exception as exc:  # noqa: BLE001 - a candidate that fails is not chosen
            if p == "fp32":
                raise
            errors[p] = f"{type(exc).__name__}: {exc}"[:200]
            best.pop(p, None)
    rounds = 1
    while rounds < 5 and measuring < budget_s:  # more rounds, interleaved, while cheap
        for p, run in runners.items():
            timed(p, run)
        rounds += 1
    ref = outputs["fp32"]
    mean, low = {"fp32": 1.0}, {"fp32": 1.0}
    for p in runners:
        if p != "fp32":
            mean[p], low[p] = cosine_to_reference(outputs[p], ref)
    speed = {p: tokens / best[p] for p in runners}
    for p in errors:
        speed[p], mean[p], low[p] = 0.0, float("nan"), float("nan")
    return Calibration(tokens_per_s=speed, cosine_mean=mean, cosine_min=low, errors=errors,
                       seconds=_clock() - start, tokens=tokens)


def _config_digest(path: Path) -> str:
    try:
        return hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:16]
    except OSError:
        return "?"


def decision_key(info: models.ModelInfo, device: str,
                 purpose: str = "encode") -> tuple[str, dict]:
    """Key of a decision, and what it is made of.

    Parameters
    ----------
    info : ModelInfo
        The resolved model (its spec, config and weight files' sizes and times: weights
        that change are measured again, since fidelity depends on them).
    device : str
        Concrete device.
    purpose : {"encode", "train"}
        Encoding (inference) or fine-tuning (autocast forward and backward).

    Returns
    -------
    key : str
    parts : dict
    """
    import torch

    flags = sorted(machine.cpu_flags())
    parts = {
        "format": decision.FORMAT, "purpose": purpose, "model": str(info.spec),
        "revision": info.revision, "path": str(info.path),
        "config": _config_digest(Path(info.path)),
        "weights": [list(w[:1]) + list(w[2:4]) for w in models.weights_stat(info)],
        "device": machine.device_name(device),
        "cpu": machine.cpu_model(),
        "flags": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16],
        "torch": torch.__version__,
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    return key, parts


def decide(info: models.ModelInfo, device: str, *, purpose: str = "encode",
           trust_remote_code: bool = False) -> decision.Decision:
    """The ``precision="auto"`` decision for a model on a device: remembered or measured.

    Looked up in this process's memo, then in the decisions file
    (:func:`bertfeat.hardware.decisions_path`); measured with :func:`calibrate` (about two
    seconds for a MiniLM-sized model) and written to the file only when neither has it
    (:func:`bertfeat.hardware.decision.decide_once`).

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    device : str
        Concrete device.
    purpose : {"encode", "train"}
        Encoding, or fine-tuning's autocast (forward and backward).
    trust_remote_code : bool
        Passed to the model loader.

    Returns
    -------
    Decision
    """
    allowed = machine.candidates(device)
    if len(allowed) == 1:
        return decision.Decision(allowed[0], "only candidate",
                                 f"{allowed[0]} is the only candidate on {device}")
    key, parts = decision_key(info, device, purpose)

    def measure() -> Calibration:
        return calibrate(info, device, allowed, purpose=purpose,
                         trust_remote_code=trust_remote_code)

    return decision.decide_once(key, allowed, measure, parts)


def resolve_precision(precision: str, device: str, info: models.ModelInfo | None = None, *,
                      purpose: str = "encode", trust_remote_code: bool = False) -> str:
    """Turn ``"auto"`` into the fastest precision that keeps vectors faithful on ``device``.

    ``"auto"`` is decided by measurement (:func:`decide`): the first time a model runs on
    a device (CPU model and flags, torch version), each candidate (fp32, bf16; fp16 on
    CUDA) is timed on calibration texts and checked against fp32, and the fastest faithful
    one is kept and remembered in the cache folder. The ``BERTFEAT_PRECISION`` environment
    variable, when set, is used instead of the decision; an explicit precision other than
    ``"auto"`` wins over both. Both are checked for the device by
    :func:`bertfeat.hardware.requested_precision` (never ``int8`` for ``"auto"``; an
    explicit ``int8`` only on a CPU with a fast int8 path).

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}
        The requested precision.
    device : str
        Concrete device.
    info : ModelInfo, optional
        The model; needed to measure ``"auto"`` (unless ``BERTFEAT_PRECISION`` is set or
        the device has one candidate).
    purpose : {"encode", "train"}
        Encoding, or fine-tuning's autocast (its own measurement).
    trust_remote_code : bool
        Passed to the model loader when measuring.

    Returns
    -------
    str
        A concrete precision.
    """
    requested = devices.requested_precision(precision, device)
    if requested != "auto":
        return requested
    if info is None:
        raise TypeError("precision='auto' is decided by measuring the model: pass its "
                        "ModelInfo (or set BERTFEAT_PRECISION)")
    return decide(info, device, purpose=purpose, trust_remote_code=trust_remote_code).precision
