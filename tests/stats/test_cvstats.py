"""Statistics of cross-validation studies, checked on simulated fold scores with known truth."""

import numpy as np
import pytest
from scipy import stats
from sklearn.model_selection import KFold, StratifiedKFold

from bertfeat.cvstats import (
    cheapest,
    cv_splits,
    paired_test,
    score_interval,
    split_ratio,
    tied_group,
)


def _fold_scores(rng, mean, n_folds, ratio, sigma=0.02, size=None):
    """Fold scores with the correlation the correction assumes: rho = ratio / (1 + ratio).

    Exchangeable normal scores ``mean + sqrt(rho) z0 + sqrt(1 - rho) z_j``: the model of
    Nadeau & Bengio, under which the corrected t statistic is exactly t(J - 1).
    """
    rho = ratio / (1 + ratio)
    shape = (size, n_folds) if size is not None else (n_folds,)
    shared = rng.normal(size=shape[:-1] + (1,))
    own = rng.normal(size=shape)
    return mean + sigma * (np.sqrt(rho) * shared + np.sqrt(1 - rho) * own)


# ------------------------------------------------------------------------ simulations
def test_equal_candidates_are_tied_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    ratio, J, seeds = 0.25, 10, 2000  # 2 x 5-fold
    tied = naive_tied = 0
    for _ in range(seeds):
        # the two candidates share fold noise (same folds) and each has its own part
        common = _fold_scores(rng, 0.85, J, ratio)
        a = common + _fold_scores(rng, 0.0, J, ratio, sigma=0.01)
        b = common + _fold_scores(rng, 0.0, J, ratio, sigma=0.01)
        tied += len(tied_group({"a": a, "b": b}, ratio).members) == 2
        naive_tied += len(tied_group({"a": a, "b": b}, ratio, corrected=False).members) == 2
    # binomial sd of the rate is 0.005: 0.95 +- 4 sd
    assert 0.93 <= tied / seeds <= 0.97
    # the naive test treats correlated folds as independent and finds differences that
    # are not there
    assert naive_tied / seeds < 0.85


def test_corrected_interval_covers_the_true_mean_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    ratio, J, truth = 0.25, 5, 0.8
    scores = _fold_scores(rng, truth, J, ratio, size=2000)
    covered = [score_interval(s, ratio).low <= truth <= score_interval(s, ratio).high
               for s in scores]
    naive = [score_interval(s, ratio, corrected=False).low <= truth
             <= score_interval(s, ratio, corrected=False).high for s in scores]
    assert 0.93 <= np.mean(covered) <= 0.97
    assert np.mean(naive) < 0.90


def test_a_large_true_gap_is_detected():
    rng = np.random.default_rng(2)
    ratio, J = 0.25, 10
    for _ in range(50):
        common = _fold_scores(rng, 0.80, J, ratio)
        scores = {"weak": common + _fold_scores(rng, 0.0, J, ratio, sigma=0.005),
                  "strong": common + 0.05 + _fold_scores(rng, 0.0, J, ratio, sigma=0.005)}
        group = tied_group(scores, ratio)
        assert group.top == "strong"
        assert group.members == ["strong"]
        assert group.tests["weak"].diff > 0.03
        assert group.p_value("weak") < 0.01


def _nearest_centroid_cv(X, y, splits):
    scores = []
    for train, test in splits:
        c0, c1 = (X[train][y[train] == c].mean(axis=0) for c in (0, 1))
        pred = ((X[test] - c1) ** 2).sum(1) < ((X[test] - c0) ** 2).sum(1)
        scores.append(float((pred == y[test]).mean()))
    return np.array(scores)


