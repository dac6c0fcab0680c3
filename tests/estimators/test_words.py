"""Issue 16: word-level features (BertWordFeaturizer), the WordTagger and their helpers.

Alignment is checked against hand-written piece lists for WordPiece, byte-level BPE and
Unigram (SentencePiece-style) tokenizers, and features against the model run by hand.
"""

from __future__ import annotations

import pickle
import random
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_val_score
from sklearn.utils._param_validation import InvalidParameterError

from bertfeat import BertWordFeaturizer, FeatureStore, WordTagger, wordencoder
from bertfeat.conll import read_conll
from bertfeat.pooling import pool_subwords
from bertfeat.tagscore import entities, entity_f1, is_bio, token_accuracy
from bertfeat.words import flatten_tags, sentence_ids, unflatten_tags

from ..conftest import make_tiny_model
from ..equality import assert_same_computation

WORDS = ["The", "cats", "\u200b", "sat", "", "films", "x\u0301"]


# ------------------------------------------------------------------ tiny tokenizers
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("words-bert"), max_positions=64))


def _wordpiece(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def _bpe(_):
    """Byte-level BPE with a hand-made vocabulary: bytes + 'Ġcat' and 'Ġsat'."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>"] + alphabet)}
    merges = [("Ġ", "c"), ("Ġc", "a"), ("Ġca", "t"), ("Ġ", "s"), ("Ġs", "a"), ("Ġsa", "t")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def _unigram(_):
    """Unigram + Metaspace (SentencePiece-style) with a hand-made vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = [("[CLS]", 0.0), ("[SEP]", 0.0), ("[PAD]", 0.0), ("[UNK]", 0.0), ("▁", -2.0),
              ("▁cat", -1.0), ("s", -1.5), ("▁sat", -1.0)]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    tok = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 0), ("[SEP]", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]",
                                   pad_token="[PAD]", unk_token="[UNK]")


#: the pieces of WORDS, worked out by hand from each vocabulary ([UNK] = no piece at all)
EXPECTED = {
    "wordpiece": ([["the"], ["c", "##a", "##t", "##s"], ["[UNK]"], ["s", "##a", "##t"],
                   ["[UNK]"], ["film", "##s"], ["x"]],  # the normaliser strips the accent
                  [0, 0, 1, 0, 1, 0, 0], ["[CLS]"], ["[SEP]"]),
    # a prefix space before every word, as in running text (the tokenizer has none)
    "bpe": ([["Ġ", "T", "h", "e"], ["Ġcat", "s"], ["Ġ", "â", "Ģ", "ĭ"], ["Ġsat"], ["<unk>"],
             ["Ġ", "f", "i", "l", "m", "s"], ["Ġ", "x", "Ì", "ģ"]],
            [0, 0, 0, 0, 1, 0, 0], ["<s>"], ["</s>"]),
    "unigram": ([["▁", "[UNK]", "h", "e"], ["▁cat", "s"], ["▁", "[UNK]"], ["▁sat"], ["[UNK]"],
                 ["▁", "f", "i", "l", "m", "s"], ["▁", "x", "[UNK]"]],
                [0, 0, 0, 0, 1, 0, 0], ["[CLS]"], ["[SEP]"]),
}
KINDS = {"wordpiece": _wordpiece, "bpe": _bpe, "unigram": _unigram}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_pieces_per_word_match_hand_computed(kind, model_dir):
    tokenizer = KINDS[kind](model_dir)
    tokenizer.backend_tokenizer.encode_special_tokens = True  # as bertfeat loads them
    pieces, flags, prefix, suffix = EXPECTED[kind]
    got = wordencoder.word_pieces(tokenizer, [WORDS, [], ["cats"]])
    tokens = tokenizer.convert_ids_to_tokens(got[0].ids)
    cuts = np.cumsum(got[0].counts)[:-1]
    assert [list(p) for p in np.split(np.array(tokens, dtype=object), cuts)] == pieces
    assert got[0].flags.tolist() == flags
    assert got[1].ids == [] and len(got[1].counts) == 0
    assert tokenizer.convert_ids_to_tokens(got[2].ids) == pieces[1]
    pre, post = wordencoder.special_tokens(tokenizer)
    assert tokenizer.convert_ids_to_tokens(pre) == prefix
    assert tokenizer.convert_ids_to_tokens(post) == suffix
    # the loaded tokenizer itself is not reconfigured (no prefix space forced on it)
    if kind == "bpe":
        assert tokenizer.backend_tokenizer.pre_tokenizer.add_prefix_space is False


