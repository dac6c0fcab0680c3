"""The heads a probe fits on features: names, estimators and the user's own."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.pipeline import make_pipeline

__all__ = ["HEADS", "make_head", "resolve_heads", "RIDGE_ALPHAS", "LINEAR_ALIASES", "TFIDF_C",
           "TFIDF_LR_MARGIN", "TFIDF_BASELINE_C"]

#: head names per task; "linear" is the cheapest and screens every feature set
HEADS = {
    "classification": ("logreg", "svm", "mlp"),
    "regression": ("ridge", "svm", "mlp"),
}
#: names of the linear head (LogisticRegression or RidgeCV by task)
LINEAR_ALIASES = {"logreg", "ridge", "linear"}
#: regularisation strengths tried for the TF-IDF baseline and the TF-IDF ⊕ BERT union
TFIDF_C = (1.0, 10.0, 100.0)
#: with the closed-form screen, TF-IDF + LogisticRegression (C in TFIDF_C) is fitted only
#: when TF-IDF + ridge scores within this of the best screened feature set (ridge on both)
TFIDF_LR_MARGIN = 0.05
#: below that margin, TF-IDF + LogisticRegression is still fitted once, with this C, so the
#: TF-IDF baseline the summary compares with is the usual TF-IDF + LR, not a ridge score
TFIDF_BASELINE_C = 10.0
#: the regularisation strengths RidgeCV chooses among (and the closed-form screen tries)
RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def make_head(name: str, task: str, random_state: int) -> BaseEstimator:
    """A fresh head estimator (scaling included) for ``task``."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    if task == "classification":
        if name in LINEAR_ALIASES:
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        if name == "svm":
            return make_pipeline(StandardScaler(), SVC())
        if name == "mlp":
            return make_pipeline(StandardScaler(), MLPClassifier(
                hidden_layer_sizes=(256,), early_stopping=True, max_iter=300,
                random_state=random_state))
    else:
        if name in LINEAR_ALIASES:
            return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
        if name == "svm":
            return make_pipeline(StandardScaler(), TransformedTargetRegressor(
                regressor=SVR(), transformer=StandardScaler()))
        if name == "mlp":
            return make_pipeline(StandardScaler(), TransformedTargetRegressor(
                regressor=MLPRegressor(hidden_layer_sizes=(256,), early_stopping=True,
                                       max_iter=300, random_state=random_state),
                transformer=StandardScaler()))
    raise ValueError(
        f"unknown head {name!r}; use one of {HEADS[task]} (or 'linear'), or pass a dict "
        "{name: estimator} of your own heads")


def resolve_heads(heads: Any, task: str, random_state: int) -> dict[str, BaseEstimator]:
    """Heads as an ordered ``{name: unfitted estimator}``; the first one screens."""
    if isinstance(heads, dict):
        if not heads:
            raise ValueError("heads must name at least one head")
        out = {}
        for name, est in heads.items():
            if isinstance(est, str):
                est = make_head(est, task, random_state)
            if not hasattr(est, "fit"):
                raise TypeError(f"head {name!r} is not an estimator: {est!r}")
            out[str(name)] = est
        return out
    if isinstance(heads, str):
        heads = (heads,)
    names = list(heads)
    if not names:
        raise ValueError("heads must name at least one head")
    out = {}
    for name in names:
        est = make_head(name, task, random_state)
        label = HEADS[task][0] if name in LINEAR_ALIASES else name
        out[label] = est
    return out
