"""Damaged, incomplete or unsuitable model directories give clear errors, never vectors.

Issue 12 items 4, 5, 6 and 9: every error names the file or parameter and says what to do;
nothing from such a model reaches the store.
"""

from __future__ import annotations

import json

import pytest

from bertfeat import BertFeaturizer, FeatureStore, models
from bertfeat.encoder import NonFiniteError

from ..conftest import make_tiny_model

TEXTS = ["good film", "awful plot", "what a great story"]


def _fit(path, **kwargs):
    kwargs.setdefault("cache", False)
    return BertFeaturizer(model=str(path), device="cpu", precision="fp32", pooling="mean",
                          **kwargs).fit(TEXTS)


@pytest.fixture
def model_dir(tmp_path):
    return make_tiny_model(tmp_path / "m")


def _edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


# ------------------------------------------------------------------- item 4: tokenizer
def test_a_directory_without_tokenizer_files_is_refused(model_dir):
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (model_dir / name).unlink()
    with pytest.raises(ValueError, match="holds no tokenizer files.*unknown token"):
        _fit(model_dir)


def test_a_tokenizer_far_smaller_than_the_embeddings_is_refused(model_dir):
    (model_dir / "tokenizer.json").unlink()
    (model_dir / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    fitted = _fit(model_dir)
    with pytest.raises(ValueError, match="tokenizer .* knows 5 tokens but the model has"):
        fitted.transform(TEXTS)


# -------------------------------------------------------------- item 5: decoder-only
@pytest.mark.parametrize("model_type", ["granite", "olmo2", "qwen2_moe", "gpt_bigcode",
                                        "mistral", "gemma3_text"])
def test_decoder_only_models_are_refused_from_their_config(tmp_path, model_type):
    path = tmp_path / model_type
    path.mkdir()
    (path / "config.json").write_text(json.dumps(
        {"model_type": model_type, "num_hidden_layers": 2, "hidden_size": 32,
         "n_layer": 2, "n_embd": 32}))
    with pytest.raises(ValueError, match="decoder-only \\(causal\\).*encoder-only"):
        _fit(path)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "xlm-roberta", "distilbert",
                                        "electra", "deberta-v2", "mpnet", "albert",
                                        "modernbert", "camembert"])
def test_encoders_are_not_taken_for_decoders(model_type):
    assert not models.spec._is_decoder_only({"model_type": model_type})


# ---------------------------------------------------- item 6: weights that do not fit
def test_config_with_more_layers_than_the_weights_is_an_error(model_dir, tmp_path):
    _edit_config(model_dir, num_hidden_layers=5)  # layers 3-5 would be random
    store = FeatureStore(tmp_path / "store")
    fitted = _fit(model_dir, cache=store)
    with pytest.raises(ValueError, match="missing from the weights .*encoder.layer.3"):
        fitted.transform(TEXTS)
    assert store.stats()["entries"] == 0


def test_config_with_fewer_layers_than_the_weights_is_an_error(model_dir):
    _edit_config(model_dir, num_hidden_layers=2)
    with pytest.raises(ValueError, match="in the weights but not in the model.*layer.2"):
        _fit(model_dir).transform(TEXTS)


def test_config_and_weights_of_other_shapes_is_an_error(model_dir):
    _edit_config(model_dir, intermediate_size=48)
    with pytest.raises(ValueError, match="do not fit the shapes config.json describes"):
        _fit(model_dir).transform(TEXTS)


def test_task_heads_in_the_checkpoint_are_fine(tmp_path):
    import torch
    import transformers

    path = make_tiny_model(tmp_path / "base")
    config = transformers.AutoConfig.from_pretrained(str(path))
    torch.manual_seed(0)
    transformers.BertForMaskedLM(config).save_pretrained(str(path))  # + cls.predictions
    assert _fit(path).transform(TEXTS).shape[0] == 3


def test_nan_weights_give_an_error_and_store_nothing(model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    weights = load_file(str(model_dir / "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[key][7:] = float("nan")
    save_file(weights, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    store = FeatureStore(tmp_path / "store")
    with pytest.raises(NonFiniteError, match="NaN or infinite values.*Nothing of this batch"):
        _fit(model_dir, cache=store).transform(TEXTS)
    assert store.stats()["entries"] == 0


# ------------------------------------------------------ item 9: damaged/odd files
@pytest.mark.parametrize("content, match", [
    ("{not json", "config.json is not valid JSON"),
    ("", "config.json is not valid JSON"),
    ("[1, 2, 3]", "config.json holds a JSON list"),
    ('"bert"', "config.json holds a JSON str"),
    (b"\xff\xfe\x00".decode("latin-1"), "config.json is not valid JSON"),
])
def test_a_damaged_config_names_the_file(model_dir, content, match):
    (model_dir / "config.json").write_text(content, encoding="latin-1")
    with pytest.raises(ValueError, match=match):
        _fit(model_dir)


@pytest.mark.parametrize("content, match", [
    ("{oops", "tokenizer_config.json is not valid JSON"),
    ("", "tokenizer_config.json is not valid JSON"),
    ("[]", "tokenizer_config.json holds a JSON list"),
])
def test_a_damaged_tokenizer_config_names_the_file(model_dir, content, match):
    (model_dir / "tokenizer_config.json").write_text(content)
    with pytest.raises(ValueError, match=match):
        _fit(model_dir)


@pytest.mark.parametrize("cut", [0.5, 0.999, 4])
def test_truncated_safetensors_are_refused(model_dir, cut):
    weights = model_dir / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * cut) if cut < 1 else cut])
    with pytest.raises(ValueError, match="model.safetensors is (truncated|not a readable)"):
        _fit(model_dir)


def test_a_garbled_safetensors_header_is_refused(model_dir):
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:16] = b"\x00garble!"
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        _fit(model_dir)


def test_zero_layers_in_the_config_is_refused(model_dir):
    _edit_config(model_dir, num_hidden_layers=0)
    with pytest.raises(ValueError, match="num_hidden_layers=0.*at least one"):
        _fit(model_dir)


def test_chunk_with_no_room_for_text_is_refused(tiny_model):
    with pytest.raises(ValueError, match="long_text='chunk' with max_length=2.*>= 3"):
        _fit(tiny_model, long_text="chunk", max_length=2)
    fitted = _fit(tiny_model, long_text="chunk", max_length=3)
    assert fitted.transform(["a very long text about a good film"]).shape[0] == 1
