"""Issue 19: the probe says what it will encode before it does, and bounds its control.

* before the bulk of an encoder pass, the probe logs the number of tokens to encode (the
  tokenizer's count, checked here) and an estimate from the measured speed of a sample;
* the random-weights control encodes at most ``control_texts`` texts (stratified), its
  rows are scored on the same folds restricted to them (checked against
  ``cross_val_score`` of the control's own Pipeline), and the report says so.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score
from transformers import AutoTokenizer

from bertfeat import FeatureStore
from bertfeat.probe import context, probe
from bertfeat.probe.context import restrict_splits

from ..cli.test_cli import _probe_args, csv_file  # noqa: F401 - a fixture
from .test_probe import _data


def test_tokens_and_estimate_are_logged_before_the_bulk_encoding(tiny_model, tmp_path,
                                                                  monkeypatch, caplog):
    """A sample of the pass's own batches (one warm-up, the others timed) gives the speed
    per padded token; the estimate is the padded tokens left at that speed. With a faked
    clock that charges one second per padded token, it is exact."""
    from bertfeat import encoder

    events: list[tuple[str, object]] = []
    real = encoder.encode
    clock = [0.0]

    def spy(tokenizer, model, texts, **kwargs):
        events.append(("encode", len(texts)))
        lengths = np.array([len(ids) for ids in encoder.tokenize(
            tokenizer, texts, kwargs["max_length"]).input_ids])
        clock[0] += sum(len(b) * int(lengths[b].max()) for b in encoder.make_batches(
            lengths, kwargs["batch_size"], kwargs["max_tokens"]))
        return real(tokenizer, model, texts, **kwargs)

    monkeypatch.setattr(encoder, "encode", spy)
    monkeypatch.setattr(context, "_SAMPLE_BATCHES", 3)  # a warm-up and two timed batches
    monkeypatch.setattr(context, "_clock", lambda: clock[0])
    caplog.set_level(logging.INFO, logger="bertfeat.probe")
    handler = logging.Handler()
    handler.emit = lambda record: events.append(("log", record.getMessage()))
    logging.getLogger("bertfeat.probe").addHandler(handler)
    try:
        texts, y = _data(60)
        res = probe(texts, y, model=tiny_model, poolings=("mean",), heads=("logreg",),
                    combos=False, random_control=False, tfidf=False, cv=3,
                    cache=FeatureStore(tmp_path / "s"),
                    featurizer_params={"precision": "fp32", "batch_size": 4})
    finally:
        logging.getLogger("bertfeat.probe").removeHandler(handler)
    announce = [i for i, (kind, msg) in enumerate(events)
                if kind == "log" and "tokens to encode" in msg]
    assert len(announce) == 1
    message = events[announce[0]][1]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"]])
    assert f"60 texts, {lengths.sum():,} tokens to encode; about " in message
    assert "tokens/s (measured on 8 texts in 2 batches)" in message
    sizes = [(i, n) for i, (kind, n) in enumerate(events) if kind == "encode"]
    warm, timed, bulk = sizes  # the sample first, then the rest, after the message
    assert (warm[1], timed[1]) == (4, 8) and timed[0] < announce[0] < bulk[0]
    assert warm[1] + timed[1] + bulk[1] == 60  # no text encoded twice
    (estimate,) = res.encoding["estimates"].values()
    assert estimate["estimated_s"] == pytest.approx(estimate["actual_s"])
    assert f"about {estimate['actual_s']:,.0f} s" in message


def test_no_estimate_for_a_pass_of_a_few_batches(tiny_model, tmp_path, caplog, encode_spy):
    caplog.set_level(logging.INFO, logger="bertfeat.probe")
    texts, y = _data(40)
    res = probe(texts, y, model=tiny_model, poolings=("mean",), heads=("logreg",),
                combos=False, random_control=False, tfidf=False, cv=3,
                cache=FeatureStore(tmp_path / "s"), featurizer_params={"precision": "fp32"})
    assert "40 texts, " in caplog.text and "about" not in caplog.text
    assert encode_spy == [40] and "estimates" not in res.encoding


def test_random_control_on_a_stratified_subset(tiny_model, tmp_path, encode_spy):
    texts, y = _data(60)
    res = probe(texts, y, model=tiny_model, poolings=("mean",), heads=("logreg",),
                combos=False, tfidf=False, union=False, chunk=False, cv=3, control_texts=30,
                random_state=1, control_seed=2, cache=FeatureStore(tmp_path / "s"),
                featurizer_params={"precision": "fp32"})
    assert res.encoding["encoded"] == 60 and res.encoding["random_encoded"] == 30
    assert sum(encode_spy) == 90
    note = res.encoding["control"]
    assert "30 of 60 texts (stratified subset, control_texts=30)" in note
    assert f"control: {note}" in res.summary()
    control = res.table[res.table.family == "random"]
    assert len(control) == 4  # every swept layer, as without a subset
    cand = res.candidate(control.iloc[0]["candidate"])
    rows = cand.rows
    assert len(rows) == 30 and sorted(set(y[rows])) == ["neg", "pos"]
    assert (y[rows] == "pos").sum() == 15  # stratified
    # the score is cross_val_score of the control's Pipeline on the subset, on the
    # probe's folds restricted to it
    folds = list(StratifiedKFold(3, shuffle=True, random_state=1).split(np.zeros(60), y))
    scores = cross_val_score(cand.build(), [texts[i] for i in rows], y[rows],
                             cv=restrict_splits(folds, rows, 60))
    assert scores.mean() == pytest.approx(control.iloc[0]["mean_score"], abs=1e-12)


def test_control_takes_every_text_below_the_limit():
    from bertfeat.probe.families.control import control_rows

    class Ctx:
        texts = ["t"] * 20
        y = np.array([0, 1] * 10)
        task = "classification"

    assert control_rows(Ctx, 20, 0) is None and control_rows(Ctx, None, 0) is None
    rows = control_rows(Ctx, 10, 0)
    assert len(rows) == 10 and (Ctx.y[rows] == 1).sum() == 5
    assert np.array_equal(rows, control_rows(Ctx, 10, 0))  # seeded


class _Stop(Exception):
    pass


@pytest.mark.parametrize("extra, want", [((), "auto"), (("--control-texts", "50"), 50),
                                         (("--control-texts", "all"), None)])
def test_cli_passes_control_texts(csv_file, tiny_model, tmp_path, monkeypatch, extra,  # noqa: F811
                                  want):
    import bertfeat.probe
    from bertfeat.cli import main

    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs["control_texts"])
        raise _Stop

    monkeypatch.setattr(bertfeat.probe, "probe", spy)
    with pytest.raises(_Stop):
        main(_probe_args(csv_file, tiny_model, tmp_path / "out", *extra))
    assert seen == [want]


def test_stage_bar_in_a_terminal_only(monkeypatch):
    import io
    import sys

    from bertfeat.probe.progress import StageBar

    assert StageBar(3, enabled=True).bar is None or sys.stderr.isatty()  # not a terminal
    assert StageBar(3, enabled=False).bar is None
    screen = io.StringIO()
    screen.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", screen)
    bar = StageBar(3, enabled=True)
    for name in ("encode", "screen", "refit"):
        bar.stage(name)
    assert bar.bar.n == 2 and "refit" in screen.getvalue()
    bar.close()
    assert bar.bar.n == 3


def _long_data(n: int) -> tuple[list[str], np.ndarray]:
    """Texts of which every third is longer than the tiny model's 64 tokens."""
    texts, y = _data(n)
    return [t if i % 3 else " ".join([t] * 20) for i, t in enumerate(texts)], y


