"""Scores of per-word tag sequences: token accuracy and entity-level F1 for BIO/IOB2 tags.

:func:`entity_f1` follows the CoNLL-2000 ``conlleval`` reading of BIO tags, which is also
the default (non-strict) mode of seqeval: an entity starts at ``B-X``, or at an ``I-X``
that does not continue an entity of type ``X``; it continues over ``I-X``; entities never
cross sentences. Tested against seqeval in ``tests/estimators/test_words.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["entities", "entity_f1", "token_accuracy", "is_bio"]

_BIO = re.compile(r"^(O|[BI]-.+)$")


def is_bio(tags: Sequence[Sequence[str]]) -> bool:
    """True when every tag is ``O``, ``B-X`` or ``I-X`` and at least one is not ``O``."""
    seen = False
    for sentence in tags:
        for tag in sentence:
            if not isinstance(tag, str) or not _BIO.match(tag):
                return False
            seen = seen or tag != "O"
    return seen


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of one sentence's BIO tags, as ``(type, first, last)`` word positions.

    Parameters
    ----------
    tags : sequence of str
        ``O``, ``B-X`` and ``I-X`` tags of one sentence.

    Returns
    -------
    list of (str, int, int)
    """
    found = []
    kind, start = None, 0
    for i, tag in enumerate(tags):
        prefix, _, name = str(tag).partition("-")
        if prefix == "I" and kind == name:
            continue  # the open entity goes on
        if kind is not None:
            found.append((kind, start, i - 1))
            kind = None
        if prefix in ("B", "I"):
            kind, start = name, i
    if kind is not None:
        found.append((kind, start, len(tags) - 1))
    return found


def entity_f1(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> float:
    """Micro-averaged entity-level F1 of BIO/IOB2 tag sequences.

    An entity counts as found when type, first and last word all match.

    Parameters
    ----------
    y_true, y_pred : sequence of sequence of str
        Tags per sentence.

    Returns
    -------
    float
        0.0 when there is no entity on either side.
    """
    _check_lengths(y_true, y_pred)
    true = {(s, *e) for s, tags in enumerate(y_true) for e in entities(tags)}
    pred = {(s, *e) for s, tags in enumerate(y_pred) for e in entities(tags)}
    hit = len(true & pred)
    if not true or not pred or not hit:
        return 0.0
    precision, recall = hit / len(pred), hit / len(true)
    return 2 * precision * recall / (precision + recall)


def token_accuracy(y_true: Sequence[Sequence], y_pred: Sequence[Sequence]) -> float:
    """Share of words whose predicted tag equals the true one."""
    _check_lengths(y_true, y_pred)
    total = sum(len(t) for t in y_true)
    if total == 0:
        return 0.0
    right = sum(int(np.sum(np.asarray(t, dtype=object) == np.asarray(p, dtype=object)))
                for t, p in zip(y_true, y_pred) if len(t))
    return right / total


def _check_lengths(y_true: Sequence[Sequence], y_pred: Sequence[Sequence]) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true and {len(y_pred)} predicted sentences")
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} true tags but {len(p)} predicted")
