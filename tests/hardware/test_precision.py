"""Issue 4: precisions (auto, bf16, int8), their fidelity to fp32, the fingerprint, and the
encoder's fast paths (vectorised padding, pooling of every layer without copies).

Fidelity is checked per text, for every layer and every pooling statistic: cosine >= 0.999
to fp32 for bf16 (the promise of ``precision="auto"``), a looser bound for int8.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertfeat import BertFeaturizer, _linear, encoder, hardware, models
from bertfeat.engine import precision as auto_precision
from bertfeat.pooling import pool_stats

from ..conftest import WORDS, needs_default_model

TEXTS = ["the film was good", "awful plot and a boring story", "i love this movie",
         "what a great great film", "", "a very long and boring story about money " * 4]


def _stats(model: str, precision: str, texts: list[str], max_length: int | None = None):
    """Every layer's (cls, mean, max) statistics, shape (n, layers + 1, 3, hidden)."""
    info = models.resolve_model(model)
    tokenizer, net = models.load(info, depth=info.n_layers, device="cpu", precision=precision)
    out = np.zeros((len(texts), info.n_layers + 1, 3, info.hidden_size), np.float32)

    def on_batch(positions, stats, pooler, truncated):
        out[positions] = stats

    encoder.encode(tokenizer, net, texts, depth=info.n_layers,
                   max_length=max_length or info.max_length, batch_size=16, max_tokens=4096,
                   device="cpu", want_pooler=False, on_batch=on_batch)
    return out, net


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _bf16_runs() -> bool:
    try:
        torch.ones(2, 2, dtype=torch.bfloat16) @ torch.ones(2, 2, dtype=torch.bfloat16)
    except RuntimeError:  # pragma: no cover
        return False
    return True


