"""The store's SQLite connection: WAL, a bounded busy timeout, one connection per thread,
explicit read and write transactions, and file locks (``filelock``) between processes."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .schema import DB_NAME, StoreError, _is_locked, ensure_schema

__all__ = ["Database", "file_lock"]

#: bytes the write-ahead log is cut back to after a checkpoint (a large batch grows it)
_WAL_LIMIT = 64 * 2**20


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = -1) -> Iterator[bool]:
    """Hold an exclusive cross-process lock on ``path`` (``filelock.FileLock``).

    On POSIX it is an ``flock`` on the file, which the OS releases when its process
    dies (even by SIGKILL); the file stays in place. A waiter polls every 50 ms
    (negligible CPU). Each call takes a new lock object, so two threads of one process
    exclude each other too, and a nested call on the same path from the same thread
    would wait for itself (the store never nests them).

    Parameters
    ----------
    path : Path
        The lock file (created if missing).
    timeout : float, default=-1
        Seconds to wait; ``-1`` waits as long as it takes.

    Yields
    ------
    bool
        True when the lock is held; False when it could not be taken (a read-only or
        missing directory): the caller then proceeds without it.
    """
    from filelock import FileLock

    lock = FileLock(str(path), timeout=timeout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


class Database:
    """One store's SQLite database: a connection per thread, opened on first use.

    Parameters
    ----------
    directory : str
        The store directory (holds :data:`~.schema.DB_NAME`).
    timeout : float
        Seconds any statement waits for another process's write lock (SQLite's busy
        timeout), and the bound on retrying an open that meets a transient lock.
    """

    def __init__(self, directory: str, timeout: float) -> None:
        self.directory = directory
        self.path = Path(directory) / DB_NAME
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._pid = os.getpid()

    # -- connections -------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened, and the schema ensured, on first use)."""
        if self._pid != os.getpid():  # a forked child never shares its parent's handles
            self._local, self._all, self._pid = threading.local(), [], os.getpid()
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._open_when_free()
            self._local.con = con
            with self._guard:
                self._all.append(con)
        return con

    def _open_when_free(self) -> sqlite3.Connection:
        """:meth:`_open`, tried again while another process's set-up holds the database.

        Processes that open one store at the same moment (the workers of a search or a
        Dask cluster) can meet a "database is locked" that SQLite returns at once rather
        than after its busy timeout (switching a new file to WAL needs every other
        connection gone). It is transient: the open is tried again, with short growing
        pauses, for at most ``timeout`` seconds, then refused with :class:`StoreError`.
        """
        deadline = time.monotonic() + self.timeout
        pause = 0.01
        while True:
            try:
                return self._open()
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc):
                    raise
                if time.monotonic() + pause > deadline:
                    raise StoreError(
                        f"bertfeat store {self.directory}: the database has been locked by "
                        f"another process for more than {self.timeout:g} s ({exc}). If no "
                        "bertfeat process is running, the file may be damaged or held by a "
                        "stuck process: stop it, or use another store (cache=<directory>, "
                        "or cache=False).") from exc
                time.sleep(pause)
                pause = min(2 * pause, 0.25)

    def _open(self) -> sqlite3.Connection:
        new = not self.path.exists() or self.path.stat().st_size == 0
        con = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None,
                              check_same_thread=False)
        try:
            if new:  # freed pages go back to the file system (settable before any table)
                con.execute("PRAGMA auto_vacuum = FULL")
            # the write lock first: a stuck holder costs ``timeout``, and nothing of a
            # possibly damaged file is read before it is ours
            con.execute("BEGIN IMMEDIATE")
            try:
                ensure_schema(con, self.directory)
                # a write that changes nothing: a file SQLite may only read (read-only
                # file, directory or mount) is refused here, not at the first batch
                con.execute("DELETE FROM meta WHERE 0")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode = wal")
            con.execute("PRAGMA synchronous = NORMAL")
            con.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
        except BaseException:
            con.close()
            raise
        return con

    def close(self) -> None:
        """Close every connection of this process (they reopen on next use)."""
        with self._guard:
            connections, self._all = self._all, []
        self._local = threading.local()
        for con in connections:
            with contextlib.suppress(sqlite3.Error):
                con.close()

    # -- transactions ------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): all of it commits, or none of it."""
        con = self.connection()
        if con.in_transaction:  # nested: part of the caller's transaction
            yield con
            return
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement in it sees one snapshot (WAL: no waiting)."""
        con = self.connection()
        if con.in_transaction:
            yield con
            return
        con.execute("BEGIN")
        try:
            yield con
        finally:
            with contextlib.suppress(sqlite3.Error):
                con.execute("COMMIT")

    def execute(self, statement: str, args: tuple = ()) -> sqlite3.Cursor:
        """Run one statement on this thread's connection (autocommit)."""
        return self.connection().execute(statement, args)

    def volume(self) -> int:
        """Bytes of the database file (its pages; the write-ahead log is transient)."""
        count = self.execute("PRAGMA page_count").fetchone()[0]
        size = self.execute("PRAGMA page_size").fetchone()[0]
        return int(count) * int(size)