def test_real_cross_validation_of_two_equal_models():
    """Real folds (not a model of them): two equally good views of the same signal.

    On repeated k-fold the naive paired t-test rejects "equal" several times more often
    than its level (Dietterich 1998; Bouckaert & Frank 2004); the corrected test stays
    at or below it.
    """
    seeds, corrected, naive = 150, 0, 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, 100)
        signal = 0.6 * y[:, None] + rng.normal(size=(100, 1))
        A = signal + rng.normal(size=(100, 3))
        B = signal + rng.normal(size=(100, 3))
        splits = cv_splits(y, 5, 4, random_state=seed)
        ratio = split_ratio(splits)
        a, b = _nearest_centroid_cv(A, y, splits), _nearest_centroid_cv(B, y, splits)
        corrected += paired_test(a, b, ratio).p_value < 0.05
        naive += paired_test(a, b, ratio, corrected=False).p_value < 0.05
    assert corrected / seeds <= 0.08
    assert naive / seeds >= 0.2


# ---------------------------------------------------------------------------- formulas
def test_corrected_interval_is_wider_than_the_naive_one_by_the_formula():
    scores = [0.80, 0.84, 0.78, 0.82, 0.81, 0.83, 0.79, 0.80, 0.85, 0.82]
    ratio = 0.25
    corr = score_interval(scores, ratio)
    naive = score_interval(scores, ratio, corrected=False)
    assert corr.mean == naive.mean == pytest.approx(np.mean(scores))
    assert corr.low < naive.low < naive.high < corr.high
    J = len(scores)
    assert corr.se / naive.se == pytest.approx(np.sqrt((1 / J + ratio) / (1 / J)))
    # the naive one is the textbook t interval
    lo, hi = stats.t.interval(0.95, J - 1, loc=np.mean(scores), scale=stats.sem(scores))
    assert (naive.low, naive.high) == pytest.approx((lo, hi))
    assert corr.df == J - 1
    assert corr.std == pytest.approx(np.std(scores))


def test_paired_test_matches_scipy_when_uncorrected_and_scales_t_when_corrected():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.8, 0.02, 10), rng.normal(0.79, 0.02, 10)
    naive = paired_test(a, b, 0.25, corrected=False)
    ref = stats.ttest_rel(a, b)
    assert naive.t == pytest.approx(ref.statistic)
    assert naive.p_value == pytest.approx(ref.pvalue)
    corr = paired_test(a, b, 0.25)
    assert corr.t == pytest.approx(naive.t * np.sqrt(0.1 / (0.1 + 0.25)))
    assert corr.p_value > naive.p_value
    assert corr.low < corr.diff < corr.high
    flipped = paired_test(b, a, 0.25)
    assert flipped.diff == pytest.approx(-corr.diff)
    assert flipped.p_value == pytest.approx(corr.p_value)


def test_paired_test_degenerate_differences():
    same = paired_test([0.8, 0.9, 0.7], [0.8, 0.9, 0.7], 0.5)
    assert same.p_value == 1.0 and same.diff == 0.0
    shifted = paired_test([0.9, 1.0, 0.8], [0.8, 0.9, 0.7], 0.5)
    assert shifted.p_value == 0.0 and shifted.t == np.inf
    assert shifted.significant()
    # float noise is not a difference
    noisy = paired_test([0.1 + 0.2, 0.5, 0.5], [0.3, 0.5, 0.5], 0.5)
    assert noisy.p_value == 1.0


@pytest.mark.parametrize("bad, match", [
    (([0.8], [0.8], 0.25), "at least 2 fold scores"),
    (([0.8, np.nan, 0.7], [0.8, 0.8, 0.7], 0.25), "fold score 1 is nan"),
    (([0.8, 0.9], [0.8, 0.9, 0.7], 0.25), "same folds"),
    (([0.8, 0.9], [0.8, 0.7], -1), "ratio"),
])
def test_paired_test_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        paired_test(*bad)


def test_score_interval_rejects_bad_level():
    with pytest.raises(ValueError, match="level"):
        score_interval([0.1, 0.2], 0.25, level=95)


