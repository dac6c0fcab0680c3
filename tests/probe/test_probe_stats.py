"""The probe's statistics on a hand-made table: columns, the tied group, the stated pick."""

import numpy as np
import pandas as pd
import pytest

from bertfeat.cvstats import paired_test, score_interval
from bertfeat.probe.stats import annotate, candidate_cost, compare, layer_depth

HEADS = ("logreg", "svm", "mlp")


def _table(rows, rng, J=10, noise=0.01):
    """A probe-like table and fold scores: candidates share the fold noise (same folds)."""
    shared = rng.normal(0, 0.02, J)
    records, folds = [], {}
    for family, layer, pooling, head, n_features, stage, mean in rows:
        key = f"{family}:{layer}:{pooling}:{head}"
        folds[key] = mean + shared + rng.normal(0, noise, J)
        records.append({"family": family, "layer": layer, "pooling": pooling, "head": head,
                        "mean_score": folds[key].mean(), "std_score": folds[key].std(),
                        "n_features": n_features, "stage": stage, "candidate": key})
    table = pd.DataFrame(records).sort_values("mean_score", ascending=False)
    return table.reset_index(drop=True), pd.DataFrame.from_dict(folds, orient="index")


ROWS = [  # family, layer, pooling, head, n_features, stage, true mean
    ("union", "L6", "mean", "logreg C=10", pd.NA, "union", 0.870),
    ("bert", "L6", "mean", "svm", 384, "refine", 0.866),
    ("bert", "L6", "mean", "logreg", 384, "screen", 0.865),
    ("bert", "L5", "mean", "mlp", 384, "refine", 0.864),
    ("bert", "L3-6 concat", "max", "logreg", 1536, "screen", 0.862),
    ("bert", "L2", "mean", "logreg", 384, "screen", 0.70),
    ("tfidf", "-", "-", "logreg C=10", pd.NA, "baseline", 0.72),
    ("random", "L6", "mean", "logreg", 384, "control", 0.64),
]


def test_layer_depth_and_cost_order():
    assert [layer_depth(v) for v in ("L4", "L3-6 concat", "L1+3 sum", "L6 chunked", "-",
                                     "L0")] == [4, 6, 3, 6, 0, 0]

    def cost(family, layer, head, n=384, stage="screen"):
        return candidate_cost(pd.Series({"family": family, "layer": layer, "head": head,
                                         "n_features": n, "stage": stage}), HEADS)

    ordered = [cost("tfidf", "-", "logreg C=100", pd.NA, "baseline"),
               cost("bert", "L2", "mlp"),          # fewer encoder layers beat the head
               cost("bert", "L6", "logreg", 1536),
               cost("bert", "L6", "svm", 384),     # the head before the width
               cost("bert", "L6", "mlp", 384),
               cost("bert", "L6 chunked", "logreg", 384, "chunk"),
               cost("union", "L6", "logreg C=1", pd.NA, "union")]
    assert ordered[:5] == sorted(ordered[:5])
    # chunking (several windows per text) and the union cost more than plain L6 + logreg
    assert cost("bert", "L6", "logreg") < ordered[5] and cost("bert", "L6", "logreg") < ordered[6]
    # a custom head name not in the list ranks after the listed ones
    assert cost("bert", "L6", "forest") > cost("bert", "L6", "mlp")


def test_columns_match_the_formulas():
    table, folds = _table(ROWS, np.random.default_rng(0))
    out, rec = annotate(table, folds, 0.25, head_order=HEADS)
    assert list(out.columns[list(out.columns).index("std_score"):][:5]) == [
        "std_score", "ci_low", "ci_high", "p_value", "tied"]
    assert rec.top == out.loc[out.family != "random", "candidate"].iloc[0]
    for _, row in out.iterrows():
        iv = score_interval(folds.loc[row["candidate"]], 0.25)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((iv.low, iv.high))
        expected = 1.0 if row["candidate"] == rec.top else paired_test(
            folds.loc[rec.top], folds.loc[row["candidate"]], 0.25).p_value
        assert row["p_value"] == pytest.approx(expected)
        assert row["tied"] == (row["p_value"] >= 0.05)
    assert compare(folds, rec.top, out["candidate"].iloc[-1], 0.25).diff > 0.1
    assert rec.n_folds == 10 and rec.ratio == 0.25
    assert len(table.columns) + 4 == len(out.columns)  # the input is not modified


