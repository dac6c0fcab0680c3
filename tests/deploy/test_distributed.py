"""Dask scale-out (issue 7), on a real ``LocalCluster``: 2 worker processes, 1 thread each.

The cluster is shared by the module (starting one costs seconds); every test uses its own
tiny model (own fingerprint) or ``cache=False`` so store counters do not leak between
tests. Worker stores are per worker (``w-{worker}``), like machines without a shared disk.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from bertfeat import BertFeaturizer, FeatureStore, models  # noqa: E402
from bertfeat.deploy import dask_parquet, dask_partitions  # noqa: E402
from bertfeat.distributed import (  # noqa: E402
    configure_workers,
    featurize,
    to_parquet,
    worker_stats,
)

from ..conftest import WORDS, make_tiny_model, needs_default_model  # noqa: E402
from ..equality import assert_within_bound  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def sentences(n: int, seed: int = 0) -> list[str]:
    """Texts with duplicates and an empty string, like real corpora."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(1, 14))) for _ in range(n)]
    texts[3] = ""
    texts[7] = texts[1]
    texts[-1] = texts[2]
    return texts


def deltas(before: dict, after: dict, key: str) -> dict[int, int]:
    """Per worker pid, how much ``key`` grew (workers that appeared count from 0)."""
    old = {info["pid"]: info[key] for info in before.values()}
    return {info["pid"]: info[key] - old.get(info["pid"], 0) for info in after.values()}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import cloudpickle

    # helpers of this module run on the workers: ship them by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    stores = tmp_path_factory.mktemp("worker-stores")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.CRITICAL
                                  ) as cluster, distributed.Client(cluster) as client:
        configure_workers(client, cache_dir=str(stores / "w-{worker}"), torch_threads=1)
        yield client
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def fresh_model(tmp_path) -> str:
    """A tiny model of its own: its own fingerprint, so store counters start at zero."""
    seed = int.from_bytes(os.urandom(2), "little")
    return str(make_tiny_model(tmp_path / "model", seed=seed))


def frame(texts: list[str], npartitions: int, start: int = 100):
    pdf = pd.DataFrame({"id": np.arange(start, start + len(texts)), "text": texts},
                       index=pd.RangeIndex(start, start + len(texts)))
    return pdf, dd.from_pandas(pdf, npartitions=npartitions, sort=True)


def per_partition_reference(featurizer: BertFeaturizer, ddf, column="text") -> np.ndarray:
    """What a single process gets when it transforms partition by partition."""
    local = clone(featurizer).set_params(cache=False).fit([])
    parts = [ddf.get_partition(i).compute()[column] for i in range(ddf.npartitions)]
    return np.concatenate([local.transform(part) for part in parts])


def test_threads_of_one_process_share_one_model_load(tiny_model, monkeypatch):
    """A Dask worker with several threads loads a model once (models.load_shared)."""
    from concurrent.futures import ThreadPoolExecutor

    calls = []

    def slow_load(info, **kwargs):
        calls.append(kwargs)
        time.sleep(0.3)
        return object(), object()

    monkeypatch.setattr(models.loading, "load", slow_load)
    models.forget_loaded()
    info = models.resolve_model(tiny_model)
    start = models.load_count()
    with ThreadPoolExecutor(4) as pool:
        pairs = list(pool.map(lambda _: models.load_shared(
            info, depth=2, device="cpu", precision="fp32"), range(4)))
    models.forget_loaded()
    assert len(calls) == 1 and models.load_count() == start + 1
    assert all(pair is pairs[0] for pair in pairs)


# --------------------------------------------------------------------------- featurize


