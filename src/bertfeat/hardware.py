"""The machine: CPU model and flags, and the measured ``precision="auto"`` decision.

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
decision; :func:`bertfeat.models.resolve_precision` applies both. Fine-tuning measures its own
decision (``purpose="train"``: a forward and backward pass under autocast).

Nothing here imports torch at module level: :mod:`bertfeat.runtime` reads the CPU flags too.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import functools
import hashlib
import json
import math
import os
import platform
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "INT8_PATHS",
    "cpu_flags",
    "cpu_model",
    "device_name",
    "candidates",
    "choose",
    "decide",
    "calibrate",
    "Calibration",
    "Decision",
    "decision_key",
    "decisions_path",
    "remembered_decisions",
    "forget_decisions",
    "calibration_texts",
    "describe",
    "ENV_PRECISION",
    "FAITHFUL_MEAN",
    "FAITHFUL_MIN",
    "MIN_SPEEDUP",
]

#: environment variable that overrides the ``"auto"`` decision (``fp32``, ``bf16`` ...)
ENV_PRECISION = "BERTFEAT_PRECISION"
#: the faithful bar: per-text cosine to fp32, mean and minimum over texts, layers, statistics
FAITHFUL_MEAN = 0.999
FAITHFUL_MIN = 0.995
#: a precision other than fp32 is chosen only at this speed-up or more (a tie is noise)
MIN_SPEEDUP = 1.1
#: seconds of encoding per calibration: after the first run of each candidate (which gives
#: the fidelity and a first timing), more interleaved rounds while under this budget
TIME_BUDGET_S = 1.5
#: file in the cache folder that remembers decisions
DECISIONS_FILE = "precision.json"
#: bump to make every remembered decision be measured again
FORMAT = 1
#: calibration texts: the first rows of two shipped datasets, and paragraphs joined from them
_CALIBRATION = (("banking77", 24), ("sms_spam", 8))
_PARAGRAPHS = 2

#: the clock calibration reads; tests replace it to fake timings
_clock = time.perf_counter
_lock = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}
_memo: dict[str, Decision] = {}


# ------------------------------------------------------------------------------ the CPU
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


# --------------------------------------------------------------------------- the choice
@dataclass(frozen=True)
class Calibration:
    """What one calibration measured, per candidate precision.

    Attributes
    ----------
    tokens_per_s : dict
        Encoding speed (real tokens per second), timed after a warm-up.
    cosine_mean, cosine_min : dict
        Per-text cosine to fp32 over texts, layers and statistics (fp32: 1).
    errors : dict
        Candidates that failed to run, and why (they are not faithful).
    seconds : float
        Wall time of the whole calibration (loading included).
    tokens : int
        Real tokens in the calibration texts.
    """

    tokens_per_s: dict[str, float]
    cosine_mean: dict[str, float]
    cosine_min: dict[str, float]
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0


@dataclass(frozen=True)
class Decision:
    """A ``precision="auto"`` decision.

    Attributes
    ----------
    precision : str
        The concrete precision.
    source : str
        ``"measured"`` (calibrated in this process), ``"remembered"`` (read from the
        decisions file) or ``"only candidate"`` (nothing to measure on this device).
    reason : str
        Why, in words.
    key : str
        The decision key (see :func:`decision_key`).
    calibration : Calibration or None
        The measurements behind it.
    """

    precision: str
    source: str
    reason: str
    key: str = ""
    calibration: Calibration | None = None


def _faithful(p: str, cal: Calibration) -> bool:
    if p == "fp32":
        return True
    mean, low = cal.cosine_mean.get(p, float("nan")), cal.cosine_min.get(p, float("nan"))
    return (p not in cal.errors and math.isfinite(mean) and math.isfinite(low)
            and mean >= FAITHFUL_MEAN and low >= FAITHFUL_MIN)


def choose(cal: Calibration) -> tuple[str, str]:
    """The fastest faithful precision of a calibration, and why.

    fp32 is the reference and always faithful. Another candidate is chosen when it is
    faithful (cosine mean >= :data:`FAITHFUL_MEAN` and min >= :data:`FAITHFUL_MIN`) and at
    least :data:`MIN_SPEEDUP` times as fast as fp32; among several such, the fastest.

    Parameters
    ----------
    cal : Calibration

    Returns
    -------
    precision : str
    reason : str
    """
    base = cal.tokens_per_s.get("fp32", 0.0)
    best, notes = "fp32", []
    for p, speed in cal.tokens_per_s.items():
        if p == "fp32":
            continue
        ratio = speed / base if base > 0 else float("inf")
        if not _faithful(p, cal):
            why = cal.errors.get(p) or (f"cosine to fp32 mean {cal.cosine_mean.get(p, 0):.5f}"
                                         f" / min {cal.cosine_min.get(p, 0):.5f}")
            notes.append(f"{p} {ratio:.2f}x fp32 but not faithful ({why})")
        elif ratio < MIN_SPEEDUP:
            notes.append(f"{p} faithful but {ratio:.2f}x fp32 (under {MIN_SPEEDUP}x)")
        else:
            notes.append(f"{p} faithful and {ratio:.2f}x fp32")
            if best == "fp32" or speed > cal.tokens_per_s[best]:
                best = p
    return best, "; ".join(notes) or "fp32 is the only candidate"


# ------------------------------------------------------------------------- remembering
def decisions_path() -> Path:
    """The JSON file that remembers decisions: ``precision.json`` in the cache folder.

    Returns
    -------
    Path
        In :func:`bertfeat.store.default_cache_dir` (``BERTFEAT_CACHE_DIR`` moves it).
    """
    from .store import default_cache_dir

    return default_cache_dir() / DECISIONS_FILE


def _config_digest(path: Path) -> str:
    try:
        return hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:16]
    except OSError:
        return "?"


def decision_key(info: Any, device: str, purpose: str = "encode") -> tuple[str, dict]:
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

    from .models import weights_stat

    flags = sorted(cpu_flags())
    parts = {
        "format": FORMAT, "purpose": purpose, "model": str(info.spec),
        "revision": info.revision, "path": str(info.path),
        "config": _config_digest(Path(info.path)),
        "weights": [list(w[:1]) + list(w[2:4]) for w in weights_stat(info)],
        "device": device_name(device),
        "cpu": cpu_model(), "flags": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16],
        "torch": torch.__version__,
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    return key, parts


def _read_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    decisions = data.get("decisions")
    return decisions if isinstance(decisions, dict) else {}


def remembered_decisions() -> dict[str, dict]:
    """Every decision in the decisions file, by key (empty when there is none).

    Returns
    -------
    dict
        key -> record (``precision``, ``purpose``, ``model``, ``device``, ``torch``,
        ``tokens_per_s``, ``cosine_mean``, ``cosine_min``, ``calibration_s``, ``reason``,
        ``decided_at``).
    """
    return _read_file(decisions_path())


def _write_record(path: Path, key: str, record: dict) -> None:
    """Add one decision to the file (read, update, write a temporary file, rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        decisions = _read_file(path)
        decisions[key] = record
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"format": FORMAT, "decisions": decisions}, indent=1,
                                  sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a read-only cache folder: the decision lives in this process only
        pass


