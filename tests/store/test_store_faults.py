"""Issue 6, items 5-6: the feature store under faults -- damage, read-only, disk full,
lock timeouts, four processes at once, a kill inside a write transaction.

The rule every test checks: the result of the call is correct (equal to encoding
without a store), whatever happens to the store; a fault costs at most a warning and
some re-encoding, never an exception, a hang or a wrong vector. After the fault, the
store holds no half-written batch.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import sqlite3
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from bertfeat import BertFeaturizer, FeatureStore
from bertfeat.store import StoreError, text_digest

from ..conftest import WORDS
from ..equality import assert_same_computation, assert_within_bound
from .test_store import run_python

ATOL = 1e-5


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 12))) + f" {i}" for i in range(n)]


TEXTS = sentences(60)


def featurizer(model: str, cache, **kwargs) -> BertFeaturizer:
    kwargs.setdefault("precision", "fp32")
    return BertFeaturizer(model=model, cache=cache, **kwargs)


@pytest.fixture(scope="module")
def reference(tiny_model) -> np.ndarray:
    return featurizer(tiny_model, False).fit(TEXTS).transform(TEXTS)


def populated(tiny_model: str, directory: Path, texts: list[str] = TEXTS) -> str:
    """A store holding ``texts``, closed (no connection left open)."""
    store = FeatureStore(directory)
    featurizer(tiny_model, store).fit(texts).transform(texts)
    store.close()
    return str(directory)


def run(tiny_model: str, cache, texts: list[str] = TEXTS, **kwargs):
    """Fit + transform, returning the output and every warning raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = featurizer(tiny_model, cache, **kwargs).fit(texts).transform(texts)
    return out, [f"{w.category.__name__}: {w.message}" for w in caught]


def store_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("RuntimeWarning")]


def stored_rows(store_dir: str, fingerprint: str, texts: list[str], reference: np.ndarray,
                layer: int) -> np.ndarray:
    """Which texts a fresh store finds; asserts every found one decodes to the reference."""
    store = FeatureStore(store_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a damaged value would warn
        hit = store.read(fingerprint, [text_digest(t) for t in texts], [layer],
                         reference.shape[1], count=False)
    store.close()
    mean = hit.stats[layer][:, 1]  # statistic 1 is the mean over tokens
    assert_within_bound(mean[hit.found], reference[hit.found])
    return hit.found


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ a damaged database


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(db.stat().st_size))


def _truncate_half(db: Path) -> None:
    with open(db, "r+b") as fh:
        fh.truncate(db.stat().st_size // 2)


def _truncate_to_header(db: Path) -> None:
    with open(db, "r+b") as fh:
        fh.truncate(1000)


def _scribble_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    for offset in range(4096 * 2, len(data), 4096):  # every page after the schema
        data[offset:offset + 256] = os.urandom(256)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garbage, _truncate_half, _truncate_to_header,
                                    _scribble_pages],
                         ids=["garbage", "truncated-half", "truncated-1000-bytes",
                              "scribbled-pages"])
def test_damaged_database_is_moved_aside_and_rebuilt(tiny_model, tmp_path, reference,
                                                     encode_spy, damage):
    store_dir = populated(tiny_model, tmp_path / "store")
    db = Path(store_dir) / "store.db"
    damage(db)
    damaged_bytes = db.read_bytes()
    encode_spy.clear()
    out, messages = run(tiny_model, store_dir)
    assert_within_bound(out, reference)
    warned = store_warnings(messages)
    assert len(warned) == 1, messages
    assert re.search(r"the database is damaged \(DatabaseError: .*\); moved it aside to "
                     r"store\.db\.corrupt-\d{8}-\d{6}-\d+ and started an empty store",
                     warned[0]), warned
    assert sum(encode_spy) == len(TEXTS)  # nothing was read from the damaged file
    (aside,) = Path(store_dir).glob("store.db.corrupt-*[0-9]")
    assert aside.read_bytes() == damaged_bytes  # kept as it was, for inspection
    # the rebuilt store works: a second session reads everything back, silently
    encode_spy.clear()
    again, messages = run(tiny_model, store_dir)
    assert encode_spy == [] and messages == []
    assert_same_computation(again, out)


