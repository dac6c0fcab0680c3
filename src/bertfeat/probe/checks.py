"""The probe's argument checks and folds: data, poolings, task, splits, the store."""

from __future__ import annotations

import tempfile
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit, check_cv
from sklearn.utils.multiclass import type_of_target

from ..io.inputs import to_texts
from ..stats.cvstats import cv_splits
from ..store import FeatureStore
from .candidates import SWEEP_POOLINGS
from .context import ProbeContext
from .options import ProbeOptions

__all__ = ["check_data", "check_poolings", "infer_task", "make_splits", "probe_store", "design",
           "inner_splits", "holdout_split"]


def check_data(texts: Any, y: Any, task: str) -> tuple[list[str], np.ndarray, str]:
    texts, _ = to_texts(texts, "raise")
    y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if y.ndim != 1 or len(y) != len(texts):
        raise ValueError(f"y must be 1-D with one value per text: {len(texts)} texts, "
                         f"y of shape {y.shape}")
    if len(texts) == 0:
        raise ValueError("probe needs texts")
    return texts, y, infer_task(y, task)


def check_poolings(poolings: Any) -> tuple[str, ...]:
    poolings = tuple(dict.fromkeys([poolings] if isinstance(poolings, str) else poolings))
    bad = [p for p in poolings if p not in SWEEP_POOLINGS]
    if bad or not poolings:
        raise ValueError(f"poolings must be among {SWEEP_POOLINGS}, got {poolings!r}"
                         + (" ('pooler' exists for the last layer only: use "
                            "BertFeaturizer(pooling='pooler'))" if "pooler" in bad else ""))
    return poolings


def infer_task(y: np.ndarray, task: str) -> str:
    if task != "auto":
        return task
    kind = type_of_target(y)
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind == "continuous":
        return "regression"
    raise ValueError(f"y must be one label or one number per text; got a {kind!r} target")


def make_splits(cv: Any, task: str, y: np.ndarray, n: int, random_state: int,
            repeats: int = 1) -> list:
    """The folds: shuffled (stratified) K-fold, ``repeats`` times, for an int, else the
    user's splitter (one pass)."""
    cv = 5 if cv is None else cv
    if not (isinstance(cv, Integral) and not isinstance(cv, bool)):
        if repeats != 1:
            raise ValueError(f"repeats={repeats} needs cv as an int; pass a "
                             "RepeatedStratifiedKFold (or RepeatedKFold) as cv instead")
        return list(check_cv(cv, y, classifier=task == "classification").split(np.zeros(n), y))
    if task == "classification":
        labels, counts = np.unique(y, return_counts=True)
        if len(labels) < 2:
            raise ValueError("y holds a single class; a probe needs at least two")
        if counts.min() < cv:
            rare = labels.tolist()[counts.argmin()]  # 9.0, not np.float64(9.0)
            numbers = np.asarray(y).dtype.kind == "f"  # 3.0, 4.5 ... read as classes
            raise ValueError(
                f"class {rare!r} has only {counts.min()} example(s), fewer than cv={cv} "
                "folds; lower cv, drop rare classes, or pass a splitter as cv"
                + ("; if y holds numbers to predict, not classes, pass task='regression' "
                   "(bertfeat probe --task regression)" if numbers else ""))
    return cv_splits(y, int(cv), repeats, stratify=task == "classification",
                     random_state=random_state)


def probe_store(cache: Any) -> tuple[FeatureStore, tempfile.TemporaryDirectory | None]:
    """The store the probe reads and writes; a temporary one when caching is off."""
    store = FeatureStore.from_cache(cache)
    if store is not None:
        return store, None
    tmp = tempfile.TemporaryDirectory(prefix="bertfeat-probe-")
    return FeatureStore(tmp.name), tmp


def design(options: ProbeOptions, n_splits: int) -> str:
    """``2 x 5-fold CV`` (or ``7 splits`` for a splitter of the user's)."""
    cv = options.cv
    if isinstance(cv, Integral) and not isinstance(cv, bool):
        repeats = options.repeats
        return f"{repeats} x {cv}-fold CV" if repeats > 1 else f"{cv}-fold CV"
    return f"{n_splits} CV splits"


def inner_splits(ctx: ProbeContext, train: np.ndarray) -> list:
    """The probe's own folds, on the rows ``train`` only (as indices of all rows)."""
    opts = ctx.options
    inner = make_splits(opts.cv, ctx.task, ctx.y[train], len(train), opts.random_state,
                    opts.repeats)
    return [(train[a], train[b]) for a, b in inner]


def holdout_split(options: ProbeOptions, task: str,
                  y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cls = StratifiedShuffleSplit if task == "classification" else ShuffleSplit
    splitter = cls(n_splits=1, test_size=options.test_size,
                   random_state=options.random_state)
    try:
        return next(splitter.split(np.zeros(len(y)), y))
    except ValueError as exc:
        raise ValueError(f"test_size={options.test_size}: {exc}") from exc
