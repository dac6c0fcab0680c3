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

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import struct
import time
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FeatureStore",
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

#: bump when the meaning of stored vectors changes (part of every fingerprint)
STORE_FORMAT = 1
#: the smallest automatic size limit (``size_limit=None``), and the limit before it existed:
#: 8 GiB; beyond the limit the least recently stored rows go first
DEFAULT_SIZE_LIMIT = 8 * 2**30
#: share of the disk space available to a store (its database + free space) that an
#: automatic size limit takes, when that is more than :data:`DEFAULT_SIZE_LIMIT`
AUTO_LIMIT_SHARE = 0.5
#: seconds to wait for another process's write transaction before giving up on the store
#: (a write batch holds it for milliseconds; a stuck or damaged holder must not cost minutes)
LOCK_TIMEOUT = 10.0
#: storage dtypes of vectors; float16 halves the bytes per text (fidelity measured in
#: benchmarks/bench_store.py)
STORE_DTYPES = ("float32", "float16")
#: how deep misses are encoded: every layer (any later layer request is a read), or only
#: as deep as the call needs
STORE_DEPTHS = ("full", "needed")
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_MAGIC = b"BFS1"
_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f2")}
_DTYPE_CODES = {v: k for k, v in _DTYPES.items()}
_INDEX = struct.Struct("<16sIHB")  # block id, row, depth, flags (1 pooler, 2 truncated)
_READ_CHUNK = 2048


class CorruptValue(ValueError):
    """A stored value whose header or size does not match what was expected."""


class StoreError(RuntimeError):
    """A store operation failed: disk full, read-only location, lock timeout, damage.

    Raised by :meth:`FeatureStore.write` only; callers keep their results in memory
    and carry on without the store.
    """


#: SQLite result codes that mean the database file itself is damaged
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def _store_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the store is unusable right now", not a bug."""
    import diskcache

    return (sqlite3.Error, OSError, diskcache.Timeout)


def store_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the store is unusable right now" (for callers that
    report them, like the CLI): SQLite errors, OS errors, diskcache timeouts."""
    return _store_errors()


def _is_corruption(exc: BaseException) -> bool:
    """True when ``exc`` says the SQLite file is damaged (not locked, full or read-only)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    message = str(exc).lower()
    return "malformed" in message or "not a database" in message


