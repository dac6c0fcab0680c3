"""Reading tagged sentences: CoNLL-U files and column (CoNLL / BIO) files.

:func:`read_conll` returns ``(sentences, tags)``, two lists of per-sentence lists, ready
for :class:`~bertfeat.WordTagger` and :func:`~bertfeat.probe.probe_words`.

* **CoNLL-U** (Universal Dependencies): 10 tab-separated fields per word, ``#`` comment
  lines, a blank line after each sentence. Multi-word token lines (``1-2``) and empty
  nodes (``1.1``) are skipped, so the words are the syntactic words the tags belong to.
* **Column files** (CoNLL-2000/2003, BIO): columns separated by ASCII spaces or tabs,
  the word first, a blank line between sentences; ``-DOCSTART-`` lines are skipped.

The format is decided from the whole file, lines split at ``\n`` only, and ``.gz`` files
are read as they are (see :func:`read_conll`).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from typing import Any

__all__ = ["read_conll", "CONLLU_COLUMNS"]

#: CoNLL-U field names, in file order
CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps",
                  "misc")


#: a CoNLL-U word id: 1, 2-3 (multi-word token) or 1.1 (empty node)
_CONLLU_ID = re.compile(r"^[0-9]+(?:-[0-9]+|\.[0-9]+)?$")
#: what separates columns in a column file: ASCII spaces and tabs only (a no-break space
#: or an ideographic space is part of a word: "New\xa0York" is one word)
_COLUMN_SEP = re.compile(r"[ \t]+")


def _decode(data: bytes, name: str) -> str:
    """UTF-8 text of a file's bytes (gunzipped if gzip), without a byte-order mark."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{name} is a damaged or truncated gzip file ({exc})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(f"{name} is not UTF-8 text (line {line}: {exc.reason}); save it as "
                         "UTF-8") from None


def _split_lines(text: str) -> list[str]:
    """Lines split on \\n (and \\r\\n) only.

    ``str.splitlines`` also splits on U+2028, U+0085, form feed and other characters that
    may sit inside a comment or a word: they stay where they are.
    """
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _lines(source: Any) -> list[str]:
    if isinstance(source, (str, os.PathLike)) and not (
            isinstance(source, str) and "\n" in source):
        with open(source, "rb") as fh:
            return _split_lines(_decode(fh.read(), str(source)))
    if isinstance(source, str):
        return _split_lines(source)
    if isinstance(source, io.IOBase) or hasattr(source, "read"):
        text = source.read()
        name = str(getattr(source, "name", "the file"))
        return _split_lines(_decode(text, name) if isinstance(text, bytes) else text)
    raise TypeError(f"expected a path, a text or a file object, got {type(source).__name__}")


def _blank(line: str) -> bool:
    return not line.strip(" \t")


def _is_conllu(lines: list[str]) -> bool:
    """CoNLL-U when most word lines of the whole file are 10 tab-separated fields with a
    CoNLL-U id (or the file has CoNLL-U's ``# text =`` / ``# sent_id =`` comments)."""
    if any(line.startswith(("# text =", "# sent_id =", "# text=", "# sent_id="))
           for line in lines):
        return True
    words = conllu = 0
    for line in lines:
        if _blank(line) or line.startswith("#"):
            continue
        words += 1
        fields = line.split("\t")
        conllu += len(fields) == 10 and bool(_CONLLU_ID.match(fields[0]))
    return words > 0 and conllu * 2 > words


def read_conll(source: Any, tag_col: str | int | None = None,
               format: str = "auto") -> tuple[list[list[str]], list[list[str]]]:
    """Read sentences and one tag column from a CoNLL-U or a column file.

    Parameters
    ----------
    source : str, path or file object
        A file name (``.gz`` files are decompressed), an open file, or the file's text
        itself (a string holding a newline).
    tag_col : str or int, optional
        CoNLL-U: a field name (``"upos"``, ``"xpos"``, ``"deprel"`` ...; default
        ``"upos"``) or a 0-based field index. Column files: a 0-based column index
        (default: the last column).
    format : {"auto", "conllu", "columns"}, default="auto"
        ``"auto"`` decides from the whole file: CoNLL-U when it has ``# text =`` or
        ``# sent_id =`` comments, or when most word lines are 10 tab-separated fields
        with a CoNLL-U id; a word line that then has another number of fields is an
        error naming the line.

    Notes
    -----
    Files are UTF-8 (a byte-order mark is removed), plain or gzip-compressed (``.gz``).
    Lines end at ``\\n`` or ``\\r\\n`` only: U+2028, U+0085 or a form feed inside a
    comment or a word stays there. In column files, columns are separated by ASCII spaces
    and tabs only: a no-break space (U+00A0) or an ideographic space (U+3000) is part of
    the word.

    Returns
    -------
    sentences : list of list of str
    tags : list of list of str

    Raises
    ------
    ValueError
        When a line has too few columns or a tag is missing, naming the line number.
    """
    lines = _lines(source)
    if format not in ("auto", "conllu", "columns"):
        raise ValueError(f"format must be 'auto', 'conllu' or 'columns', got {format!r}")
    conllu = _is_conllu(lines) if format == "auto" else format == "conllu"
    if conllu:
        column = 3 if tag_col is None else tag_col
        if isinstance(column, str) and column.isdigit():
            column = int(column)
        if isinstance(column, str):
            if column.lower() not in CONLLU_COLUMNS:
                raise ValueError(f"tag_col={tag_col!r} is not a CoNLL-U field; use one of "
                                 f"{CONLLU_COLUMNS} or a field index")
            column = CONLLU_COLUMNS.index(column.lower())
    else:
        if isinstance(tag_col, str):
            if not tag_col.lstrip("-").isdigit():
                raise ValueError(f"tag_col={tag_col!r}: a column file has no field names; "
                                 "pass a 0-based column index")
            tag_col = int(tag_col)
        column = -1 if tag_col is None else tag_col
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    labels: list[str] = []

    def close():
        if words:
            sentences.append(list(words))
            tags.append(list(labels))
        words.clear()
        labels.clear()

    for number, line in enumerate(lines, 1):
        if _blank(line):
            close()
            continue
        if conllu:
            if line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 10:
                raise ValueError(f"line {number}: a CoNLL-U word line has 10 tab-separated "
                                 f"fields, this one has {len(fields)}")
            if not _CONLLU_ID.match(fields[0]):
                raise ValueError(f"line {number}: {fields[0]!r} is not a CoNLL-U word id "
                                 "(1, 2-3 or 1.1)")
            if "-" in fields[0] or "." in fields[0]:
                continue  # multi-word token or empty node
            word = fields[1]
        else:
            fields = _COLUMN_SEP.split(line.strip(" \t"))
            if fields[0] == "-DOCSTART-":
                continue
            if len(fields) < 2:
                raise ValueError(f"line {number}: expected a word and a tag, got {line!r}")
            word = fields[0]
        try:
            tag = fields[column]
        except IndexError:
            raise ValueError(f"line {number}: no column {column} (the line has "
                             f"{len(fields)})") from None
        if conllu and tag == "_" and CONLLU_COLUMNS[column] in ("upos", "xpos", "deprel"):
            raise ValueError(f"line {number}: word {word!r} has no "
                             f"{CONLLU_COLUMNS[column]} tag ('_')")
        words.append(word)
        labels.append(tag)
    close()
    return sentences, tags
