"""Issue 2: layer selection, poolings, layer combination, normalisation, architectures,
unsupported models, device and precision checks, parameter validation in ``fit``.

Reference vectors are computed here straight from transformers' hidden states, so these
tests check the library's pooling against first principles, not against itself.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from bertfeat import BertFeaturizer, hardware, models

from ..conftest import make_tiny_model

TEXTS = ["the film was good", "awful plot and a boring story", "i love this movie",
         "what a great great film", ""]


def _featurizer(model: str, **params) -> BertFeaturizer:
    params.setdefault("cache", False)
    params.setdefault("precision", "fp32")
    return BertFeaturizer(model=model, **params)


@pytest.fixture(scope="module")
def hidden(tiny_model):
    """Hidden states of the full tiny model for TEXTS (padded batch) and the mask."""
    info = models.resolve_model(tiny_model)
    tokenizer, model = models.load(info, depth=info.n_layers, device="cpu", precision="fp32")
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(**batch, output_hidden_states=True)
    states = [h.numpy() for h in out.hidden_states]
    return states, batch["attention_mask"].numpy().astype(bool), out.pooler_output.numpy()


def _mean(h, mask):
    return np.stack([h[i][mask[i]].mean(axis=0) for i in range(len(h))])


def _max(h, mask):
    return np.stack([h[i][mask[i]].max(axis=0) for i in range(len(h))])


# ----------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("layers", [4, -5, [1, 4], [0, -7], 100])
def test_layers_out_of_range_states_the_valid_range(tiny_model, layers):
    featurizer = _featurizer(tiny_model, layers=layers)
    with pytest.raises(ValueError, match=r"which has 3 layers\. Valid layers are 0\.\.3 .*"
                                         r"-4\.\.-1"):
        featurizer.fit(TEXTS)


@pytest.mark.parametrize("layers, error", [
    ("last", ValueError), ([], ValueError), ([1.5], TypeError), (True, TypeError),
    ([1, -3], ValueError), (None, ValueError), ({"a": 1}, ValueError),
])
def test_bad_layers_specs(tiny_model, layers, error):
    with pytest.raises(error, match="layer"):
        _featurizer(tiny_model, layers=layers).fit(TEXTS)


def test_layers_all_negative_and_numpy_ints(tiny_model, hidden):
    states, mask, _ = hidden
    every = _featurizer(tiny_model, layers="all").fit(TEXTS)
    assert every.layers_ == [0, 1, 2, 3]
    assert every.n_layers_ == 3 and every.hidden_size_ == 32
    out = every.transform(TEXTS)
    assert out.shape == (len(TEXTS), 4 * 32)
    for layer in range(4):
        np.testing.assert_allclose(out[:, 32 * layer:32 * (layer + 1)],
                                   _mean(states[layer], mask), rtol=0, atol=1e-5)
    for negative, positive in [(-1, 3), (-2, 2), (-3, 1), (-4, 0)]:
        a = _featurizer(tiny_model, layers=negative).fit(TEXTS)
        b = _featurizer(tiny_model, layers=positive).fit(TEXTS)
        assert a.layers_ == [positive]
        np.testing.assert_array_equal(a.transform(TEXTS), b.transform(TEXTS))
    c = _featurizer(tiny_model, layers=np.int64(2)).fit(TEXTS)
    d = _featurizer(tiny_model, layers=[np.int64(-1), 0]).fit(TEXTS)
    assert c.layers_ == [2] and d.layers_ == [3, 0]
    np.testing.assert_allclose(d.transform(TEXTS)[:, :32], out[:, 96:], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("layer", [0, 2, 3])
def test_poolings_match_hidden_states(tiny_model, hidden, layer):
    states, mask, _ = hidden
    h = states[layer]
    expected = {
        "cls": h[:, 0],
        "mean": _mean(h, mask),
        "max": _max(h, mask),
        "mean_max": np.concatenate([_mean(h, mask), _max(h, mask)], axis=1),
    }
    for pooling, want in expected.items():
        got = _featurizer(tiny_model, layers=layer, pooling=pooling).fit(TEXTS).transform(TEXTS)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=pooling)


def test_first_last_is_mean_of_first_and_last_layer_means(tiny_model, hidden):
    states, mask, _ = hidden
    first_last = _featurizer(tiny_model, pooling="first_last").fit(TEXTS).transform(TEXTS)
    mean_1 = _featurizer(tiny_model, layers=1, pooling="mean").fit(TEXTS).transform(TEXTS)
    mean_l = _featurizer(tiny_model, layers=-1, pooling="mean").fit(TEXTS).transform(TEXTS)
    np.testing.assert_allclose(first_last, (mean_1 + mean_l) / 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(first_last, (_mean(states[1], mask) + _mean(states[3], mask)) / 2,
                               rtol=0, atol=1e-5)
    # with several selected layers: each one averaged with layer 1
    several = _featurizer(tiny_model, layers=[2, 3], pooling="first_last").fit(TEXTS)
    out = several.transform(TEXTS)
    mean_2 = _featurizer(tiny_model, layers=2).fit(TEXTS).transform(TEXTS)
    np.testing.assert_allclose(out[:, :32], (mean_1 + mean_2) / 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out[:, 32:], first_last, rtol=0, atol=1e-6)


def test_pooler_matches_the_models_pooler_output(tiny_model, hidden):
    _, _, pooler = hidden
    featurizer = _featurizer(tiny_model, pooling="pooler").fit(TEXTS)
    np.testing.assert_allclose(featurizer.transform(TEXTS), pooler, rtol=0, atol=1e-5)
    assert _featurizer(tiny_model, pooling="pooler", layers=[3]).fit(TEXTS).layers_ == [3]


@pytest.mark.parametrize("layers", [-2, 0, [2, 3], "all"])
def test_pooler_needs_the_last_layer(tiny_model, layers):
    with pytest.raises(ValueError, match="pooling='pooler'.*use layers=-1"):
        _featurizer(tiny_model, pooling="pooler", layers=layers).fit(TEXTS)


def test_pooler_on_a_model_without_one(tmp_path):
    path = make_tiny_model(tmp_path / "distil", model_type="distilbert")
    with pytest.raises(ValueError, match="no trained pooler head"):
        _featurizer(str(path), pooling="pooler").fit(TEXTS)


@pytest.mark.parametrize("pooling", ["sum", "CLS", "", None])
def test_unknown_pooling(tiny_model, pooling):
    with pytest.raises(ValueError, match="'pooling' parameter of BertFeaturizer must be"):
        _featurizer(tiny_model, pooling=pooling).fit(TEXTS)


# -------------------------------------------------------------------- combine and normalize
def test_layer_combine(tiny_model):
    layers = [1, 2, -1]
    concat = _featurizer(tiny_model, layers=layers).fit(TEXTS).transform(TEXTS)
    blocks = [concat[:, 32 * i:32 * (i + 1)] for i in range(3)]
    mean = _featurizer(tiny_model, layers=layers, layer_combine="mean").fit(TEXTS)
    total = _featurizer(tiny_model, layers=layers, layer_combine="sum").fit(TEXTS)
    np.testing.assert_allclose(mean.transform(TEXTS), np.mean(blocks, axis=0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(total.transform(TEXTS), np.sum(blocks, axis=0), rtol=0, atol=1e-5)
    assert mean.n_features_out_ == total.n_features_out_ == 32
    with pytest.raises(ValueError, match="'layer_combine' parameter of BertFeaturizer must be"):
        _featurizer(tiny_model, layers=layers, layer_combine="max").fit(TEXTS)


@pytest.mark.parametrize("params", [dict(), dict(layers="all", pooling="mean_max"),
                                    dict(layers=[1, 2], layer_combine="sum")])
def test_normalize_gives_unit_rows_in_the_same_direction(tiny_model, params):
    raw = _featurizer(tiny_model, **params).fit(TEXTS).transform(TEXTS)
    unit = _featurizer(tiny_model, normalize=True, **params).fit(TEXTS).transform(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=0, atol=1e-5)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True),
                               rtol=0, atol=1e-5)
    assert unit.dtype == np.float32


# ----------------------------------------------------------------------------- architectures
def _make_xlm_roberta(directory):
    # XLM-R is RoBERTa's architecture under another model_type and class
    path = make_tiny_model(directory, model_type="roberta", seed=1)
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="xlm-roberta", architectures=["XLMRobertaModel"])
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module",
                params=["roberta", "distilbert", "electra", "deberta-v2", "xlm-roberta"])
def architecture(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "xlm-roberta":
        path = _make_xlm_roberta(directory)
    else:
        path = make_tiny_model(directory, model_type=request.param, seed=1)
    return request.param, str(path)


def test_architectures_work(architecture):
    model_type, path = architecture
    long_text = "a very very long and boring story about money and the bank " * 2
    featurizer = _featurizer(path, layers="all", pooling="mean_max").fit(TEXTS)
    assert featurizer.n_layers_ == 3 and featurizer.hidden_size_ == 32
    assert models.resolve_model(path).model_type == model_type
    out = featurizer.transform(TEXTS + [long_text])
    assert out.shape == (len(TEXTS) + 1, 4 * 64)
    assert np.isfinite(out).all()
    # different texts, different vectors (the tokenizer and model really run)
    assert len({row.tobytes() for row in out}) == len(out)
    # padding never leaks
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(featurizer.transform([text])[0], out[i], rtol=0, atol=1e-5,
                                   err_msg=f"{model_type}: {text!r}")
    # a model cut to layer 1 gives the same layer-1 vectors
    cut = _featurizer(path, layers=1, pooling="mean_max").fit(TEXTS).transform(TEXTS)
    np.testing.assert_allclose(cut, out[:len(TEXTS), 64:128], rtol=0, atol=1e-5)
    cls = _featurizer(path, layers=-1, pooling="cls").fit(TEXTS).transform(TEXTS)
    assert cls.shape == (len(TEXTS), 32) and np.isfinite(cls).all()


def test_architecture_hidden_states_match_transformers(architecture):
    model_type, path = architecture
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    batch = tokenizer(TEXTS[:4], padding=True, return_tensors="pt")
    if model_type == "distilbert":
        batch.pop("token_type_ids", None)
    with torch.inference_mode():
        states = model(**batch, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"].numpy().astype(bool)
    got = _featurizer(path, layers=[0, -1]).fit(TEXTS).transform(TEXTS[:4])
    np.testing.assert_allclose(got[:, :32], _mean(states[0].numpy(), mask), rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[:, 32:], _mean(states[-1].numpy(), mask), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------- unsupported models
def _write_config(directory, config: dict) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return str(directory)


@pytest.mark.parametrize("config", [
    {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 32,
     "n_head": 4, "vocab_size": 100, "n_positions": 64},
    {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 32},
    {"model_type": "my-custom", "architectures": ["MyModelForCausalLM"],
     "num_hidden_layers": 2, "hidden_size": 32},
    {"model_type": "bert", "is_decoder": True, "num_hidden_layers": 2, "hidden_size": 32},
], ids=["gpt2", "llama", "causal-arch", "bert-as-decoder"])
def test_decoder_only_models_are_refused(tmp_path, config):
    path = _write_config(tmp_path / "decoder", config)
    featurizer = BertFeaturizer(model=path, cache=False)  # __init__ accepts anything
    with pytest.raises(ValueError, match="decoder-only.*encoder-only models"):
        featurizer.fit(TEXTS)


@pytest.mark.parametrize("config", [
    {"model_type": "t5", "is_encoder_decoder": True, "num_layers": 2, "d_model": 32},
    {"model_type": "bart", "is_encoder_decoder": True, "encoder_layers": 2, "d_model": 32,
     "architectures": ["BartForConditionalGeneration"]},
], ids=["t5", "bart"])
def test_encoder_decoder_models_are_refused(tmp_path, config):
    path = _write_config(tmp_path / "seq2seq", config)
    with pytest.raises(ValueError, match="encoder-decoder model.*encoder-only"):
        BertFeaturizer(model=path, cache=False).fit(TEXTS)


def test_bad_model_locations(tmp_path, tiny_model):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        _featurizer(str(empty)).fit(TEXTS)
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        _featurizer(str(file)).fit(TEXTS)
    with pytest.raises(ValueError, match="revision=.*only applies to hub ids"):
        _featurizer(tiny_model, revision="main").fit(TEXTS)
    with pytest.raises(TypeError, match="'model' parameter of BertFeaturizer must be"):
        _featurizer(123).fit(TEXTS)


def test_model_given_as_pathlike(tiny_model):
    from pathlib import Path

    a = _featurizer(Path(tiny_model)).fit(TEXTS).transform(TEXTS)
    b = _featurizer(tiny_model).fit(TEXTS).transform(TEXTS)
    np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------------- device/precision
def test_fp16_on_cpu_is_refused(tiny_model):
    with pytest.raises(ValueError, match="precision='fp16' is for GPUs"):
        _featurizer(tiny_model, device="cpu", precision="fp16").fit(TEXTS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_refused(tiny_model, device):
    with pytest.raises(ValueError, match=re.escape(f"device={device!r}") + ".*CUDA is not"):
        _featurizer(tiny_model, device=device).fit(TEXTS)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available here")
def test_mps_without_mps_is_refused(tiny_model):
    with pytest.raises(ValueError, match="device='mps' but MPS is not available"):
        _featurizer(tiny_model, device="mps").fit(TEXTS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(tiny_model):
    reference = _featurizer(tiny_model, device="cpu").fit(TEXTS).transform(TEXTS)
    cuda = _featurizer(tiny_model, device="cuda").fit(TEXTS)
    assert cuda.device_ == "cuda"
    np.testing.assert_allclose(cuda.transform(TEXTS), reference, rtol=0, atol=1e-4)
    for precision in ("fp16", "bf16"):
        out = _featurizer(tiny_model, device="cuda", precision=precision).fit(TEXTS)
        got = out.transform(TEXTS)
        assert got.dtype == np.float32
        cosine = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(
            reference, axis=1)
        assert (cosine > 0.999).all(), (precision, cosine)


@pytest.mark.parametrize("device, match", [("tpu", "device must be"), ("gpu", "device must be"),
                                           (0, "'device' parameter of BertFeaturizer must be")])
def test_unknown_devices(tiny_model, device, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _featurizer(tiny_model, device=device).fit(TEXTS)


def test_unknown_precision(tiny_model):
    with pytest.raises(ValueError, match="'precision' parameter of BertFeaturizer must be"):
        _featurizer(tiny_model, precision="fp8").fit(TEXTS)


def test_auto_device_and_precisions_on_cpu(tiny_model):
    if not torch.cuda.is_available():
        assert _featurizer(tiny_model, device="auto").fit(TEXTS).device_ == "cpu"
    fp32 = _featurizer(tiny_model, device="cpu").fit(TEXTS)
    assert fp32.precision_ == "fp32"
    reference = fp32.transform(TEXTS[:4])
    bf16 = _featurizer(tiny_model, device="cpu", precision="bf16").fit(TEXTS)
    assert bf16.precision_ == "bf16"
    out = bf16.transform(TEXTS[:4])
    assert out.dtype == np.float32
    cosine = (out * reference).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(
        reference, axis=1)
    assert (cosine > 0.999).all()
    # precision changes vectors: new key (fingerprints exist when a store needs them)
    assert (bf16.set_params(cache="auto").fit(TEXTS).fingerprint_
            != fp32.set_params(cache="auto").fit(TEXTS).fingerprint_)
    auto = _featurizer(tiny_model, device="cpu", precision="auto").fit(TEXTS)
    assert auto.precision_ == hardware.requested_precision("auto", "cpu") in {"fp32", "bf16"}


# ------------------------------------------------------------------------ parameter checks
@pytest.mark.parametrize("params, error, match", [
    (dict(batch_size=0), ValueError, "'batch_size' parameter of BertFeaturizer must be"),
    (dict(batch_size=2.5), ValueError, "'batch_size' parameter of BertFeaturizer must be"),
    (dict(batch_size=True), ValueError, "'batch_size' parameter of BertFeaturizer must be"),
    (dict(batch_size=None), ValueError, "'batch_size' parameter of BertFeaturizer must be"),
    (dict(max_batch_tokens=-1), ValueError, "'max_batch_tokens' parameter"),
    (dict(max_length=0), ValueError, "'max_length' parameter"),
    (dict(max_length=1), ValueError, "max_length must leave room"),
    (dict(max_length=65), ValueError, r"max_length=65 exceeds the limit .* \(64 tokens\)"),
    (dict(show_progress="yes"), ValueError, "'show_progress' parameter"),
    (dict(normalize="yes"), TypeError, "'normalize' parameter"),
    (dict(cache=123), TypeError, "'cache' parameter"),
    (dict(on_bad_input="drop"), ValueError, "'on_bad_input' parameter"),
])
def test_parameters_are_validated_in_fit(tiny_model, params, error, match):
    featurizer = BertFeaturizer(model=tiny_model, **params)  # no error here
    with pytest.raises(error, match=match):
        featurizer.fit(TEXTS)


def test_max_length_default_is_the_models_limit(tiny_model):
    featurizer = _featurizer(tiny_model).fit(TEXTS)
    assert featurizer.max_length_ == 64
    assert _featurizer(tiny_model, max_length=16).fit(TEXTS).max_length_ == 16
