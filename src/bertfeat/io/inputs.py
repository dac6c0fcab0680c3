"""Turn user input into a validated ``list[str]``, and deduplicate it.

This module owns the first two steps of the data path::

    texts ─► validate ─► dedup

Every error names the first offending row and says what to do about it.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, KeysView, Mapping, Set
from typing import Any

import numpy as np

__all__ = ["to_texts", "to_sentences", "dedup", "check_column_name", "BAD_INPUT_POLICIES"]

BAD_INPUT_POLICIES = ("raise", "empty")

#: a UTF-16 surrogate code point on its own: not a character, cannot be UTF-8 encoded
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _is_missing(value: Any) -> bool:
    """True for None, float NaN, ``pd.NA``, ``pd.NaT`` and numpy NaN scalars."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    # pd.NA / pd.NaT without importing pandas eagerly
    cls = type(value).__name__
    return cls in {"NAType", "NaTType"}


def _column_values(X: Any) -> tuple[list[Any], Any]:
    """Return the raw row values of a 1-D text container and its pandas index (or None)."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise ValueError(
                f"BertFeaturizer expects one text column, got a DataFrame with "
                f"{X.shape[1]} columns {list(X.columns)[:5]}. Select the text column "
                "(df['text']) or use a ColumnTransformer to route one column here."
            )
        X = X.iloc[:, 0]
    if isinstance(X, pd.Series):
        return X.tolist(), X.index
    # polars Series / single-column DataFrame, without importing polars
    module = type(X).__module__ or ""
    if module.startswith("polars"):
        if hasattr(X, "columns") and hasattr(X, "to_series"):
            if len(X.columns) != 1:
                raise ValueError(
                    f"BertFeaturizer expects one text column, got a polars DataFrame with "
                    f"{len(X.columns)} columns; select the text column first."
                )
            X = X.to_series()
        return X.to_list(), None
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        elif X.ndim != 1:
            raise ValueError(
                f"BertFeaturizer expects a 1-D sequence of texts, got an array of shape "
                f"{X.shape}. Pass one text per row (a list, a 1-D array, a Series or a "
                "1-column DataFrame)."
            )
        return X.tolist(), None
    if module.startswith("scipy.sparse"):
        raise TypeError(
            f"BertFeaturizer expects texts, got a scipy sparse {type(X).__name__}: sparse "
            "input is not supported (it holds numbers, not texts). Pass one text per row."
        )
    if isinstance(X, (str, bytes)):
        raise TypeError(
            "BertFeaturizer expects a sequence of texts, got a single "
            f"{type(X).__name__}. Wrap it in a list: [text]."
        )
    if isinstance(X, Mapping):
        raise TypeError(
            f"BertFeaturizer expects a sequence of texts, got a {type(X).__name__}. Pass "
            "its values (list(d.values())) or a pandas Series."
        )
    if isinstance(X, Set) and not isinstance(X, KeysView):  # dict keys keep order
        raise TypeError(
            f"BertFeaturizer expects a sequence of texts, got a {type(X).__name__}, which "
            "has no order: its rows could not be matched to labels or outputs. Pass a "
            "list (e.g. sorted(texts))."
        )
    if isinstance(X, Iterable):  # lists, tuples, generators (materialised once) ...
        return list(X), None
    raise TypeError(
        f"BertFeaturizer expects a sequence of texts, got {type(X).__name__}."
    )


def to_texts(X: Any, on_bad_input: str = "raise") -> tuple[list[str], Any]:
    """Validate user input and return it as a list of Python strings.

    Parameters
    ----------
    X : list, tuple, numpy array, pandas Series, 1-column DataFrame, polars Series or iterable
        One text per row. Sets and mappings are refused (no row order).
    on_bad_input : {"raise", "empty"}, default="raise"
        What to do with a missing row (None, NaN, ``pd.NA``): raise a ``ValueError``
        naming the row, or encode it as the empty string. Rows of a wrong type
        (numbers, bytes, lists ...) always raise ``TypeError``.

    Notes
    -----
    A lone UTF-16 surrogate (``"\\ud800"``, e.g. from ``surrogateescape`` decoding or
    a JSON escape) is not a character and no tokenizer accepts it: each one is
    replaced by U+FFFD, the Unicode replacement character, with one ``UserWarning``
    that counts the rows and names the first.

    Returns
    -------
    texts : list of str
        The validated texts, in input order.
    index : pandas.Index or None
        The pandas index of the input, kept for pandas output.

    Raises
    ------
    TypeError
        When a row is not a string; the message names the first such row.
    ValueError
        When the input is not one-dimensional, or a row is missing and
        ``on_bad_input="raise"``.
    """
    values, index = _column_values(X)
    texts: list[str] = []
    surrogate_rows: list[int] = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            # np.str_ and other subclasses -> the plain characters (never a custom __str__)
            text = value if type(value) is str else str.__str__(value)
            if not text.isascii() and _LONE_SURROGATE.search(text):
                surrogate_rows.append(i)
                text = _LONE_SURROGATE.sub("\ufffd", text)
            texts.append(text)
            continue
        if _is_missing(value):
            if on_bad_input == "empty":
                texts.append("")
                continue
            raise ValueError(
                f"{_row(i, index)} is missing ({value!r}); every row must be a text. Drop "
                "or fill missing rows first (e.g. series.fillna('')), or pass "
                "on_bad_input='empty' to encode them as the empty string."
            )
        if isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"{_row(i, index)} is {type(value).__name__}, not str. Decode it first, e.g. "
                "value.decode('utf-8')."
            )
        raise TypeError(
            f"{_row(i, index)} is of type {type(value).__name__} ({_short_repr(value)}), "
            "not str. "
            "BertFeaturizer takes one text per row; convert the column to strings "
            "explicitly if that is what you mean."
        )
    if surrogate_rows:
        warnings.warn(
            f"BertFeaturizer: {len(surrogate_rows)} text(s) hold lone UTF-16 surrogates "
            f"(first: {_row(surrogate_rows[0], index)}), which are not characters; "
            "each was replaced by U+FFFD. Decode such data with errors='replace' to "
            "silence this.", UserWarning, stacklevel=3)
    return texts, index


def _row(i: int, index: Any) -> str:
    """``Row i``, plus the pandas index label when it is not the position itself."""
    if index is not None:
        try:
            label = index[i]
            label = label.item() if isinstance(label, np.generic) else label
            if not (isinstance(label, (int, np.integer)) and label == i):
                return f"Row {i} (index label {label!r})"
        except Exception:  # exotic index: the position alone still names the row
            pass
    return f"Row {i}"


def _short_repr(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dedup(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Return the unique texts in first-seen order and the inverse index.

    Parameters
    ----------
    texts : list of str
        Texts, possibly with repeats.

    Returns
    -------
    unique : list of str
        Each distinct text once, in order of first appearance.
    inverse : ndarray of shape (len(texts),)
        ``unique[inverse[i]] == texts[i]``.
    """
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(texts, dtype=object), sort=False)
    return uniques.tolist(), codes.astype(np.int64, copy=False)


