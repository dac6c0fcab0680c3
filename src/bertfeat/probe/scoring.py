"""Cross-validating many candidates at once, on one pool of threads.

A stage of the probe scores many candidates on the same folds. Each fold of each
candidate is one task (a closed-form path, which scores every fold from its own
decompositions, is one task), and every task of a call goes to one pool of ``n_jobs``
threads, so a stage's fits fill every core to the last one, instead of one
``cross_validate`` per candidate whose last round of folds leaves cores idle.

Threads, not processes: the heads spend their time in BLAS, libsvm and scikit-learn's
loss kernels, which release the GIL, so a task costs no pickling and no worker start, and
what candidates share in memory (the cached vectors, each fold's TF-IDF vocabulary) is
shared, not copied to every worker. Each task fits a ``clone`` of the candidate's
estimator with one BLAS and one OpenMP thread (small matrices gain nothing from more,
and threads x BLAS threads would oversubscribe the cores). The scores are those of
``cross_validate`` with ``error_score="raise"`` on the same folds: the same fits in
another order.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import check_scoring
from sklearn.utils import _safe_indexing

from .candidates import Candidate

__all__ = ["Job", "Outcome", "run_jobs", "workers", "PATH_ERRORS"]

#: a closed-form path that raises one of these falls back to fitting its estimator per fold
#: (e.g. a scorer that needs ``predict_proba``)
PATH_ERRORS = (AttributeError, NotImplementedError)


@dataclass
class Job:
    """One candidate to cross-validate.

    Attributes
    ----------
    candidate : Candidate
        What to score (``candidate.path``, when set and ``use_path``, scores it in closed
        form).
    y : ndarray
        Targets of ``candidate.X``'s rows.
    splits : list of (train, test)
        Folds, as row positions of ``candidate.X``.
    scoring : str or callable
        As for ``cross_validate``.
    use_path : bool, default=True
        Use ``candidate.path`` when it has one.
    """

    candidate: Candidate
    y: np.ndarray
    splits: list
    scoring: Any
    use_path: bool = True


@dataclass
class Outcome:
    """What a :class:`Job` gave: the scored candidate (for a path, the chosen one) and its
    scores (``fold_scores``, ``mean_score``, ``std_score``, ``fit_time``, ``score_time``:
    seconds per split), or the error that stopped it."""

    candidate: Candidate
    scores: dict | None = None
    error: BaseException | None = None


def workers(n_jobs: int | None) -> int:
    """Threads for ``n_jobs`` as joblib counts them (None: 1, -1: every core)."""
    from joblib import effective_n_jobs

    return max(int(effective_n_jobs(n_jobs)), 1)


def run_jobs(jobs: Sequence[Job], n_jobs: int | None = None) -> list[Outcome]:
    """Cross-validate every job, all folds of all jobs on one pool of threads.

    Parameters
    ----------
    jobs : sequence of Job
    n_jobs : int, optional
        Threads (joblib's convention: None is one, -1 every core).

    Returns
    -------
    list of Outcome
        In the order of ``jobs``. A job whose fit or scoring raised on any fold has its
        ``error`` (the first fold's error in fold order); the others are unaffected.
    """
    from threadpoolctl import threadpool_limits

    jobs = list(jobs)
    outcomes: list[Outcome | None] = [None] * len(jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with threadpool_limits(1), _Pool(workers(n_jobs)) as pool:
            tasks = [(i, None) if job.use_path and job.candidate.path is not None else (i, f)
                     for i, job in enumerate(jobs)
                     for f in ([None] if job.use_path and job.candidate.path is not None
                               else range(len(job.splits)))]
            order = _costliest_first(jobs, tasks)
            results = dict(zip(order, pool.map(lambda t: _run(jobs, t), order)))
            retry = []
            for i, job in enumerate(jobs):
                result = results.get((i, None))
                if result is None:
                    continue
                if isinstance(result, PATH_ERRORS):  # this scoring needs the real fits
                    jobs[i] = Job(job.candidate, job.y, job.splits, job.scoring,
                                  use_path=False)
                    retry.extend((i, f) for f in range(len(job.splits)))
                elif isinstance(result, Exception):
                    outcomes[i] = Outcome(job.candidate, error=result)
                else:
                    outcomes[i] = Outcome(*result)
            results.update(zip(retry, pool.map(lambda t: _run(jobs, t), retry)))
    per_job: dict[int, list] = {}
    for i, fold in sorted(t for t in results if t[1] is not None):  # in fold order
        per_job.setdefault(i, []).append(results[(i, fold)])
    for i, fold_results in per_job.items():
        outcomes[i] = _collect(jobs[i].candidate, fold_results)
    for i, job in enumerate(jobs):
        if outcomes[i] is None:  # a job with no splits
            outcomes[i] = Outcome(job.candidate, error=ValueError("no splits to score on"))
    return outcomes  # type: ignore[return-value]


class _Pool:
    """``map`` over a thread pool (in order), or in this thread for one worker."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> _Pool:
        if self.n > 1:
            self.executor = ThreadPoolExecutor(self.n, thread_name_prefix="bertfeat-probe",
                                               initializer=_one_openmp_thread)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Any, items: list) -> list:
        """``[fn(item) for item in items]``, the items started in their order."""
        if self.executor is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(self.executor.map(fn, items))


def _one_openmp_thread() -> None:
    """OpenMP's thread count is per thread (the BLAS limit is global): a new worker thread
    starts with every core, and scikit-learn's OpenMP loops (the logistic loss) would run
    ``n_jobs x cores`` threads. Limit this worker thread for its life."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="openmp")


def _costliest_first(jobs: list[Job], tasks: list[tuple]) -> list[tuple]:
    """The tasks, longest first (so no core waits alone on a long task at the end): a
    task's cost is taken as rows x features (x folds for a path); text candidates, whose
    width is unknown before their vectorizer runs, count as the widest."""
    widest = max((j.candidate.n_features or 0 for j in jobs), default=0) + 1

    def cost(task: tuple) -> int:
        job = jobs[task[0]]
        width = job.candidate.n_features or widest
        return width * len(job.y) * (len(job.splits) if task[1] is None else 1)

    return sorted(tasks, key=cost, reverse=True)


def _run(jobs: list[Job], task: tuple) -> Any:
    i, fold = task
    return _run_path(jobs[i]) if fold is None else _run_fold(jobs[i], fold)


def _run_path(job: Job) -> Any:
    try:
        return job.candidate.path.cross_validate(job.candidate, job.y, job.splits,
                                                 job.scoring)
    except Exception as exc:  # returned, so one failure stops nothing else
        return exc


def _run_fold(job: Job, fold: int) -> tuple[float, float, float] | BaseException:
    """Fit a clone on the fold's training rows, score it on its test rows."""
    try:
        train, test = job.splits[fold]
        X = job.candidate.X
        est = clone(job.candidate.estimator)
        t0 = time.perf_counter()
        est.fit(_safe_indexing(X, train), job.y[train])
        t1 = time.perf_counter()
        scorer = check_scoring(est, scoring=job.scoring)
        score = scorer(est, _safe_indexing(X, test), job.y[test])
        return float(score), t1 - t0, time.perf_counter() - t1
    except Exception as exc:
        return exc


def _collect(candidate: Candidate, results: list) -> Outcome:
    for result in results:
        if isinstance(result, Exception):
            return Outcome(candidate, error=result)
    scores = np.asarray([r[0] for r in results], dtype=float)
    return Outcome(candidate, {
        "fold_scores": scores,
        "mean_score": float(scores.mean()),
        "std_score": float(scores.std()),
        "fit_time": float(np.mean([r[1] for r in results])),
        "score_time": float(np.mean([r[2] for r in results])),
    })
