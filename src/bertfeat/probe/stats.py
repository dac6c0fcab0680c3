"""The probe's statistics: intervals and tests per row, the tied group, the stated pick.

:func:`annotate` takes the probe's table (one row per candidate) and the fold scores of
every candidate on the same splits, and adds the columns ``ci_low``, ``ci_high`` (the
corrected 95% interval), ``p_value`` (corrected paired test against the top candidate)
and ``tied``; it returns the :class:`Recommendation`: the top candidate (highest mean),
the group tied with it, and the cheapest member of the group under :data:`PICK_RULE`.
The arithmetic lives in :mod:`bertfeat.stats.cvstats`, what a candidate costs in
:mod:`.costs` and the rules in :mod:`.selection` (both re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..stats.cvstats import PairedTest, paired_test, score_interval
from .costs import PICK_RULE, candidate_cost, layer_depth
from .selection import DEFAULT_RULE, Recommendation, recommend, rule_name

__all__ = ["PICK_RULE", "Recommendation", "annotate", "candidate_cost", "layer_depth",
           "compare"]

#: families a recommendation may come from (the random-weights model is a control only)
RECOMMENDABLE = ("bert", "tfidf", "union")


def annotate(table: pd.DataFrame, folds: pd.DataFrame, ratio: float, *,
             head_order: Sequence[str], recommendable: Sequence[str] | None = None,
             alpha: float = 0.05, level: float = 0.95,
             select: str | None = None) -> tuple[pd.DataFrame, Recommendation]:
    """Add the interval and test columns to ``table`` and choose the recommendation.

    Parameters
    ----------
    table : pandas.DataFrame
        The probe table, best mean first, with a ``candidate`` column.
    folds : pandas.DataFrame
        Fold scores: one row per candidate key (index), one column per split, the same
        splits for every candidate.
    ratio : float
        ``n_test / n_train`` of the splits.
    head_order : sequence of str
        The probe's head names, cheapest first.
    recommendable : sequence of str, optional
        Candidate keys a recommendation may be (default: the rows of the ``bert``,
        ``tfidf`` and ``union`` families; never the random-weights control).
    alpha : float, default=0.05
        Level of the paired tests that form the tied group.
    level : float, default=0.95
        Coverage of the intervals.
    select : str, optional
        The selection rule, a key of :data:`bertfeat.probe.selection.RULES` (default:
        :data:`~bertfeat.probe.selection.DEFAULT_RULE`).

    Returns
    -------
    (pandas.DataFrame, Recommendation)
        A copy of ``table`` with ``ci_low``, ``ci_high``, ``p_value`` and ``tied``
        inserted after ``std_score``; ``p_value`` is the test against the top
        recommendable row (the first in the table's order).
    """
    select = rule_name(DEFAULT_RULE if select is None else select)
    missing = [key for key in table["candidate"] if key not in folds.index]
    if missing:
        raise ValueError(f"no fold scores for candidate {missing[0]!r}")
    scores = {key: folds.loc[key].to_numpy(dtype=float) for key in table["candidate"]}
    if recommendable is None:
        rec_mask = table["family"].isin(RECOMMENDABLE)
    else:
        rec_mask = table["candidate"].isin(set(recommendable))
    if not rec_mask.any():
        raise ValueError("probe scored no BERT or TF-IDF candidate")
    recommendable = list(table.loc[rec_mask, "candidate"])
    # the top: the highest mean (the table is best first; equal means keep its order)
    top = max(recommendable, key=lambda key: (scores[key].mean(), -recommendable.index(key)))
    out = table.copy()
    intervals = [score_interval(scores[key], ratio, level=level) for key in out["candidate"]]
    p_values = [1.0 if key == top else paired_test(scores[top], scores[key], ratio).p_value
                for key in out["candidate"]]
    at = list(out.columns).index("std_score") + 1
    out.insert(at, "ci_low", [iv.low for iv in intervals])
    out.insert(at + 1, "ci_high", [iv.high for iv in intervals])
    out.insert(at + 2, "p_value", p_values)
    out.insert(at + 3, "tied", np.asarray(p_values) >= alpha)
    return out, recommend(out, folds, ratio, head_order=head_order,
                          recommendable=recommendable, rule=select, alpha=alpha,
                          level=level, top=top)


def compare(folds: pd.DataFrame, a: str, b: str, ratio: float) -> PairedTest:
    """Corrected paired test of candidate ``a`` minus candidate ``b``.

    Parameters
    ----------
    folds : pandas.DataFrame
        Fold scores, one row per candidate key.
    a, b : str
        Candidate keys.
    ratio : float
        ``n_test / n_train`` of the splits.

    Returns
    -------
    PairedTest
    """
    return paired_test(folds.loc[a].to_numpy(dtype=float), folds.loc[b].to_numpy(dtype=float),
                       ratio)
