"""Family ``union``: TF-IDF ⊕ the ``union_top`` best BERT feature sets + a linear model.

On long, topical documents TF-IDF often carries what frozen encoder features miss, and the
union (:class:`~bertfeat.TextUnion`) lets one head use both. Its TF-IDF vocabulary and
BERT scaler are fitted inside each training fold (no leakage), from the cached BERT
block (:class:`CachedUnion`), and each fold's vocabulary is fitted once for all the union
candidates (:class:`UnionData`).
"""

from __future__ import annotations

import hashlib
import threading
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.pipeline import Pipeline, make_pipeline

from ...estimators.featurizer import BertFeaturizer
from ...estimators.union import TextUnion, default_tfidf
from ..candidates import Candidate, FeatureSet
from ..context import ProbeContext
from ..heads import RIDGE_ALPHAS, TFIDF_C
from . import Family

__all__ = ["UnionData", "FoldVocabulary", "CachedUnion", "union_candidates", "TfidfUnion",
           "text_data"]


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
        self._counters: dict[str, tuple[Any, Any]] = {}

    def __deepcopy__(self, memo: dict) -> UnionData:
        return self

    #: the probe scores folds on threads (:mod:`bertfeat.probe.scoring`): one fit of a
    #: fold's vocabulary at a time, so that threads wait for it instead of repeating it
    _lock = threading.RLock()

    @staticmethod
    def _key(tfidf: Any, rows: np.ndarray) -> tuple[str, str]:
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        params = tfidf.tfidf if isinstance(tfidf, FoldVocabulary) else tfidf
        return (repr(sorted(params.get_params().items())),
                hashlib.sha1(rows.tobytes()).hexdigest())

    def fit(self, tfidf: BaseEstimator, rows: np.ndarray) -> tuple[tuple, Any, Any]:
        """``(key, fitted vectorizer, matrix of the rows)`` for the training ``rows``.

        A plain ``TfidfVectorizer`` (integer ``min_df``, no ``max_df``/``max_features``/
        fixed vocabulary) is not refitted per fold: the texts are counted once, and each
        fold's fit is cut from the counts (:class:`FoldVocabulary`: the same vocabulary,
        IDF and matrices as fitting it on the fold's texts).
        """
        key = self._key(tfidf, rows)
        with self._lock:
            return self._fit(tfidf, rows, key)

    def _fit(self, tfidf: BaseEstimator, rows: np.ndarray, key: tuple) -> tuple[tuple, Any, Any]:
        if key not in self._fits:
            counts = self._counts(tfidf)
            if counts is not None:
                fold = FoldVocabulary(tfidf, counts[0], counts[1], rows)
                self._fits[key] = (fold, fold.matrix)
            else:
                vec = clone(tfidf)
                self._fits[key] = (vec, vec.fit_transform(list(self.texts[rows])))
        vec, matrix = self._fits[key]
        return key, vec, matrix

    def transform(self, key: tuple, vec: Any, rows: np.ndarray) -> Any:
        """The rows' TF-IDF under the vocabulary fitted as ``key``."""
        tkey = (key, self._key(vec, rows)[1])
        with self._lock:
            return self._transform(key, vec, rows, tkey)

    def _transform(self, key: tuple, vec: Any, rows: np.ndarray, tkey: tuple) -> Any:
        if tkey not in self._transforms:
            if isinstance(vec, FoldVocabulary):
                counts = self._counts(vec.tfidf)[1]
                self._transforms[tkey] = vec.transform_counts(counts[rows])
            else:
                self._transforms[tkey] = vec.transform(list(self.texts[rows]))
        return self._transforms[tkey]

    def _counts(self, tfidf: BaseEstimator) -> tuple[Any, Any] | None:
        """``(CountVectorizer fitted on every text, their counts)`` for a vectorizer whose
        per-fold fits can be cut from them, else None."""
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        if type(tfidf) is not TfidfVectorizer:
            return None
        params = tfidf.get_params()
        if (params["vocabulary"] is not None or params["max_features"] is not None
                or params["max_df"] != 1.0 or not isinstance(params["min_df"], Integral)):
            return None
        counting = {k: v for k, v in params.items()
                    if k in CountVectorizer().get_params() and k not in ("min_df", "max_df")}
        key = repr(sorted(counting.items()))
        if key not in self._counters:
            counter = CountVectorizer(**counting)
            self._counters[key] = (counter, counter.fit_transform(list(self.texts)).tocsr())
        return self._counters[key]


