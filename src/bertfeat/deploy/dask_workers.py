"""Dask worker settings for bertfeat: the store directory and torch threads of every worker
(:class:`BertfeatWorkerPlugin`, :func:`configure_workers`), and what each has done
(:func:`worker_stats`).
"""

from __future__ import annotations

import os
import re
from typing import Any

import joblib

from . import dask_partitions

__all__ = ["BertfeatWorkerPlugin", "configure_workers", "worker_stats"]


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
        """Apply the settings in the worker process.

        Parameters
        ----------
        worker : distributed.Worker
            The worker (its name and address).
        """
        if self.cache_dir is not None:
            directory = str(self.cache_dir).replace("{worker}", _safe_name(worker.name))
            os.environ["BERTFEAT_CACHE_DIR"] = directory
            dask_partitions.forget_featurizers()  # opened with the old default store
        if self.torch_threads is not None:
            if self.torch_threads == "auto":
                processes = self.processes_per_host.get(_host(worker.address), 1)
                threads = max(1, joblib.cpu_count() // max(1, processes))
            else:
                threads = int(self.torch_threads)
            dask_partitions.set_torch_threads(threads)


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
    return client.run(dask_partitions.local_stats, store)
