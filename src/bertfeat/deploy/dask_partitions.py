"""The worker side of :mod:`bertfeat.deploy.distributed`: one partition's features in one
process, with the state a worker process keeps between tasks.

A process keeps one unpickled featurizer per settings (with its open store) in a small
LRU, and runs one partition at a time (the encoder already uses every torch thread, and a
fast tokenizer must not be called from two threads at once). :func:`local_stats` is what
:func:`bertfeat.deploy.distributed.worker_stats` reads from each worker.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import threading
from typing import Any

import numpy as np

from ..estimators.featurizer import BertFeaturizer
from ..lru import LRU

__all__ = ["forget_featurizers", "local_stats", "set_torch_threads"]

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


def set_torch_threads(threads: int) -> None:
    """Torch intra-op threads for the partitions of this process (set now and before each).

    Parameters
    ----------
    threads : int
    """
    global _torch_threads
    import torch

    _torch_threads = int(threads)
    torch.set_num_threads(_torch_threads)


def forget_featurizers() -> None:
    """Drop the featurizers this process keeps (they hold stores opened under the old
    default directory)."""
    _featurizers.clear()


def local_stats(with_store: bool = False) -> dict:
    """What this process has done: model loads, partitions, texts, its store.

    Parameters
    ----------
    with_store : bool, default=False
        Also read the default store's :meth:`~bertfeat.FeatureStore.stats`.

    Returns
    -------
    dict
        ``pid``, ``model_loads``, ``partitions``, ``texts``, ``store``,
        ``torch_threads`` and, with ``with_store``, ``store_stats``.
    """
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
