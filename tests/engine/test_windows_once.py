"""Each window is encoded once across long_text modes (issue 19 item 1).

A text's first chunked window holds the same tokens as its truncated encoding, so a chunked
pass stores it under the truncating featurizer's fingerprint, and a chunked featurizer
reads a text that fits in one window from there instead of encoding it again.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bertfeat import BertFeaturizer, FeatureStore, encoder, models

from ..conftest import WORDS
from ..equality import assert_within_bound


def long_text(n_words: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=n_words))


LONG = [long_text(150, seed) for seed in range(3)]  # several 64-token windows each
SHORT = ["good film", "not a bad plot at all", "hello world"]


def feat(model: str, mode: str, cache, **kwargs) -> BertFeaturizer:
    return BertFeaturizer(model=model, precision="fp32", layers="all", pooling="mean",
                          long_text=mode, cache=cache, **kwargs)


def quiet_transform(featurizer: BertFeaturizer, texts: list[str]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # truncation / chunk notes
        return featurizer.fit(texts).transform(texts)


def test_first_window_has_the_truncated_token_ids(tiny_model):
    tokenizer, _ = models.load_shared(models.resolve_model(tiny_model), depth=1,
                                      device="cpu", precision="fp32")
    texts = LONG + SHORT
    truncated = encoder.tokenize(tokenizer, texts, 64)
    windows, owner, _ = encoder.tokenize_chunks(tokenizer, texts, 64, 8, 8)
    firsts = [windows[int(np.flatnonzero(owner == i)[0])] for i in range(len(texts))]
    assert firsts == truncated.input_ids
    assert truncated.truncated.tolist() == [True] * len(LONG) + [False] * len(SHORT)


def test_a_chunked_pass_stores_the_truncated_vectors(tiny_model, tmp_path, encode_spy):
    store = FeatureStore(tmp_path / "store")
    texts = LONG + SHORT
    quiet_transform(feat(tiny_model, "chunk", store), texts)
    assert encode_spy == [len(texts)]
    truncating = feat(tiny_model, "truncate", store)
    with pytest.warns(UserWarning, match=f"{len(LONG)} of {len(texts)} texts are longer"):
        read = truncating.fit(texts).transform(texts)
    assert encode_spy == [len(texts)], "the truncated vectors were encoded again"
    assert store.encoded_count(truncating.fingerprint_) == len(texts)
    fresh = quiet_transform(feat(tiny_model, "truncate", False), texts)
    assert_within_bound(read, fresh)


def test_a_chunked_featurizer_reads_one_window_texts_from_the_truncated_pass(
        tiny_model, tmp_path, encode_spy):
    store = FeatureStore(tmp_path / "store")
    texts = LONG + SHORT
    quiet_transform(feat(tiny_model, "truncate", store), texts)
    chunking = feat(tiny_model, "chunk", store)
    got = quiet_transform(chunking, texts)
    assert encode_spy == [len(texts), len(LONG)], "only the long texts need more windows"
    assert store.encoded_count(chunking.fingerprint_) == len(LONG)
    fresh = quiet_transform(feat(tiny_model, "chunk", False), texts)
    assert_within_bound(got, fresh)
    # the long texts' first windows were in the store already: not written twice
    truncating = feat(tiny_model, "truncate", store).fit(texts)
    assert store.encoded_count(truncating.fingerprint_) == len(texts)


def test_the_twin_is_per_store_dtype(tiny_model, tmp_path, encode_spy):
    half = FeatureStore(tmp_path / "half", dtype="float16")
    texts = LONG[:1] + SHORT[:1]
    quiet_transform(feat(tiny_model, "chunk", half), texts)
    read = quiet_transform(feat(tiny_model, "truncate", half), texts)
    assert encode_spy == [2]
    # a float32 store shares nothing with the float16 one
    quiet_transform(feat(tiny_model, "truncate", FeatureStore(tmp_path / "full")), texts)
    assert encode_spy == [2, 2]
    fresh = quiet_transform(feat(tiny_model, "truncate", False), texts)
    assert_within_bound(read, fresh, store_dtype="float16")


def test_pooler_first_windows(tiny_model, tmp_path, encode_spy):
    store = FeatureStore(tmp_path / "store")
    texts = LONG[:2] + SHORT[:2]
    chunk = BertFeaturizer(model=tiny_model, precision="fp32", pooling="pooler",
                           long_text="chunk", cache=store)
    quiet_transform(chunk, texts)
    truncating = BertFeaturizer(model=tiny_model, precision="fp32", pooling="pooler",
                                cache=store)
    read = quiet_transform(truncating, texts)
    assert encode_spy == [len(texts)]
    fresh = quiet_transform(BertFeaturizer(model=tiny_model, precision="fp32",
                                           pooling="pooler", cache=False), texts)
    assert_within_bound(read, fresh)


@pytest.mark.parametrize("modes", [["truncate", "chunk"], ["chunk", "truncate"]],
                         ids=["truncate-first", "chunk-first"])
def test_parallel_grid_over_long_text_encodes_each_window_once(tiny_model, tmp_path, modes):
    """A cold GridSearchCV over both modes in two worker processes, either grid order:
    each fingerprint encodes a text at most once, and the chunked pass never encodes a
    one-window text the truncated pass already holds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline

    texts = [long_text(120, seed) for seed in range(10)] + [
        " ".join(np.random.default_rng(s).choice(WORDS, size=6)) + f" {s}" for s in range(30)]
    texts = texts + texts[:8]  # duplicates
    y = np.arange(len(texts)) % 2
    store = str(tmp_path / "store")
    pipe = make_pipeline(feat(tiny_model, "truncate", store),
                         LogisticRegression(max_iter=100))
    grid = {"bertfeaturizer__long_text": modes, "logisticregression__C": [0.1, 1.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        GridSearchCV(pipe, grid, cv=StratifiedKFold(3), n_jobs=2,
                     error_score="raise").fit(texts, y)
    unique = len(set(texts))
    fs = FeatureStore(store)
    truncating = feat(tiny_model, "truncate", fs).fit(texts[:1])
    chunking = feat(tiny_model, "chunk", fs).fit(texts[:1])
    assert fs.encoded_count(truncating.fingerprint_) == unique
    # the chunked fingerprint encodes the long texts, and the short ones only when the
    # chunked pass came first for them (then they were not encoded truncated)
    assert 10 <= fs.encoded_count(chunking.fingerprint_) <= unique
