"""Tags per word of pre-tokenised sentences: the ``y`` of word-level features and back.

:func:`flatten_tags` turns per-sentence tag lists into one tag per word (rows of
:class:`~bertfeat.BertWordFeaturizer`), :func:`sentence_ids` gives the ``groups`` of those
rows, :func:`unflatten_tags` turns per-word predictions back into per-sentence lists.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .inputs import _is_missing, to_sentences

__all__ = ["flatten_tags", "once", "sentence_ids", "tag_lists", "unflatten_tags"]


def flatten_tags(tags: Any, sentences: Any = None) -> np.ndarray:
    """One tag per word, all sentences in order: the ``y`` of word-level features.

    Parameters
    ----------
    tags : sequence of sequence
        Tags per sentence (one per word).
    sentences : sequence of list of str, optional
        When given, every sentence must have as many tags as words; the error names the
        first sentence that does not.

    Returns
    -------
    ndarray of shape (n_words_total,)
    """
    tags = tag_lists(tags)
    if sentences is not None:
        sentences = to_sentences(sentences, "empty")
        if len(sentences) != len(tags):
            raise ValueError(f"{len(sentences)} sentences but {len(tags)} tag lists")
        for i, (s, t) in enumerate(zip(sentences, tags)):
            if len(s) != len(t):
                raise ValueError(f"Sentence {i} has {len(s)} words but {len(t)} tags.")
    flat = [tag for sentence in tags for tag in sentence]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    if flat and all(isinstance(t, str) for t in flat):
        return out.astype(str)
    return out


def sentence_ids(sentences: Any) -> np.ndarray:
    """The sentence of every word, in order: ``groups`` for ``GroupKFold``.

    Parameters
    ----------
    sentences : sequence of list of str

    Returns
    -------
    ndarray of int64, shape (n_words_total,)
    """
    lengths = [len(s) for s in to_sentences(sentences, "empty")]
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def unflatten_tags(flat: Any, sentences: Any) -> list[list]:
    """Inverse of :func:`flatten_tags`: per-word values back into per-sentence lists.

    Parameters
    ----------
    flat : array-like of shape (n_words_total,)
    sentences : sequence of list of str

    Returns
    -------
    list of list
    """
    lengths = [len(s) for s in to_sentences(sentences, "empty")]
    flat = np.asarray(flat)
    if len(flat) != sum(lengths):
        raise ValueError(f"{len(flat)} values for {sum(lengths)} words")
    cuts = np.cumsum(lengths)[:-1] if lengths else []
    return [part.tolist() for part in np.split(flat, cuts)] if lengths else []


def once(values: Any) -> Any:
    """A one-shot iterator (generator, ``map`` ...) as a list; anything else as it is.

    Parameters
    ----------
    values : any

    Returns
    -------
    list or the input
    """
    if isinstance(values, Iterator):
        return list(values)
    return values


def tag_lists(tags: Any) -> list[list]:
    """Tags per sentence as lists, or an error naming the sentence (and word) at fault.

    Parameters
    ----------
    tags : sequence of sequence
        One tag list per sentence.

    Returns
    -------
    list of list

    Raises
    ------
    TypeError
        A sentence's tags are not a list.
    ValueError
        A tag is missing (None, NaN).
    """
    if isinstance(tags, (str, bytes)) or tags is None:
        raise TypeError("tags must be a sequence of per-sentence tag lists")
    out = []
    for i, sentence in enumerate(tags):
        if isinstance(sentence, (str, bytes)) or not hasattr(sentence, "__len__"):
            raise TypeError(f"Tags of sentence {i} must be a list (one tag per word), got "
                            f"{type(sentence).__name__}.")
        row = list(sentence.tolist() if isinstance(sentence, np.ndarray) else sentence)
        for j, tag in enumerate(row):
            if _is_missing(tag):
                raise ValueError(f"Sentence {i}, word {j} has no tag ({tag!r}).")
        out.append(row)
    return out
