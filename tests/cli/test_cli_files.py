"""The CLI reads files faithfully: no row lost or invented without saying so (issue 12 item 7).

Also Ctrl-C (item 10): the work is kept, exit status 130, no traceback.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bertfeat import FeatureStore
from bertfeat.cli import main
from bertfeat.tables import TableError, read_table

from ..conftest import WORDS


def _texts(n: int) -> list[str]:
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(WORDS, 4)) for _ in range(n)]


def _embed(data, tiny_model, tmp_path, *extra):
    out = tmp_path / "features.npy"
    code = main(["embed", str(data), "-o", str(out), "--model", tiny_model,
                 "--precision", "fp32", "--cache-dir", str(tmp_path / "store"), *extra])
    return code, (np.load(out) if code == 0 and out.exists() else None)


# ----------------------------------------------------------------------- quoting
def test_tsv_with_stray_and_unclosed_quotes_keeps_every_line(tiny_model, tmp_path, capsys):
    texts = _texts(20)
    texts[3] = 'the 5" screen'
    texts[7] = '"unclosed start of a quote'
    data = tmp_path / "data.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)))
    table = read_table(data, text_cols=["text"])
    assert table.frame["text"].tolist() == texts
    assert table.frame["label"].tolist() == [i % 2 for i in range(20)]
    code, X = _embed(data, tiny_model, tmp_path)
    assert code == 0 and X.shape[0] == 20
    err = capsys.readouterr().err
    assert "line 9 is not TSV quoting" in err and "every line was read as one row" in err


def test_tsv_written_by_pandas_round_trips(tmp_path):
    texts = ['"great" movie', "two\nlines", "tab\there", "plain", 'he said "no"']
    data = tmp_path / "data.tsv"
    pd.DataFrame({"text": texts, "label": [1, 0, 1, 0, 1]}).to_csv(data, sep="\t",
                                                                    index=False)
    table = read_table(data, text_cols=["text"], quoting="csv")
    assert table.frame["text"].tolist() == texts
    # auto: quoted tabs look like swallowed rows, so without the tab text it is quoting
    pd.DataFrame({"text": [t for t in texts if "\t" not in t]}).to_csv(data, sep="\t",
                                                                      index=False)
    auto = read_table(data, text_cols=["text"])
    assert auto.frame["text"].tolist() == [t for t in texts if "\t" not in t]
    assert any("hold line breaks" in note for note in auto.notes)


def test_csv_with_an_unclosed_quote_is_an_error_naming_the_line(tiny_model, tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text('text,label\ngood film,1\n"awful plot,0\nboring,1\n')
    code, _ = _embed(data, tiny_model, tmp_path)
    assert code == 2
    err = capsys.readouterr().err
    assert "record starting on line 3 has a stray or unclosed quote" in err
    assert "Traceback" not in err


def test_csv_quote_inside_a_quoted_field_is_an_error(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text('text,label\n"the "5" screen",1\n')
    with pytest.raises(TableError, match="line 2 has a stray or unclosed quote.*5\"\" screen"):
        read_table(data, text_cols=["text"])


def test_csv_multi_line_texts_and_blank_lines_are_reported(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text('text,label\n"first\nsecond line",1\n\nplain,0\n')
    table = read_table(data, text_cols=["text"])
    assert table.frame["text"].tolist() == ["first\nsecond line", "plain"]
    assert table.lines == [2, 5]
    assert any("skipped 1 blank line(s) (first: line 4)" in n for n in table.notes)
    assert any("2 rows from 4 lines" in n for n in table.notes)


@pytest.mark.parametrize("content, match", [
    ("text,label\ngood,1,extra\n", "line 2: 3 fields, but the header has 2"),
    ("text,label\ngood\n", "line 2: 1 fields, but the header has 2"),
    ("", "is empty: it needs a header line"),
    ("text,text\na,b\n", "names column\\(s\\) \\['text'\\] more than once"),
])
def test_malformed_csv_is_an_error_naming_the_line(tmp_path, content, match):
    data = tmp_path / "data.csv"
    data.write_text(content)
    with pytest.raises(TableError, match=match):
        read_table(data, text_cols=["text"])


def test_non_utf8_file_names_the_line(tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(b"text,label\ngood,1\ncaf\xe9,0\n")
    with pytest.raises(TableError, match="not UTF-8 text \\(line 3"):
        read_table(data, text_cols=["text"])


def test_byte_order_mark_and_digit_texts(tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes("\ufefftext,label\n007,1\n1e5,0\nNA,1\n".encode())
    frame = read_table(data, text_cols=["text"]).frame
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].tolist() == ["007", "1e5", "NA"]  # texts stay texts


# ------------------------------------------------------------------ labels, texts
def test_labels_keep_their_type(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("text,a,b,c\nx,1,0.5,spam\ny,2,1,ham\n")
    frame = read_table(data, text_cols=["text"]).frame
    assert frame["a"].dtype == np.int64 and frame["a"].tolist() == [1, 2]
    assert frame["b"].dtype == np.float64
    assert frame["c"].tolist() == ["spam", "ham"]


def test_probe_refuses_missing_labels_naming_the_lines(tiny_model, tmp_path, capsys):
    data = tmp_path / "data.csv"
    rows = [f"{t},{'' if i in (2, 9) else i % 2}" for i, t in enumerate(_texts(12))]
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    code = main(["probe", str(data), "--model", tiny_model, "--out", str(tmp_path / "o"),
                 "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "label column 'label' is empty on lines 4, 11 (2 of 12 rows)" in err


def test_missing_texts_follow_the_policy(tiny_model, tmp_path, capsys):
    data = tmp_path / "data.csv"
    texts = _texts(6)
    texts[4] = ""
    data.write_text('text,id\n' + "".join(f"{t},{i}\n" for i, t in enumerate(texts)))
    code, _ = _embed(data, tiny_model, tmp_path)
    assert code == 2
    assert "text column 'text' is empty on line 6 (1 of 6 rows)" in capsys.readouterr().err
    code, X = _embed(data, tiny_model, tmp_path, "--on-bad-input", "empty")
    assert code == 0 and X.shape[0] == 6
    assert "1 empty text(s) (first: line 6) encoded as the empty string" in (
        capsys.readouterr().err)


def test_parquet_missing_text_names_the_row(tiny_model, tmp_path, capsys):
    data = tmp_path / "data.parquet"
    pd.DataFrame({"text": ["good", None, "bad"]}).to_parquet(data)
    code, _ = _embed(data, tiny_model, tmp_path)
    assert code == 2
    assert "empty on row 1 (1 of 3 rows)" in capsys.readouterr().err


# ------------------------------------------------------------------------- --limit
@pytest.mark.parametrize("command", ["embed", "probe"])
@pytest.mark.parametrize("value", ["-5", "ten"])
def test_limit_must_be_a_non_negative_count(tmp_path, capsys, command, value):
    data = tmp_path / "data.csv"
    data.write_text("text,label\na,1\n")
    extra = ["-o", str(tmp_path / "x.npy")] if command == "embed" else []
    with pytest.raises(SystemExit) as exit_info:
        main([command, str(data), "--limit", value, *extra])
    assert exit_info.value.code == 2
    assert "--limit must be a whole number of rows >= 0" in capsys.readouterr().err


def test_embed_says_how_many_rows_it_wrote_of_how_many(tiny_model, tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("text\n" + "\n".join(_texts(20)) + "\n")
    code, X = _embed(data, tiny_model, tmp_path, "--limit", "7")
    assert code == 0 and X.shape[0] == 7
    assert "rows: the first 7 of 20 rows of" in capsys.readouterr().out
    code, X = _embed(data, tiny_model, tmp_path)
    assert X.shape[0] == 20 and "rows: all 20 rows of" in capsys.readouterr().out


# ------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_keeps_the_work_and_exits_130(tiny_model, tmp_path, capsys, monkeypatch,
                                             encode_spy):
    from bertfeat import encoder

    data = tmp_path / "data.csv"
    texts = _texts(40)
    data.write_text("text\n" + "\n".join(texts) + "\n")
    real = encoder._forward_batches

    def interrupted_after_one_batch(*args, **kwargs):
        batches = real(*args, **kwargs)
        yield next(batches)
        raise KeyboardInterrupt

    monkeypatch.setattr(encoder, "_forward_batches", interrupted_after_one_batch)
    code, _ = _embed(data, tiny_model, tmp_path, "--batch-size", "8")
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted; the vectors encoded so far are kept in the feature store" in err
    assert "Traceback" not in err
    kept = FeatureStore(tmp_path / "store").stats()["entries"]
    assert 0 < kept < len(set(texts))
    monkeypatch.setattr(encoder, "_forward_batches", real)
    code, X = _embed(data, tiny_model, tmp_path, "--batch-size", "8")
    assert code == 0 and X.shape[0] == 40
    assert encode_spy[-1] == len(set(texts)) - kept  # only the rest was encoded


def test_ctrl_c_without_a_store_says_nothing_was_kept(tiny_model, tmp_path, capsys,
                                                      monkeypatch):
    from bertfeat import featurizer

    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(featurizer.BertFeaturizer, "transform", interrupt)
    data = tmp_path / "data.csv"
    data.write_text("text\ngood\n")
    code, _ = _embed(data, tiny_model, tmp_path, "--no-cache")
    assert code == 130
    assert "nothing was kept (--no-cache)" in capsys.readouterr().err
