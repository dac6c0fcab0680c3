"""The packed bf16 forward (bertfeat.models.packed): the same encoder, less work.

Checked against transformers' own forward of the same bf16 weights and against fp32:
every layer's pooled statistics within the bf16 cross-batch bound, on BERT, RoBERTa and XLM-R,
through both attention paths; padding never read; weights changed in place seen; models
it does not fit (fp32, DistilBERT, decoders, training mode) left to transformers; and the
encoder and BertFeaturizer using it for bf16 CPU models only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from bertfeat import BertFeaturizer, encoder, models
from bertfeat.models import packed
from bertfeat.pooling import pool_layers

from ..conftest import WORDS, make_tiny_model
from ..equality import assert_within_bound

pytestmark = pytest.mark.skipif(not packed._kernels_work(),
                                reason="oneDNN bf16 linear kernels are not available")


def _config(kind: str = "bert", **extra):
    common = dict(vocab_size=len(WORDS) + 10, hidden_size=32, num_hidden_layers=3,
                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=130,
                  pad_token_id=0)
    common.update(extra)
    if kind == "roberta":
        return transformers.RobertaConfig(**common), transformers.RobertaModel
    if kind == "xlm-roberta":
        return transformers.XLMRobertaConfig(**common), transformers.XLMRobertaModel
    return transformers.BertConfig(**common), transformers.BertModel


def _model(kind: str = "bert", dtype=torch.bfloat16, seed: int = 0, **extra):
    config, cls = _config(kind, **extra)
    torch.manual_seed(seed)
    config._attn_implementation = "sdpa"
    model = cls(config).eval().requires_grad_(False)
    return model.to(dtype)


def _batch(lengths, seed: int = 0, vocab: int = 40):
    """A padded batch (ids from 5 upwards, pad id 0) with the given real lengths."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, dtype=np.int64)
    width = int(lengths.max())
    ids = np.zeros((len(lengths), width), dtype=np.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(5, vocab, size=n)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    return torch.from_numpy(ids), torch.from_numpy(mask), lengths


def _stats_transformers(model, ids, mask, lengths):
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids),
                    output_hidden_states=True, return_dict=True)
        return pool_layers(list(out.hidden_states), mask, lengths).numpy()


def _stats_packed(model, ids, mask, lengths, **kwargs):
    enc = packed.packed_encoder(model, **kwargs)
    assert enc is not None
    with torch.inference_mode():
        states = enc.hidden_states(ids, mask, lengths, token_type_ids=torch.zeros_like(ids))
        return pool_layers(states, mask, lengths).numpy()


def _flat(stats):
    """(batch, layers, 3, hidden) -> one row per (text, layer, statistic)."""
    return stats.reshape(-1, stats.shape[-1])


@pytest.mark.parametrize("kind", ["bert", "roberta", "xlm-roberta"])
@pytest.mark.parametrize("math_max_len", [packed.MATH_ATTENTION_MAX_LEN, 0])
def test_packed_matches_transformers_and_fp32(kind, math_max_len):
    """Both attention paths (GEMMs + softmax, fused SDPA) give transformers' statistics."""
    bf16 = _model(kind)
    fp32 = _model(kind, dtype=torch.float32)
    ids, mask, lengths = _batch([23, 17, 17, 9, 3, 1])
    got = _stats_packed(bf16, ids, mask, lengths, math_max_len=math_max_len)
    assert got.shape == (6, 4, 3, 32) and np.isfinite(got).all()
    assert_within_bound(_flat(got), _flat(_stats_transformers(bf16, ids, mask, lengths)),
                        precision="bf16")
    assert_within_bound(_flat(got), _flat(_stats_transformers(fp32, ids, mask, lengths)),
                        precision="bf16")


def test_long_batches_use_fused_attention_and_agree():
    """A batch wider than MATH_ATTENTION_MAX_LEN runs SDPA; results match the math path."""
    model = _model()
    width = packed.MATH_ATTENTION_MAX_LEN + 20
    ids, mask, lengths = _batch([width, width - 7, 12])
    fused = _stats_packed(model, ids, mask, lengths)
    math = _stats_packed(model, ids, mask, lengths, math_max_len=width)
    assert_within_bound(_flat(fused), _flat(math), precision="bf16")
    assert_within_bound(_flat(fused), _flat(_stats_transformers(model, ids, mask, lengths)),
                        precision="bf16")


def test_padding_is_never_read():
    """A text's statistics do not depend on the padding ids around it."""
    model = _model()
    ids, mask, lengths = _batch([20, 6, 2])
    noisy = ids.clone()
    noisy[mask == 0] = 7  # padded positions hold real token ids now
    clean = _stats_packed(model, ids, mask, lengths)
    assert np.array_equal(clean, _stats_packed(model, noisy, mask, lengths))


