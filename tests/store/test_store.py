"""The feature store (issue 3): encode each text once per model fingerprint, ever."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from bertfeat import BertFeaturizer, FeatureStore, encoder, models
from bertfeat.store import StoreError, decode_array, encode_array, text_digest

from ..conftest import WORDS, make_tiny_model
from ..equality import assert_same_computation, assert_within_bound

ROOT = Path(__file__).resolve().parents[2]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 12))) + f" {i}" for i in range(n)]


def featurizer(model: str, store, **kwargs) -> BertFeaturizer:
    kwargs.setdefault("precision", "fp32")
    return BertFeaturizer(model=model, cache=store, **kwargs)


# ----------------------------------------------------------------------------- values


def test_value_roundtrip_and_header_checks():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    blob = encode_array(array)
    assert blob[:4] == b"BFS1"
    assert np.array_equal(decode_array(blob, (3, 4)), array)
    with pytest.raises(ValueError):
        decode_array(blob, (3, 5))  # wrong width
    with pytest.raises(ValueError):
        decode_array(blob[:-4], (3, 4))  # truncated value
    with pytest.raises(ValueError):
        decode_array(b"XXXX" + blob[4:], (3, 4))  # bad magic
    assert len(text_digest("a")) == 32
    assert text_digest("a") != text_digest("b")
    text_digest("lone \ud800 surrogate")  # must not raise


# ------------------------------------------------------------------------ fingerprint


def fp_of(info, **kwargs):
    kwargs.setdefault("max_length", 32)
    kwargs.setdefault("precision", "fp32")
    return models.fingerprint(info, **kwargs)


def test_fingerprint_covers_everything_that_changes_a_vector(tmp_path):
    path = make_tiny_model(tmp_path / "m")
    info = models.resolve_model(str(path))
    base = fp_of(info)
    assert fp_of(info) == base
    assert fp_of(info, max_length=16) != base
    assert fp_of(info, precision="bf16") != base
    assert fp_of(info, long_text="chunk") != base
    assert fp_of(dataclasses.replace(info, revision="v2")) != base
    assert fp_of(dataclasses.replace(info, revision="v1")) != fp_of(
        dataclasses.replace(info, revision="v2"))
    # tokenizer file changes
    vocab = path / "vocab.txt"
    vocab.write_text(vocab.read_text() + "extraword\n")
    assert fp_of(info) != base
    # config changes
    tokenized = fp_of(info)
    config = json.loads((path / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6
    (path / "config.json").write_text(json.dumps(config))
    assert fp_of(info) != tokenized


def test_same_path_with_new_weights_gets_no_hits(tmp_path, encode_spy):
    path = make_tiny_model(tmp_path / "m", seed=0)
    store = FeatureStore(tmp_path / "store")
    texts = sentences(20)
    first = featurizer(str(path), store).fit(texts)
    a = first.transform(texts)
    assert sum(encode_spy) == 20
    make_tiny_model(tmp_path / "m", seed=1)  # same directory, new weights
    models.forget_loaded()
    second = featurizer(str(path), store).fit(texts)
    assert second.fingerprint_ != first.fingerprint_
    b = second.transform(texts)
    assert sum(encode_spy) == 40  # re-encoded: nothing stale was served
    assert not np.allclose(a, b)


def test_weight_digest_is_computed_once_per_process(tmp_path, monkeypatch):
    path = make_tiny_model(tmp_path / "m")
    info = models.resolve_model(str(path))
    models.fingerprints._digest_cache.clear()
    reads = []
    real_sha = models.fingerprints.hashlib.sha256

    def counting_sha(*args, **kwargs):
        reads.append(1)
        return real_sha(*args, **kwargs)

    monkeypatch.setattr(models.fingerprints.hashlib, "sha256", counting_sha)
    fp_of(info)
    first = len(reads)
    fp_of(info)
    # the second call hashes the small JSON/tokenizer files again, but not the weights
    assert len(reads) - first == first - 1


def test_weight_digest_is_remembered_across_processes_by_the_store(tmp_path):
    path = make_tiny_model(tmp_path / "m")
    store = FeatureStore(tmp_path / "store")
    info = models.resolve_model(str(path))
    models.fingerprints._digest_cache.clear()
    fp_of(info, persistent=store)
    weights = path / "model.safetensors"
    # keyed by path and signature (inode, size, mtime, ctime, edge hash): see test_trust.py
    key = "digest2:" + ":".join(map(str, (weights.resolve(), *models.file_signature(weights))))
    assert isinstance(store.get_meta(key), str)


# --------------------------------------------------------- one pass per unique text


def test_grid_search_runs_the_encoder_once_per_unique_text(tiny_model, tmp_path, encode_spy):
    texts = sentences(60) + sentences(10)  # 10 duplicates
    y = np.array([i % 2 for i in range(70)])
    pipe = make_pipeline(featurizer(tiny_model, str(tmp_path / "store")),
                         LogisticRegression(max_iter=200))
    grid = {
        "bertfeaturizer__layers": [-1, -2, -3, [-1, -2, -3, -4]],
        "bertfeaturizer__pooling": ["cls", "mean", "max"],
        "logisticregression__C": [0.1, 1.0, 10.0],
    }
    search = GridSearchCV(pipe, grid, cv=StratifiedKFold(5), n_jobs=1, error_score="raise")
    search.fit(texts, y)
    assert len(search.cv_results_["params"]) == 36
    assert sum(encode_spy) == 60  # 36 candidates x 5 folds + refit, one encoder pass
    stats = FeatureStore(tmp_path / "store").stats()
    (model_stats,) = stats["models"].values()
    assert model_stats["encoded"] == 60
    assert model_stats["entries"] == 60


def test_any_layer_order_is_one_encoder_pass_with_a_store(tiny_model, tmp_path, encode_spy):
    store = str(tmp_path / "store")
    texts = sentences(12)
    featurizer(tiny_model, store, layers=1).fit(texts).transform(texts)
    assert sum(encode_spy) == 12  # a shallow layer first: every layer is stored
    featurizer(tiny_model, store, layers=-1).fit(texts).transform(texts)
    featurizer(tiny_model, store, layers=[0, 2], pooling="max").fit(texts).transform(texts)
    assert sum(encode_spy) == 12  # deeper later: a read


def test_depth_needed_keeps_the_shallow_saving(tiny_model, tmp_path, encode_spy):
    store = FeatureStore(tmp_path / "store", depth="needed")
    texts = sentences(12)
    featurizer(tiny_model, store, layers=1).fit(texts).transform(texts)
    assert sum(encode_spy) == 12
    featurizer(tiny_model, store, layers=0).fit(texts).transform(texts)
    assert sum(encode_spy) == 12  # shallower: read back
    featurizer(tiny_model, store, layers=-1).fit(texts).transform(texts)
    assert sum(encode_spy) == 24  # deeper than stored: encoded once more
    featurizer(tiny_model, store, layers=[1, 2]).fit(texts).transform(texts)
    assert sum(encode_spy) == 24
    # the deeper pass overwrote every index row: the first blocks were deleted, not orphaned
    assert store.stats()["entries"] == 12
    with sqlite3.connect(tmp_path / "store" / "store.db") as con:
        rows = con.execute("SELECT count(*) FROM vectors").fetchone()[0]
        batches = con.execute("SELECT count(*) FROM blocks").fetchone()[0]
    assert rows == batches * 4  # every live block holds hidden states 0..3, nothing else


# ------------------------------------------------------------ cached == uncached


@pytest.mark.parametrize("pooling", ["cls", "mean", "max", "mean_max", "first_last", "pooler"])
def test_cached_and_uncached_results_are_bitwise_identical(tiny_model, tmp_path, pooling,
                                                           encode_spy):
    texts = sentences(30)
    layers = -1 if pooling == "pooler" else [0, -1]
    uncached = featurizer(tiny_model, False, layers=layers, pooling=pooling).fit(texts)
    reference = uncached.transform(texts)
    store = str(tmp_path / "store")
    cold = featurizer(tiny_model, store, layers=layers, pooling=pooling).fit(texts)
    first = cold.transform(texts)
    warm = featurizer(tiny_model, store, layers=layers, pooling=pooling).fit(texts)
    encoded = sum(encode_spy)
    second = warm.transform(texts[::-1])[::-1]
    assert sum(encode_spy) == encoded  # really read from the store
    assert_same_computation(reference, first)
    assert_same_computation(first, second)
    assert first.dtype == np.float32


# ---------------------------------------------------- clone, processes, sessions


def test_store_survives_clone_and_pickle(tiny_model, tmp_path, encode_spy):
    store = FeatureStore(tmp_path / "store")
    texts = sentences(10)
    original = featurizer(tiny_model, store).fit(texts)
    original.transform(texts)
    twin = clone(original)
    assert twin.cache is store or twin.cache == store
    twin.fit(texts).transform(texts)
    revived = pickle.loads(pickle.dumps(original))
    revived.transform(texts)
    assert sum(encode_spy) == 10


def test_default_store_location_follows_the_environment(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTFEAT_CACHE_DIR", str(tmp_path / "env-store"))
    texts = sentences(5)
    featurizer(tiny_model, "auto").fit(texts).transform(texts)
    stats = FeatureStore(tmp_path / "env-store").stats()
    assert stats["entries"] == 5


def test_grid_search_with_loky_workers_shares_the_store(tiny_model, tmp_path):
    texts = sentences(40)
    y = np.array([i % 2 for i in range(40)])
    store = str(tmp_path / "store")
    # warm the store in this process, then workers must only read
    featurizer(tiny_model, store, layers="all").fit(texts).transform(texts)
    pipe = make_pipeline(featurizer(tiny_model, store), LogisticRegression(max_iter=200))
    search = GridSearchCV(pipe, {"bertfeaturizer__layers": [-1, 1],
                                 "bertfeaturizer__pooling": ["cls", "mean"]},
                          cv=3, n_jobs=2, error_score="raise")
    search.fit(texts, y)
    (model_stats,) = FeatureStore(store).stats()["models"].values()
    assert model_stats["encoded"] == 40
    assert model_stats["hits"] > 0
    scores = cross_val_score(pipe, texts, y, cv=3, n_jobs=2)
    assert np.all(np.isfinite(scores))


def run_python(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


# --------------------------------------------------------------- no pickle, ever


def test_the_store_holds_only_bytes_text_and_integers(tiny_model, tmp_path):
    """No value of the store can be a pickle: every column is a blob, text or integer."""
    store = FeatureStore(tmp_path / "store")
    texts = sentences(15)
    featurizer(tiny_model, store, pooling="pooler").fit(texts).transform(texts)
    store.stats()
    store.close()
    with sqlite3.connect(tmp_path / "store" / "store.db") as con:
        tables = [t for (t,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT GLOB 'sqlite_*'")]
        kinds = set()
        for table in tables:
            columns = [c[1] for c in con.execute(f"PRAGMA table_info({table})")]
            for column in columns:
                kinds |= {k for (k,) in con.execute(f"SELECT DISTINCT typeof({column}) "
                                                    f"FROM {table}")}
        (vectors,) = con.execute("SELECT count(*) FROM vectors").fetchone()
    assert vectors > 0
    assert kinds <= {"blob", "text", "integer"}, kinds


def test_damaged_value_is_a_miss_with_a_warning_and_is_rewritten(tiny_model, tmp_path,
                                                                 encode_spy):
    store = FeatureStore(tmp_path / "store")
    texts = sentences(8)
    good = featurizer(tiny_model, store).fit(texts)
    reference = good.transform(texts)
    assert sum(encode_spy) == 8
    # damage every stored block of the last layer
    with store.cache.write() as con:
        damaged = con.execute("UPDATE vectors SET data = ? WHERE layer = ?",
                              (b"BFS1garbage", good.n_layers_)).rowcount
    assert damaged
    with pytest.warns(RuntimeWarning, match="damaged"):
        again = featurizer(tiny_model, store).fit(texts).transform(texts)
    assert sum(encode_spy) == 16  # encoded again, never returned garbage
    assert_same_computation(again, reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = featurizer(tiny_model, store).fit(texts).transform(texts)
    assert sum(encode_spy) == 16  # rewritten: now a clean hit
    assert_same_computation(third, reference)


# ------------------------------------------------------------ size limit, stats, clear


def test_size_limit_evicts_and_stats_show_usage(tiny_model, tmp_path):
    limit = 400_000
    store = FeatureStore(tmp_path / "store", size_limit=limit)
    texts = sentences(600)
    featurizer(tiny_model, store, batch_size=8).fit(texts).transform(texts)
    stats = store.stats()
    assert stats["size_limit"] == limit
    assert stats["bytes"] <= 2 * limit  # the store evicts down to the limit as it writes
    assert 0 < stats["entries"] < 600  # some entries were evicted


def test_default_size_limit_follows_free_disk_space(tmp_path, monkeypatch):
    from collections import namedtuple

    from bertfeat.store import DEFAULT_SIZE_LIMIT
    from bertfeat.store import core as store_module  # where the limit is computed

    usage = namedtuple("usage", "total used free")
    assert DEFAULT_SIZE_LIMIT == 8 * 2**30 and "8 GiB" in FeatureStore.__doc__
    assert FeatureStore().size_limit is None  # the parameter, stored as given
    monkeypatch.setattr(store_module.shutil, "disk_usage",
                        lambda path: usage(2**40, 2**39, 100 * 2**30))
    big = FeatureStore(tmp_path / "big")
    assert big.limit == 50 * 2**30  # half of the free space
    assert big.stats()["size_limit"] == 50 * 2**30
    monkeypatch.setattr(store_module.shutil, "disk_usage",
                        lambda path: usage(2**40, 2**39, 2**30))
    assert FeatureStore(tmp_path / "small").limit == DEFAULT_SIZE_LIMIT  # never below 8 GiB
    assert FeatureStore(tmp_path / "fixed", size_limit=12345).limit == 12345


def test_stats_and_clear_per_model(tmp_path):
    a = str(make_tiny_model(tmp_path / "a", seed=0))
    b = str(make_tiny_model(tmp_path / "b", seed=1))
    store = FeatureStore(tmp_path / "store")
    texts = sentences(10)
    fa = featurizer(a, store).fit(texts)
    fa.transform(texts)
    fa.transform(texts)
    featurizer(b, store).fit(texts).transform(texts[:4])
    stats = store.stats()
    assert stats["entries"] == 14
    per = stats["models"]
    assert per[fa.fingerprint_]["entries"] == 10
    assert per[fa.fingerprint_]["encoded"] == 10
    assert per[fa.fingerprint_]["hits"] == 10
    assert per[fa.fingerprint_]["misses"] == 10
    assert per[fa.fingerprint_]["model"]["model"] == a
    assert store.clear(model=a) > 0
    stats = store.stats()
    assert stats["entries"] == 4
    assert fa.fingerprint_ not in stats["models"]
    store.clear()
    assert store.stats()["entries"] == 0


# ----------------------------------------------------- crash safety (batch by batch)

_SLOW_WRITER = textwrap.dedent("""
    import sys, json, time
    from bertfeat import BertFeaturizer, store
    real = store.FeatureStore.write
    def slow(self, *args, **kwargs):
        real(self, *args, **kwargs)
        time.sleep(0.05)
    store.FeatureStore.write = slow
    model, cache, corpus = sys.argv[1:4]
    texts = json.load(open(corpus))
    BertFeaturizer(model=model, cache=cache, precision="fp32", batch_size=4).fit(
        texts).transform(texts)
