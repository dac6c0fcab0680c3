"""Selection rules: which candidate the probe recommends, from the stored fold scores only.

A rule reads the annotated probe table (mean, intervals, p-values against the top row,
the tied group) and the fold scores of every candidate; it never scores anything. So a
saved probe can be re-read under another rule in seconds
(:meth:`~bertfeat.probe.ProbeResult.select`, ``bertfeat recommend OUTDIR --select RULE``).

========================= ==================================================================
rule                      pick
========================= ==================================================================
``top``                   the highest mean
``cheapest-tied``         the cheapest candidate of the group tied with the top one
                          (:data:`~bertfeat.probe.costs.PICK_RULE`; the rule before
                          issue 25, also accepted as ``cheapest``)
``one-se``                the cheapest candidate whose mean is within one (corrected)
                          standard error of the top mean (Breiman's one-standard-error rule)
``stable-top``            the highest mean among candidates whose fold scores are not an
                          outlier in spread (fold standard deviation at most the median
                          plus three scaled MADs of the recommendable rows)
========================= ==================================================================

:data:`DEFAULT_RULE` is the rule that won ``benchmarks/bench_selection.py`` (the issue's
criterion: mean test accuracy at least the top mean's, and on every set at least both
plain baselines); ``benchmarks/README.md`` has the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ..stats.cvstats import cheapest, score_interval
from .costs import PICK_RULE, candidate_cost

__all__ = ["RULES", "ALIASES", "DEFAULT_RULE", "Recommendation", "Rule", "SelectionInput",
           "recommend", "rule_name", "spread_outliers"]


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



@dataclass(frozen=True)
class SelectionInput:
    """What a rule may read (nothing here scores a candidate).

    Attributes
    ----------
    table : pandas.DataFrame
        The annotated probe table indexed by candidate key (``mean_score``,
        ``std_score``, ``ci_low``, ``ci_high``, ``p_value``, ``tied`` and the cost
        columns).
    scores : dict of str -> ndarray
        Fold scores per candidate, the same splits for all.
    ratio : float
        ``n_test / n_train`` of the splits.
    top : str
        The recommendable candidate with the highest mean.
    group : list of str
        Recommendable candidates tied with ``top``, best first.
    recommendable : list of str
        Candidates a rule may pick, best first.
    head_order : list of str
        The probe's heads, cheapest first.
    alpha, level : float
        Level of the tests and coverage of the intervals.
    """

    table: pd.DataFrame
    scores: dict
    ratio: float
    top: str
    group: list
    recommendable: list
    head_order: list
    alpha: float
    level: float

    def cost(self, key: str) -> tuple:
        """The cost key of ``PICK_RULE`` (smaller is cheaper)."""
        return candidate_cost(self.table.loc[key], self.head_order)

    def mean(self, key: str) -> float:
        """The mean fold score of ``key``."""
        return float(self.table.loc[key, "mean_score"])

    def cheapest(self, members: Sequence[str]) -> str:
        """The cheapest of ``members``, never one a cheaper candidate outscores."""
        return cheapest(list(members), self.cost, self.mean, pool=self.recommendable)


@dataclass(frozen=True)
class Rule:
    """One selection rule: a name, what it does in words, and the choice itself."""

    name: str
    description: str
    choose: Callable[[SelectionInput], str]


def _top(inp: SelectionInput) -> str:
    return inp.top


def _cheapest_tied(inp: SelectionInput) -> str:
    return inp.cheapest(inp.group)


def _one_se(inp: SelectionInput) -> str:
    top = score_interval(inp.scores[inp.top], inp.ratio, level=inp.level)
    within = [key for key in inp.recommendable if inp.mean(key) >= top.mean - top.se]
    return inp.cheapest(within)


#: how many scaled median absolute deviations above the median fold spread is an outlier
SPREAD_MADS = 3.0


def spread_outliers(inp: SelectionInput) -> set:
    """Recommendable candidates whose fold standard deviation is an outlier (high).

    Parameters
    ----------
    inp : SelectionInput

    Returns
    -------
    set of str
        Keys whose ``std_score`` exceeds the median by more than :data:`SPREAD_MADS`
        scaled median absolute deviations (``1.4826 * MAD``); empty when the MAD is 0.
    """
    std = inp.table.loc[inp.recommendable, "std_score"].astype(float)
    median = float(std.median())
    mad = 1.4826 * float((std - median).abs().median())
    if mad == 0.0:
        return set()
    return set(std.index[std > median + SPREAD_MADS * mad])


def _stable_top(inp: SelectionInput) -> str:
    wild = spread_outliers(inp)
    steady = [key for key in inp.recommendable if key not in wild]
    return steady[0] if steady else inp.top


#: every rule, by name
RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule("top", "the highest mean", _top),
    Rule("cheapest-tied", f"the cheapest of the tied group: {PICK_RULE}", _cheapest_tied),
    Rule("one-se", "the cheapest candidate within one standard error (corrected resampled "
         "t) of the top mean; cost as in cheapest-tied", _one_se),
    Rule("stable-top", f"the highest mean among candidates whose fold-score spread is not "
         f"an outlier (standard deviation above the median + {SPREAD_MADS:g} scaled MADs)",
         _stable_top),
)}
#: older names of rules
ALIASES = {"cheapest": "cheapest-tied"}
#: the rule probe() and the CLI use unless told otherwise (the benchmark's winner)
DEFAULT_RULE = "top"


def rule_name(rule: str) -> str:
    """The canonical name of ``rule`` (``cheapest`` -> ``cheapest-tied``).

    Parameters
    ----------
    rule : str
        A key of :data:`RULES` or :data:`ALIASES`.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an unknown rule, naming the known ones.
    """
    name = ALIASES.get(rule, rule)
    if name not in RULES:
        raise ValueError(f"select must be one of {sorted(RULES)} (or "
                         f"{', '.join(repr(a) for a in ALIASES)}), got {rule!r}")
    return name


def recommend(table: pd.DataFrame, folds: pd.DataFrame, ratio: float, *,
              head_order: Sequence[str], recommendable: Sequence[str], rule: str,
              alpha: float, level: float, top: str | None = None) -> Recommendation:
    """The recommendation of ``rule`` on an annotated table (no scoring).

    Parameters
    ----------
    table : pandas.DataFrame
        The probe table after :func:`~bertfeat.probe.stats.annotate` (best first, with
        ``p_value`` against the top recommendable row and ``tied``).
    folds : pandas.DataFrame
        Fold scores, one row per candidate key.
    ratio : float
        ``n_test / n_train`` of the splits.
    head_order : sequence of str
        The probe's heads, cheapest first.
    recommendable : sequence of str
        Candidate keys a rule may pick.
    rule : str
        A key of :data:`RULES` (or an alias).
    alpha, level : float
        Level of the tests (the tied group is ``p_value >= alpha``) and of the intervals.
    top : str, optional
        The row ``p_value`` was computed against (default: the recommendable row with the
        highest mean of its fold scores, the first in table order on equal means).

    Returns
    -------
    Recommendation
    """
    name = rule_name(rule)
    allowed = set(recommendable)
    rec_rows = table[table["candidate"].isin(allowed)]
    if rec_rows.empty:
        raise ValueError("probe scored no BERT or TF-IDF candidate")
    rows = table.set_index("candidate", drop=False)
    ordered = list(rec_rows["candidate"])
    scores = {key: folds.loc[key].to_numpy(dtype=float) for key in ordered}
    if top is None:
        top = max(ordered, key=lambda key: (scores[key].mean(), -ordered.index(key)))
    group = [key for key in ordered
             if key == top or float(rows.loc[key, "p_value"]) >= alpha]
    inp = SelectionInput(
        table=rows, ratio=float(ratio), top=top, group=group, recommendable=ordered,
        head_order=list(head_order), alpha=alpha, level=level, scores=scores)
    pick = RULES[name].choose(inp)
    return Recommendation(top=top, pick=pick, group=group, select=name, alpha=alpha,
                          level=level, rule=RULES[name].description,
                          n_folds=int(folds.shape[1]), ratio=float(ratio))

