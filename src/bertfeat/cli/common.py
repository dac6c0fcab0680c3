"""What every command shares: reading DATA, parsing layer lists, the store, errors."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

#: the command line's entry point is bertfeat.cli.main; this module exports nothing else
__all__: list[str] = []

#: the probe's selection rules (:data:`bertfeat.probe.selection.RULES` and its aliases;
#: listed here so that the parser does not import the probe) and the default rule
SELECT_RULES = ("top", "cheapest-tied", "one-se", "stable-top", "cheapest")
DEFAULT_SELECT = "top"

#: the shipped dataset ``bertfeat probe`` runs on without DATA, and its default subset
DEMO_DATASET = "banking77"
DEMO_LIMIT = 1500


class CliError(Exception):
    """A user error: printed as ``bertfeat: error: ...`` with exit status 2."""


# ------------------------------------------------------------------------------ helpers
def _read_rows(args: argparse.Namespace, keep: list[str] | None = None,
               labels: bool = False) -> tuple[Any, Any, Any]:
    """Read DATA faithfully (see :mod:`bertfeat.tables`): the frame, texts and labels.

    Every record is a row, or a note on stderr says why not. Missing texts follow
    ``--on-bad-input`` (an error naming the lines, or the empty string with a note);
    missing labels are an error naming the lines.
    """
    from ..io.tables import TableError, read_table

    try:
        table = read_table(args.data, text_cols=[args.text_col], quoting=args.quoting)
    except TableError as exc:
        raise CliError(str(exc)) from exc
    for note in table.notes:
        print(f"bertfeat: note: {note}", file=sys.stderr)
    df = table.frame
    texts = _column(df, args.text_col, "text")
    for col in keep or ():
        _column(df, col, "keep")
    y = _column(df, args.label_col, "label") if labels else None
    missing = [int(i) for i in texts.index[texts.isna()]]
    if missing and args.on_bad_input == "raise":
        raise CliError(
            f"{args.data}: the text column {args.text_col!r} is empty on "
            f"{table.where(missing)} ({len(missing)} of {len(df)} rows). Fill or drop those "
            "rows, or pass --on-bad-input empty to encode them as the empty string.")
    if missing:
        texts = texts.where(texts.notna(), "")
        print(f"bertfeat: note: {len(missing)} empty text(s) (first: "
              f"{table.where(missing[:1])}) encoded as the empty string (--on-bad-input "
              "empty)", file=sys.stderr)
    if y is not None:
        unlabelled = [int(i) for i in y.index[y.isna()]]
        if unlabelled:
            raise CliError(
                f"{args.data}: the label column {args.label_col!r} is empty on "
                f"{table.where(unlabelled)} ({len(unlabelled)} of {len(df)} rows). Rows "
                "without a label cannot be scored: fill or drop them.")
    return df, texts, y


def _column(df: Any, name: str, what: str) -> Any:
    if name not in df.columns:
        raise CliError(f"no {what} column {name!r}; the file has columns {list(df.columns)} "
                       f"(choose one with --{what}-col)")
    return df[name]


def _parse_layers(value: str) -> str | int | list[int]:
    value = value.strip()
    if value == "all":
        return "all"
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"layers must be 'all' or comma-separated ints (e.g. -1 or =-4,-3,-2,-1), "
            f"got {value!r}") from exc
    if not items:
        raise argparse.ArgumentTypeError("layers must name at least one layer")
    return items[0] if len(items) == 1 else items


#: a value of --layers that argparse would take for an option: "-4,-3" or "-2,5"
_NEGATIVE_LIST = re.compile(r"^-\d+(,\s*-?\d+)+$")


def _glue_negative_layers(argv: list[str]) -> list[str]:
    """``--layers -4,-3`` -> ``--layers=-4,-3`` (argparse reads ``-4,-3`` as an option)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--layers" and _NEGATIVE_LIST.match(arg):
            out[-1] = f"--layers={arg}"
        else:
            out.append(arg)
    return out


def _row_limit(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(
            f"--limit must be a whole number of rows >= 0 (0 = all), got {value!r}")
    return number


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def _store(args: argparse.Namespace):
    from ..store import FeatureStore

    return FeatureStore.from_cache(args.cache_dir or "auto")


def _featurizer_params(args: argparse.Namespace) -> dict:
    params = {}
    for name in ("max_length", "precision", "device", "batch_size"):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    return params


def _control_texts(value: str) -> int | str | None:
    """``--control-texts``: a number, ``auto`` or ``all`` (None: every text)."""
    if value in ("auto", "all"):
        return None if value == "all" else value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of texts, 'auto' or 'all', got {value!r}") from None


def _stratified_subset(texts: Any, y: Any, limit: int, seed: int,
                       min_per_class: int = 1) -> tuple[Any, Any, str]:
    """At most ``limit`` rows in label proportions, each class keeping ``min_per_class``.

    Rows keep their file order. Classes get ``min(size, min_per_class)`` rows first (so
    that cross-validation can stratify), the rest is shared in proportion to class size
    by the largest-remainder rule.
    """
    import numpy as np

    n = len(texts)
    if not limit or limit >= n:
        return texts, y, f"all {n:,} rows"
    from sklearn.utils.multiclass import type_of_target

    rng = np.random.default_rng(seed)
    labels = y.to_numpy()
    if type_of_target(labels) == "continuous":  # numbers: a plain random subset
        index = np.sort(rng.choice(n, size=limit, replace=False))
        return (texts.iloc[index], y.iloc[index],
                f"random subset of {limit:,} of {n:,} rows (--limit)")
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    floor = np.minimum(counts, min_per_class)
    if floor.sum() > limit:  # too many classes for the limit: plain proportions
        floor = np.zeros_like(counts)
    spare = counts - floor
    quota = (limit - floor.sum()) * spare / max(spare.sum(), 1)
    extra = np.floor(quota).astype(int)
    short = limit - floor.sum() - extra.sum()
    extra[np.argsort(-(quota - extra), kind="stable")[:short]] += 1
    take = floor + np.minimum(extra, spare)
    index = np.concatenate([rng.choice(np.flatnonzero(codes == c), size=k, replace=False)
                            for c, k in enumerate(take) if k])
    index = np.sort(index)
    return (texts.iloc[index], y.iloc[index],
            f"stratified subset of {len(index):,} of {n:,} rows (--limit)")