def test_subword_poolings_by_hand():
    pieces = np.array([[1, 5], [3, -1], [2, 2], [-4, 0], [0, 8], [6, 1]], dtype=np.float16)
    counts = np.array([2, 1, 3])
    np.testing.assert_array_equal(pool_subwords(pieces, counts, "first"),
                                  [[1, 5], [2, 2], [-4, 0]])
    np.testing.assert_array_equal(pool_subwords(pieces, counts, "last"),
                                  [[3, -1], [2, 2], [6, 1]])
    np.testing.assert_allclose(pool_subwords(pieces, counts, "mean"),
                               [[2, 2], [2, 2], [2 / 3, 3]], rtol=1e-6)
    np.testing.assert_array_equal(pool_subwords(pieces, counts, "max"),
                                  [[3, 5], [2, 2], [6, 8]])
    np.testing.assert_array_equal(pool_subwords(pieces, counts, "first_last"),
                                  [[1, 5, 3, -1], [2, 2, 2, 2], [-4, 0, 6, 1]])
    assert pool_subwords(pieces, counts, "mean").dtype == np.float32
    with pytest.raises(ValueError, match="counts sum"):
        pool_subwords(pieces, np.array([2, 1]), "first")


@pytest.mark.parametrize("counts, size, stride, windows, owner", [
    ([1, 1, 1], 5, 2, [(0, 3)], [0, 0, 0]),
    # 6 pieces, windows of 4 sharing <= 2: [w0 w1 w2] (4 pieces), [w2 w3] (3 pieces)
    ([1, 1, 2, 2], 4, 2, [(0, 3), (2, 4)], [0, 0, 0, 1]),
    # w2 is in both windows: 1 piece of context on its short side in each -> the first
    ([1, 1, 1, 1, 1, 1], 4, 2, [(0, 4), (2, 6)], [0, 0, 0, 1, 1, 1]),
    # a word longer than a window gets a window of its own
    ([1, 6, 1], 4, 1, [(0, 1), (1, 2), (2, 3)], [0, 1, 2]),
    ([2, 2, 2, 2, 2], 4, 0, [(0, 2), (2, 4), (4, 5)], [0, 0, 1, 1, 2]),
])
def test_plan_windows_by_hand(counts, size, stride, windows, owner):
    got_windows, got_owner = wordencoder.plan_windows(np.array(counts), size, stride)
    assert got_windows == windows
    assert got_owner.tolist() == owner


def test_every_word_is_covered_by_its_window():
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(1, 5, size=rng.integers(1, 40))
        size, stride = int(rng.integers(4, 12)), int(rng.integers(0, 6))
        windows, owner = wordencoder.plan_windows(counts, size, stride)
        assert windows[0][0] == 0 and windows[-1][1] == len(counts)
        for (a, b), (c, _) in zip(windows, windows[1:]):
            assert a < c <= b  # in order, overlapping or touching, never a gap
        for w, k in enumerate(owner):
            a, b = windows[k]
            assert a <= w < b
            assert counts[a:b].sum() <= size or b - a == 1