def test_each_window_is_encoded_once(tiny_model, tmp_path, monkeypatch):
    from bertfeat import encoder

    calls: list[tuple[str, str, int, int]] = []
    real = encoder.encode

    def spy(tokenizer, model, texts, **kwargs):
        kind = "random" if "random-init" in str(model.config._name_or_path) else "model"
        mode = kwargs.get("long_text", "truncate")
        calls.append((kind, mode, len(texts), int(kwargs.get("on_first_window") is not None)))
        return real(tokenizer, model, texts, **kwargs)

    monkeypatch.setattr(encoder, "encode", spy)
    texts, y = _long_data(60)
    res = probe(texts, y, model=tiny_model, poolings=("mean", "cls"), heads=("logreg",),
                combos=False, tfidf=False, union=False, cv=3, chunk_top=2,
                control_texts=None, control_seed=1, cache=FeatureStore(tmp_path / "s"),
                featurizer_params={"precision": "fp32"})
    real_calls = [c for c in calls if c[0] == "model"]
    # one chunked pass (a sample to time, then the rest) that also stores every text's
    # first window as its truncated encoding; no truncated pass of the real model
    assert {mode for _, mode, _, _ in real_calls} == {"chunk"}
    assert sum(n for _, _, n, _ in real_calls) == 60
    assert all(first for *_, first in real_calls)
    assert res.encoding["encoded"] == 0 and res.encoding["chunk_encoded"] == 60
    assert res.encoding["truncated"] == 20
    assert "their first windows are the truncated encoding" in res.encoding["chunk"]
    chunked = res.table[res.table.stage == "chunk"]
    assert len(chunked) == 2 and chunked["layer"].str.endswith("chunked").all()
    # the random control runs on the first window only (as the truncated rows)
    assert [(mode, n) for kind, mode, n, _ in calls if kind == "random"] == [("truncate", 60)]


