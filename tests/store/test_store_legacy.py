"""Stores written in layout 1 (a diskcache ``cache.db``, bertfeat before its own
``store.db``) are migrated on first open and read back right, or refused with a
:class:`StoreError` that says what to do; a newer layout is refused, never misread.

:func:`write_layout1` writes a layout-1 store the way bertfeat did (keys, values,
``bertfeat_*`` tables), from the records of a layout-2 store, so the vectors of the old
store are real encoder outputs of the tiny model.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest

from bertfeat import BertFeaturizer, BertWordFeaturizer, FeatureStore
from bertfeat.store import StoreError, text_digest
from bertfeat.store.format import _INDEX

from ..equality import assert_same_computation

TEXTS = ["good film", "bad plot", "what a boring story", "i love this movie",
         "a film", "the plot thickens", "boring", "lovely"]
SENTENCES = [["good", "film"], ["bad", "plot"], ["a", "boring", "story"]]

#: layout 1's own tables, as bertfeat created them beside diskcache's ``Cache`` table
_LAYOUT1_TABLES = (
    "CREATE TABLE bertfeat_counts (fp TEXT NOT NULL, name TEXT NOT NULL, "
    "value INTEGER NOT NULL, PRIMARY KEY (fp, name)) WITHOUT ROWID",
    "CREATE TABLE bertfeat_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
)


class _Payload:
    """Unpickling it writes a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def featurizer(model: str, cache, **kwargs) -> BertFeaturizer:
    kwargs.setdefault("precision", "fp32")
    return BertFeaturizer(model=model, cache=cache, **kwargs)


def write_layout1(source: Path, target: Path) -> dict:
    """Write the records of the layout-2 store ``source`` as a layout-1 store ``target``.

    Returns the counters written (per fingerprint).
    """
    import diskcache

    con = sqlite3.connect(source / "store.db")
    old = diskcache.Cache(str(target))
    counters: dict = {}
    try:
        for block, fp, _depth in con.execute("SELECT id, fp, depth FROM blocks"):
            block_id = block.to_bytes(16, "big")
            for layer, data in con.execute("SELECT layer, data FROM vectors WHERE block = ?",
                                           (block,)):
                name = "P" if layer == -1 else str(layer)
                old.set(f"{fp}/b/{block_id.hex()}/{name}", data, tag=fp)
            for digest, row, depth, flags in con.execute(
                    "SELECT digest, row, depth, flags FROM texts WHERE block = ?", (block,)):
                old.set(f"{fp}/t/{digest}", _INDEX.pack(block_id, row, depth, flags), tag=fp)
            for digest, head in con.execute(
                    "SELECT digest, head FROM sentences WHERE block = ?", (block,)):
                old.set(f"{fp}/w/{digest}", head, tag=fp)
                for layer, data in con.execute("SELECT layer, data FROM pieces WHERE block = ? "
                                               "AND digest = ?", (block, digest)):
                    old.set(f"{fp}/w/{digest}/{layer}", data, tag=fp)
        old.close()
        with sqlite3.connect(target / "cache.db") as legacy:
            for statement in _LAYOUT1_TABLES:
                legacy.execute(statement)
            for fp, name, value in con.execute("SELECT fp, name, value FROM counts "
                                               "WHERE fp != ''"):
                legacy.execute("INSERT INTO bertfeat_counts VALUES (?, ?, ?)",
                               (fp, name, value))
                counters.setdefault(fp, {})[name] = value
            legacy.executemany("INSERT INTO bertfeat_meta VALUES (?, ?)",
                               con.execute("SELECT key, value FROM meta "
                                           "WHERE key NOT GLOB 'migrated/*'").fetchall())
    finally:
        con.close()
    return counters


def test_a_layout1_store_is_migrated_and_read_back_without_encoding(tiny_model, tmp_path,
                                                                    encode_spy):
    fresh = tmp_path / "fresh"
    reference = featurizer(tiny_model, str(fresh), layers=[0, -1]).fit(TEXTS).transform(TEXTS)
    words = BertWordFeaturizer(model=tiny_model, layers=2, cache=str(fresh),
                               precision="fp32")
    word_reference = words.fit_transform(SENTENCES)
    FeatureStore(fresh).close()
    old_dir = tmp_path / "old"
    counters = write_layout1(fresh, old_dir)
    assert not (old_dir / "store.db").exists() and (old_dir / "cache.db").exists()
    encode_spy.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = featurizer(tiny_model, str(old_dir), layers=[0, -1]).fit(TEXTS).transform(
            TEXTS)
        word_again = BertWordFeaturizer(model=tiny_model, layers=2, cache=str(old_dir),
                                        precision="fp32").fit_transform(SENTENCES)
    assert encode_spy == []  # every text and sentence read from the migrated store
    assert_same_computation(again, reference)
    assert_same_computation(word_again, word_reference)
    store = FeatureStore(old_dir)
    stats = store.stats()
    assert stats["entries"] == len(TEXTS)
    for fp, before in counters.items():
        after = stats["models"][fp]
        for name in ("encoded", "sentences", "sentences_encoded"):
            if name in before:
                assert after[name] == before[name], (fp, name)
        assert after["hits"] >= before.get("hits", 0)  # kept, then counted on
        assert after["model"]  # the description came along
    # the old files are gone: the migration ran once and freed its space
    assert not list(old_dir.glob("cache.db*"))
    assert not [p for p in old_dir.rglob("*.val")]


