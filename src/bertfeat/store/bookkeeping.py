"""Bookkeeping of :class:`FeatureStore`: metadata, counters, statistics, eviction and
clearing, all on the store's own tables (see :mod:`.schema`)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from .schema import TOTAL, StoreError, _store_errors

__all__ = ["Bookkeeping"]

_COUNTERS = ("entries", "hits", "misses", "encoded")
_SENTENCE_COUNTERS = ("sentences", "sentences_hits", "sentences_misses", "sentences_encoded")
#: blocks deleted per transaction by ``clear(model=...)`` and by eviction
_BATCH = 64


class Bookkeeping:
    """Metadata, counters, statistics, eviction and clearing (a mixin of the store)."""

    # -- small metadata ----------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        """Read a small metadata value.

        Parameters
        ----------
        key : str
            The name it was written under.

        Returns
        -------
        str, int or None
            None when absent or unreadable.
        """
        try:
            row = self.cache.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except (*_store_errors(), StoreError):
            return None
        value = row[0] if row else None
        return value if isinstance(value, (str, int)) else None

    def set_meta(self, key: str, value: str | int) -> None:
        """Write a small metadata value; best effort (a full or read-only store skips it).

        Metadata is never evicted by the size limit.

        Parameters
        ----------
        key : str
            Its name.
        value : str or int
            Its value.
        """
        if not isinstance(value, (str, int)):
            raise TypeError("bertfeat store metadata values are str or int")
        with contextlib.suppress(*_store_errors(), StoreError), self.cache.write() as con:
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def register(self, fingerprint: str, description: dict) -> None:
        """Remember what a fingerprint stands for (shown by :meth:`stats`); best effort.

        The description is bookkeeping, never evicted by the size limit, so
        ``clear(model=...)`` finds the model's entries however full the store is.

        Parameters
        ----------
        fingerprint : str
            The fingerprint.
        description : dict
            JSON-serialisable description (model, path, kind ...).
        """
        text = json.dumps(description, sort_keys=True)
        if self.get_meta(f"model/{fingerprint}") != text:
            self.set_meta(f"model/{fingerprint}", text)

    # -- counters ------------------------------------------------------------------------
    def _count(self, fingerprint: str, **amounts: int) -> None:
        """Add to counters, in one transaction; best effort (never fails a read)."""
        rows = [(fingerprint, name, int(amount)) for name, amount in amounts.items() if amount]
        if rows:
            with contextlib.suppress(*_store_errors(), StoreError), self.cache.write() as con:
                con.executemany("INSERT INTO counts (fp, name, value) VALUES (?, ?, ?) ON "
                                "CONFLICT (fp, name) DO UPDATE SET value = value + "
                                "excluded.value", rows)

    def _counters(self, fingerprint: str, names: tuple[str, ...]) -> dict[str, int]:
        try:
            rows = self.cache.execute("SELECT name, value FROM counts WHERE fp = ?",
                                      (fingerprint,)).fetchall()
        except _store_errors() as exc:
            raise StoreError(f"bertfeat store {self.directory}: reading counters failed "
                             f"({type(exc).__name__}: {exc})") from exc
        values = dict.fromkeys(names, 0)
        values.update({name: int(value) for name, value in rows if name in values})
        return values

    def counts(self, fingerprint: str) -> dict[str, int]:
        """``entries``, ``hits``, ``misses`` and ``encoded`` of one fingerprint (O(1)).

        Parameters
        ----------
        fingerprint : str
            A featurizer's ``fingerprint_``.

        Returns
        -------
        dict of str -> int

        Raises
        ------
        StoreError
            When the store cannot be read.
        """
        return self._counters(fingerprint, _COUNTERS)

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

    def _models(self) -> dict[str, dict]:
        models = {}
        rows = self.cache.execute("SELECT key, value FROM meta WHERE key >= 'model/' "
                                  "AND key < 'model0'").fetchall()
        for key, value in rows:
            try:
                models[key[len("model/"):]] = json.loads(value or "{}")
            except (TypeError, ValueError):
                models[key[len("model/"):]] = {}
        return models

    def stats(self) -> dict:
        """Usage of the store, from counters (no key is scanned: O(models), not O(entries)).

        Returns
        -------
        dict
            ``directory``, ``size_limit`` (in effect), ``bytes`` (on disk), ``entries``
            (texts stored, all models), ``dtype``, ``depth`` and ``models``: per
            fingerprint its description, ``entries``, ``hits``, ``misses`` and ``encoded``
            (texts sent through the encoder). A word-level fingerprint (description
            ``kind == "words"``) also has ``sentences`` (stored), ``sentences_hits``,
            ``sentences_misses`` and ``sentences_encoded``.

        Raises
        ------
        StoreError
            When the store cannot be read (locked by a stuck process, damaged, I/O error):
            the message says what is wrong.
        """
        try:
            counts: dict[str, dict[str, int]] = {}
            for fp, name, value in self.cache.execute(
                    "SELECT fp, name, value FROM counts WHERE fp != ?", (TOTAL,)).fetchall():
                counts.setdefault(fp, {})[name] = int(value)
            models = self._models()
            volume = self.cache.volume()
        except _store_errors() as exc:
            raise StoreError(f"bertfeat store {self.directory}: reading its statistics "
                             f"failed ({type(exc).__name__}: {exc})") from exc
        per_model = {}
        for fp in sorted(set(models) | {f for f, c in counts.items()
                                        if c.get("entries") or c.get("sentences")}):
            mine = counts.get(fp, {})
            described = models.get(fp, {})
            names = _COUNTERS + (_SENTENCE_COUNTERS if described.get("kind") == "words"
                                 else ())
            per_model[fp] = {"model": described,
                             **{name: mine.get(name, 0) for name in names}}
        return {
            "directory": self.directory,
            "size_limit": self.limit,
            "bytes": volume,
            "entries": sum(c.get("entries", 0) for c in counts.values()),
            "dtype": self.dtype,
            "depth": self.depth,
            "models": per_model,
        }

    # -- blocks, eviction, clearing --------------------------------------------------------
    @staticmethod
    def _new_block(con, fingerprint: str, depth: int, pooler: bool, size: int) -> int:
        return con.execute("INSERT INTO blocks (fp, depth, pooler, bytes) VALUES (?, ?, ?, ?)",
                           (fingerprint, depth, int(pooler), size)).lastrowid

    def _make_room(self, con, keep: int) -> None:
        """Inside a write: delete blocks no row points into any more (all overwritten),
        then the least recently stored blocks while the store is over its size limit.

        Deleting a block deletes its rows (a trigger), and the triggers keep every
        counter exact. Block ``keep`` (the batch being written) stays.
        """
        con.execute("DELETE FROM blocks WHERE live <= 0 AND id != ?", (keep,))
        row = con.execute("SELECT value FROM counts WHERE fp = ? AND name = 'bytes'",
                          (TOTAL,)).fetchone()
        excess = (int(row[0]) if row else 0) - self.limit
        while excess > 0:
            victims = []
            for block, size in con.execute("SELECT id, bytes FROM blocks WHERE id != ? "
                                           "ORDER BY id LIMIT ?", (keep, _BATCH)).fetchall():
                victims.append(block)
                excess -= size
                if excess <= 0:
                    break
            if not victims:
                return
            con.execute(f"DELETE FROM blocks WHERE id IN ({','.join('?' * len(victims))})",
                        victims)

    def _delete_blocks(self, where: str, args: tuple) -> int:
        """Delete the blocks matching ``where``, :data:`_BATCH` per transaction; returns
        the rows they held (text and sentence index rows, vector rows)."""
        removed = 0
        while True:
            with self.cache.write() as con:
                ids = [b for (b,) in con.execute(
                    f"SELECT id FROM blocks WHERE {where} LIMIT {_BATCH}", args).fetchall()]
                if not ids:
                    return removed
                marks = ",".join("?" * len(ids))
                for table in ("texts", "sentences", "vectors", "pieces"):
                    removed += con.execute(f"SELECT count(*) FROM {table} WHERE block IN "
                                           f"({marks})", ids).fetchone()[0]
                con.execute(f"DELETE FROM blocks WHERE id IN ({marks})", ids)

    def clear(self, model: str | None = None) -> int:
        """Delete entries: all of them, or those of one model.

        Each transaction deletes whole blocks with their rows and counts, so an
        interrupted ``clear`` leaves a store whose :meth:`stats` are exact, and a second
        ``clear`` finishes the job.

        Parameters
        ----------
        model : str, optional
            A fingerprint (or a prefix of one of at least 6 characters), or the model
            spec the entries were made with (``"default"``, a hub id, a directory).

        Returns
        -------
        int
            Number of database rows removed (index rows and vector rows).
        """
        if model is None:
            removed = self._delete_blocks("1", ())
            with self.cache.write() as con:
                con.execute("DELETE FROM counts WHERE fp != ?", (TOTAL,))
                con.execute("DELETE FROM meta WHERE key >= 'model/' AND key < 'model0'")
            return removed
        models = self._models()
        known = set(models) | {row[0] for row in self.cache.execute(
            "SELECT DISTINCT fp FROM counts WHERE fp != ?", (TOTAL,)).fetchall()}
        targets = [fp for fp in known
                   if models.get(fp, {}).get("model") == model
                   or models.get(fp, {}).get("path") == model
                   or (len(model) >= 6 and fp.startswith(model))]
        removed = 0
        for fp in targets:
            removed += self._delete_blocks("fp = ?", (fp,))
            with self.cache.write() as con:
                con.execute("DELETE FROM counts WHERE fp = ?", (fp,))
                con.execute("DELETE FROM meta WHERE key = ?", (f"model/{fp}",))
        return removed
