"""Measuring the candidate precisions of a model on a device: speed and fidelity to fp32.

:func:`calibrate` loads the model in each candidate precision, encodes the calibration
texts (shipped with the package: short and long texts, so the model's own shapes), compares
each candidate's pooled statistics with fp32's and times it. The choice among them and its
memory are :mod:`.decision`'s.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from typing import Any

from . import machine

__all__ = ["TIME_BUDGET_S", "Calibration", "calibrate", "calibration_texts"]

#: seconds of encoding per calibration: after the first run of each candidate (which gives
#: the fidelity and a first timing), more interleaved rounds while under this budget
TIME_BUDGET_S = 1.5
#: calibration texts: the first rows of two shipped datasets, and paragraphs joined from them
_CALIBRATION = (("banking77", 24), ("sms_spam", 8))
_PARAGRAPHS = 2

#: the clock calibration reads; tests replace it to fake timings
_clock = time.perf_counter


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


def calibration_texts() -> list[str]:
    """The calibration texts: short and long rows of the shipped datasets.

    Returns
    -------
    list of str
        The first rows of banking77 (short queries) and the SMS collection, and a few
        paragraphs of consecutive SMS texts (so batches of long sequences are timed too).
    """
    from ..io.datasets import dataset_path

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

    from .. import models
    from ..engine import encoder

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
    from ..estimators.featurizer import DEFAULT_BATCH_TOKENS, DEFAULT_BATCH_TOKENS_GPU

    return DEFAULT_BATCH_TOKENS if device == "cpu" else DEFAULT_BATCH_TOKENS_GPU


def _train_runner(info: Any, device: str, precision: str, texts: list[str],
                  trust_remote_code: bool):
    """A callable that runs one forward and backward pass under ``precision``'s autocast
    (as fine-tuning does) and returns the last layer's mean over real tokens."""
    import numpy as np

    from .. import models
    from ..engine.training import autocast

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

    precisions = tuple(precisions or machine.candidates(device))
    if precisions[0] != "fp32":
        raise ValueError(f"calibration needs fp32 first (the reference), got {precisions}")
    if device != "cpu":
        return _calibrate(info, device, precisions, purpose, trust_remote_code, budget_s)
    from ..engine.encoder import cpu_streams

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