def test_a_layout1_store_with_planted_pickles_never_runs_them(tiny_model, tmp_path):
    """A pickle planted in the old store (in the database and as a large value file) is
    ignored with a warning by the migration; the payload is live (shown on a copy)."""
    import diskcache

    fresh = tmp_path / "fresh"
    reference = featurizer(tiny_model, str(fresh)).fit(TEXTS).transform(TEXTS)
    FeatureStore(fresh).close()
    old_dir = tmp_path / "old"
    write_layout1(fresh, old_dir)
    marker = tmp_path / "marker"
    plain = diskcache.Cache(str(old_dir))
    index_key = next(k for k in plain.iterkeys() if "/t/" in k)
    block_key = next(k for k in plain.iterkeys() if "/b/" in k and k.endswith("/3"))
    plain.set(index_key, _Payload(str(marker)))
    plain.set(block_key, (_Payload(str(marker)), b"x" * 3_000_000))  # a file value
    plain.close()
    planted = tmp_path / "planted-copy"
    shutil.copytree(old_dir, planted)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = featurizer(tiny_model, str(old_dir)).fit(TEXTS).transform(TEXTS)
    assert not marker.exists()
    assert any("pickled value" in str(w.message) for w in caught)
    assert_same_computation(again, reference)
    assert FeatureStore(old_dir).stats()["entries"] == len(TEXTS)
    diskcache.Cache(str(planted)).get(block_key)  # the payload is live
    assert marker.read_text() == "pwned"


def test_an_unreadable_layout1_store_is_refused_with_what_to_do(tiny_model, tmp_path):
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    (old_dir / "cache.db").write_bytes(b"not a database at all" * 100)
    store = FeatureStore(old_dir)
    with pytest.raises(StoreError, match=r"older bertfeat \(cache\.db, layout 1\).*"
                                         r"delete cache\.db\*"):
        store.stats()
    with pytest.warns(RuntimeWarning, match="cannot use the feature store.*layout 1"):
        out = featurizer(tiny_model, str(old_dir)).fit(TEXTS).transform(TEXTS)
    assert_same_computation(out, featurizer(tiny_model, False).fit(TEXTS).transform(TEXTS))
    (old_dir / "cache.db").unlink()  # what the message says to do
    assert FeatureStore(old_dir).stats()["entries"] == 0


def test_a_newer_layout_is_refused_never_misread(tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.stats()
    store.close()
    with sqlite3.connect(tmp_path / "store" / "store.db") as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="layout 99, written by a newer bertfeat"):
        FeatureStore(tmp_path / "store").stats()
    assert np.array_equal(FeatureStore(tmp_path / "other").read(
        "fp", ["00"], [0], 4, count=False).found, [False])


def test_a_layout1_store_with_bookkeeping_in_rows_keeps_its_counts(tmp_path):
    """The oldest layout-1 stores kept counters, descriptions and metadata as rows."""
    import diskcache

    fresh = FeatureStore(tmp_path / "fresh")
    digests = [text_digest(str(i)) for i in range(5)]
    vectors = np.arange(5 * 2 * 3 * 4, dtype=np.float32).reshape(5, 2, 3, 4)
    fresh.write("fp", digests, vectors)
    fresh.close()
    old_dir = tmp_path / "old"
    write_layout1(tmp_path / "fresh", old_dir)
    with sqlite3.connect(old_dir / "cache.db") as con:
        con.execute("DROP TABLE bertfeat_counts")
        con.execute("DROP TABLE bertfeat_meta")
    old = diskcache.Cache(str(old_dir))
    old.set("stats/fp/hits", 7)
    old.set("fp/model", json.dumps({"model": "m"}))
    old.set("meta/digest:x", "abc")
    old.close()
    again = FeatureStore(old_dir)
    stats = again.stats()["models"]["fp"]
    assert (stats["entries"], stats["encoded"], stats["hits"]) == (5, 5, 7)
    assert stats["model"] == {"model": "m"} and again.get_meta("digest:x") == "abc"
    hit = again.read("fp", digests, [0, 1], 4, count=False)
    assert hit.found.all()
    assert np.array_equal(hit.stats[1], vectors[:, 1])
