"""Featurize Dask collections across a cluster, one model load per worker process.

Needs the ``dask`` extra (``pip install 'bertfeat[dask]'``) and, for :func:`to_parquet`,
``pyarrow``.

How the work is spread::

    client: fit the featurizer (reads the model config, no weights) ─► names + meta known
    worker: per partition ─► process-level featurizer (one per settings, kept between
            tasks) ─► store lookup ─► (misses) encoder ─► store write ─► features

* **One model load per worker process.** The featurizer travels without weights; on the
  worker, :func:`bertfeat.models.load_shared` keeps the loaded model for the life of the
  process, and this module keeps one unpickled featurizer per settings (with its open
  store) between tasks, so partition 2..n of a worker neither load a model nor reopen
  the store. :func:`worker_stats` reports loads per worker.
* **Stores.** ``cache="auto"`` resolves *on each worker* to that worker's default store
  (``$BERTFEAT_CACHE_DIR`` there, else ``~/.cache/bertfeat``); ``cache="/shared/dir"`` makes
  every worker use that directory. Worker processes on one machine may share a store
  directory on its local disk; machines each keep their own (the store is SQLite in WAL mode,
  which needs every process on one host, so never one store on NFS for several machines).
  Each store encodes its own misses; the features are the same either way.
  :class:`BertfeatWorkerPlugin` sets the store directory and torch threads on every worker
  (restarted ones included).
* **Threads.** Dask's nanny starts workers with ``OMP_NUM_THREADS=1``, so torch in a worker
  uses one core unless told otherwise; give each worker process ``cores / processes``
  torch threads (``configure_workers(client, torch_threads="auto")``) and run one Dask
  thread per worker (the encoder already parallelises inside a batch).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ..estimators.featurizer import BertFeaturizer
from ..lru import LRU

__all__ = [
    "featurize",
    "to_parquet",
    "ExportReport",
    "BertfeatWorkerPlugin",
    "configure_workers",
    "worker_stats",
]

#: Parquet files of finished partitions are named ``part-00000.parquet`` ...
PART_NAME = "part-{index:05d}.parquet"
MANIFEST_NAME = "_bertfeat_export.json"
_EXPORT_FORMAT = 1
_TMP_PATTERN = re.compile(r"^\.part-\d+\.parquet\.[0-9a-f]+\.tmp$")

# ----------------------------------------------------------------------- per-process state
#: unpickled featurizers kept per process (keyed by a hash of their pickled state)
_MAX_FEATURIZERS = 4
_featurizers: LRU[str, BertFeaturizer] = LRU(_MAX_FEATURIZERS)
#: one partition at a time per process: the encoder already uses every torch thread, and
#: a fast tokenizer must not be called from two threads at once
_process_lock = threading.Lock()
_counters = {"partitions": 0, "texts": 0}
_torch_threads: int | None = None


def _require_dask() -> None:
    try:
        import dask  # noqa: F401
        import dask.dataframe  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "bertfeat.distributed needs Dask: pip install 'bertfeat[dask]'"
        ) from exc


def _fitted(featurizer: BertFeaturizer) -> BertFeaturizer:
    """The featurizer itself when fitted, else a fitted clone (reads config, no weights)."""
    from sklearn.base import clone

    if not isinstance(featurizer, BertFeaturizer):
        raise TypeError(
            f"featurizer must be a BertFeaturizer, got {type(featurizer).__name__}")
    if hasattr(featurizer, "layers_"):
        return featurizer
    return clone(featurizer).fit([])


def _token(featurizer: BertFeaturizer) -> str:
    """Identity of a featurizer's settings: a hash of its (weightless) pickle."""
    return hashlib.sha256(pickle.dumps(featurizer, protocol=4)).hexdigest()


