"""``FeatureStore``: opening, recovery from damage, the encode lock and pickling; text and
word records come from :mod:`.texts` and :mod:`.words`, counters and clearing from
:mod:`.bookkeeping`."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

from .bookkeeping import Bookkeeping
from .database import Database, file_lock
from .format import STORE_DTYPES
from .legacy import LEGACY_NAME, migrate_legacy
from .schema import DB_NAME, StoreError, _is_corruption, _lock_name
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



def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


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



class FeatureStore(TextRecords, WordRecords, Bookkeeping):
    """On-disk store of pooled encoder outputs, shared safely by processes.

    Parameters
    ----------
    directory : str or Path, optional
        Where the store lives. Default: :func:`default_cache_dir`.
    size_limit : int, optional
        Bytes (vectors plus index rows, counted as they are written: within a few percent
        of the file's size) before the least recently stored batches are evicted. Default
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
    def cache(self) -> Database:
        """The store's database (opened on first use, in each thread and process).

        A database file that SQLite finds damaged ("file is not a database", "database
        disk image is malformed") is moved aside to ``store.db.corrupt-<time>-<pid>``
        with a ``RuntimeWarning``, and an empty store takes its place. A database another
        process keeps locked for longer than ``timeout`` raises :class:`StoreError`. A
        store written by bertfeat's first layout (a diskcache ``cache.db``) is migrated
        into the current one, once, on first open (:mod:`.legacy`).
        """
        if self._cache is None:
            directory = Path(self.directory)
            directory.mkdir(parents=True, exist_ok=True)
            self._db_identity = _file_identity(directory / DB_NAME)
            database = Database(self.directory, self._timeout())
            try:
                database.connection()
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise
                self._recover(exc)
                return self.cache
            if self._db_identity is None:  # created just now
                self._db_identity = _file_identity(directory / DB_NAME)
            if (directory / LEGACY_NAME).exists():
                try:
                    migrate_legacy(database)
                except BaseException:
                    database.close()
                    raise
            self._cache = database
        return self._cache

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
                used = sum(directory.joinpath(f"{DB_NAME}{s}").stat().st_size
                           for s in ("", "-wal") if directory.joinpath(f"{DB_NAME}{s}").exists())
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
        db = directory / DB_NAME
        moved = None
        try:
            with file_lock(directory / ".repair.lock"):
                if damaged is not None and _file_identity(db) == damaged:
                    stamp = time.strftime("%Y%m%d-%H%M%S")
                    moved = db.with_name(f"{DB_NAME}.corrupt-{stamp}-{os.getpid()}")
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

    # -- cross-process coordination ------------------------------------------------------
    @contextlib.contextmanager
    def encode_lock(self, fingerprint: str):
        """Hold the encode lock of one fingerprint (exclusive across processes and threads).

        Taken around "re-read the misses, encode the rest, write them", so that workers
        missing the same texts at the same time encode each of them once: the others
        wait, then find the vectors stored. It is a ``filelock.FileLock`` on
        ``locks/{fingerprint}.lock`` in the store directory (an OS ``flock`` on POSIX): a
        waiter polls every 50 ms (no measurable CPU), and the OS releases the lock of a
        process that dies, even by SIGKILL. Different fingerprints have different locks
        and never wait for each other. Where the lock cannot be taken (a read-only
        directory) the call proceeds without it: results are the same, a text may then
        be encoded twice.

        Parameters
        ----------
        fingerprint : str
            The fingerprint whose misses are about to be encoded.
        """
        path = Path(self.directory) / "locks" / f"{_lock_name(fingerprint)}.lock"
        with file_lock(path):
            yield
