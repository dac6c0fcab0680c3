"""Issue 4, item 3: texts are tokenised once, on every core, exactly as the tokenizer would.

:func:`bertfeat.encoder.tokenize` and :func:`~bertfeat.encoder.tokenize_chunks` call a private
copy of the fast tokenizer's Rust backend from several threads. They must give the very
ids, truncation flags and windows of the tokenizer's own ``__call__``, for every kind of
tokenizer (WordPiece, byte-level BPE, Unigram), for both truncation sides, and whether or
not the tokenizers library parallelises by itself; and they must leave the loaded
tokenizer's own settings alone.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from bertfeat import batching, encoder

from ..conftest import WORDS, make_tiny_model

CORPUS = [" ".join(random.Random(i).choices(WORDS, k=12)) for i in range(200)]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(0, 60))) for _ in range(n)]
    odd = ["", "[CLS] [SEP] [MASK]", "ça 東京 🙂 \u200f", "x" * 300, "  "]
    for i, text in zip(range(0, n, 97), odd):
        texts[i] = text
    return texts


def _wordpiece(tmp_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(make_tiny_model(tmp_path / "wp")))


def _bpe(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def _unigram(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["[CLS]", "[SEP]", "[PAD]", "[UNK]"], unk_token="[UNK]"))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 0), ("[SEP]", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]",
                                   pad_token="[PAD]", unk_token="[UNK]")


KINDS = {"wordpiece": _wordpiece, "bpe": _bpe, "unigram": _unigram}


@pytest.fixture(params=sorted(KINDS))
def tokenizer(request, tmp_path):
    return KINDS[request.param](tmp_path)


def _reference(tokenizer, texts, max_length):
    enc = tokenizer(texts, truncation=True, max_length=max_length,
                    return_overflowing_tokens=True, return_attention_mask=False,
                    return_token_type_ids=False)
    mapping = np.asarray(enc["overflow_to_sample_mapping"])
    ids = enc["input_ids"]
    first = [ids[int(np.flatnonzero(mapping == i)[0])] for i in range(len(texts))]
    return first, np.bincount(mapping, minlength=len(texts)) > 1


@pytest.mark.parametrize("parallel", ["true", "false"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_tokenize_matches_the_tokenizer(tokenizer, side, parallel, monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", parallel)
    tokenizer.truncation_side = side
    texts = _texts(700)  # > 2 x _TEXTS_PER_THREAD: the threaded path runs
    before = tokenizer.backend_tokenizer.truncation
    got = encoder.tokenize(tokenizer, texts, 16)
    want_ids, want_truncated = _reference(tokenizer, texts, 16)
    assert got.input_ids == want_ids
    np.testing.assert_array_equal(got.truncated, want_truncated)
    assert got.truncated.any() and not got.truncated.all()
    # the loaded tokenizer keeps its own settings: the encoder works on a private copy
    tokenizer.truncation_side = "right"
    assert tokenizer.backend_tokenizer.truncation == before or before is None


def test_threads_do_not_change_the_order(tokenizer, monkeypatch):
    texts = _texts(1500, seed=3)
    monkeypatch.setattr(batching, "_tokenizer_threads", lambda: 1)
    one = encoder.tokenize(tokenizer, texts, 24)
    monkeypatch.setattr(batching, "_tokenizer_threads", lambda: 4)
    four = encoder.tokenize(tokenizer, texts, 24)
    assert one.input_ids == four.input_ids
    np.testing.assert_array_equal(one.truncated, four.truncated)


def test_copies_are_kept_per_setting(tokenizer):
    a = encoder.truncating_backend(tokenizer, 16, stride=0)
    assert encoder.truncating_backend(tokenizer, 16, stride=0) is a
    assert encoder.truncating_backend(tokenizer, 32, stride=0) is not a
    assert encoder.truncating_backend(tokenizer, 16, stride=4) is not a
    assert a.truncation["max_length"] == 16


@pytest.mark.parametrize("max_chunks", [1, 2, 3, 100])
def test_chunks_match_the_tokenizers_overflow_windows(tokenizer, max_chunks):
    texts = _texts(600, seed=5)
    chunks, owner, capped = encoder.tokenize_chunks(tokenizer, texts, 12, 3, max_chunks)
    enc = tokenizer(texts, truncation=True, max_length=12, stride=3,
                    return_overflowing_tokens=True, return_attention_mask=False,
                    return_token_type_ids=False)
    mapping = np.asarray(enc["overflow_to_sample_mapping"])
    counts = np.bincount(mapping, minlength=len(texts))
    head, tail = (max_chunks + 1) // 2, max_chunks // 2
    want_chunks, want_owner = [], []
    for doc in range(len(texts)):
        windows = [enc["input_ids"][i] for i in np.flatnonzero(mapping == doc)]
        if len(windows) > max_chunks:
            windows = windows[:head] + (windows[-tail:] if tail else [])
        want_chunks += windows
        want_owner += [doc] * len(windows)
    assert chunks == want_chunks
    np.testing.assert_array_equal(owner, want_owner)
    np.testing.assert_array_equal(capped, counts > max_chunks)
    if max_chunks < 100:
        assert capped.any()
