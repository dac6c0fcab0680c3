"""The probe's statistics: intervals and tests per row, the tied group, the stated pick.

:func:`annotate` takes the probe's table (one row per candidate) and the fold scores of
every candidate on the same splits, and adds the columns ``ci_low``, ``ci_high`` (the
corrected 95% interval), ``p_value`` (corrected paired test against the top candidate)
and ``tied``; it returns the :class:`Recommendation`: the top candidate (highest mean),
the group tied with it, and the cheapest member of the group under :data:`PICK_RULE`.
The arithmetic lives in :mod:`bertfeat.cvstats`; this module knows what a probe candidate
costs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..stats.cvstats import PairedTest, paired_test, score_interval

__all__ = ["PICK_RULE", "Recommendation", "annotate", "candidate_cost", "layer_depth",
           "compare"]

#: the pick rule, as the summary states it
PICK_RULE = ("the cheapest to run: no encoder (TF-IDF alone), then the fewest encoder "
             "layers, then no chunking, no TF-IDF union, the cheaper head (in the order "
             "the heads were given), fewer features; equal cost: the higher mean; a "
             "candidate that a cheaper one outscores is never picked")
#: families a recommendation may come from (the random-weights model is a control only)
RECOMMENDABLE = ("bert", "tfidf", "union")
_LINEAR = {"logreg", "ridge", "linear"}


def layer_depth(layer: str) -> int:
    """The deepest hidden state a layer label needs: ``L4`` -> 4, ``L3-6 concat`` -> 6.

    Parameters
    ----------
    layer : str
        A value of the table's ``layer`` column (``-`` for TF-IDF: 0).

    Returns
    -------
    int
    """
    head = str(layer).split(" ")[0]
    numbers = [int(v) for v in re.findall(r"\d+", head)] if head.startswith("L") else []
    return max(numbers, default=0)


def _head_rank(head: str, head_order: Sequence[str]) -> int:
    name = str(head).split(" ")[0]
    order = list(head_order)
    if name in order:
        return order.index(name)
    if name in _LINEAR:  # TF-IDF and union heads are linear models
        return 0
    return len(order)


def candidate_cost(row: pd.Series, head_order: Sequence[str]) -> tuple:
    """The cost key of one table row under :data:`PICK_RULE` (smaller is cheaper).

    Parameters
    ----------
    row : pandas.Series
        A row of the probe table (``family``, ``layer``, ``head``, ``n_features``,
        ``stage``).
    head_order : sequence of str
        The probe's head names, cheapest first (the first one screened).

    Returns
    -------
    tuple
        ``(needs encoder, encoder layers, chunked, union, head rank, n_features)``.
    """
    family = row["family"]
    if family == "tfidf":
        return (0, 0, 0, 0, _head_rank(row["head"], head_order), 0)
    chunked = int(str(row["layer"]).endswith("chunked") or row.get("stage") == "chunk")
    n_features = row.get("n_features")
    width = 0 if n_features is None or pd.isna(n_features) else int(n_features)
    return (1, layer_depth(row["layer"]), chunked, int(family == "union"),
            _head_rank(row["head"], head_order), width)


@dataclass
class Recommendation:
    """What the statistics make of one probe table.

    Attributes
    ----------
    top : str
        Candidate key with the highest mean among the recommendable families.
    pick : str
        The recommended candidate under the rule ``select`` (see
        :mod:`bertfeat.probe.selection`).
    group : list of str
        Recommendable candidates not distinguishable from ``top`` (corrected paired
        test, two-sided, ``p >= alpha``), best first.
    select : str
        The rule's name (a key of :data:`bertfeat.probe.selection.RULES`).
    alpha : float
    level : float
    rule : str
        How ``pick`` was chosen, in words.
    n_folds : int
        Fold scores per candidate (repeats x folds).
    ratio : float
        ``n_test / n_train`` of the splits.
    """

    top: str
    pick: str
    group: list = field(default_factory=list)
    select: str = "top"
    alpha: float = 0.05
    level: float = 0.95
    rule: str = "the highest mean"
    n_folds: int = 0
    ratio: float = 0.0


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
    from .selection import DEFAULT_RULE, recommend, rule_name

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
