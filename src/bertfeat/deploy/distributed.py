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

This module is the public face; the work is in :mod:`~bertfeat.deploy.dask_partitions`
(a partition's features in a worker process, and what the process keeps between tasks),
:mod:`~bertfeat.deploy.dask_parquet` (:func:`to_parquet`) and
:mod:`~bertfeat.deploy.dask_workers` (worker settings and statistics).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..estimators.featurizer import BertFeaturizer
from .dask_parquet import ExportReport, to_parquet
from .dask_partitions import (
    _array_block,
    _bag_partition,
    _fitted,
    _frame_partition,
    _require_dask,
    _text_series,
    _token,
)
from .dask_workers import BertfeatWorkerPlugin, configure_workers, worker_stats

__all__ = [
    "featurize",
    "to_parquet",
    "ExportReport",
    "BertfeatWorkerPlugin",
    "configure_workers",
    "worker_stats",
]


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
