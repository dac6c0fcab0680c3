"""Issue 2, behaviours 4, 5 and 7: the batched encoder, truncation warnings, progress bars.

* texts are sorted by token length (not characters), padded per batch to the batch's
  longest text, run under ``torch.inference_mode``, and returned in input order;
* padding never leaks into a pooled vector;
* only layers up to the deepest requested one exist in the loaded model;
* duplicates are encoded once; batches respect ``batch_size`` and ``max_tokens``;
* texts longer than ``max_length`` give ONE warning that counts them;
* ``show_progress`` shows a tqdm bar when asked, and ``"auto"`` stays quiet for short or
  non-terminal runs.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from bertfeat import BertFeaturizer, encoder, models
from bertfeat.encoder import make_batches

from ..conftest import WORDS
from ..equality import assert_same_computation, assert_within_bound

SHORT = ["good", "the film was good", "awful plot"]
LONG = ["a very very long and boring story about money and the bank " * 3,
        "what a great film i love this movie and the music and the acting was fun " * 2]


def _featurizer(tiny_model: str, **params) -> BertFeaturizer:
    params.setdefault("cache", False)
    params.setdefault("precision", "fp32")
    return BertFeaturizer(model=tiny_model, **params)


@pytest.fixture(scope="module")
def loaded(tiny_model):
    info = models.resolve_model(tiny_model)
    tokenizer, model = models.load(info, depth=info.n_layers, device="cpu", precision="fp32")
    return info, tokenizer, model


def _run_encode(tokenizer, model, texts, *, depth, max_length=64, batch_size=32,
                max_tokens=8192, want_pooler=False):
    """Call :func:`encoder.encode`; return per-text stats in input order and the batches."""
    n = len(texts)
    stats = np.full((n, depth + 1, 3, model.config.hidden_size), np.nan, np.float32)
    batches = []

    def on_batch(positions, batch_stats, pooler, truncated):
        batches.append(np.asarray(positions))
        stats[positions] = batch_stats

    truncated = encoder.encode(tokenizer, model, texts, depth=depth, max_length=max_length,
                               batch_size=batch_size, max_tokens=max_tokens, device="cpu",
                               want_pooler=want_pooler, on_batch=on_batch)
    return stats, batches, truncated


# ------------------------------------------------------------------------------ make_batches
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("batch_size, max_tokens", [(1, 100), (4, 64), (32, 50), (8, 10_000),
                                                     (16, 7)])
def test_make_batches_respects_batch_size_and_token_budget(seed, batch_size, max_tokens):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 40, size=int(rng.integers(1, 120)))
    batches = make_batches(lengths, batch_size, max_tokens)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))  # every text exactly once
    ordered = lengths[flat]
    assert (np.diff(ordered) <= 0).all()  # longest first, sorted by token length
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        padded = len(batch) * int(lengths[batch].max())
        assert padded <= max_tokens or len(batch) == 1
    # batches are as full as the limits allow (no needless tiny batches)
    for batch in batches[:-1]:
        room = min(batch_size, max(1, max_tokens // int(lengths[batch].max())))
        assert len(batch) == room, "a batch that could hold more texts was closed early"


def test_make_batches_single_text_over_budget_gets_its_own_batch():
    batches = make_batches(np.array([100, 3, 3]), batch_size=8, max_tokens=10)
    assert [b.tolist() for b in batches] == [[0], [1, 2]]


def test_make_batches_empty():
    assert make_batches(np.array([], dtype=np.int64), 8, 100) == []


# ------------------------------------------------------------------- sorting, padding, order
def test_batches_sorted_by_token_length_with_dynamic_padding(loaded):
    info, tokenizer, model = loaded
    # "zzqqxxjj" is short in characters but long in tokens (one piece per letter);
    # "question answer" is long in characters but two tokens
    texts = ["question answer question", "zzqqxxjj", "good", "the film was very good",
             "a", "what who where when why how"]
    token_lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    widths, modes = [], []

    def pre_hook(module, args, kwargs):
        widths.append(tuple(kwargs["input_ids"].shape))
        import torch

        modes.append(torch.is_inference_mode_enabled())

    handle = model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        _, batches, _ = _run_encode(tokenizer, model, texts, depth=info.n_layers, batch_size=2)
    finally:
        handle.remove()
    assert all(modes), "the forward pass must run under torch.inference_mode"
    flat = np.concatenate(batches)
    assert [token_lengths[i] for i in flat] == sorted(token_lengths, reverse=True)
    assert texts[flat[0]] == "zzqqxxjj"  # token length, not characters, decides
    for (rows, width), batch in zip(widths, batches):
        assert rows == len(batch) <= 2
        assert width == max(token_lengths[i] for i in batch)  # padded to the batch, not 64


def test_results_in_input_order_and_padding_never_leaks(loaded):
    info, tokenizer, model = loaded
    texts = SHORT + LONG + ["", "i"]
    depth = info.n_layers
    together, batches, _ = _run_encode(tokenizer, model, texts, depth=depth, batch_size=32)
    assert len(batches) == 1  # one padded batch: the short texts carry lots of padding
    assert not np.isnan(together).any()
    for i, text in enumerate(texts):
        alone, _, _ = _run_encode(tokenizer, model, [text], depth=depth)
        # every layer, and cls, mean and max statistics alike
        assert_within_bound(together[i], alone[0], err_msg=f"text {i} {text!r}")


def test_featurizer_padding_never_leaks_for_every_pooling(tiny_model):
    for pooling in ("cls", "mean", "max", "mean_max", "first_last"):
        featurizer = _featurizer(tiny_model, layers="all" if pooling != "first_last" else -1,
                                 pooling=pooling).fit(["x"])
        batch = featurizer.transform(SHORT + LONG)
        for i, text in enumerate(SHORT):
            alone = featurizer.transform([text])
            assert_within_bound(batch[i], alone[0], err_msg=f"{pooling}: {text!r}")


def test_featurizer_results_independent_of_batching(tiny_model):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(1, 30))) for _ in range(20)]
    reference = _featurizer(tiny_model, layers="all", batch_size=20).fit(["x"]).transform(texts)
    for params in (dict(batch_size=1), dict(batch_size=3), dict(max_batch_tokens=40)):
        out = _featurizer(tiny_model, layers="all", **params).fit(["x"]).transform(texts)
        assert_within_bound(out, reference, err_msg=str(params))
    order = rng.permutation(len(texts))
    shuffled = _featurizer(tiny_model, layers="all", batch_size=7).fit(["x"]).transform(
        [texts[i] for i in order])
    assert_within_bound(shuffled, reference[order])


def test_featurizer_batches_follow_batch_size_and_budget(tiny_model, monkeypatch):
    seen = []
    real = encoder.make_batches

    def spy(lengths, batch_size, max_tokens):
        batches = real(lengths, batch_size, max_tokens)
        seen.append((lengths.copy(), batch_size, max_tokens, batches))
        return batches

    monkeypatch.setattr(encoder, "make_batches", spy)
    texts = SHORT + LONG + [f"hello world {w}" for w in WORDS[:20]]
    _featurizer(tiny_model, batch_size=4, max_batch_tokens=60).fit(["x"]).transform(texts)
    [(lengths, batch_size, max_tokens, batches)] = seen
    assert (batch_size, max_tokens) == (4, 60)
    for batch in batches:
        assert len(batch) <= 4
        assert len(batch) * lengths[batch].max() <= 60 or len(batch) == 1


# ------------------------------------------------------------------------- layers computed
@pytest.mark.parametrize("k", [1, 2])
def test_truncated_model_gives_same_layer_k_vectors(loaded, k):
    import torch

    info, tokenizer, full = loaded
    _, cut = models.load(info, depth=k, device="cpu", precision="fp32")
    owner, attr = models.loading._layer_container(cut)
    assert len(getattr(owner, attr)) == k
    n_params = sum(p.numel() for p in cut.parameters())
    assert n_params < sum(p.numel() for p in full.parameters())

    batch = tokenizer(SHORT + LONG, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden_cut = cut(**batch, output_hidden_states=True).hidden_states
        hidden_full = full(**batch, output_hidden_states=True).hidden_states
    assert len(hidden_cut) == k + 1
    assert len(hidden_full) == info.n_layers + 1
    for layer in range(k + 1):
        torch.testing.assert_close(hidden_cut[layer], hidden_full[layer], rtol=0, atol=1e-6)

    stats_cut, _, _ = _run_encode(tokenizer, cut, SHORT + LONG, depth=k)
    stats_full, _, _ = _run_encode(tokenizer, full, SHORT + LONG, depth=info.n_layers)
    assert_within_bound(stats_cut[:, k], stats_full[:, k])


@pytest.mark.parametrize("layers, pooling, depth", [
    (1, "mean", 1),
    (-2, "cls", 2),
    ([0, 1], "max", 1),
    (0, "mean", 1),  # the embedding output: one layer is kept so hidden states exist
    (-1, "mean", 3),
    (1, "first_last", 1),
    (-1, "pooler", 3),
])
def test_featurizer_loads_only_the_layers_it_needs(tiny_model, monkeypatch, layers, pooling,
                                                   depth):
    depths = []
    real = models.load_shared

    def spy(info, **kwargs):
        depths.append(kwargs["depth"])
        return real(info, **kwargs)

    monkeypatch.setattr(models, "load_shared", spy)
    featurizer = _featurizer(tiny_model, layers=layers, pooling=pooling).fit(["x"])
    out = featurizer.transform(SHORT)
    assert depths == [depth]
    if pooling in ("mean", "max", "cls"):
        # same vectors as the full model gives for those layers
        reference = _featurizer(tiny_model, layers="all", pooling=pooling).fit(["x"])
        ref = reference.transform(SHORT)
        want = featurizer.layers_
        expected = np.concatenate([ref[:, 32 * layer:32 * (layer + 1)] for layer in want], 1)
        assert_within_bound(out, expected)


# ------------------------------------------------------------------------------- duplicates
def test_duplicates_are_encoded_once(tiny_model, monkeypatch):
    seen = []
    real = encoder.encode

    def spy(tokenizer, model, texts, **kwargs):
        seen.append(list(texts))
        return real(tokenizer, model, texts, **kwargs)

    monkeypatch.setattr(encoder, "encode", spy)
    texts = ["good", "bad", "good", "good", "", "bad", "", "fun"]
    out = _featurizer(tiny_model).fit(["x"]).transform(texts)
    assert len(seen) == 1
    assert sorted(seen[0]) == sorted(set(texts))
    assert len(seen[0]) == 4
    assert_same_computation(out[0], out[2])
    assert_same_computation(out[0], out[3])
    assert_same_computation(out[1], out[5])
    assert_same_computation(out[4], out[6])
    assert not np.array_equal(out[0], out[1])


# ------------------------------------------------------------------------------- truncation
def _n_tokens(loaded, text):
    return len(loaded[1](text)["input_ids"])


def test_truncation_warns_once_with_the_count(tiny_model, loaded):
    texts = SHORT + LONG + ["the film was good and the plot was great"]
    long_ones = sum(_n_tokens(loaded, t) > 8 for t in texts)
    assert long_ones == 3
    featurizer = _featurizer(tiny_model, max_length=8).fit(["x"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = featurizer.transform(texts + texts)  # the count is of input rows
    user = [w for w in caught if issubclass(w.category, UserWarning)]
    assert len(user) == 1, [str(w.message) for w in user]
    message = str(user[0].message)
    assert "6 of 12 texts" in message and "max_length=8" in message
    assert np.isfinite(out).all()
    # a truncated text gives the vector of its first max_length tokens
    ids = loaded[1](LONG[0])["input_ids"]
    head = loaded[1].decode(ids[1:7])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_within_bound(featurizer.transform([head])[0], out[3])


def test_no_truncation_warning_for_texts_that_fit(tiny_model):
    featurizer = _featurizer(tiny_model, max_length=64).fit(["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        featurizer.transform(SHORT + [""])
        _featurizer(tiny_model).fit(["x"]).transform(LONG)  # default limit: the model's 64


def test_truncation_at_the_models_limit_by_default(tiny_model, loaded):
    huge = " ".join(WORDS) * 2
    assert _n_tokens(loaded, huge) > 64
    featurizer = _featurizer(tiny_model).fit(["x"])
    assert featurizer.max_length_ == 64
    with pytest.warns(UserWarning, match=r"1 of 2 texts .* max_length=64") as record:
        featurizer.transform([huge, "short"])
    assert len([w for w in record if issubclass(w.category, UserWarning)]) == 1


def test_truncation_warning_also_from_the_store(tiny_model, tmp_path):
    featurizer = _featurizer(tiny_model, max_length=8, cache=str(tmp_path / "store")).fit(["x"])
    with pytest.warns(UserWarning, match="1 of 2 texts"):
        first = featurizer.transform([LONG[0], "good"])
    with pytest.warns(UserWarning, match="1 of 2 texts"):  # read back: still not silent
        second = featurizer.transform([LONG[0], "good"])
    np.testing.assert_allclose(first, second, rtol=0, atol=1e-3)


# -------------------------------------------------------------------------------- progress
def test_progress_bar_when_asked(tiny_model, capsys):
    _featurizer(tiny_model, show_progress=True).fit(["x"]).transform(SHORT)
    err = capsys.readouterr().err
    assert "bertfeat encode" in err and "3/3" in err


def test_no_progress_bar_when_off(tiny_model, capsys):
    _featurizer(tiny_model, show_progress=False).fit(["x"]).transform(SHORT * 200)
    assert capsys.readouterr().err == ""


@pytest.fixture
def low_threshold(monkeypatch):
    """Make "many texts" 20 instead of the real threshold, to keep the tests fast."""
    from bertfeat import base

    assert base.PROGRESS_MIN_ITEMS >= 100  # short runs stay quiet by default
    monkeypatch.setattr(base, "PROGRESS_MIN_ITEMS", 20)
    return [f"text {i} {w}" for i, w in enumerate(WORDS[:20])]


def test_auto_progress_quiet_for_few_texts_or_no_terminal(tiny_model, capsys, monkeypatch,
                                                          low_threshold):
    many = low_threshold
    _featurizer(tiny_model).fit(["x"]).transform(many)  # many texts, stderr not a tty
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _featurizer(tiny_model).fit(["x"]).transform(many[:19])  # a terminal, few texts
    assert capsys.readouterr().err == ""
    _featurizer(tiny_model).fit(["x"]).transform(many[:5] * 10)  # 50 rows, 5 to encode
    assert capsys.readouterr().err == ""


def test_auto_progress_shown_for_many_texts_on_a_terminal(tiny_model, capsys, monkeypatch,
                                                          low_threshold):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _featurizer(tiny_model).fit(["x"]).transform(low_threshold)
    err = capsys.readouterr().err
    assert "bertfeat encode" in err and "20/20" in err
