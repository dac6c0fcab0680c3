"""The probe's fine-tuning family (opt-in): same folds, scored like every candidate."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score

from bertfeat import BertClassifier
from bertfeat.probe import probe
from bertfeat.probe.families import FAMILIES
from bertfeat.probe.report import finetune_line as summary_line

from ..estimators.test_finetune import _one_thread, _toy  # noqa: F401 (an autouse fixture)

#: fast fine-tuning for a tiny random encoder
TINY = {"epochs": 3, "learning_rate": 1e-2, "batch_size": 8}
LEAN = dict(layers=[-1], combos=False, poolings="mean", heads=("logreg",),
            random_control=False, tfidf=False, cv=2, random_state=0)


def test_finetune_row_is_scored_on_the_same_folds(tiny_model, tmp_path):
    assert "finetune" in FAMILIES
    texts, y = _toy(32)
    res = probe(texts, y, model=tiny_model, cache=tmp_path / "s", finetune=TINY, refit=False,
                featurizer_params={"precision": "fp32"}, n_jobs=2, **LEAN)
    row = res.table[res.table["family"] == "finetune"].iloc[0]
    # fine-tuning seeds torch's global generator: its folds never share the process
    assert res._candidates[row["candidate"]].threads is False
    assert (row["layer"], row["pooling"], row["head"], row["stage"]) == (
        "L1-3 tuned", "mean", "BertClassifier", "finetune")
    assert row["fit_time"] > 0 and "finetune" in res.timings
    pipe = res.make_pipeline(row["candidate"])
    clf = pipe[-1]
    assert isinstance(clf, BertClassifier) and clf.epochs == 3 and clf.precision == "fp32"
    folds = StratifiedKFold(2, shuffle=True, random_state=0)
    expected = cross_val_score(pipe, np.asarray(texts, dtype=object), y, cv=folds)
    assert row["mean_score"] == pytest.approx(expected.mean(), abs=1e-12)
    line = summary_line(res)
    assert re.match(r"fine-tuning: [+-][0-9.]+ points (over|below) the best frozen pipeline "
                    r"at [0-9]+× the fit time", line), line
    assert "× the fit time" in line and line in res.summary()


def test_finetune_is_off_by_default(tiny_model, tmp_path):
    texts, y = _toy(24)
    res = probe(texts, y, model=tiny_model, cache=tmp_path / "s", refit=False, **LEAN)
    assert "finetune" not in set(res.table["family"])
    assert summary_line(res) is None and "fine-tuning:" not in res.summary()


def test_cli_finetune_flag_reaches_the_probe(tiny_model, tmp_path, monkeypatch, capsys):
    import bertfeat.probe as probe_pkg
    from bertfeat.cli import main

    seen = []
    real = probe_pkg.probe

    def spy(texts, y, **kwargs):
        seen.append(kwargs["finetune"])
        return real(texts, y, **{**kwargs, "finetune": {**TINY, "max_steps": 2}})

    monkeypatch.setattr(probe_pkg, "probe", spy)
    texts, y = _toy(24)
    pd.DataFrame({"text": texts, "label": y}).to_csv(tmp_path / "d.csv", index=False)
    args = ["probe", str(tmp_path / "d.csv"), "--cv", "2", "--layers", "-1", "--heads",
            "logreg", "--poolings", "mean", "--no-random-control", "--no-tfidf", "--model",
            tiny_model, "--out", str(tmp_path / "o"), "--quiet", "--no-save-model",
            "--n-jobs", "1", "--cache-dir", str(tmp_path / "s")]
    assert main(args) == 0 and seen == [False]
    assert main(args + ["--finetune"]) == 0 and seen == [False, True]
    printed = capsys.readouterr().out
    assert "fine-tuning: " in printed and "× the fit time" in printed
    assert "finetune" in set(pd.read_csv(tmp_path / "o" / "probe.csv")["family"])
