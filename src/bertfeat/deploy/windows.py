"""``long_text="chunk"`` in the runtime: which windows of a text run, and how they pool.

The encoder graph of a chunked export returns each window's cls/mean/max statistics per
layer (or the pooler output). A text's windows are pooled as the encoder's chunked pass
does (``cls``/``mean`` and the pooler output token-weighted over windows, ``max`` the
maximum), then its features are built as the featurizer builds them (pooling, layer
combination, normalisation). numpy only: the torch-free runtime imports this.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..pooling import build_pooling, combine_layers

__all__ = ["keep_windows", "pool_window_stats"]


def keep_windows(encodings: list, cap: int) -> tuple[list[list[int]], list[int]]:
    """The token ids of the windows that run, and the text each belongs to.

    A text with more than ``cap`` windows keeps its first ``ceil(cap / 2)`` and last
    ``floor(cap / 2)`` (head + tail, as :func:`bertfeat.engine.encoder.tokenize_chunks`).

    Parameters
    ----------
    encodings : list of tokenizers.Encoding
        One per text, with its ``overflowing`` windows.
    cap : int
        ``max_chunks``.

    Returns
    -------
    windows : list of list of int
    owner : list of int
        The text of each window, in text order.
    """
    head, tail = (cap + 1) // 2, cap - (cap + 1) // 2
    windows, owner = [], []
    for doc, e in enumerate(encodings):
        kept = [e, *e.overflowing]
        if len(kept) > cap:
            kept = kept[:head] + kept[len(kept) - tail:]
        windows.extend(w.ids for w in kept)
        owner.extend([doc] * len(kept))
    return windows, owner


def pool_window_stats(raw: np.ndarray, owner: list[int], lengths: list[int], n_texts: int,
                      settings: dict[str, Any]) -> np.ndarray:
    """Each text's features from the graph's output for its windows.

    Parameters
    ----------
    raw : ndarray of shape (n_windows, graph_width)
        The graph's output per window.
    owner : list of int
        The text of each window (:func:`keep_windows`).
    lengths : list of int
        Tokens per window (the weights of ``cls``/``mean``/pooler).
    n_texts : int
    settings : dict
        The manifest's ``settings``.

    Returns
    -------
    ndarray of shape (n_texts, n_features), float32
    """
    owner_ = np.asarray(owner, dtype=np.int64)
    weight = np.asarray(lengths, dtype=np.float32)
    starts = np.searchsorted(owner_, np.arange(n_texts))
    ends = np.append(starts[1:], len(owner_))
    if settings["pooling"] == "pooler":
        features = np.stack([raw[a] if b - a == 1 else
                             (weight[a:b, None] * raw[a:b]).sum(0) / weight[a:b].sum()
                             for a, b in zip(starts, ends)]).astype(np.float32)
    else:
        layers = list(settings["stat_layers"])
        per = raw.reshape(len(owner_), len(layers), 3, -1)
        texts = np.empty((n_texts, *per.shape[1:]), dtype=np.float32)
        for doc, (a, b) in enumerate(zip(starts, ends)):
            if b - a == 1:
                texts[doc] = per[a]
                continue
            w = weight[a:b, None, None, None]
            texts[doc, :, :2] = (w * per[a:b, :, :2]).sum(0) / weight[a:b].sum()
            texts[doc, :, 2] = per[a:b, :, 2].max(0)
        stats = {layer: texts[:, i] for i, layer in enumerate(layers)}
        first = stats.get(int(settings["first_layer"]))
        features = combine_layers([build_pooling(stats[layer], settings["pooling"], first)
                                   for layer in settings["layers"]], settings["layer_combine"])
    if settings["normalize"]:
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        features = features / np.maximum(norms, np.float32(1e-12))
    return features.astype(np.float32, copy=False)
