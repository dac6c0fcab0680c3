"""Issue 28: whatever the probe recommends, ``bertfeat export`` takes it.

A probe on the tiny model scores every family; for one candidate of each (family, head)
kind, the pipeline the probe would save as ``best_pipeline.joblib`` (``fit_all``) goes
through the CLI's ``bertfeat export`` and :func:`bertfeat.runtime.load`, and predicts what
the pipeline predicts: TF-IDF alone, TF-IDF ⊕ layers, single layers and combinations, with
each head the probe offers (logreg, SVM, MLP; ridge, SVR and MLP regressors behind their
target scaler). The TF-IDF fidelity check refuses an analyzer that does not match.
"""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest

from bertfeat import FeatureStore, runtime
from bertfeat.cli import main
from bertfeat.export import ExportError, export_pipeline
from bertfeat.probe import probe

from ..conftest import WORDS

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

POSITIVE = {"good", "great", "love", "fun"}
NEW = ["the film was good", "", "awful awful plot, not great", "I LOVE this Movie!",
       "café crème brûlée", "fun fun fun and more fun"]


def _data(n: int = 48, seed: int = 0, regression: bool = False):
    rng = np.random.default_rng(seed)
    neutral = [w for w in WORDS if w not in POSITIVE]
    texts, y = [], []
    for i in range(n):
        words = list(rng.choice(neutral, 6))
        if i % 2:
            words[rng.integers(6)] = str(rng.choice(sorted(POSITIVE)))
        texts.append(" ".join(words))
        y.append(float(i % 2) + float(rng.normal(0, 0.1)) if regression
                 else ("pos" if i % 2 else "neg"))
    return texts, np.asarray(y)


def _one_per_kind(result) -> list[str]:
    """A candidate key per (family, head) of the recommendable families."""
    table = result.table
    keys = []
    for _, rows in table[table["family"] != "control"].groupby(["family", "head"], sort=True):
        keys.append(rows["candidate"].iloc[0])
    return keys


def _export_and_compare(result, key, texts, y, tmp_path, capsys, regression=False):
    cand = result.candidate(key)
    pipe = cand.fit_all(texts, y)
    joblib.dump(pipe, tmp_path / "best_pipeline.joblib")
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["export", str(tmp_path / "best_pipeline.joblib"), str(out)]) == 0, key
    printed = capsys.readouterr().out
    assert "predictions agree with the pipeline on" in printed
    loaded = runtime.load(out)
    got, want = loaded.predict(NEW + texts[:10]), pipe.predict(NEW + texts[:10])
    if regression:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_array_equal(got, want)
    check = json.loads((out / "manifest.json").read_text())["check"]
    same, n = check["predictions_agree"]
    assert n == 10  # the built-in check texts
    if cand.family in ("tfidf", "union"):
        assert check["tfidf_max_error"] <= 1e-6
        assert check["tfidf_texts"] > 10  # the check texts and the vocabulary texts
    if cand.family == "tfidf":
        assert not (out / "encoder.onnx").exists() and not (out / "tokenizer.json").exists()
    return cand


@pytest.fixture(scope="module")
def classification(tiny_model, tmp_path_factory):
    texts, y = _data()
    store = FeatureStore(tmp_path_factory.mktemp("picks-store"))
    res = probe(texts, y, model=tiny_model, cache=store, cv=2, random_state=0,
                union=True, featurizer_params={"precision": "fp32"}, verbose=False)
    return res, texts, y


def test_the_probe_offers_every_kind(classification):
    res, _, _ = classification
    families = set(res.table["family"])
    assert {"tfidf", "union", "bert"} <= families, families
    heads = {h.split(" α=")[0] for h in res.table.loc[res.table["family"] == "bert", "head"]}
    assert heads == {"ridge", "logreg", "svm", "mlp"}  # the closed-form screen's rows: ridge


@pytest.mark.parametrize("family, head", [
    ("tfidf", None), ("union", None), ("bert", "logreg"), ("bert", "svm"), ("bert", "mlp"),
    ("bert", "ridge"),
])
def test_every_classification_pick_exports(classification, family, head, tmp_path, capsys):
    res, texts, y = classification
    table = res.table[res.table["family"] == family]
    if head is not None:
        table = table[table["head"].str.split(" α=").str[0] == head]
    assert len(table), (family, head, sorted(set(res.table["family"])))
    _export_and_compare(res, table["candidate"].iloc[0], texts, y, tmp_path, capsys)