@contextlib.contextmanager
def _file_lock(path: Path):
    """Hold an exclusive lock next to ``path`` (POSIX), so that parallel processes
    (joblib workers) calibrate once, one after another, not all at once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no cross-process lock
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
    except OSError:
        yield
        return
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fh.close()  # closing releases the lock


def _from_record(key: str, record: Any, allowed: tuple[str, ...]) -> Decision | None:
    if not isinstance(record, dict) or record.get("precision") not in allowed:
        return None
    try:
        cal = Calibration(tokens_per_s=dict(record["tokens_per_s"]),
                          cosine_mean=dict(record["cosine_mean"]),
                          cosine_min=dict(record["cosine_min"]),
                          errors=dict(record.get("errors", {})),
                          seconds=float(record.get("calibration_s", 0.0)),
                          tokens=int(record.get("tokens", 0)))
    except (KeyError, TypeError, ValueError):
        return None
    return Decision(record["precision"], "remembered", str(record.get("reason", "")), key, cal)


def decide(info: Any, device: str, *, purpose: str = "encode",
           trust_remote_code: bool = False) -> Decision:
    """The ``precision="auto"`` decision for a model on a device: remembered or measured.

    Looked up in this process's memo, then in the decisions file; measured with
    :func:`calibrate` (about two seconds for a MiniLM-sized model) and written to the file
    only when neither has it.

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
    allowed = candidates(device)
    if len(allowed) == 1:
        return Decision(allowed[0], "only candidate",
                        f"{allowed[0]} is the only candidate on {device}")
    key, parts = decision_key(info, device, purpose)
    found = _memo.get(key)
    if found is not None:
        return found
    with _lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        found = _memo.get(key)
        if found is not None:
            return found
        path = decisions_path()
        found = _from_record(key, _read_file(path).get(key), allowed)
        if found is None:
            with _file_lock(path):
                # another process may have measured while this one waited for the lock
                found = _from_record(key, _read_file(path).get(key), allowed)
                if found is None:
                    cal = calibrate(info, device, allowed, purpose=purpose,
                                    trust_remote_code=trust_remote_code)
                    precision, reason = choose(cal)
                    found = Decision(precision, "measured", reason, key, cal)
                    record = {
                        "precision": precision, "reason": reason, "purpose": purpose,
                        "model": parts["model"], "device": parts["device"],
                        "torch": parts["torch"], "tokens_per_s": cal.tokens_per_s,
                        "cosine_mean": cal.cosine_mean, "cosine_min": cal.cosine_min,
                        "errors": cal.errors, "calibration_s": cal.seconds,
                        "tokens": cal.tokens,
                        "decided_at": _dt.datetime.now(_dt.timezone.utc).isoformat(
                            timespec="seconds")}
                    _write_record(path, key, record)
        _memo[key] = found
        return found


