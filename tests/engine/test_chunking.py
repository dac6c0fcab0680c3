"""long_text="chunk": windows with a stride, pooled per text (issues 6 item 3 and 8 item 1)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from bertfeat import BertFeaturizer, FeatureStore, encoder

from ..conftest import WORDS
from ..equality import assert_same_computation, assert_within_bound


def long_text(n_words: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=n_words))


def chunked(model: str, **kwargs) -> BertFeaturizer:
    kwargs.setdefault("cache", False)
    return BertFeaturizer(model=model, precision="fp32", long_text="chunk", **kwargs)


def hand_windows(model_dir: str, text: str, stride: int, keep=None):
    """Per window: (length, cls, mean, max) of the last layer, by plain transformers."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    enc = tokenizer([text], truncation=True, max_length=tokenizer.model_max_length,
                    return_overflowing_tokens=True, stride=stride)
    windows = enc["input_ids"] if keep is None else [enc["input_ids"][i] for i in keep]
    out = []
    with torch.no_grad():
        for ids in windows:
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
            out.append((len(ids), hidden[0].numpy(), hidden.mean(0).numpy(),
                        hidden.max(0).values.numpy()))
    return out, len(enc["input_ids"])


def test_short_texts_get_the_same_vectors_in_both_modes(tiny_model):
    texts = ["good film", "not a bad plot at all", "", "hello world"]
    for pooling in ("cls", "mean", "max", "pooler"):
        layers = -1 if pooling == "pooler" else [0, -1]
        a = BertFeaturizer(model=tiny_model, precision="fp32", cache=False, layers=layers,
                           pooling=pooling).fit(texts).transform(texts)
        b = chunked(tiny_model, layers=layers, pooling=pooling).fit(texts).transform(texts)
        assert_within_bound(a, b)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_long_text_matches_a_hand_computation(tiny_model, pooling):
    text = long_text(300)
    featurizer = chunked(tiny_model, pooling=pooling).fit([text])
    stride = featurizer.chunk_stride_
    assert stride == 64 // 8
    windows, total = hand_windows(tiny_model, text, stride)
    assert total > 3  # really several windows
    weights = np.array([w[0] for w in windows], dtype=np.float64)
    if pooling == "max":
        expected = np.max([w[3] for w in windows], axis=0)
    else:
        column = 1 if pooling == "cls" else 2
        expected = np.sum([wt * w[column] for wt, w in zip(weights, windows)], axis=0)
        expected /= weights.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within max_chunks: no warning
        got = featurizer.transform([text])[0]
    np.testing.assert_allclose(got, expected, atol=2e-5)
    truncated = BertFeaturizer(model=tiny_model, precision="fp32", cache=False,
                               pooling=pooling).fit([text])
    with pytest.warns(UserWarning, match="truncated"):
        assert not np.allclose(truncated.transform([text])[0], got, atol=1e-3)


def test_max_chunks_keeps_head_and_tail_windows_and_warns(tiny_model):
    text = long_text(600, seed=1)
    featurizer = chunked(tiny_model, max_chunks=4, chunk_stride=0).fit([text])
    _, total = hand_windows(tiny_model, text, 0)
    assert total > 4
    keep = [0, 1, total - 2, total - 1]
    windows, _ = hand_windows(tiny_model, text, 0, keep=keep)
    weights = np.array([w[0] for w in windows], dtype=np.float64)
    expected = np.sum([wt * w[2] for wt, w in zip(weights, windows)], axis=0) / weights.sum()
    with pytest.warns(UserWarning, match=r"1 of 2 texts need more than max_chunks=4"):
        got = featurizer.transform([text, "short one"])
    np.testing.assert_allclose(got[0], expected, atol=2e-5)


def test_mixed_lengths_keep_input_order(tiny_model):
    texts = [long_text(200, seed=i) if i % 2 else f"short {WORDS[i]}" for i in range(8)]
    together = chunked(tiny_model).fit(texts).transform(texts)
    for i, text in enumerate(texts):
        alone = chunked(tiny_model).fit([text]).transform([text])[0]
        assert_within_bound(together[i], alone)


def test_chunking_is_part_of_the_fingerprint_and_goes_through_the_store(tiny_model, tmp_path,
                                                                        monkeypatch):
    texts = [long_text(250, seed=3), "a short text"]
    store = FeatureStore(tmp_path / "store")
    plain = BertFeaturizer(model=tiny_model, precision="fp32", cache=store).fit(texts)
    chunk = chunked(tiny_model, cache=store).fit(texts)
    stride = chunked(tiny_model, cache=store, chunk_stride=2).fit(texts)
    capped = chunked(tiny_model, cache=store, max_chunks=2).fit(texts)
    prints = {plain.fingerprint_, chunk.fingerprint_, stride.fingerprint_,
              capped.fingerprint_}
    assert len(prints) == 4
    first = chunk.transform(texts)
    calls = []
    real = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = chunked(tiny_model, cache=store).fit(texts).transform(texts)
    assert not calls
    assert_same_computation(first, again)


def test_a_megabyte_text_is_bounded(tiny_model):
    text = long_text(200_000, seed=4)  # about a million characters
    featurizer = chunked(tiny_model, max_chunks=8).fit([text])
    start = time.perf_counter()
    with pytest.warns(UserWarning, match="max_chunks=8"):
        out = featurizer.transform([text])
    assert time.perf_counter() - start < 60
    assert out.shape == (1, 32) and np.isfinite(out).all()


def test_bad_chunk_parameters_are_refused(tiny_model):
    with pytest.raises(ValueError, match="long_text"):
        BertFeaturizer(model=tiny_model, long_text="split").fit(["a"])
    with pytest.raises(ValueError, match="chunk_stride"):
        chunked(tiny_model, chunk_stride=-1).fit(["a"])
    with pytest.raises(ValueError, match="max_chunks"):
        chunked(tiny_model, max_chunks=0).fit(["a"])
