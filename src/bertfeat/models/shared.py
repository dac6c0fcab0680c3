"""Loaded models shared within a process: clones of a featurizer (every fold and grid
point of a search) and the threads of a Dask worker use one loaded copy."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..lru import LRU
from . import loading
from .fingerprints import model_signature

if TYPE_CHECKING:
    from .spec import ModelInfo

__all__ = ["MAX_LOADED", "forget_loaded", "load_count", "load_shared"]

_loaded_lock = threading.Lock()
_key_locks: dict[tuple, threading.Lock] = {}
_load_count = 0
#: loaded (tokenizer, model) pairs kept per process, so clones in a search share them
MAX_LOADED = 2
_loaded: LRU[tuple, tuple[Any, Any]] = LRU(MAX_LOADED)


def load_shared(info: ModelInfo, *, depth: int, device: str, precision: str,
                trust_remote_code: bool = False, signature: tuple | None = None):
    """:func:`.loading.load`, memoised per process for the ``MAX_LOADED`` most recent settings.

    Clones of a featurizer (every fold and grid point of a search) then share one model
    in memory instead of loading it again. Threads asking for the same settings at the
    same time wait for one load (a multi-threaded Dask worker loads once).

    The memo is keyed by the directory's :func:`model_signature` too, so a directory whose
    files changed loads again. Pass the ``signature`` the caller checked its fingerprint
    against: a model is then loaded only from files that still have it (a ``ValueError``
    when they changed during the load).

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    depth, device, precision, trust_remote_code
        As for :func:`.loading.load`.
    signature : tuple, optional
        The :func:`model_signature` the caller's fingerprint was checked against.

    Returns
    -------
    tokenizer, model
    """
    global _load_count
    if signature is None:
        signature = model_signature(info)
    key = (str(info.path), info.revision, depth, device, precision, trust_remote_code,
           signature)
    with _loaded_lock:
        pair = _loaded.get(key)
        if pair is not None:
            return pair
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _loaded_lock:
            pair = _loaded.get(key)  # another thread may have loaded it while we waited
            if pair is not None:
                return pair
        pair = loading.load(info, depth=depth, device=device, precision=precision,
                    trust_remote_code=trust_remote_code)
        if model_signature(info) != signature:
            raise ValueError(
                f"model={info.spec!r}: files in {info.path} changed while the model was "
                "loading; run again once whatever writes them has finished.")
        with _loaded_lock:
            _loaded.put(key, pair)
            _load_count += 1
    return pair


def load_count() -> int:
    """How many times this process has loaded a model through :func:`load_shared`.

    Returns
    -------
    int
        Loads since the process started (cache hits are not counted). Used to check that
        a Dask worker or joblib process loads its model once.
    """
    return _load_count


def forget_loaded() -> None:
    """Drop every model held by :func:`load_shared` (frees memory)."""
    with _loaded_lock:
        _loaded.clear()

