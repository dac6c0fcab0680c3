"""Per-word records of the store (:class:`~bertfeat.BertWordFeaturizer`): piece vectors
of each sentence behind an index row of pieces per word and flags."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from .format import (
    _READ_CHUNK,
    ROW_BYTES,
    CorruptValue,
    WordLookup,
    _decode_word_index,
    _encode_word_index,
    _piece_array,
    decode_array,
    encode_array,
)
from .schema import StoreError, _store_errors

__all__ = ["WordRecords"]


class WordRecords:
    """Word records of :class:`FeatureStore` (a mixin: the store supplies ``cache``)."""


    # A namespace of its own, next to the per-text rows and sharing nothing with them but
    # the database, the blocks (one per written batch: the unit of eviction) and the
    # array header:
    #
    # ``sentences (fp, digest, block, head)``
    #     Index row of one sentence: the block holding it, and a head (:data:`_WORD_INDEX`
    #     header, then the pieces of each word as uint32 and a flags byte per word).
    # ``pieces (block, digest, layer, data)``
    #     float16 array (n_pieces, hidden): the vector of every piece of the sentence at
    #     that hidden state. Every sub-word pooling (first, last, mean, max ...) is built
    #     from these exactly, so a grid over layers and poolings is a read, not an encode.
    # ``counts`` rows ``sentences`` (stored) and ``sentences_{hits|misses|encoded}``.

    def read_words(self, fingerprint: str, digests: Sequence[str], layers: Iterable[int],
                   hidden_size: int, count: bool = True) -> WordLookup:
        """Read the piece vectors of ``layers`` for each sentence digest.

        A sentence is found when its index row exists, it was encoded at least as deep
        as the deepest requested layer, and every requested layer decodes with the
        number of pieces its index row gives. Anything else is a miss; a store that
        cannot be read gives all misses and a warning (as :meth:`read`).

        Parameters
        ----------
        fingerprint : str
            Fingerprint of the word encoding.
        digests : sequence of str
            :func:`sentence_digest` of each sentence.
        layers : iterable of int
            Hidden-state indices wanted.
        hidden_size : int
            Expected width.
        count : bool
            Add to the ``sentences_hits`` / ``sentences_misses`` counters.

        Returns
        -------
        WordLookup
        """
        layers = sorted(set(layers))
        n = len(digests)
        try:
            lookup = self._read_words(fingerprint, digests, layers, hidden_size)
        except _store_errors() as exc:
            warnings.warn(
                f"bertfeat store {self.directory}: reading failed ({type(exc).__name__}: "
                f"{exc}); the sentences are encoded as if they were not stored.",
                RuntimeWarning, stacklevel=2)
            lookup = WordLookup(np.zeros(n, dtype=bool), [None] * n, [None] * n,
                                {layer: [None] * n for layer in layers})
        if count:
            hits = int(lookup.found.sum())
            self._count(fingerprint, sentences_hits=hits, sentences_misses=n - hits)
        return lookup

    def _read_words(self, fingerprint: str, digests: Sequence[str], layers: list[int],
                    hidden_size: int) -> WordLookup:
        n = len(digests)
        need_depth = max(layers) if layers else 0
        found = np.zeros(n, dtype=bool)
        counts: list[np.ndarray | None] = [None] * n
        flags: list[np.ndarray | None] = [None] * n
        vectors: dict[int, list[np.ndarray | None]] = {layer: [None] * n for layer in layers}
        where: dict[str, list[int]] = {}
        for i, digest in enumerate(digests):
            where.setdefault(digest, []).append(i)
        unique = list(where)
        corrupt = 0
        with self.cache.read() as con:
            for start in range(0, len(unique), _READ_CHUNK):
                chunk = unique[start:start + _READ_CHUNK]
                marks = ",".join("?" * len(chunk))
                heads = {digest: head for digest, head in con.execute(
                    f"SELECT digest, head FROM sentences WHERE fp = ? AND digest IN ({marks})",
                    (fingerprint, *chunk))}
                blobs: dict[tuple[str, int], bytes] = {}
                for digest, layer, data in con.execute(
                        "SELECT p.digest, p.layer, p.data FROM sentences s JOIN pieces p "
                        "ON p.block = s.block AND p.digest = s.digest WHERE s.fp = ? AND "
                        f"s.digest IN ({marks}) AND p.layer IN "
                        f"({','.join('?' * len(layers))})", (fingerprint, *chunk, *layers)):
                    blobs[digest, layer] = data
                for digest, head in heads.items():
                    try:
                        depth, c, f = _decode_word_index(head)
                    except CorruptValue:
                        corrupt += 1
                        continue
                    if depth < need_depth:
                        continue
                    arrays, damaged = _piece_arrays(
                        [blobs.get((digest, layer)) for layer in layers], int(c.sum()),
                        hidden_size)
                    corrupt += damaged
                    if arrays is None:
                        continue
                    for i in where[digest]:
                        found[i] = True
                        counts[i], flags[i] = c, f
                        for layer, array in zip(layers, arrays):
                            vectors[layer][i] = array
        if corrupt:
            warnings.warn(
                f"bertfeat store {self.directory}: {corrupt} damaged word record(s) ignored; "
                "the affected sentences are encoded again and rewritten.", RuntimeWarning,
                stacklevel=3)
        return WordLookup(found, counts, flags, vectors)

    def write_words(self, fingerprint: str, digests: Sequence[str],
                    counts: Sequence[np.ndarray], flags: Sequence[np.ndarray],
                    vectors: Sequence[np.ndarray]) -> None:
        """Store the piece vectors of a batch of sentences (one transaction).

        Parameters
        ----------
        fingerprint : str
            Fingerprint of the word encoding.
        digests : sequence of str
            :func:`sentence_digest` of each sentence.
        counts : sequence of ndarray of int
            Pieces of each word, per sentence.
        flags : sequence of ndarray of uint8
            A flags byte per word, per sentence (see :mod:`bertfeat.wordencoder`).
        vectors : sequence of ndarray of shape (depth + 1, n_pieces, hidden), float16
            Every piece's vector at hidden states ``0..depth``, per sentence.

        Raises
        ------
        StoreError
            When the batch could not be stored; nothing of it is stored then.
        """
        if len(digests) == 0:
            return
        heads = [_encode_word_index(v.shape[0] - 1, c, f)
                 for c, f, v in zip(counts, flags, vectors)]
        values = [(digest, layer, encode_array(_piece_array(v[layer])))
                  for digest, v in zip(digests, vectors) for layer in range(v.shape[0])]
        size = (sum(len(blob) for *_, blob in values) + sum(len(h) for h in heads)
                + len(digests) * ROW_BYTES)
        depth = max(v.shape[0] for v in vectors) - 1
        try:
            with self.cache.write() as con:
                block = self._new_block(con, fingerprint, depth, False, size)
                con.executemany("INSERT OR REPLACE INTO pieces (block, digest, layer, data) "
                                "VALUES (?, ?, ?, ?)", [(block, *value) for value in values])
                con.executemany(
                    "INSERT INTO sentences (fp, digest, block, head) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (fp, digest) DO UPDATE SET block = excluded.block, "
                    "head = excluded.head",
                    [(fingerprint, digest, block, head) for digest, head in zip(digests, heads)])
                self._make_room(con, block)
        except _store_errors() as exc:
            raise StoreError(
                f"bertfeat store {self.directory}: writing failed "
                f"({type(exc).__name__}: {exc})") from exc

    def word_stats(self, fingerprint: str) -> dict[str, int]:
        """Counters of the per-word records of one fingerprint.

        Parameters
        ----------
        fingerprint : str
            Fingerprint of the word encoding.

        Returns
        -------
        dict
            ``sentences_hits``, ``sentences_misses`` and ``sentences_encoded`` (sentences
            sent through the encoder).
        """
        return self._counters(fingerprint, ("sentences_hits", "sentences_misses",
                                            "sentences_encoded"))


def _piece_arrays(blobs: list, pieces: int, hidden_size: int):
    """Decoded piece arrays of one sentence, or None, and how many were damaged.

    A missing layer (evicted, or an older shallower record) is a plain miss.
    """
    arrays = []
    for blob in blobs:
        if blob is None:
            return None, 0
        try:
            array = decode_array(blob, (hidden_size,))
        except CorruptValue:
            return None, 1
        if array.shape[0] != pieces or array.dtype not in (np.float16, np.float32):
            return None, 1
        arrays.append(array)
    return arrays, 0
