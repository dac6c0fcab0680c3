"""Issue 16, item 4: the probe for tags (``probe_words``, ``bertfeat probe --words``)."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GroupKFold

from bertfeat import WordTagger, wordencoder
from bertfeat.cli import main
from bertfeat.probe import probe_words
from bertfeat.tagscore import token_accuracy
from bertfeat.words import flatten_tags, sentence_ids

from ..conftest import make_tiny_model
from ..estimators.test_words import _pos_data


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    # seed 5: weights unlike the random-weights control's (seed 0)
    return str(make_tiny_model(tmp_path_factory.mktemp("wordprobe-bert"), seed=5))


@pytest.fixture(scope="module")
def run(model_dir, tmp_path_factory):
    sents, tags = _pos_data()
    store = str(tmp_path_factory.mktemp("wordprobe-store"))
    calls = []
    real = wordencoder.encode_words

    def spy(tokenizer, model, sentences, **kwargs):
        calls.append(len(sentences))
        return real(tokenizer, model, sentences, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(wordencoder, "encode_words", spy)
        result = probe_words(sents, tags, model=model_dir, cv=3, cache=store)
        again = probe_words(sents, tags, model=model_dir, cv=3, cache=store,
                            poolings=["first"], random_control=False, combos=False,
                            refine_top=0)
    return sents, tags, result, again, calls


def test_every_layer_and_pooling_on_the_same_folds(run):
    sents, tags, result, again, calls = run
    table = result.table
    screen = table[table["stage"] == "screen"]
    singles = screen[screen["layer_index"].notna()]
    assert len(singles) == 4 * 5  # hidden states 0..3 x five sub-word poolings
    assert set(singles["pooling"]) == {"first", "last", "mean", "max", "first_last"}
    assert set(screen[screen["layer_index"].isna()]["layer"]) == {
        "L0+1+2+3 mean", *(f"L{'+'.join(map(str, c))} concat" for c in _top_layers(singles))}
    assert set(table["stage"]) == {"screen", "refine", "control", "baseline"}
    assert (table[table["stage"] == "control"]["family"] == "random").all()
    assert table["mean_score"].is_monotonic_decreasing
    assert result.best["family"] == "bert"
    unique = len({tuple(s) for s in sents})
    # one encoder pass for the whole grid, one for the random-weights copy; none again
    assert calls == [unique, unique]
    assert result.encoding["encoded"] == unique == result.encoding["random_encoded"]
    assert again.encoding["encoded"] == 0
    assert result.baselines["most_frequent"] == pytest.approx(
        table.loc[table["family"] == "most_frequent", "mean_score"].iloc[0])


def _top_layers(singles):
    """The 2, 3 and 4 best layers of the best pooling, as the combos family picks them."""
    pooling = singles.iloc[0]["pooling"]  # the table is sorted, best first
    order = singles[singles["pooling"] == pooling]["layer_index"].tolist()
    return [tuple(sorted(order[:k])) for k in (2, 3, 4)]


def test_the_best_score_is_the_cross_validated_word_tagger(run):
    """Scoring the head on cached word features == cross-validating the WordTagger."""
    sents, tags, result, _, _ = run
    groups = sentence_ids(sents)
    y = flatten_tags(tags)
    scores = []
    for train, test in GroupKFold(3, shuffle=True, random_state=0).split(y, y, groups):
        tr, te = np.unique(groups[train]), np.unique(groups[test])
        tagger = result.make_tagger().fit([sents[i] for i in tr], [tags[i] for i in tr])
        truth = [tags[i] for i in te]
        scores.append(token_accuracy(truth, tagger.predict([sents[i] for i in te])))
    assert np.mean(scores) == pytest.approx(result.best["mean_score"], abs=1e-12)


def test_recommended_tagger_is_fitted_and_its_code_builds_it(run):
    sents, tags, result, _, _ = run
    best = result.best_estimator
    assert isinstance(best, WordTagger)
    assert [len(p) for p in best.predict(sents[:3])] == [len(s) for s in sents[:3]]
    namespace: dict = {}
    exec(result.best_code, namespace)
    built = namespace["tagger"]
    want = result.make_tagger().featurizer.get_params()
    got = built.featurizer.get_params()
    assert {k: got[k] for k in ("layers", "subword_pooling", "layer_combine")} == {
        k: want[k] for k in ("layers", "subword_pooling", "layer_combine")}
    assert "most frequent tag per word" in result.summary()


def test_plot_and_argument_errors(run, tmp_path):
    sents, tags, result, _, _ = run
    result.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="cv=1"):
        probe_words(sents, tags, cv=1)
    with pytest.raises(ValueError, match="poolings"):
        probe_words(sents, tags, poolings=["cls"])
    with pytest.raises(ValueError, match=r"Sentence 0 has \d words but 1 tags"):
        probe_words(sents[:2], [["X"], tags[1]])


def test_cli_probe_words(model_dir, tmp_path, capsys):
    sents, tags = _pos_data()
    lines = []
    for words, labels in zip(sents, tags):
        lines += [f"{i + 1}\t{w}\t_\t{t}\t_\t_\t0\t_\t_\t_" for i, (w, t) in
                  enumerate(zip(words, labels))] + [""]
    conllu = tmp_path / "pos.conllu"
    conllu.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    status = main(["probe", "--words", str(conllu), "--tag-col", "upos", "--model", model_dir,
                   "--cv", "2", "--out", str(out), "--no-random-control", "--layers=0,3",
                   "--cache-dir", str(tmp_path / "store")])
    assert status == 0
    text = capsys.readouterr().out
    assert "40 sentences" in text and "recommended:" in text
    assert "most frequent tag per word" in text
    assert {p.name for p in out.iterdir()} == {"probe.csv", "probe.png", "probe.txt",
                                               "best_pipeline.joblib"}
    tagger = joblib.load(out / "best_pipeline.joblib")
    assert [len(p) for p in tagger.predict(sents[:2])] == [len(s) for s in sents[:2]]
    assert main(["probe", "--words", str(tmp_path / "missing.conllu")]) == 2
