"""A :class:`~bertfeat.probe.result.ProbeResult` on disk: ``probe.json`` (and ``data.json``).

What :meth:`ProbeResult.save <bertfeat.probe.result.ProbeResult.save>` writes and
:meth:`ProbeResult.load <bertfeat.probe.result.ProbeResult.load>` reads: the table, the
fold scores, the statistics' settings and each candidate's pipeline as a JSON spec.
Nothing is pickled: a loaded result rebuilds pipelines from the spec only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from .candidates import Candidate
from .codegen import pipeline_from_spec, pipeline_spec

__all__ = ["SAVE_FORMAT", "SavedMixin"]

R = TypeVar("R", bound="SavedMixin")

#: version of the saved probe folder's ``probe.json``
SAVE_FORMAT = 1


def _save(result: SavedMixin, directory: str | os.PathLike, *,
                data: bool = True) -> Path:
    """Write ``probe.json`` (and ``data.json``) of ``result`` into ``directory``.

    Parameters
    ----------
    result : ProbeResult
        What to write (:meth:`ProbeResult.save <bertfeat.probe.result.ProbeResult.save>`).
    directory : str or path
        The folder (made when it does not exist).
    data : bool, default=True
        Whether the probe's texts and labels go to ``data.json`` too.

    Returns
    -------
    Path
        Of ``probe.json``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    specs = {}
    for key in result.table["candidate"]:
        try:
            specs[key] = pipeline_spec(result.make_pipeline(key))
        except (TypeError, ValueError):
            specs[key] = None
    rec = result.recommendation
    record = {
        "format": SAVE_FORMAT,
        "task": result.task, "scoring": result.scoring, "n_splits": result.n_splits,
        "n_layers": result.n_layers, "model": result.model, "design": result.design,
        "head_order": result.head_order, "encoding": _jsonable(result.encoding),
        "timings": _jsonable(result.timings), "control_rows": result._control_rows,
        "recommendation": {"select": rec.select, "alpha": rec.alpha, "level": rec.level,
                           "ratio": rec.ratio, "top": rec.top, "pick": rec.pick},
        "table": _jsonable(result.table.to_dict(orient="records")),
        "columns": list(result.table.columns),
        "fold_scores": {"columns": list(result.fold_scores.columns),
                        "rows": {str(k): [float(v) for v in row]
                                 for k, row in result.fold_scores.iterrows()}},
        "candidates": {key: {"spec": specs[key],
                             "recommendable": result.is_recommendable(key)}
                       for key in result.table["candidate"]},
        "nested": _jsonable(_without_splits(result.nested)),
        "holdout": _jsonable(_without_splits(result.holdout)),
    }
    path = out / "probe.json"
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    if data and result._data is not None:
        texts, y = result._data
        (out / "data.json").write_text(
            json.dumps({"texts": list(texts), "y": _jsonable(np.asarray(y).tolist())}),
            encoding="utf-8")
    return path