def test_auto_control_size_follows_the_token_budget():
    from bertfeat.probe.families import control

    class Ctx:
        task = "classification"
        encoding = {"chunk_encoded": None}

        def __init__(self, lengths, y):
            self.lengths, self.y = np.asarray(lengths), np.asarray(y)
            self.texts = [str(i) for i in range(len(y))]

        def token_lengths(self, mode):
            return self.lengths

    share, floor = control.CONTROL_TOKEN_SHARE, control.CONTROL_MIN_TEXTS
    y2 = np.array([0, 1] * 4000)
    # 8,000 texts of 50 tokens: the share of the tokens, in texts
    assert control.auto_control_size(Ctx([50] * 8000, y2)) == int(share * 8000)
    # few texts: the floor
    assert control.auto_control_size(Ctx([50] * 400, y2[:400])) == floor
    # many classes: 5 per class
    y77 = np.arange(1000) % 77
    assert control.auto_control_size(Ctx([50] * 1000, y77)) == 5 * 77
    # after a chunked pass the budget is the share of its window tokens, and the control
    # costs a first window per text
    ctx = Ctx([400] * 8000, y2)
    ctx.encoding = {"chunk_encoded": 8000}
    ctx.token_lengths = lambda mode: np.full(8000, 2000 if mode == "chunk" else 400)
    assert control.auto_control_size(ctx) == int(share * 2000 * 8000 / 400)


def test_auto_control_on_a_subset_has_a_reference_row(tiny_model, tmp_path, monkeypatch):
    from bertfeat.probe.families import control

    monkeypatch.setattr(control, "CONTROL_MIN_TEXTS", 30)
    monkeypatch.setattr(control, "CONTROL_TOKEN_SHARE", 0.01)
    texts, y = _data(80)
    res = probe(texts, y, model=tiny_model, poolings=("mean",), heads=("logreg",),
                combos=False, tfidf=False, union=False, chunk=False, cv=3, control_seed=1,
                cache=FeatureStore(tmp_path / "s"), featurizer_params={"precision": "fp32"})
    assert res.encoding["random_encoded"] == 30
    assert "30 of 80 texts" in res.encoding["control"] and "'auto'" in res.encoding["control"]
    ref = res.table[(res.table.family == "bert") & (res.table.stage == "control")]
    assert len(ref) == 1 and ref.iloc[0]["layer"].endswith(control.SUBSET_LABEL)
    assert res.control_reference == ref.iloc[0]["candidate"]
    assert not res.is_recommendable(res.control_reference)
    # the reference is the best screened feature set, on the control's texts and folds
    best = res.table[res.table.stage == "screen"].iloc[0]
    assert ref.iloc[0]["layer"].startswith(best["layer"] + " ")
    ref_cand = res.candidate(res.control_reference)
    random_cand = res.candidate(res.baseline_keys["random"])
    np.testing.assert_array_equal(ref_cand.rows, random_cand.rows)
    diff = (res.fold_scores.loc[res.control_reference]
            - res.fold_scores.loc[res.baseline_keys["random"]]).mean()
    assert res.comparisons["random"].diff == pytest.approx(diff)
    summary = res.summary()
    assert "random weights (vs " in summary
    import matplotlib

    matplotlib.use("Agg")
    labels = res.plot().axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("random weights (best)") and "on 30 of 80 texts" in label
               for label in labels)
    ref_score = res.table.set_index("candidate").loc[res.control_reference, "mean_score"]
    assert (f"random-weights control (best, on 30 of 80 texts): {res.baselines['random']:.4f}"
            f" (the real model's best feature set on the same texts: {ref_score:.4f})"
            ) in summary
    # the best BERT row of the summary is a full-data row, never the subset reference
    assert res.families["bert"] == res.table[(res.table.family == "bert")
                                             & (res.table.stage != "control")
                                             & (res.table.stage != "chunk")
                                             ]["mean_score"].max()


