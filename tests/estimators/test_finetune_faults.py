"""Issue 27: tagging and fine-tuning under bad input, failed fits and concurrent saves.

Fits are atomic (a failed or interrupted fit leaves the previous fitted state, or none),
generators are read once, labels missing as ``pd.NA`` are named by row, and
``save_pretrained`` leaves no stale model file behind. Every case is a row of
``docs/bad_input_policy.md`` ("Tagging and fine-tuning").
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from bertfeat import BertClassifier, BertFeaturizer, BertRegressor, BertWordFeaturizer, models
from bertfeat.engine import training
from bertfeat.words import WordTagger

from ..catalogue import Catalogue

CASES = Catalogue("tagging/fine-tuning")

TEXTS = ["the film was good", "an awful plot", "i love this movie", "boring and bad",
         "great acting", "hate the music", "fun story", "awful awful film"]
LABELS = ["pos", "neg", "pos", "neg", "pos", "neg", "pos", "neg"]
SENTS = [["the", "film", "was", "good"], ["an", "awful", "plot"], ["i", "love", "it"]] * 2
TAGS = [["D", "N", "V", "A"], ["D", "A", "N"], ["P", "V", "P"]] * 2


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _clf(model, **params):
    base = dict(model=model, epochs=1, learning_rate=1e-2, batch_size=4, random_state=0,
                show_progress=False)
    return BertClassifier(**{**base, **params})


def _tagger(model):
    return WordTagger(BertWordFeaturizer(model=model, layers=1, cache=False),
                      LogisticRegression(max_iter=200))


@pytest.fixture(scope="module")
def tagger(tiny_model):
    return _tagger(tiny_model).fit(SENTS, TAGS)


@pytest.fixture(scope="module")
def fitted_clf(tiny_model):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    clf = _clf(tiny_model).fit(TEXTS, LABELS)
    torch.set_num_threads(before)
    return clf


def _snapshot(clf):
    return clf.classes_.copy(), clf.predict_proba(TEXTS)


# ------------------------------------------------------------------------------ tagger
@CASES.input("WordTagger.predict(generator of sentences)")
def _tagger_predict_generator(tagger):
    got = tagger.predict(s for s in SENTS[:2])
    assert got == tagger.predict(SENTS[:2])
    assert [len(s) for s in got] == [4, 3]


@CASES.input("WordTagger.fit(generator, generator of tags)")
def _tagger_fit_generator(tiny_model, tagger):
    refit = _tagger(tiny_model).fit((s for s in SENTS), (t for t in TAGS))
    assert refit.predict(SENTS) == tagger.predict(SENTS)


@CASES.input("WordTagger.fit with a pd.NA tag")
def _tagger_na_tag(tiny_model):
    tags = [list(t) for t in TAGS]
    tags[1][2] = pd.NA
    with pytest.raises(ValueError, match=r"Sentence 1, word 2 has no tag \(<NA>\)"):
        _tagger(tiny_model).fit(SENTS, tags)


@CASES.input("WordTagger.score with fewer tag lists than sentences")
def _tagger_score_mismatch(tagger):
    with pytest.raises(ValueError, match="6 sentences but tags for 2"):
        tagger.score(SENTS, TAGS[:2])


@CASES.fault("WordTagger refit whose classifier fails")
def _tagger_refit_fails(tiny_model):
    tagger = _tagger(tiny_model).fit(SENTS, TAGS)
    featurizer, classifier = tagger.featurizer_, tagger.classifier_
    before = tagger.predict(SENTS)
    tagger.set_params(classifier=LogisticRegression(C=-1.0))  # refused by its fit
    with pytest.raises(ValueError, match="C"):
        tagger.fit(SENTS[:3], [["X"] * len(s) for s in SENTS[:3]])
    assert tagger.featurizer_ is featurizer and tagger.classifier_ is classifier
    assert tagger.predict(SENTS) == before


# ------------------------------------------------------------------------- classifier
@CASES.input("BertClassifier.fit(generator of texts, generator of labels)")
def _clf_generators(tiny_model, fitted_clf):
    clf = _clf(tiny_model).fit((t for t in TEXTS), (y for y in LABELS))
    assert clf.classes_.tolist() == ["neg", "pos"]
    np.testing.assert_allclose(clf.predict_proba(TEXTS), fitted_clf.predict_proba(TEXTS),
                               rtol=0, atol=1e-5)


@CASES.input("BertClassifier.predict(generator)")
def _clf_predict_generator(fitted_clf):
    assert fitted_clf.predict(t for t in TEXTS).tolist() == fitted_clf.predict(TEXTS).tolist()


@CASES.input("all-zero sample_weight")
def _zero_weights(tiny_model):
    with pytest.raises(ValueError, match="sample_weight is 0 for every text"):
        _clf(tiny_model).fit(TEXTS, LABELS, sample_weight=np.zeros(len(TEXTS)))


@CASES.input("a pd.NA label")
def _na_label(tiny_model):
    labels = pd.Series(LABELS, dtype="string")
    labels[2] = pd.NA
    with pytest.raises(ValueError, match=r"Row 2 of y is missing \(<NA>\)"):
        _clf(tiny_model).fit(TEXTS, labels)


@CASES.input("a nullable Int64 label column with <NA>")
def _int64_na_label(tiny_model):
    labels = pd.Series([0, 1] * 4, dtype="Int64")
    labels[5] = pd.NA
    with pytest.raises(ValueError, match=r"Row 5 of y is missing"):
        _clf(tiny_model).fit(TEXTS, labels)


@CASES.input("BertRegressor with y of shape (n, 0)")
def _no_targets(tiny_model):
    reg = BertRegressor(model=tiny_model, epochs=1, show_progress=False)
    with pytest.raises(ValueError, match=r"y has shape \(8, 0\).*n_targets >= 1"):
        reg.fit(TEXTS, np.zeros((len(TEXTS), 0)))
    with pytest.raises(NotFittedError):
        check_is_fitted(reg)


@CASES.input("BertRegressor.fit(texts, generator of targets)")
def _regressor_generator(tiny_model):
    reg = BertRegressor(model=tiny_model, epochs=1, show_progress=False, random_state=0)
    reg.fit(TEXTS, (float(i) for i in range(len(TEXTS))))
    assert reg.predict(TEXTS).shape == (len(TEXTS),)


# -------------------------------------------------------------------- atomic fits
@CASES.fault("a refit refused for a bad sample_weight keeps classes_ and head")
def _refit_bad_weight(fitted_clf):
    classes, proba = _snapshot(fitted_clf)
    other = ["a", "b", "c", "d"] * 2
    with pytest.raises(ValueError, match="sample_weight of row 1"):
        fitted_clf.fit(TEXTS, other, sample_weight=[1, -1, 1, 1, 1, 1, 1, 1])
    assert fitted_clf.classes_.tolist() == classes.tolist()
    np.testing.assert_array_equal(fitted_clf.predict_proba(TEXTS), proba)


@CASES.fault("Ctrl-C in the first fit leaves the classifier unfitted")
def _interrupted_first_fit(tiny_model, monkeypatch):
    clf = _clf(tiny_model, epochs=2)
    calls = []
    real = training.Trainer.step

    def step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "step", step)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(TEXTS, LABELS)
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)
    with pytest.raises(NotFittedError):
        clf.predict(TEXTS)


@CASES.fault("Ctrl-C in a refit keeps the previous fit")
def _interrupted_refit(fitted_clf, monkeypatch):
    classes, proba = _snapshot(fitted_clf)

    def step(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training.Trainer, "step", step)
    with pytest.raises(KeyboardInterrupt):
        fitted_clf.fit(TEXTS, ["a", "b", "c", "d"] * 2)
    assert fitted_clf.classes_.tolist() == classes.tolist()
    np.testing.assert_array_equal(fitted_clf.predict_proba(TEXTS), proba)


# ---------------------------------------------------------------------- model folders
@CASES.fault("save_pretrained into a folder holding another model's tokenizer.json")
def _stale_tokenizer(fitted_clf, tmp_path, monkeypatch):
    full = dict(fitted_clf._rt_files)
    # a base model with vocab.txt only: the fine-tuned save writes no tokenizer.json
    monkeypatch.setattr(fitted_clf, "_rt_files",
                        {k: v for k, v in full.items() if k != "tokenizer.json"})
    clean = fitted_clf.save_pretrained(tmp_path / "clean")
    dirty = tmp_path / "dirty"
    dirty.mkdir()
    stale = json.loads(full["tokenizer.json"])  # another model's: ids permuted
    vocab = stale["model"]["vocab"]
    words = sorted(vocab, key=vocab.get)
    stale["model"]["vocab"] = dict(zip(words, [vocab[w] for w in words][::-1]))
    (dirty / "tokenizer.json").write_text(json.dumps(stale))
    (dirty / "merges.txt").write_text("#version: 0.2\n")
    (dirty / "sentence_bert_config.json").write_text("{}")
    (dirty / "notes.txt").write_text("mine")
    fitted_clf.save_pretrained(dirty)
    names = sorted(p.name for p in dirty.iterdir())
    assert names == sorted([p.name for p in clean.iterdir()] + ["notes.txt"])
    assert "tokenizer.json" not in names
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    texts = ["the film was good", "awful"]
    np.testing.assert_array_equal(
        BertFeaturizer(model=str(dirty), cache=False, precision="fp32").fit(texts).transform(
            texts),
        BertFeaturizer(model=str(clean), cache=False, precision="fp32").fit(texts).transform(
            texts))


@CASES.fault("a model folder's JSON file half-written while it loads")
def _half_written_json(tiny_model, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    info = models.resolve_model(str(folder))
    path = folder / "tokenizer_config.json"
    path.write_text(path.read_text()[:40])  # the writer is mid-way
    with pytest.raises(ValueError, match=r"tokenizer_config\.json is not valid JSON .*while "
                                         r"model .* was loading"):
        models.load(info, depth=1, device="cpu", precision="fp32")


@CASES.fault("a JSON file being replaced while the model loads (retried)")
def _json_retry(tiny_model, monkeypatch):
    info = models.resolve_model(tiny_model)
    real = models.load_tokenizer
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # as transformers reads a file another process is writing
            raise json.JSONDecodeError("Expecting value", "", 0)
        return real(*args, **kwargs)

    monkeypatch.setattr(models.loading, "load_tokenizer", flaky)
    tokenizer, model = models.load(info, depth=1, device="cpu", precision="fp32")
    assert len(calls) == 2 and tokenizer("good film")["input_ids"]


@pytest.mark.parametrize("name", CASES.names())
def test_case(name, request):
    CASES.run(name, request)