def test_every_regression_pick_exports(tiny_model, tmp_path, capsys):
    texts, y = _data(regression=True)
    res = probe(texts, y, model=tiny_model, cv=2, random_state=0, cache=False,
                layers=[-1], combos=False, poolings=("mean",), union=False,
                random_control=False, featurizer_params={"precision": "fp32"},
                verbose=False)
    heads = set()
    for i, key in enumerate(_one_per_kind(res)):
        folder = tmp_path / f"pick{i}"
        folder.mkdir()
        cand = _export_and_compare(res, key, texts, y, folder, capsys, regression=True)
        heads.add((cand.family, cand.head))
    assert {("tfidf", "ridge"), ("bert", "ridge"), ("bert", "svm"), ("bert", "mlp")} <= heads


def test_tfidf_alone_transform_and_refusals(tmp_path, monkeypatch):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, y = _data()
    texts = texts + ["Crème brûlée, CAFÉ and naïve résumé", "l'été dernier"]
    y = np.concatenate([y, ["pos", "neg"]])
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                         strip_accents="unicode", stop_words=["the"]),
                         LogisticRegression(C=10, max_iter=1000)).fit(texts, y)
    report = export_pipeline(pipe, tmp_path / "t", verbose=False)
    assert report.cosine_mean is None and report.precision is None
    assert report.predictions_agree == (10, 10)
    loaded = runtime.load(tmp_path / "t")
    np.testing.assert_allclose(loaded.transform(NEW), pipe[0].transform(NEW).toarray(),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.predict_proba(NEW), pipe.predict_proba(NEW), atol=1e-6)
    with pytest.raises(AttributeError, match="without an encoder"):
        loaded.encode(NEW)
    # a runtime analyzer that tokenised differently is refused, naming the text
    from bertfeat.deploy.tfidf import TfidfBlock

    real = TfidfBlock._terms
    monkeypatch.setattr(TfidfBlock, "_terms", lambda self, text: real(self, text)[1:])
    with pytest.raises(ExportError, match="differs from scikit-learn's TfidfVectorizer"):
        export_pipeline(pipe, tmp_path / "bad", verbose=False)
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    monkeypatch.undo()
    with pytest.raises(ExportError, match="analyzer='char'"):
        export_pipeline(make_pipeline(TfidfVectorizer(analyzer="char"), LogisticRegression())
                        .fit(texts, y), tmp_path / "c", verbose=False)


LONG = [" ".join(WORDS[(i * 7) % len(WORDS):] + WORDS[:(i * 7) % len(WORDS)]) * (1 + i % 4)
        for i in range(12)]


@pytest.mark.parametrize("params", [
    dict(layers=-1, pooling="mean"),
    dict(layers=[1, 3], pooling="mean_max", layer_combine="concat"),
    dict(layers=[0, 2], pooling="first_last", layer_combine="mean", normalize=True),
    dict(layers=-1, pooling="cls"),
    dict(layers=-1, pooling="pooler"),
], ids=["mean", "mean_max-concat", "first_last-mean-norm", "cls", "pooler"])
def test_chunked_featurizer_exports(tiny_model, tmp_path, params):
    """The probe's ``chunked`` family: long texts split into windows, pooled per text."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from bertfeat import BertFeaturizer

    texts, y = _data()
    texts = texts + LONG
    y = np.concatenate([y, ["pos" if i % 2 else "neg" for i in range(len(LONG))]])
    feat = BertFeaturizer(model=tiny_model, precision="fp32", cache=False, long_text="chunk",
                          max_length=16, chunk_stride=4, max_chunks=3, **params)
    pipe = make_pipeline(feat, LogisticRegression(max_iter=1000)).fit(texts, y)
    report = export_pipeline(pipe, tmp_path / "c", verbose=False, check_texts=LONG + NEW)
    assert report.cosine_min >= 0.9999
    loaded = runtime.load(tmp_path / "c")
    check = LONG[::-1] + NEW + texts[:5]
    got, want = loaded.encode(check), pipe[0].transform(check)
    assert got.shape == want.shape
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
                                 + 1e-30)
    assert cos[np.linalg.norm(want, axis=1) > 0].min() >= 0.9999
    np.testing.assert_array_equal(loaded.predict(check), pipe.predict(check))
