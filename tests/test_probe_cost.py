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

from .test_cli import _probe_args, csv_file  # noqa: F401 - a fixture
from .test_probe import _data


def test_tokens_and_estimate_are_logged_before_the_bulk_encoding(tiny_model, tmp_path,
                                                                  monkeypatch, caplog):
    from bertfeat import encoder

    events: list[tuple[str, object]] = []
    real = encoder.encode

    def spy(tokenizer, model, texts, **kwargs):
        events.append(("encode", len(texts)))
        return real(tokenizer, model, texts, **kwargs)

    monkeypatch.setattr(encoder, "encode", spy)
    monkeypatch.setattr(context, "_SAMPLE_TOKENS", 60)  # a sample of a few texts
    caplog.set_level(logging.INFO, logger="bertfeat.probe")
    handler = logging.Handler()
    handler.emit = lambda record: events.append(("log", record.getMessage()))
    logging.getLogger("bertfeat.probe").addHandler(handler)
    try:
        texts, y = _data(40)
        probe(texts, y, model=tiny_model, poolings=("mean",), heads=("logreg",), combos=False,
              random_control=False, tfidf=False, cv=3, cache=FeatureStore(tmp_path / "s"),
              featurizer_params={"precision": "fp32"})
    finally:
        logging.getLogger("bertfeat.probe").removeHandler(handler)
    announce = [i for i, (kind, msg) in enumerate(events)
                if kind == "log" and "tokens to encode" in msg]
    assert len(announce) == 1
    message = events[announce[0]][1]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"])
    assert f"40 texts, {tokens:,} tokens to encode; about " in message
    assert "tokens/s (measured on" in message
    sizes = [(i, n) for i, (kind, n) in enumerate(events) if kind == "encode"]
    sample, bulk = sizes  # a small sample measured first, then the rest, after the message
    assert sample[1] <= 12 and sample[0] < announce[0] < bulk[0]
    assert sample[1] + bulk[1] == 40  # no text encoded twice


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


@pytest.mark.parametrize("extra, want", [((), None), (("--control-texts", "50"), 50)])
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
