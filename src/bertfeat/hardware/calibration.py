"""What a calibration is: its record, its texts, its time budget and its fidelity measure.

A calibration times each candidate precision of a model on a device and compares its
outputs with fp32's. The measuring itself loads the model and runs the encoder, so it sits
above this package, at the engine layer (:func:`bertfeat.engine.precision.calibrate`);
here are only the pieces that need no model: :class:`Calibration` (the numbers),
:func:`calibration_texts` (short and long texts shipped with the package, so the model's
own shapes), :data:`TIME_BUDGET_S` and :func:`cosine_to_reference`. The choice among the
candidates and its memory are :mod:`.decision`'s.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TIME_BUDGET_S", "Calibration", "calibration_texts", "cosine_to_reference"]

#: seconds of encoding per calibration: after the first run of each candidate (which gives
#: the fidelity and a first timing), more interleaved rounds while under this budget
TIME_BUDGET_S = 1.5
#: calibration texts: the first rows of two shipped datasets, and paragraphs joined from them
_CALIBRATION = (("banking77", 24), ("sms_spam", 8))
_PARAGRAPHS = 2

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


def cosine_to_reference(got: Any, ref: Any) -> tuple[float, float]:
    """Per-row cosine of a candidate's outputs to fp32's: the mean and the minimum.

    Parameters
    ----------
    got, ref : array-like
        The candidate's and fp32's outputs, same shape; the last axis is the vector.

    Returns
    -------
    mean, min : float
        Over every other axis (texts, layers, statistics). Rows that are zero in both
        agree exactly (1); a zero row in one only does not (0); NaN where the candidate
        produced a non-finite value.
    """
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
