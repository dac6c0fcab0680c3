"""Cross-validating many candidates at once, on one pool of threads.

A stage of the probe scores many candidates on the same folds. Each fold of each
candidate is one task (for a closed-form path, its ``fold``: every alpha on that split;
a path without one is one task), and every task of a call goes to one pool of ``n_jobs``
threads, the costliest first, so a stage's fits fill every core to the last one, instead
of one ``cross_validate`` per candidate whose last round of folds leaves cores idle.

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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with threadpool_limits(1), _Pool(workers(n_jobs)) as pool:
            tasks = [t for i in range(len(jobs)) for t in _tasks(jobs, i)]
            results = _run_all(pool, jobs, _costliest_first(jobs, tasks))
            retry = []
            for i, job in enumerate(jobs):
                mine = [results[t] for t in _tasks(jobs, i) if t[2] != _FIT]
                if any(isinstance(r, PATH_ERRORS) for r in mine):  # needs the real fits
                    jobs[i] = Job(job.candidate, job.y, job.splits, job.scoring,
                                  use_path=False)
                    retry.extend(_tasks(jobs, i))
            results.update(_run_all(pool, jobs, retry))
    # each job's tasks as it was finally scored, in fold order
    return [_collect(job, [results[t] for t in _tasks(jobs, i)])
            for i, job in enumerate(jobs)]


#: task kinds: one fold of a fit, one fold of a path, a whole path (no per-fold method)
_FIT, _PATH_FOLD, _PATH = "fit", "path fold", "path"


def _tasks(jobs: list[Job], i: int) -> list[tuple]:
    job = jobs[i]
    path = job.candidate.path if job.use_path else None
    if path is None:
        return [(i, f, _FIT) for f in range(len(job.splits))]
    if hasattr(path, "fold"):
        return [(i, f, _PATH_FOLD) for f in range(len(job.splits))]
    return [(i, 0, _PATH)]


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
        return width * len(job.y) * (len(job.splits) if task[2] == _PATH else 1)

    return sorted(tasks, key=cost, reverse=True)


def _run_all(pool: _Pool, jobs: list[Job], tasks: list[tuple]) -> dict:
    """Every task's result: on the pool, except those of candidates that may not share
    the process with other fits (``Candidate.threads``), run here one at a time."""
    shared = [t for t in tasks if jobs[t[0]].candidate.threads]
    results = dict(zip(shared, pool.map(lambda t: _run(jobs, t), shared)))
    results.update((t, _run(jobs, t)) for t in tasks if not jobs[t[0]].candidate.threads)
    return results


def _run(jobs: list[Job], task: tuple) -> Any:
    i, fold, kind = task
    job = jobs[i]
    try:
        if kind == _FIT:
            return _run_fold(job, fold)
        if kind == _PATH_FOLD:
            return job.candidate.path.fold(job.candidate, job.y, job.splits[fold],
                                           job.scoring)
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


def _collect(job: Job, results: list) -> Outcome:
    """A job's outcome from its tasks' results (in fold order)."""
    candidate = job.candidate
    if not results:
        return Outcome(candidate, error=ValueError("no splits to score on"))
    for result in results:
        if isinstance(result, Exception):
            return Outcome(candidate, error=result)
    path = candidate.path if job.use_path else None
    if path is not None and not hasattr(path, "fold"):  # one task: (chosen, scores)
        return Outcome(*results[0])
    if path is not None:
        return Outcome(*path.choose(candidate, results))
    scores = np.asarray([r[0] for r in results], dtype=float)
    return Outcome(candidate, {
        "fold_scores": scores,
        "mean_score": float(scores.mean()),
        "std_score": float(scores.std()),
        "fit_time": float(np.mean([r[1] for r in results])),
        "score_time": float(np.mean([r[2] for r in results])),
    })