def test_empty_database_file_is_an_empty_store(tiny_model, tmp_path, reference, encode_spy):
    """A store.db truncated to 0 bytes is, to SQLite, a valid empty database."""
    store_dir = populated(tiny_model, tmp_path / "store")
    with open(Path(store_dir) / "store.db", "r+b") as fh:
        fh.truncate(0)
    encode_spy.clear()
    out, messages = run(tiny_model, store_dir)
    assert_within_bound(out, reference)
    assert sum(encode_spy) == len(TEXTS) and messages == []
    encode_spy.clear()
    run(tiny_model, store_dir)
    assert encode_spy == []


def test_database_damaged_under_two_open_stores(tiny_model, tmp_path, reference, encode_spy):
    """Two store objects (as two processes would) see the same file go bad while open:
    the first moves it aside, the second notices it was already replaced and moves
    nothing (it must not move the fresh store away)."""
    store_dir = populated(tiny_model, tmp_path / "store")
    first, second = FeatureStore(store_dir), FeatureStore(store_dir)
    a = featurizer(tiny_model, first).fit(TEXTS)
    b = featurizer(tiny_model, second).fit(TEXTS)
    db = Path(store_dir) / "store.db"
    with open(db, "r+b") as fh:  # in place: both open connections see it
        fh.write(os.urandom(db.stat().st_size))
    encode_spy.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out_a = a.transform(TEXTS)
        out_b = b.transform(TEXTS)
    messages = [str(w.message) for w in caught]
    assert_within_bound(out_a, reference)
    assert_within_bound(out_b, reference)
    assert any("moved it aside" in m for m in messages), messages
    assert any("has already moved it aside" in m for m in messages), messages
    assert len(list(Path(store_dir).glob("store.db.corrupt-*[0-9]"))) == 1
    # the second one re-reads its misses under the encode lock and finds the first's
    assert sum(encode_spy) == len(TEXTS)
    # both objects now use the same fresh store, which holds every text
    assert first.stats()["entries"] == second.stats()["entries"] == len(TEXTS)


# ---------------------------------------------------------------- damaged values


def _fingerprint_and_store(tiny_model, tmp_path, texts=TEXTS, **kwargs):
    store = FeatureStore(tmp_path / "store")
    fitted = featurizer(tiny_model, store, **kwargs).fit(texts)
    fitted.transform(texts)
    return store, fitted


