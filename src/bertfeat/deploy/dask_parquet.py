"""Features of a Dask collection written to Parquet, one file per partition, resumably.

Each partition is written to a hidden temporary name and renamed into place only when
complete, so a killed run never leaves a file that looks finished; a rerun with the same
input and settings skips the finished partitions. ``_bertfeat_export.json`` records the
settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..estimators.featurizer import BertFeaturizer
from .dask_partitions import _fitted, _frame_partition, _require_dask, _text_series, _token

__all__ = ["ExportReport", "MANIFEST_NAME", "PART_NAME", "to_parquet"]

#: Parquet files of finished partitions are named ``part-00000.parquet`` ...
PART_NAME = "part-{index:05d}.parquet"
MANIFEST_NAME = "_bertfeat_export.json"
_EXPORT_FORMAT = 1
_TMP_PATTERN = re.compile(r"^\.part-\d+\.parquet\.[0-9a-f]+\.tmp$")


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