# ---------------------------------------------------------------------- group and pick
def test_tied_group_members_and_p_values():
    scores = {"a": [0.80, 0.82, 0.81, 0.79, 0.83],
              "b": [0.81, 0.83, 0.80, 0.80, 0.84],   # top, a within noise of it
              "c": [0.60, 0.62, 0.61, 0.59, 0.63]}   # far below
    group = tied_group(scores, 0.25)
    assert group.top == "b"
    assert group.members == ["a", "b"]
    assert group.p_value("b") == 1.0
    assert group.p_value("a") >= 0.05 > group.p_value("c")
    assert set(group.tests) == {"a", "c"}


def test_tied_group_rejects_unequal_folds_and_empty_input():
    with pytest.raises(ValueError, match="same folds"):
        tied_group({"a": [0.1, 0.2, 0.3], "b": [0.1, 0.2]}, 0.25)
    with pytest.raises(ValueError, match="at least one"):
        tied_group({}, 0.25)
    with pytest.raises(ValueError, match="candidate 'b'"):
        tied_group({"a": [0.1, 0.2], "b": [0.1, np.inf]}, 0.25)


def test_cheapest_uses_the_cost_then_the_mean():
    cost = {"svm": (1, 384), "logreg_big": (0, 1536), "logreg": (0, 384),
            "logreg_twin": (0, 384)}
    mean = {"svm": 0.9, "logreg_big": 0.89, "logreg": 0.85, "logreg_twin": 0.86}
    assert cheapest(list(cost), cost.__getitem__) == "logreg"  # first of equal cost
    assert cheapest(list(cost), cost.__getitem__, mean.__getitem__) == "logreg_twin"
    with pytest.raises(ValueError):
        cheapest([], cost.__getitem__)


def test_cheapest_passes_over_a_member_a_cheaper_candidate_beats():
    cost = {"tfidf": 0, "small": 1, "big": 2}.__getitem__
    mean = {"tfidf": 0.80, "small": 0.78, "big": 0.86}.__getitem__
    # "small" is tied with "big" but scores below the cheaper TF-IDF: paying more for less
    assert cheapest(["small", "big"], cost, mean) == "small"
    assert cheapest(["small", "big"], cost, mean, pool=["tfidf", "small", "big"]) == "big"
    with pytest.raises(ValueError, match="pool needs mean"):
        cheapest(["small"], cost, pool=["small"])


# ------------------------------------------------------------------------------ splits
def test_cv_splits_first_repeat_is_the_plain_splitter():
    y = np.array([0] * 37 + [1] * 23)
    splits = cv_splits(y, 5, 3, random_state=7)
    assert len(splits) == 15
    plain = list(StratifiedKFold(5, shuffle=True, random_state=7).split(np.zeros(60), y))
    for (tr, te), (ptr, pte) in zip(splits[:5], plain):
        assert np.array_equal(tr, ptr) and np.array_equal(te, pte)
    unstrat = cv_splits(y, 5, 2, stratify=False, random_state=7)
    plain = list(KFold(5, shuffle=True, random_state=7).split(np.zeros(60)))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(unstrat[:5], plain))
    for r in range(3):  # each repeat is a partition of the rows, stratified
        tests = [te for _, te in splits[5 * r:5 * r + 5]]
        assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(60))
        assert all(abs(y[te].mean() - y.mean()) < 0.1 for te in tests)
    assert not np.array_equal(splits[0][1], splits[5][1])  # a fresh shuffle per repeat
    assert split_ratio(splits) == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_splits": 1}, "n_splits"), ({"n_repeats": 0}, "n_repeats"),
    ({"n_repeats": True}, "n_repeats")])
def test_cv_splits_rejects_bad_counts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cv_splits(np.array([0, 1] * 10), **kwargs)


def test_split_ratio_rejects_empty_folds():
    with pytest.raises(ValueError, match="split 1"):
        split_ratio([([0, 1], [2]), ([], [0, 1, 2])])