def test_padded_positions_hold_finite_copies():
    model = _model()
    ids, mask, lengths = _batch([9, 4])
    with torch.inference_mode():
        states = packed.packed_encoder(model).hidden_states(ids, mask, lengths)
    assert len(states) == 4
    for state in states[1:]:
        assert state.shape == (2, 9, 32) and state.dtype == torch.bfloat16
        assert torch.equal(state[1, 4:], state[1, 3:4].expand(5, 32))


def test_weights_changed_in_place_are_seen():
    """The fused query/key/value weight is built on every call, never cached."""
    model = _model()
    ids, mask, lengths = _batch([11, 5])
    before = _stats_packed(model, ids, mask, lengths)
    with torch.no_grad():
        model.encoder.layer[0].attention.self.key.weight.mul_(3)
    after = _stats_packed(model, ids, mask, lengths)
    assert not np.allclose(before[:, 1:], after[:, 1:])
    assert_within_bound(_flat(after), _flat(_stats_transformers(model, ids, mask, lengths)),
                        precision="bf16")


def test_other_activation_runs_after_the_gemm():
    """A non-erf activation is not fused, and still matches transformers."""
    model = _model(hidden_act="relu")
    enc = packed.packed_encoder(model)
    assert enc is not None and not any(p["fused_gelu"] for p in enc.layers)
    ids, mask, lengths = _batch([13, 8])
    assert_within_bound(_flat(_stats_packed(model, ids, mask, lengths)),
                        _flat(_stats_transformers(model, ids, mask, lengths)),
                        precision="bf16")
    assert all(p["fused_gelu"] for p in packed.packed_encoder(_model()).layers)


def test_models_it_does_not_fit_are_left_to_transformers():
    assert packed.packed_encoder(_model(dtype=torch.float32)) is None
    assert packed.packed_encoder(_model().train()) is None
    assert packed.packed_encoder(_model(is_decoder=True)) is None
    assert packed.packed_encoder(_model(position_embedding_type="relative_key")) is None
    distil = transformers.DistilBertModel(transformers.DistilBertConfig(
        vocab_size=50, dim=32, n_layers=2, n_heads=4, hidden_dim=64)).eval()
    assert packed.packed_encoder(distil.to(torch.bfloat16)) is None
    chunked = _model()
    chunked.encoder.layer[1].chunk_size_feed_forward = 4
    assert packed.packed_encoder(chunked) is None


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(make_tiny_model(tmp_path_factory.mktemp("packed-bert")))


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 40)))) for _ in range(n)]


def test_encoder_runs_bf16_cpu_models_packed(tiny_dir, monkeypatch):
    """encode() uses the packed pass for a bf16 model (not for fp32, nor for the pooler)."""
    calls = []
    original = packed.PackedEncoder.hidden_states

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(packed.PackedEncoder, "hidden_states", counting)
    info = models.resolve_model(tiny_dir)
    texts = _texts(30)
    results = {}
    for precision in ("bf16", "fp32"):
        tokenizer, model = models.load(info, depth=info.n_layers, device="cpu",
                                       precision=precision)
        stats = {}

        def on_batch(positions, batch_stats, pooler, truncated, stats=stats):
            for row, p in enumerate(positions):
                stats[int(p)] = batch_stats[row]

        calls.clear()
        for want_pooler in (False, True):
            encoder.encode(tokenizer, model, texts, depth=info.n_layers, max_length=64,
                           batch_size=8, max_tokens=128, device="cpu",
                           want_pooler=want_pooler, on_batch=on_batch)
            if not want_pooler:
                results[precision] = np.stack([stats[i] for i in range(len(texts))])
                packed_calls = len(calls)
        assert (packed_calls > 0) == (precision == "bf16")
        assert len(calls) == packed_calls  # the pooler output runs through transformers
    assert_within_bound(_flat(results["bf16"]), _flat(results["fp32"]), precision="bf16")


def test_featurizer_bf16_same_with_and_without_the_packed_pass(tiny_dir, monkeypatch):
    texts = _texts(40, seed=3)
    kwargs = dict(model=tiny_dir, layers="all", pooling="mean_max", precision="bf16",
                  cache=False, show_progress=False)
    fast = BertFeaturizer(**kwargs).fit(texts).transform(texts)
    monkeypatch.setattr(packed, "packed_encoder", lambda model, **kw: None)
    slow = BertFeaturizer(**kwargs).fit(texts).transform(texts)
    assert fast.shape == slow.shape
    assert_within_bound(fast, slow, precision="bf16")
