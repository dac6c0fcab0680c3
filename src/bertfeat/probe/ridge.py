"""Closed-form ridge screening: every regularisation strength from one decomposition.

The probe screens every feature set (each hidden state x pooling, the combinations, the
random-weights control) with ridge: ``StandardScaler`` + ``RidgeClassifier`` (least
squares on ``-1/+1`` one-vs-rest targets, as scikit-learn's) or ``Ridge`` for regression.
For one fold the training block is standardised once, centred, and decomposed once (the
eigendecomposition of ``Z^T Z`` when there are at least as many rows as columns, else of
the Gram matrix ``Z Z^T``); the held-out decision values of every ``alpha`` then cost one
small product each. The fold scores of each alpha are those of cross-validating
``make_pipeline(StandardScaler(), RidgeClassifier(alpha=alpha))`` (``Ridge`` for
regression) on the same folds, up to floating-point rounding: the solution is computed
in float64 from the scaler's own output (tests compare it with scikit-learn's fits).

**How alpha is chosen**: the alpha with the best mean score over the probe's folds (ties:
the larger alpha), like ``GridSearchCV`` on those folds. The row is that pipeline, named
``ridge α=<alpha>`` (its candidate builds exactly it), and its fold scores are that
pipeline's. Choosing alpha on the same folds is part of the selection among candidates:
the top of the table is optimistic for it as it is for the choice of layer, and
``nested=True`` / ``test_size`` re-run the whole selection, alpha included, on the outer
training rows only, so their estimates stay unbiased.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import check_scoring
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler

from .heads import RIDGE_ALPHAS

if TYPE_CHECKING:  # pragma: no cover
    from .candidates import Candidate

__all__ = ["ridge_decisions", "ridge_path_scores", "ridge_fold_scores", "ridge_head",
           "ridge_name", "RidgePath", "SCREEN_NAME"]

#: how the table names the screening head (with the chosen alpha)
SCREEN_NAME = "ridge"


def ridge_name(alpha: float) -> str:
    """The table's head name of a ridge-screened row: ``ridge α=10``."""
    return f"{SCREEN_NAME} α={alpha:g}"


def ridge_head(alpha: float, task: str) -> Pipeline:
    """The pipeline a ``ridge α=<alpha>`` row stands for (what its candidate builds).

    Parameters
    ----------
    alpha : float
        Regularisation strength.
    task : {"classification", "regression"}

    Returns
    -------
    Pipeline
        ``StandardScaler`` + ``RidgeClassifier(alpha)`` (``Ridge(alpha)`` for regression).
    """
    from sklearn.linear_model import Ridge, RidgeClassifier

    est = RidgeClassifier(alpha=alpha) if task == "classification" else Ridge(alpha=alpha)
    return make_pipeline(StandardScaler(), est)