# ------------------------------------------------------------ features vs by hand
def _by_hand(model_dir, ids):
    """All hidden states of one id sequence, fp32, straight from transformers."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return np.stack([h[0].numpy() for h in out.hidden_states])


def _tok(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def _f16(a):
    return np.asarray(a, dtype=np.float16).astype(np.float32)


@pytest.mark.parametrize("pooling", ["first", "last", "mean", "max", "first_last"])
def test_rows_equal_the_model_run_by_hand(model_dir, pooling):
    tok = _tok(model_dir)
    v = tok.get_vocab()
    sentence = ["Good", "films", "\u200b", "was", "unbelievably"]
    # by hand: [CLS] good film ##s [UNK] was u ##n ##b ... [SEP]; word -> piece positions
    rest = ["u"] + [f"##{c}" for c in "nbelievab"] + ["##ly"]
    ids = [v["[CLS]"], v["good"], v["film"], v["##s"], v["[UNK]"], v["was"]] + [
        v[t] for t in rest] + [v["[SEP]"]]
    spans = [[1], [2, 3], [4], [5], list(range(6, 6 + len(rest)))]
    hidden = _f16(_by_hand(model_dir, ids))
    for layer in (0, 2, 3):
        feat = BertWordFeaturizer(model=model_dir, layers=layer, subword_pooling=pooling,
                                  precision="fp32", cache=False)
        got = feat.fit_transform([sentence])
        h = hidden[layer]
        want = {"first": [h[s[0]] for s in spans], "last": [h[s[-1]] for s in spans],
                "mean": [h[s].mean(0) for s in spans], "max": [h[s].max(0) for s in spans],
                "first_last": [np.concatenate((h[s[0]], h[s[-1]])) for s in spans]}[pooling]
        assert got.shape == (5, feat.n_features_out_) and got.dtype == np.float32
        np.testing.assert_allclose(got, np.array(want), rtol=1e-5, atol=1e-5)


def test_one_word_mean_agrees_with_bertfeaturizer(model_dir):
    """One word: mean over its pieces by hand, and the [CLS] vector BertFeaturizer gives."""
    from bertfeat import BertFeaturizer

    v = _tok(model_dir).get_vocab()
    ids = [v["[CLS]"], v["film"], v["##s"], v["[SEP]"]]
    hidden = _by_hand(model_dir, ids)
    words = BertWordFeaturizer(model=model_dir, layers=2, subword_pooling="mean",
                               precision="fp32", cache=False).fit_transform([["films"]])
    np.testing.assert_allclose(words[0], _f16(hidden[2][1:3]).mean(0), rtol=1e-5, atol=1e-5)
    cls = BertFeaturizer(model=model_dir, layers=2, pooling="cls", precision="fp32",
                         cache=False).fit_transform(["films"])
    mean = BertFeaturizer(model=model_dir, layers=2, pooling="mean", precision="fp32",
                          cache=False).fit_transform(["films"])
    np.testing.assert_allclose(cls[0], hidden[2][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean[0], hidden[2].mean(0), rtol=1e-4, atol=1e-5)


def test_long_sentence_windows_by_hand(model_dir):
    """Each word's row is its vector in the window the plan assigns; no word is lost."""
    tok = _tok(model_dir)
    v = tok.get_vocab()
    sentence = ["good", "films", "was", "long", "plot", "boring", "music", "fun", "movie"]
    pieces = [["good"], ["film", "##s"], ["was"], ["long"], ["plot"], ["boring"], ["music"],
              ["fun"], ["movie"]]
    # max_length 6 = [CLS] + 4 pieces + [SEP]; stride 2: windows by hand
    #   A: good film ##s was | B: was long plot boring | C: plot boring music fun |
    #   D: music fun movie  (each starts as early as sharing <= 2 pieces allows)
    windows = [[0, 1, 2], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8]]
    # most pieces on the shorter side: "was" 0 in A and in B (tie: A), "plot" 1 in B and
    # 0 in C, "boring" 0 in B and 1 in C, "fun" 0 in C and 1 in D
    owner = [0, 0, 0, 1, 1, 2, 2, 3, 3]
    got_windows, got_owner = wordencoder.plan_windows(
        np.array([len(p) for p in pieces]), 4, 2)
    assert [list(range(a, b)) for a, b in got_windows] == windows
    assert got_owner.tolist() == owner
    feat = BertWordFeaturizer(model=model_dir, layers=3, max_length=6, window_stride=2,
                              precision="fp32", cache=False)
    got = feat.fit_transform([sentence])
    assert got.shape[0] == len(sentence)
    for w, k in enumerate(owner):
        ids = [v["[CLS]"]] + [v[t] for i in windows[k] for t in pieces[i]] + [v["[SEP]"]]
        position = 1 + sum(len(pieces[i]) for i in windows[k] if i < w)
        hidden = _f16(_by_hand(model_dir, ids))[3]
        np.testing.assert_allclose(got[w], hidden[position], rtol=1e-5, atol=1e-5)


def test_a_word_longer_than_a_window_keeps_its_row(model_dir):
    feat = BertWordFeaturizer(model=model_dir, layers=1, max_length=5, precision="fp32",
                              cache=False)
    with pytest.warns(UserWarning, match="1 word"):
        out = feat.fit_transform([["good", "unbelievably", "bad"]])
    assert out.shape[0] == 3 and np.isfinite(out).all()


