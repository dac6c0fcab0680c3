"""Reading a CSV, TSV or Parquet file of texts (and labels) faithfully, for the command line.

Every record of the file becomes one row, or the reader says why not:

* CSV is read as RFC 4180 (quotes around a field, doubled inside it), strictly: a stray
  quote or an unclosed one is an error naming the line, never rows silently merged.
* TSV is read with the same quoting when the file uses it consistently (as pandas and
  spreadsheets write it); when a quote in it is not such quoting (``5" screen``, an
  unclosed ``"``), every line is one row and quotes are text, with a note saying so.
* A row whose number of fields differs from the header is an error naming the line.
* Blank lines are skipped with a note that counts them; a quoted field that holds line
  breaks makes rows differ from lines, and a note says so.
* An empty text cell is a *missing* text (the policy of ``on_bad_input``), an empty label
  cell a missing label (an error naming the rows). Labels keep their type: a column of
  whole numbers is ``int64``, of numbers ``float64``, else strings -- and strings when
  numbers would merge values the file tells apart (``1`` and ``01``).
* Gzip-compressed files (``.csv.gz``, ``.tsv.gz``) are read as they are; a field may hold
  any number of characters (the csv module's 131,072 limit is lifted while reading).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Table", "TableError", "read_table"]


class TableError(ValueError):
    """The file cannot be read as a table faithfully; the message names the line."""


@dataclass
class Table:
    """A file read as a table.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per record, in file order; the text column holds ``str`` (``None`` where
        a text is missing, unless filled), other columns their inferred type.
    lines : list of int or None
        File line each row starts on (1 = the header); ``None`` for Parquet.
    notes : list of str
        What the reader did that the user should know (skipped lines, quoting).
    """

    frame: Any
    lines: list[int] | None
    notes: list[str] = field(default_factory=list)

    def where(self, rows: Sequence[int], limit: int = 5) -> str:
        """``lines 4, 9`` (CSV/TSV) or ``rows 2, 7`` (Parquet) of the first ``rows``."""
        shown = [self.lines[i] if self.lines else i for i in rows[:limit]]
        more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
        return (f"{'line' if self.lines else 'row'}{'s' if len(rows) > 1 else ''} "
                f"{', '.join(map(str, shown))}{more}")


#: the longest field the reader takes (characters): Python's csv module stops at 131,072
#: by default, which a long document passes; 2**31 - 1 is the C parser's own bound
FIELD_LIMIT = 2**31 - 1


@contextlib.contextmanager
def _field_limit() -> Iterator[None]:
    """Raise the csv module's field size limit (a process-wide setting) for one read."""
    old = csv.field_size_limit(FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _records(text: str, delimiter: str, quoted: bool) -> tuple[list[list[str]], list[int]]:
    """Records and the line each starts on; ``csv.Error`` on bad quoting (strict)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True,
                        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    rows, starts = [], []
    previous = 0
    with _field_limit():
        for row in reader:
            rows.append(row)
            starts.append(previous + 1)
            previous = reader.line_num
    return rows, starts


def _infer(values: list[str | None]) -> Any:
    """A column's values as int64, float64 or strings, ``None`` kept as missing."""
    import numpy as np
    import pandas as pd

    present = [v for v in values if v is not None]
    for kind in (int, float):
        try:
            converted = [kind(v) for v in present]
        except ValueError:
            continue
        if len(set(converted)) != len(set(present)):
            break  # numbers would merge labels the file tells apart ("1", "01"): strings
        if kind is int and len(present) == len(values):
            return pd.array(converted, dtype="int64")
        if kind is int and any(abs(v) > 2 ** 53 for v in converted):
            break  # would lose digits as floats: keep the strings
        it = iter(converted)
        return np.array([np.nan if v is None else float(next(it)) for v in values])
    return pd.array(values, dtype=object)


def _file_bytes(file: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (``.gz``, or gzip's magic bytes)."""
    data = file.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise TableError(f"{file} is a damaged or truncated gzip file ({exc})") from exc
    return data


def _read_delimited(file: Path, delimiter: str, quoting: str, text_cols: set[str]):
    data = _file_bytes(file)
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TableError(f"{file} is not UTF-8 text (line {line}: {exc.reason}); save it "
                         "as UTF-8") from exc
    notes = []
    quoted = quoting != "none"
    merged: list[int] = []
    try:
        records, starts = _records(raw, delimiter, quoted)
        merged = [start for row, start in zip(records, starts)
                  if delimiter == "\t" and any("\t" in v for v in row)]
        if merged and quoting == "auto":  # a quoted field swallowed separators: no TSV
            raise csv.Error(f"a quoted field from line {merged[0]} holds tabs")
    except csv.Error as exc:
        if delimiter == "\t" and quoting == "auto":
            bad = merged[0] if merged else _bad_quote_line(raw, delimiter)
            records, starts = _records(raw, delimiter, quoted=False)
            notes.append(f"{file}: the quote in line {bad} is not TSV quoting (e.g. "
                         "5\" screen, or an unclosed \"); every line was read as one row, "
                         "with quotes kept as text")
        else:
            bad = _bad_quote_line(raw, delimiter)
            hint = ("quote the whole field and double quotes inside it (\"5\"\" screen\")"
                    if delimiter == "," else "pass --quoting none if the file has no quoting")
            raise TableError(f"{file}: the record starting on line {bad} has a stray or "
                             f"unclosed quote ({exc}); {hint}") from exc
    if not records:
        raise TableError(f"{file} is empty: it needs a header line naming the columns")
    header, records, starts = records[0], records[1:], starts[1:]
    blank = [i for i, row in enumerate(records) if not row]
    if blank:
        notes.append(f"{file}: skipped {len(blank)} blank line(s) "
                     f"(first: line {starts[blank[0]]})")
        records = [row for row in records if row]
        starts = _keep(starts, blank)
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        raise TableError(f"{file}: the header names column(s) {twice} more than once")
    width = len(header)
    for row, start in zip(records, starts):
        if len(row) != width:
            raise TableError(
                f"{file} line {start}: {len(row)} fields, but the header has {width} "
                f"({header}); a separator{' or quote' if quoted else ''} inside a text, or a "
                "missing field?")
    spanning = [i for i, row in enumerate(records) if any("\n" in v or "\r" in v for v in row)]
    if spanning:
        n_lines = raw.count("\n") + (not raw.endswith("\n"))
        notes.append(f"{file}: {len(records)} rows from {n_lines - 1} lines after the header: "
                     f"{len(spanning)} quoted text(s) hold line breaks (first: line "
                     f"{starts[spanning[0]]})")
    import pandas as pd

    columns = {}
    for j, name in enumerate(header):
        values = [row[j] if row[j] != "" else None for row in records]
        columns[name] = (pd.array(values, dtype=object) if name in text_cols
                         else _infer(values))
    return pd.DataFrame(columns), starts, notes


def _keep(starts: list[int], dropped: list[int]) -> list[int]:
    gone = set(dropped)
    return [s for i, s in enumerate(starts) if i not in gone]


def _bad_quote_line(raw: str, delimiter: str) -> int:
    """The line on which the record that strict CSV parsing fails on starts (1-based)."""
    reader = csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter, strict=True)
    previous = 0
    try:
        with _field_limit():
            for _ in reader:
                previous = reader.line_num
    except csv.Error:
        pass
    return previous + 1


def read_table(path: str | Path, *, text_cols: Sequence[str] = (),
               quoting: str = "auto") -> Table:
    """Read a CSV, TSV (``.tsv``/``.tab``) or Parquet file, one row per record.

    Parameters
    ----------
    path : str or Path
        The file. ``.parquet`` is read with pandas; anything else as CSV, or TSV when
        the name ends in ``.tsv``/``.tab`` (also before a second suffix like ``.tsv.gz``
        or ``.tsv.txt``); UTF-8, with or without a byte-order mark, plain or gzip.
    text_cols : sequence of str
        Columns holding texts: kept as strings (``"007"`` stays ``"007"``), an empty cell
        is ``None``.
    quoting : {"auto", "csv", "none"}
        ``auto``: RFC 4180 quoting for CSV; for TSV too, unless a quote in the file is not
        such quoting (then every line is a row). ``csv``: always quoting (errors on stray
        quotes). ``none``: quotes are text, every line is a row.

    Returns
    -------
    Table
    """
    file = Path(path)
    if not file.is_file():
        raise TableError(f"{path}: no such file")
    suffixes = "".join(file.suffixes[-2:]).lower()
    if suffixes.endswith(".parquet"):
        import pandas as pd

        frame = pd.read_parquet(file)
        for name in text_cols:
            if name in frame.columns:
                values = frame[name].astype(object)
                frame[name] = values.where(values.notna(), None)
        return Table(frame, None, [])
    tsv = any(suffix.lower() in (".tsv", ".tab") for suffix in file.suffixes[-2:])
    delimiter = "\t" if tsv else ","
    frame, starts, notes = _read_delimited(file, delimiter, quoting, set(text_cols))
    return Table(frame, starts, notes)