def forget_decisions() -> None:
    """Drop this process's memo of decisions (the file is left alone)."""
    _memo.clear()


# -------------------------------------------------------------------------- measuring
def calibration_texts() -> list[str]:
    """The calibration texts: short and long rows of the shipped datasets.

    Returns
    -------
    list of str
        The first rows of banking77 (short queries) and the SMS collection, and a few
        paragraphs of consecutive SMS texts (so batches of long sequences are timed too).
    """
    from .io.datasets import dataset_path

    texts: list[str] = []
    rows: list[str] = []
    for name, n in _CALIBRATION:
        with open(dataset_path(name), encoding="utf-8", newline="") as fh:
            rows = [row["text"] for _, row in zip(range(n + 6 * _PARAGRAPHS),
                                                  csv.DictReader(fh))]
        texts += rows[:n]
    # the last dataset's next rows, six to a paragraph
    tail = rows[_CALIBRATION[-1][1]:]
    texts += [" ".join(tail[6 * i:6 * (i + 1)]) for i in range(_PARAGRAPHS)]
    return texts


def _cosines(got, ref) -> tuple[float, float]:
    import numpy as np

    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    num = (got * ref).sum(-1)
    den = np.linalg.norm(got, axis=-1) * np.linalg.norm(ref, axis=-1)
    # an all-zero statistic in both (a padded max of an empty row) agrees exactly
    both_zero = (den == 0) & (np.abs(got).sum(-1) == 0) & (np.abs(ref).sum(-1) == 0)
    cos = np.where(both_zero, 1.0, num / np.where(den == 0, 1.0, den))
    cos = np.where((den == 0) & ~both_zero, 0.0, cos)
    if not np.isfinite(got).all():
        return float("nan"), float("nan")
    return float(cos.mean()), float(cos.min())


def _encode_runner(info: Any, device: str, precision: str, texts: list[str],
                   trust_remote_code: bool):
    """A callable that encodes the texts in ``precision`` and returns every layer's
    (cls, mean, max) statistics, shape (texts, layers + 1, 3, hidden)."""
    import numpy as np

    from . import models
    from .engine import encoder

    tokenizer, model = models.load(info, depth=info.n_layers, device=device,
                                   precision=precision, trust_remote_code=trust_remote_code)
    max_length = min(int(info.max_length), 512)

    def run():
        out = np.zeros((len(texts), info.n_layers + 1, 3, info.hidden_size), np.float32)

        def on_batch(positions, stats, pooler, truncated):
            out[positions] = stats

        encoder.encode(tokenizer, model, texts, depth=info.n_layers, max_length=max_length,
                       batch_size=128, max_tokens=_max_tokens(device), device=device,
                       want_pooler=False, on_batch=on_batch)
        return out

    lengths = [len(ids) for ids in encoder.tokenize(tokenizer, texts, max_length).input_ids]
    return run, int(sum(lengths))