@pytest.mark.parametrize("which", ["block", "index"])
def test_truncated_value_is_a_miss_with_a_warning(tiny_model, tmp_path, reference, encode_spy,
                                                  which):
    # small batches: several blocks, so damaging some of them affects only some texts
    store, fitted = _fingerprint_and_store(tiny_model, tmp_path, batch_size=8)
    with store.cache.write() as con:
        if which == "block":  # a third of the blocks lose bytes of a layer that is read
            blocks = [b for (b,) in con.execute("SELECT id FROM blocks ORDER BY id")]
            damaged = blocks[: max(1, len(blocks) // 3)]
            con.executemany("UPDATE vectors SET data = substr(data, 1, length(data) - 7) "
                            "WHERE block = ? AND layer = ?",
                            [(b, fitted.n_layers_) for b in damaged])
        else:  # a third of the index rows point past the end of their block
            digests = [d for (d,) in con.execute("SELECT digest FROM texts ORDER BY digest")]
            damaged = digests[: max(1, len(digests) // 3)]
            con.executemany("UPDATE texts SET row = row + 100000 WHERE digest = ?",
                            [(d,) for d in damaged])
    encode_spy.clear()
    out, messages = run(tiny_model, store)
    assert_within_bound(out, reference)
    assert any("damaged value(s) ignored" in m for m in messages), messages
    assert 0 < sum(encode_spy) < len(TEXTS)  # only the affected texts
    encode_spy.clear()
    again, messages = run(tiny_model, store)  # rewritten: clean hits now
    assert encode_spy == [] and messages == []
    assert_same_computation(again, out)


def test_blocks_over_2mib_round_trip_and_a_cut_one_is_a_miss(tiny_model, tmp_path,
                                                            encode_spy):
    """A block larger than SQLite's pages by far (one 6000-text batch) reads back; cut
    short in the database, it is a miss with a warning, never a wrong vector."""
    texts = sentences(6000, seed=3)
    kwargs = dict(batch_size=6000, max_batch_tokens=10**6, layers=[0])
    reference = featurizer(tiny_model, False, **kwargs).fit(texts).transform(texts)
    store, fitted = _fingerprint_and_store(tiny_model, tmp_path, texts, **kwargs)
    with store.cache.read() as con:
        assert con.execute("SELECT max(length(data)) FROM vectors").fetchone()[0] > 2**21
    encode_spy.clear()
    out, messages = run(tiny_model, store, texts, **kwargs)
    assert encode_spy == [] and not store_warnings(messages)
    assert_same_computation(out, reference)
    with store.cache.write() as con:
        con.execute("UPDATE vectors SET data = substr(data, 1, length(data) - 100)")
    out, messages = run(tiny_model, store, texts, **kwargs)
    assert_within_bound(out, reference)
    assert any("damaged value(s) ignored" in m for m in messages), messages
    assert sum(encode_spy) == len(texts)


# --------------------------------------------------------- read-only, unwritable places


def test_read_only_database_works_without_caching(tiny_model, tmp_path, reference, encode_spy,
                                                  monkeypatch):
    """Simulated at the SQLite level: every connection opens the file read-only
    (``mode=ro``), which is what SQLite does for a file or directory it may not write.
    (The tests run as root, for whom chmod would not stop a write.)"""
    store_dir = populated(tiny_model, tmp_path / "store")
    db = Path(store_dir) / "store.db"
    before = sha(db)
    real_connect = sqlite3.connect

    def read_only(database, *args, **kwargs):
        kwargs["uri"] = True
        return real_connect(f"file:{database}?mode=ro", *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only)
    encode_spy.clear()
    out, messages = run(tiny_model, store_dir)
    assert_within_bound(out, reference)
    warned = store_warnings(messages)
    assert len(warned) == 1, messages
    assert re.search(r"cannot use the feature store at .*readonly database.*continuing "
                     r"without caching", warned[0]), warned
    assert sum(encode_spy) == len(TEXTS)
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    assert sha(db) == before  # not a byte written
    assert not list(Path(store_dir).glob("store.db.corrupt-*"))


@pytest.mark.parametrize("where", ["below-a-file", "in-proc"])
def test_store_location_that_cannot_be_created(tiny_model, tmp_path, reference, where):
    """Real OS errors: a directory below a regular file, and one inside /proc."""
    if where == "below-a-file":
        (tmp_path / "a-file").write_text("x")
        location = str(tmp_path / "a-file" / "store")
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc")
        location = "/proc/bertfeat-store"
    out, messages = run(tiny_model, location)
    assert_within_bound(out, reference)
    warned = store_warnings(messages)
    assert len(warned) == 1 and "continuing without caching" in warned[0], messages


# ------------------------------------------------------------------------ disk full


def _assert_clean_after_write_failure(tiny_model, store_dir, fitted, out, messages,
                                      reference, writes, encode_spy):
    assert_within_bound(out, reference)
    warned = store_warnings(messages)
    assert len(warned) == 1, messages  # one warning, not one per batch
    assert "writing failed" in warned[0] and "Results are unaffected" in warned[0]
    # later batches skipped the store: the failed write was the last one attempted
    assert writes[-1][0] == "failed" and [w[0] for w in writes].count("failed") == 1
    # no corrupt entries: what is stored reads back right; the failed batch is absent
    found = stored_rows(store_dir, fitted.fingerprint_, TEXTS, reference, fitted.layers_[-1])
    assert found.sum() == sum(n for status, n in writes if status == "ok")
    # a later session encodes only what is missing
    encode_spy.clear()
    again, _ = run(tiny_model, store_dir, batch_size=fitted.batch_size)
    assert sum(encode_spy) == len(TEXTS) - found.sum()
    assert_within_bound(again, reference)


def _count_writes(monkeypatch) -> list[tuple[str, int]]:
    """Record each batch write: ("ok" or "failed", texts in the batch)."""
    writes: list[tuple[str, int]] = []
    real = FeatureStore.write

    def counting(self, fingerprint, digests, *args, **kwargs):
        try:
            real(self, fingerprint, digests, *args, **kwargs)
        except StoreError:
            writes.append(("failed", len(digests)))
            raise
        writes.append(("ok", len(digests)))

    monkeypatch.setattr(FeatureStore, "write", counting)
    return writes


def test_disk_full_for_real_sqlite_limit(tiny_model, tmp_path, reference, encode_spy,
                                         monkeypatch):
    """A real SQLITE_FULL: the connection's ``max_page_count`` caps the database a few
    pages above its size, so a batch's transaction runs out of room part-way."""
    store = FeatureStore(tmp_path / "store")
    fitted = featurizer(tiny_model, store, batch_size=8).fit(TEXTS)
    pages = store.cache.execute("PRAGMA page_count").fetchone()[0]
    store.cache.execute(f"PRAGMA max_page_count = {pages + 6}")
    writes = _count_writes(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fitted.transform(TEXTS)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    assert any("database or disk is full" in m for m in messages), messages
    assert writes[0][0] == "ok"  # the limit bit part-way, not at the first batch
    store.close()  # the page limit belongs to this connection: gone with it
    _assert_clean_after_write_failure(tiny_model, store.directory, fitted, out, messages,
                                      reference, list(writes), encode_spy)


def test_disk_full_oserror_mid_batch(tiny_model, tmp_path, reference, encode_spy, monkeypatch):
    """``OSError(ENOSPC)`` raised while the third batch's vectors are being stored (inside
    its transaction, after its block row went in)."""
    store = FeatureStore(tmp_path / "store")
    fitted = featurizer(tiny_model, store, batch_size=8).fit(TEXTS)
    batch, values = [0], [0]
    real_write = FeatureStore._write

    def numbered_write(self, *args, **kwargs):
        batch[0] += 1
        return real_write(self, *args, **kwargs)

    real_new_block = FeatureStore._new_block

    def full(con, *args):
        block = real_new_block(con, *args)
        if batch[0] == 3:
            values[0] += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return block

    monkeypatch.setattr(FeatureStore, "_write", numbered_write)
    monkeypatch.setattr(FeatureStore, "_new_block", staticmethod(full))
    writes = _count_writes(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fitted.transform(TEXTS)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    assert any("No space left on device" in m for m in messages), messages
    assert [status for status, _ in writes] == ["ok", "ok", "failed"], writes
    assert values == [1]
    store.close()
    monkeypatch.setattr(FeatureStore, "_new_block", staticmethod(real_new_block))
    _assert_clean_after_write_failure(tiny_model, store.directory, fitted, out, messages,
                                      reference, list(writes), encode_spy)


def test_lock_timeout_on_write_and_io_error_on_read(tiny_model, tmp_path, reference,
                                                     encode_spy, monkeypatch):
    from bertfeat.store.database import Database

    store_dir = populated(tiny_model, tmp_path / "store", TEXTS[:30])
    # reading fails with an I/O error: all misses, one warning, correct results
    real_read = Database.read

    def broken_read(self):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Database, "read", broken_read)
    encode_spy.clear()
    out, messages = run(tiny_model, store_dir)
    assert_within_bound(out, reference)
    assert sum(encode_spy) == len(TEXTS)
    assert any("reading failed (OperationalError: disk I/O error)" in m
               for m in messages), messages
    monkeypatch.setattr(Database, "read", real_read)

    # another writer holds the lock for longer than the timeout (SQLite's busy timeout)
    def locked(self):
        raise sqlite3.OperationalError("database is locked")

    store_dir = populated(tiny_model, tmp_path / "store2", TEXTS[:30])
    monkeypatch.setattr(Database, "write", locked)
    encode_spy.clear()
    out, messages = run(tiny_model, store_dir)
    assert_within_bound(out, reference)
    assert sum(encode_spy) == 30  # the 30 stored texts were still read, the rest encode_spy
    assert len(store_warnings(messages)) == 1, messages
    assert "writing failed (OperationalError: database is locked)" in messages[0], messages


# ---------------------------------------------------------------- many processes


_HAMMER = textwrap.dedent("""
    import sys, json, time, warnings
    from pathlib import Path
    import numpy as np
    from bertfeat import BertFeaturizer
    warnings.simplefilter("always")
    model, store, corpus, seed, out, barrier = sys.argv[1:7]
    texts = json.load(open(corpus))
    rng = np.random.default_rng(int(seed))
    order = rng.permutation(len(texts))[: int(len(texts) * 0.75)]
    chosen = [texts[i] for i in order]
    f = BertFeaturizer(model=model, cache=store, precision="fp32", layers=[1, -1],
                       batch_size=int(seed) + 2).fit(chosen)
    # start encoding together: all four write the store at the same time
    Path(barrier, seed).touch()
    deadline = time.monotonic() + 240
    while len(list(Path(barrier).iterdir())) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    result = f.transform(chosen)
    np.save(out, result)
    np.save(out + ".order.npy", order)
""")


@pytest.mark.slow
def test_four_processes_hammer_one_store(tiny_model, tmp_path, encode_spy):
    texts = sentences(400, seed=7)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    corpus = tmp_path / "texts.json"
    corpus.write_text(json.dumps(texts))
    store_dir = str(tmp_path / "store")
    outs = [str(tmp_path / f"out{i}.npy") for i in range(4)]
    procs = [run_python(_HAMMER, tiny_model, store_dir, corpus, i, outs[i], barrier)
             for i in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        err = err.decode()
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "bertfeat store" not in err, err[-3000:]
    reference = featurizer(tiny_model, False, layers=[1, -1]).fit(texts).transform(texts)
    for out in outs:
        order = np.load(out + ".order.npy")
        assert_within_bound(np.load(out), reference[order])
    # every text any process encoded is in the store once, readable, and all are hits now
    store = FeatureStore(store_dir)
    union = len(set().union(*(np.load(o + ".order.npy").tolist() for o in outs)))
    assert store.stats()["entries"] == union
    encode_spy.clear()
    again, messages = run(tiny_model, store_dir, texts, layers=[1, -1])
    assert sum(encode_spy) == len(texts) - union and not store_warnings(messages)
    assert_within_bound(again, reference)


# ---------------------------------------------------- kill inside a write transaction


_KILLED_IN_TRANSACTION = textwrap.dedent("""
    import sys, json, time
    from bertfeat import BertFeaturizer, store
    model, cache, corpus, flag = sys.argv[1:5]
    committed = [0]
    real_write = store.FeatureStore._write
    def write(self, fingerprint, digests, *args, **kwargs):
        real_write(self, fingerprint, digests, *args, **kwargs)
        committed[0] += len(digests)
    store.FeatureStore._write = write
    real_make_room = store.FeatureStore._make_room
    def make_room(self, con, keep):
        real_make_room(self, con, keep)
        if committed[0] >= 40:
            # inside a batch's transaction, after its block, vectors and index rows
            with open(flag, "w") as fh:
                fh.write(str(committed[0]))
            time.sleep(300)
    store.FeatureStore._make_room = make_room
    texts = json.load(open(corpus))
    BertFeaturizer(model=model, cache=cache, precision="fp32", batch_size=4).fit(
        texts).transform(texts)
""")


def test_kill_inside_a_write_transaction_leaves_no_half_batch(tiny_model, tmp_path,
                                                                encode_spy):
    texts = sentences(200, seed=11)
    corpus = tmp_path / "texts.json"
    corpus.write_text(json.dumps(texts))
    store_dir = tmp_path / "store"
    flag = tmp_path / "inside-transaction"
    proc = run_python(_KILLED_IN_TRANSACTION, tiny_model, store_dir, corpus, flag)
    deadline = time.monotonic() + 180
    while not flag.exists() or not flag.read_text():
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the writer never reached the transaction"
        time.sleep(0.05)
    committed = int(flag.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    store = FeatureStore(store_dir)
    assert store.stats()["entries"] == committed  # the open transaction left nothing
    store.close()
    encode_spy.clear()
    result, messages = run(tiny_model, str(store_dir), texts, batch_size=4)
    assert sum(encode_spy) == len(texts) - committed
    assert not store_warnings(messages), messages  # nothing damaged to report
    reference = featurizer(tiny_model, False).fit(texts).transform(texts)
    assert_within_bound(result, reference)
