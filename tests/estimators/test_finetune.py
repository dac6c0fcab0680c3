"""BertClassifier / BertRegressor: fine-tuning mechanics on tiny random encoders."""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from bertfeat import BertClassifier, BertFeaturizer, BertRegressor, finetune, hardware, models
from bertfeat.engine import precision as auto_precision
from bertfeat.engine import training

from ..conftest import needs_default_model

POS = ["good", "great", "love", "fun"]
NEG = ["bad", "awful", "hate", "boring"]
FILL = ["film", "movie", "plot", "story", "acting", "music"]


def _toy(n: int = 48, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        word = rng.choice(POS if i % 2 == 0 else NEG)
        texts.append(f"the {rng.choice(FILL)} was {word} {rng.choice(FILL)}")
        labels.append("pos" if i % 2 == 0 else "neg")
    return texts, labels


def _fast(model: str, **params) -> dict:
    base = dict(model=model, epochs=3, learning_rate=1e-2, batch_size=8, random_state=0,
                show_progress=False)
    return {**base, **params}


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: tiny models on a shared machine run fastest (and reproducibly)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fitted(tiny_model):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    texts, labels = _toy()
    clf = BertClassifier(**_fast(tiny_model, epochs=4)).fit(texts, labels)
    torch.set_num_threads(before)
    return clf, texts, labels


def _weights(est) -> dict:
    return {k: v.clone() for k, v in est._runtime()[1].state_dict().items()}


def test_loss_decreases_and_learns_the_toy_task(fitted):
    clf, texts, labels = fitted
    assert clf.loss_curve_[-1] < 0.7 * clf.loss_curve_[0]
    assert clf.score(texts, labels) >= 0.9
    assert clf.n_epochs_ == 4 and clf.n_steps_ == 4 * 6
    assert clf.n_train_tokens_ > 0 and clf.precision_ in ("fp32", "bf16")


def test_string_labels_probabilities_and_decision_function(fitted):
    clf, texts, _ = fitted
    assert clf.classes_.tolist() == ["neg", "pos"]
    proba = clf.predict_proba(texts[:5])
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1)
    decision = clf.decision_function(texts[:5])
    assert decision.shape == (5,)
    assert np.array_equal(clf.predict(texts[:5]), clf.classes_[(decision > 0).astype(int)])


def test_multiclass(tiny_model):
    texts = [f"{w} {f}" for w in ("money bank", "hello world", "spam prize") for f in FILL] * 3
    labels = [t.split()[0] for t in texts]
    clf = BertClassifier(**_fast(tiny_model, epochs=4)).fit(texts, labels)
    assert clf.classes_.tolist() == ["hello", "money", "spam"]
    assert clf.predict_proba(texts).shape == (len(texts), 3)
    assert clf.decision_function(texts).shape == (len(texts), 3)
    assert clf.score(texts, labels) > 0.9


def test_init_stores_params_and_loads_nothing(tiny_model, monkeypatch):
    calls = []
    monkeypatch.setattr(models, "load_trainable", lambda *a, **k: calls.append(1))
    clf = BertClassifier(tiny_model, learning_rate=3e-4, class_weight={"a": 2})
    assert clf.get_params()["learning_rate"] == 3e-4
    assert clf.get_params()["class_weight"] == {"a": 2}
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and calls == []
    pickle.loads(pickle.dumps(clf))
    assert calls == []


def test_clone_of_fitted_is_unfitted(fitted):
    with pytest.raises(NotFittedError):
        clone(fitted[0]).predict(["good film"])


def test_grid_search_over_learning_rate(tiny_model):
    texts, labels = _toy(48)
    search = GridSearchCV(BertClassifier(**_fast(tiny_model, epochs=6)),
                          {"learning_rate": [1e-9, 1e-2]}, cv=2)
    search.fit(texts, labels)
    assert search.best_params_ == {"learning_rate": 1e-2}
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and scores[1] > scores[0]


def test_same_random_state_same_weights(tiny_model):
    texts, labels = _toy(24)
    one = BertClassifier(**_fast(tiny_model, epochs=1)).fit(texts, labels)
    two = BertClassifier(**_fast(tiny_model, epochs=1)).fit(texts, labels)
    other = BertClassifier(**_fast(tiny_model, epochs=1, random_state=1)).fit(texts, labels)
    a, b, c = _weights(one), _weights(two), _weights(other)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert any(not np.array_equal(a[k].numpy(), c[k].numpy()) for k in a)
    assert np.array_equal(one.predict_proba(texts), two.predict_proba(texts))


class _NoTorch(pickle.Unpickler):
    def find_class(self, module, name):
        if module.split(".")[0] == "torch":
            raise pickle.UnpicklingError(f"pickle holds a torch object {module}.{name}")
        return super().find_class(module, name)


