"""Family ``union``: TF-IDF ⊕ the ``union_top`` best BERT feature sets + a linear model.

On long, topical documents TF-IDF often carries what frozen encoder features miss, and the
union (:class:`~bertfeat.TextUnion`) lets one head use both. Its TF-IDF vocabulary and
BERT scaler are fitted inside each training fold (no leakage), from the cached BERT
block (:class:`CachedUnion`), and each fold's vocabulary is fitted once for all the union
candidates (:class:`UnionData`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.pipeline import Pipeline, make_pipeline

from ...featurizer import BertFeaturizer
from ...union import TextUnion, default_tfidf
from ..candidates import Candidate, FeatureSet
from ..context import ProbeContext
from ..heads import RIDGE_ALPHAS, TFIDF_C
from . import Family

__all__ = ["UnionData", "CachedUnion", "union_candidates", "TfidfUnion"]


class UnionData:
    """Texts, cached BERT blocks and per-fold TF-IDF fits shared by the union candidates.

    ``clone`` deep-copies estimator parameters; this object returns itself from
    ``__deepcopy__`` so every clone of a union candidate shares the fits. A TF-IDF fit is
    keyed by its parameters and the exact training rows, so a fold only ever sees a
    vocabulary fitted on its own training rows, and the candidates of one probe (several
    heads, several BERT blocks) fit each fold's vocabulary once.
    """

    def __init__(self, texts: np.ndarray) -> None:
        self.texts = texts
        self.blocks: dict[str, np.ndarray] = {}
        self._fits: dict[tuple, tuple[Any, Any]] = {}
        self._transforms: dict[tuple, Any] = {}

    def __deepcopy__(self, memo: dict) -> UnionData:
        return self

    @staticmethod
    def _key(tfidf: BaseEstimator, rows: np.ndarray) -> tuple[str, str]:
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        return repr(sorted(tfidf.get_params().items())), hashlib.sha1(rows.tobytes()).hexdigest()

    def fit(self, tfidf: BaseEstimator, rows: np.ndarray) -> tuple[tuple, Any, Any]:
        """``(key, fitted vectorizer, matrix of the rows)`` for the training ``rows``."""
        key = self._key(tfidf, rows)
        if key not in self._fits:
            vec = clone(tfidf)
            self._fits[key] = (vec, vec.fit_transform(list(self.texts[rows])))
        vec, matrix = self._fits[key]
        return key, vec, matrix

    def transform(self, key: tuple, vec: Any, rows: np.ndarray) -> Any:
        """The rows' TF-IDF under the vocabulary fitted as ``key``."""
        tkey = (key, self._key(vec, rows)[1])
        if tkey not in self._transforms:
            self._transforms[tkey] = vec.transform(list(self.texts[rows]))
        return self._transforms[tkey]


class CachedUnion(TextUnion):
    """:class:`~bertfeat.TextUnion` on row indices, reading a cached BERT block.

    ``X`` is a column of row numbers into ``data.texts``; the output is exactly what
    ``TextUnion(bert=<featurizer of that block>)`` gives on those texts, so cross-validating
    a Pipeline of this and a head scores the same as the TextUnion Pipeline on raw texts.
    """

    def __init__(self, data: UnionData | None = None, block: str = "", bert: Any = None,
                 tfidf: Any = None, bert_weight: float = 1.0, tfidf_weight: float = 1.0,
                 scale_bert: bool = True) -> None:
        super().__init__(bert=bert, tfidf=tfidf, bert_weight=bert_weight,
                         tfidf_weight=tfidf_weight, scale_bert=scale_bert)
        self.data = data
        self.block = block

    _parameter_constraints: dict = {**TextUnion._parameter_constraints,
                                    "data": "no_validation", "block": [str]}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        rows = np.asarray(X).ravel().astype(np.int64)
        tfidf = self.tfidf if self.tfidf is not None else default_tfidf()
        self.fit_key_, self.tfidf_, lexical = self.data.fit(tfidf, rows)
        return self.fit_blocks(lexical, self.data.blocks[self.block][rows])

    def transform(self, X: Any) -> Any:
        rows = np.asarray(X).ravel().astype(np.int64)
        lexical = self.data.transform(self.fit_key_, self.tfidf_, rows)
        return self.join(lexical, self.data.blocks[self.block][rows])


def union_candidates(fs: FeatureSet, data: UnionData, task: str,
                     pipeline_params: dict) -> list[Candidate]:
    """TF-IDF ⊕ one BERT feature set, + LogisticRegression (C grid) or RidgeCV."""
    from sklearn.linear_model import LogisticRegression, RidgeCV

    block = f"{fs.family}:{fs.layer}:{fs.pooling}"
    data.blocks[block] = fs.X
    params = {**fs.featurizer_params, **pipeline_params}
    rows = np.arange(len(data.texts)).reshape(-1, 1)
    if task == "classification":
        heads = [(f"logreg C={C:g}", lambda C=C: LogisticRegression(C=C, max_iter=1000))
                 for C in TFIDF_C]
    else:
        heads = [("ridge", lambda: RidgeCV(alphas=RIDGE_ALPHAS))]
    out = []
    for name, head in heads:
        def build(head=head) -> Pipeline:
            return make_pipeline(TextUnion(bert=BertFeaturizer(**params)), head())

        def refit(texts: list[str], y: np.ndarray, build=build) -> Pipeline:
            pipe = build()  # both blocks from what the probe holds: no encoder call
            pipe[1:].fit(pipe[0].fit_with_dense(texts, fs.X), y)
            return pipe

        estimator = make_pipeline(CachedUnion(data, block), head())
        out.append(Candidate("union", fs.layer, fs.pooling, name, rows, estimator, build,
                             "union", fs.layer_index, None, features=fs, refit=refit))
    return out


class TfidfUnion(Family):
    name = "union"
    timing = "union"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        if not (ctx.options["union"] and ctx.options["union_top"]):
            return []
        data = UnionData(ctx.text_array)
        out = []
        for fs in ctx.ranked("screen", "chunk")[:ctx.options["union_top"]]:
            ctx.log(f"scoring TF-IDF ⊕ {fs.layer} {fs.pooling} (vocabulary fitted per fold)")
            out.extend(union_candidates(fs, data, ctx.task, ctx.pipeline_params))
        return out


FAMILY = TfidfUnion()
