"""Per-word records of the store (:class:`~bertfeat.BertWordFeaturizer`): piece vectors
of each sentence behind an index row of pieces per word and flags."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from .format import (
    _READ_CHUNK,
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


    # -- per-word records (BertWordFeaturizer) ------------------------------------------
    # A namespace of its own, next to the per-text rows and sharing nothing with them but
    # the database, the tags (``clear(model)`` removes both) and the array header:
    #
    # ``{fp}/w/{sentence digest}``
    #     Index row of one sentence (:data:`_WORD_INDEX` header, then the pieces of each
    #     word as uint32 and a flags byte per word).
    # ``{fp}/w/{sentence digest}/{layer}``
    #     float16 array (n_pieces, hidden): the vector of every piece of the sentence at
    #     that hidden state. Every sub-word pooling (first, last, mean, max ...) is built
    #     from these exactly, so a grid over layers and poolings is a read, not an encode.
    # ``bertfeat_counts`` rows ``sentences_{hits|misses|encoded}``
    #     Counters.

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
            self._count(fingerprint, "sentences_hits", hits)
            self._count(fingerprint, "sentences_misses", n - hits)
        return lookup

    def _read_words(self, fingerprint: str, digests: Sequence[str], layers: list[int],
                    hidden_size: int) -> WordLookup:
        n = len(digests)
        need_depth = max(layers) if layers else 0
        found = np.zeros(n, dtype=bool)
        counts: list[np.ndarray | None] = [None] * n
        flags: list[np.ndarray | None] = [None] * n
        vectors: dict[int, list[np.ndarray | None]] = {layer: [None] * n for layer in layers}
        corrupt = 0
        for start in range(0, n, _READ_CHUNK):
            stop = min(n, start + _READ_CHUNK)
            heads = self._get_many([f"{fingerprint}/w/{d}" for d in digests[start:stop]])
            usable = []
            for i, value in enumerate(heads, start):
                if value is None:
                    continue
                try:
                    depth, c, f = _decode_word_index(value)
                except CorruptValue:
                    corrupt += 1
                    continue
                if depth >= need_depth:
                    usable.append((i, c, f))
            blobs = self._get_many([f"{fingerprint}/w/{digests[i]}/{layer}"
                                    for i, _, _ in usable for layer in layers])
            for k, (i, c, f) in enumerate(usable):
                arrays = []
                for blob in blobs[k * len(layers):(k + 1) * len(layers)]:
                    if blob is None:  # evicted: a plain miss
                        break
                    try:
                        array = decode_array(blob, (hidden_size,))
                    except CorruptValue:
                        corrupt += 1
                        break
                    if array.shape[0] != int(c.sum()) or array.dtype not in (np.float16,
                                                                              np.float32):
                        corrupt += 1
                        break
                    arrays.append(array)
                if len(arrays) != len(layers):
                    continue
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
        try:
            cache = self.cache
            with cache.transact():
                for digest, c, f, v in zip(digests, counts, flags, vectors):
                    depth = v.shape[0] - 1
                    for layer in range(depth + 1):
                        cache.set(f"{fingerprint}/w/{digest}/{layer}",
                                  encode_array(_piece_array(v[layer])),
                                  tag=fingerprint)
                    cache.set(f"{fingerprint}/w/{digest}", _encode_word_index(depth, c, f),
                              tag=fingerprint)
        except _store_errors() as exc:
            raise StoreError(
                f"bertfeat store {self.directory}: writing failed "
                f"({type(exc).__name__}: {exc})") from exc
        self._count(fingerprint, "sentences_encoded", len(digests))

    def word_stats(self, fingerprint: str) -> dict[str, int]:
        """Counters of the per-word records of one fingerprint.

        Returns
        -------
        dict
            ``sentences_hits``, ``sentences_misses`` and ``sentences_encoded`` (sentences
            sent through the encoder).
        """
        names = ("sentences_hits", "sentences_misses", "sentences_encoded")
        rows = self._sql("SELECT name, value FROM bertfeat_counts WHERE fp = ?",
                         (fingerprint,)).fetchall()
        values = dict.fromkeys(names, 0)
        values.update({name: int(value) for name, value in rows if name in values})
        return values