def text_data(ctx: ProbeContext) -> UnionData:
    """The run's one :class:`UnionData`: the TF-IDF baseline and the union use the same
    vectorizer, so between them the texts are counted once and each fold's vocabulary is
    fitted once."""
    if "union_data" not in ctx.shared:
        ctx.shared["union_data"] = UnionData(ctx.text_array)
    return ctx.shared["union_data"]


class FoldVocabulary:
    """A ``TfidfVectorizer`` fitted on some rows, cut from the counts of every text.

    The vocabulary is the terms of those rows (``min_df`` applied to their document
    frequencies) in the vectorizer's sorted order, the IDF is theirs, and the matrices are
    those of ``clone(tfidf).fit(texts[rows])`` (up to the order of floating-point sums):
    counting every text once serves every fold.

    Parameters
    ----------
    tfidf : TfidfVectorizer
        The vectorizer this stands for.
    counter : CountVectorizer
        Fitted on every text with ``tfidf``'s analyzer settings.
    counts : sparse matrix of shape (n_texts, n_terms)
        ``counter``'s counts of every text.
    rows : ndarray of int
        The rows fitted on.
    """

    def __init__(self, tfidf: Any, counter: Any, counts: Any, rows: np.ndarray) -> None:
        from sklearn.feature_extraction.text import TfidfTransformer

        self.tfidf = tfidf
        self._counter = counter
        train = counts[rows]
        freq = np.bincount(train.indices, minlength=counts.shape[1])
        self.columns = np.flatnonzero(freq >= max(int(tfidf.min_df), 1))
        self._idf = TfidfTransformer(norm=tfidf.norm, use_idf=tfidf.use_idf,
                                     smooth_idf=tfidf.smooth_idf,
                                     sublinear_tf=tfidf.sublinear_tf)
        self.matrix = self._idf.fit_transform(train[:, self.columns])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The terms, in column order (not needed to score: built when asked)."""
        return np.asarray(self._counter.get_feature_names_out()[self.columns], dtype=object)

    @property
    def vocabulary_(self) -> dict[str, int]:
        """Term to column, as ``TfidfVectorizer.vocabulary_`` (built when asked)."""
        return {str(term): i for i, term in enumerate(self.get_feature_names_out())}

    def transform_counts(self, counts: Any) -> Any:
        """TF-IDF of rows of the counts of every text."""
        return self._idf.transform(counts[:, self.columns])

    def transform(self, texts: Any) -> Any:
        """TF-IDF of raw texts under this fold's vocabulary."""
        return self.transform_counts(self._counter.transform(list(texts)).tocsr())


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
        if not (ctx.options.union and ctx.options.union_top):
            return []
        data = text_data(ctx)
        out = []
        for fs in _best_sets(ctx, ctx.options.union_top):
            ctx.log(f"scoring TF-IDF ⊕ {fs.layer} {fs.pooling} (vocabulary fitted per fold)")
            out.extend(union_candidates(fs, data, ctx.task, ctx.pipeline_params))
        return out


FAMILY = TfidfUnion()


def _best_sets(ctx: ProbeContext, top: int) -> list[FeatureSet]:
    """The ``top`` best feature sets: after a closed-form ridge screen, by the first
    head's score in the ``refine`` stage (logistic regression, the union's kind of
    model), then by the screen (truncated or chunked); with ``screen="head"`` by the
    screen (the first head). Each set once."""
    out: list[FeatureSet] = []
    fitted = []
    if ctx.options.screen == "ridge":  # ranked by the first head (the union's is linear)
        first = ctx.screen_head[0]
        rows = [(row, cand.features) for row, cand in ctx.scored
                if cand.stage == "refine" and cand.head == first and cand.features is not None]
        fitted = [fs for _, fs in sorted(rows, key=lambda rf: -rf[0]["mean_score"])]
    for fs in fitted + ctx.ranked("screen", "chunk"):
        if all(fs is not other for other in out):
            out.append(fs)
    return out[:top]