def _max_tokens(device: str) -> int:
    from .estimators.featurizer import DEFAULT_BATCH_TOKENS, DEFAULT_BATCH_TOKENS_GPU

    return DEFAULT_BATCH_TOKENS if device == "cpu" else DEFAULT_BATCH_TOKENS_GPU


def _train_runner(info: Any, device: str, precision: str, texts: list[str],
                  trust_remote_code: bool):
    """A callable that runs one forward and backward pass under ``precision``'s autocast
    (as fine-tuning does) and returns the last layer's mean over real tokens."""
    import numpy as np
    import torch

    from . import models

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
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    kind = device.split(":")[0]

    def run():
        model.zero_grad(set_to_none=True)
        autocast = (torch.autocast(device_type=kind, dtype=dtype) if dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            hidden = model(**inputs, return_dict=True).last_hidden_state
        pooled = (hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1)
        pooled.pow(2).mean().backward()
        return pooled.detach().cpu().numpy()[:, None, :]

    return run, int(np.asarray(enc["attention_mask"]).sum())


def calibrate(info: Any, device: str, precisions: tuple[str, ...] | None = None, *,
              purpose: str = "encode", trust_remote_code: bool = False,
              budget_s: float = TIME_BUDGET_S) -> Calibration:
    """Time each candidate precision and compare its outputs with fp32.

    Each candidate is loaded and run on the calibration texts (its outputs are compared
    with fp32's); while the runs so far took less than ``budget_s``, more rounds follow,
    interleaved across the candidates (so a drifting machine treats them alike). A
    candidate's speed is its best run. A first run can be slower (kernels are set up):
    on a slow machine, where only first runs fit in the budget, the
    :data:`MIN_SPEEDUP` margin absorbs that. On a CPU it runs
    on the threads of one of the encoder's streams (:func:`bertfeat.encoder.cpu_streams`),
    the way a pass runs its batches.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    device : str
        Concrete device.
    precisions : tuple of str, optional
        Candidates, fp32 first; default :func:`candidates`.
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

    precisions = tuple(precisions or candidates(device))
    if precisions[0] != "fp32":
        raise ValueError(f"calibration needs fp32 first (the reference), got {precisions}")
    if device != "cpu":
        return _calibrate(info, device, precisions, purpose, trust_remote_code, budget_s)
    from .engine.encoder import cpu_streams

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
            mean[p], low[p] = _cosines(outputs[p], ref)
    speed = {p: tokens / best[p] for p in runners}
    for p in errors:
        speed[p], mean[p], low[p] = 0.0, float("nan"), float("nan")
    return Calibration(tokens_per_s=speed, cosine_mean=mean, cosine_min=low, errors=errors,
                       seconds=_clock() - start, tokens=tokens)


def describe(record: dict) -> str:
    """One line for ``bertfeat cache info``: a remembered decision and its measurements.

    Parameters
    ----------
    record : dict
        A value of :func:`remembered_decisions`.

    Returns
    -------
    str
    """
    speeds = ", ".join(f"{p} {s:,.0f}" for p, s in sorted(record.get("tokens_per_s", {}).items()))
    cos = ", ".join(f"{p} {c:.5f}" for p, c in sorted(record.get("cosine_min", {}).items())
                    if p != "fp32")
    return (f"{record.get('purpose', '?')}: {record.get('precision', '?')}  "
            f"model {record.get('model', '?')} on {record.get('device', '?')}, torch "
            f"{record.get('torch', '?')}; tokens/s {speeds}; min cosine to fp32 {cos or '-'}"
            f"; measured in {record.get('calibration_s', float('nan')):.1f} s")