def _process_featurizer(featurizer: BertFeaturizer, token: str) -> BertFeaturizer:
    """The process's featurizer for these settings, fitted here once and then kept.

    Fitting in the worker opens (and registers the model in) the worker's own store and
    checks that the worker sees the same model files and precision as the client: a
    different fingerprint would mean different vectors, so it is an error.
    """
    from sklearn.base import clone

    local = _featurizers.get(token)
    if local is None:
        local = clone(featurizer)
        if featurizer.precision == "auto" and getattr(featurizer, "precision_", None):
            # the client's measured decision: a worker measuring its own (on another CPU,
            # or under other load) could choose otherwise, and its vectors would not be
            # the client's
            local.set_params(precision=featurizer.precision_)
        local = local.fit([])
        if local.fingerprint_ != featurizer.fingerprint_:
            raise ValueError(
                f"bertfeat: this worker (pid {os.getpid()}) resolves model="
                f"{featurizer.model!r} to other files or settings than the client "
                f"(precision {local.precision_!r} here, {featurizer.precision_!r} there; "
                f"fingerprint {local.fingerprint_} != {featurizer.fingerprint_}). Install "
                "the same model files on every machine and pin precision= and device=.")
        _featurizers.put(token, local)
    return local


def _transform_partition(texts: Any, featurizer: BertFeaturizer, token: str) -> np.ndarray:
    """Features of one partition, in the worker process (float32, (n, n_features_out_))."""
    n = len(texts)
    if n == 0:  # empty partitions never load a model
        return np.zeros((0, featurizer.n_features_out_), dtype=np.float32)
    with _process_lock:
        if _torch_threads is not None:
            import torch

            if torch.get_num_threads() != _torch_threads:
                torch.set_num_threads(_torch_threads)
        local = _process_featurizer(featurizer, token)
        features = local.transform(texts)
        _counters["partitions"] += 1
        _counters["texts"] += n
    return features


def _frame_partition(part: Any, featurizer: BertFeaturizer, token: str,
                     column: Any, names: list[str]) -> Any:
    import pandas as pd

    texts = part if column is None else part[column]
    values = _transform_partition(texts, featurizer, token)
    return pd.DataFrame(values, index=part.index, columns=names, copy=False)


def _array_block(block: np.ndarray, featurizer: BertFeaturizer, token: str) -> np.ndarray:
    return _transform_partition(list(block), featurizer, token)


def _bag_partition(part: Any, featurizer: BertFeaturizer, token: str) -> np.ndarray:
    return _transform_partition(list(part), featurizer, token)


def _text_series(data: Any, column: Any) -> tuple[Any, Any]:
    """Check a Dask DataFrame/Series input and say which column holds the texts."""
    import dask.dataframe as dd

    if isinstance(data, dd.Series):
        if column is not None:
            raise ValueError("column= is for a Dask DataFrame; got a Dask Series")
        return data, None
    if isinstance(data, dd.DataFrame):
        if column is None:
            if len(data.columns) != 1:
                raise ValueError(
                    f"The Dask DataFrame has {len(data.columns)} columns "
                    f"{list(data.columns)[:5]}; say which one holds the texts with column=.")
            column = data.columns[0]
        if column not in data.columns:
            raise KeyError(f"column {column!r} is not in the DataFrame "
                           f"(columns: {list(data.columns)[:10]})")
        return data, column
    raise TypeError(
        "expected a Dask DataFrame or Series, got "
        f"{type(data).__module__}.{type(data).__name__}")