def test_group_and_cheapest_pick():
    table, folds = _table(ROWS, np.random.default_rng(0))
    out, rec = annotate(table, folds, 0.25, head_order=HEADS, select="cheapest-tied")
    by_key = out.set_index("candidate")
    group = set(rec.group)
    # the five near-equal rows are tied; L2, TF-IDF and the random control are far below
    assert group == {k for k in out.candidate if by_key.loc[k, "family"] in ("bert", "union")
                     and by_key.loc[k, "layer"] != "L2"}
    assert by_key.loc["random:L6:mean:logreg", "tied"] == False  # noqa: E712
    # L5 + mlp needs one encoder layer fewer than every L6 candidate
    assert rec.pick == "bert:L5:mean:mlp"
    assert rec.rule.startswith("the cheapest of the tied group: the cheapest to run")
    assert rec.select == "cheapest-tied"
    # the rule's older name still works
    assert annotate(table, folds, 0.25, head_order=HEADS, select="cheapest")[1] == rec
    top, _ = annotate(table, folds, 0.25, head_order=HEADS, select="top")
    assert top.equals(out)
    assert annotate(table, folds, 0.25, head_order=HEADS, select="top")[1].pick == rec.top


def test_tfidf_in_the_group_is_picked():
    rows = [("bert", "L6", "mean", "logreg", 384, "screen", 0.80),
            ("tfidf", "-", "-", "logreg C=10", pd.NA, "baseline", 0.799)]
    table, folds = _table(rows, np.random.default_rng(1))
    _, rec = annotate(table, folds, 0.25, head_order=HEADS, select="cheapest-tied")
    assert set(rec.group) == {"bert:L6:mean:logreg", "tfidf:-:-:logreg C=10"}
    assert rec.pick == "tfidf:-:-:logreg C=10"


def test_never_picks_below_a_cheaper_candidate():
    """A noisy candidate may be 'tied' with the top and yet score below TF-IDF, which is
    cheaper: it is passed over."""
    rng = np.random.default_rng(2)
    J = 10
    base = rng.normal(0, 0.02, J)
    folds = pd.DataFrame.from_dict({
        "union:L6:mean:logreg C=10": 0.90 + base + rng.normal(0, 0.002, J),
        "bert:L1:mean:logreg": 0.83 + base + rng.normal(0, 0.15, J),  # wild, tied
        "tfidf:-:-:logreg C=10": 0.86 + base + rng.normal(0, 0.002, J),
    }, orient="index")
    table = pd.DataFrame({
        "family": ["union", "tfidf", "bert"], "layer": ["L6", "-", "L1"],
        "pooling": ["mean", "-", "mean"], "head": ["logreg C=10", "logreg C=10", "logreg"],
        "n_features": [pd.NA, pd.NA, 384], "stage": ["union", "baseline", "screen"],
        "candidate": ["union:L6:mean:logreg C=10", "tfidf:-:-:logreg C=10",
                      "bert:L1:mean:logreg"]})
    table["mean_score"] = [folds.loc[k].mean() for k in table.candidate]
    table["std_score"] = [folds.loc[k].std() for k in table.candidate]
    table = table.sort_values("mean_score", ascending=False).reset_index(drop=True)
    _, rec = annotate(table, folds, 0.25, head_order=HEADS, select="cheapest-tied")
    assert "bert:L1:mean:logreg" in rec.group
    assert "tfidf:-:-:logreg C=10" not in rec.group
    assert rec.pick == "union:L6:mean:logreg C=10"


def test_errors():
    table, folds = _table(ROWS, np.random.default_rng(0))
    with pytest.raises(ValueError, match="select must be"):
        annotate(table, folds, 0.25, head_order=HEADS, select="best")
    with pytest.raises(ValueError, match="no fold scores for candidate 'bert:L2"):
        annotate(table, folds.drop(index="bert:L2:mean:logreg"), 0.25, head_order=HEADS)
    _, rec = annotate(table, folds, 0.25, head_order=HEADS,
                      recommendable=["bert:L2:mean:logreg", "tfidf:-:-:logreg C=10"])
    assert rec.top == "tfidf:-:-:logreg C=10"  # only the listed keys compete
    only_random = table[table.family == "random"]
    with pytest.raises(ValueError, match="no BERT or TF-IDF"):
        annotate(only_random, folds, 0.25, head_order=HEADS)