@contextlib.contextmanager
def _repair_lock(directory: Path):
    """An exclusive lock on ``directory`` while a damaged database is moved aside."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: renaming an open file fails there
        yield
        return
    with open(directory / ".repair.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


# -------------------------------------------------------------------- bookkeeping schema
# SQL over diskcache's ``Cache`` table. An index row is a 23-byte blob under a key whose
# first "/" is followed by "t/" (``{fp}/t/{digest}``); its first 16 bytes are the block id.


def _is_index(row: str) -> str:
    return (f"(substr({row}.key, instr({row}.key, '/'), 3) = '/t/' "
            f"AND typeof({row}.value) = 'blob' AND length({row}.value) = {_INDEX.size})")


def _fp_of(row: str) -> str:
    return f"substr({row}.key, 1, instr({row}.key, '/') - 1)"


def _block_of(row: str) -> str:
    return f"lower(hex(substr({row}.value, 1, 16)))"


def _bump(fp: str, name: str, amount: str) -> str:
    return (f"INSERT INTO bertfeat_counts (fp, name, value) VALUES ({fp}, '{name}', {amount}) "
            "ON CONFLICT (fp, name) DO UPDATE SET value = value + excluded.value;")


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bertfeat_counts (fp TEXT NOT NULL, name TEXT NOT NULL, "
    "value INTEGER NOT NULL, PRIMARY KEY (fp, name)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS bertfeat_blocks (block TEXT PRIMARY KEY, fp TEXT NOT NULL, "
    "depth INTEGER NOT NULL, pooler INTEGER NOT NULL, live INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS bertfeat_blocks_live ON bertfeat_blocks (live)",
    "CREATE TABLE IF NOT EXISTS bertfeat_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    f"CREATE TRIGGER IF NOT EXISTS bertfeat_index_insert AFTER INSERT ON Cache "
    f"WHEN {_is_index('new')} BEGIN "
    f"{_bump(_fp_of('new'), 'entries', '1')} {_bump(_fp_of('new'), 'encoded', '1')} "
    f"UPDATE bertfeat_blocks SET live = live + 1 WHERE block = {_block_of('new')}; END",
    f"CREATE TRIGGER IF NOT EXISTS bertfeat_index_update AFTER UPDATE OF value ON Cache "
    f"WHEN {_is_index('new')} OR {_is_index('old')} BEGIN "
    f"{_bump(_fp_of('new'), 'encoded', _is_index('new'))} "
    f"{_bump(_fp_of('new'), 'entries', _is_index('new') + ' - ' + _is_index('old'))} "
    f"UPDATE bertfeat_blocks SET live = live - 1 WHERE {_is_index('old')} "
    f"AND block = {_block_of('old')}; "
    f"UPDATE bertfeat_blocks SET live = live + 1 WHERE {_is_index('new')} "
    f"AND block = {_block_of('new')}; END",
    f"CREATE TRIGGER IF NOT EXISTS bertfeat_index_delete AFTER DELETE ON Cache "
    f"WHEN {_is_index('old')} BEGIN "
    f"UPDATE bertfeat_counts SET value = value - 1 WHERE fp = {_fp_of('old')} "
    f"AND name = 'entries'; "
    f"UPDATE bertfeat_blocks SET live = live - 1 WHERE block = {_block_of('old')}; END",
    "CREATE TRIGGER IF NOT EXISTS bertfeat_block_delete AFTER DELETE ON Cache "
    "WHEN substr(old.key, instr(old.key, '/'), 3) = '/b/' AND old.key GLOB '*/0' BEGIN "
    "DELETE FROM bertfeat_blocks WHERE block = substr(old.key, instr(old.key, '/') + 3, 32); "
    "END",
)
_SCHEMA_NAMES = frozenset({"bertfeat_counts", "bertfeat_blocks", "bertfeat_blocks_live",
                           "bertfeat_meta", "bertfeat_index_insert", "bertfeat_index_update",
                           "bertfeat_index_delete", "bertfeat_block_delete"})
#: one-time copy of a store written by an older bertfeat, whose bookkeeping lived in
#: (evictable) ``Cache`` rows: entry counts, counters, model descriptions, metadata
_MIGRATE = (
    f"INSERT OR IGNORE INTO bertfeat_counts (fp, name, value) SELECT {_fp_of('Cache')}, "
    f"'entries', count(*) FROM Cache WHERE {_is_index('Cache')} GROUP BY 1",
    f"INSERT OR IGNORE INTO bertfeat_counts (fp, name, value) SELECT {_fp_of('Cache')}, "
    f"'encoded', count(*) FROM Cache WHERE {_is_index('Cache')} GROUP BY 1",
    "INSERT OR REPLACE INTO bertfeat_counts (fp, name, value) "
    "SELECT substr(key, 7, instr(substr(key, 7), '/') - 1), "
    "substr(key, 7 + instr(substr(key, 7), '/')), value FROM Cache "
    "WHERE key GLOB 'stats/*/*' AND typeof(value) = 'integer' "
    "AND substr(key, 7 + instr(substr(key, 7), '/')) IN ('hits', 'misses', 'encoded')",
    "INSERT OR IGNORE INTO bertfeat_meta (key, value) "
    "SELECT 'model/' || substr(key, 1, length(key) - 6), value FROM Cache "
    "WHERE key GLOB '*/model' AND typeof(value) = 'text' AND instr(key, '/') = length(key) - 5",
    "INSERT OR IGNORE INTO bertfeat_meta (key, value) SELECT substr(key, 6), value FROM Cache "
    "WHERE key GLOB 'meta/*' AND typeof(value) IN ('text', 'integer')",
)


def _ensure_schema(cache) -> None:
    """Create the bookkeeping tables and triggers (once per store file).

    Runs on diskcache's own connection (``_sql``), so that the triggers and the
    bookkeeping writes join diskcache's transactions: a batch and its counts commit
    together or not at all.
    """
    sql = cache._sql
    have = {row[0] for row in sql(
        "SELECT name FROM sqlite_master WHERE name GLOB 'bertfeat_*'").fetchall()}
    if _SCHEMA_NAMES <= have:
        return
    with cache.transact():
        fresh = sql("SELECT count(*) FROM sqlite_master "
                    "WHERE name = 'bertfeat_counts'").fetchone()[0] == 0
        for statement in _SCHEMA:
            sql(statement)
        if fresh:
            for statement in _MIGRATE:
                sql(statement)


def _check_not_locked(db: Path, timeout: float) -> None:
    """Fail within ``timeout`` seconds when another process holds the write lock.

    diskcache retries its set-up statements for a minute on a locked database; a
    process stuck in a write transaction (or holding a damaged file) must not cost that.
    ``BEGIN EXCLUSIVE`` asks for what diskcache's set-up may need: in WAL mode it is a
    write lock (readers do not block it); in a file that is not (or no longer) in WAL
    mode, where ``PRAGMA journal_mode = wal`` needs every other connection gone, it also
    waits for readers.

    Raises
    ------
    StoreError
        When the lock is still held after ``timeout`` seconds.
    sqlite3.DatabaseError
        When the file is damaged (the caller moves it aside).
    """
    try:
        con = sqlite3.connect(str(db), timeout=timeout, isolation_level=None)
    except sqlite3.Error:
        return  # diskcache reports it
    try:
        con.execute("BEGIN EXCLUSIVE")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        con.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        message = str(exc).lower()
        if "locked" in message or "busy" in message:
            raise StoreError(
                f"bertfeat store {db.parent}: the database has been locked by another "
                f"process for more than {timeout:g} s ({exc}). If no bertfeat process is "
                "running, the file may be damaged or held by a stuck process: stop it, "
                "or use another store (cache=<directory>, or cache=False).") from exc
        if _is_corruption(exc):
            raise
    except sqlite3.DatabaseError as exc:
        if _is_corruption(exc):
            raise
    finally:
        con.close()


def _lock_name(fingerprint: str) -> str:
    if re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", fingerprint):
        return fingerprint
    return text_digest(fingerprint)


_warned_working_sets: set[tuple[str, str]] = set()


def human_bytes(n: float) -> str:
    """``n`` bytes for people: ``512 B``, ``1.5 MB`` ... (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


_human = human_bytes


def _round_up(n: int) -> str:
    """``n`` bytes rounded up to a whole GiB (at least 1), as Python source."""
    return f"{max(1, -(-n // 2**30))} * 2**30"


def _to_storage(array: np.ndarray) -> np.ndarray:
    """float16 copy of a float32 array, or the array itself when float16 cannot hold it."""
    finite = np.isfinite(array)
    if not finite.all() or (array.size and float(np.abs(array).max()) > _FLOAT16_MAX):
        return array
    return array.astype(np.float16)


def default_cache_dir() -> Path:
    """Per-user store directory; ``BERTFEAT_CACHE_DIR`` overrides it.

    Returns
    -------
    Path
        ``$BERTFEAT_CACHE_DIR``, else ``$XDG_CACHE_HOME/bertfeat``, else
        ``~/.cache/bertfeat`` (``%LOCALAPPDATA%\\bertfeat`` on Windows).
    """
    env = os.environ.get("BERTFEAT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "bertfeat"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bertfeat"


def text_digest(text: str) -> str:
    """128-bit BLAKE2b digest of a text (lone surrogates included), as hex."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def encode_array(array: np.ndarray) -> bytes:
    """Raw bytes of an array behind a header: magic, dtype code, ndim, shape."""
    array = np.ascontiguousarray(array)
    code = _DTYPE_CODES[array.dtype.newbyteorder("<")]
    header = _MAGIC + struct.pack("<BB", code, array.ndim) + struct.pack(
        f"<{array.ndim}I", *array.shape)
    return header + array.astype(_DTYPES[code], copy=False).tobytes()


def decode_array(blob: Any, trailing: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`encode_array`, checking the header against the expected shape.

    Parameters
    ----------
    blob : bytes
        Stored value.
    trailing : tuple of int
        Expected shape after the first axis.

    Raises
    ------
    CorruptValue
        If anything about the value is off.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) < 6:
        raise CorruptValue("value is not a bertfeat array")
    blob = bytes(blob)
    if blob[:4] != _MAGIC:
        raise CorruptValue("bad magic")
    code, ndim = struct.unpack_from("<BB", blob, 4)
    if code not in _DTYPES or ndim != len(trailing) + 1:
        raise CorruptValue("bad dtype or ndim")
    shape = struct.unpack_from(f"<{ndim}I", blob, 6)
    if tuple(shape[1:]) != tuple(trailing):
        raise CorruptValue(f"shape {shape} does not end in {trailing}")
    offset = 6 + 4 * ndim
    dtype = _DTYPES[code]
    if len(blob) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise CorruptValue("size does not match the header")
    return np.frombuffer(blob, dtype=dtype, offset=offset).reshape(shape)


def _safe_disk_class():
    """A diskcache ``Disk`` that refuses to pickle or unpickle anything."""
    import diskcache

    class SafeDisk(diskcache.Disk):
        """diskcache ``Disk`` for untrusted stores: no pickle in either direction."""

        def put(self, key):
            if type(key) is not str:
                raise TypeError("bertfeat store keys are str")
            return super().put(key)

        def get(self, key, raw):
            if not raw:
                return None  # a pickled key: never unpickled
            return super().get(key, raw)

        def store(self, value, read, key=diskcache.core.UNKNOWN):
            if type(value) not in (bytes, str, int):
                raise TypeError("bertfeat store values are bytes, str or int")
            return super().store(value, read, key=key)

        def fetch(self, mode, filename, value, read):
            if mode == diskcache.core.MODE_PICKLE:
                warnings.warn(
                    "bertfeat store: ignored a pickled value (a bertfeat store never holds "
                    "one; the store may have been tampered with)", RuntimeWarning,
                    stacklevel=2)
                return None
            return super().fetch(mode, filename, value, read)

    return SafeDisk


def _bounded_cache_class():
    """A ``diskcache.Cache`` whose set-up statements wait at most its ``timeout``.

    diskcache runs the statements of ``Cache.__init__`` and ``reset`` (``PRAGMA
    journal_mode = wal`` and the settings) through ``_sql_retry``, which retries a locked
    database for a fixed 60 s on top of SQLite's own busy timeout. A database that
    another process holds (a reader of a file no longer in WAL mode, a stuck writer)
    then stalled ``cache info``, ``fit`` and ``stats()`` for a minute. Here the retries
    stop at the store's ``timeout`` (10 s by default), counted from the first attempt.
    """
    import diskcache

    class BoundedCache(diskcache.Cache):
        @property
        def _sql_retry(self):
            sql = self._sql
            limit = float(self.timeout)

            def execute(statement, *args, **kwargs):
                start = time.monotonic()
                while True:
                    try:
                        return sql(statement, *args, **kwargs)
                    except sqlite3.OperationalError as exc:
                        if str(exc) != "database is locked" or \
                                time.monotonic() - start > limit:
                            raise
                        time.sleep(0.001)

            return execute

    return BoundedCache


@dataclass
class Lookup:
    """Result of :meth:`FeatureStore.read`.

    Attributes
    ----------
    found : ndarray of bool, shape (n,)
        Which texts were read from the store.
    stats : dict of int -> ndarray (n, 3, hidden)
        Per requested layer; rows of texts not found are zero.
    pooler : ndarray (n, hidden) or None
    truncated : ndarray of bool, shape (n,)
        Found texts that were truncated when they were encoded.
    """

    found: np.ndarray
    stats: dict[int, np.ndarray]
    pooler: np.ndarray | None
    truncated: np.ndarray


# ----------------------------------------------------------- per-word records (words.py)
_WORD_MAGIC = b"BFW1"
#: magic, depth, words; then uint32 pieces per word and a uint8 flags byte per word
_WORD_INDEX = struct.Struct("<4sHI")


def sentence_digest(words: Sequence[str]) -> str:
    """128-bit digest of a pre-tokenised sentence (its words and their boundaries)."""
    return text_digest(json.dumps(list(words), ensure_ascii=False))


def _piece_array(array: np.ndarray) -> np.ndarray:
    """Piece vectors as stored: float16, or float32 where a value exceeds float16's range
    (the word pass decides, :func:`bertfeat.word_pass.storable_pieces`)."""
    array = np.asarray(array)
    return array if array.dtype in (np.float16, np.float32) else array.astype(np.float16)


def _encode_word_index(depth: int, counts: np.ndarray, flags: np.ndarray) -> bytes:
    counts = np.asarray(counts, dtype="<u4")
    return (_WORD_INDEX.pack(_WORD_MAGIC, depth, len(counts)) + counts.tobytes()
            + np.asarray(flags, dtype=np.uint8).tobytes())


def _decode_word_index(value: Any) -> tuple[int, np.ndarray, np.ndarray]:
    if not isinstance(value, bytes) or len(value) < _WORD_INDEX.size:
        raise CorruptValue("not a word index row")
    magic, depth, n = _WORD_INDEX.unpack_from(value)
    if magic != _WORD_MAGIC or len(value) != _WORD_INDEX.size + 5 * n:
        raise CorruptValue("bad word index row")
    counts = np.frombuffer(value, dtype="<u4", count=n, offset=_WORD_INDEX.size)
    flags = np.frombuffer(value, dtype=np.uint8, count=n, offset=_WORD_INDEX.size + 4 * n)
    if n and int(counts.min()) < 1:
        raise CorruptValue("a word without pieces")
    return int(depth), counts.astype(np.int64), flags.copy()


@dataclass
class WordLookup:
    """Result of :meth:`FeatureStore.read_words`.

    Attributes
    ----------
    found : ndarray of bool, shape (n,)
        Which sentences were read from the store.
    counts : list of (ndarray of int64 or None)
        Pieces per word of each found sentence.
    flags : list of (ndarray of uint8 or None)
        Flags byte per word of each found sentence.
    vectors : dict of int -> list of (ndarray (n_pieces, hidden) float16 or None)
        Per requested layer, each found sentence's piece vectors.
    """

    found: np.ndarray
    counts: list
    flags: list
    vectors: dict


class FeatureStore:
    """On-disk store of pooled encoder outputs, shared safely by processes.

    Parameters
    ----------
    directory : str or Path, optional
        Where the store lives. Default: :func:`default_cache_dir`.
    size_limit : int, optional
        Bytes on disk before the least recently stored entries are evicted. Default
        (``None``): half of the disk space available to the store (its database plus the
        free space) when the store opens, and at least 8 GiB (:data:`DEFAULT_SIZE_LIMIT`).
        A call whose texts need more than the limit warns once, with the numbers.
    dtype : {"float32", "float16"}, default="float32"
        How vectors are stored. ``"float16"`` halves the bytes per text; results are then
        rounded to float16 whether they come from the store or the encoder (cached ==
        uncached still holds, bit for bit), and their fingerprint differs from float32.
        A batch whose values do not fit float16 is stored as float32.
    depth : {"full", "needed"}, default="full"
        ``"full"``: a text the store lacks is encoded through every layer, so a later
        request for any layer or pooling of the same model is a read, whatever order a
        search asks in. ``"needed"``: only as deep as the call needs (cheaper when only
        shallow layers are ever used; a deeper request later encodes again).
    timeout : float, optional
        Seconds to wait for another process's write lock on the database before the
        store is given up for the call (results are unaffected). Default:
        :data:`LOCK_TIMEOUT` (10 s).

    Examples
    --------
    >>> from bertfeat import FeatureStore
    >>> store = FeatureStore("/tmp/bertfeat-doc-store")
    >>> store.stats()["entries"] >= 0
    True
    """

    def __init__(self, directory: str | os.PathLike | None = None,
                 size_limit: int | None = None, dtype: str = "float32",
                 depth: str = "full", timeout: float | None = None) -> None:
        self.directory = str(Path(directory).expanduser() if directory is not None
                             else default_cache_dir())
        self.size_limit = None if size_limit is None else int(size_limit)
        if dtype not in STORE_DTYPES:
            raise ValueError(f"FeatureStore dtype must be one of {STORE_DTYPES}, got {dtype!r}")
        if depth not in STORE_DEPTHS:
            raise ValueError(f"FeatureStore depth must be one of {STORE_DEPTHS}, got {depth!r}")
        self.dtype = dtype
        self.depth = depth
        self.timeout = None if timeout is None else float(timeout)
        self._cache = None
        self._db_identity: tuple[int, int] | None = None
        self._limit: int | None = None

    @classmethod
    def from_cache(cls, cache: Any) -> FeatureStore | None:
        """The store a ``cache=`` parameter value names.

        Parameters
        ----------
        cache : "auto", True, str, path, FeatureStore, False or None
            ``"auto"``/``True``: the per-user store (:func:`default_cache_dir`); a
            directory: a store there; a store: itself; ``False``/``None``: no store.

        Returns
        -------
        FeatureStore or None

        Raises
        ------
        ValueError
            For ``""`` (it would silently mean the current directory).
        TypeError
            For any other kind of value.
        """
        if isinstance(cache, FeatureStore):
            return cache
        if cache is None or cache is False:
            return None
        if cache is True or (isinstance(cache, str) and cache == "auto"):
            return cls()
        if isinstance(cache, (str, os.PathLike)):
            if not os.fspath(cache):
                raise ValueError("cache='' names no directory; pass a directory, 'auto' "
                                 "(the per-user store) or False (no store)")
            return cls(cache)
        raise TypeError("cache must be 'auto', a directory, a FeatureStore, False or None, "
                        f"got {type(cache).__name__}")

    @property
    def random_init_directory(self) -> Path:
        """Where random-weights copies of models live (see ``models.random_init_model``)."""
        return Path(self.directory) / "random-init"

    # -- plumbing ----------------------------------------------------------------------
    @property
    def cache(self):
        """The underlying ``diskcache.Cache`` (opened on first use).

        A database file that SQLite finds damaged ("file is not a database", "database
        disk image is malformed") is moved aside to ``cache.db.corrupt-<time>-<pid>``
        with a ``RuntimeWarning``, and an empty store takes its place. A database another
        process keeps locked for longer than ``timeout`` raises :class:`StoreError`.
        """
        if self._cache is None:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            try:
                self._cache = self._open()
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise
                self._recover(exc)
                self._cache = self._open()
        return self._cache

    def _open(self):

        db = Path(self.directory) / "cache.db"
        self._db_identity = _file_identity(db)
        if self._db_identity is not None:
            _check_not_locked(db, self._timeout())
        cache = _bounded_cache_class()(
            self.directory,
            timeout=self._timeout(),
            disk=_safe_disk_class(),
            size_limit=self.limit,
            disk_min_file_size=2**21,
            eviction_policy="least-recently-stored",
            statistics=False,
            tag_index=True,
        )
        if self._db_identity is None:  # created just now
            self._db_identity = _file_identity(db)
        try:
            _ensure_schema(cache)
        except BaseException:
            cache.close()
            raise
        return cache

    def _timeout(self) -> float:
        return LOCK_TIMEOUT if self.timeout is None else self.timeout

    @property
    def limit(self) -> int:
        """The size limit in bytes in effect (``size_limit``, or the automatic one)."""
        if self.size_limit is not None:
            return self.size_limit
        if self._limit is None:
            directory = Path(self.directory)
            try:
                free = shutil.disk_usage(directory).free
                used = sum(directory.joinpath(f"cache.db{s}").stat().st_size
                           for s in ("", "-wal") if directory.joinpath(f"cache.db{s}").exists())
            except OSError:
                free, used = 0, 0
            self._limit = max(DEFAULT_SIZE_LIMIT, int(AUTO_LIMIT_SHARE * (free + used)))
        return self._limit

    def _recover(self, exc: BaseException) -> None:
        """Move a damaged database aside (once, whichever process sees it first).

        The check-and-rename runs under a lock, and only renames the very file this
        store opened: a database another process has already replaced is left alone.
        Vectors are recomputed as needed; nothing of the damaged file is read again.
        """
        damaged = self._db_identity
        if self._cache is not None:
            with contextlib.suppress(Exception):
                self._cache.close()
            self._cache = None
        directory = Path(self.directory)
        db = directory / "cache.db"
        moved = None
        try:
            with _repair_lock(directory):
                if damaged is not None and _file_identity(db) == damaged:
                    stamp = time.strftime("%Y%m%d-%H%M%S")
                    moved = db.with_name(f"cache.db.corrupt-{stamp}-{os.getpid()}")
                    for suffix in ("", "-wal", "-shm"):
                        source = Path(f"{db}{suffix}")
                        if source.exists():
                            os.replace(source, Path(f"{moved}{suffix}"))
        except OSError as error:
            raise StoreError(
                f"bertfeat store {self.directory}: the database is damaged "
                f"({type(exc).__name__}: {exc}) and could not be moved aside "
                f"({type(error).__name__}: {error})") from exc
        self._db_identity = None
        if moved is not None:
            what = f"moved it aside to {moved.name} and started an empty store"
        else:
            what = ("another process or store object has already moved it aside; "
                    "using the new one")
        warnings.warn(
            f"bertfeat store {self.directory}: the database is damaged "
            f"({type(exc).__name__}: {exc}); {what}. Affected texts are encoded again; "
            "results are unaffected.", RuntimeWarning, stacklevel=4)

    def close(self) -> None:
        """Close the database connection (it reopens on next use)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __getstate__(self) -> dict:
        return {"directory": self.directory, "size_limit": self.size_limit,
                "dtype": self.dtype, "depth": self.depth, "timeout": self.timeout}

    def __setstate__(self, state: dict) -> None:
        self.directory = state["directory"]
        self.size_limit = state["size_limit"]
        self.dtype = state.get("dtype", "float32")
        self.depth = state.get("depth", "full")
        self.timeout = state.get("timeout")
        self._cache = None
        self._db_identity = None
        self._limit = None

    def _key(self) -> tuple:
        return (self.directory, self.size_limit, self.dtype, self.depth, self.timeout)

    def __repr__(self) -> str:
        extra = "".join(f", {name}={value!r}" for name, value, default in (
            ("dtype", self.dtype, "float32"), ("depth", self.depth, "full"),
            ("timeout", self.timeout, None)) if value != default)
        return f"FeatureStore({self.directory!r}, size_limit={self.size_limit}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureStore) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    # -- small metadata ----------------------------------------------------------------
    def _sql(self, statement: str, args: tuple = ()):
        return self.cache._sql(statement, args)

    def get_meta(self, key: str) -> Any:
        """Read a small metadata value (str or int), or None (also when unreadable)."""
        try:
            row = self._sql("SELECT value FROM bertfeat_meta WHERE key = ?", (key,)).fetchone()
        except (*_store_errors(), StoreError):
            return None
        value = row[0] if row else None
        return value if isinstance(value, (str, int)) else None

    def set_meta(self, key: str, value: str | int) -> None:
        """Write a small metadata value; best effort (a full or read-only store skips it).

        Metadata is never evicted by the size limit.
        """
        if not isinstance(value, (str, int)):
            raise TypeError("bertfeat store metadata values are str or int")
        with contextlib.suppress(*_store_errors(), StoreError):
            self._sql("INSERT OR REPLACE INTO bertfeat_meta (key, value) VALUES (?, ?)",
                      (key, value))

    def register(self, fingerprint: str, description: dict) -> None:
        """Remember what a fingerprint stands for (shown by :meth:`stats`); best effort.

        The description is bookkeeping, never evicted by the size limit, so
        ``clear(model=...)`` finds the model's entries however full the store is.
        """
        text = json.dumps(description, sort_keys=True)
        if self.get_meta(f"model/{fingerprint}") != text:
            self.set_meta(f"model/{fingerprint}", text)

    def encoded_count(self, fingerprint: str) -> int:
        """Texts encoded and written under ``fingerprint`` (the ``encoded`` counter).

        Parameters
        ----------
        fingerprint : str
            A featurizer's ``fingerprint_``.

        Returns
        -------
        int
            The counter :meth:`stats` reports as ``encoded``; 0 when nothing was stored.
        """
        return self.counts(fingerprint)["encoded"]

    def _count(self, fingerprint: str, name: str, amount: int) -> None:
        if amount:  # counters are best effort: never fail a read over them
            with contextlib.suppress(*_store_errors(), StoreError):
                self._sql("INSERT INTO bertfeat_counts (fp, name, value) VALUES (?, ?, ?) "
                          "ON CONFLICT (fp, name) DO UPDATE SET value = value + excluded.value",
                          (fingerprint, name, int(amount)))

    # -- cross-process coordination ------------------------------------------------------
    @contextlib.contextmanager
    def encode_lock(self, fingerprint: str):
        """Hold the encode lock of one fingerprint (exclusive across processes and threads).

        Taken around "re-read the misses, encode the rest, write them", so that workers
        missing the same texts at the same time encode each of them once: the others
        wait, then find the vectors stored. It is an OS file lock (``flock``) on
        ``locks/{fingerprint}.lock`` in the store directory: waiting costs no CPU, and
        the OS releases the lock of a process that dies, even by SIGKILL. Different
        fingerprints have different locks and never wait for each other. Where the lock
        cannot be taken (no ``fcntl``, e.g. Windows; a read-only directory) the call
        proceeds without it: results are the same, a text may then be encoded twice.
        """
        handle = None
        try:
            import fcntl

            folder = Path(self.directory) / "locks"
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(folder / f"{_lock_name(fingerprint)}.lock", "a+b")  # noqa: SIM115
        except (ImportError, OSError):
            handle = None
        if handle is None:
            yield
            return
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

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

    # -- housekeeping --------------------------------------------------------------------
    def _models(self) -> dict[str, dict]:
        models = {}
        rows = self._sql("SELECT key, value FROM bertfeat_meta WHERE key >= 'model/' "
                         "AND key < 'model0'").fetchall()
        for key, value in rows:
            try:
                models[key[len("model/"):]] = json.loads(value or "{}")
            except (TypeError, ValueError):
                models[key[len("model/"):]] = {}
        return models

    def counts(self, fingerprint: str) -> dict[str, int]:
        """``entries``, ``hits``, ``misses`` and ``encoded`` of one fingerprint (O(1)).

        Raises
        ------
        StoreError
            When the store cannot be read.
        """
        try:
            rows = self._sql("SELECT name, value FROM bertfeat_counts WHERE fp = ?",
                             (fingerprint,)).fetchall()
        except _store_errors() as exc:
            raise StoreError(f"bertfeat store {self.directory}: reading counters failed "
                             f"({type(exc).__name__}: {exc})") from exc
        values = dict.fromkeys(("entries", "hits", "misses", "encoded"), 0)
        values.update({name: int(value) for name, value in rows if name in values})
        return values

    def stats(self) -> dict:
        """Usage of the store, from counters (no key is scanned: O(models), not O(entries)).

        Returns
        -------
        dict
            ``directory``, ``size_limit`` (in effect), ``bytes`` (on disk), ``entries``
            (texts stored, all models), ``dtype``, ``depth`` and ``models``: per
            fingerprint its description, ``entries``, ``hits``, ``misses`` and ``encoded``
            (texts sent through the encoder). A word-level fingerprint (description
            ``kind == "words"``) also has ``sentences`` (stored: one count over its key
            range, the only part that is not O(1)) and ``sentences_hits``,
            ``sentences_misses``, ``sentences_encoded``.

        Raises
        ------
        StoreError
            When the store cannot be read (locked by a stuck process, damaged, I/O error):
            the message says what is wrong.
        """
        try:
            cache = self.cache
            counts: dict[str, dict[str, int]] = {}
            for fp, name, value in self._sql(
                    "SELECT fp, name, value FROM bertfeat_counts").fetchall():
                counts.setdefault(fp, {})[name] = int(value)
            models = self._models()
            volume = int(cache.volume())
        except _store_errors() as exc:
            raise StoreError(f"bertfeat store {self.directory}: reading its statistics "
                             f"failed ({type(exc).__name__}: {exc})") from exc
        per_model = {}
        for fp in sorted(set(models) | {f for f, c in counts.items() if c.get("entries")}):
            mine = counts.get(fp, {})
            per_model[fp] = {
                "model": models.get(fp, {}),
                **{name: mine.get(name, 0) for name in ("entries", "hits", "misses",
                                                        "encoded")},
            }
            if (models.get(fp) or {}).get("kind") == "words":
                per_model[fp].update(self._sentence_stats(fp, mine))
        return {
            "directory": self.directory,
            "size_limit": self.limit,
            "bytes": volume,
            "entries": sum(c.get("entries", 0) for c in counts.values()),
            "dtype": self.dtype,
            "depth": self.depth,
            "models": per_model,
        }

    def _sentence_stats(self, fingerprint: str, counters: dict[str, int]) -> dict[str, int]:
        """Sentences stored under a word-level fingerprint (their index rows) + counters."""
        prefix = f"{fingerprint}/w/"
        try:  # index rows are ``{fp}/w/{digest}``; ``{fp}/w/{digest}/{layer}`` are vectors
            (stored,) = self._sql(
                "SELECT count(*) FROM Cache WHERE key >= ? AND key < ? "
                "AND instr(substr(key, ?), '/') = 0",
                (prefix, f"{fingerprint}/w0", len(prefix) + 1)).fetchone()
        except _store_errors() as exc:
            raise StoreError(f"bertfeat store {self.directory}: counting sentences failed "
                             f"({type(exc).__name__}: {exc})") from exc
        return {"sentences": int(stored),
                **{name: counters.get(name, 0) for name in (
                    "sentences_hits", "sentences_misses", "sentences_encoded")}}

    def _delete_index_rows(self, fingerprint: str) -> int:
        """Delete a fingerprint's index rows (a key range), a thousand per transaction."""
        cache = self.cache
        removed = 0
        while True:
            with cache.transact():
                rows = cache._sql(
                    "SELECT rowid, filename FROM Cache WHERE key >= ? AND key < ? AND raw = 1 "
                    "LIMIT 1000", (f"{fingerprint}/t/", f"{fingerprint}/t0")).fetchall()
                if not rows:
                    return removed
                cache._sql(f"DELETE FROM Cache WHERE rowid IN ({','.join('?' * len(rows))})",
                           tuple(r for r, _ in rows))
            for _, filename in rows:
                if filename is not None:
                    cache._disk.remove(filename)
            removed += len(rows)

    def clear(self, model: str | None = None) -> int:
        """Delete entries: all of them, or those of one model.

        Index rows go first, then blocks, then counters and the model description, so
        an interrupted ``clear`` leaves a store whose :meth:`stats` are exact, and a
        second ``clear`` finishes the job.

        Parameters
        ----------
        model : str, optional
            A fingerprint (or a prefix of one of at least 6 characters), or the model
            spec the entries were made with (``"default"``, a hub id, a directory).

        Returns
        -------
        int
            Number of rows removed.
        """
        cache = self.cache
        if model is None:
            removed = len(cache)
            cache.clear()
            with cache.transact():
                for table in ("bertfeat_counts", "bertfeat_blocks"):
                    cache._sql(f"DELETE FROM {table}")
                cache._sql("DELETE FROM bertfeat_meta WHERE key >= 'model/' "
                           "AND key < 'model0'")
            return removed
        models = self._models()
        known = set(models) | {row[0] for row in self._sql(
            "SELECT DISTINCT fp FROM bertfeat_counts").fetchall()}
        targets = [fp for fp in known
                   if models.get(fp, {}).get("model") == model
                   or models.get(fp, {}).get("path") == model
                   or (len(model) >= 6 and fp.startswith(model))]
        removed = 0
        for fp in targets:
            removed += self._delete_index_rows(fp)
            removed += cache.evict(fp)
            for name in ("hits", "misses", "encoded"):  # rows of older bertfeat versions
                cache.delete(f"stats/{fp}/{name}")
            with cache.transact():
                cache._sql("DELETE FROM bertfeat_counts WHERE fp = ?", (fp,))
                cache._sql("DELETE FROM bertfeat_blocks WHERE fp = ?", (fp,))
                cache._sql("DELETE FROM bertfeat_meta WHERE key = ?", (f"model/{fp}",))
        return removed