@pytest.fixture(autouse=True)
def _int8_capable_cpu(monkeypatch):
    """These tests check int8's arithmetic, not the CPU: they run on an AVX2-only CI
    machine too, where ``precision="int8"`` is refused (tests/engine/test_int8_cpu.py)."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(hardware.machine, "cpu_flags",
                        lambda: frozenset({"avx2", "avx512_vnni", "amx_int8"}))


# ----------------------------------------------------------------------- auto resolution
# (the measured decision itself: tests/hardware/test_precision_auto.py)
def test_auto_candidates_on_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert hardware.candidates("cuda") == ("fp32", "bf16", "fp16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert hardware.candidates("cuda:1") == ("fp32", "fp16")
    assert hardware.candidates("mps") == ("fp32",)
    monkeypatch.delenv("BERTFEAT_PRECISION")
    assert auto_precision.resolve_precision("auto", "mps") == "fp32"  # nothing to measure


def test_explicit_precisions_pass_or_are_refused():
    for precision in ("fp32", "bf16", "int8"):
        assert auto_precision.resolve_precision(precision, "cpu") == precision
    assert auto_precision.resolve_precision("fp16", "cuda") == "fp16"
    with pytest.raises(ValueError, match="fp16"):
        auto_precision.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="int8"):
        auto_precision.resolve_precision("int8", "cuda")


def test_requested_precision_leaves_auto_only_where_a_measurement_must_decide(monkeypatch):
    """The hardware layer resolves everything but the measurement: ``BERTFEAT_PRECISION``,
    a device's only candidate, explicit precisions checked; ``"auto"`` with a choice stays
    ``"auto"`` (the engine measures it)."""
    monkeypatch.delenv("BERTFEAT_PRECISION")
    monkeypatch.setattr(hardware.machine, "candidates", lambda device: ("fp32", "bf16"))
    assert hardware.requested_precision("auto", "cpu") == "auto"
    assert hardware.requested_precision("bf16", "cpu") == "bf16"
    monkeypatch.setenv("BERTFEAT_PRECISION", "bf16")
    assert hardware.requested_precision("auto", "cpu") == "bf16"
    monkeypatch.setenv("BERTFEAT_PRECISION", "fp16")  # the override is checked too
    with pytest.raises(ValueError, match="fp16.*GPUs"):
        hardware.requested_precision("auto", "cpu")
    monkeypatch.delenv("BERTFEAT_PRECISION")
    monkeypatch.setattr(hardware.machine, "candidates", lambda device: ("fp32",))
    assert hardware.requested_precision("auto", "cpu") == "fp32"


# --------------------------------------------------------------------------- fingerprint
def test_precision_is_part_of_the_fingerprint(tiny_model, tmp_path):
    info = models.resolve_model(tiny_model)
    prints = {p: models.fingerprint(info, max_length=64, precision=p)
              for p in ("fp32", "bf16", "fp16", "int8")}
    assert len(set(prints.values())) == 4
    fitted = {p: BertFeaturizer(model=tiny_model, precision=p, cache=str(tmp_path / "s"),
                                device="cpu").fit(["x"]).fingerprint_
              for p in ("fp32", "bf16", "int8")}
    assert fitted == {p: prints[p] for p in fitted}


# ------------------------------------------------------------------------------- bf16
@pytest.mark.skipif(not _bf16_runs(), reason="no bf16 matmul on this CPU")
def test_bf16_weights_cast_once_and_linear_layers_swapped(tiny_model):
    info = models.resolve_model(tiny_model)
    _, net = models.load(info, depth=info.n_layers, device="cpu", precision="bf16")
    assert {p.dtype for p in net.parameters()} == {torch.bfloat16}
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    if _linear._bf16_kernel_works():
        assert all(isinstance(m, _linear.Bf16Linear) for m in linears)
    x = torch.randn(2, 3, linears[0].in_features).to(torch.bfloat16)
    with torch.inference_mode():
        got = linears[0](x).float()
        want = torch.nn.functional.linear(x, linears[0].weight, linears[0].bias).float()
    torch.testing.assert_close(got, want, rtol=0.02, atol=0.02)


@pytest.mark.skipif(not _bf16_runs(), reason="no bf16 matmul on this CPU")
def test_bf16_keeps_every_layer_and_statistic_within_cosine_0999_tiny(tiny_model):
    ref, _ = _stats(tiny_model, "fp32", TEXTS)
    got, _ = _stats(tiny_model, "bf16", TEXTS)
    cos = _cosine(got, ref)  # (texts, layers, statistics)
    assert cos.min() >= 0.999, cos.min(axis=0)


@needs_default_model
@pytest.mark.skipif(not _bf16_runs(), reason="no bf16 matmul on this CPU")
def test_bf16_keeps_cosine_0999_on_real_text_default_model(shared_data):
    import csv

    with open(shared_data / "sst2_train.csv", encoding="utf-8") as fh:
        sentences = [row["text"] for row in csv.DictReader(fh)][:48]
    texts = sentences[:40] + [" ".join(sentences[i:i + 6]) for i in range(0, 48, 6)]
    ref, _ = _stats("default", "fp32", texts, max_length=256)
    got, _ = _stats("default", "bf16", texts, max_length=256)
    cos = _cosine(got, ref)
    assert cos.min() >= 0.999, cos.min(axis=0)
    # the poolings built from the statistics: mean_max and first_last too
    mean_max = _cosine(np.concatenate((got[:, :, 1], got[:, :, 2]), -1),
                       np.concatenate((ref[:, :, 1], ref[:, :, 2]), -1))
    first_last = _cosine(got[:, 1:2, 1] + got[:, :, 1], ref[:, 1:2, 1] + ref[:, :, 1])
    assert mean_max.min() >= 0.999 and first_last.min() >= 0.999


# ------------------------------------------------------------------------------- int8
def test_int8_swaps_linear_layers_and_stays_close(tiny_model):
    ref, _ = _stats(tiny_model, "fp32", TEXTS)
    got, net = _stats(tiny_model, "int8", TEXTS)
    assert not any(type(m) is torch.nn.Linear for m in net.modules())
    assert any(isinstance(m, _linear.Int8Linear) for m in net.modules())
    cos = _cosine(got, ref)
    assert cos.mean() >= 0.99 and cos.min() >= 0.95, (cos.mean(), cos.min())


def test_int8_linear_matches_float_linear():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 48)
    q = _linear.Int8Linear(lin)
    x = torch.randn(5, 7, 64)
    with torch.inference_mode():
        got, want = q(x), lin(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(got.reshape(-1, 48), want.reshape(-1, 48))
    assert cos.min() > 0.999
    # per-token scales: a row's result does not depend on the other rows of the batch
    with torch.inference_mode():
        alone = q(x[2:3, 4:5])
        x_loud = x.clone()
        x_loud[0] *= 100.0
        together = q(x_loud)[2:3, 4:5]
    torch.testing.assert_close(alone, together, rtol=0, atol=1e-6)


def test_int8_vectors_do_not_depend_on_batching(tiny_model):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(1, 25))) for _ in range(12)]

    def run(**params):
        return BertFeaturizer(model=tiny_model, precision="int8", cache=False, layers="all",
                              device="cpu", **params).fit(["x"]).transform(texts)

    together, alone = run(batch_size=12), run(batch_size=1)
    cos = _cosine(together, alone)
    assert cos.min() > 0.9999


# ------------------------------------------------------------------- encoder fast paths
def test_flatten_and_pad_match_a_plain_loop():
    rng = np.random.default_rng(1)
    ids = [list(rng.integers(5, 100, size=int(n))) for n in rng.integers(0, 9, size=30)]
    flat, offsets, lengths = encoder.flatten_ids(ids)
    assert lengths.tolist() == [len(x) for x in ids]
    for positions in (np.arange(30), np.array([3, 1, 29]), np.array([7])):
        got_ids, got_mask = encoder.pad_batch(flat, offsets, lengths, positions, pad_id=-1)
        width = max(len(ids[p]) for p in positions)
        want = np.full((len(positions), width), -1, np.int64)
        mask = np.zeros((len(positions), width), np.int64)
        for row, p in enumerate(positions):
            want[row, :len(ids[p])] = ids[p]
            mask[row, :len(ids[p])] = 1
        np.testing.assert_array_equal(got_ids, want)
        np.testing.assert_array_equal(got_mask, mask)
    empty = encoder.flatten_ids([[], []])
    got_ids, got_mask = encoder.pad_batch(*empty, np.array([0, 1]), pad_id=0)
    assert got_ids.shape == (2, 0) and got_mask.shape == (2, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lengths", [[7, 7, 7], [9, 8, 3, 1], [3, 9, 1, 8], [5, 0, 2]])
def test_pool_layers_equals_pool_stats(dtype, lengths):
    torch.manual_seed(0)
    lengths = np.array(lengths)
    width = int(lengths.max())
    hidden = tuple(torch.randn(len(lengths), width, 16).to(dtype) for _ in range(3))
    mask = torch.from_numpy((np.arange(width)[None] < lengths[:, None]).astype(np.int64))
    want = torch.stack([pool_stats(h, mask) for h in hidden], dim=1)
    real_tokens = [h[mask.bool()].clone() for h in hidden]
    got = encoder.pool_layers(hidden, mask, lengths)
    # padded positions may be overwritten in place, real tokens never
    for h, before in zip(hidden, real_tokens):
        torch.testing.assert_close(h[mask.bool()], before, rtol=0, atol=0)
    assert got.dtype == torch.float32 and got.shape == want.shape
    real = lengths > 0  # an empty row has no max; both give the float32 minimum or -inf
    torch.testing.assert_close(got[real], want[real], rtol=1e-6, atol=1e-6)
