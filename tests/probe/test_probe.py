"""Issue 5: the layer probe (``bertfeat.probe``) on a tiny random encoder.

* the result is a tidy table (one row per candidate, best first) with every family: BERT
  layers and combinations x poolings x heads, the random-weights control and TF-IDF;
* the encoder runs once per unique text (a spy on :func:`bertfeat.encoder.encode` and the
  store's ``encoded`` counter agree), and not at all on a second run;
* scoring the head on cached features is exactly ``cross_val_score`` of the recommended
  Pipeline on raw texts, on the same folds;
* the recommended Pipeline is fitted on all data, and its printed code rebuilds it;
* regression targets take the regression heads and r2; ``cache=False`` leaves no store;
* the plot is a PNG;
* issue 8: TF-IDF ⊕ best-layer union candidates on the same folds, scored exactly like the
  TextUnion Pipeline on raw texts; the recommendation never below TF-IDF; chunked pooling
  tried only when texts are truncated (or a note says why not).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

from bertfeat import BertFeaturizer, FeatureStore
from bertfeat.probe import pipeline_code, probe, random_init_model

from ..conftest import WORDS

COLUMNS = ["rank", "family", "layer", "layer_index", "pooling", "head", "mean_score",
           "std_score", "ci_low", "ci_high", "p_value", "tied", "fit_time", "score_time",
           "n_features", "stage", "candidate"]
POSITIVE = {"good", "great", "love", "fun"}


def _data(n: int = 60, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    neutral = [w for w in WORDS if w not in POSITIVE]
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(neutral, 5))
        if i % 2:
            words[rng.integers(5)] = str(rng.choice(sorted(POSITIVE)))
        texts.append(" ".join(words))
        labels.append("pos" if i % 2 else "neg")
    return texts, np.asarray(labels)


@pytest.fixture(scope="module")
def result(tiny_model, tmp_path_factory):
    texts, y = _data()
    texts = texts + texts[:6]  # duplicates are encoded once
    y = np.concatenate([y, y[:6]])
    store = FeatureStore(tmp_path_factory.mktemp("probe-store"))
    res = probe(texts, y, model=tiny_model, cache=store, random_state=1, control_seed=1,
                featurizer_params={"precision": "fp32"})
    return res, texts, y, store


def test_tidy_table(result):
    res, texts, y, _ = result
    table = res.table
    assert list(table.columns) == COLUMNS
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table["mean_score"].is_monotonic_decreasing
    assert table["candidate"].is_unique
    # 3 layers + embeddings + 2 combinations, x 3 poolings, screened with closed-form
    # ridge (each row names its alpha)
    screen = table[table["stage"] == "screen"]
    assert len(screen) == 6 * 3 and all(h.startswith("ridge α=") for h in screen["head"])
    assert set(screen["layer"]) == {"L0", "L1", "L2", "L3", "L1-3 concat", "L1-3 avg"}
    assert set(screen["pooling"]) == {"cls", "mean", "max"}
    widths = dict(zip(screen["layer"], screen["n_features"]))
    assert widths["L2"] == 32 and widths["L1-3 concat"] == 96 and widths["L1-3 avg"] == 32
    # the first head on the 4 best screened feature sets (2 x refine_top; and on L3 mean, the
    # last-layer baseline, when it is not among them), the others on 2 of those (refine_top)
    refine = table[table["stage"] == "refine"]
    refined = set(map(tuple, refine[["layer", "pooling"]].to_numpy())) - {("L3", "mean")}
    assert len(refined) == 4 and set(refine["head"]) == {"logreg", "svm", "mlp"}
    assert len(refine) == 4 + 1 + 2 * 2
    keyed = screen.set_index(["layer", "pooling"])["mean_score"]
    # a top 4 of the screen (ties broken in scoring order)
    assert min(keyed[list(refined)]) >= max(keyed.drop(list(refined | {("L3", "mean")})))
    # controls and baselines, every score a proportion
    assert len(table[table["family"] == "random"]) == 4 * 3
    # TF-IDF + ridge (closed form); its LogisticRegression rows too, as TF-IDF is close to
    # the best screened feature set here
    assert sorted(table.loc[table["family"] == "tfidf", "head"])[:3] == [
        "logreg C=1", "logreg C=10", "logreg C=100"]
    assert len(table[table["family"] == "tfidf"]) == 4
    assert table["mean_score"].between(0, 1).all() and (table["std_score"] >= 0).all()
    assert res.task == "classification" and res.scoring == "accuracy" and res.n_splits == 5
    assert res.baselines["random"] == table.loc[table.family == "random", "mean_score"].max()
    assert res.baselines["tfidf"] == table.loc[table.family == "tfidf", "mean_score"].max()
    # the last layer's mean with the first head (logreg), not its ridge screen row
    last = table[(table.layer == "L3") & (table.pooling == "mean") & (table["head"] == "logreg")]
    assert res.baselines["last_layer"] == last["mean_score"].item()
    assert res.best["family"] in ("bert", "tfidf", "union")
    assert res.top["mean_score"] == table[table.family != "random"]["mean_score"].max()
    # the recommendation is the cheapest of the group tied with the top (issue 18)
    assert res.best["candidate"] in set(res.tied["candidate"])
    assert res.best["mean_score"] >= res.baselines["tfidf"]


def test_encoder_ran_once_per_unique_text(tiny_model, tmp_path, encode_spy):
    texts, y = _data(40)
    texts = texts + texts[:10]
    y = np.concatenate([y, y[:10]])
    store = FeatureStore(tmp_path / "store")
    res = probe(texts, y, model=tiny_model, heads=("logreg", "svm"), cache=store,
                random_state=1, control_seed=1, featurizer_params={"precision": "fp32"})
    assert res.encoding["texts"] == 50 and res.encoding["unique_texts"] == 40
    assert res.encoding["encoded"] == 40 and res.encoding["random_encoded"] == 40
    assert sum(encode_spy) == 80  # 40 unique texts x (the model + its random-weights copy)
    counters = {fp: m["encoded"] for fp, m in store.stats()["models"].items()}
    assert counters[res.encoding["fingerprint"]] == 40
    assert sorted(counters.values()) == [40, 40]
    # a second probe (other folds, other poolings) reads everything from the store
    again = probe(texts, y, model=tiny_model, heads=("logreg",), poolings=("mean_max",),
                  cache=store, random_state=2, control_seed=1,
                  featurizer_params={"precision": "fp32"})
    assert again.encoding["encoded"] == 0 and again.encoding["random_encoded"] == 0
    assert sum(encode_spy) == 80


def test_scores_equal_pipeline_cross_validation(result):
    res, texts, y, store = result
    folds = StratifiedKFold(5, shuffle=True, random_state=1)
    for key in (res.best["candidate"],
                res.table[res.table.stage == "screen"].iloc[-1]["candidate"],
                res.table[res.table.layer == "L1-3 avg"].iloc[0]["candidate"]):
        row = res.table.set_index("candidate").loc[key]
        pipe = res.make_pipeline(key)
        assert isinstance(pipe.steps[0][1], BertFeaturizer) or row["family"] in ("tfidf",
                                                                                 "union")
        scores = cross_val_score(pipe, texts, y, cv=folds)
        assert scores.mean() == pytest.approx(row["mean_score"], abs=1e-12)
        assert scores.std() == pytest.approx(row["std_score"], abs=1e-12)


def test_best_pipeline_fitted_and_code_rebuilds_it(result):
    res, texts, y, store = result
    fitted = res.best_estimator
    predictions = fitted.predict(texts)
    assert predictions.shape == (len(texts),) and set(predictions) <= {"pos", "neg"}
    refit = res.make_pipeline().fit(texts, y)  # unfitted: fit it the ordinary way
    np.testing.assert_array_equal(refit.predict(texts), predictions)
    best_bert = res.table[res.table.family == "bert"].iloc[0]["candidate"]
    for code, unfitted in ((res.best_code, res.make_pipeline()),
                           (pipeline_code(res.make_pipeline(best_bert)),
                            res.make_pipeline(best_bert))):
        namespace: dict = {}
        exec(code, namespace)  # noqa: S102 - code the probe printed
        rebuilt = namespace["pipe"]
        assert [type(s) for _, s in rebuilt.steps] == [type(s) for _, s in unfitted.steps]
        mine, theirs = unfitted.get_params(deep=True), rebuilt.get_params(deep=True)
        assert mine.keys() == theirs.keys()
        for name, value in mine.items():
            if isinstance(value, FeatureStore):  # printed as its directory
                value = value.directory
            if not hasattr(value, "fit") and name != "steps":
                assert theirs[name] == value, name
    feat = namespace["pipe"].steps[0][1]
    assert isinstance(feat, BertFeaturizer) and feat.cache == store.directory
    assert feat.precision == "fp32"  # featurizer_params are carried into the pipeline


def test_pipeline_code_of_a_known_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(BertFeaturizer(layers=[3, 4], pooling="max", layer_combine="mean"),
                         StandardScaler(), LogisticRegression(C=0.5, max_iter=1000))
    code = pipeline_code(pipe)
    assert code.splitlines()[-1] == (
        "pipe = make_pipeline(BertFeaturizer(layers=[3, 4], pooling='max', "
        "layer_combine='mean'), StandardScaler(), LogisticRegression(C=0.5, max_iter=1000))")
    assert "from bertfeat import BertFeaturizer" in code
    assert "from sklearn.linear_model import LogisticRegression" in code


def test_regression_target(tiny_model, tmp_path):
    texts, _ = _data(50)
    y = np.array([t.count("a") + 0.25 * len(t) for t in texts], dtype=float)
    res = probe(texts, y, model=tiny_model, layers=[-1, -2], poolings=("mean",),
                heads=("logreg", "svm", "mlp"), random_control=False, refine_top=1,
                cache=tmp_path / "s", featurizer_params={"precision": "fp32"})
    assert res.task == "regression" and res.scoring == "r2"
    table = res.table
    # screened with closed-form ridge (Ridge, the row's alpha), then every head on the best
    assert {h for h in table["head"] if not h.startswith("ridge α=")} == {"ridge", "svm",
                                                                          "mlp"}
    screened = table[table.stage == "screen"]
    assert len(screened) == 4 and all(h.startswith("ridge α=") for h in screened["head"])
    steps = [type(s).__name__ for _, s in res.make_pipeline(screened.iloc[0]["candidate"]).steps]
    assert steps == ["BertFeaturizer", "StandardScaler", "Ridge"]
    assert set(table.loc[table.family == "bert", "layer"]) == {"L2", "L3", "L1-3 concat",
                                                               "L1-3 avg"}
    assert res.baselines["random"] is None and res.baselines["tfidf"] is not None
    steps = [type(s).__name__ for _, s in res.make_pipeline().steps]
    assert steps[-1] in ("RidgeCV", "TransformedTargetRegressor")
    # regression folds are plain KFold: the pipeline reproduces the score on them
    key = table[(table.family == "bert") & (table["head"] == "ridge")].iloc[0]["candidate"]
    scores = cross_val_score(res.make_pipeline(key), texts, y,
                             cv=KFold(5, shuffle=True, random_state=0))
    row = table.set_index("candidate").loc[key]
    assert scores.mean() == pytest.approx(row["mean_score"], abs=1e-9)
    assert np.isfinite(res.best_estimator.predict(texts[:3])).all()


def test_no_cache_uses_a_temporary_store(tiny_model, tmp_path, monkeypatch, encode_spy):
    default_dir = tmp_path / "default-store"
    monkeypatch.setenv("BERTFEAT_CACHE_DIR", str(default_dir))
    texts, y = _data(30)
    res = probe(texts, y, model=tiny_model, heads=("logreg",), poolings=("mean", "max"),
                cv=3, cache=False, random_state=1, control_seed=1,
                featurizer_params={"precision": "fp32"})
    assert not default_dir.exists()
    assert sum(encode_spy) == 60  # still once per text for each model
    assert res.best["family"] == "tfidf" or res.make_pipeline().steps[0][1].cache is False
    assert res.best_estimator.predict(texts[:2]).shape == (2,)


def test_options_switch_families_off(tiny_model, tmp_path):
    texts, y = _data(30)
    res = probe(pd.Series(texts), pd.Series(y), model=tiny_model, layers=[1], combos=False,
                poolings="mean", heads={"lin": "logreg"}, random_control=False, tfidf=False,
                cv=3, refit=False, cache=tmp_path / "s", scoring="balanced_accuracy",
                screen="head")
    assert res.table["family"].unique().tolist() == ["bert"]
    assert res.table[["layer", "pooling", "head"]].values.tolist() == [["L1", "mean", "lin"]]
    assert res.best_estimator is None and res.scoring == "balanced_accuracy"
    assert res.baselines == {"last_layer": None, "tfidf": None, "random": None}


def test_plot_png(result, tmp_path):
    res = result[0]
    path = tmp_path / "probe.png"
    fig = res.plot(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"cls", "mean", "max"} <= set(labels)
    assert any(label.startswith("TF-IDF") for label in labels)
    assert any(label.startswith("random weights") for label in labels)
    assert [t.get_text() for t in ax.get_xticklabels()][:4] == ["emb", "1", "2", "3"]


@pytest.mark.parametrize("kwargs, message", [
    ({"poolings": ("pooler",)}, "last layer only"),
    ({"cv": 40}, "fewer than cv=40"),
    ({"heads": ("forest",)}, "unknown head"),
    ({"featurizer_params": {"layers": 2}}, "may not set 'layers'"),
    ({"task": "ranking"}, "'task' parameter of probe must be"),
])
def test_errors(tiny_model, kwargs, message):
    texts, y = _data(30)
    with pytest.raises(ValueError, match=message):
        probe(texts, y, model=tiny_model, **kwargs)


def test_length_mismatch(tiny_model):
    texts, y = _data(30)
    with pytest.raises(ValueError, match="one value per text"):
        probe(texts, y[:-1], model=tiny_model)


def test_random_init_model_is_deterministic(tiny_model, tmp_path):
    from safetensors.numpy import load_file

    a = random_init_model(tiny_model, seed=3, directory=tmp_path / "a")
    b = random_init_model(tiny_model, seed=3, directory=tmp_path / "b")
    c = random_init_model(tiny_model, seed=4, directory=tmp_path / "a")
    assert random_init_model(tiny_model, seed=3, directory=tmp_path / "a") == a
    wa, wb, wc = (load_file(f"{d}/model.safetensors") for d in (a, b, c))
    trained = load_file(f"{tiny_model}/model.safetensors")
    key = "embeddings.word_embeddings.weight"
    np.testing.assert_array_equal(wa[key], wb[key])
    assert not np.array_equal(wa[key], wc[key])
    assert wa[key].shape == trained[key].shape
    # the same tokenizer, so the same tokens reach both models
    assert (Path(a) / "vocab.txt").read_text() == (Path(tiny_model) / "vocab.txt").read_text()


class _BrokenHead(ClassifierMixin, BaseEstimator):
    """A head that cannot fit (e.g. too few samples for its own validation split)."""

    def fit(self, X, y):
        raise ValueError("not enough samples")


def test_a_failing_head_is_left_out_with_a_warning(tiny_model, tmp_path):
    texts, y = _data(30)
    with pytest.warns(RuntimeWarning, match="failed and is left out.*not enough samples"):
        res = probe(texts, y, model=tiny_model, poolings=("mean",), combos=False,
                    heads={"logreg": "logreg", "broken": _BrokenHead()}, refine_top=2,
                    random_control=False, tfidf=False, cv=3, cache=tmp_path / "s",
                    screen="head")
    assert set(res.table["head"]) == {"logreg"} and len(res.table) == 4


# ------------------------------------------------------------- issue 8: union and long texts
def _rare_token_data(n: int = 80, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Labels set by one rare word hidden in 14 others: TF-IDF sees it, a random encoder's
    pooled vectors barely do."""
    rng = np.random.default_rng(seed)
    neutral = [w for w in WORDS if w not in ("bank", "prize")]
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(neutral, 14))
        words[rng.integers(14)] = "bank" if i % 2 else "prize"
        texts.append(" ".join(words))
        labels.append("finance" if i % 2 else "contest")
    return texts, np.asarray(labels)


