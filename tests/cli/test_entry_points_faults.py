"""Issue 27: the other public entry points under bad input -- the word featurizer,
TextUnion, and the ``embed`` / ``cache`` commands.

``tests/test_bad_input.py`` holds the catalogue of ``BertFeaturizer``; each case here is a
row of ``docs/bad_input_policy.md`` ("Other entry points").
"""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pandas as pd
import pytest

from bertfeat import BertFeaturizer, BertWordFeaturizer, TextUnion
from bertfeat.cli import main

from ..catalogue import Catalogue

CASES = Catalogue("entry points")

SENTS = [["good", "film"], ["bad"]]
TEXTS = ["good film plot", "bad plot film", "fun story film", "awful plot story"]


@pytest.fixture(scope="module")
def words(tiny_model):
    return BertWordFeaturizer(model=tiny_model, layers=1, cache=False,
                              precision="fp32").fit([["a"]])


@pytest.fixture(scope="module")
def union(tiny_model):
    return TextUnion(BertFeaturizer(model=tiny_model, cache=False, precision="fp32")).fit(
        TEXTS)


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning expected
        return call()


# ------------------------------------------------------------------- word featurizer
@CASES.input("BertWordFeaturizer: a generator of sentences")
def _w_generator(words):
    np.testing.assert_array_equal(_quiet(lambda: words.transform(s for s in SENTS)),
                                  words.transform(SENTS))


@CASES.input("BertWordFeaturizer: a missing word (None)")
def _w_none(words):
    with pytest.raises(ValueError, match=r"Sentence 0, word 1 is missing \(None\).*"
                                         r"on_bad_input='empty'"):
        words.transform([["good", None]])


@CASES.input("BertWordFeaturizer: a missing word with on_bad_input='empty'")
def _w_none_empty(words):
    lenient = words.set_params(on_bad_input="empty")
    try:
        np.testing.assert_array_equal(lenient.transform([["good", None]]),
                                      lenient.transform([["good", ""]]))
    finally:
        words.set_params(on_bad_input="raise")


@CASES.input("BertWordFeaturizer: a set of sentences")
def _w_set(words):
    with pytest.raises(TypeError, match=r"got a set \(no row order\)"):
        words.transform({("good", "film")})


@CASES.input("BertWordFeaturizer: a dict of sentences")
def _w_dict(words):
    with pytest.raises(TypeError, match=r"got a dict \(no row order\)"):
        words.transform({"a": ["good"]})


@CASES.input("BertWordFeaturizer: a sentence given as one str")
def _w_str_sentence(words):
    with pytest.raises(TypeError, match=r"Sentence 0 is a str \('good film'\), not a list "
                                        r"of words\. Split it first"):
        words.transform(["good film"])


@CASES.input("BertWordFeaturizer: an empty sentence")
def _w_empty_sentence(words):
    np.testing.assert_array_equal(words.transform([[], ["good"]]), words.transform([["good"]]))


@CASES.input("BertWordFeaturizer: no sentences")
def _w_no_sentences(words):
    assert words.transform([]).shape == (0, words.n_features_out_)


@CASES.input("BertWordFeaturizer: a whitespace-only word")
def _w_whitespace_word(words):
    assert words.transform([["good", " ", "film"]]).shape == (3, words.n_features_out_)


@CASES.input("BertWordFeaturizer: a word holding a no-break space")
def _w_nbsp_word(words):
    out = words.transform([["New\xa0York"]])
    assert out.shape == (1, words.n_features_out_) and np.isfinite(out).all()


@CASES.input("BertWordFeaturizer: a word with a lone surrogate")
def _w_surrogate(words):
    with pytest.warns(UserWarning, match="lone UTF-16 surrogates"):
        out = words.transform([["good", "\ud800"]])
    np.testing.assert_array_equal(out, words.transform([["good", "\ufffd"]]))


@CASES.input("BertWordFeaturizer: a sentence as a tuple or a numpy array")
def _w_tuple(words):
    want = words.transform([["good", "film"]])
    np.testing.assert_array_equal(words.transform([("good", "film")]), want)
    np.testing.assert_array_equal(words.transform([np.array(["good", "film"])]), want)


@CASES.input("BertWordFeaturizer: a word of a wrong type (int)")
def _w_int_word(words):
    with pytest.raises(TypeError, match=r"Sentence 0, word 1 is of type int \(3\)"):
        words.transform([["good", 3]])