def test_pickle_round_trip_carries_weights_without_tensor_pickles(fitted, tmp_path):
    clf, texts, _ = fitted
    before = clf.predict_proba(texts)
    blob = pickle.dumps(clf)
    loaded = _NoTorch(io.BytesIO(blob)).load()  # refuses any torch object
    assert isinstance(loaded._saved_weights["encoder"], bytes)
    assert np.array_equal(loaded.predict_proba(texts), before)
    joblib.dump(clf, tmp_path / "clf.joblib")
    again = joblib.load(tmp_path / "clf.joblib")
    assert np.array_equal(again.predict(texts), clf.predict(texts))
    assert np.array_equal(clf.predict_proba(texts), before)  # the original still works
    # an estimator restored from a pickle pickles again
    assert np.array_equal(pickle.loads(pickle.dumps(again)).predict_proba(texts), before)


def test_save_pretrained_loads_as_a_featurizer_with_its_own_fingerprint(fitted, tiny_model,
                                                                        tmp_path):
    clf, texts, _ = fitted
    folder = clf.save_pretrained(tmp_path / "tuned")
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    store = str(tmp_path / "store")  # the fingerprint is computed for a store
    tuned = BertFeaturizer(model=str(folder), pooling="mean", cache=store).fit(texts)
    base = BertFeaturizer(model=tiny_model, pooling="mean", cache=store).fit(texts)
    assert tuned.fingerprint_ is not None
    assert tuned.fingerprint_ != base.fingerprint_
    assert tuned.n_layers_ == base.n_layers_
    a, b = tuned.transform(texts[:4]), base.transform(texts[:4])
    assert a.shape == b.shape and not np.allclose(a, b)


def test_early_stopping_stops(tiny_model):
    texts, labels = _toy(40)
    clf = BertClassifier(**_fast(tiny_model, epochs=6, learning_rate=1e-12,
                                 early_stopping=True, n_iter_no_change=1)).fit(texts, labels)
    assert clf.n_epochs_ == 2 and len(clf.validation_scores_) == 2
    assert clf.best_epoch_ == 1
    assert clf.best_validation_score_ == clf.validation_scores_[0]


def test_freeze_layers_trains_only_the_top(tiny_model):
    texts, labels = _toy(24)
    clf = BertClassifier(**_fast(tiny_model, epochs=1, freeze_layers=2)).fit(texts, labels)
    _, start = models.load_trainable(models.resolve_model(tiny_model), device="cpu")
    start = start.state_dict()
    after = _weights(clf)
    frozen = [k for k in after if k.startswith(("embeddings.", "encoder.layer.0.",
                                                 "encoder.layer.1."))]
    trained = [k for k in after if k.startswith("encoder.layer.2.")]
    assert frozen and trained
    assert all(np.array_equal(after[k].numpy(), start[k].numpy()) for k in frozen)
    assert any(not np.array_equal(after[k].numpy(), start[k].numpy()) for k in trained)
    with pytest.raises(ValueError, match="freeze_layers=4 exceeds the 3 layers"):
        BertClassifier(**_fast(tiny_model, freeze_layers=4)).fit(texts, labels)


def test_token_budget_changes_memory_not_the_result(tmp_path, monkeypatch):
    # without dropout (whose random masks depend on the micro-batch shapes) a batch split
    # under a small token budget accumulates the same gradient as one forward pass
    import json

    from ..conftest import make_tiny_model

    folder = make_tiny_model(tmp_path / "no-dropout")
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(training, "_HEAD_DROPOUT", 0.0)
    texts, labels = _toy(16)
    params = _fast(str(folder), epochs=1, precision="fp32")
    big = BertClassifier(**params).fit(texts, labels)
    small = BertClassifier(**params, max_batch_tokens=12).fit(texts, labels)
    assert small.n_steps_ == big.n_steps_ == 2
    np.testing.assert_allclose(small.predict_proba(texts), big.predict_proba(texts),
                               atol=1e-5)


def test_class_weight(tiny_model):
    texts, labels = _toy(24)
    labels = ["pos"] * 20 + ["neg"] * 4
    plain = BertClassifier(**_fast(tiny_model, epochs=1)).fit(texts, labels)
    balanced = BertClassifier(**_fast(tiny_model, epochs=1, class_weight="balanced")).fit(
        texts, labels)
    assert plain.loss_curve_ != balanced.loss_curve_
    assert (balanced.predict_proba(texts)[:, 0].mean() > plain.predict_proba(texts)[:, 0].mean())
    with pytest.raises(ValueError, match="class_weight names classes not in y"):
        BertClassifier(**_fast(tiny_model, class_weight={"zzz": 2.0})).fit(texts, labels)


