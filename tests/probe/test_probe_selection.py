"""Issue 25: selection rules read the stored fold scores; a saved probe is re-picked under
another rule without scoring or encoding anything (``result.select``, ``ProbeResult.load``,
``bertfeat recommend OUTDIR --select RULE``); candidate pipelines round-trip through JSON."""

from __future__ import annotations

import inspect
import json

import joblib
import numpy as np
import pandas as pd
import pytest

from bertfeat import FeatureStore
from bertfeat.cli import DEFAULT_SELECT, SELECT_RULES, main
from bertfeat.cvstats import score_interval
from bertfeat.probe import ProbeResult, probe
from bertfeat.probe.codegen import pipeline_code, pipeline_from_spec, pipeline_spec
from bertfeat.probe.selection import ALIASES, DEFAULT_RULE, RULES, recommend, spread_outliers
from bertfeat.probe.stats import annotate

from .test_probe import _data
from .test_probe_stats import HEADS, ROWS, _table


def _forbid_work(monkeypatch):
    """Spies: any cross-validation, head scoring or encoder call fails the test."""
    import bertfeat.encoder
    import bertfeat.probe.context
    import bertfeat.probe.scoring

    def boom(*args, **kwargs):
        raise AssertionError("re-selecting must not score or encode")

    monkeypatch.setattr(bertfeat.encoder, "encode", boom)
    monkeypatch.setattr(bertfeat.encoder, "_forward_batches", boom)
    monkeypatch.setattr(bertfeat.probe.scoring, "run_jobs", boom)
    monkeypatch.setattr(bertfeat.probe.context, "cv_score", boom)


# ------------------------------------------------------------------- rules on a hand table
def test_rule_names_defaults_and_cli_choices_agree():
    assert set(SELECT_RULES) == set(RULES) | set(ALIASES)
    assert DEFAULT_SELECT == DEFAULT_RULE
    assert inspect.signature(probe).parameters["select"].default == DEFAULT_RULE
    assert {"top", "cheapest-tied", "one-se", "stable-top"} <= set(RULES)


def test_one_se_picks_the_cheapest_within_one_standard_error():
    table, folds = _table(ROWS, np.random.default_rng(0))
    out, rec = annotate(table, folds, 0.25, head_order=HEADS, select="one-se")
    rows = out.set_index("candidate")
    se = score_interval(folds.loc[rec.top], 0.25).se
    within = [k for k in out.candidate if k != "random:L6:mean:logreg"
              and rows.loc[k, "mean_score"] >= rows.loc[rec.top, "mean_score"] - se]
    assert rec.pick in within and rec.select == "one-se"
    # every other member of the band needs at least as many encoder layers
    from bertfeat.probe.stats import candidate_cost

    assert all(candidate_cost(rows.loc[rec.pick], HEADS) <= candidate_cost(rows.loc[k], HEADS)
               for k in within)
    # a band of zero width (one fold noise-free) is the top itself
    flat = folds.copy()
    flat.loc[rec.top] = flat.loc[rec.top].mean()
    flat.loc[rec.top] += 0.05  # far above everything else
    table2 = table.copy()
    table2.loc[table2.candidate == rec.top, "mean_score"] = flat.loc[rec.top].mean()
    table2 = table2.sort_values("mean_score", ascending=False).reset_index(drop=True)
    assert annotate(table2, flat, 0.25, head_order=HEADS, select="one-se")[1].pick == rec.top


def test_stable_top_passes_over_a_wild_top():
    rng = np.random.default_rng(4)
    rows = [("bert", f"L{i}", "mean", "logreg", 384, "screen", 0.80 + 0.002 * i)
            for i in range(8)]
    table, folds = _table(rows, rng, noise=0.005)
    wild = "bert:L9:mean:logreg"
    folds.loc[wild] = 0.84 + rng.normal(0, 0.2, folds.shape[1])  # a lucky, noisy top
    folds.loc[wild] += 0.84 - folds.loc[wild].mean()
    extra = {"family": "bert", "layer": "L9", "pooling": "mean", "head": "logreg",
             "mean_score": folds.loc[wild].mean(), "std_score": folds.loc[wild].std(),
             "n_features": 384, "stage": "screen", "candidate": wild}
    table = pd.concat([pd.DataFrame([extra]), table]).reset_index(drop=True)
    out, top = annotate(table, folds, 0.25, head_order=HEADS, select="top")
    _, stable = annotate(table, folds, 0.25, head_order=HEADS, select="stable-top")
    assert top.pick == wild
    assert stable.pick == "bert:L7:mean:logreg"  # the best of the steady ones
    # without an outlier, stable-top is the top mean
    _, plain = annotate(table.iloc[1:].reset_index(drop=True), folds.drop(index=wild), 0.25,
                        head_order=HEADS, select="stable-top")
    assert plain.pick == plain.top == "bert:L7:mean:logreg"


