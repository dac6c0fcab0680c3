"""benchmarks/bench_selection.py's own logic: the fixed splits, the rules' picks read from a
saved record, and the table's summary rows (mean, worst-case loss, the bar)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bertfeat.probe.selection import RULES
from bertfeat.probe.stats import annotate

from .test_probe_stats import HEADS, ROWS, _table

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bs(request):
    sys.path.insert(0, str(BENCH))
    request.addfinalizer(lambda: sys.path.remove(str(BENCH)))
    import bench_selection

    return bench_selection


def _record(name, accuracy, tfidf, default, seed=0):
    table, folds = _table(ROWS, np.random.default_rng(seed))
    out, _ = annotate(table, folds, 0.25, head_order=HEADS)
    out = out[out.family != "random"]
    return {"set": name, "n_probe": 40, "n_fit": 100, "n_test": 50, "ratio": 0.25,
            "table": json.loads(out.to_json(orient="records")),
            "folds": {k: list(map(float, folds.loc[k])) for k in out.candidate},
            "test": {k: {"accuracy": accuracy(k), "fit_s": 1.0} for k in out.candidate},
            "baselines": {"tfidf_lr": {"accuracy": tfidf, "fit_s": 0.5},
                          "default_lr": {"accuracy": default, "fit_s": 0.7}}}


def test_picks_follow_the_library_rules(bs):
    rec = _record("a", lambda k: 0.8, 0.7, 0.7)
    chosen = bs.picks(rec)
    assert set(chosen) == set(RULES)
    table, folds = _table(ROWS, np.random.default_rng(0))
    for rule, key in chosen.items():
        assert key == annotate(table[table.family != "random"], folds, 0.25,
                               head_order=HEADS, select=rule)[1].pick


def test_report_mean_worst_loss_and_the_bar(bs):
    # the top mean scores 0.90 on test; everything else 0.85
    records = []
    for name, default, seed in (("a", 0.86, 1), ("b", 0.80, 2)):
        top = bs.picks(_record(name, lambda k: 0.0, 0.8, default, seed))["top"]
        records.append(_record(name, lambda k, top=top: 0.90 if k == top else 0.85, 0.80,
                               default, seed))
        assert bs.picks(records[-1])["cheapest-tied"] != top
    text = bs.report(records)
    rows = {cells[0]: cells for cells in
            ([c.strip() for c in line.strip().strip("|").split("|")]
             for line in text.splitlines() if line.startswith("|"))}
    rules = list(RULES)

    def cell(row, rule):
        return rows[row][3 + rules.index(rule)]

    assert cell("**mean test accuracy**", "top") == "**0.9000**"
    assert cell("**mean test accuracy**", "cheapest-tied") == "**0.8500**"
    assert cell("worst-case loss to the best rule on a set (points)", "cheapest-tied") == "5.0"
    assert cell("worst-case loss to the best rule on a set (points)", "top") == "0.0"
    below = "sets below max(TF-IDF + LR, default embedding + LR)"
    assert cell(below, "cheapest-tied") == "1"  # 0.85 < 0.86 on set a
    assert cell(below, "top") == "0"
    bar = text.splitlines()[-1]
    assert "top" in bar.split(":")[1] and "cheapest-tied" not in bar


def test_fixed_stratified_split_and_probe_rows(bs):
    train, test = bs.load_set("sms_spam")
    again = bs.load_set("sms_spam")
    assert train.equals(again[0]) and test.equals(again[1])
    assert len(test) == pytest.approx(0.2 * (len(train) + len(test)), abs=1)
    assert abs(train.label.value_counts(normalize=True)
               - test.label.value_counts(normalize=True)).max() < 0.01
    sub = bs.probe_rows(train, 300)
    assert len(sub) == 300 and set(sub.text) <= set(train.text)
