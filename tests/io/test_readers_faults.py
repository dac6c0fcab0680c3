"""Issue 27: the readers (CoNLL-U / column files, CSV / TSV) and the CLI around them.

The format of a tagged file is decided from the whole file, lines are split at ``\\n``
only, columns at ASCII spaces and tabs only, gzip files are read as they are, labels that
numbers would merge stay strings, and a field may be longer than the csv module's default
limit. Every case is a row of ``docs/bad_input_policy.md`` ("Readers").
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from bertfeat import conll
from bertfeat.cli import main
from bertfeat.conll import read_conll
from bertfeat.tables import TableError, read_table

from ..catalogue import Catalogue

CASES = Catalogue("readers")

CONLLU = (
    "# sent_id = 1\n# text = I know.\n"
    "1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_\n"
    "2\tknow\tknow\tVERB\tVBP\t_\t0\troot\t_\t_\n"
    "3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_\n\n"
    "# sent_id = 2\n# text = You don't.\n"
    "1\tYou\tyou\tPRON\tPRP\t_\t3\tnsubj\t_\t_\n"
    "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_\n"
    "3\tn't\tnot\tPART\tRB\t_\t0\troot\t_\t_\n"
    "4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_\n\n"
)
WANT = ([["I", "know", "."], ["You", "do", "n't", "."]],
        [["PRON", "VERB", "PUNCT"], ["PRON", "AUX", "PART", "PUNCT"]])
#: no comments, so only the word lines can say it is CoNLL-U
BARE = "".join(line + "\n" for line in CONLLU.splitlines() if not line.startswith("#"))


def _write(tmp_path, name, text, gz=False):
    path = tmp_path / name
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


class _Stop(Exception):
    """Raised by a stubbed probe: the CLI read the file, the test looks at what it read."""


@pytest.fixture
def caught(monkeypatch):
    """Stub ``probe`` and ``probe_words``: record what the CLI passes, then stop."""
    import bertfeat.probe as probe_module

    seen = {}

    def stub(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        raise _Stop

    monkeypatch.setattr(probe_module, "probe", stub)
    monkeypatch.setattr(probe_module, "probe_words", stub)
    return seen


# ---------------------------------------------------------------- CoNLL-U format decision
@CASES.input("CoNLL-U with a UTF-8 byte-order mark")
def _bom(tmp_path):
    assert read_conll(_write(tmp_path, "a.conllu", "\ufeff" + CONLLU)) == WANT
    assert read_conll("\ufeff" + CONLLU) == WANT
    assert read_conll(io.BytesIO(("\ufeff" + CONLLU).encode())) == WANT


@CASES.input("CoNLL-U whose first word line has 9 fields")
def _nine_fields(tmp_path):
    full, short = "1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_", "1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_"
    bad = CONLLU.replace(full, short)
    with pytest.raises(ValueError, match="line 3: a CoNLL-U word line has 10 tab-separated "
                                         "fields, this one has 9"):
        read_conll(bad)
    bare = BARE.replace(full, short)
    with pytest.raises(ValueError, match="line 1: .* this one has 9"):
        read_conll(bare)  # no comments: the other word lines decide


@CASES.input("U+2028 (line separator) in a `# text =` comment")
def _u2028():
    assert read_conll(CONLLU.replace("I know.", "I\u2028know.")) == WANT


@CASES.input("U+0085 (next line) in a `# text =` comment")
def _u0085():
    assert read_conll(CONLLU.replace("I know.", "I\x85know.")) == WANT


@CASES.input("a form feed in a `# text =` comment")
def _form_feed():
    assert read_conll(CONLLU.replace("I know.", "I know.\x0c")) == WANT


@CASES.input("CoNLL-U with CRLF line ends")
def _crlf():
    assert read_conll(CONLLU.replace("\n", "\r\n")) == WANT


@CASES.input("CoNLL-U without comments (decided from its word lines)")
def _bare():
    assert read_conll(BARE) == WANT


@CASES.input("a CoNLL-U word line whose id is not a number")
def _bad_id():
    with pytest.raises(ValueError, match=r"line 3: 'x' is not a CoNLL-U word id"):
        read_conll(CONLLU.replace("1\tI\tI", "x\tI\tI"))


# ------------------------------------------------------------------------- column files
@CASES.input("a column file with a no-break space inside a word")
def _nbsp():
    assert read_conll("New\xa0York B-LOC\nis O\n\nok O\n") == (
        [["New\xa0York", "is"], ["ok"]], [["B-LOC", "O"], ["O"]])


@CASES.input("a column file with an ideographic space (U+3000) inside a word")
def _ideographic():
    assert read_conll("東京\u3000都 B-LOC\nに O\n") == ([["東京\u3000都", "に"]],
                                                       [["B-LOC", "O"]])


@CASES.input("a column file separated by tabs and runs of spaces")
def _tabs_and_spaces():
    assert read_conll("EU\tNNP  B-NP\nrejects   VBZ\tB-VP\n", tag_col=1) == (
        [["EU", "rejects"]], [["NNP", "VBZ"]])


@CASES.input("a column file with a U+2028 inside a word")
def _u2028_word():
    assert read_conll("a\u2028b O\nc O\n") == ([["a\u2028b", "c"]], [["O", "O"]])


# ------------------------------------------------------------------------ files, gzip
@CASES.input("a gzipped CoNLL-U file (.conllu.gz)")
def _conllu_gz(tmp_path):
    assert read_conll(_write(tmp_path, "a.conllu.gz", CONLLU, gz=True)) == WANT
    with open(_write(tmp_path, "b.conllu.gz", CONLLU, gz=True), "rb") as fh:
        assert read_conll(fh) == WANT


@CASES.input("`probe --words` on a gzipped CoNLL-U file")
def _probe_words_gz(tmp_path, caught):
    path = _write(tmp_path, "a.conllu.gz", "\ufeff" + CONLLU, gz=True)
    with pytest.raises(_Stop):
        main(["probe", "--words", str(path), "--out", str(tmp_path / "out")])
    assert list(caught["args"]) == list(WANT)


@CASES.input("a tagged file that is not UTF-8")
def _not_utf8(tmp_path, capsys):
    path = _write(tmp_path, "latin.conllu",
                  CONLLU.replace("know", "kn\u00f6w").encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.conllu is not UTF-8 text \(line 2"):
        read_conll(path)
    assert main(["probe", "--words", str(path)]) == 2
    assert "is not UTF-8 text (line 2" in capsys.readouterr().err


@CASES.input("a gzipped CSV (`probe X.csv.gz`)")
def _csv_gz(tmp_path, caught):
    path = _write(tmp_path, "d.csv.gz", "text,label\ngood film,pos\nbad plot,neg\n", gz=True)
    assert read_table(path, text_cols=["text"]).frame["text"].tolist() == ["good film",
                                                                          "bad plot"]
    with pytest.raises(_Stop):
        main(["probe", str(path), "--out", str(tmp_path / "out")])
    assert caught["args"][0].tolist() == ["good film", "bad plot"]
    assert caught["args"][1].tolist() == ["pos", "neg"]


@CASES.input("a gzipped TSV (.tsv.gz)")
def _tsv_gz(tmp_path):
    path = _write(tmp_path, "d.tsv.gz", "text\tlabel\ngood, film\t1\n", gz=True)
    frame = read_table(path, text_cols=["text"]).frame
    assert frame["text"].tolist() == ["good, film"] and frame["label"].tolist() == [1]


# ------------------------------------------------------------------------------ labels
@CASES.input("labels 1, 01, 2, 02 (four strings)")
def _leading_zeros(tmp_path, caught):
    path = _write(tmp_path, "d.csv", "text,label\na,1\nb,01\nc,2\nd,02\n")
    labels = read_table(path, text_cols=["text"]).frame["label"]
    assert labels.tolist() == ["1", "01", "2", "02"]
    with pytest.raises(_Stop):
        main(["probe", str(path), "--out", str(tmp_path / "out")])
    assert caught["args"][1].nunique() == 4


@CASES.input("labels 1.0 and 1.00 (two strings)")
def _float_spellings(tmp_path):
    path = _write(tmp_path, "d.csv", "text,label\na,1.0\nb,1.00\nc,2.5\n")
    assert read_table(path).frame["label"].tolist() == ["1.0", "1.00", "2.5"]


@CASES.input("labels +1 and 1 (two strings)")
def _plus_sign(tmp_path):
    path = _write(tmp_path, "d.csv", "text,label\na,+1\nb,1\n")
    assert read_table(path).frame["label"].tolist() == ["+1", "1"]


@CASES.input("labels -1, 0, 1 (still int64)")
def _plain_ints(tmp_path):
    labels = read_table(_write(tmp_path, "d.csv", "text,label\na,-1\nb,0\nc,1\n")).frame["label"]
    assert str(labels.dtype) == "int64" and labels.tolist() == [-1, 0, 1]


# ---------------------------------------------------------------------- long fields
LONG = "word " * 40_000  # 200,000 characters, over the csv module's 131,072


@CASES.input("a CSV text over 131,072 characters")
def _long_csv(tmp_path):
    path = _write(tmp_path, "d.csv", f'text,label\n"{LONG}",1\nshort,0\n')
    assert read_table(path, text_cols=["text"]).frame["text"].tolist() == [LONG, "short"]


@CASES.input("a TSV text over 131,072 characters")
def _long_tsv(tmp_path):
    path = _write(tmp_path, "d.tsv", f"text\tlabel\n{LONG}\t1\nshort\t0\n")
    for quoting in ("auto", "none", "csv"):
        frame = read_table(path, text_cols=["text"], quoting=quoting).frame
        assert frame["text"].tolist() == [LONG, "short"]


@CASES.input("a TSV text over 131,072 characters with an unclosed quote")
def _long_tsv_quote(tmp_path):
    text = '"unclosed ' + LONG
    path = _write(tmp_path, "d.tsv", f"text\tlabel\n{text}\t1\nshort\t0\n")
    table = read_table(path, text_cols=["text"])
    assert table.frame["text"].tolist() == [text, "short"]
    assert any("not TSV quoting" in note for note in table.notes)


# ------------------------------------------------------------------ probe --words options
@CASES.input("`probe --words` with --nested, --repeats, --test-size")
def _words_options(tmp_path, caught, capsys):
    path = _write(tmp_path, "a.conllu", CONLLU)
    for extra, flag in ((["--nested"], "--nested"), (["--repeats", "3"], "--repeats"),
                        (["--test-size", "0.2"], "--test-size")):
        assert main(["probe", "--words", str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert f"{flag}: not available with --words" in err
    assert main(["probe", "--words", str(path), "--nested", "--heads", "svm"]) == 2
    assert "--nested, --heads: not available" in capsys.readouterr().err
    assert caught == {}  # refused before anything ran


@CASES.input("`probe --words` with --n-jobs (honoured)")
def _words_n_jobs(tmp_path, caught):
    path = _write(tmp_path, "a.conllu", CONLLU)
    with pytest.raises(_Stop):
        main(["probe", "--words", str(path), "--n-jobs", "1"])
    assert caught["kwargs"]["n_jobs"] == 1


@CASES.fault("a truncated gzip file")
def _truncated_gzip(tmp_path, capsys):
    data = gzip.compress(CONLLU.encode() * 50)
    path = _write(tmp_path, "a.conllu.gz", data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"a\.conllu\.gz is a damaged or truncated gzip"):
        read_conll(path)
    table = _write(tmp_path, "d.csv.gz", data[: len(data) // 2])
    with pytest.raises(TableError, match=r"d\.csv\.gz is a damaged or truncated gzip"):
        read_table(table)
    assert main(["probe", "--words", str(path)]) == 2
    assert "damaged or truncated gzip" in capsys.readouterr().err


@pytest.mark.parametrize("name", CASES.names())
def test_case(name, request):
    CASES.run(name, request)


def test_lines_split_only_at_newlines():
    text = "a\u2028b\x85c\x0cd\x1ce\r\nf\rg\n"
    assert conll._split_lines(text) == ["a\u2028b\x85c\x0cd\x1ce", "f\rg"]
    assert np.array_equal(conll._split_lines("\ufeffx\n\ny"), ["x", "", "y"])
