"""The feature store: pooled vectors of every computed layer, keyed by (fingerprint, text).

Layout (all rows live in one diskcache ``Cache``; every key is a ``str``, every value is
``bytes``, ``str`` or ``int`` -- nothing is ever pickled or unpickled):

``{fp}/t/{text digest}``
    Index row of one text: which block holds its vectors, at which row, how deep.
``{fp}/b/{block id}/{layer}``
    One encoder batch's statistics for one layer: float32 array (n, 3, hidden) behind a
    small header (see :func:`encode_array`). Layer ``P`` holds the pooler output (n, hidden).

Bookkeeping lives in three small tables of the same SQLite file, beside diskcache's
``Cache`` table, so that eviction (which only ever removes ``Cache`` rows) never takes it:

``bertfeat_counts (fp, name, value)``
    Per fingerprint ``entries`` (index rows), ``encoded``, ``hits`` and ``misses``.
    ``entries`` and ``encoded`` are kept by SQLite triggers on the index rows, so they
    stay exact whatever removes a row (eviction, ``clear``, an interrupted ``clear``)
    and :meth:`FeatureStore.stats` answers without scanning keys.
``bertfeat_blocks (block, fp, depth, pooler, live)``
    How many index rows point into each block (kept by the same triggers): a block
    whose rows have all been overwritten is deleted, never orphaned.
``bertfeat_meta (key, value)``
    Model descriptions (``model/{fp}``) and remembered weight digests.
``{fp}/w/...``
    Per-word records of :class:`~bertfeat.BertWordFeaturizer` (piece vectors of each
    sentence, see :meth:`FeatureStore.read_words`).

Blocks keep writes cheap (one row per layer per batch instead of per text) and reads
cheap (one small index row per text, then a few large block reads).

Encoding is coordinated across processes by one OS file lock per fingerprint
(``locks/{fp}.lock``, see :meth:`FeatureStore.encode_lock`): the holder re-reads its
misses, encodes the rest and writes them; the others wait in the kernel (no CPU) and
then find the vectors stored. The OS releases the lock of a process that dies.
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