def test_dataframe_matches_local_with_one_model_load_per_worker(client, fresh_model):
    texts = sentences(64)
    pdf, ddf = frame(texts, npartitions=8)
    featurizer = BertFeaturizer(model=fresh_model, layers=[-1, -2], precision="fp32")
    client.run(models.forget_loaded)
    before = worker_stats(client)

    out = featurize(featurizer, ddf, column="text")
    # columns, dtype, partitioning are known before anything runs
    local = clone(featurizer).set_params(cache=False).fit(texts)
    assert list(out.columns) == list(local.get_feature_names_out())
    assert set(out.dtypes) == {np.dtype("float32")}
    assert out.npartitions == ddf.npartitions and out.divisions == ddf.divisions
    assert deltas(before, worker_stats(client), "partitions") == {
        info["pid"]: 0 for info in before.values()}
    assert not hasattr(featurizer, "layers_")  # the user's featurizer is not fitted in place

    result = out.compute()
    after = worker_stats(client)

    pd.testing.assert_index_equal(result.index, pdf.index)
    assert result.dtypes.unique().tolist() == [np.dtype("float32")]
    assert_within_bound(result.to_numpy(), local.transform(texts))
    # the same batches as one process transforming partition by partition (up to fp32
    # rounding: the worker runs 1 torch thread, this process more)
    np.testing.assert_allclose(result.to_numpy(), per_partition_reference(featurizer, ddf),
                               rtol=0, atol=1e-6)

    parts = deltas(before, after, "partitions")
    loads = deltas(before, after, "model_loads")
    assert sum(parts.values()) == 8
    assert max(parts.values()) >= 2  # some worker ran several partitions ...
    for pid, n in parts.items():  # ... and every worker loaded the model once at most
        assert loads[pid] == (1 if n else 0), (parts, loads)
    # every worker wrote to its own store ("w-0", "w-1"), and only the texts it encoded
    stores = {info["store"] for info in after.values()}
    assert len(stores) == 2 and all(re.search(r"w-\d$", s) for s in stores)
    fp = clone(featurizer).fit(texts).fingerprint_  # cache=False hashes no weights: no key
    encoded = [FeatureStore(s).stats()["models"].get(fp, {}).get("encoded", 0) for s in stores]
    assert len(set(texts)) <= sum(encoded) <= len(texts)


def test_bag_and_array_inputs(client, tiny_model):
    import dask.array as da
    import dask.bag as db

    texts = sentences(40, seed=1)
    featurizer = BertFeaturizer(model=tiny_model, pooling="mean_max", precision="fp32",
                                cache=False)
    expected = clone(featurizer).fit([]).transform(texts)

    bag = featurize(featurizer, db.from_sequence(texts, npartitions=3))
    assert bag.dtype == np.float32 and bag.shape[1] == expected.shape[1]
    assert np.isnan(bag.shape[0])  # bag partitions have unknown lengths
    assert_within_bound(bag.compute(), expected)

    array = da.from_array(np.asarray(texts, dtype=object), chunks=15)
    out = featurize(featurizer, array)
    assert out.shape == expected.shape and out.chunks[0] == (15, 15, 10)
    assert_within_bound(out.compute(), expected)

    series = featurize(featurizer, dd.from_pandas(pd.Series(texts), npartitions=4))
    assert_within_bound(series.compute().to_numpy(), expected)
    # without a cluster (in this process) too
    np.testing.assert_allclose(series.compute(scheduler="sync").to_numpy(), expected,
                               rtol=1e-5, atol=1e-6)

    with pytest.raises(ValueError, match="column="):
        featurize(featurizer, dd.from_pandas(pd.DataFrame({"a": texts, "b": texts}), 2))
    with pytest.raises(TypeError, match="Dask DataFrame or Series"):
        featurize(featurizer, texts)


def test_shared_store_directory_is_read_bit_for_bit(client, fresh_model, tmp_path):
    """Workers pointed at the client's store directory encode nothing already there."""
    shared = str(tmp_path / "shared-store")
    texts = sentences(48, seed=2)
    local = BertFeaturizer(model=fresh_model, cache=shared).fit(texts)
    expected = local.transform(texts)  # encodes every unique text into the shared store
    store = FeatureStore(shared)
    fp = local.fingerprint_
    encoded_before = store.stats()["models"][fp]["encoded"]
    assert encoded_before == len(set(texts))

    _, ddf = frame(texts, npartitions=4)
    result = featurize(BertFeaturizer(model=fresh_model, cache=shared), ddf,
                       column="text").compute()
    assert_within_bound(result.to_numpy(), expected)
    stats = store.stats()["models"][fp]
    assert stats["encoded"] == encoded_before  # the workers only read
    assert stats["hits"] >= len(set(texts))


# ----------------------------------------------------------------- joblib dask backend