def to_sentences(X: Any, on_bad_input: str = "raise") -> list[list[str]]:
    """Validate pre-tokenised input and return it as a list of word lists.

    Parameters
    ----------
    X : sequence of sequences of str
        One sentence per row, each a list (tuple, 1-D array) of words: a list of lists,
        a pandas Series of lists, or an iterable of them.
    on_bad_input : {"raise", "empty"}, default="raise"
        A missing sentence (None, NaN) or a missing word: raise a ``ValueError`` naming
        it, or use an empty sentence / the empty string (which still gets its row).

    Returns
    -------
    list of list of str

    Raises
    ------
    TypeError
        When the input or a sentence is a single string (not split into words), or a word
        is not a string; the message names the sentence and the word.
    ValueError
        When a sentence or a word is missing and ``on_bad_input="raise"``.
    """
    if isinstance(X, (str, bytes)):
        raise TypeError("expected a sequence of sentences (each a list of words), got a "
                        f"single {type(X).__name__}. Split it into words: [text.split()].")
    if isinstance(X, (Mapping, Set)):
        raise TypeError(f"expected a sequence of sentences, got a {type(X).__name__} "
                        "(no row order). Pass a list of word lists.")
    if hasattr(X, "tolist") and not isinstance(X, np.ndarray):  # pandas / polars Series
        X = X.tolist()
    if isinstance(X, np.ndarray) and X.ndim != 1:
        X = list(X)
    sentences: list[list[str]] = []
    surrogates = 0
    for i, sentence in enumerate(X):
        if _is_missing(sentence):
            if on_bad_input == "empty":
                sentences.append([])
                continue
            raise ValueError(f"Sentence {i} is missing ({sentence!r}); pass a list of words, "
                             "or on_bad_input='empty' to treat it as an empty sentence.")
        if isinstance(sentence, (str, bytes)):
            raise TypeError(
                f"Sentence {i} is a {type(sentence).__name__} ({_short_repr(sentence)}), not "
                "a list of words. Split it first (e.g. text.split()), or use BertFeaturizer "
                "for one vector per text.")
        if not isinstance(sentence, (list, tuple, np.ndarray)) and not (
                hasattr(sentence, "__len__") and hasattr(sentence, "__getitem__")):
            raise TypeError(f"Sentence {i} is of type {type(sentence).__name__}, not a list "
                            "of words.")
        words = []
        for j, word in enumerate(sentence):
            if isinstance(word, str):
                word = word if type(word) is str else str.__str__(word)
                if not word.isascii() and _LONE_SURROGATE.search(word):
                    surrogates += 1
                    word = _LONE_SURROGATE.sub("\ufffd", word)
                words.append(word)
            elif _is_missing(word):
                if on_bad_input != "empty":
                    raise ValueError(
                        f"Sentence {i}, word {j} is missing ({word!r}); fill it, or pass "
                        "on_bad_input='empty' to encode it as the empty string.")
                words.append("")
            else:
                raise TypeError(f"Sentence {i}, word {j} is of type {type(word).__name__} "
                                f"({_short_repr(word)}), not str.")
        sentences.append(words)
    if surrogates:
        warnings.warn(f"{surrogates} word(s) hold lone UTF-16 surrogates, which are not "
                      "characters; each was replaced by U+FFFD.", UserWarning, stacklevel=3)
    return sentences


def check_column_name(seen: Any, X: Any, owner: str) -> None:
    """A DataFrame's text column must have the name seen in ``fit`` (as scikit-learn's own
    transformers require of ``feature_names_in_``).

    Parameters
    ----------
    seen : ndarray of str or None
        ``feature_names_in_`` of the fitted estimator (None: fitted on no DataFrame).
    X : any
        The input of ``transform``.
    owner : str
        The estimator's name, for the message.

    Raises
    ------
    ValueError
        ``X`` is a one-column DataFrame whose column has another name.
    """
    columns = getattr(X, "columns", None)
    if seen is None or columns is None or len(columns) != 1:
        return
    name = str(list(columns)[0])
    if name != seen[0]:
        raise ValueError(
            "The feature names should match those that were passed during fit.\n"
            f"Feature names unseen at fit time:\n- {name}\n"
            f"Feature names seen at fit time, yet now missing:\n- {seen[0]}\n"
            f"{owner} was fitted on a DataFrame with the text column "
            f"{seen[0]!r}; transform got column {name!r}.")
