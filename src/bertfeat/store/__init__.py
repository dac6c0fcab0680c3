"""The feature store: pooled vectors of every computed layer, keyed by (fingerprint, text).

The store owns one SQLite database, ``{directory}/store.db`` (WAL, a bounded busy
timeout; its layout version in ``PRAGMA user_version``, see :mod:`.schema`). Every
column holds text, an integer or raw bytes -- nothing is ever pickled or unpickled.

``blocks (id, fp, depth, pooler, live, bytes)``
    One written batch (of texts or of sentences): the unit of eviction, least recently
    stored (smallest id) first. Deleting a block deletes its rows (a trigger).
``vectors (block, layer, data)``
    One batch's statistics for one layer: float32 (or float16) array (n, 3, hidden)
    behind a small header (see :func:`encode_array`); layer ``-1`` holds the pooler
    output (n, hidden).
``texts (fp, digest, block, row, depth, flags)``
    Index row of one text: which block holds its vectors, at which row, how deep.
``sentences (fp, digest, block, head)``, ``pieces (block, digest, layer, data)``
    Per-word records of :class:`~bertfeat.BertWordFeaturizer` (piece vectors of each
    sentence, see :meth:`FeatureStore.read_words`).
``counts (fp, name, value)``
    Per fingerprint ``entries``, ``encoded``, ``sentences`` and ``sentences_encoded``
    (kept by SQLite triggers on the tables above, so they stay exact whatever removes a
    row: eviction, ``clear``, an overwrite) and ``hits``/``misses``; the byte total of
    all blocks (fingerprint ``""``), which eviction compares with the size limit.
``meta (key, value)``
    Model descriptions (``model/{fp}``) and remembered weight digests; never evicted.

Blocks keep writes cheap (one row per layer per batch instead of per text) and reads
cheap (one small index row per text, then a few large block reads). A batch, its
counters and any eviction it causes commit in one transaction.

Encoding is coordinated across processes by one file lock per fingerprint
(``locks/{fp}.lock``, ``filelock.FileLock``, see :meth:`FeatureStore.encode_lock`): the
holder re-reads its misses, encodes the rest and writes them; the others wait, then find
the vectors stored. The OS releases the lock of a process that dies.

A store written by bertfeat's first layout (a diskcache ``cache.db``) is migrated once,
on first open (:mod:`.legacy`).
"""

from __future__ import annotations

from .core import (
    AUTO_LIMIT_SHARE,  # noqa: F401
    DEFAULT_SIZE_LIMIT,
    LOCK_TIMEOUT,
    STORE_DEPTHS,
    FeatureStore,
    default_cache_dir,
)
from .format import (
    STORE_DTYPES,
    STORE_FORMAT,
    CorruptValue,
    Lookup,
    WordLookup,
    _human,  # noqa: F401
    decode_array,
    encode_array,
    human_bytes,
    sentence_digest,
    text_digest,
)
from .schema import StoreError, store_errors

__all__ = [
    "FeatureStore",
    "CorruptValue",
    "Lookup",
    "WordLookup",
    "StoreError",
    "store_errors",
    "human_bytes",
    "default_cache_dir",
    "encode_array",
    "decode_array",
    "text_digest",
    "sentence_digest",
    "DEFAULT_SIZE_LIMIT",
    "LOCK_TIMEOUT",
    "STORE_DEPTHS",
    "STORE_DTYPES",
    "STORE_FORMAT",
]
