"""Per-text records of the store: index rows and blocks of pooled statistics."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from .format import (
    _READ_CHUNK,
    ROW_BYTES,
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

#: ``vectors.layer`` of the pooler output
POOLER = -1

_warned_working_sets: set[tuple[str, str]] = set()


class TextRecords:
    """Text records of :class:`FeatureStore` (a mixin: the store supplies ``cache``).

    A batch is one row of ``blocks``; ``vectors`` holds its arrays, one row per layer
    (layer ``-1``: the pooler output); ``texts`` holds one index row per text
    (fingerprint, digest -> block, row in the block, depth, flags).
    """

    # -- layout --------------------------------------------------------------------------
    def bytes_per_text(self, depth: int, hidden_size: int, pooler: bool = False) -> int:
        """Bytes one text takes in the store when encoded ``depth`` layers deep.

        The vectors (cls, mean and max of hidden states ``0..depth``, plus the pooler)
        in the storage dtype, plus its index row; measured totals on disk are within a
        few percent of this (benchmarks/bench_store.py).
        """
        itemsize = np.dtype(self.dtype).itemsize
        values = (depth + 1) * 3 * hidden_size + (hidden_size if pooler else 0)
        return values * itemsize + ROW_BYTES

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
        out = {layer: np.zeros((n, 3, hidden_size), dtype=np.float32) for layer in layers}
        pool_out = np.zeros((n, hidden_size), dtype=np.float32) if pooler else None
        wanted = [(layer, (3, hidden_size)) for layer in layers]
        if pooler:
            wanted.append((POOLER, (hidden_size,)))
        by_block: dict[int, list[tuple[int, int]]] = {}
        truncated = np.zeros(n, dtype=bool)
        found_rows: list[int] = []
        corrupt = 0
        with self.cache.read() as con:
            for i, block, row, depth, flags in self._index_rows(con, fingerprint, digests):
                if not all(isinstance(v, int) for v in (block, row, depth, flags)) or row < 0:
                    corrupt += 1
                    continue
                if depth < need_depth or (pooler and not flags & 1):
                    continue
                by_block.setdefault(block, []).append((i, row))
                truncated[i] = bool(flags & 2)
            for block, members in by_block.items():
                arrays, damaged = self._block_arrays(con, block, wanted)
                corrupt += damaged
                if arrays is None:
                    continue
                size = min(array.shape[0] for array in arrays)
                good = [(i, r) for i, r in members if r < size]
                corrupt += len(members) - len(good)  # an index row pointing past its block
                rows = np.fromiter((r for _, r in good), np.int64, len(good))
                targets = np.fromiter((i for i, _ in good), np.int64, len(good))
                for (layer, _), array in zip(wanted, arrays):
                    (pool_out if layer == POOLER else out[layer])[targets] = array[rows]
                found_rows.extend(targets.tolist())
        found = np.zeros(n, dtype=bool)
        found[found_rows] = True
        truncated &= found
        if corrupt:
            warnings.warn(
                f"bertfeat store {self.directory}: {corrupt} damaged value(s) ignored; the "
                "affected texts are encoded again and rewritten.", RuntimeWarning,
                stacklevel=4)
        if count:
            hits = int(found.sum())
            self._count(fingerprint, hits=hits, misses=n - hits)
        return Lookup(found, out, pool_out, truncated)

    @staticmethod
    def _index_rows(con, fingerprint: str, digests: Sequence[str]):
        """``(position, block, row, depth, flags)`` of each stored text among ``digests``."""
        where: dict[str, list[int]] = {}
        for i, digest in enumerate(digests):
            where.setdefault(digest, []).append(i)
        unique = list(where)
        for start in range(0, len(unique), _READ_CHUNK):
            chunk = unique[start:start + _READ_CHUNK]
            for digest, *rest in con.execute(
                    "SELECT digest, block, row, depth, flags FROM texts WHERE fp = ? AND "
                    f"digest IN ({','.join('?' * len(chunk))})", (fingerprint, *chunk)):
                for i in where.get(digest, ()):
                    yield (i, *rest)

    @staticmethod
    def _block_arrays(con, block: int, wanted: list):
        """The block's arrays for ``wanted`` (layer, trailing shape), or None, and how many
        values were damaged. A missing layer (an older, shallower block) is a plain miss."""
        blobs = dict(con.execute(
            f"SELECT layer, data FROM vectors WHERE block = ? AND layer IN "
            f"({','.join('?' * len(wanted))})", (block, *(layer for layer, _ in wanted))))
        arrays = []
        for layer, trailing in wanted:
            if layer not in blobs:
                return None, 0
            try:
                array = decode_array(blobs[layer], trailing)
            except CorruptValue:
                return None, 1
            arrays.append(array)
        return arrays, 0

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
        values = [(layer, encode_array(stats[:, layer])) for layer in range(depth + 1)]
        if pooler is not None:
            values.append((POOLER, encode_array(pooler)))
        base = 1 if pooler is not None else 0
        index = [(fingerprint, digest, row, depth,
                  base | (2 if truncated is not None and truncated[row] else 0))
                 for row, digest in enumerate(digests)]
        size = sum(len(blob) for _, blob in values) + len(digests) * ROW_BYTES
        with self.cache.write() as con:
            block = self._new_block(con, fingerprint, depth, pooler is not None, size)
            con.executemany("INSERT INTO vectors (block, layer, data) VALUES (?, ?, ?)",
                            [(block, layer, blob) for layer, blob in values])
            con.executemany(
                "INSERT INTO texts (fp, digest, block, row, depth, flags) "
                "VALUES (?1, ?2, ?6, ?3, ?4, ?5) ON CONFLICT (fp, digest) DO UPDATE SET "
                "block = excluded.block, row = excluded.row, depth = excluded.depth, "
                "flags = excluded.flags", [(*entry, block) for entry in index])
            self._make_room(con, block)
