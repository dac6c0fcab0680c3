"""Printing a Pipeline as the Python that builds it (:func:`pipeline_code`)."""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from ..store import FeatureStore

__all__ = ["pipeline_code"]


def _public_module(cls: type) -> str:
    module = cls.__module__
    if module.split(".")[0] == "bertfeat":
        return "bertfeat"
    parts = []
    for part in module.split("."):
        if part.startswith("_"):
            break
        parts.append(part)
    return ".".join(parts)


def _value_code(value: Any, imports: set[str]) -> str:
    if isinstance(value, BaseEstimator):
        return _estimator_code(value, imports)
    if isinstance(value, FeatureStore):  # a directory names the same store
        if value == FeatureStore(value.directory):  # every setting at its default
            return repr(value.directory)
        imports.add("from bertfeat import FeatureStore")
        return repr(value)  # FeatureStore('dir', size_limit=..., dtype=...): runs as printed
    if isinstance(value, os.PathLike):  # a PosixPath repr would not run as printed
        return repr(os.fspath(value))
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    if isinstance(value, (np.floating, np.integer)):
        return repr(value.item())
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _estimator_code(est: BaseEstimator, imports: set[str]) -> str:
    if isinstance(est, Pipeline):
        imports.add("from sklearn.pipeline import make_pipeline")
        return "make_pipeline(" + ", ".join(_estimator_code(step, imports)
                                            for _, step in est.steps) + ")"
    cls = type(est)
    imports.add(f"from {_public_module(cls)} import {cls.__name__}")
    signature = inspect.signature(cls.__init__)
    args = []
    params = est.get_params(deep=False)
    order = [name for name in signature.parameters if name in params]
    for name in order + sorted(set(params) - set(order)):
        value = params[name]
        param = signature.parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty \
                and _same(value, param.default):
            continue
        args.append(f"{name}={_value_code(value, imports)}")
    return f"{cls.__name__}({', '.join(args)})"


def pipeline_code(pipeline: BaseEstimator, name: str = "pipe") -> str:
    """Python lines (imports, then one assignment) that build ``pipeline`` unfitted.

    Parameters
    ----------
    pipeline : estimator
        Usually a Pipeline from :meth:`ProbeResult.make_pipeline`.
    name : str, default="pipe"
        Variable name assigned.

    Returns
    -------
    str
    """
    imports: set[str] = set()
    body = _estimator_code(pipeline, imports)
    return "\n".join(sorted(imports) + [f"{name} = {body}"])
