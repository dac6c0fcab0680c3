"""Issue 14: ``pooling="auto"`` (the default) gives the model's own sentence embedding.

For a sentence-transformers model that is the pooling its ``1_Pooling/config.json`` names and
the L2 normalisation of its ``Normalize`` module; for a plain encoder, mean pooling. The
bundled all-MiniLM-L6-v2 is checked against a reference written from first principles with
plain transformers (mean over real tokens, then L2) and, where it is installed, against
sentence-transformers itself.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from bertfeat import BertFeaturizer
from bertfeat.pooling import POOLINGS, sentence_pooling

from ..conftest import needs_default_model

TEXTS = ["a gripping, funny film", "dull and far too long", "i loved every minute of it",
         "the plot makes no sense", "", "what is the capital of france?"]
ST = "sentence_transformers.models."


def _st_dir(root: Path, pooling: dict | None, modules: list[str] | None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if modules is not None:
        entries = [{"idx": i, "name": str(i), "path": "" if kind == "Transformer" else
                    f"{i}_{kind}", "type": ST + kind} for i, kind in enumerate(modules)]
        (root / "modules.json").write_text(json.dumps(entries), encoding="utf-8")
        for entry in entries:
            if entry["path"] and pooling is not None:
                (root / entry["path"]).mkdir(exist_ok=True)
                if entry["type"].endswith("Pooling"):
                    (root / entry["path"] / "config.json").write_text(json.dumps(pooling))
    return root


def _flags(**on) -> dict:
    keys = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")
    return {"word_embedding_dimension": 32,
            **{f"pooling_mode_{k}": bool(on.get(k)) for k in keys}}


@pytest.mark.parametrize(("pooling", "modules", "want"), [
    (_flags(mean_tokens=1), ["Transformer", "Pooling", "Normalize"], ("mean", True, None)),
    (_flags(cls_token=1), ["Transformer", "Pooling"], ("cls", False, None)),
    (_flags(max_tokens=1), ["Transformer", "Pooling", "Normalize"], ("max", True, None)),
    (_flags(mean_tokens=1, max_tokens=1), ["Transformer", "Pooling"],
     ("mean_max", False, "order")),
    (_flags(mean_sqrt_len_tokens=1), ["Transformer", "Pooling"],
     ("mean", False, "mean_sqrt_len_tokens")),
    ({"pooling_mode": "cls"}, ["Transformer", "Pooling"], ("cls", False, None)),
    (_flags(cls_token=1), ["Transformer", "Pooling", "Dense", "Normalize"],
     ("cls", True, "Dense")),
])
def test_sentence_transformers_config_is_read(tmp_path, pooling, modules, want):
    got = sentence_pooling(_st_dir(tmp_path / "m", pooling, modules))
    assert (got.pooling, got.normalize) == want[:2] and got.source == "sentence-transformers"
    if want[2] is None:
        assert got.note is None
    else:
        assert want[2] in got.note


def test_plain_encoders_and_broken_configs_fall_back_to_mean(tmp_path):
    plain = sentence_pooling(_st_dir(tmp_path / "plain", None, None))
    assert (plain.pooling, plain.normalize, plain.source) == ("mean", False, "fallback")
    broken = _st_dir(tmp_path / "broken", None, None)
    (broken / "modules.json").write_text("{not json", encoding="utf-8")
    assert sentence_pooling(broken).source == "fallback"
    no_pool = _st_dir(tmp_path / "nopool", _flags(cls_token=1), ["Transformer", "Normalize"])
    assert sentence_pooling(no_pool).source == "fallback"


@pytest.fixture(scope="module")
def st_tiny(tiny_model, tmp_path_factory) -> str:
    """The tiny encoder, dressed as a sentence-transformers model: cls pooling + Normalize."""
    root = tmp_path_factory.mktemp("st-tiny") / "model"
    shutil.copytree(tiny_model, root)
    _st_dir(root, _flags(cls_token=1), ["Transformer", "Pooling", "Normalize"])
    return str(root)


def _fit(model: str, **params) -> BertFeaturizer:
    return BertFeaturizer(model=model, cache=False, precision="fp32", **params).fit(TEXTS)


def test_auto_follows_the_models_config(st_tiny):
    auto = _fit(st_tiny)
    assert (auto.pooling_, auto.normalize_) == ("cls", True)
    assert auto.get_feature_names_out()[0] == "L3_cls_0"
    X = auto.transform(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-6)
    same = _fit(st_tiny, pooling="cls", normalize=True).transform(TEXTS)
    np.testing.assert_array_equal(X, same)


def test_explicit_settings_win_over_auto(st_tiny, tiny_model):
    raw = _fit(st_tiny, normalize=False)  # the model's pooling, not its normalisation
    assert (raw.pooling_, raw.normalize_) == ("cls", False)
    mean = _fit(st_tiny, pooling="mean")  # an explicit pooling is the raw pooling
    assert (mean.pooling_, mean.normalize_) == ("mean", False)
    plain = _fit(tiny_model)  # no sentence-transformers files: mean, not normalised
    assert (plain.pooling_, plain.normalize_) == ("mean", False)
    np.testing.assert_array_equal(plain.transform(TEXTS),
                                  _fit(tiny_model, pooling="mean").transform(TEXTS))
    assert "auto" in POOLINGS and BertFeaturizer().get_params()["pooling"] == "auto"


def test_what_auto_cannot_reproduce_is_said(tiny_model, tmp_path):
    root = tmp_path / "dense"
    shutil.copytree(tiny_model, root)
    _st_dir(root, _flags(mean_tokens=1), ["Transformer", "Pooling", "Dense"])
    with pytest.warns(UserWarning, match="Dense module"):
        _fit(str(root))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(str(root), pooling="mean")  # no "auto", nothing to say


def _reference(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2's sentence embedding from first principles, in fp32."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from bertfeat import models

    path = models.resolve_model("default").path
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256,
                      return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=1).numpy()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@needs_default_model
def test_default_featurizer_is_the_bundled_models_sentence_embedding():
    # every parameter at its default but precision: fp32 is what the reference computes
    fp32 = BertFeaturizer(cache=False, precision="fp32").fit(TEXTS)
    assert (fp32.pooling_, fp32.normalize_) == ("mean", True)
    X = fp32.transform(TEXTS)
    ref = _reference(TEXTS)
    assert _cosines(X, ref).min() >= 0.9999
    np.testing.assert_allclose(X, ref, atol=2e-5)
    # precision="auto" (bf16 on CPUs with AMX) keeps its own promise: cosine >= 0.999
    default = BertFeaturizer(cache=False).fit(TEXTS)
    assert _cosines(default.transform(TEXTS), ref).min() >= 0.999, default.precision_


@needs_default_model
def test_default_featurizer_equals_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    from bertfeat import models

    model = st.SentenceTransformer(str(models.resolve_model("default").path), device="cpu")
    want = model.encode(TEXTS, convert_to_numpy=True)
    got = BertFeaturizer(cache=False, precision="fp32").fit_transform(TEXTS)
    assert _cosines(got, want).min() >= 0.9999
