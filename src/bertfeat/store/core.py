"""``FeatureStore``: opening, locking, bookkeeping and clearing; text and word records
come from :mod:`.texts` and :mod:`.words`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

from .format import STORE_DTYPES
from .schema import (
    StoreError,
    _bounded_cache_class,
    _check_not_locked,
    _ensure_schema,
    _file_identity,
    _is_corruption,
    _lock_name,
    _repair_lock,
    _safe_disk_class,
    _store_errors,
)
from .texts import TextRecords
from .words import WordRecords

__all__ = ["FeatureStore", "default_cache_dir", "DEFAULT_SIZE_LIMIT", "AUTO_LIMIT_SHARE",
           "LOCK_TIMEOUT", "STORE_DEPTHS"]

#: the smallest automatic size limit (``size_limit=None``), and the limit before it existed:
#: 8 GiB; beyond the limit the least recently stored rows go first
DEFAULT_SIZE_LIMIT = 8 * 2**30
#: share of the disk space available to a store (its database + free space) that an
#: automatic size limit takes, when that is more than :data:`DEFAULT_SIZE_LIMIT`
AUTO_LIMIT_SHARE = 0.5
#: seconds to wait for another process's write transaction before giving up on the store
#: (a write batch holds it for milliseconds; a stuck or damaged holder must not cost minutes)
LOCK_TIMEOUT = 10.0

#: how deep misses are encoded: every layer (any later layer request is a read), or only
#: as deep as the call needs
STORE_DEPTHS = ("full", "needed")



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



class FeatureStore(TextRecords, WordRecords):
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
                self._cache = self._open_when_free()
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise
                self._recover(exc)
                self._cache = self._open_when_free()
        return self._cache

    def _open_when_free(self):
        """:meth:`_open`, tried again while another process's set-up holds the database.

        Processes that open one store at the same moment (the workers of a search or a
        Dask cluster) can meet a "database is locked" that SQLite returns at once rather
        than after its busy timeout (a read transaction that must become a write one).
        It is transient: the open is tried again, with short growing pauses, for at most
        ``timeout`` seconds, then refused with :class:`StoreError`.
        """
        deadline = time.monotonic() + self._timeout()
        pause = 0.01
        while True:
            try:
                return self._open()
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if "locked" not in message and "busy" not in message:
                    raise
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"bertfeat store {self.directory}: the database has been locked by "
                        f"another process for more than {self._timeout():g} s ({exc}); "
                        "use another store (cache=<directory>) or cache=False") from exc
                time.sleep(pause)
                pause = min(2 * pause, 0.25)

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