def test_layer_combine_and_names(model_dir):
    feat = BertWordFeaturizer(model=model_dir, layers=[1, -1], subword_pooling="first_last",
                              cache=False).fit([["a"]])
    assert feat.n_features_out_ == 2 * 2 * 32
    assert feat.get_feature_names_out()[[0, 32, 64]].tolist() == [
        "L1_first_0", "L1_last_0", "L3_first_0"]
    mean = clone(feat).set_params(layer_combine="mean", subword_pooling="max")
    sents = [["good", "film"], ["the", "plot"]]
    parts = [clone(mean).set_params(layers=[layer]).fit_transform(sents) for layer in (1, 3)]
    np.testing.assert_allclose(mean.fit_transform(sents), (parts[0] + parts[1]) / 2,
                               rtol=1e-6)
    assert mean.get_feature_names_out()[0] == "Lmean1+3_max_0"


# ------------------------------------------------------------------- store, once
def test_grid_over_layers_and_poolings_encodes_each_sentence_once(model_dir, tmp_path,
                                                                  monkeypatch):
    calls = []
    real = wordencoder.encode_words

    def spy(tokenizer, model, sentences, **kwargs):
        calls.append(len(sentences))
        return real(tokenizer, model, sentences, **kwargs)

    monkeypatch.setattr(wordencoder, "encode_words", spy)
    sents = [["good", "film"], ["the", "plot", "was", "boring"], ["good", "film"], ["fun"]]
    store = str(tmp_path / "store")
    results = {}
    for layers in (-1, 1, 2, [0, 3]):
        for pooling in ("first", "last", "mean", "max", "first_last"):
            feat = BertWordFeaturizer(model=model_dir, layers=layers, subword_pooling=pooling,
                                      precision="fp32", cache=store)
            results[str(layers), pooling] = feat.fit_transform(sents)
    assert calls == [3]  # one encoder call, for the three distinct sentences
    stats = FeatureStore(store).word_stats(feat.fingerprint_)
    assert stats["sentences_encoded"] == 3
    # stored and freshly encoded vectors are identical (both float16 piece vectors)
    fresh = BertWordFeaturizer(model=model_dir, layers=2, subword_pooling="mean",
                               precision="fp32", cache=False).fit_transform(sents)
    assert_same_computation(fresh, results["2", "mean"])
    # duplicates give the same rows
    np.testing.assert_array_equal(results["1", "max"][:2], results["1", "max"][6:8])


def test_word_records_are_cleared_and_damage_is_a_miss(model_dir, tmp_path):
    store = FeatureStore(tmp_path / "s")
    feat = BertWordFeaturizer(model=model_dir, layers=2, cache=store, precision="fp32")
    sents = [["good", "film"], ["bad", "plot"]]
    first = feat.fit_transform(sents)
    with store.cache.write() as con:  # one sentence's layer 2
        con.execute("UPDATE pieces SET data = ? WHERE rowid = (SELECT min(rowid) FROM pieces "
                    "WHERE layer = 2)", (b"BFS1 garbage",))
    with pytest.warns(RuntimeWarning, match="damaged word record"):
        again = feat.transform(sents)
    assert_same_computation(first, again)
    assert store.word_stats(feat.fingerprint_)["sentences_encoded"] == 3
    assert store.clear(model_dir) > 0
    with store.cache.read() as con:
        assert con.execute("SELECT (SELECT count(*) FROM sentences) + "
                           "(SELECT count(*) FROM pieces)").fetchone() == (0,)


# ------------------------------------------------------------------- bad input
def test_bad_input_names_sentence_and_word(model_dir):
    feat = BertWordFeaturizer(model=model_dir, cache=False)
    with pytest.raises(TypeError, match="Sentence 1 is a str"):
        feat.fit([["a"], "not split"])
    with pytest.raises(ValueError, match="Sentence 0, word 1 is missing"):
        feat.fit([["a", None]])
    with pytest.raises(TypeError, match="Sentence 0, word 0 is of type int"):
        feat.fit([[3]])
    with pytest.raises(InvalidParameterError, match="subword_pooling"):
        BertWordFeaturizer(model=model_dir, subword_pooling="avg").fit([["a"]])
    out = clone(feat).set_params(on_bad_input="empty").fit_transform(
        [["good", None], None, ["film"]])
    assert out.shape[0] == 3  # the missing word keeps its row, the missing sentence has none