def test_union_candidates_on_the_same_folds(result):
    from bertfeat import TextUnion
    from bertfeat.probe.families.union import CachedUnion, UnionData
    from bertfeat.union import default_tfidf

    res, texts, y, store = result
    table = res.table
    union = table[table.family == "union"]
    assert len(union) == 3 and set(union["head"]) == {"logreg C=1", "logreg C=10",
                                                      "logreg C=100"}
    assert set(union["stage"]) == {"union"}
    # built on the feature set the first head (logreg, as the union's) scored best on,
    # among the best screened sets
    refine = table[(table.stage == "refine") & (table["head"] == "logreg")]
    best = refine[refine.mean_score == refine.mean_score.max()]
    assert len(set(zip(union["layer"], union["pooling"]))) == 1
    assert set(zip(union["layer"], union["pooling"])) <= set(zip(best["layer"], best["pooling"]))
    screen = table[(table.stage == "screen") & (table.layer == union["layer"].iloc[0])
                   & (table.pooling == union["pooling"].iloc[0])].iloc[0]
    assert res.families["union"] == union["mean_score"].max()
    folds = StratifiedKFold(5, shuffle=True, random_state=1)
    for key in union["candidate"]:
        pipe = res.make_pipeline(key)
        assert isinstance(pipe.steps[0][1], TextUnion)
        feat = pipe.steps[0][1].bert
        assert feat.layers == screen["layer_index"] or feat.layers == \
            res.make_pipeline(screen["candidate"]).steps[0][1].layers
        # the probe's score is cross_val_score of the TextUnion Pipeline on raw texts,
        # where TF-IDF and the scaler are fitted inside each training fold
        scores = cross_val_score(pipe, texts, y, cv=folds)
        row = table.set_index("candidate").loc[key]
        assert scores.mean() == pytest.approx(row["mean_score"], abs=1e-9)
        assert scores.std() == pytest.approx(row["std_score"], abs=1e-9)
    # no leakage: the cached union's vocabulary is the training fold's alone
    data = UnionData(np.asarray(texts, dtype=object))
    data.blocks["b"] = np.zeros((len(texts), 4), np.float32)
    train = np.arange(0, len(texts), 2)
    cached = CachedUnion(data, "b").fit(train.reshape(-1, 1))
    assert cached.tfidf_.vocabulary_ == default_tfidf().fit(
        [texts[i] for i in train]).vocabulary_
    assert cached.transform(np.arange(3).reshape(-1, 1)).shape == (3, cached.n_features_out_)


