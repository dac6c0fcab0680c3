"""Issue 13: exactly once, in parallel and at scale; issue 12 items 8 and 10 (store parts).

Every count here comes from the store's counters or an encoder spy, never from timing.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from bertfeat import BertFeaturizer, FeatureStore, cli
from bertfeat import store as store_module
from bertfeat.store import text_digest

from ..conftest import WORDS
from ..equality import assert_same_computation, assert_within_bound
from .test_store import run_python


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 12))) + f" {i}" for i in range(n)]


def featurizer(model: str, cache, **kwargs) -> BertFeaturizer:
    kwargs.setdefault("precision", "fp32")
    kwargs.setdefault("pooling", "mean")
    return BertFeaturizer(model=model, cache=cache, **kwargs)


def only_model(store: FeatureStore) -> dict:
    (stats,) = store.stats()["models"].values()
    return stats


def index_rows(directory, fingerprint: str | None = None) -> int:
    """Index rows really in the database (a full scan: the test's ground truth)."""
    with sqlite3.connect(f"{directory}/store.db") as con:
        fps = [fp for (fp,) in con.execute("SELECT fp FROM texts")]
    return sum(1 for fp in fps if fingerprint is None or fp == fingerprint)


# ------------------------------------------------ cross-process exactly-once (item 1)


@pytest.mark.parametrize("n_jobs,layers", [(2, [1, 2, 3]), (4, [3, 2, 1])],
                         ids=["2-workers-ascending", "4-workers-descending"])
def test_cold_parallel_grid_search_encodes_each_text_once(tiny_model, tmp_path, n_jobs,
                                                          layers):
    texts = sentences(80) + sentences(20)  # 20 duplicates
    y = np.array([i % 2 for i in range(len(texts))])
    store = str(tmp_path / "store")
    pipe = make_pipeline(featurizer(tiny_model, store), LogisticRegression(max_iter=100))
    grid = {"bertfeaturizer__layers": layers,
            "bertfeaturizer__pooling": ["cls", "mean"],
            "logisticregression__C": [0.1, 1.0]}
    search = GridSearchCV(pipe, grid, cv=StratifiedKFold(5), n_jobs=n_jobs,
                          error_score="raise")
    search.fit(texts, y)  # joblib's default backend: loky worker processes
    stats = only_model(FeatureStore(store))
    assert stats["encoded"] == stats["entries"] == 80  # once per unique text
    assert stats["hits"] > 0


_OVERLAP = textwrap.dedent("""
    import sys, json, time
    from pathlib import Path
    import numpy as np
    from bertfeat import BertFeaturizer
    model, store, corpus, start, stop, out, barrier = sys.argv[1:8]
    texts = json.load(open(corpus))[int(start):int(stop)]
    f = BertFeaturizer(model=model, cache=store, precision="fp32", pooling="mean",
                       layers=[0, -1], batch_size=4).fit(texts)
    Path(barrier, start).touch()
    deadline = time.monotonic() + 120
    while len(list(Path(barrier).iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    np.save(out, f.transform(texts))
""")


def test_two_processes_overlapping_into_a_cold_store_encode_each_text_once(tiny_model,
                                                                           tmp_path,
                                                                           encode_spy):
    texts = sentences(160, seed=3)
    corpus = tmp_path / "texts.json"
    corpus.write_text(json.dumps(texts))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    store = str(tmp_path / "store")
    procs = [run_python(_OVERLAP, tiny_model, store, corpus, 0, 120, tmp_path / "a.npy",
                        barrier),
             run_python(_OVERLAP, tiny_model, store, corpus, 40, 160, tmp_path / "b.npy",
                        barrier)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    stats = only_model(FeatureStore(store))
    assert stats["encoded"] == stats["entries"] == 160  # the 80 shared texts once
    reference = featurizer(tiny_model, False, layers=[0, -1]).fit(texts).transform(texts)
    # other batches than the reference's: equal up to float rounding
    assert_within_bound(np.load(tmp_path / "a.npy"), reference[:120])
    assert_within_bound(np.load(tmp_path / "b.npy"), reference[40:])
    encode_spy.clear()  # a new session reads everything back: no encoding at all
    again = featurizer(tiny_model, store, layers=[0, -1]).fit(texts).transform(texts)
    assert sum(encode_spy) == 0
    assert_within_bound(again, reference)


_HOLDER = textwrap.dedent("""
    import sys, json, time
    from bertfeat import BertFeaturizer, store
    model, cache, corpus, flag = sys.argv[1:5]
    real = store.FeatureStore.write
    done = [0]
    def write(self, fingerprint, digests, *args, **kwargs):
        real(self, fingerprint, digests, *args, **kwargs)
        done[0] += len(digests)
        if done[0] >= 20:  # holding the encode lock, some batches committed
            open(flag, "w").write(str(done[0]))
            time.sleep(300)
    store.FeatureStore.write = write
    texts = json.load(open(corpus))
    BertFeaturizer(model=model, cache=cache, precision="fp32", pooling="mean",
                   batch_size=4).fit(texts).transform(texts)
""")


def test_sigkilled_lock_holder_does_not_block_the_other_process(tiny_model, tmp_path,
                                                                encode_spy, monkeypatch):
    import fcntl

    texts = sentences(60, seed=5)
    corpus = tmp_path / "texts.json"
    corpus.write_text(json.dumps(texts))
    store_dir = tmp_path / "store"
    flag = tmp_path / "holding"
    holder = run_python(_HOLDER, tiny_model, store_dir, corpus, flag)
    deadline = time.monotonic() + 180
    while not (flag.exists() and flag.read_text()):
        assert holder.poll() is None, holder.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "the holder never reached its encode lock"
        time.sleep(0.05)
    committed = int(flag.read_text())
    # this process now wants the same texts: it reaches the lock and waits in the kernel
    waiting = threading.Event()
    real_flock = fcntl.flock

    def flock(fd, operation):
        if operation & fcntl.LOCK_EX:  # filelock polls with LOCK_EX | LOCK_NB
            waiting.set()
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(
        featurizer(tiny_model, str(store_dir)).fit(texts).transform(texts)), daemon=True)
    worker.start()
    assert waiting.wait(120), "the second transform never asked for the encode lock"
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    assert holder.returncode == -signal.SIGKILL
    worker.join(120)
    assert not worker.is_alive(), "the second transform hangs after the holder died"
    assert sum(encode_spy) == len(texts) - committed  # the holder's batches were read
    reference = featurizer(tiny_model, False).fit(texts).transform(texts)
    assert_within_bound(result[0], reference)
    assert only_model(FeatureStore(store_dir))["encoded"] == len(texts)


def test_different_fingerprints_never_wait_for_each_other(tiny_model, tmp_path,
                                                          encode_spy):
    import fcntl

    store = FeatureStore(tmp_path / "store")
    texts = sentences(10)
    other = featurizer(tiny_model, store, max_length=16).fit(texts)
    mine = featurizer(tiny_model, store).fit(texts)
    assert other.fingerprint_ != mine.fingerprint_
    with store.encode_lock(other.fingerprint_):  # another model is being encoded
        lock = Path(store.directory) / "locks" / f"{other.fingerprint_}.lock"
        with open(lock, "a+b") as handle, pytest.raises(BlockingIOError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # really held
        done = []
        worker = threading.Thread(target=lambda: done.append(mine.transform(texts)),
                                  daemon=True)
        worker.start()
        worker.join(120)
        assert done, "a transform of another fingerprint waited for this lock"
    assert sum(encode_spy) == 10


def test_the_encoding_process_uses_every_core(tiny_model, tmp_path, monkeypatch):
    import torch

    from bertfeat import encoder

    seen = []
    real = encoder.encode

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(encoder, "encode", spy)
    import joblib

    monkeypatch.setattr(joblib, "cpu_count", lambda *args, **kwargs: 3)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # what a loky worker of a search gets (cores // n_jobs)
        featurizer(tiny_model, str(tmp_path / "store"), device="cpu").fit(
            ["a film"]).transform(["a film"])
        assert seen == [3]  # the lock holder encodes on every core
        assert torch.get_num_threads() == 1  # and gives them back
        featurizer(tiny_model, False, device="cpu").fit(["a film"]).transform(["a film"])
        assert seen == [3, 1]  # without a store (no lock) the worker keeps its share
    finally:
        torch.set_num_threads(before)


# -------------------------------------------------------- any grid order (item 2)


def test_descending_and_ascending_layer_orders_encode_once(tiny_model, tmp_path,
                                                           encode_spy):
    texts = sentences(15)
    for order in ([1, 2, 3], [3, 2, 1]):
        store = str(tmp_path / f"store-{order[0]}")
        for layer in order:
            featurizer(tiny_model, store, layers=layer).fit(texts).transform(texts)
    assert sum(encode_spy) == 30  # 15 texts once per store, whatever the order


# ---------------------------------------------------- a store that fits (item 3)


def test_tiny_size_limit_returns_correct_features_warns_once_encodes_once(
        tiny_model, tmp_path, encode_spy):
    texts = sentences(300)
    store = FeatureStore(tmp_path / "store", size_limit=100_000)
    reference = featurizer(tiny_model, False, batch_size=8).fit(texts).transform(texts)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = featurizer(tiny_model, store, batch_size=8).fit(texts).transform(texts)
        featurizer(tiny_model, store, batch_size=8).fit(texts).transform(texts[:50])
    assert_same_computation(out, reference)
    assert encode_spy[1] == 300  # the first store call encoded each text once, evictions or not
    over = [str(w.message) for w in caught if "size limit" in str(w.message)]
    per_text = store.bytes_per_text(3, 32)
    assert len(over) == 1, over  # once, not per call or per batch
    assert f"300 texts need about {store_module._human(300 * per_text)}" in over[0]
    assert "97.7 KB" in over[0] and "size_limit=" in over[0] and "float16" in over[0]
    # the counters stay exact under eviction
    stats = store.stats()
    assert stats["entries"] == index_rows(store.directory) < 300
    assert only_model(store)["encoded"] == sum(encode_spy[1:])


@pytest.mark.parametrize("pooling", ["mean", "pooler"])
def test_float16_storage_is_bitwise_cached_equals_uncached(tiny_model, tmp_path, pooling,
                                                           encode_spy):
    texts = sentences(40)
    layers = -1 if pooling == "pooler" else [0, 2]
    store = FeatureStore(tmp_path / "store", dtype="float16")
    cold = featurizer(tiny_model, store, layers=layers, pooling=pooling).fit(texts)
    first = cold.transform(texts)
    warm = featurizer(tiny_model, store, layers=layers, pooling=pooling).fit(texts)
    second = warm.transform(texts)
    assert sum(encode_spy) == 40 and np.array_equal(first, second)
    full = featurizer(tiny_model, FeatureStore(tmp_path / "store"), layers=layers,
                      pooling=pooling).fit(texts)
    assert full.fingerprint_ != cold.fingerprint_  # float16 vectors are other vectors
    reference = full.transform(texts)
    assert not np.array_equal(first, reference)  # really rounded
    cosine = np.sum(first * reference, 1) / np.linalg.norm(first, axis=1) / np.linalg.norm(
        reference, axis=1)
    assert cosine.min() > 0.9999
    half = FeatureStore(tmp_path / "store", dtype="float16")
    assert half.bytes_per_text(3, 32) < 0.6 * FeatureStore().bytes_per_text(3, 32)


def test_float16_keeps_float32_for_values_it_cannot_hold(tmp_path):
    store = FeatureStore(tmp_path / "store", dtype="float16")
    big = np.full((2, 1, 3, 4), 1e6, np.float32)
    assert np.array_equal(store.storable(big), big)
    digests = [text_digest("a"), text_digest("b")]
    store.write("fp", digests, big)
    assert np.array_equal(store.read("fp", digests, [0], 4).stats[0], big[:, 0])


def test_stats_answers_from_counters_on_200k_entries(tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.write("fpA", [text_digest("seed")], np.zeros((1, 1, 3, 1), np.float32))
    n = 200_000
    with store.cache.write() as con:  # synthetic index rows into the seed's block
        (block,) = con.execute("SELECT id FROM blocks").fetchone()
        con.executemany("INSERT INTO texts (fp, digest, block, row, depth, flags) "
                        "VALUES ('fpA', ?, ?, 0, 0, 0)",
                        ((f"{i:032x}", block) for i in range(n)))
    statements: list[str] = []
    store.cache.connection().set_trace_callback(statements.append)
    try:
        stats = store.stats()
        counts = store.counts("fpA")
    finally:
        store.cache.connection().set_trace_callback(None)
    assert stats["entries"] == n + 1 == stats["models"]["fpA"]["entries"]
    assert stats["models"]["fpA"]["encoded"] == n + 1
    assert counts["entries"] == n + 1
    assert statements and not [s for s in statements if "texts" in s]  # no scan


# ------------------------------------------------ issue 12 item 10: bookkeeping rows


def test_tiny_size_limit_never_evicts_bookkeeping(tiny_model, tmp_path, encode_spy):
    store = FeatureStore(tmp_path / "store", size_limit=200_000)  # about 120 texts
    texts = sentences(200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the working-set warning
        fitted = featurizer(tiny_model, store, batch_size=4).fit(texts)
        fitted.transform(texts)
        fitted.transform(texts[:20])
    stats = only_model(store)
    assert stats["model"]["model"] == tiny_model  # the description survived eviction
    assert stats["encoded"] == sum(encode_spy)
    assert stats["hits"] + stats["misses"] == 220
    assert 0 < stats["entries"] == index_rows(store.directory, fitted.fingerprint_) < 200
    assert store.clear(model=tiny_model) > 0
    assert store.stats()["models"] == {} and index_rows(store.directory) == 0


def test_interrupted_clear_leaves_exact_stats_and_a_second_clear_finishes(
        tiny_model, tmp_path, monkeypatch):
    from bertfeat.store import bookkeeping
    from bertfeat.store.database import Database

    store = FeatureStore(tmp_path / "store")
    texts = sentences(40)
    fitted = featurizer(tiny_model, store, batch_size=4).fit(texts)
    fitted.transform(texts)
    fp = fitted.fingerprint_
    monkeypatch.setattr(bookkeeping, "_BATCH", 3)  # 10 blocks: several transactions
    real_write = Database.write
    calls = [0]

    def interrupted(self):
        calls[0] += 1
        if calls[0] == 3:  # after two transactions of the clear
            raise KeyboardInterrupt
        return real_write(self)

    monkeypatch.setattr(Database, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.clear(model=tiny_model)
    monkeypatch.setattr(Database, "write", real_write)
    left = store.stats()["models"][fp]["entries"]
    assert 0 < left < 40 and left == index_rows(store.directory, fp)
    found = store.read(fp, [text_digest(t) for t in texts], [3], 32, count=False).found
    assert found.sum() == left  # every counted entry reads back
    assert store.clear(model=tiny_model) > 0  # the description is still there to find it
    with sqlite3.connect(tmp_path / "store" / "store.db") as con:
        assert con.execute("SELECT (SELECT count(*) FROM texts) + (SELECT count(*) FROM "
                           "vectors) + (SELECT count(*) FROM blocks)").fetchone() == (0,)
    assert store.stats()["models"] == {}


def test_overwritten_blocks_are_deleted_not_orphaned(tmp_path):
    store = FeatureStore(tmp_path / "store")
    digests = [text_digest(str(i)) for i in range(60)]
    for _ in range(5):  # the same 60 texts rewritten, in batches of 8
        for start in range(0, 60, 8):
            store.write("fp", digests[start:start + 8],
                        np.ones((len(digests[start:start + 8]), 3, 3, 4), np.float32))
    with sqlite3.connect(tmp_path / "store" / "store.db") as con:
        rows = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("texts", "blocks", "vectors")]
    assert rows == [60, 8, 8 * 3]  # 60 index rows + 8 live blocks of 3 layers: nothing stale
    assert store.stats()["entries"] == 60
    assert store.counts("fp")["encoded"] == 300


# ---------------------------------------- issue 12 item 8: a locked, damaged database


_LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO meta VALUES ('bertfeat-test', 1)")
    open(sys.argv[2], "w").write("locked")
    time.sleep(120)
""")


def test_database_locked_by_a_stuck_process_costs_seconds_not_a_minute(
        tiny_model, tmp_path, monkeypatch, capsys):
    store_dir = tmp_path / "store"
    texts = sentences(6)
    featurizer(tiny_model, str(store_dir)).fit(texts).transform(texts)
    flag = tmp_path / "flag"
    locker = run_python(_LOCKER, store_dir / "store.db", flag)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert locker.poll() is None, locker.communicate()[1].decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with open(store_dir / "store.db", "r+b") as fh:  # and the file is damaged
            fh.seek(100)
            fh.write(b"\xff" * 64)
        monkeypatch.setattr(store_module.core, "LOCK_TIMEOUT", 0.5)
        status = cli.main(["cache", "info", "--cache-dir", str(store_dir)])
        err = capsys.readouterr().err
        assert status == 2
        assert "locked by another process for more than 0.5 s" in err, err
        assert "Traceback" not in err
        with pytest.warns(RuntimeWarning, match="cannot use the feature store.*locked"):
            fitted = featurizer(tiny_model, str(store_dir)).fit(texts)
        out = fitted.transform(texts)  # without the store, correct
        reference = featurizer(tiny_model, False).fit(texts).transform(texts)
        assert_same_computation(out, reference)
    finally:
        locker.kill()
        locker.communicate()