def test_pickle_has_no_weights_and_reloads(model_dir, tmp_path):
    feat = BertWordFeaturizer(model=model_dir, layers=2, cache=str(tmp_path / "s"))
    before = feat.fit_transform([["good", "film"]])
    blob = pickle.dumps(feat)
    assert len(blob) < 20_000 and b"torch" not in blob
    assert_same_computation(pickle.loads(blob).transform([["good", "film"]]), before)


# ------------------------------------------------------------------- tags helpers
def test_flatten_and_groups():
    sents = [["a", "b"], [], ["c"]]
    tags = [["X", "Y"], [], ["Z"]]
    np.testing.assert_array_equal(flatten_tags(tags, sents), ["X", "Y", "Z"])
    np.testing.assert_array_equal(sentence_ids(sents), [0, 0, 2])
    assert unflatten_tags(np.array(["X", "Y", "Z"]), sents) == tags
    with pytest.raises(ValueError, match="Sentence 2 has 1 words but 2 tags"):
        flatten_tags([["X", "Y"], [], ["Z", "Z"]], sents)
    with pytest.raises(ValueError, match="Sentence 0, word 1 has no tag"):
        flatten_tags([["X", None]])


def _pos_data():
    rng = random.Random(0)
    lexicon = {"DET": ["the", "a"], "NOUN": ["film", "plot", "movie", "story", "actor"],
               "VERB": ["was", "is"], "ADJ": ["good", "bad", "boring", "great", "long"]}
    sents, tags = [], []
    for _ in range(40):
        pattern = rng.choice([["DET", "NOUN", "VERB", "ADJ"], ["DET", "ADJ", "NOUN"],
                              ["NOUN", "VERB", "ADJ"]])
        sents.append([rng.choice(lexicon[t]) for t in pattern])
        tags.append(pattern)
    return sents, tags


def test_tagger_round_trip_clone_and_pickle(model_dir, tmp_path):
    sents, tags = _pos_data()
    tagger = WordTagger(BertWordFeaturizer(model=model_dir, layers=1, cache=str(tmp_path)),
                        LogisticRegression(max_iter=500))
    tagger.fit(sents[:30], tags[:30])
    pred = tagger.predict(sents[30:])
    assert [len(p) for p in pred] == [len(s) for s in sents[30:]]
    assert all(isinstance(t, str) for p in pred for t in p)
    assert tagger.score(sents[30:], tags[30:]) == token_accuracy(tags[30:], pred) > 0.6
    assert set(tagger.classes_) == {"DET", "NOUN", "VERB", "ADJ"}
    assert tagger.predict([[], ["film"]])[0] == []
    assert clone(tagger).get_params()["featurizer__layers"] == 1
    blob = pickle.dumps(tagger)
    assert len(blob) < 100_000
    assert pickle.loads(blob).predict(sents[30:]) == pred


@pytest.mark.parametrize("cv", [KFold(2), GroupKFold(2)])
def test_tagger_in_grid_search(model_dir, tmp_path, cv, monkeypatch):
    calls = []
    real = wordencoder.encode_words
    monkeypatch.setattr(wordencoder, "encode_words", lambda t, m, s, **k: (
        calls.append(len(s)), real(t, m, s, **k))[1])
    sents, tags = _pos_data()
    tagger = WordTagger(BertWordFeaturizer(model=model_dir, cache=str(tmp_path / "s")),
                        LogisticRegression(max_iter=300))
    grid = {"featurizer__layers": [-1, 1], "featurizer__subword_pooling": ["first", "mean"]}
    groups = np.arange(len(sents)) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(tagger, grid, cv=cv).fit(sents, tags, groups=groups)
    assert sum(calls) == len({tuple(s) for s in sents})  # every sentence encoded once
    assert 0 <= search.best_score_ <= 1
    assert len(search.best_estimator_.predict(sents[:2])[0]) == len(sents[0])
    assert len(search.cv_results_["params"]) == 4


def test_word_level_features_with_groupkfold(model_dir):
    sents, tags = _pos_data()
    features = BertWordFeaturizer(model=model_dir, layers=1, cache=False).fit_transform(sents)
    scores = cross_val_score(LogisticRegression(max_iter=300), features, flatten_tags(tags),
                             groups=sentence_ids(sents), cv=GroupKFold(4))
    assert len(scores) == 4 and scores.mean() > 0.5


