"""Pooled text records through the cached pass: what :class:`~bertfeat.BertFeaturizer` reads.

A record is, per text, every computed layer's ``cls``/``mean``/``max`` statistics (and
the pooler output), plus whether the text was truncated. A chunked featurizer also reads
texts that fit in one window from its truncated twin, and writes each long text's first
window there (each window is encoded once, whichever mode asks first).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import models
from ..store import FeatureStore
from . import encoder
from .cached_pass import CachedPass, Emit

__all__ = ["TextPass"]


class TextPass(CachedPass):
    """The statistics of ``texts`` for a fitted featurizer, read or encoded once.

    Attributes (the results)
    ------------------------
    stats : dict of int -> ndarray (n, 3, hidden) float32
        Per needed layer.
    pooler : ndarray (n, hidden) or None
    truncated : ndarray of bool (n,)
    """

    item = "text"

    def __init__(self, owner: Any, store: FeatureStore | None, texts: list[str],
                 digests: list[str]) -> None:
        super().__init__(owner, store, digests)
        self.texts = texts
        self.needed = owner._needed_layers()
        self.want_pooler = owner.pooling_ == "pooler"
        n, hidden = len(texts), owner.hidden_size_
        self.stats = {layer: np.zeros((n, 3, hidden), np.float32) for layer in self.needed}
        self.pooler = np.zeros((n, hidden), np.float32) if self.want_pooler else None
        self.truncated = np.zeros(n, dtype=bool)
        self.twin = owner._window_twin(store)
        self.twin_rows: np.ndarray | None = None  # misses whose first window the twin lacks

    # ------------------------------------------------------------------------- records
    def _fill(self, rows: np.ndarray, hit: Any, found: np.ndarray) -> None:
        for layer in self.needed:
            self.stats[layer][rows] = hit.stats[layer][found]
        if self.want_pooler:
            self.pooler[rows] = hit.pooler[found]

    def read(self, fingerprint: str, rows: np.ndarray, *, count: bool) -> np.ndarray:
        hit = self.store.read(fingerprint, [self.digests[i] for i in rows], self.needed,
                              self.owner.hidden_size_, pooler=self.want_pooler, count=count)
        self._fill(rows[hit.found], hit, hit.found)
        self.truncated[rows[hit.found]] = np.asarray(hit.truncated, dtype=bool)[hit.found]
        return hit.found

    def before_encode(self, missing: np.ndarray, *, locked: bool) -> np.ndarray:
        """Chunked mode: the misses that fit in one window are read from the twin."""
        if self.twin is None or not len(missing):
            return missing
        hit = self.store.read(self.twin, [self.digests[i] for i in missing], self.needed,
                              self.owner.hidden_size_, pooler=self.want_pooler, count=False)
        whole = hit.found & ~np.asarray(hit.truncated, dtype=bool)  # one window
        self._fill(missing[whole], hit, whole)
        self.truncated[missing[whole]] = False
        self.twin_rows = missing[~hit.found]
        return missing[~whole]

    def extra_locks(self) -> list[str]:
        if self.twin is not None and self.twin_rows is not None and len(self.twin_rows):
            return [self.twin]
        return []

    def prepare(self, missing: np.ndarray) -> None:
        owner = self.owner
        self.store.check_working_set(owner.fingerprint_, len(self.texts),
                                     owner._store_depth(self.store), owner.hidden_size_,
                                     pooler=self.want_pooler)

    def finite(self, batch: Any) -> np.ndarray:
        stats, pooler, _ = batch
        ok = np.isfinite(stats.reshape(len(stats), -1)).all(axis=1)
        if pooler is not None:
            ok &= np.isfinite(pooler).all(axis=1)
        return ok

    def storable(self, batch: Any) -> Any:
        if self.store is None:
            return batch
        stats, pooler, truncated = batch
        return (self.store.storable(stats),
                None if pooler is None else self.store.storable(pooler), truncated)

    def keep(self, rows: np.ndarray, batch: Any) -> None:
        stats, pooler, truncated = batch
        for layer in self.needed:
            self.stats[layer][rows] = stats[:, layer]
        if self.want_pooler:
            self.pooler[rows] = pooler
        self.truncated[rows] = truncated

    def write(self, fingerprint: str, rows: np.ndarray, batch: Any) -> None:
        stats, pooler, truncated = batch
        self.store.write(fingerprint, [self.digests[i] for i in rows], stats, pooler,
                         truncated)

    def describe(self, row: int) -> str:
        text = self.texts[row]
        return f"text {text[:60]!r}" + ("..." if len(text) > 60 else "")

    # ------------------------------------------------------------------------ encoding
    def encode(self, rows: np.ndarray, emit: Emit) -> None:
        owner = self.owner
        depth = owner._store_depth(self.store)
        # transformers records hidden states with hooks on the layers: a model cut to zero
        # layers returns none at all, so layers=0 (embedding output) keeps one layer
        depth = max(depth, min(1, owner.n_layers_))
        tokenizer, model = models.load_shared(
            owner._runtime_info(), depth=depth, device=owner.device_,
            precision=owner.precision_, trust_remote_code=owner.trust_remote_code,
            signature=owner.__dict__.get("_rt_signature"))

        def on_batch(positions, stats, pooler, truncated):
            emit(rows[positions], (stats, pooler, truncated))

        on_first_window = None
        if self.twin is not None and self.twin_rows is not None and len(self.twin_rows):
            def on_first_window(positions, stats, pooler, longer):
                keep = np.isin(rows[positions], self.twin_rows)
                if keep.any():
                    self.accept(rows[positions[keep]],
                                (stats[keep], None if pooler is None else pooler[keep],
                                 longer[keep]), fingerprint=self.twin, keep=False)

        encoder.encode(
            tokenizer, model, [self.texts[i] for i in rows], depth=depth,
            max_length=owner.max_length_, batch_size=owner.batch_size,
            max_tokens=owner._token_budget(), device=owner.device_,
            want_pooler=self.want_pooler, on_batch=on_batch,
            show_progress=owner._show_progress(len(rows)), long_text=owner.long_text,
            chunk_stride=owner.chunk_stride_ or 0, max_chunks=owner.max_chunks,
            on_first_window=on_first_window)