def _load(cls: type[R], directory: str | os.PathLike) -> R:
    """Read a result written by :meth:`SavedMixin.save`.

    Parameters
    ----------
    cls : type
        :class:`~bertfeat.probe.result.ProbeResult` (or a subclass) to build.
    directory : str or path
        A folder holding ``probe.json``.

    Returns
    -------
    ProbeResult
        With ``best_estimator`` None.
    """
    from .selection import recommend

    folder = Path(directory)
    path = folder / "probe.json"
    if not path.is_file():
        raise ValueError(f"{folder} holds no probe.json (written by `bertfeat probe "
                         "--out DIR` or ProbeResult.save)")
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("format") != SAVE_FORMAT:
        raise ValueError(f"{path}: format {record.get('format')!r}, this bertfeat reads "
                         f"format {SAVE_FORMAT}")
    table = pd.DataFrame.from_records(record["table"], columns=record["columns"])
    for column in ("layer_index", "n_features"):
        if column in table:
            table[column] = table[column].astype("Int64")
    if "tied" in table:
        table["tied"] = table["tied"].astype(bool)
    folds = pd.DataFrame.from_dict(record["fold_scores"]["rows"], orient="index",
                                   columns=record["fold_scores"]["columns"])
    rows = table.set_index("candidate", drop=False)
    candidates = {key: _saved_candidate(rows.loc[key], entry)
                  for key, entry in record["candidates"].items()}
    saved = record["recommendation"]
    recommendable = [key for key in table["candidate"]
                     if record["candidates"][key]["recommendable"]]
    rec = recommend(table, folds, saved["ratio"], head_order=record["head_order"],
                    recommendable=recommendable, rule=saved["select"],
                    alpha=saved["alpha"], level=saved["level"], top=saved["top"])
    data = None
    if (folder / "data.json").is_file():
        raw = json.loads((folder / "data.json").read_text(encoding="utf-8"))
        data = (list(raw["texts"]), np.asarray(raw["y"]))
    out = cls(table=table, candidates=candidates, task=record["task"],
              scoring=record["scoring"], n_splits=record["n_splits"],
              n_layers=record["n_layers"], model=record["model"],
              encoding=record["encoding"], timings=record["timings"],
              best_estimator=None, fold_scores=folds, recommendation=rec,
              design=record["design"], head_order=record["head_order"], data=data)
    out._control_rows = record.get("control_rows")
    out.nested = record.get("nested")
    out.holdout = record.get("holdout")
    return out


def _jsonable(value: Any) -> Any:
    """``value`` with numpy and pandas scalars as Python ones (NA as None), for JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _without_splits(estimate: dict | None) -> dict | None:
    if estimate is None:
        return None
    return {k: v for k, v in estimate.items() if k != "splits"}


def _saved_candidate(row: pd.Series, entry: dict) -> Candidate:
    """A candidate rebuilt from ``probe.json``: it builds its Pipeline from the spec."""
    spec = entry["spec"]
    key = str(row["candidate"])

    def build() -> Pipeline:
        if spec is None:
            raise ValueError(f"candidate {key!r} was saved without a pipeline spec (a "
                             "parameter JSON cannot hold, e.g. a custom head); run the "
                             "probe again to fit it")
        return pipeline_from_spec(spec)

    layer_index = row.get("layer_index")
    n_features = row.get("n_features")
    return Candidate(
        str(row["family"]), str(row["layer"]), str(row["pooling"]), str(row["head"]),
        None, None, build, str(row["stage"]),
        None if layer_index is None or pd.isna(layer_index) else int(layer_index),
        None if n_features is None or pd.isna(n_features) else int(n_features),
        recommendable=bool(entry["recommendable"]))


class SavedMixin:
    """:class:`~bertfeat.probe.result.ProbeResult` on disk: :meth:`save` and :meth:`load`."""

    def save(self, directory: str | os.PathLike, *, data: bool = True) -> Path:
        """Write what re-selecting needs: ``probe.json`` (and ``data.json``).

        ``probe.json`` holds the table, the fold scores, the statistics' settings and
        each candidate's pipeline as a JSON spec (scikit-learn and bertfeat estimator
        classes with their parameters; a candidate whose pipeline has a value JSON
        cannot hold, such as a custom callable, is saved without one and cannot be
        rebuilt). ``data.json`` holds the texts and labels the probe used, for a refit.
        Nothing is pickled: :meth:`load` rebuilds pipelines from the spec only.

        Parameters
        ----------
        directory : str or path
            Created when missing.
        data : bool, default=True
            Also write ``data.json`` (needs a result that holds its texts).

        Returns
        -------
        Path
            The ``probe.json`` written.
        """
        return _save(self, directory, data=data)

    @classmethod
    def load(cls: type[R], directory: str | os.PathLike) -> R:
        """Read a result written by :meth:`save` (``bertfeat probe --out DIR``).

        Nothing is unpickled and nothing is scored: the table, the fold scores and the
        candidates' pipeline specs come from ``probe.json``, the texts (for
        :meth:`refit`) from ``data.json`` when present.

        Parameters
        ----------
        directory : str or path
            A folder holding ``probe.json``.

        Returns
        -------
        ProbeResult
            With ``best_estimator`` None (see :meth:`refit`).
        """
        return _load(cls, directory)