def test_bad_input_follows_the_featurizer_policy(tiny_model, fitted):
    texts, labels = _toy(8)
    with pytest.raises(ValueError, match="Row 3 is missing"):
        BertClassifier(**_fast(tiny_model)).fit(texts[:3] + [None] + texts[4:], labels)
    with pytest.raises(TypeError, match="Row 1 is of type int"):
        BertClassifier(**_fast(tiny_model)).fit([texts[0], 5] + texts[2:], labels)
    with pytest.raises(ValueError, match="Row 2 of y is missing"):
        BertClassifier(**_fast(tiny_model)).fit(texts, labels[:2] + [None] + labels[3:])
    with pytest.raises(ValueError, match="X has 8 texts but y has 7 labels"):
        BertClassifier(**_fast(tiny_model)).fit(texts, labels[:7])
    with pytest.raises(ValueError, match="at least 2 classes"):
        BertClassifier(**_fast(tiny_model)).fit(texts, ["a"] * 8)
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        BertClassifier(**_fast(tiny_model, learning_rate=-1.0)).fit(texts, labels)
    with pytest.raises(InvalidParameterError, match="pooling"):
        BertClassifier(**_fast(tiny_model, pooling="pooler")).fit(texts, labels)
    with pytest.raises(NotFittedError):
        BertClassifier(tiny_model).predict(texts)
    clf = fitted[0]
    with pytest.raises(ValueError, match="Row 1 is missing"):
        clf.predict(["good", None])
    empty = BertClassifier(**_fast(tiny_model, max_steps=1, on_bad_input="empty"))
    assert empty.fit(texts[:7] + [None], labels).predict([None, "good"]).shape == (2,)


def test_regressor_fits_numbers(tiny_model):
    texts = [f"{w} {f}" for w in ("bad", "good", "great") for f in FILL] * 3
    y = np.array([{"bad": -10.0, "good": 5.0, "great": 20.0}[t.split()[0]] for t in texts])
    reg = BertRegressor(**_fast(tiny_model, epochs=5)).fit(texts, y)
    assert reg.predict(texts).shape == (len(texts),)
    assert reg.score(texts, y) > 0.5
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    two = BertRegressor(**_fast(tiny_model, max_steps=2)).fit(texts, np.c_[y, -y])
    assert two.predict(texts[:3]).shape == (3, 2)
    with pytest.raises(ValueError, match="y of row 1 is not a finite number"):
        BertRegressor(**_fast(tiny_model)).fit(texts[:3], [1.0, np.nan, 2.0])
    assert "class_weight" not in BertRegressor().get_params()


def test_training_precision_is_the_measured_train_decision(monkeypatch, tiny_model):
    """``auto`` asks for the fine-tuning decision (purpose "train"), not the encoder's."""
    monkeypatch.delenv("BERTFEAT_PRECISION")
    monkeypatch.setattr(hardware.machine, "candidates", lambda device: ("fp32", "bf16"))
    asked = []

    def fake_decide(info, device, *, purpose="encode", trust_remote_code=False):
        asked.append(purpose)
        return hardware.Decision("bf16", "measured", "faked")

    monkeypatch.setattr(auto_precision, "decide", fake_decide)
    info = models.resolve_model(tiny_model)
    assert finetune.training_precision("auto", "cpu", info) == "bf16"
    assert asked == ["train"]
    clf = BertClassifier(**_fast(tiny_model, max_steps=1)).fit(["good", "bad"], [1, 0])
    assert clf.precision_ == "bf16" and asked == ["train", "train"]
    # unpickled: the fitted decision is kept where the device runs it, fp32 elsewhere
    restored = pickle.loads(pickle.dumps(clf))
    restored.predict(["good"])
    assert restored.precision_ == "bf16"
    monkeypatch.setattr(hardware.machine, "candidates", lambda device: ("fp32",))
    restored = pickle.loads(pickle.dumps(clf))
    restored.predict(["good"])
    assert restored.precision_ == "fp32" and asked == ["train", "train"]
    assert finetune.training_precision("fp32", "cpu", info) == "fp32"
    monkeypatch.setenv("BERTFEAT_PRECISION", "fp32")  # the override wins over the decision
    assert finetune.training_precision("auto", "cpu", info) == "fp32"
    assert asked == ["train", "train"]
    with pytest.raises(ValueError, match="inference-only"):
        finetune.training_precision("int8", "cpu")
    monkeypatch.setenv("BERTFEAT_PRECISION", "int8")
    with pytest.raises(ValueError, match="inference-only"):
        finetune.training_precision("auto", "cpu", info)


@needs_default_model
def test_default_model_fine_tunes_a_few_steps(tmp_path):
    texts = ["a wonderful, moving film", "a dull and lifeless movie", "great fun",
             "boring and far too long"] * 4
    labels = [1, 0, 1, 0] * 4
    clf = BertClassifier(max_steps=3, batch_size=8, random_state=0, show_progress=False)
    clf.fit(texts, labels)
    assert clf.n_steps_ == 3 and clf.n_layers_ == 6 and clf.hidden_size_ == 384
    assert clf.predict_proba(texts).shape == (16, 2)
    assert set(clf.predict(texts).tolist()) <= {0, 1}
    folder = clf.save_pretrained(tmp_path / "tuned")
    assert BertFeaturizer(model=str(folder), pooling="mean", cache=False).fit(
        texts).transform(texts[:2]).shape == (2, 384)
