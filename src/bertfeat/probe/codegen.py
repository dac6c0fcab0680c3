"""Printing a Pipeline as the Python that builds it (:func:`pipeline_code`), and as a JSON
spec that rebuilds it without unpickling anything (:func:`pipeline_spec`,
:func:`pipeline_from_spec`)."""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from ..store import FeatureStore

__all__ = ["pipeline_code", "pipeline_spec", "pipeline_from_spec"]


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


#: modules whose estimator classes a spec may name (nothing else is imported)
SPEC_MODULES = ("sklearn", "bertfeat")


def _changed_params(est: BaseEstimator) -> dict:
    """Parameters that differ from the class's defaults (the rest rebuild by default)."""
    signature = inspect.signature(type(est).__init__)
    out = {}
    for name, value in est.get_params(deep=False).items():
        param = signature.parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty \
                and _same(value, param.default):
            continue
        out[name] = value
    return out


def _value_spec(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, BaseEstimator):
        return {"estimator": pipeline_spec(value)}
    if isinstance(value, FeatureStore):
        if value != FeatureStore(value.directory):
            raise TypeError("a FeatureStore with settings other than the defaults")
        return {"store": str(value.directory)}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"dtype": np.dtype(value).name}
    if isinstance(value, tuple):
        return {"tuple": [_value_spec(v) for v in value]}
    if isinstance(value, list):
        return [_value_spec(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_value_spec(v) for v in value.tolist()]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _value_spec(v) for k, v in value.items()}}
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")


def pipeline_spec(estimator: BaseEstimator) -> dict:
    """A JSON-able description of an unfitted estimator: class path and changed parameters.

    Parameters
    ----------
    estimator : estimator
        A Pipeline or estimator of scikit-learn or bertfeat classes whose parameters are
        JSON values, tuples, numpy dtypes, estimators or default FeatureStores.

    Returns
    -------
    dict
        ``{"class": "module.Name", "params": {...}}``, or ``{"pipeline": [[name,
        spec], ...]}``; :func:`pipeline_from_spec` rebuilds it.

    Raises
    ------
    TypeError
        When a class is outside scikit-learn and bertfeat, or a value has no JSON form.
    """
    if isinstance(estimator, Pipeline):
        return {"pipeline": [[name, pipeline_spec(step)] for name, step in estimator.steps]}
    cls = type(estimator)
    if cls.__module__.split(".")[0] not in SPEC_MODULES:
        raise TypeError(f"{cls.__module__}.{cls.__name__} is not a scikit-learn or bertfeat "
                        "class")
    return {"class": f"{cls.__module__}.{cls.__qualname__}",
            "params": {name: _value_spec(value)
                       for name, value in _changed_params(estimator).items()}}


def _value_from_spec(value: Any) -> Any:
    if isinstance(value, list):
        return [_value_from_spec(v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"estimator"}:
        return pipeline_from_spec(value["estimator"])
    if set(value) == {"store"}:
        return FeatureStore(value["store"])
    if set(value) == {"dtype"}:
        return np.dtype(value["dtype"]).type
    if set(value) == {"tuple"}:
        return tuple(_value_from_spec(v) for v in value["tuple"])
    if set(value) == {"dict"}:
        return {k: _value_from_spec(v) for k, v in value["dict"].items()}
    raise ValueError(f"unknown value in a pipeline spec: {value!r}")


def pipeline_from_spec(spec: dict) -> BaseEstimator:
    """Rebuild the unfitted estimator that :func:`pipeline_spec` described.

    Only classes of scikit-learn and bertfeat that are estimators are imported; nothing is
    unpickled or evaluated.

    Parameters
    ----------
    spec : dict
        From :func:`pipeline_spec` (e.g. read from a saved probe's ``probe.json``).

    Returns
    -------
    estimator
    """
    if "pipeline" in spec:
        return Pipeline([(str(name), pipeline_from_spec(step)) for name, step in
                         spec["pipeline"]])
    path = str(spec.get("class", ""))
    module_name, _, name = path.rpartition(".")
    if module_name.split(".")[0] not in SPEC_MODULES or not name:
        raise ValueError(f"a pipeline spec may name scikit-learn and bertfeat classes only, "
                         f"got {path!r}")
    cls = getattr(importlib.import_module(module_name), name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise ValueError(f"{path!r} is not an estimator class")
    return cls(**{key: _value_from_spec(v) for key, v in spec.get("params", {}).items()})