def test_recommend_reads_the_table_only_and_matches_annotate():
    table, folds = _table(ROWS, np.random.default_rng(0))
    recommendable = [k for k in table.candidate if not k.startswith("random")]
    for rule in RULES:
        out, rec = annotate(table, folds, 0.25, head_order=HEADS, select=rule)
        again = recommend(out, folds, 0.25, head_order=HEADS, recommendable=recommendable,
                          rule=rule, alpha=0.05, level=0.95)
        assert again == rec
    with pytest.raises(ValueError, match="select must be one of"):
        recommend(out, folds, 0.25, head_order=HEADS, recommendable=recommendable,
                  rule="best", alpha=0.05, level=0.95)


def test_spread_outliers_needs_a_spread():
    table, folds = _table(ROWS[:2], np.random.default_rng(0))
    out, _ = annotate(table, folds, 0.25, head_order=HEADS)
    from bertfeat.probe.selection import SelectionInput

    same = out.set_index("candidate", drop=False).assign(std_score=0.01)
    inp = SelectionInput(table=same, scores={}, ratio=0.25, top=out.candidate[0], group=[],
                         recommendable=list(out.candidate), head_order=list(HEADS),
                         alpha=0.05, level=0.95)
    assert spread_outliers(inp) == set()  # equal spreads: nothing is an outlier


# ------------------------------------------------------------------ specs round-trip
def test_pipeline_spec_round_trips_through_json(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bertfeat import BertFeaturizer, TextUnion

    pipes = [
        make_pipeline(TextUnion(bert=BertFeaturizer(layers=[3, 4], pooling="max",
                                                    cache=FeatureStore(tmp_path / "s"))),
                      LogisticRegression(C=10.0, max_iter=1000)),
        make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                      dtype=np.float32), LogisticRegression()),
        make_pipeline(BertFeaturizer(layers=2, cache=str(tmp_path)), StandardScaler(),
                      MLPClassifier(hidden_layer_sizes=(256,), early_stopping=True)),
    ]
    for pipe in pipes:
        spec = json.loads(json.dumps(pipeline_spec(pipe)))
        rebuilt = pipeline_from_spec(spec)
        assert pipeline_code(rebuilt) == pipeline_code(pipe)
        assert rebuilt.get_params().keys() == pipe.get_params().keys()
    assert pipeline_from_spec(json.loads(json.dumps(pipeline_spec(pipes[1]))))[0].dtype \
        is np.float32
    # only scikit-learn and bertfeat estimator classes are built; nothing else runs
    for bad in ({"class": "os.system", "params": {"command": "true"}},
                {"class": "bertfeat.store.text_digest", "params": {}},
                {"class": "sklearn.linear_model.LogisticRegression",
                 "params": {"C": {"call": "x"}}}):
        with pytest.raises(ValueError):
            pipeline_from_spec(bad)

    class Custom(LogisticRegression):
        pass

    Custom.__module__ = "mypackage.heads"
    with pytest.raises(TypeError, match="not a scikit-learn or bertfeat class"):
        pipeline_spec(make_pipeline(Custom()))


# ---------------------------------------------------------- a probe, saved and re-selected
@pytest.fixture(scope="module")
def probed(tiny_model, tmp_path_factory):
    texts, y = _data(48)
    store = FeatureStore(tmp_path_factory.mktemp("selection-store"))
    res = probe(texts, y, model=tiny_model, cache=store, cv=4, random_state=3,
                poolings=("mean", "max"), heads=("logreg", "svm"), refine_top=1,
                featurizer_params={"precision": "fp32"}, random_control=False,
                select="top")
    return res, texts, y, store


def test_select_changes_the_pick_without_scoring(probed, monkeypatch):
    res, texts, y, store = probed
    _forbid_work(monkeypatch)
    for rule in RULES:
        new = res.select(rule)
        expected = annotate(res.table.drop(columns=["ci_low", "ci_high", "p_value", "tied"]),
                            res.fold_scores, res.recommendation.ratio,
                            head_order=res.head_order, select=rule)[1]
        assert new.recommendation == expected
        assert new.best["candidate"] == expected.pick
        assert new.table is res.table and new.fold_scores is res.fold_scores
        assert f"selection rule: {rule}" in new.summary()
        assert new.best_code == pipeline_code(res.make_pipeline(expected.pick))
    assert res.select("top").best_estimator is res.best_estimator  # same pick: kept
    assert res.recommendation.select == "top"  # the original is not changed


