"""Issue 5 (``bertfeat probe``, ``bertfeat embed``) and issue 3 (``bertfeat cache``): the CLI.

Runs :func:`bertfeat.cli.main` in-process on small CSV files with the tiny test encoder
(``--model DIR``); the shipped-demo path runs the bundled default model on a small
stratified subset.
"""

from __future__ import annotations

import json
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest

from bertfeat import BertFeaturizer, FeatureStore
from bertfeat.cli import main
from bertfeat.store import text_digest

from ..conftest import WORDS, make_tiny_model, needs_default_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A tiny encoder whose weights differ from the probe's random-weights control (seed 0:
    the session-wide tiny model *is* that control, weight for weight)."""
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert-seed5"), seed=5))


@pytest.fixture
def csv_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(36):
        words = list(rng.choice(WORDS, 5))
        label = ["spam", "ham", "other"][i % 3]
        if label == "spam":
            words[0] = "free"
        rows.append({"id": i, "message": " ".join(words), "kind": label})
    path = tmp_path / "data.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _probe_args(csv_file, tiny_model, out, *extra, n_jobs: str | None = "1"):
    """CLI arguments of a small probe; folds scored in this process unless n_jobs says."""
    jobs = ["--n-jobs", n_jobs] if n_jobs is not None else []
    return ["probe", str(csv_file), "--text-col", "message", "--label-col", "kind",
            "--model", tiny_model, "--cv", "3", "--out", str(out), "--precision", "fp32",
            "--quiet", *jobs, *extra]


def test_probe_writes_table_plot_and_code(csv_file, tiny_model, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(_probe_args(csv_file, tiny_model, out, "--heads", "logreg,svm",
                            "--refine-top", "2")) == 0
    printed = capsys.readouterr().out
    assert "accuracy  95% interval" in printed and "p vs top" in printed
    assert "best:" in printed and "selection rule: top" in printed and "tied with it" in printed
    assert "Build the best pipeline" in printed and "pipe = make_pipeline(" in printed
    assert "random-weights control" in printed and "TF-IDF" in printed
    assert "all 36 rows" in printed and "3 distinct labels" in printed
    table = pd.read_csv(out / "probe.csv")
    assert {"family", "layer", "pooling", "head", "mean_score", "std_score",
            "fit_time"} <= set(table.columns)
    assert table["mean_score"].is_monotonic_decreasing
    assert set(table["family"]) == {"bert", "random", "tfidf", "union"}
    assert "TF-IDF ⊕ best layer" in printed and "no text is longer than" in printed
    refine = table[table.stage == "refine"]
    # after the ridge screen: logreg on the 2 x 2 best sets (and the last-layer baseline),
    # svm on the 2 best of those
    assert len(refine[refine["head"] == "svm"]) == 2
    assert len(refine[refine["head"] == "logreg"]) in (4, 5)
    assert (out / "probe.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "probe.txt").read_text(encoding="utf-8").strip() in printed
    # the printed code runs, and the saved pipeline was fitted on every row
    code = printed.split("Build the best pipeline (unfitted) with:")[1].split("wrote")[0]
    namespace: dict = {}
    exec("\n".join(line.strip() for line in code.strip().splitlines()), namespace)
    assert type(namespace["pipe"]).__name__ == "Pipeline"
    fitted = joblib.load(out / "best_pipeline.joblib")
    data = pd.read_csv(csv_file)
    predictions = fitted.predict(data["message"].tolist())
    assert set(predictions) <= {"spam", "ham", "other"}
    # the encoder ran once per text: the store counted 36 texts for each model
    store = FeatureStore()
    assert sorted(m["encoded"] for m in store.stats()["models"].values()) == [36, 36]


def test_probe_limit_and_options(csv_file, tiny_model, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(_probe_args(csv_file, tiny_model, out, "--limit", "24", "--heads", "logreg",
                            "--poolings", "mean", "--layers=-1,-2", "--no-random-control",
                            "--no-tfidf", "--no-save-model")) == 0
    printed = capsys.readouterr().out
    assert "stratified subset of 24 of 36 rows" in printed
    table = pd.read_csv(out / "probe.csv")
    assert set(table["family"]) == {"bert"} and set(table["pooling"]) == {"mean"}
    assert set(table["layer"]) == {"L2", "L3", "L1-3 concat", "L1-3 avg"}
    assert not (out / "best_pipeline.joblib").exists()
    assert FeatureStore().stats()["entries"] == 24


@pytest.mark.parametrize("argv, message", [
    (["--label-col", "nope"], "no label column 'nope'"),
    (["--text-col", "nope"], "no text column 'nope'"),
    (["--poolings", "pooler"], "last layer only"),
])
def test_probe_errors(csv_file, tiny_model, tmp_path, capsys, argv, message):
    args = _probe_args(csv_file, tiny_model, tmp_path / "o") + argv
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_probe_missing_file(tmp_path, capsys):
    assert main(["probe", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


@needs_default_model
@pytest.mark.filterwarnings("ignore:The number of unique classes:UserWarning")
def test_probe_demo_on_shipped_data(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["probe", "--limit", "160", "--cv", "2", "--heads", "logreg",
                 "--poolings", "mean", "--no-random-control", "--out", str(out),
                 "--quiet", "--no-save-model", "--n-jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "shipped dataset 'banking77'" in printed
    assert "stratified subset of 160 of 10,003 rows" in printed
    # on 160 rows of 77 classes most candidates are tied, and the cheapest tied one may
    # be TF-IDF (no encoder at all): the printed pipeline is whichever was picked
    code = printed.split("Build the best pipeline (unfitted) with:")[1]
    assert "pipe = make_pipeline(BertFeaturizer(" in code or \
        "pipe = make_pipeline(TfidfVectorizer(" in code
    table = pd.read_csv(out / "probe.csv")
    assert set(table.loc[table.family == "bert", "layer"]) >= {f"L{i}" for i in range(7)}


def test_embed_parquet_and_npy(csv_file, tiny_model, tmp_path, capsys):
    parquet = tmp_path / "f.parquet"
    assert main(["embed", str(csv_file), "--text-col", "message", "-o", str(parquet),
                 "--model", tiny_model, "--layers=-1,-2", "--pooling", "max",
                 "--precision", "fp32", "--keep-cols", "id,kind"]) == 0
    assert "encoder ran on 36 texts" in capsys.readouterr().out
    frame = pd.read_parquet(parquet)
    texts = pd.read_csv(csv_file)["message"]
    expected = BertFeaturizer(model=tiny_model, layers=[-1, -2], pooling="max",
                              precision="fp32").fit(texts)
    names = list(expected.get_feature_names_out())
    assert list(frame.columns) == ["id", "kind", *names]
    assert names[0] == "L3_max_0" and len(names) == 64
    np.testing.assert_array_equal(frame[names].to_numpy(), expected.transform(texts))
    assert frame["id"].tolist() == list(range(36))

    npy = tmp_path / "f.npy"
    assert main(["embed", str(csv_file), "--text-col", "message", "-o", str(npy),
                 "--model", tiny_model, "--layers", "all", "--pooling", "mean",
                 "--precision", "fp32", "--limit", "10"]) == 0
    # layers 0..3 were stored by the first call (it ran up to layer 3): no new encoding
    assert "encoder ran on 0 texts" in capsys.readouterr().out
    X = np.load(npy)
    assert X.shape == (10, 4 * 32) and X.dtype == np.float32
    np.testing.assert_array_equal(
        X, BertFeaturizer(model=tiny_model, layers="all", precision="fp32")
        .fit(texts[:10]).transform(texts[:10]))


def test_embed_rejects_unknown_extension(csv_file, tiny_model, tmp_path, capsys):
    assert main(["embed", str(csv_file), "--text-col", "message", "-o",
                 str(tmp_path / "f.txt"), "--model", tiny_model]) == 2
    assert ".parquet or .npy" in capsys.readouterr().err


def test_cache_info_and_clear(csv_file, tiny_model, tmp_path, capsys, monkeypatch):
    env_dir = tmp_path / "env-store"
    monkeypatch.setenv("BERTFEAT_CACHE_DIR", str(env_dir))
    assert main(["embed", str(csv_file), "--text-col", "message", "-o",
                 str(tmp_path / "a.npy"), "--model", tiny_model, "--precision", "fp32"]) == 0
    capsys.readouterr()
    store = FeatureStore(env_dir)
    (fingerprint,) = store.stats()["models"]
    digests = [text_digest(t) for t in pd.read_csv(csv_file)["message"]]
    assert store.read(fingerprint, digests, [3], 32).found.all()  # 36 hits counted

    assert main(["cache", "info"]) == 0
    info = capsys.readouterr().out
    assert str(env_dir) in info and "BERTFEAT_CACHE_DIR" in info
    assert "texts stored: 36" in info and "limit" in info
    row = next(line for line in info.splitlines() if "fp32" in line)
    assert row.split()[-4:] == ["36", "36", "36", "36"]  # texts, hits, misses, encoded

    assert main(["cache", "info", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["directory"] == str(env_dir) and stats["entries"] == 36
    (model_stats,) = stats["models"].values()
    assert model_stats["encoded"] == 36 and model_stats["model"]["model"] == tiny_model

    # --cache-dir wins over the environment, before or after the subcommand
    other = tmp_path / "other"
    assert main(["--cache-dir", str(other), "cache", "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0
    assert main(["cache", "info", "--json", "--cache-dir", str(other)]) == 0
    assert json.loads(capsys.readouterr().out)["directory"] == str(other)

    assert main(["cache", "clear", "--model", "no-such-model"]) == 0
    assert "no entries" in capsys.readouterr().out
    assert FeatureStore(env_dir).stats()["entries"] == 36
    assert main(["cache", "clear", "--model", tiny_model]) == 0
    assert "removed" in capsys.readouterr().out
    assert FeatureStore(env_dir).stats()["entries"] == 0

    (env_dir / "random-init" / "bert-x").mkdir(parents=True)
    assert main(["cache", "clear"]) == 0
    assert "cleared the feature store" in capsys.readouterr().out
    assert not (env_dir / "random-init").exists()


def test_console_entry_point_help():
    done = subprocess.run([sys.executable, "-m", "bertfeat", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0
    assert "probe" in done.stdout and "embed" in done.stdout and "cache" in done.stdout
    done = subprocess.run([sys.executable, "-m", "bertfeat"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2


def test_probe_numeric_target(tiny_model, tmp_path, capsys):
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, 4)) for _ in range(40)]
    frame = pd.DataFrame({"text": texts, "score": [len(t) / 7.0 for t in texts]})
    frame.to_csv(tmp_path / "reg.csv", index=False)
    out = tmp_path / "o"
    assert main(["probe", str(tmp_path / "reg.csv"), "--label-col", "score", "--model",
                 tiny_model, "--cv", "3", "--heads", "ridge", "--poolings", "mean",
                 "--no-random-control", "--limit", "30", "--out", str(out), "--quiet",
                 "--no-save-model", "--n-jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "random subset of 30 of 40 rows" in printed and "numeric target" in printed
    assert "r2  95% interval" in printed
    table = pd.read_csv(out / "probe.csv")
    # RidgeCV where it is fitted; the closed-form screen's rows name their alpha
    assert {h.split(" α=")[0] for h in table["head"]} == {"ridge"}


@pytest.mark.parametrize("n_jobs, want", [(None, -1), ("1", 1), ("2", 2)])
def test_probe_scores_folds_on_every_core_by_default(csv_file, tiny_model, tmp_path,
                                                     monkeypatch, n_jobs, want):
    import bertfeat.probe

    seen = []
    real = bertfeat.probe.probe
    # record what the CLI asks for, then score in this process (no worker pool in tests)
    monkeypatch.setattr(bertfeat.probe, "probe",
                        lambda *a, **k: seen.append(k["n_jobs"]) or real(*a, **{**k, "n_jobs": 1}))
    out = tmp_path / "results"
    assert main(_probe_args(csv_file, tiny_model, out, "--heads", "logreg", "--no-tfidf",
                            "--no-random-control", "--refine-top", "0", n_jobs=n_jobs)) == 0
    assert seen == [want]


def test_probe_statistics_outputs_and_options(csv_file, tiny_model, tmp_path, capsys,
                                              monkeypatch):
    import bertfeat.probe

    out = tmp_path / "results"
    assert main(_probe_args(csv_file, tiny_model, out, "--heads", "logreg", "--poolings",
                            "mean", "--no-random-control", "--repeats", "2",
                            "--no-save-model")) == 0
    printed = capsys.readouterr().out
    assert "2 x 3-fold cross-validation" in printed and "(2 x 3-fold CV)" in printed
    table = pd.read_csv(out / "probe.csv")
    assert {"ci_low", "ci_high", "p_value", "tied"} <= set(table.columns)
    assert (table["ci_low"] <= table["mean_score"]).all()
    folds = pd.read_csv(out / "folds.csv", index_col="candidate")
    assert folds.shape == (len(table), 6)
    np.testing.assert_allclose(folds.loc[table["candidate"]].mean(axis=1),
                               table["mean_score"])
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.startswith("| rank | candidate | accuracy | 95% CI |") and "**" in report
    assert f"{out / 'folds.csv'}" in printed and f"{out / 'report.md'}" in printed
    # the other options reach probe() as given
    seen = []
    real = bertfeat.probe.probe
    monkeypatch.setattr(bertfeat.probe, "probe", lambda *a, **k: seen.append(k) or real(
        *a, **{**k, "nested": False, "test_size": None}))
    assert main(_probe_args(csv_file, tiny_model, tmp_path / "o2", "--heads", "logreg",
                            "--poolings", "mean", "--no-random-control", "--no-tfidf",
                            "--no-save-model", "--nested", "--test-size", "0.2",
                            "--alpha", "0.1", "--select", "top")) == 0
    assert {k: seen[0][k] for k in ("repeats", "nested", "test_size", "alpha", "select")} == {
        "repeats": 1, "nested": True, "test_size": 0.2, "alpha": 0.1, "select": "top"}
    assert "3-fold cross-validation (+ nested)" in capsys.readouterr().out
