"""An unbiased estimate of the probe's selection: nested cross-validation, a held-out split.

The table's top score is the maximum of many noisy means on the same folds, so it is
optimistic. Here each *outer* split runs the complete selection -- every candidate
family, the tied group and the pick -- on inner folds of its training rows only, and the
pick (fitted on those rows) is scored on the outer test rows, which the selection never
saw. Every candidate's features come from the encoder pass already in the store, so the
estimate costs cross-validation work only, no encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..stats.cvstats import score_interval, split_ratio
from . import context
from .candidates import describe

if TYPE_CHECKING:  # pragma: no cover
    from .context import ProbeContext

__all__ = ["outer_estimate"]


def outer_estimate(ctx: ProbeContext, outer: Sequence[tuple[np.ndarray, np.ndarray]],
                   study: Callable[[ProbeContext], tuple],
                   inner_splits: Callable[[ProbeContext, np.ndarray], list],
                   label: str) -> dict[str, Any]:
    """Run ``study`` on each outer training set; score its pick on the outer test rows.

    Parameters
    ----------
    ctx : ProbeContext
        The probe's context after its main study (encoder passes done).
    outer : sequence of (train, test)
        Outer splits (several: nested CV; one: a held-out split).
    study : callable
        ``study(ctx) -> (table, fold_scores, recommendation)`` on ``ctx.splits``.
    inner_splits : callable
        ``inner_splits(ctx, train) -> splits`` of the training rows (global indices).
    label : str
        Name of an outer split in progress messages and errors.

    Returns
    -------
    dict
        ``scores`` (one per outer split), ``picks`` and ``tops`` (descriptions of what
        each outer split's selection recommended and ranked first), ``pick_keys``
        (their candidate keys), ``splits`` (the outer ``(train, test)`` indices), ``n_train`` and
        ``n_test`` (rows of the first split), and for several splits ``mean``,
        ``ci_low``, ``ci_high`` (the corrected interval over the outer folds); for one
        split ``score``.
    """
    scores, picks, tops, keys = [], [], [], []
    for i, (train, test) in enumerate(outer):
        name = f"{label} {i + 1}/{len(outer)}" if len(outer) > 1 else label
        try:
            inner = inner_splits(ctx, np.asarray(train))
        except ValueError as exc:
            raise ValueError(f"{name} ({len(train)} training rows): {exc}") from exc
        ctx.log(f"{name}: the whole selection on {len(train)} rows, scored on {len(test)}")
        sub = replace(ctx, splits=inner, scored=[], failures=[], fold_scores={},
                      timings={}, encoding=dict(ctx.encoding), encode_seconds=0.0)
        table, _, rec = study(sub)
        rows = table.set_index("candidate")
        cand = {c.key: c for _, c in sub.scored}[rec.pick]
        outcome = context.cv_score(cand, ctx.y, [(train, test)], ctx.scoring, None)
        scores.append(float(outcome["fold_scores"][0]))
        keys.append(rec.pick)
        picks.append(describe(rows.loc[rec.pick]))
        tops.append(describe(rows.loc[rec.top]))
    out: dict[str, Any] = {"scores": scores, "picks": picks, "pick_keys": keys, "tops": tops,
                           "splits": [(np.asarray(a), np.asarray(b)) for a, b in outer],
                           "n_train": len(outer[0][0]), "n_test": len(outer[0][1])}
    if len(outer) > 1:
        iv = score_interval(scores, split_ratio(outer), level=0.95)
        out.update(mean=iv.mean, ci_low=iv.low, ci_high=iv.high)
    else:
        out["score"] = scores[0]
    return out