# ------------------------------------------------------------------------ metrics
def _bio_fixtures(n=300, seed=0):
    rng = random.Random(seed)
    types = ["PER", "LOC", "ORG"]

    def sentence(length):
        return [rng.choice(["O", "O", f"B-{rng.choice(types)}", f"I-{rng.choice(types)}"])
                for _ in range(length)]

    truth = [sentence(rng.randint(0, 12)) for _ in range(n)]
    pred = [[t if rng.random() < 0.8 else rng.choice(["O", "B-PER", "I-PER", "I-LOC"])
             for t in s] for s in truth]
    return truth, pred


def test_entity_f1_equals_seqeval():
    seqeval = pytest.importorskip("seqeval.metrics")
    for seed in range(5):
        truth, pred = _bio_fixtures(seed=seed)
        assert entity_f1(truth, pred) == pytest.approx(seqeval.f1_score(truth, pred),
                                                       abs=1e-12)
    truth = [["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG"]]
    assert entities(truth[0]) == [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5), ("ORG", 6, 6)]
    assert entity_f1(truth, truth) == 1.0
    assert entity_f1([["O"]], [["O"]]) == 0.0


def test_tagger_scores_entity_f1_for_bio_tags(model_dir):
    sents = [["good", "film", "plot"], ["the", "actor"], ["bad", "movie"]] * 4
    tags = [["O", "B-X", "I-X"], ["O", "B-Y"], ["O", "B-X"]] * 4
    assert is_bio(tags) and not is_bio([["NOUN"]]) and not is_bio([["O"]])
    tagger = WordTagger(BertWordFeaturizer(model=model_dir, layers=1, cache=False),
                        LogisticRegression(max_iter=300)).fit(sents, tags)
    pred = tagger.predict(sents)
    assert tagger.score(sents, tags) == entity_f1(tags, pred)
    assert tagger.set_params(scoring="accuracy").score(sents, tags) == token_accuracy(
        tags, pred)


# ------------------------------------------------------------------------- CoNLL
CONLLU = """# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:x\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def test_read_conllu_and_columns(tmp_path):
    sents, tags = read_conll(CONLLU)
    assert sents == [["Do", "n't", "go", "."], ["Hi"]]
    assert tags == [["AUX", "PART", "VERB", "PUNCT"], ["INTJ"]]
    assert read_conll(CONLLU, tag_col="xpos")[1][0] == ["VBP", "RB", "VB", "."]
    path = tmp_path / "ner.txt"
    path.write_text("-DOCSTART- -X- O\n\nEU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\n",
                    encoding="utf-8")
    assert read_conll(path) == ([["EU", "rejects"], ["Peter"]],
                                [["B-ORG", "O"], ["B-PER"]])
    assert read_conll(path, tag_col=1)[1] == [["NNP", "VBZ"], ["NNP"]]
    with pytest.raises(ValueError, match="line 2: expected a word and a tag"):
        read_conll("a B\nlonely\n")
    with pytest.raises(ValueError, match="not a CoNLL-U field"):
        read_conll(CONLLU, tag_col="pos")


def test_read_ud_ewt(shared_data):
    sents, tags = read_conll(shared_data / "ud_ewt" / "en_ewt-ud-dev.conllu")
    assert len(sents) == 2001 and sum(map(len, sents)) == 25147
    assert len({t for s in tags for t in s}) == 17


def test_changed_model_files_are_refused(tmp_path):
    """Stored piece vectors are never served for weights they were not encoded with."""
    import shutil

    from bertfeat.models import ModelChangedError

    model = make_tiny_model(tmp_path / "m", layers=1, hidden=16)
    other = make_tiny_model(tmp_path / "other", layers=1, hidden=16, seed=7)
    feat = BertWordFeaturizer(model=str(model), cache=str(tmp_path / "s"), precision="fp32")
    feat.fit_transform([["good", "film"]])
    (model / "model.safetensors").unlink()  # a new file, not an in-place overwrite
    shutil.copyfile(other / "model.safetensors", model / "model.safetensors")
    with pytest.raises(ModelChangedError, match="changed since this BertWordFeaturizer"):
        feat.transform([["good", "film"]])