def featurize(featurizer: BertFeaturizer, data: Any, *, column: Any = None) -> Any:
    """Lazily featurize a Dask collection of texts, partition by partition.

    Nothing is computed here: the result is a Dask collection whose columns, dtype and
    partitioning are known from the featurizer alone. Each worker loads the model once
    (on its first non-empty partition) and keeps it for later partitions; the worker's
    feature store is read before anything is encoded.

    Parameters
    ----------
    featurizer : BertFeaturizer
        Fitted or not; an unfitted one is fitted on a copy here (that reads the model's
        config and hashes its files on the client, it loads no weights). The client and
        the workers must both be able to resolve ``featurizer.model``.
    data : dask DataFrame, dask Series, dask Bag or 1-D dask Array of str
        The texts.
    column : label, optional
        The text column of a Dask DataFrame (may be omitted when it has one column).

    Returns
    -------
    dask DataFrame or dask Array
        For a DataFrame or Series: a Dask DataFrame with the input's index and
        divisions, columns ``featurizer.get_feature_names_out()``, dtype float32. For a
        Bag: a Dask Array of shape ``(nan, n_features_out_)`` (one chunk per partition;
        ``.compute_chunk_sizes()`` fills in the lengths). For a 1-D Array: a Dask Array
        with the input's row chunks.

    Examples
    --------
    >>> import dask.dataframe as dd, pandas as pd
    >>> from bertfeat import BertFeaturizer
    >>> from bertfeat.distributed import featurize
    >>> texts = dd.from_pandas(pd.Series(["good film", "awful plot"]), npartitions=2)
    >>> features = featurize(BertFeaturizer(), texts)  # doctest: +SKIP
    >>> features.compute().shape  # doctest: +SKIP
    (2, 384)
    """
    _require_dask()
    import dask
    import dask.array as da
    import dask.bag as db
    import pandas as pd

    featurizer = _fitted(featurizer)
    token = _token(featurizer)
    names = [str(name) for name in featurizer.get_feature_names_out()]
    width = len(names)
    if isinstance(data, db.Bag):
        blocks = [
            da.from_delayed(dask.delayed(_bag_partition, pure=True)(part, featurizer, token),
                            shape=(np.nan, width), dtype=np.float32)
            for part in data.to_delayed()
        ]
        return da.concatenate(blocks, axis=0)
    if isinstance(data, da.Array):
        if data.ndim != 1:
            raise ValueError(f"expected a 1-D Dask Array of texts, got {data.ndim} dimensions")
        if data.numblocks[0] == 0:
            raise ValueError("the Dask Array holds no chunks")
        return data.map_blocks(_array_block, featurizer, token, dtype=np.float32,
                               chunks=(data.chunks[0], (width,)), new_axis=1,
                               meta=np.empty((0, width), dtype=np.float32))
    data, column = _text_series(data, column)
    meta = pd.DataFrame(np.empty((0, width), dtype=np.float32), columns=names,
                        index=data._meta.index)
    return data.map_partitions(_frame_partition, featurizer, token, column, names, meta=meta)


# ------------------------------------------------------------------------------- parquet


@dataclass
class ExportReport:
    """What :func:`to_parquet` did.

    Attributes
    ----------
    path : str
        The output directory.
    n_partitions : int
        Partitions of the input (= files when the export is complete).
    written : list of int
        Partitions encoded and written by this call.
    skipped : list of int
        Partitions whose finished file was already there (left untouched).
    rows_written : int
        Rows in the files written by this call.
    """

    path: str
    n_partitions: int
    written: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    rows_written: int = 0

    @property
    def complete(self) -> bool:
        """Whether every partition has its finished file."""
        return len(self.written) + len(self.skipped) == self.n_partitions


def _write_partition(part: Any, featurizer: BertFeaturizer, token: str, column: Any,
                     names: list[str], keep: list[Any], target: str,
                     compression: str | None) -> int:
    """Encode one partition and publish it atomically as ``target``."""
    import pandas as pd

    features = _frame_partition(part, featurizer, token, column, names)
    if keep:
        features = pd.concat([part[keep], features], axis=1)
    final = Path(target)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        features.to_parquet(tmp, engine="pyarrow", compression=compression, index=True)
        with open(tmp, "rb") as fh:  # the data is on disk before the name says "finished"
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(features)