@pytest.mark.parametrize("min_df", [1, 2])
def test_fold_vocabulary_equals_fitting_the_fold(min_df):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from bertfeat.datasets import load_dataset
    from bertfeat.probe.families.union import FoldVocabulary, UnionData

    texts = load_dataset("sms_spam")["text"].iloc[:300].to_numpy(dtype=object)
    data = UnionData(texts)
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=min_df)
    folds = StratifiedKFold(3, shuffle=True, random_state=0).split(texts, np.arange(300) % 2)
    for train, test in folds:
        key, fold, matrix = data.fit(tfidf, train)
        assert isinstance(fold, FoldVocabulary)
        plain = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=min_df)
        expected = plain.fit_transform(list(texts[train]))
        assert fold.vocabulary_ == plain.vocabulary_
        np.testing.assert_allclose(matrix.toarray(), expected.toarray(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(data.transform(key, fold, test).toarray(),
                                   plain.transform(list(texts[test])).toarray(),
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(fold.transform(texts[test][:5]).toarray(),
                                   plain.transform(list(texts[test][:5])).toarray(),
                                   rtol=0, atol=1e-12)
    assert len(data._counters) == 1  # every text counted once for all folds
    # a vectorizer whose fit cannot be cut from counts is fitted on the fold
    capped = TfidfVectorizer(max_features=50)
    _, vec, _ = data.fit(capped, np.arange(100))
    assert isinstance(vec, TfidfVectorizer) and len(vec.vocabulary_) == 50


def test_cli_says_the_windows_served_the_truncated_rows(tiny_model, tmp_path, capsys):
    import pandas as pd

    from bertfeat.cli import main

    texts, y = _long_data(36)
    path = tmp_path / "long.csv"
    pd.DataFrame({"message": texts, "kind": y}).to_csv(path, index=False)
    assert main(["probe", str(path), "--text-col", "message", "--label-col", "kind",
                 "--model", tiny_model, "--cv", "3", "--out", str(tmp_path / "out"),
                 "--precision", "fp32", "--quiet", "--n-jobs", "1", "--heads", "logreg",
                 "--poolings", "mean", "--no-tfidf",
                 "--cache-dir", str(tmp_path / "store")]) == 0
    printed = capsys.readouterr().out
    assert ("encoder passes: 36 of 36 unique texts encoded in windows, their first windows "
            "serving as the truncated encoding (0 more encoded truncated) this run") in printed
    assert "fine-tuning" not in printed  # not run: not reported


def test_baseline_and_union_count_the_texts_once(tiny_model, tmp_path, monkeypatch):
    # the TF-IDF baseline and the union share one vectorizer, so one count of the texts
    # serves both (each fold's vocabulary is cut from it)
    from sklearn.feature_extraction.text import CountVectorizer

    texts, y = _data(36)
    counted = []
    real = CountVectorizer.fit_transform

    def spy(self, raw, y=None):
        counted.append(len(raw))
        return real(self, raw, y)

    monkeypatch.setattr(CountVectorizer, "fit_transform", spy)
    res = probe(texts, y, model=tiny_model, cache=tmp_path / "s", cv=3, combos=False,
                poolings=("mean",), heads=("logreg",), random_control=False, refit=False,
                featurizer_params={"precision": "fp32"})
    assert {"tfidf", "union"} <= set(res.table["family"])
    assert counted == [len(texts)]
