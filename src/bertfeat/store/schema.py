"""The store's own SQLite schema (layout 2), error kinds and damage detection.

The store owns its database file (``store.db``) and every table in it; nothing is
shared with another library. Counters, block liveness and the byte total are kept by
SQLite triggers on the store's own tables, so they stay exact whatever removes a row
(eviction, ``clear``, an overwrite) and commit together with the batch that changed them.
"""

from __future__ import annotations

import re
import sqlite3

from .format import text_digest

__all__ = ["StoreError", "store_errors", "LAYOUT", "DB_NAME"]

#: version of the on-disk layout, kept in ``PRAGMA user_version`` of ``store.db``
#: (1 was a diskcache ``cache.db`` with bookkeeping tables beside diskcache's own; it is
#: migrated on first open, see :mod:`.legacy`)
LAYOUT = 2
#: the database file inside the store directory
DB_NAME = "store.db"
#: ``counts`` row (fingerprint ``""``) holding the bytes of every stored block
TOTAL = ""


class StoreError(RuntimeError):
    """A store operation failed: disk full, read-only location, lock timeout, damage.

    Raised by :meth:`FeatureStore.write` only; callers keep their results in memory
    and carry on without the store.
    """


#: SQLite result codes that mean the database file itself is damaged
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def _store_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the store is unusable right now", not a bug."""
    return (sqlite3.Error, OSError)


def store_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the store is unusable right now".

    For callers that report them, like the CLI.

    Returns
    -------
    tuple of type
        SQLite errors and OS errors.
    """
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


def _is_locked(exc: BaseException) -> bool:
    """True when ``exc`` is SQLite's "database is locked" / "busy"."""
    message = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in message
                                                           or "busy" in message)


def _lock_name(fingerprint: str) -> str:
    if re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", fingerprint):
        return fingerprint
    return text_digest(fingerprint)


def _bump(fp: str, name: str, amount: str) -> str:
    return (f"INSERT INTO counts (fp, name, value) VALUES ({fp}, '{name}', {amount}) "
            "ON CONFLICT (fp, name) DO UPDATE SET value = value + excluded.value;")


def _record_triggers(table: str, entries: str, encoded: str) -> tuple[str, ...]:
    """Triggers keeping ``entries``/``encoded`` and block liveness for ``table``."""
    return (
        f"CREATE TRIGGER {table}_insert AFTER INSERT ON {table} BEGIN "
        f"{_bump('new.fp', entries, '1')} {_bump('new.fp', encoded, '1')} "
        "UPDATE blocks SET live = live + 1 WHERE id = new.block; END",
        f"CREATE TRIGGER {table}_update AFTER UPDATE ON {table} BEGIN "
        f"{_bump('new.fp', encoded, '1')} "
        "UPDATE blocks SET live = live - 1 WHERE id = old.block; "
        "UPDATE blocks SET live = live + 1 WHERE id = new.block; END",
        f"CREATE TRIGGER {table}_delete AFTER DELETE ON {table} BEGIN "
        f"UPDATE counts SET value = value - 1 WHERE fp = old.fp AND name = '{entries}'; "
        "UPDATE blocks SET live = live - 1 WHERE id = old.block; END",
    )


#: one block = one written batch (of texts or of sentences): the unit of eviction, oldest
#: (smallest id) first. Deleting a block deletes everything in it.
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "CREATE TABLE counts (fp TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, "
    "PRIMARY KEY (fp, name)) WITHOUT ROWID",
    "CREATE TABLE blocks (id INTEGER PRIMARY KEY AUTOINCREMENT, fp TEXT NOT NULL, "
    "depth INTEGER NOT NULL, pooler INTEGER NOT NULL, live INTEGER NOT NULL DEFAULT 0, "
    "bytes INTEGER NOT NULL)",
    "CREATE INDEX blocks_fp ON blocks (fp)",
    "CREATE INDEX blocks_dead ON blocks (id) WHERE live <= 0",
    "CREATE TABLE texts (fp TEXT NOT NULL, digest TEXT NOT NULL, block INTEGER NOT NULL, "
    "row INTEGER NOT NULL, depth INTEGER NOT NULL, flags INTEGER NOT NULL, "
    "PRIMARY KEY (fp, digest)) WITHOUT ROWID",
    "CREATE INDEX texts_block ON texts (block)",
    "CREATE TABLE vectors (block INTEGER NOT NULL, layer INTEGER NOT NULL, data BLOB NOT NULL, "
    "PRIMARY KEY (block, layer))",
    "CREATE TABLE sentences (fp TEXT NOT NULL, digest TEXT NOT NULL, block INTEGER NOT NULL, "
    "head BLOB NOT NULL, PRIMARY KEY (fp, digest)) WITHOUT ROWID",
    "CREATE INDEX sentences_block ON sentences (block)",
    "CREATE TABLE pieces (block INTEGER NOT NULL, digest TEXT NOT NULL, "
    "layer INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (block, digest, layer))",
    *_record_triggers("texts", "entries", "encoded"),
    *_record_triggers("sentences", "sentences", "sentences_encoded"),
    f"CREATE TRIGGER blocks_insert AFTER INSERT ON blocks BEGIN "
    f"{_bump(repr(TOTAL), 'bytes', 'new.bytes')} END",
    "CREATE TRIGGER blocks_delete AFTER DELETE ON blocks BEGIN "
    "DELETE FROM texts WHERE block = old.id; DELETE FROM sentences WHERE block = old.id; "
    "DELETE FROM vectors WHERE block = old.id; DELETE FROM pieces WHERE block = old.id; "
    f"UPDATE counts SET value = value - old.bytes WHERE fp = {TOTAL!r} AND name = 'bytes'; "
    "END",
    f"PRAGMA user_version = {LAYOUT}",
)


def ensure_schema(con: sqlite3.Connection, directory: str) -> None:
    """Create the tables and triggers of a new database; refuse a newer layout.

    Runs inside the caller's write transaction.

    Raises
    ------
    StoreError
        When the file was written by a newer bertfeat (a higher layout version).
    """
    (version,) = con.execute("PRAGMA user_version").fetchone()
    if version == LAYOUT:
        return
    if version > LAYOUT:
        raise StoreError(
            f"bertfeat store {directory}: {DB_NAME} has layout {version}, written by a newer "
            f"bertfeat (this one reads layout {LAYOUT}). Upgrade bertfeat, or use another "
            "store (cache=<directory>, or cache=False).")
    tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if tables:
        raise StoreError(
            f"bertfeat store {directory}: {DB_NAME} is not a bertfeat store (it holds "
            "other tables). Move it away, or use another store directory.")
    for statement in _SCHEMA:
        con.execute(statement)