def _manifest(featurizer: BertFeaturizer, names: list[str], n_partitions: int, column: Any,
              keep: list[Any]) -> dict:
    return {
        "format": _EXPORT_FORMAT,
        "fingerprint": featurizer.fingerprint_,
        "model": str(featurizer.model),
        "features": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        "n_features": len(names),
        "normalize": bool(featurizer.normalize_),
        "n_partitions": int(n_partitions),
        "column": None if column is None else str(column),
        "keep": [str(k) for k in keep],
    }


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def to_parquet(featurizer: BertFeaturizer, data: Any, path: str | os.PathLike, *,
               column: Any = None, keep: Sequence[Any] | None = None,
               compression: str | None = "snappy", overwrite: bool = False) -> ExportReport:
    """Write the features of every partition to ``path/part-NNNNN.parquet``, resumably.

    Each partition is written to a hidden temporary name and renamed into place only when
    complete, so a killed run never leaves a file that looks finished. A rerun with the
    same input and settings skips every partition whose file exists and encodes only the
    rest. ``path/_bertfeat_export.json`` records the settings; a rerun with different ones
    raises instead of mixing features.

    Parameters
    ----------
    featurizer : BertFeaturizer
        Fitted or not (see :func:`featurize`).
    data : dask DataFrame or dask Series
        The texts. Its partitioning must be the same on a rerun (same source, same
        ``npartitions``): partition ``i`` always goes to file ``i``.
    path : str or path
        Output directory, on a filesystem every worker and the client can reach (a
        local disk for a LocalCluster, a shared mount for a cluster).
    column : label, optional
        Text column of a DataFrame (may be omitted when it has one column).
    keep : sequence of labels, optional
        Input columns written before the features (ids, labels ...).
    compression : str or None, default="snappy"
        Parquet compression codec.
    overwrite : bool, default=False
        Delete an existing export at ``path`` (its part files and manifest) first.

    Returns
    -------
    ExportReport
        Partitions written and skipped by this call.

    Raises
    ------
    ValueError
        When ``path`` holds an export made with other settings or partitioning (and
        ``overwrite`` is False).

    Examples
    --------
    >>> from bertfeat.distributed import to_parquet  # doctest: +SKIP
    >>> report = to_parquet(BertFeaturizer(), df, "features/", column="text",
    ...                     keep=["id"])  # doctest: +SKIP
    >>> report.written, report.skipped  # doctest: +SKIP
    ([0, 1, 2], [])
    """
    _require_dask()
    import dask

    data, column = _text_series(data, column)
    keep = list(keep or [])
    if keep:
        import dask.dataframe as dd

        if not isinstance(data, dd.DataFrame):
            raise ValueError("keep= needs a Dask DataFrame input")
        missing = [k for k in keep if k not in data.columns]
        if missing:
            raise KeyError(f"keep columns not in the DataFrame: {missing}")
    featurizer = _fitted(featurizer)
    token = _token(featurizer)
    names = [str(name) for name in featurizer.get_feature_names_out()]
    clash = sorted(set(map(str, keep)) & set(names))
    if clash:
        raise ValueError(f"keep columns {clash} clash with feature names")
    out = Path(path).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    n_partitions = int(data.npartitions)
    manifest = _manifest(featurizer, names, n_partitions, column, keep)
    manifest_file = out / MANIFEST_NAME
    if overwrite:
        for file in out.glob("part-*.parquet"):
            file.unlink()
        manifest_file.unlink(missing_ok=True)
    if manifest_file.exists():
        old = json.loads(manifest_file.read_text(encoding="utf-8"))
        if old != manifest:
            changed = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            raise ValueError(
                f"{out} holds an export made with other settings ({', '.join(changed)} "
                "differ); pass overwrite=True to replace it or choose another path.")
    elif any(out.glob("part-*.parquet")):
        raise ValueError(f"{out} holds part files but no {MANIFEST_NAME}; pass "
                         "overwrite=True to replace them or choose another path.")
    _write_json(manifest_file, manifest)

    targets = [out / PART_NAME.format(index=i) for i in range(n_partitions)]
    skipped = [i for i, target in enumerate(targets) if target.exists()]
    todo = [i for i, target in enumerate(targets) if not target.exists()]
    parts = data.to_delayed()
    tasks = [
        dask.delayed(_write_partition, pure=False)(
            parts[i], featurizer, token, column, names, keep, str(targets[i]), compression)
        for i in todo
    ]
    rows = dask.compute(*tasks) if tasks else ()
    for leftover in out.iterdir():  # temporaries of attempts killed mid-write
        if _TMP_PATTERN.match(leftover.name):
            leftover.unlink(missing_ok=True)
    return ExportReport(path=str(out), n_partitions=n_partitions, written=todo,
                        skipped=skipped, rows_written=int(sum(rows)))


# ------------------------------------------------------------------------------ workers


def _safe_name(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).strip("_") or "worker"


def _host(address: str) -> str:
    from urllib.parse import urlparse

    return urlparse(address).hostname or address


try:  # the plugin base class only exists with distributed installed
    from distributed import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover - exercised only without the extra
    _WorkerPluginBase = object


