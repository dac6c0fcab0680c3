"""Per-word records through the cached pass: what :class:`~bertfeat.BertWordFeaturizer` reads.

A record is, per sentence, the number of pieces of each word, a flags byte per word and
the vector of every piece at every computed layer: float16 where float16 holds the
values, float32 where it does not (never clamped).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import models
from ..store import FeatureStore
from . import wordencoder
from .cached_pass import CachedPass, Emit

__all__ = ["WordPass"]

_F16_MAX = float(np.finfo(np.float16).max)


def storable_pieces(array: np.ndarray) -> np.ndarray:
    """A sentence's piece vectors as the store keeps them: float16 where it can."""
    array = np.asarray(array)
    if array.dtype == np.float16:
        return array
    if array.size and float(np.abs(array).max()) > _F16_MAX:
        return array.astype(np.float32, copy=False)
    return array.astype(np.float16)


class WordPass(CachedPass):
    """The piece vectors of ``sentences`` for a fitted word featurizer, read or encoded once.

    Attributes (the results)
    ------------------------
    counts, flags : list of ndarray
        Pieces per word and flags byte per word, per sentence.
    vectors : dict of int -> list of ndarray (n_pieces, hidden)
        Per needed layer, per sentence.
    """

    item = "sentence"

    def __init__(self, owner: Any, store: FeatureStore | None,
                 sentences: list[list[str]], digests: list[str]) -> None:
        super().__init__(owner, store, digests)
        self.sentences = sentences
        self.needed = owner._needed_layers()
        n = len(sentences)
        self.counts: list = [None] * n
        self.flags: list = [None] * n
        self.vectors: dict[int, list] = {layer: [None] * n for layer in self.needed}

    def read(self, fingerprint: str, rows: np.ndarray, *, count: bool) -> np.ndarray:
        hit = self.store.read_words(fingerprint, [self.digests[i] for i in rows], self.needed,
                                    self.owner.hidden_size_, count=count)
        for k in np.flatnonzero(hit.found):
            row = int(rows[k])
            self.counts[row], self.flags[row] = hit.counts[k], hit.flags[k]
            for layer in self.needed:
                self.vectors[layer][row] = hit.vectors[layer][k]
        return hit.found

    def finite(self, batch: Any) -> np.ndarray:
        _, arrays = batch
        return np.array([bool(np.isfinite(a).all()) for a in arrays], dtype=bool)

    def storable(self, batch: Any) -> Any:
        pieces, arrays = batch
        return pieces, [storable_pieces(a) for a in arrays]

    def keep(self, rows: np.ndarray, batch: Any) -> None:
        pieces, arrays = batch
        for row, sp, array in zip(rows, pieces, arrays):
            self.counts[row], self.flags[row] = sp.counts, sp.flags
            for layer in self.needed:
                self.vectors[layer][row] = array[layer]

    def write(self, fingerprint: str, rows: np.ndarray, batch: Any) -> None:
        pieces, arrays = batch
        self.store.write_words(fingerprint, [self.digests[r] for r in rows],
                               [sp.counts for sp in pieces], [sp.flags for sp in pieces],
                               arrays)

    def describe(self, row: int) -> str:
        words = " ".join(self.sentences[row])
        return f"sentence {words[:60]!r}" + ("..." if len(words) > 60 else "")

    def encode(self, rows: np.ndarray, emit: Emit) -> None:
        owner = self.owner
        # transformers records hidden states with hooks on the layers: keep >= 1 layer
        depth = max(max(self.needed), min(1, owner.n_layers_))
        tokenizer, model = models.load_shared(
            owner._runtime_info(), depth=depth, device=owner.device_,
            precision=owner.precision_, trust_remote_code=owner.trust_remote_code,
            signature=owner.__dict__.get("_rt_signature"))

        def on_batch(positions, pieces, arrays):
            emit(rows[np.asarray(positions, dtype=np.int64)], (pieces, arrays))

        wordencoder.encode_words(
            tokenizer, model, [self.sentences[i] for i in rows], depth=depth,
            max_length=owner.max_length_, stride=owner.window_stride_,
            batch_size=owner.batch_size, max_tokens=owner._token_budget(),
            device=owner.device_, on_batch=on_batch,
            show_progress=owner._show_progress(len(rows)))
