"""What a probe candidate costs to run: the order the cheaper-first rules read.

:data:`PICK_RULE` says the order in words; :func:`candidate_cost` is its key for one row
of the probe table (smaller is cheaper); :func:`layer_depth` is how deep the encoder must
run for a layer label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

__all__ = ["PICK_RULE", "candidate_cost", "layer_depth"]

#: the pick rule, as the summary states it
PICK_RULE = ("the cheapest to run: no encoder (TF-IDF alone), then the fewest encoder "
             "layers, then no chunking, no TF-IDF union, the cheaper head (in the order "
             "the heads were given), fewer features; equal cost: the higher mean; a "
             "candidate that a cheaper one outscores is never picked")
_LINEAR = {"logreg", "ridge", "linear"}


def layer_depth(layer: str) -> int:
    """The deepest hidden state a layer label needs: ``L4`` -> 4, ``L3-6 concat`` -> 6.

    Parameters
    ----------
    layer : str
        A value of the table's ``layer`` column (``-`` for TF-IDF: 0).

    Returns
    -------
    int
    """
    head = str(layer).split(" ")[0]
    numbers = [int(v) for v in re.findall(r"\d+", head)] if head.startswith("L") else []
    return max(numbers, default=0)


def _head_rank(head: str, head_order: Sequence[str]) -> int:
    name = str(head).split(" ")[0]
    order = list(head_order)
    if name in order:
        return order.index(name)
    if name in _LINEAR:  # TF-IDF and union heads are linear models
        return 0
    return len(order)


def candidate_cost(row: pd.Series, head_order: Sequence[str]) -> tuple:
    """The cost key of one table row under :data:`PICK_RULE` (smaller is cheaper).

    Parameters
    ----------
    row : pandas.Series
        A row of the probe table (``family``, ``layer``, ``head``, ``n_features``,
        ``stage``).
    head_order : sequence of str
        The probe's head names, cheapest first (the first one screened).

    Returns
    -------
    tuple
        ``(needs encoder, encoder layers, chunked, union, head rank, n_features)``.
    """
    family = row["family"]
    if family == "tfidf":
        return (0, 0, 0, 0, _head_rank(row["head"], head_order), 0)
    chunked = int(str(row["layer"]).endswith("chunked") or row.get("stage") == "chunk")
    n_features = row.get("n_features")
    width = 0 if n_features is None or pd.isna(n_features) else int(n_features)
    return (1, layer_depth(row["layer"]), chunked, int(family == "union"),
            _head_rank(row["head"], head_order), width)