def test_select_refit_reads_the_store(probed, monkeypatch, tiny_model):
    from bertfeat import BertFeaturizer

    res, texts, y, store = probed
    _forbid_work(monkeypatch)
    with pytest.raises(AssertionError, match="must not score or encode"):  # the spy works
        BertFeaturizer(model=tiny_model, cache=store, precision="fp32").fit_transform(
            ["a text the store has never seen"])
    cheap = res.select("cheapest-tied", refit=True)
    fresh = cheap.make_pipeline()
    monkeypatch.undo()
    fresh.fit(texts, y)
    np.testing.assert_array_equal(cheap.best_estimator.predict(texts), fresh.predict(texts))


def test_save_and_load_round_trip(probed, tmp_path, monkeypatch):
    res, texts, y, store = probed
    res.save(tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"probe.json", "data.json"}
    _forbid_work(monkeypatch)
    loaded = ProbeResult.load(tmp_path / "out")
    pd.testing.assert_frame_equal(loaded.table, res.table)
    pd.testing.assert_frame_equal(loaded.fold_scores, res.fold_scores)
    assert loaded.recommendation == res.recommendation
    assert loaded.best_code == res.best_code and loaded.summary() == res.summary()
    for rule in RULES:
        assert loaded.select(rule).recommendation == res.select(rule).recommendation
        assert loaded.select(rule).best_code == res.select(rule).best_code
    refitted = loaded.select("cheapest-tied").refit()
    monkeypatch.undo()
    np.testing.assert_array_equal(
        refitted.predict(texts), res.select("cheapest-tied").make_pipeline().fit(
            texts, y).predict(texts))
    with pytest.raises(ValueError, match="holds no probe.json"):
        ProbeResult.load(tmp_path)


def test_load_refuses_another_format_and_names_unsaved_candidates(probed, tmp_path):
    res = probed[0]
    path = res.save(tmp_path / "o", data=False)
    record = json.loads(path.read_text())
    key = res.best["candidate"]
    record["candidates"][key]["spec"] = None
    path.write_text(json.dumps(record))
    loaded = ProbeResult.load(tmp_path / "o")
    with pytest.raises(ValueError, match="saved without a pipeline spec"):
        loaded.make_pipeline()
    with pytest.raises(ValueError, match="does not hold the probe's texts"):
        loaded.refit()
    record["format"] = 99
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="format 99"):
        ProbeResult.load(tmp_path / "o")


# ------------------------------------------------------------------------------ the CLI
def test_cli_recommend_rewrites_the_pick_without_scoring(tiny_model, tmp_path, capsys,
                                                         monkeypatch):
    texts, y = _data(36)
    csv_file = tmp_path / "data.csv"
    pd.DataFrame({"text": texts, "label": y}).to_csv(csv_file, index=False)
    out = tmp_path / "out"
    assert main(["probe", str(csv_file), "--model", tiny_model, "--cv", "3", "--out",
                 str(out), "--precision", "fp32", "--quiet", "--n-jobs", "1", "--heads",
                 "logreg,svm", "--refine-top", "1", "--no-random-control"]) == 0
    first = capsys.readouterr().out
    assert "selection rule: top" in first and f"bertfeat recommend {out}" in first
    saved = ProbeResult.load(out)
    _forbid_work(monkeypatch)
    for command, rule in ((["recommend", str(out)], "cheapest-tied"),
                          (["probe", str(out)], "one-se")):
        assert main([*command, "--select", rule]) == 0
        printed = capsys.readouterr().out
        expected = saved.select(rule)
        assert f"selection rule: {rule}" in printed
        assert "nothing was scored again" in printed
        assert expected.best_code.splitlines()[-1] in printed
        assert f"selection rule: {rule}" in (out / "probe.txt").read_text(encoding="utf-8")
        fitted = joblib.load(out / "best_pipeline.joblib")
        assert pipeline_code(fitted) == expected.best_code
        assert ProbeResult.load(out).recommendation.select == rule
    # the same rule again: the pick is unchanged, best_pipeline.joblib is kept (no refit)
    monkeypatch.setattr(ProbeResult, "refit", lambda self: pytest.fail("refitted"))
    stamp = (out / "best_pipeline.joblib").stat().st_mtime_ns
    assert main(["recommend", str(out), "--select", "one-se"]) == 0
    assert "the same pick as before; best_pipeline.joblib kept" in capsys.readouterr().out
    assert (out / "best_pipeline.joblib").stat().st_mtime_ns == stamp
    monkeypatch.undo()
    np.testing.assert_array_equal(
        fitted.predict(texts), expected.make_pipeline().fit(texts, y).predict(texts))
    assert main(["recommend", str(tmp_path), "--select", "top"]) == 2
    assert "holds no probe.json" in capsys.readouterr().err
