"""Issue 26, part 3: the probe screens feature sets with closed-form ridge.

* the closed form gives, for every alpha, the decision values of scikit-learn's
  ``StandardScaler`` + ``RidgeClassifier`` / ``Ridge`` fitted with that alpha (two and more
  classes, regression, more rows than columns and fewer), and the fold scores of
  ``cross_validate`` of each;
* the row's alpha is the best mean (ties: the larger), its head says so, and its candidate
  builds, cross-validates and refits exactly that pipeline;
* the first head is fitted only on the ``2 x refine_top`` best screened feature sets
  (faked screening scores decide which), the other heads on the ``refine_top`` best of
  those by the first head;
* ``screen="head"`` keeps the old screen (the first head on every feature set).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge, RidgeClassifier
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bertfeat import FeatureStore
from bertfeat.probe import probe, ridge
from bertfeat.probe.heads import RIDGE_ALPHAS

from .test_probe import _data

ALPHAS = (0.01, 1.0, 100.0)


@pytest.mark.parametrize("n, d, classes", [(60, 12, 2), (60, 12, 4), (30, 50, 3), (30, 50, 2)])
def test_closed_form_equals_sklearn_classifier(n, d, classes):
    rng = np.random.default_rng(n + d + classes)
    X = rng.normal(size=(n + 15, d)) * rng.uniform(0.1, 10, size=d) + rng.normal(size=d)
    X[:, 0] = 3.0  # a constant column: the scaler leaves it at 0
    y = np.arange(n + 15) % classes
    decisions, found = ridge.ridge_decisions(X[:n], y[:n], X[n:], ALPHAS, "classification")
    np.testing.assert_array_equal(found, np.arange(classes))
    for alpha, decision in zip(ALPHAS, decisions):
        ref = make_pipeline(StandardScaler(), RidgeClassifier(alpha=alpha)).fit(X[:n], y[:n])
        expected = ref.decision_function(X[n:]).reshape(15, -1)
        np.testing.assert_allclose(decision, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n, d", [(50, 8), (20, 40)])
def test_closed_form_equals_sklearn_regressor(n, d):
    rng = np.random.default_rng(n * d)
    X = rng.normal(size=(n + 10, d))
    y = X @ rng.normal(size=d) + rng.normal(size=n + 10) + 5.0
    decisions, found = ridge.ridge_decisions(X[:n], y[:n], X[n:], ALPHAS, "regression")
    assert found is None
    for alpha, decision in zip(ALPHAS, decisions):
        ref = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X[:n], y[:n])
        np.testing.assert_allclose(decision[:, 0], ref.predict(X[n:]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scoring", ["accuracy", "balanced_accuracy", "f1_macro"])
def test_path_scores_equal_cross_validate(scoring):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(90, 20)).astype(np.float32)
    y = (X[:, 0] + 0.8 * rng.normal(size=90) > 0).astype(int) + (X[:, 1] > 0.5)
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    scores, fit, score = ridge.ridge_path_scores(X, y, splits, scoring, ALPHAS,
                                                 "classification")
    assert scores.shape == (len(ALPHAS), 5) and fit >= 0 and score >= 0
    for alpha, row in zip(ALPHAS, scores):
        ref = cross_validate(make_pipeline(StandardScaler(), RidgeClassifier(alpha=alpha)),
                             X, y, cv=splits, scoring=scoring)["test_score"]
        np.testing.assert_allclose(row, ref, atol=1e-12)


def test_alpha_is_the_best_mean_ties_to_the_larger(monkeypatch):
    faked = np.array([[0.5, 0.7], [0.7, 0.5], [0.6, 0.6], [0.2, 0.9]])  # means .6 .6 .6 .55

    def fake_scores(X, y, splits, scoring, alphas, task, *args):
        return faked, 0.0, 0.0

    monkeypatch.setattr(ridge, "ridge_path_scores", fake_scores)
    made = []
    path = ridge.RidgePath("classification", lambda name, head: made.append((name, head))
                           or _FakeCandidate(name), alphas=(0.1, 1.0, 10.0, 100.0))
    chosen, scores = path.cross_validate(_FakeCandidate("screen"), np.zeros(4), [], "accuracy")
    assert chosen.head == "ridge α=10" and made[0][0] == "ridge α=10"
    assert made[0][1][-1].alpha == 10.0 and isinstance(made[0][1][-1], RidgeClassifier)
    np.testing.assert_array_equal(scores["fold_scores"], [0.6, 0.6])
    assert scores["mean_score"] == pytest.approx(0.6)


class _FakeCandidate:
    def __init__(self, head):
        self.head, self.X, self.rows, self.recommendable, self.group = head, None, None, True, 0


def _replace(obj, **changes):
    for k, v in changes.items():
        setattr(obj, k, v)
    return obj


@pytest.fixture(autouse=True)
def _plain_replace(monkeypatch):
    # the fake candidates above are not dataclasses
    real = ridge.replace
    monkeypatch.setattr(ridge, "replace", lambda obj, **kw: _replace(obj, **kw)
                        if isinstance(obj, _FakeCandidate) else real(obj, **kw))


@pytest.fixture(scope="module")
def screened(tiny_model, tmp_path_factory):
    texts, y = _data(60)
    store = FeatureStore(tmp_path_factory.mktemp("ridge-store"))
    res = probe(texts, y, model=tiny_model, cache=store, random_state=1, control_seed=1,
                heads=("logreg", "svm"), refine_top=2, random_control=False, tfidf=False,
                featurizer_params={"precision": "fp32"}, verbose=False)
    return res, texts, y


def test_screen_rows_are_the_ridge_they_name(screened):
    res, texts, y = screened
    screen = res.table[res.table.stage == "screen"]
    assert len(screen) == 6 * 3
    assert all(h.startswith("ridge α=") for h in screen["head"])
    assert res.screen_head == "ridge"
    alphas = {float(h.split("=")[1]) for h in screen["head"]}
    assert alphas <= set(RIDGE_ALPHAS)
    splits = [(tr, te) for tr, te in StratifiedKFold(5, shuffle=True, random_state=1)
              .split(texts, y)]
    for key in screen["candidate"].iloc[[0, -1]]:
        cand = res.candidate(key)
        alpha = float(cand.head.split("=")[1])
        pipe = res.make_pipeline(key)
        assert [type(s).__name__ for _, s in pipe.steps] == \
            ["BertFeaturizer", "StandardScaler", "RidgeClassifier"]
        assert pipe[-1].alpha == alpha
        # the scored fold scores are cross_validate's of that very pipeline
        ref = cross_validate(cand.estimator, cand.X, y, cv=splits)["test_score"]
        np.testing.assert_allclose(res.fold_scores.loc[key].to_numpy(), ref, atol=1e-12)
        # refit on all data: the same model as the closed form on every row
        fitted = cand.fit_all(texts, y)
        decisions, _ = ridge.ridge_decisions(cand.X, y, cand.X, (alpha,), "classification")
        np.testing.assert_allclose(fitted.decision_function(texts), decisions[0][:, 0],
                                   rtol=1e-4, atol=1e-4)


def test_heads_fit_only_the_best_screened_sets(screened):
    res, _, _ = screened
    table = res.table
    screen = table[table.stage == "screen"]
    refine = table[table.stage == "refine"]
    keyed = screen.set_index(["layer", "pooling"])["mean_score"]
    # the first head on the 2 x refine_top best screened sets (ties in scoring order),
    # and on the last layer's mean (the summary's baseline) wherever that one ranks
    logreg = refine[refine["head"] == "logreg"]
    baseline = (f"L{res.n_layers}", "mean")
    pool = set(zip(logreg["layer"], logreg["pooling"])) - {baseline}
    assert len(pool) == 4 and len(logreg) == 4 + (baseline not in pool)
    assert baseline in set(zip(logreg["layer"], logreg["pooling"]))
    assert min(keyed[list(pool)]) >= max(keyed.drop(list(pool | {baseline})))
    # the summary's last-layer baseline is that logreg row, not the ridge screen row
    row = res.table.set_index("candidate").loc[res.baseline_keys["last_layer"]]
    assert (row["layer"], row["pooling"], row["head"]) == (*baseline, "logreg")
    assert f"last layer ({baseline[0]}, mean, logreg): {row['mean_score']:.4f}" in res.summary()
    # the other heads on the refine_top of those that the first head scores best
    svm = refine[refine["head"] == "svm"]
    assert len(svm) == 2 and set(zip(svm["layer"], svm["pooling"])) <= pool | {baseline}
    by_logreg = logreg.set_index(["layer", "pooling"])["mean_score"]
    chosen = list(zip(svm["layer"], svm["pooling"]))
    assert min(by_logreg[chosen]) >= max(by_logreg.drop(chosen))
    assert res.timings["screen"] >= 0 and res.timings["refine"] >= 0


def test_faked_screen_scores_choose_the_refined_sets(tiny_model, tmp_path, monkeypatch):
    from bertfeat import BertFeaturizer

    texts, y = _data(40)
    store = FeatureStore(tmp_path / "store")
    # the screen is told that L0 max and L2 mean are best (whatever the real scores):
    # the head goes to those two only (2 x refine_top)
    favourite = {}
    for layer, pooling, value in [(0, "max", 0.99), (2, "mean", 0.98)]:
        X = BertFeaturizer(model=tiny_model, layers=layer, pooling=pooling, cache=store,
                           precision="fp32").fit_transform(texts)
        favourite[(layer, pooling)] = (X, value)
    real = ridge.ridge_fold_scores
    seen = []

    def fake(X, yy, train, test, scoring, alphas, task, *args):  # one split of one set
        scores, fit, score = real(X, yy, train, test, scoring, alphas, task, *args)
        seen.append(X.shape)
        value = next((v for F, v in favourite.values()
                      if F.shape == X.shape and np.array_equal(F, X)), 0.5)
        return np.full_like(scores, value), fit, score

    monkeypatch.setattr(ridge, "ridge_fold_scores", fake)
    res = probe(texts, y, model=tiny_model, cache=store, heads=("logreg",), refine_top=1,
                random_control=False, tfidf=False, union=False, combos=False, cv=3,
                verbose=False, featurizer_params={"precision": "fp32"}, refit=False)
    table = res.table
    assert len(seen) == 3 * len(table[table.stage == "screen"]) == 3 * 4 * 3  # 3 folds
    refine = table[table.stage == "refine"]
    # (and the last layer's mean: the baseline always gets the first head)
    assert set(zip(refine["layer"], refine["pooling"])) == {
        ("L0", "max"), ("L2", "mean"), (f"L{res.n_layers}", "mean")}
    assert set(refine["head"]) == {"logreg"}


def test_screen_head_option_keeps_the_first_head_screen(tiny_model, tmp_path):
    texts, y = _data(40)
    res = probe(texts, y, model=tiny_model, cache=FeatureStore(tmp_path / "s"),
                heads=("logreg", "svm"), refine_top=1, random_control=False, tfidf=False,
                combos=False, cv=3, verbose=False, screen="head",
                featurizer_params={"precision": "fp32"}, refit=False)
    table = res.table
    assert set(table[table.stage == "screen"]["head"]) == {"logreg"}
    assert set(table[table.stage == "refine"]["head"]) == {"svm"}


@pytest.mark.parametrize("n", [30, 80])
def test_unscaled_sparse_path_equals_sklearn(n):
    from scipy import sparse

    rng = np.random.default_rng(n)
    X = sparse.random(n + 12, 150, density=0.05, random_state=n, format="csr")
    y = np.arange(n + 12) % 3
    decisions, _ = ridge.ridge_decisions(X[:n], y[:n], X[n:], ALPHAS, "classification",
                                         scale=False)
    dense, _ = ridge.ridge_decisions(X[:n].toarray(), y[:n], X[n:].toarray(), ALPHAS,
                                     "classification", scale=False)
    np.testing.assert_allclose(decisions, dense, rtol=1e-10, atol=1e-10)
    for alpha, decision in zip(ALPHAS, decisions):
        ref = RidgeClassifier(alpha=alpha).fit(X[:n].toarray(), y[:n])  # exact solver
        np.testing.assert_allclose(decision, ref.decision_function(X[n:].toarray()),
                                   rtol=1e-8, atol=1e-8)
        sp = RidgeClassifier(alpha=alpha, solver="sparse_cg", tol=1e-8).fit(X[:n], y[:n])
        np.testing.assert_allclose(decision, sp.decision_function(X[n:]), atol=1e-5)
    assert rng is not None


def _lexical(n=60):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "kappa"]
    texts = [" ".join(rng.choice(words, 6)) + (" bank" if i % 2 else " prize")
             for i in range(n)]
    return texts, np.array(["a", "b"] * (n // 2))


@pytest.mark.parametrize("margin, lr_rows", [(1.0, 3), (-1.0, 1)])
def test_tfidf_logreg_only_when_ridge_is_close(tiny_model, tmp_path, monkeypatch, margin,
                                               lr_rows):
    from bertfeat.probe.families import tfidf

    monkeypatch.setattr(tfidf, "TFIDF_LR_MARGIN", margin)
    texts, y = _lexical()
    res = probe(texts, y, model=tiny_model, cache=FeatureStore(tmp_path / "s"),
                heads=("logreg",), poolings=("mean",), combos=False, refine_top=1,
                random_control=False, union=False, cv=3, verbose=False,
                featurizer_params={"precision": "fp32"}, refit=False)
    rows = res.table[res.table.family == "tfidf"]
    ridge_rows = rows[rows["head"].str.startswith("ridge α=")]
    assert len(ridge_rows) == 1 and len(rows) == 1 + lr_rows
    # far below the best set: one LogisticRegression (C=10), so the baseline is TF-IDF + LR
    assert set(rows["head"]) - set(ridge_rows["head"]) == (
        {"logreg C=1", "logreg C=10", "logreg C=100"} if lr_rows == 3 else {"logreg C=10"})
    # the ridge row is TfidfVectorizer + RidgeClassifier(alpha): its CV on raw texts
    key = ridge_rows["candidate"].item()
    pipe = res.make_pipeline(key)
    assert [type(s).__name__ for _, s in pipe.steps] == ["TfidfVectorizer", "RidgeClassifier"]
    assert pipe[-1].alpha == float(key.split("=")[1])
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_validate(pipe, np.asarray(texts, dtype=object), y, cv=folds)["test_score"]
    np.testing.assert_allclose(res.fold_scores.loc[key].to_numpy(), scores, atol=1e-12)
