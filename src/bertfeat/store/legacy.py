"""Migration of a store written in layout 1 (bertfeat's first on-disk layout).

Layout 1 kept every record in a diskcache ``cache.db``: index rows ``{fp}/t/{digest}``
(:data:`~.format._INDEX`), block layers ``{fp}/b/{block}/{layer}``, word records
``{fp}/w/{digest}[/{layer}]``, and bookkeeping in ``bertfeat_*`` tables beside
diskcache's own (or, older still, in ``stats/…``, ``{fp}/model`` and ``meta/…`` rows).
The vectors mean the same in both layouts (fingerprints are unchanged), so a store of
layout 1 is copied into ``store.db`` once, on first open, under a file lock, in one
transaction; then the old files are removed. The old file is read through diskcache's
public API with a ``Disk`` that never unpickles.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import warnings
from pathlib import Path

from .database import Database, file_lock
from .format import _INDEX, _WORD_INDEX, ROW_BYTES
from .schema import StoreError

__all__ = ["LEGACY_NAME", "migrate_legacy"]

#: the database file of layout 1
LEGACY_NAME = "cache.db"
_COUNTERS = ("hits", "misses", "encoded", "sentences_hits", "sentences_misses",
             "sentences_encoded")
#: sentences of layout 1 per block of layout 2
_SENTENCES_PER_BLOCK = 256


def _safe_disk_class():
    """A diskcache ``Disk`` that refuses to pickle or unpickle anything."""
    import diskcache

    class SafeDisk(diskcache.Disk):
        """diskcache ``Disk`` for untrusted stores: no pickle in either direction."""

        def get(self, key, raw):
            if not raw:
                return None  # a pickled key: never unpickled
            return super().get(key, raw)

        def fetch(self, mode, filename, value, read):
            if mode == diskcache.core.MODE_PICKLE:
                warnings.warn(
                    "bertfeat store: ignored a pickled value (a bertfeat store never holds "
                    "one; the store may have been tampered with)", RuntimeWarning,
                    stacklevel=2)
                return None
            return super().fetch(mode, filename, value, read)

    return SafeDisk


def migrate_legacy(database: Database) -> None:
    """Copy a layout-1 store in ``database``'s directory into ``database``, then remove it.

    Parameters
    ----------
    database : Database
        The opened layout-2 database of the same directory.

    Raises
    ------
    StoreError
        When the old store cannot be read or removed; the message says what to do.
    """
    directory = Path(database.directory)
    legacy = directory / LEGACY_NAME
    with file_lock(directory / ".migrate.lock"):
        if not legacy.exists():  # another process migrated it meanwhile
            return
        try:
            _migrate(database, directory)
        except Exception as exc:
            raise StoreError(
                f"bertfeat store {directory}: it holds a store of an older bertfeat "
                f"({LEGACY_NAME}, layout 1) that could not be migrated "
                f"({type(exc).__name__}: {exc}). Its vectors are only a cache: delete "
                f"{LEGACY_NAME}* from that directory (they are encoded again as needed), "
                "or use another store (cache=<directory>, or cache=False).") from exc


def _migrate(database: Database, directory: Path) -> None:
    import diskcache

    legacy = directory / LEGACY_NAME
    identity = f"{legacy.stat().st_ino}:{legacy.stat().st_mtime_ns}"
    done = database.execute("SELECT value FROM meta WHERE key = 'migrated/layout1'").fetchone()
    old = diskcache.Cache(str(directory), disk=_safe_disk_class(), timeout=database.timeout)
    try:
        if not done or done[0] != identity:
            counters, meta = _old_bookkeeping(legacy)
            with database.write() as con:
                _copy(con, old, counters, meta)
                con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            ("migrated/layout1", identity))
        old.clear()  # its value files
    finally:
        old.close()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{legacy}{suffix}")


def _old_bookkeeping(legacy: Path) -> tuple[dict, dict]:
    """Counters and metadata of layout 1's own ``bertfeat_*`` tables (if any)."""
    counters: dict[tuple[str, str], int] = {}
    meta: dict[str, object] = {}
    con = sqlite3.connect(f"file:{legacy}?mode=ro", uri=True)
    try:
        tables = {name for (name,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "bertfeat_counts" in tables:
            for fp, name, value in con.execute("SELECT fp, name, value FROM bertfeat_counts"):
                counters[fp, name] = int(value)
        if "bertfeat_meta" in tables:
            meta.update(con.execute("SELECT key, value FROM bertfeat_meta").fetchall())
    finally:
        con.close()
    return counters, meta


def _copy(con: sqlite3.Connection, old, counters: dict, meta: dict) -> None:
    """Every usable record of ``old`` into the layout-2 tables of ``con``."""
    index: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    layers: dict[tuple[str, str], list[str]] = {}
    sentences: dict[str, list[str]] = {}
    for key in old.iterkeys():
        if not isinstance(key, str):
            continue
        parts = key.split("/")
        value = None
        if len(parts) == 3 and parts[1] == "t":
            value = old.get(key)
            if isinstance(value, bytes) and len(value) == _INDEX.size:
                index.setdefault((parts[0], value[:16].hex()), []).append((parts[2], value))
        elif len(parts) == 4 and parts[1] == "b":
            layers.setdefault((parts[0], parts[2]), []).append(parts[3])
        elif len(parts) == 3 and parts[1] == "w":
            sentences.setdefault(parts[0], []).append(parts[2])
        elif len(parts) == 3 and parts[0] == "stats" and parts[2] in _COUNTERS:
            value = old.get(key)
            if isinstance(value, int):
                counters.setdefault((parts[1], parts[2]), value)
        elif len(parts) == 2 and parts[1] == "model":
            meta.setdefault(f"model/{parts[0]}", old.get(key))
        elif parts[0] == "meta" and len(parts) >= 2:
            meta.setdefault(key[len("meta/"):], old.get(key))
    for (fp, block), rows in index.items():
        _copy_block(con, old, fp, block, layers.get((fp, block), []), rows)
    for fp, digests in sentences.items():
        for start in range(0, len(digests), _SENTENCES_PER_BLOCK):
            _copy_sentences(con, old, fp, digests[start:start + _SENTENCES_PER_BLOCK])
    for (fp, name), value in counters.items():
        if name in _COUNTERS:  # ``entries``/``sentences`` were just counted by triggers
            con.execute("INSERT OR REPLACE INTO counts (fp, name, value) VALUES (?, ?, ?)",
                        (fp, name, value))
    con.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    [(k, v) for k, v in meta.items() if isinstance(v, (str, int))])


def _copy_block(con, old, fp: str, block: str, names: list[str], rows: list) -> None:
    blobs = {}
    for name in names:
        value = old.get(f"{fp}/b/{block}/{name}")
        if isinstance(value, bytes) and (name == "P" or name.isdigit()):
            blobs[-1 if name == "P" else int(name)] = value
    if not blobs:
        return  # evicted: its index rows would only be misses
    size = sum(len(b) for b in blobs.values()) + len(rows) * ROW_BYTES
    new = con.execute("INSERT INTO blocks (fp, depth, pooler, bytes) VALUES (?, ?, ?, ?)",
                      (fp, max(blobs), int(-1 in blobs), size)).lastrowid
    con.executemany("INSERT INTO vectors (block, layer, data) VALUES (?, ?, ?)",
                    [(new, layer, blob) for layer, blob in blobs.items()])
    entries = []
    for digest, value in rows:
        _, row, depth, flags = _INDEX.unpack(value)
        entries.append((fp, digest, new, row, depth, flags))
    con.executemany("INSERT OR IGNORE INTO texts (fp, digest, block, row, depth, flags) "
                    "VALUES (?, ?, ?, ?, ?, ?)", entries)


def _copy_sentences(con, old, fp: str, digests: list[str]) -> None:
    records = []
    for digest in digests:
        head = old.get(f"{fp}/w/{digest}")
        if not isinstance(head, bytes) or len(head) < _WORD_INDEX.size:
            continue
        depth = _WORD_INDEX.unpack_from(head)[1]
        pieces = [old.get(f"{fp}/w/{digest}/{layer}") for layer in range(depth + 1)]
        if all(isinstance(p, bytes) for p in pieces):
            records.append((digest, head, pieces))
    if not records:
        return
    size = sum(len(h) + sum(map(len, p)) + ROW_BYTES for _, h, p in records)
    depth = max(len(p) for _, _, p in records) - 1
    new = con.execute("INSERT INTO blocks (fp, depth, pooler, bytes) VALUES (?, ?, 0, ?)",
                      (fp, depth, size)).lastrowid
    con.executemany("INSERT INTO pieces (block, digest, layer, data) VALUES (?, ?, ?, ?)",
                    [(new, digest, layer, blob) for digest, _, pieces in records
                     for layer, blob in enumerate(pieces)])
    con.executemany("INSERT OR IGNORE INTO sentences (fp, digest, block, head) "
                    "VALUES (?, ?, ?, ?)", [(fp, digest, new, head)
                                            for digest, head, _ in records])

