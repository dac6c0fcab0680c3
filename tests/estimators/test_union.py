"""TextUnion: TF-IDF ⊕ BERT features (issue 8, item 2)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from bertfeat import BertFeaturizer, TextUnion

from ..conftest import WORDS


def corpus(n: int = 60, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        cue = "great love fun" if label else "awful hate boring"
        words = rng.choice(WORDS, size=rng.integers(3, 10))
        texts.append(f"{' '.join(words)} {cue.split()[i % 3]} {i}")
        labels.append(label)
    return texts, np.array(labels)


def union(tiny_model: str, **kwargs) -> TextUnion:
    bert = BertFeaturizer(model=tiny_model, precision="fp32", cache=False, layers=[1, -1])
    return TextUnion(bert=bert, tfidf=TfidfVectorizer(min_df=1), **kwargs)


def test_union_concatenates_scaled_blocks(tiny_model):
    texts, _ = corpus()
    model = union(tiny_model)
    X = model.fit_transform(texts)
    assert sp.issparse(X) and X.dtype == np.float32
    vocab = len(model.tfidf_.vocabulary_)
    assert X.shape == (60, vocab + 64) == (60, model.n_features_out_)
    names = model.get_feature_names_out()
    assert len(names) == X.shape[1]
    assert names[0].startswith("tfidf__") and names[-1] == "bert__L3_mean_31"
    lexical, dense = X[:, :vocab].toarray(), X[:, vocab:].toarray()
    np.testing.assert_allclose(np.linalg.norm(lexical, axis=1), 1.0, rtol=1e-5)
    # standardised and divided by sqrt(width): mean squared row norm 1 on the training texts
    assert np.mean(np.sum(dense**2, axis=1)) == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(model.transform(texts).toarray(), X.toarray(), atol=1e-6)


def test_weights_scale_each_block(tiny_model):
    texts, _ = corpus()
    base = union(tiny_model).fit_transform(texts).toarray()
    weighted = union(tiny_model, bert_weight=2.0, tfidf_weight=0.5).fit_transform(texts)
    vocab = base.shape[1] - 64
    np.testing.assert_allclose(weighted.toarray()[:, :vocab], 0.5 * base[:, :vocab], atol=1e-6)
    np.testing.assert_allclose(weighted.toarray()[:, vocab:], 2.0 * base[:, vocab:], atol=1e-5)
    unscaled = union(tiny_model, scale_bert=False).fit_transform(texts).toarray()
    np.testing.assert_allclose(np.linalg.norm(unscaled[:, vocab:], axis=1), 1.0, rtol=1e-5)


def test_zero_bert_weight_is_plain_tfidf(tiny_model):
    texts, y = corpus()
    only_tfidf = make_pipeline(TfidfVectorizer(min_df=1), LogisticRegression(max_iter=1000))
    muted = make_pipeline(union(tiny_model, bert_weight=0.0), LogisticRegression(max_iter=1000))
    a = only_tfidf.fit(texts, y).predict_proba(texts)
    b = muted.fit(texts, y).predict_proba(texts)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_union_is_clone_pickle_and_search_safe(tiny_model):
    texts, y = corpus()
    pipe = make_pipeline(union(tiny_model), LogisticRegression(max_iter=1000))
    params = pipe.get_params()
    assert params["textunion__bert__layers"] == [1, -1]
    assert clone(pipe).get_params()["textunion__tfidf_weight"] == 1.0
    search = GridSearchCV(pipe, {"textunion__bert__layers": [-1, 1],
                                 "textunion__tfidf_weight": [0.5, 1.0]},
                          cv=3, error_score="raise").fit(texts, y)
    assert search.best_score_ > 0.5
    revived = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(revived.predict(texts), search.predict(texts))


def test_bad_weight_is_refused(tiny_model):
    with pytest.raises(ValueError, match="bert_weight"):
        union(tiny_model, bert_weight=-1).fit(["a", "b"])