def ridge_decisions(X_train: Any, y_train: np.ndarray, X_test: Any,
                    alphas: Sequence[float], task: str, scale: bool = True,
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Held-out decision values of ``StandardScaler`` + ridge for every alpha at once.

    Parameters
    ----------
    X_train, X_test : ndarray of shape (n_train, d), (n_test, d)
        Features (the scaler is fitted on ``X_train``).
    y_train : ndarray of shape (n_train,)
        Labels (classification) or numbers.
    alphas : sequence of float
        Regularisation strengths.
    task : {"classification", "regression"}
    scale : bool, default=True
        Standardise first (the pipeline's ``StandardScaler``). ``False``: ridge on the
        features as they are, which may be sparse (TF-IDF): then the centred Gram
        matrices are formed from sparse products, never a dense copy of ``X``.

    Returns
    -------
    decisions : ndarray of shape (n_alphas, n_test, k)
        ``decision_function`` (classification; ``k = 1`` for two classes) or ``predict``
        (regression, ``k = 1``) of the pipeline fitted with each alpha.
    classes : ndarray or None
        The classes (classification).
    """
    classes = None
    if task == "classification":
        binarizer = LabelBinarizer(pos_label=1, neg_label=-1).fit(y_train)
        T = binarizer.transform(y_train).astype(np.float64)
        classes = binarizer.classes_
    else:
        T = np.asarray(y_train, dtype=np.float64).reshape(-1, 1)
    t_mean = T.mean(axis=0)
    T = T - t_mean
    if not scale:  # dual on the centred kernel: sparse products only
        K = _dense(X_train @ X_train.T).astype(np.float64)
        Kt = _dense(X_test @ X_train.T).astype(np.float64)
        rows, total = K.mean(axis=1), K.mean()
        # (x - m).(x' - m) with m the training mean: K - r 1' - 1 r' + g
        Kt = Kt - Kt.mean(axis=1, keepdims=True) - rows[None, :] + total
        K = K - rows[:, None] - rows[None, :] + total
        lam, U = _eigh(K)
        return _decide(lam, Kt @ U, U.T @ T, t_mean, alphas), classes
    scaler = StandardScaler().fit(X_train)
    Z = np.asarray(scaler.transform(X_train), dtype=np.float64)
    Zt = np.asarray(scaler.transform(X_test), dtype=np.float64)
    offset = Z.mean(axis=0)
    Z -= offset
    Zt -= offset
    n, d = Z.shape
    if d <= n:  # primal: (Z^T Z + a I)^-1 Z^T T = V diag(1 / (lam + a)) V^T Z^T T
        lam, V = _eigh(Z.T @ Z)
        A, B = Zt @ V, V.T @ (Z.T @ T)
    else:  # dual: Z^T (Z Z^T + a I)^-1 T = Z^T U diag(1 / (lam + a)) U^T T
        lam, U = _eigh(Z @ Z.T)
        A, B = (Zt @ Z.T) @ U, U.T @ T
    return _decide(lam, A, B, t_mean, alphas), classes


def _eigh(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix: numpy's (LAPACK
    ``syevd``, as ``scipy.linalg.eigh(driver="evd")``), which releases the GIL, so the
    probe's threads decompose several folds at once (scipy's wrapper holds it)."""
    return np.linalg.eigh(M)


def _decide(lam: np.ndarray, A: np.ndarray, B: np.ndarray, t_mean: np.ndarray,
            alphas: Sequence[float]) -> np.ndarray:
    lam = np.clip(lam, 0.0, None)  # rounding can leave the smallest slightly negative
    return np.stack([(A / (lam + alpha)) @ B + t_mean for alpha in alphas])


def _dense(M: Any) -> np.ndarray:
    return M.toarray() if hasattr(M, "toarray") else np.asarray(M)


class _Decided(BaseEstimator):
    """A fitted model whose outputs on the held-out rows are already computed, so that any
    scikit-learn scorer scores them as it scores the real pipeline."""

    def __init__(self, decision: np.ndarray, classes: np.ndarray | None) -> None:
        self.decision = decision
        self.classes = classes
        if classes is not None:
            self.classes_ = classes

    def fit(self, X: Any = None, y: Any = None) -> _Decided:
        """Nothing to fit: the outputs are given (scorers check that ``fit`` exists)."""
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        d = self.decision
        return d[:, 0] if d.shape[1] == 1 else d

    def predict(self, X: Any) -> np.ndarray:
        d = self.decision_function(X)
        if self.classes is None:
            return d
        # as scikit-learn's linear classifiers: sign for two classes, else argmax
        return self.classes[(d > 0).astype(int) if d.ndim == 1 else d.argmax(axis=1)]


class _DecidedClassifier(ClassifierMixin, _Decided):
    pass


class _DecidedRegressor(RegressorMixin, _Decided):
    pass


def ridge_path_scores(X: Any, y: np.ndarray, splits: Sequence, scoring: Any,
                      alphas: Sequence[float], task: str, scale: bool = True,
                      features: Callable | None = None) -> tuple[np.ndarray, float, float]:
    """Scores of ``StandardScaler`` + ridge for every alpha on every split.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,)
    splits : sequence of (train, test)
    scoring : str or callable
        As for ``cross_validate``.
    alphas : sequence of float
    task : {"classification", "regression"}
    scale : bool, default=True
        See :func:`ridge_decisions`.
    features : callable, optional
        ``features(train, test) -> (X_train, X_test)`` for features fitted per fold
        (TF-IDF); default: rows of ``X``.

    Returns
    -------
    scores : ndarray of shape (n_alphas, n_splits)
    fit_time, score_time : float
        Mean seconds per split (the decomposition and every alpha's decision values; the
        scoring).
    """
    folds = [ridge_fold_scores(X, y, train, test, scoring, alphas, task, scale, features)
             for train, test in splits]
    scores = np.stack([f[0] for f in folds], axis=1) if folds else np.empty((len(alphas), 0))
    n = max(len(folds), 1)
    return scores, sum(f[1] for f in folds) / n, sum(f[2] for f in folds) / n


def ridge_fold_scores(X: Any, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                      scoring: Any, alphas: Sequence[float], task: str, scale: bool = True,
                      features: Callable | None = None) -> tuple[np.ndarray, float, float]:
    """One split of :func:`ridge_path_scores`: every alpha's score on ``test`` after
    fitting on ``train``, and the seconds to fit (decompose and decide) and to score.

    Returns
    -------
    scores : ndarray of shape (n_alphas,)
    fit_time, score_time : float
    """
    train, test = np.asarray(train), np.asarray(test)
    y = np.asarray(y)
    t0 = time.perf_counter()
    if features is None:
        X = np.asarray(X)
        X_train, X_test = X[train], X[test]
    else:
        X_train, X_test = features(train, test)
    decisions, classes = ridge_decisions(X_train, y[train], X_test, alphas, task, scale)
    t1 = time.perf_counter()
    kind = _DecidedClassifier if task == "classification" else _DecidedRegressor
    scores = np.empty(len(alphas))
    for i, decision in enumerate(decisions):
        est = kind(decision, classes)
        if scoring == "accuracy":  # accuracy_score without its checks, per alpha
            scores[i] = float(np.mean(est.predict(None) == y[test]))
            continue
        scorer = check_scoring(est, scoring=scoring)
        # the scorer reads only the decision values; X stands for the held-out rows
        scores[i] = scorer(est, np.empty((len(test), 0)), y[test])
    return scores, t1 - t0, time.perf_counter() - t1


@dataclass
class RidgePath:
    """How a candidate is scored by closed-form ridge (``Candidate.path``).

    Attributes
    ----------
    task : {"classification", "regression"}
    make : callable
        ``make(head_name, head) -> Candidate``: the candidate of the chosen alpha's
        pipeline (the same feature set; built and refitted as any candidate).
    alphas : tuple of float
        The strengths tried (:data:`~bertfeat.probe.heads.RIDGE_ALPHAS`).
    scale : bool, default=True
        ``StandardScaler`` + ridge (``False``: ridge alone, e.g. on TF-IDF; the head
        given to ``make`` is then the ridge estimator alone).
    features : callable, optional
        ``features(train, test) -> (X_train, X_test)`` (see :func:`ridge_path_scores`).
    """

    task: str
    make: Callable[[str, BaseEstimator], Candidate]
    alphas: tuple[float, ...] = RIDGE_ALPHAS
    scale: bool = True
    features: Callable | None = None

    def cross_validate(self, cand: Candidate, y: np.ndarray, splits: Sequence,
                       scoring: Any) -> tuple[Candidate, dict]:
        """Score every alpha on ``splits``; the chosen alpha's candidate and scores.

        The chosen alpha has the best mean score (ties: the larger alpha).
        """
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # as the heads' cross-validation (probe.scoring)
            scores, fit, score = ridge_path_scores(cand.X, y, splits, scoring, self.alphas,
                                                   self.task, self.scale, self.features)
        return self._chosen(cand, scores, fit, score)

    def fold(self, cand: Candidate, y: np.ndarray, split: tuple, scoring: Any,
             ) -> tuple[np.ndarray, float, float]:
        """One split's scores of every alpha, and its fit and score seconds
        (:func:`ridge_fold_scores`): what :mod:`bertfeat.probe.scoring` runs as one task."""
        train, test = split
        return ridge_fold_scores(cand.X, y, train, test, scoring, self.alphas, self.task,
                                 self.scale, self.features)

    def choose(self, cand: Candidate, folds: Sequence[tuple[np.ndarray, float, float]],
               ) -> tuple[Candidate, dict]:
        """The chosen alpha's candidate and scores from every split's :meth:`fold`, in
        split order."""
        scores = np.stack([f[0] for f in folds], axis=1)
        n = len(folds)
        return self._chosen(cand, scores, sum(f[1] for f in folds) / n,
                            sum(f[2] for f in folds) / n)

    def _chosen(self, cand: Candidate, scores: np.ndarray, fit: float, score: float,
                ) -> tuple[Candidate, dict]:
        means = scores.mean(axis=1)
        best = max(range(len(self.alphas)), key=lambda i: (means[i], self.alphas[i]))
        alpha = self.alphas[best]
        head = ridge_head(alpha, self.task)
        chosen = self.make(ridge_name(alpha), head if self.scale else head[-1])
        chosen = replace(chosen, rows=cand.rows, recommendable=cand.recommendable,
                         group=cand.group, path=None)
        row = scores[best]
        return chosen, {"fold_scores": row.copy(), "mean_score": float(row.mean()),
                        "std_score": float(row.std()), "fit_time": fit, "score_time": score}