@CASES.input("BertWordFeaturizer: a word that is a list")
def _w_nested(words):
    with pytest.raises(TypeError, match=r"Sentence 0, word 0 is of type list"):
        words.transform([[["good"]]])


# ------------------------------------------------------------------------- TextUnion
@CASES.input("TextUnion: a generator (fit and transform)")
def _u_generator(union, tiny_model):
    want = union.transform(TEXTS).toarray()
    np.testing.assert_array_equal(union.transform(t for t in TEXTS).toarray(), want)
    refit = TextUnion(BertFeaturizer(model=tiny_model, cache=False, precision="fp32")).fit(
        t for t in TEXTS)
    np.testing.assert_allclose(refit.transform(TEXTS).toarray(), want, rtol=0, atol=1e-5)


@CASES.input("TextUnion: a set of texts")
def _u_set(union):
    with pytest.raises(TypeError, match="which has no order"):
        union.transform(set(TEXTS))


@CASES.input("TextUnion: a missing row")
def _u_none(union):
    with pytest.raises(ValueError, match=r"Row 1 is missing \(None\)"):
        union.transform(["good", None])


@CASES.input("TextUnion: a single str")
def _u_str(union):
    with pytest.raises(TypeError, match=r"single str\. Wrap it in a list"):
        union.transform("good film")


@CASES.input("TextUnion: transform([])")
def _u_empty(union):
    out = union.transform([])
    assert out.shape == (0, union.n_features_out_) and out.dtype == np.float32


@CASES.input("TextUnion: fit([])")
def _u_fit_empty(tiny_model):
    with pytest.raises(ValueError, match="TextUnion.fit needs at least one text"):
        TextUnion(BertFeaturizer(model=tiny_model, cache=False)).fit([])


@CASES.input("TextUnion: a DataFrame with two columns")
def _u_two_columns(union):
    with pytest.raises(ValueError, match="one text column, got a DataFrame with 2 columns"):
        union.transform(pd.DataFrame({"a": TEXTS, "b": TEXTS}))


@CASES.input("TextUnion: a row of a wrong type (int)")
def _u_int(union):
    with pytest.raises(TypeError, match=r"Row 1 is of type int \(5\)"):
        union.transform(["good", 5])


# ------------------------------------------------------------------------------- CLI
def _embed(tmp_path, tiny_model, data, *extra):
    out = tmp_path / "f.npy"
    code = main(["embed", str(data), "-o", str(out), "--model", tiny_model, "--precision",
                 "fp32", "--no-cache", *extra])
    return code, (np.load(out) if code == 0 else None)


@CASES.input("`bertfeat embed` of a gzipped CSV")
def _embed_gz(tmp_path, tiny_model):
    data = tmp_path / "d.csv.gz"
    data.write_bytes(gzip.compress(b"text\ngood film\nbad plot\n"))
    code, X = _embed(tmp_path, tiny_model, data)
    assert code == 0
    want = BertFeaturizer(model=tiny_model, cache=False, precision="fp32").fit(
        ["good film", "bad plot"]).transform(["good film", "bad plot"])
    np.testing.assert_allclose(X, want, rtol=0, atol=1e-5 * np.abs(want).max())


@CASES.input("`bertfeat embed` of a text over 131,072 characters")
def _embed_long(tmp_path, tiny_model, capsys):
    data = tmp_path / "d.tsv"
    data.write_text("text\n" + "good film " * 20_000 + "\nbad\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the truncation warning
        code, X = _embed(tmp_path, tiny_model, data)
    assert code == 0 and X.shape[0] == 2


@CASES.input("`bertfeat embed --keep-cols` naming a column the file lacks")
def _embed_keep_missing(tmp_path, tiny_model, capsys):
    data = tmp_path / "d.csv"
    data.write_text("text,id\ngood,1\n")
    out = tmp_path / "f.parquet"
    code = main(["embed", str(data), "-o", str(out), "--model", tiny_model, "--no-cache",
                 "--keep-cols", "id,title"])
    assert code == 2
    assert "no keep column 'title'; the file has columns ['text', 'id']" in \
        capsys.readouterr().err
    assert not out.exists()


@CASES.input("`bertfeat cache clear --model` naming no stored model")
def _cache_clear_unknown(tmp_path, capsys):
    assert main(["cache", "clear", "--model", "no-such-model", "--cache-dir",
                 str(tmp_path / "store")]) == 0
    assert "no entries for model 'no-such-model'" in capsys.readouterr().out


@pytest.mark.parametrize("name", CASES.names())
def test_case(name, request):
    CASES.run(name, request)
