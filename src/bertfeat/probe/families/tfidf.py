"""Family ``tfidf``: TF-IDF word n-grams + a linear model, the baseline every probe must beat."""

from __future__ import annotations

from sklearn.pipeline import Pipeline, make_pipeline

from ..candidates import Candidate
from ..context import ProbeContext
from ..heads import RIDGE_ALPHAS, TFIDF_C
from . import Family

__all__ = ["Tfidf", "FAMILY"]


class Tfidf(Family):
    name = "tfidf"
    timing = "baselines"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression, RidgeCV

        if not ctx.options["tfidf"]:
            return []
        ctx.log("scoring the TF-IDF baseline")
        texts = ctx.text_array

        def vectorizer() -> TfidfVectorizer:
            return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)

        out = []
        if ctx.task == "classification":
            for C in TFIDF_C:
                def build(C=C) -> Pipeline:
                    return make_pipeline(vectorizer(), LogisticRegression(C=C, max_iter=1000))
                out.append(Candidate("tfidf", "-", "-", f"logreg C={C:g}", texts, build(),
                                     build, "baseline"))
        else:
            def build() -> Pipeline:
                return make_pipeline(vectorizer(), RidgeCV(alphas=RIDGE_ALPHAS))
            out.append(Candidate("tfidf", "-", "-", "ridge", texts, build(), build,
                                 "baseline"))
        return out


FAMILY = Tfidf()