def test_tfidf_wins_the_recommendation_is_never_worse(tiny_model, tmp_path):
    texts, y = _rare_token_data()
    res = probe(texts, y, model=tiny_model, heads=("logreg",), random_control=False,
                cache=tmp_path / "s", random_state=0, featurizer_params={"precision": "fp32"})
    table = res.table
    best_bert = table[table.family == "bert"]["mean_score"].max()
    tfidf = res.baselines["tfidf"]
    assert tfidf > best_bert + 0.1  # the construction: TF-IDF beats every BERT layer
    assert res.best["family"] in ("tfidf", "union")
    assert res.best["mean_score"] >= tfidf
    assert res.top["mean_score"] == table[table.family.isin(["bert", "tfidf", "union"])][
        "mean_score"].max()
    summary = res.summary()
    assert "TF-IDF ⊕ best layer" in summary and "no text is longer than" in summary
    assert res.encoding["truncated"] == 0 and res.families["chunked"] is None
    # the refitted recommendation predicts like a fresh fit of its pipeline
    np.testing.assert_array_equal(res.best_estimator.predict(texts),
                                  res.make_pipeline().fit(texts, y).predict(texts))


def test_union_best_code_builds_and_runs(tiny_model, tmp_path):
    from bertfeat import TextUnion

    texts, y = _rare_token_data(60, seed=1)
    res = probe(texts, y, model=tiny_model, layers=[2], combos=False, poolings=("mean",),
                heads=("logreg",), random_control=False, tfidf=False, union=True, cv=3,
                cache=tmp_path / "s", featurizer_params={"precision": "fp32"},
                select="top")  # the top mean, not the cheapest tied row: the union's code
    assert set(res.table["family"]) == {"bert", "union"}
    assert res.best["family"] == "union"  # TF-IDF's rare word is in the union
    code = res.best_code
    assert "from bertfeat import BertFeaturizer" in code and \
        "from bertfeat import TextUnion" in code
    assert "TextUnion(bert=BertFeaturizer(" in code
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - code the probe printed
    pipe = namespace["pipe"]
    assert isinstance(pipe.steps[0][1], TextUnion)
    predictions = pipe.fit(texts, y).predict(texts)
    np.testing.assert_array_equal(predictions, res.best_estimator.predict(texts))
    assert (predictions == y).mean() > 0.9


