"""Honest numbers for cross-validation studies: intervals, paired tests, ties, the pick.

Scores from k-fold cross-validation are not independent: the training sets of two folds
share most of their rows, so the fold scores are positively correlated and the naive
standard error ``s / sqrt(J)`` understates the uncertainty of their mean. This module
uses the **corrected resampled t** of Nadeau & Bengio (2003), in the repeated k-fold form
of Bouckaert & Frank (2004): with ``J = repeats * k`` fold scores of sample variance
``s**2`` (``ddof=1``) and ``n_test / n_train`` the ratio of test to training rows,

    var(mean) = (1/J + n_test/n_train) * s**2,    t = (mean - mu0) / sqrt(var(mean)),

and ``t`` is read against Student's t with ``J - 1`` degrees of freedom.

The same variance, computed on per-fold *differences* of two candidates scored on the
same folds, gives the corrected paired test. ``docs/statistics.md`` states the formulas,
their assumptions and the references. Everything here is numpy/scipy on arrays of fold
scores, so it serves the probe and any ``cross_validate`` result alike.

Functions
---------
cv_splits
    Repeated (stratified) k-fold splits; repeat 1 equals the un-repeated splitter.
split_ratio
    The ``n_test / n_train`` of a list of splits.
score_interval
    Mean, std and the corrected interval of one candidate's fold scores.
paired_test
    Corrected paired t-test of two candidates' fold scores (same folds).
tied_group
    The candidates not distinguishable from the top one.
cheapest
    The cheapest member of a group under a cost key (ties: higher mean).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["cv_splits", "split_ratio", "score_interval", "paired_test", "tied_group",
           "cheapest", "Interval", "PairedTest", "TiedGroup"]


# ------------------------------------------------------------------------------ splits
def cv_splits(y: Any, n_splits: int = 5, n_repeats: int = 1, *, stratify: bool = True,
              random_state: int | None = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Repeated k-fold splits, shuffled; stratified by ``y`` for classification.

    Every candidate of a study should be scored on these same splits, so that their fold
    scores pair up. Repeat 1 is exactly ``StratifiedKFold(n_splits, shuffle=True,
    random_state=random_state)`` (or ``KFold``), so ``n_repeats=1`` reproduces un-repeated
    results.

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels (``stratify=True``) or any target (only its length is used otherwise).
    n_splits : int, default=5
        Folds per repeat (``k``), at least 2.
    n_repeats : int, default=1
        Repeats (``r``), each with a fresh shuffle; ``r * k`` splits in all.
    stratify : bool, default=True
        Keep the class proportions in every fold.
    random_state : int or None, default=0
        Seed of the shuffles.

    Returns
    -------
    list of (train_indices, test_indices)
        Repeat by repeat, fold by fold.
    """
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    for name, value, low in (("n_splits", n_splits, 2), ("n_repeats", n_repeats, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    cls = RepeatedStratifiedKFold if stratify else RepeatedKFold
    splitter = cls(n_splits=int(n_splits), n_repeats=int(n_repeats), random_state=random_state)
    return [(np.asarray(tr), np.asarray(te)) for tr, te in splitter.split(np.zeros(len(y)), y)]


def split_ratio(splits: Sequence[tuple[Any, Any]]) -> float:
    """The mean ``n_test / n_train`` over ``splits`` (``1 / (k - 1)`` for k-fold).

    Parameters
    ----------
    splits : sequence of (train_indices, test_indices)

    Returns
    -------
    float
    """
    ratios = []
    for i, (train, test) in enumerate(splits):
        n_train, n_test = len(train), len(test)
        if n_train == 0 or n_test == 0:
            raise ValueError(f"split {i} has {n_train} training and {n_test} test rows; "
                             "both must be non-empty")
        ratios.append(n_test / n_train)
    if not ratios:
        raise ValueError("no splits")
    return float(np.mean(ratios))


# --------------------------------------------------------------------------- intervals
def _scores(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size < 2:
        raise ValueError(f"{name}: need at least 2 fold scores, got {arr.size}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name}: fold score {int(bad[0])} is {float(arr[bad[0]])}; every fold "
                         "must have a finite score")
    return arr


def _check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not np.isfinite(ratio) or ratio < 0:
        raise ValueError(f"ratio (n_test / n_train) must be a finite number >= 0, got {ratio!r}")
    return ratio


def _check_level(level: float, name: str = "level") -> float:
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f"{name} must be in (0, 1), got {level!r}")
    return level


def _variance_factor(n: int, ratio: float, corrected: bool) -> float:
    """``1/J + n_test/n_train`` (corrected) or ``1/J`` (naive)."""
    return 1.0 / n + (ratio if corrected else 0.0)


@dataclass(frozen=True)
class Interval:
    """Mean fold score with its (corrected) interval.

    Attributes
    ----------
    mean, std : float
        Mean and standard deviation (``ddof=0``, as the probe table shows) of the scores.
    se : float
        Standard error of the mean: ``sqrt((1/J + ratio) * s**2)`` with ``ddof=1``.
    low, high : float
        The interval ``mean ± t_{J-1} * se`` at ``level``.
    level : float
    df : int
        Degrees of freedom, ``J - 1``.
    """

    mean: float
    std: float
    se: float
    low: float
    high: float
    level: float
    df: int


def score_interval(scores: Any, ratio: float, *, level: float = 0.95,
                   corrected: bool = True) -> Interval:
    """Mean and interval of one candidate's fold scores.

    Parameters
    ----------
    scores : array-like of shape (J,)
        Fold scores (all repeats, flattened).
    ratio : float
        ``n_test / n_train`` of the splits (:func:`split_ratio`).
    level : float, default=0.95
        Coverage of the interval.
    corrected : bool, default=True
        Nadeau-Bengio correction; ``False`` gives the naive ``s / sqrt(J)`` interval that
        treats the folds as independent (too narrow; for comparison only).

    Returns
    -------
    Interval

    Examples
    --------
    >>> from bertfeat.cvstats import score_interval
    >>> iv = score_interval([0.80, 0.84, 0.78, 0.82, 0.81], ratio=0.25)
    >>> round(iv.low, 3), round(iv.high, 3)
    (0.768, 0.852)
    """
    x = _scores(scores, "scores")
    ratio = _check_ratio(ratio)
    level = _check_level(level)
    n = x.size
    se = float(np.sqrt(_variance_factor(n, ratio, corrected) * x.var(ddof=1)))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    mean = float(x.mean())
    return Interval(mean, float(x.std()), se, mean - half, mean + half, level, n - 1)


@dataclass(frozen=True)
class PairedTest:
    """Corrected paired t-test of ``a - b`` on the same folds.

    Attributes
    ----------
    diff : float
        Mean of the per-fold differences ``a - b``.
    se : float
        Its corrected standard error.
    t : float
        ``diff / se`` (``±inf`` when every fold differs by the same non-zero amount).
    df : int
        ``J - 1``.
    p_value : float
        Two-sided p-value of "no difference in expected score".
    low, high : float
        Interval of the difference at ``level``.
    level : float
    """

    diff: float
    se: float
    t: float
    df: int
    p_value: float
    low: float
    high: float
    level: float

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the difference is significant at ``alpha`` (two-sided)."""
        return self.p_value < alpha


def paired_test(a: Any, b: Any, ratio: float, *, level: float = 0.95,
                corrected: bool = True) -> PairedTest:
    """Corrected resampled paired t-test of two candidates scored on the same folds.

    Parameters
    ----------
    a, b : array-like of shape (J,)
        Fold scores of the two candidates, fold ``j`` of ``a`` on the same split as fold
        ``j`` of ``b``.
    ratio : float
        ``n_test / n_train`` of the splits.
    level : float, default=0.95
        Coverage of the interval of the difference.
    corrected : bool, default=True
        Nadeau-Bengio correction (``False``: the naive paired t-test, which rejects far
        too often on cross-validation folds; for comparison only).

    Returns
    -------
    PairedTest
    """
    a = _scores(a, "a")
    b = _scores(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must hold the same folds: {a.size} vs {b.size} scores")
    ratio = _check_ratio(ratio)
    level = _check_level(level)
    d = a - b
    n = d.size
    diff = float(d.mean())
    se = float(np.sqrt(_variance_factor(n, ratio, corrected) * d.var(ddof=1)))
    # float noise (scores that differ only by rounding) is not a difference
    tol = 1e-12 * max(1.0, float(np.abs(a).max()), float(np.abs(b).max()))
    if se <= tol:  # every fold differs by the same amount
        if abs(diff) <= tol:
            return PairedTest(0.0, 0.0, 0.0, n - 1, 1.0, 0.0, 0.0, level)
        return PairedTest(diff, 0.0, float(np.copysign(np.inf, diff)), n - 1, 0.0, diff, diff,
                          level)
    t = diff / se
    p = float(2 * stats.t.sf(abs(t), n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    return PairedTest(diff, se, float(t), n - 1, p, diff - half, diff + half, level)


# ------------------------------------------------------------------------ ties, the pick
@dataclass(frozen=True)
class TiedGroup:
    """The candidates not distinguishable from the top one.

    Attributes
    ----------
    top : hashable
        The key with the highest mean fold score.
    members : list
        Keys whose corrected paired test against ``top`` has ``p >= alpha`` (``top``
        included), in the order given.
    tests : dict
        ``{key: PairedTest(top - key)}`` for every other key.
    alpha : float
    """

    top: Hashable
    members: list
    tests: dict
    alpha: float

    def p_value(self, key: Hashable) -> float:
        """p-value of ``top`` vs ``key`` (1.0 for ``top`` itself)."""
        return 1.0 if key == self.top else self.tests[key].p_value


def tied_group(scores: Mapping[Hashable, Any], ratio: float, *, alpha: float = 0.05,
               corrected: bool = True) -> TiedGroup:
    """The group of candidates tied with the top one at level ``alpha``.

    The top is the candidate with the highest mean score (the first such in ``scores``
    order). A candidate is *tied* with it when the corrected paired test of their
    per-fold differences does not reject "equal expected score" at ``alpha`` (two-sided,
    each comparison at ``alpha``: no multiplicity adjustment, which keeps the group
    small rather than large).

    Parameters
    ----------
    scores : mapping of key -> array-like of shape (J,)
        Fold scores of every candidate, all on the same ``J`` splits.
    ratio : float
        ``n_test / n_train`` of the splits.
    alpha : float, default=0.05
        Significance level.
    corrected : bool, default=True
        Nadeau-Bengio correction (``False`` only to show how the naive test behaves).

    Returns
    -------
    TiedGroup
    """
    alpha = _check_level(alpha, "alpha")
    if not scores:
        raise ValueError("scores must hold at least one candidate")
    arrays = {key: _scores(value, f"candidate {key!r}") for key, value in scores.items()}
    sizes = {arr.size for arr in arrays.values()}
    if len(sizes) > 1:
        raise ValueError(f"every candidate must be scored on the same folds; got fold counts "
                         f"{sorted(sizes)}")
    keys = list(arrays)
    means = np.array([arrays[k].mean() for k in keys])
    top = keys[int(np.argmax(means))]
    tests = {k: paired_test(arrays[top], arrays[k], ratio, corrected=corrected)
             for k in keys if k != top}
    members = [k for k in keys if k == top or tests[k].p_value >= alpha]
    return TiedGroup(top, members, tests, alpha)


def cheapest(members: Sequence[Hashable], cost: Callable[[Hashable], Any],
             mean: Callable[[Hashable], float] | None = None, *,
             pool: Sequence[Hashable] = ()) -> Hashable:
    """The member with the smallest ``cost(key)``; equal costs go to the higher ``mean``.

    Parameters
    ----------
    members : sequence of keys
        Usually :attr:`TiedGroup.members`.
    cost : callable
        Key -> a comparable cost (a tuple compares lexicographically, so a rule such as
        "no encoder, then fewest layers, then the cheapest head" is one tuple).
    mean : callable, optional
        Key -> mean score, the tie-break; else the first in ``members`` order wins.
    pool : sequence of keys, optional
        Every candidate (needs ``mean``). A member is passed over when a candidate of the
        pool is both cheaper and has a higher mean: nobody should pay more for less, even
        when the cheaper candidate fell out of the group (so the pick never scores below a
        cheaper baseline). The member with the highest mean is never passed over.

    Returns
    -------
    key
    """
    if not members:
        raise ValueError("members must hold at least one key")
    if pool and mean is None:
        raise ValueError("pool needs mean")
    order = {key: i for i, key in enumerate(members)}
    eligible = [m for m in members
                if not any(cost(c) < cost(m) and mean(c) > mean(m) for c in pool)]
    if not eligible:  # only possible when the pool holds a higher mean than every member
        eligible = [max(members, key=mean)]
    return min(eligible, key=lambda k: (cost(k), -mean(k) if mean is not None else 0.0,
                                        order[k]))
