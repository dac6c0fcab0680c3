"""bertfeat.probe.scoring: many candidates' folds on one pool of threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from bertfeat.probe.candidates import Candidate
from bertfeat.probe.scoring import Job, run_jobs, workers


def _data(n=90, d=12, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], n // 3)
    X = rng.normal(size=(n, d)) + y[:, None] * 0.6
    return X, y


def _cand(X, est, head="h", path=None):
    return Candidate("bert", "L1", "mean", head, X, est, lambda: est, "screen", path=path)


class _Boom(ClassifierMixin, BaseEstimator):
    """Fails on the fold whose training set holds row 0."""

    def fit(self, X, y):
        if np.any(np.all(X == self.first_row_, axis=1)):
            raise ValueError("row 0 is bad")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def __init__(self, first_row_=None):
        self.first_row_ = first_row_


@pytest.mark.parametrize("n_jobs", [None, 1, 2, -1])
def test_scores_are_cross_validates_on_the_same_folds(n_jobs):
    X, y = _data()
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    heads = [make_pipeline(StandardScaler(), LogisticRegression(C=c)) for c in (0.1, 1.0)]
    heads.append(make_pipeline(StandardScaler(), SVC()))
    jobs = [Job(_cand(X, h, head=str(i)), y, splits, "accuracy") for i, h in enumerate(heads)]
    outcomes = run_jobs(jobs, n_jobs)
    assert [o.candidate.head for o in outcomes] == ["0", "1", "2"]  # the jobs' order
    for head, outcome in zip(heads, outcomes):
        ref = cross_validate(head, X, y, cv=splits, scoring="accuracy")["test_score"]
        assert outcome.error is None
        np.testing.assert_array_equal(outcome.scores["fold_scores"], ref)
        assert outcome.scores["mean_score"] == pytest.approx(ref.mean())
        assert outcome.scores["std_score"] == pytest.approx(ref.std())
        assert outcome.scores["fit_time"] > 0 and outcome.scores["score_time"] >= 0


def test_the_folds_run_on_several_threads_with_one_blas_and_openmp_thread_each():
    import sklearn.linear_model  # noqa: F401  (loads scikit-learn's OpenMP runtime)
    from threadpoolctl import threadpool_info

    X, y = _data()
    splits = list(StratifiedKFold(2).split(X, y))  # two tasks, both in fit at once
    seen, blas = set(), []
    barrier = threading.Barrier(2, timeout=10)

    class Spy(LogisticRegression):
        def fit(self, X, y):
            seen.add(threading.get_ident())
            blas.extend((i["user_api"], i["num_threads"]) for i in threadpool_info()
                        if i["user_api"] in ("blas", "openmp"))
            barrier.wait()  # both folds are in fit at the same time, or this times out
            return super().fit(X, y)

    out = run_jobs([Job(_cand(X, Spy()), y, splits, "accuracy")], n_jobs=2)
    assert out[0].error is None and len(seen) == 2
    # OpenMP's limit is per thread: the workers' own, not only the caller's
    assert {api for api, _ in blas} == {"blas", "openmp"}
    assert {n for _, n in blas} == {1}
    assert workers(None) == 1 and workers(2) == 2 and workers(-1) >= 1


def test_one_failing_candidate_leaves_the_others_scored():
    X, y = _data()
    splits = list(StratifiedKFold(3).split(X, y))
    good = make_pipeline(StandardScaler(), LogisticRegression())
    jobs = [Job(_cand(X, good, "good"), y, splits, "accuracy"),
            Job(_cand(X, _Boom(first_row_=X[0]), "boom"), y, splits, "accuracy"),
            Job(_cand(X, good, "good again"), y, splits, "accuracy")]
    outcomes = run_jobs(jobs, n_jobs=2)
    assert outcomes[0].error is None and outcomes[2].error is None
    assert isinstance(outcomes[1].error, ValueError) and "row 0" in str(outcomes[1].error)
    assert outcomes[1].scores is None


def test_a_path_is_one_task_and_falls_back_to_the_fits_when_it_cannot_score():
    X, y = _data()
    splits = list(StratifiedKFold(3).split(X, y))
    head = make_pipeline(StandardScaler(), LogisticRegression())

    class Path:
        calls = 0

        def cross_validate(self, cand, yy, sp, scoring):
            Path.calls += 1
            if scoring == "accuracy":
                return _cand(X, head, "chosen"), {"fold_scores": np.ones(len(sp)),
                                                  "mean_score": 1.0, "std_score": 0.0,
                                                  "fit_time": 0.0, "score_time": 0.0}
            raise NotImplementedError("needs probabilities")

    chosen = run_jobs([Job(_cand(X, head, path=Path()), y, splits, "accuracy")], 2)[0]
    assert chosen.candidate.head == "chosen" and chosen.scores["mean_score"] == 1.0
    fallback = run_jobs([Job(_cand(X, head, "plain", path=Path()), y, splits, "roc_auc_ovr")],
                        2)[0]
    ref = cross_validate(head, X, y, cv=splits, scoring="roc_auc_ovr")["test_score"]
    assert fallback.candidate.head == "plain" and Path.calls == 2
    np.testing.assert_allclose(fallback.scores["fold_scores"], ref)
    no_path = run_jobs([Job(_cand(X, head, path=Path()), y, splits, "accuracy",
                            use_path=False)])[0]
    assert Path.calls == 2 and no_path.scores["fold_scores"].shape == (3,)


def test_costliest_tasks_start_first_and_fold_scores_stay_in_fold_order():
    from bertfeat.probe.scoring import _costliest_first

    X, y = _data(d=12)
    splits = list(StratifiedKFold(3, shuffle=True, random_state=1).split(X, y))
    narrow, wide = X[:, :3], X
    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.05))
    cands = [_cand(narrow, head, "narrow"), _cand(wide, head, "wide")]
    for cand in cands:
        cand.n_features = cand.X.shape[1]
    jobs = [Job(cand, y, splits, "accuracy") for cand in cands]
    tasks = [(i, f, "fit") for i in range(2) for f in range(3)]
    assert [t[0] for t in _costliest_first(jobs, tasks)] == [1, 1, 1, 0, 0, 0]
    for outcome, cand in zip(run_jobs(jobs, 2), cands):
        ref = cross_validate(head, cand.X, y, cv=splits)["test_score"]
        np.testing.assert_array_equal(outcome.scores["fold_scores"], ref)  # fold by fold


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_ridge_path_runs_fold_by_fold_and_chooses_as_its_cross_validate(n_jobs):
    from bertfeat.probe.ridge import RidgePath

    X, y = _data(d=20)
    splits = list(StratifiedKFold(4, shuffle=True, random_state=2).split(X, y))

    def make(name, head):
        return _cand(X, head, name)

    path = RidgePath("classification", make)
    cand = _cand(X, None, "screen", path=path)
    whole, whole_scores = path.cross_validate(cand, y, splits, "accuracy")
    outcome = run_jobs([Job(cand, y, splits, "accuracy")], n_jobs)[0]
    assert outcome.error is None and outcome.candidate.head == whole.head
    np.testing.assert_array_equal(outcome.scores["fold_scores"], whole_scores["fold_scores"])
    assert outcome.candidate.path is None  # the chosen pipeline, fitted as any candidate


def test_a_candidate_that_may_not_share_the_process_fits_its_folds_here_one_at_a_time():
    X, y = _data()
    splits = list(StratifiedKFold(3).split(X, y))
    seen = []

    class Spy(LogisticRegression):
        def fit(self, X, y):
            seen.append(threading.get_ident())
            return super().fit(X, y)

    cand = _cand(X, Spy())
    cand.threads = False  # e.g. fine-tuning, which seeds torch's global generator
    out = run_jobs([Job(cand, y, splits, "accuracy")], n_jobs=2)[0]
    assert out.error is None and seen == [threading.get_ident()] * 3

