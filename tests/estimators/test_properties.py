"""Issue 6, item 4: properties that hold for arbitrary Unicode text lists (hypothesis).

Texts are drawn from every Unicode category, lone surrogates and control characters
included, and sometimes run past the tiny model's 64-token limit. For any such list:

* the output has one finite float32 row per input row and the advertised width;
* permuting the input permutes the output rows (no dependence on the neighbours a text
  is batched with);
* the batch size and token budget do not change the result (fp32, atol 1e-5);
* equal texts get bit-identical rows, wherever they sit;
* a store gives the same result as no store, on a cold and a warm read.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertfeat import BertFeaturizer

from ..equality import assert_within_bound

#: any code point: surrogates (Cs) and controls (Cc) are drawn too
ANY_CHAR = st.characters(blacklist_categories=())
WORDY = st.sampled_from(["good", "film", "bad", "plot", " ", "[SEP]", "日本", "👍🏽", "\x00"])
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.lists(WORDY, max_size=80).map("".join),  # often longer than 64 tokens
)
TEXTS = st.lists(TEXT, min_size=0, max_size=12)
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
ATOL = 1e-5


@pytest.fixture(scope="module")
def make(tiny_model):
    def build(**kwargs) -> BertFeaturizer:
        kwargs.setdefault("cache", False)
        return BertFeaturizer(model=tiny_model, precision="fp32", **kwargs).fit(["x"])

    return build


@pytest.fixture(scope="module")
def plain(make):
    return make()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("property-store"))


def _quiet(featurizer: BertFeaturizer, texts: list[str]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation and surrogate notices are expected
        return featurizer.transform(texts)


@SETTINGS
@given(texts=TEXTS)
def test_shape_dtype_and_finiteness(plain, texts):
    out = _quiet(plain, texts)
    assert out.shape == (len(texts), plain.n_features_out_)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()


@SETTINGS
@given(texts=TEXTS, seed=st.integers(0, 2**32 - 1))
def test_order_invariance(plain, texts, seed):
    order = np.random.default_rng(seed).permutation(len(texts))
    out = _quiet(plain, texts)
    shuffled = _quiet(plain, [texts[i] for i in order])
    assert_within_bound(shuffled, out[order])


@SETTINGS
@given(texts=TEXTS, batch_size=st.integers(1, 9), max_tokens=st.sampled_from([64, 200, 8192]))
def test_batch_size_invariance(plain, make, texts, batch_size, max_tokens):
    reference = _quiet(plain, texts)
    other = _quiet(make(batch_size=batch_size, max_batch_tokens=max_tokens), texts)
    assert_within_bound(other, reference)


@SETTINGS
@given(texts=st.lists(TEXT, min_size=1, max_size=6), repeats=st.integers(2, 4),
       seed=st.integers(0, 2**32 - 1))
def test_duplicates_get_identical_rows(plain, texts, repeats, seed):
    rng = np.random.default_rng(seed)
    rows = [texts[i] for i in rng.integers(0, len(texts), size=len(texts) * repeats)]
    out = _quiet(plain, rows)
    first: dict[str, int] = {}
    for i, text in enumerate(rows):
        j = first.setdefault(text, i)
        assert np.array_equal(out[i], out[j])
    alone = _quiet(plain, list(first))  # the same texts without their duplicates
    assert_within_bound(out[list(first.values())], alone)


@SETTINGS
@given(texts=TEXTS)
def test_store_equals_no_store(plain, make, store_dir, texts):
    reference = _quiet(plain, texts)
    stored = make(cache=store_dir)
    cold = _quiet(stored, texts)  # a mix of hits (earlier examples) and misses
    warm = _quiet(stored, texts)  # all hits
    assert_within_bound(cold, reference)
    assert np.array_equal(warm, cold)