def test_long_texts_chunked_or_said_why_not(tiny_model, tmp_path):
    texts, y = _rare_token_data(40, seed=2)
    texts = [t + " " + t for t in texts]  # 28 words: longer than max_length=16
    res = probe(texts, y, model=tiny_model, poolings=("mean",), heads=("logreg",),
                random_control=False, cv=3, cache=tmp_path / "s",
                featurizer_params={"precision": "fp32", "max_length": 16})
    assert res.encoding["truncated"] == 40
    note = res.encoding["chunk"]
    assert note.startswith("40 distinct texts are longer than max_length=16 tokens")
    assert note in res.summary()
    chunked = res.table[res.table.stage == "chunk"]
    # the 2 best screened feature sets again, from one chunked encoder pass
    assert len(chunked) == 2 and chunked["layer"].str.endswith(" chunked").all()
    assert res.encoding["chunk_encoded"] == 40
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    key = chunked.iloc[0]["candidate"]
    pipe = res.make_pipeline(key)
    assert pipe.steps[0][1].long_text == "chunk"
    scores = cross_val_score(pipe, texts, y, cv=folds)
    assert scores.mean() == pytest.approx(chunked.iloc[0]["mean_score"], abs=1e-9)


def test_probe_options_are_one_typed_object_with_probe_s_arguments():
    import dataclasses
    import inspect

    from bertfeat.probe import probe
    from bertfeat.probe.options import ProbeOptions

    arguments = [p for p in inspect.signature(probe).parameters
                 if p not in ("texts", "y", "featurizer_params")]
    fields = [f.name for f in dataclasses.fields(ProbeOptions)]
    assert fields == [*arguments, "progress"]
    defaults = {p.name: p.default for p in inspect.signature(probe).parameters.values()}
    assert all(getattr(ProbeOptions(), name) == defaults[name] for name in arguments)
    with pytest.raises(AttributeError):
        ProbeOptions().refine_tops  # noqa: B018  (a misspelt option fails at once)
