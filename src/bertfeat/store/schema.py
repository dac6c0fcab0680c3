"""The store's SQLite side: its own bookkeeping tables and triggers, opening a
database without stalling on a stuck holder, recovery from damage, error kinds."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
import warnings
from pathlib import Path

from .format import _INDEX, text_digest

__all__ = ["StoreError", "store_errors"]


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
