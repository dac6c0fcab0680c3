"""The ``precision="auto"`` decision: the fastest faithful candidate of a calibration,
remembered per key (model, device, CPU model and flags, torch version).

:func:`choose` keeps the fastest faithful candidate; one other than fp32 must be at least
:data:`MIN_SPEEDUP` times fp32's speed (fp32 is the reference, and a measured tie is
noise). :func:`decide_once` looks a decision up in this process, then in one small JSON
file in the cache folder (:func:`decisions_path`), and calls the measurement it is given
only when neither has it. Nothing here loads a model: the measurement, and the key that
describes a model's files, are the engine's (:func:`bertfeat.engine.precision.decide`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .calibration import Calibration

__all__ = ["DECISIONS_FILE", "FAITHFUL_MEAN", "FAITHFUL_MIN", "FORMAT", "MIN_SPEEDUP",
           "Decision", "choose", "decide_once", "decisions_path", "describe",
           "forget_decisions", "remembered_decisions"]

#: the faithful bar: per-text cosine to fp32, mean and minimum over texts, layers, statistics
FAITHFUL_MEAN = 0.999
FAITHFUL_MIN = 0.995
#: a precision other than fp32 is chosen only at this speed-up or more (a tie is noise)
MIN_SPEEDUP = 1.1
#: file in the cache folder that remembers decisions
DECISIONS_FILE = "precision.json"
#: bump to make every remembered decision be measured again
FORMAT = 1
_lock = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}
_memo: dict[str, Decision] = {}


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
        The decision key (see :func:`bertfeat.engine.precision.decision_key`).
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
    from ..store import default_cache_dir

    return default_cache_dir() / DECISIONS_FILE


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
    """Hold the store's cross-process file lock beside ``path`` (``<name>.lock``), so that
    parallel processes (joblib workers) calibrate once, one after another, not all at
    once. Where no lock file can be made (a read-only cache folder) nothing is locked: the
    decision then lives in each process only."""
    from ..store.database import file_lock

    with file_lock(path.with_name(path.name + ".lock")):
        yield


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


def decide_once(key: str, allowed: tuple[str, ...], measure: Callable[[], Calibration],
                about: dict[str, Any]) -> Decision:
    """The decision remembered under ``key``, else measured once and remembered.

    Looked up in this process's memo, then in the decisions file; only when neither has
    it, ``measure()`` runs (under a lock file beside the decisions file, so that parallel
    processes measure one after another and the later ones read the earlier one's
    decision), :func:`choose` picks from its numbers, and the decision is written to the
    file. A remembered precision outside ``allowed`` (a damaged file) is measured again.

    Parameters
    ----------
    key : str
        The decision key (:func:`bertfeat.engine.precision.decision_key`).
    allowed : tuple of str
        The candidate precisions on this device (:func:`.machine.candidates`).
    measure : callable
        Takes no argument and returns the :class:`Calibration` of the candidates.
    about : dict
        Written with the decision: ``purpose``, ``model``, ``device`` and ``torch``.

    Returns
    -------
    Decision
        ``source`` is ``"remembered"`` or ``"measured"``.
    """
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
                    cal = measure()
                    precision, reason = choose(cal)
                    found = Decision(precision, "measured", reason, key, cal)
                    record = {
                        "precision": precision, "reason": reason,
                        **{k: about.get(k, "?") for k in ("purpose", "model", "device",
                                                           "torch")},
                        "tokens_per_s": cal.tokens_per_s,
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