def test_gridsearch_with_joblib_dask_backend(client, fresh_model, tmp_path):
    import joblib

    texts = sentences(48, seed=3)
    y = np.array([("good" in t or "great" in t) for t in texts], dtype=int)
    y[:4] = [0, 1, 0, 1]
    pipe = make_pipeline(BertFeaturizer(model=fresh_model, precision="fp32"),
                         LogisticRegression(max_iter=500))
    grid = {"bertfeaturizer__pooling": ["mean", "max"], "logisticregression__C": [0.1, 10.0]}

    fitted = clone(pipe).fit(texts, y)  # loads the model here, then pickles without it
    weights = sum(p.stat().st_size for p in Path(fresh_model).glob("*.safetensors"))
    assert len(pickle.dumps(fitted)) < min(weights, 64_000)
    assert len(pickle.dumps(fitted[0])) < 16_000

    client.run(models.forget_loaded)
    before = worker_stats(client)
    with joblib.parallel_backend("dask"):
        search = GridSearchCV(pipe, grid, cv=3, n_jobs=-1, refit=False).fit(texts, y)
    after = worker_stats(client)

    loads = deltas(before, after, "model_loads")
    assert sum(loads.values()) >= 1 and max(loads.values()) <= 1, loads
    # the search ran 12 fits x (train + test transform) on the workers; each worker's store
    # encoded each text at most once
    fp = fitted[0].fingerprint_
    for info in after.values():
        stats = FeatureStore(info["store"]).stats()["models"].get(fp)
        if stats is not None:
            assert stats["encoded"] <= len(set(texts))
            assert stats["hits"] > 0

    # the same search in this process: features equal up to fp32 rounding, which may flip
    # at most a borderline prediction (1 of 16 texts per fold)
    local = GridSearchCV(pipe, grid, cv=3, refit=False).fit(texts, y)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"], atol=1 / 16 + 1e-9)

    # and from one shared store, the very same vectors: the very same scores
    shared = pipe.set_params(bertfeaturizer__cache=str(tmp_path / "shared"))
    local = GridSearchCV(shared, grid, cv=3, refit=False).fit(texts, y)
    with joblib.parallel_backend("dask"):
        search = GridSearchCV(shared, grid, cv=3, n_jobs=-1, refit=False).fit(texts, y)
    assert search.best_params_ == local.best_params_
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])


# ------------------------------------------------------------------------------ parquet


def _fail_last_partition(part, directory: str, n_done: int):
    """Raise in the partition holding the last row, once ``n_done`` others' files exist."""
    if len(part) and part["id"].max() == 163:
        deadline = time.monotonic() + 30
        while len(list(Path(directory).glob("part-*.parquet"))) < n_done:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        raise RuntimeError("simulated crash")
    return part


def _busy(dask_worker) -> int:
    """Tasks a worker still holds: running, queued, or cancelled but not yet finished."""
    return len(dask_worker.state.tasks) + dask_worker.state.executing_count


def _scheduler_tasks(dask_scheduler) -> int:
    return len(dask_scheduler.tasks)


def test_parquet_export_resumes_and_skips_finished_partitions(client, tiny_model, tmp_path):
    pytest.importorskip("pyarrow")
    texts = sentences(64, seed=4)
    pdf, ddf = frame(texts, npartitions=8)
    featurizer = BertFeaturizer(model=tiny_model, precision="fp32", cache=False)
    out = tmp_path / "features"

    # run 1 crashes on the last partition once several others are written
    crashing = ddf.map_partitions(_fail_last_partition, str(out), 4, meta=ddf._meta)
    with pytest.raises(RuntimeError, match="simulated crash"):
        to_parquet(featurizer, crashing, out, column="text", keep=["id"])
    # let run 1 wind down completely: a task still queued on a worker when the error came
    # back may start late and write its partition while run 2 is under way
    deadline = time.monotonic() + 60
    while (client.run_on_scheduler(_scheduler_tasks) or any(client.run(_busy).values())) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    finished = sorted(int(p.name[5:10]) for p in out.glob("part-*.parquet"))
    assert finished and 7 not in finished
    # a run killed mid-write leaves only a hidden temporary, never a finished-looking file
    (out / ".part-00007.parquet.0123abcd.tmp").write_bytes(b"half a file")

    before = worker_stats(client)
    report = to_parquet(featurizer, ddf, out, column="text", keep=["id"])
    after = worker_stats(client)
    missing = sorted(set(range(8)) - set(finished))
    assert report.skipped == finished and report.written == missing and report.complete
    assert report.rows_written == 8 * len(missing)
    # only the missing partitions were encoded
    assert sum(deltas(before, after, "texts").values()) == 8 * len(missing)
    assert not list(out.glob(".*.tmp"))

    report = to_parquet(featurizer, ddf, out, column="text", keep=["id"])
    assert report.written == [] and report.skipped == list(range(8))
    assert sum(deltas(after, worker_stats(client), "texts").values()) == 0

    back = pd.read_parquet(out)  # hidden and _manifest files are ignored by readers
    assert list(back.columns[:2]) == ["id", "L3_mean_0"]
    np.testing.assert_array_equal(back.index.to_numpy(), pdf.index.to_numpy())
    np.testing.assert_array_equal(back["id"].to_numpy(), pdf["id"].to_numpy())
    np.testing.assert_allclose(back.iloc[:, 1:].to_numpy(),
                               clone(featurizer).fit([]).transform(texts), rtol=1e-5, atol=1e-6)
    assert dd.read_parquet(out).npartitions == 8

    with pytest.raises(ValueError, match="other settings"):
        to_parquet(featurizer.set_params(pooling="max"), ddf, out, column="text", keep=["id"])
    with pytest.raises(ValueError, match="other settings"):
        to_parquet(featurizer.set_params(pooling="mean"), ddf.repartition(npartitions=4), out,
                   column="text", keep=["id"])
    report = to_parquet(featurizer.set_params(pooling="max"), ddf, out, column="text",
                        overwrite=True)
    assert report.written == list(range(8))
    assert list(pd.read_parquet(out).columns[:1]) == ["L3_max_0"]


