"""Family ``tfidf``: TF-IDF word n-grams + a linear model, the baseline every probe must beat.

Each training fold's vocabulary is fitted once for all the C values (:class:`CachedTfidf`
on the shared per-fold fits of :class:`~bertfeat.probe.families.union.UnionData`): the
scores are those of the plain ``TfidfVectorizer`` Pipeline, at a third of the vectorizer
work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.pipeline import Pipeline, make_pipeline

from ...estimators.union import default_tfidf
from ..candidates import Candidate
from ..context import ProbeContext
from ..heads import RIDGE_ALPHAS, TFIDF_BASELINE_C, TFIDF_C, TFIDF_LR_MARGIN
from . import Family
from .union import UnionData, text_data

__all__ = ["Tfidf", "FAMILY", "CachedTfidf", "baseline_vectorizer"]


def baseline_vectorizer():
    """The baseline's vectorizer: the TF-IDF block of the TF-IDF ⊕ BERT union
    (:func:`~bertfeat.estimators.union.default_tfidf`: word 1-2 grams seen in at least two
    training texts, sublinear tf), so that the union's gain over the baseline is what the
    BERT block adds. ``min_df=2`` drops the n-grams of one training text, which no
    held-out text can share with that text alone: on five of the shared sets it left
    TF-IDF + LR within 1 point (``benchmarks/README.md``) at a third to a sixth of the
    vocabulary, and the many-class logistic fits cost in proportion to it."""
    return default_tfidf()


class CachedTfidf(TransformerMixin, BaseEstimator):
    """``tfidf`` on row indices into ``data.texts``, each training set's fit shared.

    ``X`` is a column of row numbers; the output is exactly ``clone(tfidf)`` fitted on
    (and applied to) those texts, so a Pipeline of this and a head cross-validates to the
    same scores as the Pipeline on raw texts.

    Parameters
    ----------
    data : UnionData
        The texts and the shared fits.
    tfidf : TfidfVectorizer
        The vectorizer (its parameters key the shared fits).
    """

    def __init__(self, data: UnionData | None = None, tfidf: Any = None) -> None:
        self.data = data
        self.tfidf = tfidf

    def fit(self, X: Any, y: Any = None) -> CachedTfidf:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        rows = np.asarray(X).ravel().astype(np.int64)
        self.fit_key_, self.tfidf_, matrix = self.data.fit(self.tfidf, rows)
        return matrix

    def transform(self, X: Any) -> Any:
        rows = np.asarray(X).ravel().astype(np.int64)
        return self.data.transform(self.fit_key_, self.tfidf_, rows)


class Tfidf(Family):
    name = "tfidf"
    timing = "baselines"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        from sklearn.linear_model import LogisticRegression, RidgeCV

        if not ctx.options.tfidf:
            return []
        ctx.log("scoring the TF-IDF baseline (vocabulary fitted once per fold)")
        data = text_data(ctx)
        rows = np.arange(len(ctx.texts)).reshape(-1, 1)

        def cached() -> CachedTfidf:
            return CachedTfidf(data, baseline_vectorizer())

        out = []
        grid = TFIDF_C
        if ctx.task == "classification" and ctx.options.screen == "ridge":
            if _ridge_can_lose(ctx, data, rows):
                ctx.log("TF-IDF is close to the best screened feature set: fitting "
                        "LogisticRegression on it for every C")
            else:  # it cannot win: one LogisticRegression, so the baseline is TF-IDF + LR
                grid = (TFIDF_BASELINE_C,)
        if ctx.task == "classification":
            for C in grid:
                def build(C=C) -> Pipeline:
                    return make_pipeline(baseline_vectorizer(),
                                         LogisticRegression(C=C, max_iter=1000))
                estimator = make_pipeline(cached(), LogisticRegression(C=C, max_iter=1000))
                out.append(Candidate("tfidf", "-", "-", f"logreg C={C:g}", rows, estimator,
                                     build, "baseline"))
        else:
            def build() -> Pipeline:
                return make_pipeline(baseline_vectorizer(), RidgeCV(alphas=RIDGE_ALPHAS))
            out.append(Candidate("tfidf", "-", "-", "ridge", rows,
                                 make_pipeline(cached(), RidgeCV(alphas=RIDGE_ALPHAS)), build,
                                 "baseline"))
        return out


FAMILY = Tfidf()


def _ridge_can_lose(ctx: ProbeContext, data: UnionData, rows: np.ndarray) -> bool:
    """Score TF-IDF + ridge (every alpha, closed form on the sparse matrices, each fold's
    vocabulary fitted on its training rows) and say whether LogisticRegression on TF-IDF
    could still matter: its ridge score within :data:`TFIDF_LR_MARGIN` of the best
    screened feature set's (ridge against ridge)."""
    from ..ridge import RidgePath

    vectorizer = baseline_vectorizer()

    def features(train: np.ndarray, test: np.ndarray) -> tuple[Any, Any]:
        key, vec, matrix = data.fit(vectorizer, train)
        return matrix, data.transform(key, vec, test)

    def make(name: str, head: Any) -> Candidate:
        # scikit-learn's sparse solver, to a tolerance far below the scores' resolution
        head.set_params(solver="sparse_cg", tol=1e-8)

        def build(head=head) -> Pipeline:
            return make_pipeline(baseline_vectorizer(), clone(head))
        return Candidate("tfidf", "-", "-", name, rows,
                         make_pipeline(CachedTfidf(data, baseline_vectorizer()), clone(head)),
                         build, "baseline")

    cand = Candidate("tfidf", "-", "-", "ridge", rows, None, lambda: None, "baseline",
                     path=RidgePath(ctx.task, make, scale=False, features=features))
    row = ctx.score(cand)
    best = [r["mean_score"] for r, c in ctx.scored if c.stage in ("screen", "chunk")]
    return row is not None and bool(best) and row["mean_score"] >= max(best) - TFIDF_LR_MARGIN
