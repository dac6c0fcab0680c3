"""Issue 18 in the probe: repeated folds, intervals and tests per row, the tied group and the
pick, nested / held-out estimates of the selection, the report tables; issue 14.7: the plot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score

from bertfeat import FeatureStore
from bertfeat.cvstats import cv_splits, paired_test, score_interval, split_ratio
from bertfeat.probe import probe

from .test_probe import _data

SMALL = {"poolings": ("mean", "max"), "heads": ("logreg", "svm"), "refine_top": 1,
         "featurizer_params": {"precision": "fp32"}, "control_seed": 1}


@pytest.fixture(scope="module")
def repeated(tiny_model, tmp_path_factory):
    texts, y = _data(48)
    store = FeatureStore(tmp_path_factory.mktemp("honest-store"))
    res = probe(texts, y, model=tiny_model, cache=store, cv=4, repeats=2, random_state=3,
                select="cheapest-tied", **SMALL)
    return res, texts, y, store


def test_repeats_score_every_candidate_on_the_same_repeated_splits(repeated, tiny_model):
    res, texts, y, store = repeated
    assert res.n_splits == 8 and res.design == "2 x 4-fold CV"
    folds = res.fold_scores
    assert folds.shape == (len(res.table), 8)
    assert set(folds.index) == set(res.table["candidate"])
    # the splits are cv_splits(y, 4, 2): a candidate's fold scores are its Pipeline's
    splits = cv_splits(y, 4, 2, random_state=3)
    key = res.table[res.table.family == "bert"].iloc[0]["candidate"]
    scores = cross_val_score(res.make_pipeline(key), texts, y, cv=splits)
    np.testing.assert_allclose(folds.loc[key].to_numpy(), scores, atol=1e-12)
    # repeat 1 is the plain splitter: a repeats=1 probe gets the first 4 columns
    once = probe(texts, y, model=tiny_model, cache=store, cv=4, random_state=3, **SMALL)
    assert once.design == "4-fold CV" and once.encoding["encoded"] == 0
    # (a ridge-screened row names the alpha its own folds chose: compare a row in both)
    key = next(k for k in res.table[res.table.family == "bert"]["candidate"]
               if k in once.fold_scores.index)
    np.testing.assert_allclose(once.fold_scores.loc[key].to_numpy(), folds.loc[key][:4])
    plain = StratifiedKFold(4, shuffle=True, random_state=3)
    np.testing.assert_allclose(cross_val_score(res.make_pipeline(key), texts, y, cv=plain),
                               folds.loc[key][:4], atol=1e-12)


def test_table_columns_are_the_corrected_statistics(repeated):
    res, texts, y, _ = repeated
    ratio = split_ratio(cv_splits(y, 4, 2, random_state=3))
    top = res.top["candidate"]
    for _, row in res.table.iterrows():
        scores = res.fold_scores.loc[row["candidate"]]
        iv = score_interval(scores, ratio)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((iv.low, iv.high))
        assert row["mean_score"] == pytest.approx(iv.mean)
        p = 1.0 if row["candidate"] == top else paired_test(
            res.fold_scores.loc[top], scores, ratio).p_value
        assert row["p_value"] == pytest.approx(p)
        assert row["tied"] == (p >= 0.05)
    # the group: the recommendable tied rows; the pick is one of them
    tied = res.table[res.table.tied & (res.table.family != "random")]
    assert list(res.tied["candidate"]) == list(tied["candidate"])
    assert res.best["candidate"] in set(res.tied["candidate"])
    assert res.top["mean_score"] == res.table[res.table.family != "random"]["mean_score"].max()
    # comparisons: the pick minus each baseline row, on the same folds
    for name in ("last_layer", "tfidf", "random"):
        key = res.baseline_keys[name]
        test = res.comparisons[name]
        ref = paired_test(res.fold_scores.loc[res.best["candidate"]],
                          res.fold_scores.loc[key], ratio)
        assert test.p_value == pytest.approx(ref.p_value) and test.diff == pytest.approx(
            ref.diff)
        assert res.baselines[name] == res.table.set_index("candidate").loc[key, "mean_score"]


def test_summary_states_group_pick_rule_and_significance(repeated):
    res = repeated[0]
    text = res.summary()
    assert "95% interval" in text and "p vs top" in text and "2 x 4-fold CV" in text
    assert f"top mean: {_describe(res.top)}" in text
    assert f"tied with it (corrected paired t-test, p >= 0.05): {len(res.tied)} of" in text
    assert f"best: {_describe(res.best)}" in text
    assert ("selection rule: cheapest-tied -- the cheapest of the tied group: the cheapest "
            "to run") in text
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("best vs"))
    for name, label in (("tfidf", "TF-IDF"), ("random", "random weights")):
        test = res.comparisons[name]
        verdict = "not significant" if test.p_value >= 0.05 else "significant"
        if res.baseline_keys[name] != res.best["candidate"]:
            assert f"{label}: {100 * test.diff:+.1f} points" in line
            assert verdict in line
    pick_line = next(ln for ln in text.splitlines() if ln[4:5] == "*")
    assert int(pick_line[:4]) == res.best["rank"]


def _describe(row):
    from bertfeat.probe import describe

    return describe(row)


def test_select_top_and_alpha(repeated, tiny_model):
    res, texts, y, store = repeated
    top = probe(texts, y, model=tiny_model, cache=store, cv=4, repeats=2, random_state=3,
                select="top", alpha=0.5, **SMALL)
    assert top.best["candidate"] == top.top["candidate"] == res.top["candidate"]
    assert f"best: {_describe(top.best)}" in top.summary()
    assert "(rule top)" in top.summary() and "selection rule: top -- the highest mean" in \
        top.summary()
    # a looser level calls more rows different: the group can only shrink
    assert set(top.tied["candidate"]) <= set(res.tied["candidate"])
    assert (top.table["tied"] == (top.table["p_value"] >= 0.5)).all()


def test_report_markdown_and_latex(repeated):
    res = repeated[0]
    md = res.report("markdown", rows=3)
    assert md.startswith("| rank | candidate | accuracy | 95% CI | p vs top | tied |")
    assert f"**{_describe(res.best)}" in md and "(top" in md
    assert "corrected resampled t (Nadeau & Bengio 2003" in md and "2 x 4-fold CV" in md
    body = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| rank")]
    ranks = [int(ln.split("|")[1]) for ln in body]
    expected = sorted({1, 2, 3, int(res.best["rank"])} | {
        int(res.table.set_index("candidate").loc[k, "rank"])
        for k in res.baseline_keys.values()})
    assert ranks == expected
    tex = res.report("latex")
    assert "\\begin{tabular}" in tex and "\\textbf{" in tex and "\\caption{" in tex
    with pytest.raises(ValueError, match="fmt must be"):
        res.report("html")


def test_plot_shows_intervals_heads_union_and_last_layer(repeated, tiny_model, tmp_path):
    from matplotlib.collections import PolyCollection

    res, texts, y, store = repeated
    if res.top["family"] not in ("bert", "union"):
        # TF-IDF alone wins on these words: drop it (not the union) so that the top mean
        # is a marked BERT or union row (no encoding: the store holds every vector)
        res = probe(texts, y, model=tiny_model, cache=store, cv=4, repeats=2,
                    random_state=3, select="cheapest-tied", tfidf=False, union=True,
                    **SMALL)
    assert res.top["family"] in ("bert", "union")
    fig = res.plot(tmp_path / "p.png")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("95% interval of the mean, 2 x 4-fold CV" in label for label in labels)
    assert "last layer (L3)" in labels
    assert any(label.startswith("TF-IDF ⊕") for label in labels)  # the union candidates
    assert any(label.startswith("svm head") for label in labels)
    top = [label for label in labels if label.startswith("top mean")]
    assert len(top) == 1 and _describe(res.top) in top[0]  # named with its own head
    assert any(_describe(res.best) in label for label in labels) or \
        res.best["family"] == "tfidf"
    # the bands are the intervals (not +- std): one band per pooling line
    screen = res.table[(res.table.stage == "screen") & res.table.layer_index.notna()]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == screen["pooling"].nunique()
    for band, pooling in zip(bands, [p for p in ("mean", "max") if p in set(screen.pooling)]):
        rows = screen[screen.pooling == pooling]
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(rows["ci_low"].min())
        assert ys.max() == pytest.approx(rows["ci_high"].max())
    assert any(line.get_xdata()[0] == 3 for line in ax.get_lines()
               if line.get_label() == "last layer (L3)")


def test_nested_runs_the_selection_inside_outer_folds_with_one_encoder_pass(
        tiny_model, tmp_path, encode_spy, monkeypatch):
    from bertfeat.probe import scoring

    texts, y = _data(36)
    texts = texts + texts[:4]  # duplicates: still encoded once
    y = np.concatenate([y, y[:4]])
    seen: list = []
    real = scoring.run_jobs

    def spy(jobs, *args):  # every cross-validation, closed-form or fitted, goes through it
        for job in jobs:
            rows = job.candidate.rows
            seen.append(job.splits if rows is None else
                        [(rows[tr], rows[te]) for tr, te in job.splits])
        return real(jobs, *args)

    monkeypatch.setattr(scoring, "run_jobs", spy)
    store = FeatureStore(tmp_path / "s")
    res = probe(texts, y, model=tiny_model, cache=store, cv=3, nested=True, combos=False,
                poolings=("mean",), heads=("logreg",), random_state=0, control_seed=1,
                featurizer_params={"precision": "fp32"})
    # one encoder pass per model (and its random-weights copy), nested or not
    assert sum(encode_spy) == 2 * 36
    counters = sorted(m["encoded"] for m in store.stats()["models"].values())
    assert counters == [36, 36] and res.encoding["encoded"] == 36
    nested = res.nested
    assert len(nested["scores"]) == 3 and len(nested["picks"]) == 3
    assert res.nested_score == pytest.approx(np.mean(nested["scores"]))
    assert nested["ci_low"] < res.nested_score < nested["ci_high"] or \
        nested["ci_low"] == nested["ci_high"]
    # no leakage: every inner cross-validation stays inside one outer training set, and
    # each outer score is one fit on that training set, scored on its test rows
    outer = nested["splits"]
    assert np.array_equal(np.sort(np.concatenate([te for _, te in outer])), np.arange(40))
    main = {tuple(te) for _, te in cv_splits(y, 3, 1, random_state=0)}
    inner_studies = outer_scores = 0
    for splits in seen:
        if {tuple(te) for _, te in splits} <= main:
            continue
        if len(splits) == 1:  # an outer score: the pick fitted on an outer training set
            assert any(np.array_equal(splits[0][0], tr) and np.array_equal(splits[0][1], te)
                       for tr, te in outer)
            outer_scores += 1
            continue
        inner_studies += 1
        rows = set(np.concatenate([np.r_[tr, te] for tr, te in splits]).tolist())
        homes = [i for i, (tr, te) in enumerate(outer) if rows == set(tr.tolist())]
        assert len(homes) == 1  # the inner folds cover one outer training set, nothing else
    assert outer_scores == 3 and inner_studies > 3
    assert "nested CV estimate of the whole selection (3 outer folds" in res.summary()
    assert "Nested CV estimate of the selection" in res.report()


def test_held_out_split(tiny_model, tmp_path):
    texts, y = _data(40)
    res = probe(texts, y, model=tiny_model, cache=tmp_path / "s", cv=3, test_size=0.25,
                combos=False, poolings=("mean",), heads=("logreg",), random_control=False,
                featurizer_params={"precision": "fp32"})
    assert res.nested is None and res.nested_score is None
    hold = res.holdout
    assert hold["n_test"] == 10 and hold["n_train"] == 30
    train, test = hold["splits"][0]
    assert not set(train) & set(test) and sorted(y[test]) == sorted(["neg"] * 5 + ["pos"] * 5)
    assert 0 <= hold["score"] <= 1 and len(hold["picks"]) == 1
    assert "held-out estimate (10 rows never seen by the selection)" in res.summary()


@pytest.mark.parametrize("kwargs, message", [
    ({"cv": StratifiedKFold(3), "repeats": 2}, "repeats=2 needs cv as an int"),
    ({"cv": [(np.arange(10), np.arange(10, 20))], "nested": True}, "nested=True needs cv"),
    ({"repeats": 0}, "repeats"),
    ({"test_size": 1.5}, "test_size"),
    ({"alpha": 0.0}, "alpha"),
    ({"select": "best"}, "select"),
])
def test_bad_statistics_options(tiny_model, kwargs, message):
    texts, y = _data(30)
    with pytest.raises(ValueError, match=message):
        probe(texts, y, model=tiny_model, **kwargs)


def test_fold_scores_frame_is_numeric(repeated):
    folds = repeated[0].fold_scores
    assert isinstance(folds, pd.DataFrame) and folds.notna().all().all()
    assert list(folds.columns) == [f"split_{i}" for i in range(8)]
