"""Pooling: from token vectors to one vector per text, and from stored vectors to features.

Two halves, one vocabulary:

* :func:`pool_stats` (and :func:`pool_layers`, the same for every layer of a batch
  without copying hidden states) runs inside the encoder. For one layer's hidden states and the
  attention mask it returns the *family* of statistics every pooling is built from:
  the ``[CLS]`` (first token) vector, the masked mean and the masked max. Padding never
  enters any of them.
* :func:`build_pooling` runs on stored statistics (no torch): it builds the pooling a
  user asked for (``cls``, ``mean``, ``max``, ``mean_max``, ``first_last``) for one
  layer; :func:`combine_layers` joins the vectors of several layers (``concat``, ``mean``,
  ``sum``) and :func:`feature_names` names the resulting columns.
* :func:`sentence_pooling` says what ``pooling="auto"`` means for a model: the pooling and
  normalisation of its own sentence embedding (sentence-transformers configuration), else
  ``mean``.
* :func:`pool_subwords` turns the stored piece vectors of words into one vector per word
  (``first``, ``last``, ``mean``, ``max`` piece, or ``first_last``), for
  :class:`~bertfeat.BertWordFeaturizer` (its layers are joined by :func:`combine_layers`).

:class:`~bertfeat.BertFeaturizer` and :func:`bertfeat.probe.probe` both build their
features with these functions, so a feature set the probe scores from one encoder pass
equals, bit for bit, what the recommended featurizer computes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "POOLINGS",
    "STATS",
    "pool_stats",
    "pool_layers",
    "pooling_width",
    "build_pooling",
    "combine_layers",
    "feature_names",
    "COMBINES",
    "SentencePooling",
    "sentence_pooling",
    "SUBWORD_POOLINGS",
    "pool_subwords",
    "subword_width",
]

#: statistics stored per layer, in this order along the stats axis
STATS = ("cls", "mean", "max")
#: user-facing pooling names; "auto" resolves per model (:func:`sentence_pooling`)
POOLINGS = ("cls", "mean", "max", "mean_max", "first_last", "pooler", "auto")
#: how the vectors of several selected layers are joined
COMBINES = ("concat", "mean", "sum")
#: the layer whose mean is averaged with the selected layer's mean for "first_last"
FIRST_LAYER = 1


def pool_stats(hidden, mask):
    """Masked ``[CLS]``, mean and max of one layer's hidden states.

    Parameters
    ----------
    hidden : torch.Tensor of shape (batch, tokens, dim)
        One layer's hidden states (any float dtype; pooled in float32).
    mask : torch.Tensor of shape (batch, tokens)
        Attention mask, 1 for real tokens and 0 for padding.

    Returns
    -------
    torch.Tensor of shape (batch, 3, dim), float32
        ``[:, 0]`` the first token, ``[:, 1]`` the mean over real tokens, ``[:, 2]`` the
        max over real tokens.
    """
    import torch

    hidden = hidden.float()
    m = mask.unsqueeze(-1).to(hidden.dtype)
    counts = m.sum(dim=1).clamp(min=1.0)
    mean = (hidden * m).sum(dim=1) / counts
    neg = torch.finfo(hidden.dtype).min
    mx = hidden.masked_fill(m == 0, neg).amax(dim=1)
    return torch.stack((hidden[:, 0], mean, mx), dim=1)


def pool_layers(hidden_states: Sequence, mask, lengths: np.ndarray):
    """:func:`pool_stats` of every layer, without copying hidden states.

    Parameters
    ----------
    hidden_states : sequence of torch.Tensor of shape (batch, tokens, dim)
        One tensor per layer, any float dtype. Their padded positions are overwritten in
        place (see Notes): pass tensors nothing else reads afterwards.
    mask : torch.Tensor of shape (batch, tokens)
        Attention mask, 1 for real tokens (a prefix of each row) and 0 for padding.
    lengths : ndarray of shape (batch,)
        Real tokens per row (the row sums of ``mask``).

    Returns
    -------
    torch.Tensor of shape (batch, layers, 3, dim), float32
        ``[CLS]``, masked mean and masked max of each layer, as :func:`pool_stats`.

    Notes
    -----
    A length-sorted batch has few padded positions. They are set to 0 (in place, by
    index) before a float32 sum over all positions and to ``-inf`` before the max, so each
    hidden state is read twice and never copied or masked as a whole.
    """
    import torch

    first = hidden_states[0]
    batch, width, dim = first.shape
    if batch == 0 or int(lengths.min()) < 1:  # an empty row: the general path handles it
        return torch.stack([pool_stats(h, mask) for h in hidden_states], dim=1)
    out = torch.empty((batch, len(hidden_states), 3, dim), dtype=torch.float32,
                      device=first.device)
    counts = torch.as_tensor(lengths, dtype=torch.float32, device=first.device)[:, None]
    pad = (mask == 0).nonzero(as_tuple=True) if int(lengths.min()) < width else None
    for i, h in enumerate(hidden_states):
        out[:, i, 0] = h[:, 0]
        if pad is not None:
            h.index_put_(pad, h.new_zeros(()))
        torch.div(h.sum(dim=1, dtype=torch.float32), counts, out=out[:, i, 1])
        if pad is not None:
            h.index_put_(pad, h.new_full((), float("-inf")))
        out[:, i, 2] = h.amax(dim=1)
    return out


def pooling_width(pooling: str, hidden_size: int) -> int:
    """Number of features one layer contributes for ``pooling``."""
    return 2 * hidden_size if pooling == "mean_max" else hidden_size


def build_pooling(stats: np.ndarray, pooling: str, first: np.ndarray | None = None) -> np.ndarray:
    """Build the requested pooling from stored statistics of one layer.

    Parameters
    ----------
    stats : ndarray of shape (n, 3, dim)
        ``cls``, ``mean``, ``max`` statistics (see :data:`STATS`).
    pooling : str
        One of ``cls``, ``mean``, ``max``, ``mean_max``, ``first_last``.
    first : ndarray of shape (n, 3, dim), optional
        Statistics of the first transformer layer, required for ``first_last``.

    Returns
    -------
    ndarray of shape (n, width), float32
    """
    if pooling == "cls":
        return stats[:, 0]
    if pooling == "mean":
        return stats[:, 1]
    if pooling == "max":
        return stats[:, 2]
    if pooling == "mean_max":
        return np.concatenate((stats[:, 1], stats[:, 2]), axis=1)
    if pooling == "first_last":
        if first is None:
            raise ValueError("pooling='first_last' needs the first layer's statistics")
        return (first[:, 1] + stats[:, 1]) * np.float32(0.5)
    raise ValueError(f"unknown pooling {pooling!r}")


def combine_layers(blocks: list[np.ndarray], combine: str) -> np.ndarray:
    """Join the features of several layers into one block.

    Parameters
    ----------
    blocks : list of ndarray of shape (n, width)
        One block per selected layer, in layer order.
    combine : {"concat", "mean", "sum"}
        ``concat`` puts them side by side; ``mean`` and ``sum`` add them up in float32.

    Returns
    -------
    ndarray of shape (n, width * len(blocks)) for concat, else (n, width)
    """
    if len(blocks) == 1:
        return blocks[0]
    if combine == "concat":
        return np.concatenate(blocks, axis=1)
    if combine not in COMBINES:
        raise ValueError(f"unknown layer combination {combine!r}")
    total = np.sum(blocks, axis=0, dtype=np.float32)
    if combine == "mean":
        total /= np.float32(len(blocks))
    return total


def feature_names(layers: list[int], pooling: str, hidden_size: int,
                  combine: str = "concat") -> np.ndarray:
    """Column names that say where each feature came from.

    Parameters
    ----------
    layers : list of int
        Absolute hidden-state indices.
    pooling : str
        The pooling name.
    hidden_size : int
        Width of one hidden state.
    combine : {"concat", "mean", "sum"}, default="concat"
        How several layers are joined.

    Returns
    -------
    ndarray of str
        ``L{layer}_{pooling}_{j}``; for ``mean``/``sum`` over several layers
        ``L{combine}{l1+l2+...}_{pooling}_{j}``; ``mean_max`` columns are
        ``..._mean_{j}`` then ``..._max_{j}``.
    """
    width = pooling_width(pooling, hidden_size)
    if pooling == "mean_max":  # say which half is which
        parts = [f"mean_{j}" for j in range(width // 2)] + [
            f"max_{j}" for j in range(width // 2)]
    else:
        parts = [f"{pooling}_{j}" for j in range(width)]
    if len(layers) == 1 or combine == "concat":
        names = [f"L{layer}_{part}" for layer in layers for part in parts]
    else:
        tag = f"L{combine}{'+'.join(map(str, layers))}"
        names = [f"{tag}_{part}" for part in parts]
    return np.asarray(names, dtype=object)


#: sentence-transformers Pooling config keys -> bertfeat pooling
_ST_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
             "pooling_mode_max_tokens": "max"}
#: sentence-transformers modules that "auto" reproduces exactly
_ST_REPRODUCED = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True)
class SentencePooling:
    """What ``pooling="auto"`` resolves to for one model.

    Attributes
    ----------
    pooling : str
        A concrete pooling (``cls``, ``mean``, ``max`` or ``mean_max``).
    normalize : bool
        Whether the model's sentence embedding is L2-normalised (a ``Normalize`` module).
    source : str
        Where the choice came from: ``"sentence-transformers"`` or ``"fallback"``.
    note : str or None
        What ``auto`` does not reproduce of the model's own embedding, if anything.
    """

    pooling: str
    normalize: bool
    source: str
    note: str | None = None


def _read(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sentence_pooling(model_dir: str | os.PathLike) -> SentencePooling:
    """The pooling and normalisation of a model's own sentence embedding.

    A sentence-transformers model says both in its files: ``modules.json`` lists its modules
    (``Transformer``, ``Pooling``, optionally ``Normalize``), and the ``Pooling`` module's
    ``config.json`` (``1_Pooling/config.json``) holds its ``pooling_mode_*`` flags. A model
    without them (a plain encoder) gets ``mean`` without normalisation.

    Parameters
    ----------
    model_dir : str or path
        The model's directory.

    Returns
    -------
    SentencePooling
    """
    root = Path(model_dir)
    fallback = SentencePooling("mean", False, "fallback")
    try:
        modules = _read(root / "modules.json")
    except (OSError, ValueError):
        return fallback
    if not isinstance(modules, list):
        return fallback
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules if isinstance(m, dict)]
    pooling_module = next((m for m, kind in zip(modules, kinds) if kind == "Pooling"), None)
    if pooling_module is None:
        return fallback
    try:
        config = _read(root / str(pooling_module.get("path", "")) / "config.json")
    except (OSError, ValueError):
        return fallback
    modes = [name for key, name in _ST_MODES.items() if config.get(key)]
    mode = config.get("pooling_mode")  # newer sentence-transformers may write the name
    if isinstance(mode, str) and not modes:
        modes = [mode] if mode in _ST_MODES.values() else []
    other = [k for k, v in config.items() if k.startswith("pooling_mode_") and v
             and k not in _ST_MODES]
    notes = []
    if len(modes) == 1 and not other:
        pooling = modes[0]
    elif set(modes) == {"mean", "max"} and not other:
        pooling = "mean_max"
        notes.append("its columns come in the order mean, max (sentence-transformers: max, "
                     "mean)")
    else:
        pooling = "mean"
        notes.append(f"its pooling ({', '.join(modes + other) or 'none'}) is not one of "
                     "cls, mean, max; using mean")
    extra = sorted({k for k in kinds if k not in _ST_REPRODUCED})
    if extra:
        notes.append(f"its {', '.join(extra)} module(s) are not applied")
    return SentencePooling(pooling, "Normalize" in kinds, "sentence-transformers",
                           "; ".join(notes) or None)
#: how the piece vectors of a word become one vector (see :func:`pool_subwords`)
SUBWORD_POOLINGS = ("first", "last", "mean", "max", "first_last")


def subword_width(subword_pooling: str, hidden_size: int) -> int:
    """Number of features one layer contributes per word for ``subword_pooling``."""
    return 2 * hidden_size if subword_pooling == "first_last" else hidden_size


def pool_subwords(pieces: np.ndarray, counts: np.ndarray, subword_pooling: str) -> np.ndarray:
    """One vector per word from the vectors of its sub-word pieces.

    Parameters
    ----------
    pieces : ndarray of shape (n_pieces, dim)
        Piece vectors of consecutive words, in order (any float dtype; pooled in float32).
    counts : ndarray of int, shape (n_words,)
        Pieces of each word; every count is at least 1 and they sum to ``n_pieces``.
    subword_pooling : {"first", "last", "mean", "max", "first_last"}
        ``first``/``last``: the word's first/last piece; ``mean``/``max``: the mean/max
        over its pieces; ``first_last``: first and last piece concatenated (width 2 dim).

    Returns
    -------
    ndarray of shape (n_words, width), float32
    """
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) and int(counts.min()) < 1:
        raise ValueError("every word needs at least one piece")
    if int(counts.sum()) != len(pieces):
        raise ValueError(f"counts sum to {int(counts.sum())}, but there are {len(pieces)} pieces")
    dim = pieces.shape[1] if pieces.ndim == 2 else 0
    width = subword_width(subword_pooling, dim)
    if len(counts) == 0:
        return np.zeros((0, width), dtype=np.float32)
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    ends = starts + counts - 1
    if subword_pooling == "first":
        out = pieces[starts]
    elif subword_pooling == "last":
        out = pieces[ends]
    elif subword_pooling == "mean":
        out = np.add.reduceat(pieces.astype(np.float32), starts, axis=0)
        out /= counts[:, None].astype(np.float32)
    elif subword_pooling == "max":
        out = np.maximum.reduceat(pieces, starts, axis=0)
    elif subword_pooling == "first_last":
        out = np.concatenate((pieces[starts], pieces[ends]), axis=1)
    else:
        raise ValueError(f"unknown subword_pooling {subword_pooling!r}; "
                         f"use one of {SUBWORD_POOLINGS}")
    return np.ascontiguousarray(out, dtype=np.float32)