class BertfeatWorkerPlugin(_WorkerPluginBase):
    """Set the feature store directory and torch threads on every Dask worker.

    Registered with ``client.register_plugin`` (or :func:`configure_workers`), it runs on
    every current worker and on every worker that joins or restarts later.

    Parameters
    ----------
    cache_dir : str, optional
        Store directory for featurizers with ``cache="auto"`` (sets
        ``BERTFEAT_CACHE_DIR`` in the worker). ``{worker}`` is replaced by the worker's
        name, which gives each worker a store of its own on one machine. None: leave it.
    torch_threads : int or "auto", optional
        Torch intra-op threads per worker process. ``"auto"``: the worker machine's cores
        divided by its number of worker processes (from ``processes_per_host``; 1 for a
        host not listed). None: leave them (Dask's nanny starts workers with one).
    processes_per_host : dict, optional
        Host name → worker processes on it, for ``torch_threads="auto"``.
    """

    name = "bertfeat"

    def __init__(self, cache_dir: str | None = None, torch_threads: int | str | None = None,
                 processes_per_host: dict[str, int] | None = None) -> None:
        self.cache_dir = cache_dir
        self.torch_threads = torch_threads
        self.processes_per_host = dict(processes_per_host or {})

    def setup(self, worker: Any) -> None:
        """Apply the settings in the worker process."""
        global _torch_threads
        if self.cache_dir is not None:
            directory = str(self.cache_dir).replace("{worker}", _safe_name(worker.name))
            os.environ["BERTFEAT_CACHE_DIR"] = directory
            _featurizers.clear()  # featurizers opened with the old default store
        if self.torch_threads is not None:
            import torch

            if self.torch_threads == "auto":
                processes = self.processes_per_host.get(_host(worker.address), 1)
                _torch_threads = max(1, joblib.cpu_count() // max(1, processes))
            else:
                _torch_threads = int(self.torch_threads)
            torch.set_num_threads(_torch_threads)


def configure_workers(client: Any, *, cache_dir: str | None = None,
                      torch_threads: int | str | None = "auto") -> dict[str, dict]:
    """Point every worker at a store directory and give each a fair share of the cores.

    Parameters
    ----------
    client : distributed.Client
        Client of the cluster.
    cache_dir : str, optional
        Store directory for ``cache="auto"`` featurizers on the workers: a directory on
        a filesystem all workers share, so a text encoded by one is a hit for all, or a
        local path (``{worker}`` is replaced by the worker name). None: leave each
        worker's default (``$BERTFEAT_CACHE_DIR`` or ``~/.cache/bertfeat`` there).
    torch_threads : int, "auto" or None, default="auto"
        Torch threads per worker process. ``"auto"``: on each worker, its machine's cores
        divided by the worker processes there now (e.g. 2 cores, 1 worker → 2; 2 workers
        → 1; a worker that joins on a new machine later takes all its cores). None: leave
        Dask's default of one thread.

    Returns
    -------
    dict
        :func:`worker_stats` after the plugin ran.
    """
    hosts: dict[str, int] = {}
    if torch_threads == "auto":
        for address in client.scheduler_info(n_workers=-1)["workers"]:
            hosts[_host(address)] = hosts.get(_host(address), 0) + 1
    elif torch_threads is not None and (
            not isinstance(torch_threads, int) or isinstance(torch_threads, bool)
            or torch_threads < 1):
        raise ValueError(f"torch_threads must be a positive int, 'auto' or None, "
                         f"got {torch_threads!r}")
    client.register_plugin(BertfeatWorkerPlugin(cache_dir=cache_dir, torch_threads=torch_threads,
                                                processes_per_host=hosts))
    return worker_stats(client)


def _local_stats(with_store: bool = False) -> dict:
    from .. import models
    from ..store import FeatureStore, default_cache_dir

    info = {
        "pid": os.getpid(),
        "model_loads": models.load_count(),
        "partitions": _counters["partitions"],
        "texts": _counters["texts"],
        "store": str(default_cache_dir()),
        "torch_threads": None,
    }
    if "torch" in sys.modules:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    if with_store:
        info["store_stats"] = FeatureStore(info["store"]).stats()
    return info


def worker_stats(client: Any, *, store: bool = False) -> dict[str, dict]:
    """What each worker process has done: model loads, partitions, texts, its store.

    Parameters
    ----------
    client : distributed.Client
        Client of the cluster.
    store : bool, default=False
        Also read each worker's default store (:meth:`FeatureStore.stats`: entries,
        hits, misses, texts encoded). This walks the store's keys: slow on big stores.

    Returns
    -------
    dict
        Worker address → ``pid``, ``model_loads`` (models loaded by this process),
        ``partitions`` and ``texts`` (featurized by this module in this process),
        ``store`` (its default store directory), ``torch_threads`` (None until torch is
        imported there) and, with ``store=True``, ``store_stats``.
    """
    return client.run(_local_stats, store)