""")


def test_killed_run_keeps_finished_batches(tiny_model, tmp_path, encode_spy):
    texts = sentences(400)
    corpus = tmp_path / "texts.json"
    corpus.write_text(json.dumps(texts))
    store_dir = tmp_path / "store"
    proc = run_python(_SLOW_WRITER, tiny_model, store_dir, corpus)
    store = FeatureStore(store_dir)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if (store_dir / "store.db").exists():
            done = store.stats()["entries"]
            if done >= 40:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = store.stats()["entries"]
    assert 0 < done < 400
    result = featurizer(tiny_model, store, batch_size=4).fit(texts).transform(texts)
    assert sum(encode_spy) == 400 - done  # only the unfinished texts
    reference = featurizer(tiny_model, False).fit(texts).transform(texts)
    assert_within_bound(result, reference)


# ----------------------------------------------------------------- the warm path


def test_warm_path_does_no_tokenisation_and_no_model_load(tiny_model, tmp_path,
                                                          monkeypatch):
    store = str(tmp_path / "store")
    texts = sentences(50)
    cold = featurizer(tiny_model, store, layers="all").fit(texts).transform(texts)
    models.forget_loaded()

    def forbidden(*args, **kwargs):
        raise AssertionError("the warm path must not tokenise or load a model")

    monkeypatch.setattr(models.loading, "load", forbidden)
    monkeypatch.setattr(models, "load_shared", forbidden)
    monkeypatch.setattr(encoder, "tokenize", forbidden)
    monkeypatch.setattr(encoder, "encode", forbidden)
    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", forbidden)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", forbidden)
    warm = featurizer(tiny_model, store, layers="all").fit(texts).transform(texts)
    assert_same_computation(cold, warm)
    for pooling in ("cls", "max", "mean_max", "first_last"):
        featurizer(tiny_model, store, layers=[1, 2], pooling=pooling).fit(texts).transform(texts)


def test_a_transiently_locked_open_is_tried_again_within_the_timeout(tmp_path, monkeypatch):
    # processes opening one store at once can meet an immediate "database is locked"
    from bertfeat.store.database import Database

    real = Database._open
    failures = []

    def contended(self):
        if len(failures) < 2:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        return real(self)

    monkeypatch.setattr(Database, "_open", contended)
    store = FeatureStore(tmp_path / "store")
    assert store.cache is not None and len(failures) == 2

    def stuck(self):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Database, "_open", stuck)
    held = FeatureStore(tmp_path / "held", timeout=0.2)
    with pytest.raises(StoreError, match="locked by another process for more than 0.2 s"):
        _ = held.cache
