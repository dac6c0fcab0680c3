"""``TextUnion``: TF-IDF and BERT features side by side, each block scaled to weigh the same.

On long, topical documents TF-IDF often beats frozen encoder features; on short texts the
encoder wins. Concatenating both lets one linear head use whichever carries the signal. The
blocks differ wildly in width (hundreds of thousands of sparse n-grams vs a few hundred dense
dimensions) and scale, so each is brought to an expected squared row norm of 1 before its
weight is applied.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from ..io.inputs import to_texts
from .featurizer import BertFeaturizer

__all__ = ["TextUnion"]


def default_tfidf() -> TfidfVectorizer:
    """The TF-IDF block used when ``tfidf=None``: word 1-2 grams, sublinear tf."""
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


class TextUnion(TransformerMixin, BaseEstimator):
    """TF-IDF ⊕ BERT features for one text column, as one sparse matrix.

    Parameters
    ----------
    bert : BertFeaturizer, optional
        The encoder block. Default: ``BertFeaturizer()``. Its parameters are searchable as
        ``bert__layers`` etc.
    tfidf : transformer, optional
        The sparse lexical block. Default: ``TfidfVectorizer(ngram_range=(1, 2), min_df=2,
        sublinear_tf=True)`` (rows L2-normalised).
    bert_weight : float, default=1.0
        Multiplier of the BERT block after scaling.
    tfidf_weight : float, default=1.0
        Multiplier of the TF-IDF block.
    scale_bert : bool, default=True
        Standardise the BERT block (per-dimension, fitted on the training texts) and divide
        it by ``sqrt(width)``, so its expected squared row norm is 1 like TF-IDF's
        L2-normalised rows. Off: the BERT block is L2-normalised per row instead.

    Attributes
    ----------
    bert_ : BertFeaturizer
        Fitted encoder block.
    tfidf_ : transformer
        Fitted TF-IDF block.
    scaler_ : StandardScaler or None
        Fitted scaler of the BERT block.
    n_features_out_ : int
        Output width (TF-IDF vocabulary + BERT width).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from bertfeat import BertFeaturizer, TextUnion
    >>> pipe = make_pipeline(TextUnion(bert=BertFeaturizer(layers=4)),
    ...                      LogisticRegression(max_iter=2000))
    """

    _parameter_constraints: dict = {
        "bert": [HasMethods(["fit", "transform"]), None],
        "tfidf": [HasMethods(["fit_transform", "transform"]), None],
        "bert_weight": [Interval(Real, 0, None, closed="left")],
        "tfidf_weight": [Interval(Real, 0, None, closed="left")],
        "scale_bert": ["boolean"],
    }

    def __init__(self, bert: BertFeaturizer | None = None, tfidf: Any = None,
                 bert_weight: float = 1.0, tfidf_weight: float = 1.0,
                 scale_bert: bool = True) -> None:
        self.bert = bert
        self.tfidf = tfidf
        self.bert_weight = bert_weight
        self.tfidf_weight = tfidf_weight
        self.scale_bert = scale_bert

    def fit(self, X: Any, y: Any = None) -> TextUnion:
        """Fit both blocks (and the BERT scaler) on the training texts.

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame
        y : ignored

        Returns
        -------
        self : TextUnion
        """
        self.fit_transform(X, y)
        return self

    # the featurizer is the user's (a nested estimator): validate its parameters too
    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> sp.csr_matrix:
        """Fit on the texts and return their union features.

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame
        y : ignored

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_texts, n_features_out)
        """
        texts, _ = to_texts(X, getattr(self.bert, "on_bad_input", "raise"))
        if not texts:
            raise ValueError("TextUnion.fit needs at least one text: its TF-IDF block "
                             "learns a vocabulary from the texts (got 0)")
        self.bert_ = clone(self.bert) if self.bert is not None else BertFeaturizer()
        dense = self.bert_.fit_transform(texts)
        self.tfidf_ = clone(self.tfidf) if self.tfidf is not None else default_tfidf()
        return self.fit_blocks(self.tfidf_.fit_transform(texts), dense)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_with_dense(self, texts: list[str], dense: np.ndarray) -> sp.csr_matrix:
        """:meth:`fit_transform` for a caller that holds the BERT block of ``texts`` already.

        The featurizer is fitted (no encoding: fitting a featurizer reads only the
        model's shape), the TF-IDF block is fitted on ``texts`` and the scaler on
        ``dense``. :func:`bertfeat.probe.probe` refits its recommended union this way.

        Parameters
        ----------
        texts : list of str
        dense : ndarray of shape (n_texts, bert width)
            What ``bert.fit_transform(texts)`` would return.

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_texts, n_features_out)
        """
        self.bert_ = clone(self.bert).fit(texts) if self.bert is not None else \
            BertFeaturizer().fit(texts)
        self.tfidf_ = clone(self.tfidf) if self.tfidf is not None else default_tfidf()
        return self.fit_blocks(self.tfidf_.fit_transform(texts), dense)

    def fit_blocks(self, lexical: Any, dense: np.ndarray) -> sp.csr_matrix:
        """Fit the BERT scaling on ``dense`` and join it to a fitted TF-IDF block.

        Parameters
        ----------
        lexical : sparse matrix of shape (n, vocabulary)
            The TF-IDF block (``tfidf_`` fitted on the same rows).
        dense : ndarray of shape (n, bert width)
            The BERT block of the same rows.

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n, n_features_out)
        """
        self.scaler_ = StandardScaler().fit(dense) if self.scale_bert else None
        self.n_features_out_ = lexical.shape[1] + dense.shape[1]
        return self.join(lexical, dense)

    def transform(self, X: Any) -> sp.csr_matrix:
        """Union features of new texts.

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_texts, n_features_out)
        """
        check_is_fitted(self, "bert_")
        texts, _ = to_texts(X, getattr(self.bert_, "on_bad_input", "raise"))
        if not texts:  # the width depends on the fit only (the TF-IDF refuses 0 rows)
            return sp.csr_matrix((0, self.n_features_out_), dtype=np.float32)
        return self.join(self.tfidf_.transform(texts), self.bert_.transform(texts))

    def join(self, lexical: Any, dense: np.ndarray) -> sp.csr_matrix:
        """Scale and weigh both blocks with the fitted scaling; one sparse matrix.

        Parameters
        ----------
        lexical : sparse matrix of shape (n, vocabulary)
        dense : ndarray of shape (n, bert width)

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n, n_features_out)
        """
        if self.scaler_ is not None:
            dense = self.scaler_.transform(dense) / np.sqrt(dense.shape[1])
        else:
            norms = np.linalg.norm(dense, axis=1, keepdims=True)
            dense = dense / np.maximum(norms, 1e-12)
        lexical = sp.csr_matrix(lexical, dtype=np.float32) * np.float32(self.tfidf_weight)
        dense = sp.csr_matrix(dense.astype(np.float32) * np.float32(self.bert_weight))
        return sp.hstack([lexical, dense], format="csr")

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``tfidf__<term>`` then ``bert__<layer>_<pooling>_<j>``.

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self, "bert_")
        lexical = [f"tfidf__{name}" for name in self.tfidf_.get_feature_names_out()]
        dense = [f"bert__{name}" for name in self.bert_.get_feature_names_out()]
        return np.asarray(lexical + dense, dtype=object)