def test_partition_file_appears_only_when_complete(tiny_model, tmp_path, monkeypatch):
    """A process that dies between writing and publishing leaves no finished-looking file."""
    pytest.importorskip("pyarrow")
    part = pd.DataFrame({"text": ["good film", "bad plot", ""]}, index=[5, 6, 7])
    featurizer = BertFeaturizer(model=tiny_model, cache=False).fit([])
    names = list(featurizer.get_feature_names_out())
    target = tmp_path / "part-00000.parquet"
    args = (featurizer, dask_partitions._token(featurizer), "text", names, [], str(target), None)

    def dies(src, dst):
        assert Path(src).stat().st_size > 0 and Path(src).name.startswith(".")
        raise KeyboardInterrupt  # the process is gone before the rename

    monkeypatch.setattr(dask_parquet.os, "replace", dies)
    with pytest.raises(KeyboardInterrupt):
        dask_parquet._write_partition(part, *args)
    assert not target.exists()
    monkeypatch.undo()
    assert dask_parquet._write_partition(part, *args) == 3
    back = pd.read_parquet(target)
    assert back.index.tolist() == [5, 6, 7] and list(back.columns) == names


# ---------------------------------------------------------------------------- worker loss


def _die_once(part, marker: str, baseline: dict):
    """SIGKILL this worker process once, on a partition after it has featurized another."""
    if dask_partitions._counters["partitions"] > baseline.get(os.getpid(), 0):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return part
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
    return part


@pytest.mark.slow
def test_worker_killed_mid_job_is_retried(client, tiny_model, tmp_path):
    texts = sentences(96, seed=5)
    _, ddf = frame(texts, npartitions=12)
    featurizer = BertFeaturizer(model=tiny_model, precision="fp32", cache=False)
    marker = tmp_path / "killed"
    before = worker_stats(client)
    baseline = {info["pid"]: info["partitions"] for info in before.values()}

    doomed = ddf.map_partitions(_die_once, str(marker), baseline, meta=ddf._meta)
    result = featurize(featurizer, doomed, column="text").compute()

    assert marker.exists(), "no worker was killed: the test proved nothing"
    killed = int(marker.read_text())
    assert killed in baseline
    client.wait_for_workers(2, timeout=120)
    after = worker_stats(client)
    assert killed not in {info["pid"] for info in after.values()}
    # the restarted worker got the plugin again (its own store, one torch thread)
    assert all(re.search(r"w-\d$", info["store"]) for info in after.values())

    assert len(result) == len(texts)
    np.testing.assert_array_equal(result.index.to_numpy(), np.arange(100, 196))
    np.testing.assert_allclose(result.to_numpy(), clone(featurizer).fit([]).transform(texts),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.to_numpy(), per_partition_reference(featurizer, ddf),
                               rtol=0, atol=1e-6)


# ------------------------------------------------------------------------- the README


@pytest.mark.slow
@needs_default_model
def test_scaling_doc_example_runs_as_written(tmp_path):
    doc = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert blocks, "docs/scaling.md has no python example"
    script = tmp_path / "scaling_example.py"
    script.write_text(blocks[0], encoding="utf-8")
    env = {**os.environ, "BERTFEAT_CACHE_DIR": str(tmp_path / "store")}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "features: (" in proc.stdout, proc.stdout
