"""Per-text records of the store: index rows and blocks of pooled statistics."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .format import (
    _INDEX,
    _READ_CHUNK,
    CorruptValue,
    Lookup,
    _human,
    _round_up,
    _to_storage,
    decode_array,
    encode_array,
)
from .schema import StoreError, _is_corruption, _store_errors

__all__ = ["TextRecords"]

_warned_working_sets: set[tuple[str, str]] = set()


class TextRecords:
    """Text records of :class:`FeatureStore` (a mixin: the store supplies ``cache``)."""


    # -- layout --------------------------------------------------------------------------
    def bytes_per_text(self, depth: int, hidden_size: int, pooler: bool = False) -> int:
        """Bytes one text takes in the store when encoded ``depth`` layers deep.

        The vectors (cls, mean and max of hidden states ``0..depth``, plus the pooler)
        in the storage dtype, plus its index row; measured totals on disk are within a
        few percent of this (benchmarks/bench_store.py).
        """
        itemsize = np.dtype(self.dtype).itemsize
        values = (depth + 1) * 3 * hidden_size + (hidden_size if pooler else 0)
        return values * itemsize + _INDEX.size + 64

    def storable(self, array: np.ndarray) -> np.ndarray:
        """``array`` as a read will return it: float32, rounded through the storage dtype.

        Callers that return results of a miss apply this first, so cached and uncached
        results are equal bit for bit. With ``dtype="float16"`` an array holding values
        float16 cannot represent is returned (and stored) as float32 unchanged.
        """
        array = np.asarray(array, dtype=np.float32)
        if self.dtype == "float32":
            return array
        return _to_storage(array).astype(np.float32)

    def check_working_set(self, fingerprint: str, n_texts: int, depth: int,
                          hidden_size: int, pooler: bool = False) -> None:
        """Warn once per store and fingerprint when a call's texts exceed the size limit.

        Within the call nothing is lost (its vectors are kept in memory, and no text is
        encoded twice), but the store evicts entries as it writes, so a later call (the
        next fold of a search) encodes some of the same texts again.
        """
        per_text = self.bytes_per_text(depth, hidden_size, pooler)
        need = n_texts * per_text
        limit = self.limit
        key = (self.directory, fingerprint)
        if need <= limit or key in _warned_working_sets:
            return
        _warned_working_sets.add(key)
        half = (" or store float16 (FeatureStore(..., dtype='float16'): half the bytes)"
                if self.dtype == "float32" else "")
        warnings.warn(
            f"bertfeat store {self.directory}: this call's {n_texts:,} texts need about "
            f"{_human(need)} in the store ({_human(per_text)} per text: {depth + 1} hidden "
            f"states x cls/mean/max x {hidden_size} in {self.dtype}), more than its size "
            f"limit of {_human(limit)}. This call's results are unaffected, but the store "
            "evicts the oldest entries as it writes, so later calls on the same texts (the "
            "next fold of a search) encode some of them again. Raise the limit "
            f"(FeatureStore({self.directory!r}, size_limit={_round_up(need)})){half}.",
            RuntimeWarning, stacklevel=3)

    # -- vectors -----------------------------------------------------------------------
    def read(self, fingerprint: str, digests: Sequence[str], layers: Iterable[int],
             hidden_size: int, pooler: bool = False, count: bool = True) -> Lookup:
        """Read the statistics of ``layers`` for each text digest.

        A text is found when its index row exists, it was encoded at least as deep as
        the deepest requested layer (and with the pooler when asked), and its blocks
        decode cleanly. Anything else is a miss; a value that fails its header check is
        reported with a warning and left to be rewritten. A store that cannot be read
        at all (damaged file, I/O error, lock timeout) gives all misses and a warning; a
        damaged database file is moved aside (see :attr:`cache`).

        Parameters
        ----------
        fingerprint : str
            Model fingerprint.
        digests : sequence of str
            :func:`text_digest` of each text.
        layers : iterable of int
            Hidden-state indices wanted.
        hidden_size : int
            Expected width.
        pooler : bool
            Also read the pooler output.
        count : bool
            Add to the hit/miss counters.

        Returns
        -------
        Lookup
        """
        layers = list(layers)
        try:
            return self._read(fingerprint, digests, layers, hidden_size, pooler, count)
        except _store_errors() as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if _is_corruption(exc):
                try:
                    self._recover(exc)
                    problem = ""
                except StoreError as error:
                    problem = str(error)
            if problem:
                warnings.warn(
                    f"bertfeat store {self.directory}: reading failed ({problem}); the "
                    "texts are encoded as if they were not stored.", RuntimeWarning,
                    stacklevel=2)
            n = len(digests)
            return Lookup(
                np.zeros(n, dtype=bool),
                {layer: np.zeros((n, 3, hidden_size), np.float32) for layer in set(layers)},
                np.zeros((n, hidden_size), np.float32) if pooler else None,
                np.zeros(n, dtype=bool))

    def _read(self, fingerprint: str, digests: Sequence[str], layers: Iterable[int],
              hidden_size: int, pooler: bool, count: bool) -> Lookup:
        layers = sorted(set(layers))
        n = len(digests)
        need_depth = max(layers) if layers else 0
        found = np.zeros(n, dtype=bool)
        out = {layer: np.zeros((n, 3, hidden_size), dtype=np.float32) for layer in layers}
        pool_out = np.zeros((n, hidden_size), dtype=np.float32) if pooler else None
        by_block: dict[bytes, list[tuple[int, int]]] = {}
        truncated_rows: list[int] = []
        corrupt = 0
        for start in range(0, n, _READ_CHUNK):
            stop = min(n, start + _READ_CHUNK)
            keys = [f"{fingerprint}/t/{d}" for d in digests[start:stop]]
            values = self._get_many(keys)
            for i, value in enumerate(values, start):
                if value is None:
                    continue
                if not isinstance(value, bytes) or len(value) != _INDEX.size:
                    corrupt += 1
                    continue
                block, row, depth, flags = _INDEX.unpack(value)
                if depth < need_depth or (pooler and not flags & 1):
                    continue
                by_block.setdefault(block, []).append((i, row))
                if flags & 2:
                    truncated_rows.append(i)
        found_rows: list[int] = []
        for block, members in by_block.items():
            block_id = block.hex()
            rows = np.fromiter((r for _, r in members), dtype=np.int64, count=len(members))
            targets = np.fromiter((i for i, _ in members), dtype=np.int64, count=len(members))
            wanted = [(layer, (3, hidden_size)) for layer in layers]
            if pooler:
                wanted.append(("P", (hidden_size,)))
            blobs = self._get_many([f"{fingerprint}/b/{block_id}/{layer}" for layer, _ in wanted])
            arrays = []
            ok = True
            for (_, trailing), blob in zip(wanted, blobs):
                if blob is None:  # evicted: a plain miss
                    ok = False
                    break
                try:
                    array = decode_array(blob, trailing)
                except CorruptValue:
                    corrupt += 1
                    ok = False
                    break
                if rows.max() >= array.shape[0]:
                    corrupt += 1
                    ok = False
                    break
                arrays.append(array)
            if not ok:
                continue
            for (layer, _), array in zip(wanted, arrays):
                if layer == "P":
                    pool_out[targets] = array[rows]
                else:
                    out[layer][targets] = array[rows]
            found_rows.extend(targets.tolist())
        found[found_rows] = True
        truncated = np.zeros(n, dtype=bool)
        truncated[truncated_rows] = True
        truncated &= found
        if corrupt:
            warnings.warn(
                f"bertfeat store {self.directory}: {corrupt} damaged value(s) ignored; the "
                "affected texts are encoded again and rewritten.", RuntimeWarning,
                stacklevel=4)
        if count:
            hits = int(found.sum())
            self._count(fingerprint, "hits", hits)
            self._count(fingerprint, "misses", n - hits)
        return Lookup(found, out, pool_out, truncated)

    def _get_many(self, keys: list[str]) -> list[Any]:
        cache = self.cache
        try:
            with cache.transact():
                return [cache.get(key) for key in keys]
        except Exception:  # e.g. a read-only database cannot start a write transaction
            return [cache.get(key) for key in keys]

    def write(self, fingerprint: str, digests: Sequence[str], stats: np.ndarray,
              pooler: np.ndarray | None = None,
              truncated: np.ndarray | None = None) -> None:
        """Store one batch: statistics of hidden states ``0..depth`` for each text.

        Parameters
        ----------
        fingerprint : str
            Model fingerprint.
        digests : sequence of str
            :func:`text_digest` of each text in the batch.
        stats : ndarray of shape (b, depth + 1, 3, hidden), float32
            Pooled statistics from the encoder.
        pooler : ndarray of shape (b, hidden), optional
            Pooler output.
        truncated : ndarray of bool, shape (b,), optional
            Which texts were truncated by the tokenizer.

        Raises
        ------
        StoreError
            When the batch could not be stored (disk full, read-only store, lock
            timeout, damage). The batch is one transaction: nothing of it is stored
            then, and earlier batches are unaffected. A damaged database file is moved
            aside and the write retried once on the fresh store first.
        """
        if len(digests) == 0:
            return
        try:
            try:
                self._write(fingerprint, digests, stats, pooler, truncated)
            except _store_errors() as exc:
                if not _is_corruption(exc):
                    raise
                self._recover(exc)
                self._write(fingerprint, digests, stats, pooler, truncated)
        except _store_errors() as exc:
            raise StoreError(
                f"bertfeat store {self.directory}: writing failed "
                f"({type(exc).__name__}: {exc})") from exc

    def _write(self, fingerprint: str, digests: Sequence[str], stats: np.ndarray,
               pooler: np.ndarray | None, truncated: np.ndarray | None) -> None:
        stats = np.asarray(stats, dtype=np.float32)
        if self.dtype == "float16":
            stats = _to_storage(stats)
            pooler = None if pooler is None else _to_storage(np.asarray(pooler, np.float32))
        elif pooler is not None:
            pooler = np.asarray(pooler, dtype=np.float32)
        depth = stats.shape[1] - 1
        block = uuid.uuid4().bytes
        block_id = block.hex()
        cache = self.cache
        with cache.transact():
            cache._sql("INSERT OR REPLACE INTO bertfeat_blocks (block, fp, depth, pooler, live) "
                       "VALUES (?, ?, ?, ?, 0)",
                       (block_id, fingerprint, depth, int(pooler is not None)))
            # index rows first: eviction (oldest first) then takes a batch's index rows
            # before its blocks, so no index row outlives the vectors it points to
            base = 1 if pooler is not None else 0
            for row, digest in enumerate(digests):
                flags = base | (2 if truncated is not None and truncated[row] else 0)
                cache.set(f"{fingerprint}/t/{digest}", _INDEX.pack(block, row, depth, flags),
                          tag=fingerprint)
            for layer in range(depth + 1):
                cache.set(f"{fingerprint}/b/{block_id}/{layer}",
                          encode_array(stats[:, layer]), tag=fingerprint)
            if pooler is not None:
                cache.set(f"{fingerprint}/b/{block_id}/P", encode_array(pooler),
                          tag=fingerprint)
            self._drop_dead_blocks(cache)

    def _drop_dead_blocks(self, cache) -> None:
        """Delete blocks no index row points into any more (all of them overwritten).

        Runs inside the caller's transaction. Block ids and depths come from the
        trigger-kept ``bertfeat_blocks`` table; no key is scanned.
        """
        dead = cache._sql("SELECT block, fp, depth, pooler FROM bertfeat_blocks "
                          "WHERE live <= 0 LIMIT 256").fetchall()
        for block_id, fingerprint, depth, pooler in dead:
            for layer in [*range(int(depth) + 1), *(["P"] if pooler else [])]:
                cache.delete(f"{fingerprint}/b/{block_id}/{layer}")
            cache._sql("DELETE FROM bertfeat_blocks WHERE block = ?", (block_id,))
