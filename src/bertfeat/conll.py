"""Reading tagged sentences: CoNLL-U files and column (CoNLL / BIO) files.

:func:`read_conll` returns ``(sentences, tags)``, two lists of per-sentence lists, ready
for :class:`~bertfeat.WordTagger` and :func:`~bertfeat.probe.probe_words`.

* **CoNLL-U** (Universal Dependencies): 10 tab-separated fields per word, ``#`` comment
  lines, a blank line after each sentence. Multi-word token lines (``1-2``) and empty
  nodes (``1.1``) are skipped, so the words are the syntactic words the tags belong to.
* **Column files** (CoNLL-2000/2003, BIO): whitespace-separated columns, the word first,
  a blank line between sentences; ``-DOCSTART-`` lines are skipped.
"""

from __future__ import annotations

import io
import os
from typing import Any

__all__ = ["read_conll", "CONLLU_COLUMNS"]

#: CoNLL-U field names, in file order
CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps",
                  "misc")


def _lines(source: Any) -> list[str]:
    if isinstance(source, (str, os.PathLike)) and not (
            isinstance(source, str) and "\n" in source):
        with open(source, encoding="utf-8") as fh:
            return fh.read().splitlines()
    if isinstance(source, str):
        return source.splitlines()
    if isinstance(source, io.IOBase) or hasattr(source, "read"):
        text = source.read()
        return (text.decode("utf-8") if isinstance(text, bytes) else text).splitlines()
    raise TypeError(f"expected a path, a text or a file object, got {type(source).__name__}")


def _is_conllu(lines: list[str]) -> bool:
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        return len(fields) == 10 and fields[0].split("-")[0].split(".")[0].isdigit()
    return False


def read_conll(source: Any, tag_col: str | int | None = None,
               format: str = "auto") -> tuple[list[list[str]], list[list[str]]]:
    """Read sentences and one tag column from a CoNLL-U or a column file.

    Parameters
    ----------
    source : str, path or file object
        A file name, an open file, or the file's text itself (a string holding a newline).
    tag_col : str or int, optional
        CoNLL-U: a field name (``"upos"``, ``"xpos"``, ``"deprel"`` ...; default
        ``"upos"``) or a 0-based field index. Column files: a 0-based column index
        (default: the last column).
    format : {"auto", "conllu", "columns"}, default="auto"
        ``"auto"`` reads the first data line: 10 tab-separated fields with a numeric id
        mean CoNLL-U.

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
        if not line.strip():
            close()
            continue
        if conllu:
            if line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 10:
                raise ValueError(f"line {number}: a CoNLL-U word line has 10 tab-separated "
                                 f"fields, this one has {len(fields)}")
            if "-" in fields[0] or "." in fields[0]:
                continue  # multi-word token or empty node
            word = fields[1]
        else:
            fields = line.split()
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
