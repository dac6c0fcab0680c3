"""The ``bertfeat`` command line: ``probe``, ``recommend``, ``embed``, ``cache``, ``export``.

::

    bertfeat probe [DATA.csv] --text-col text --label-col label [--model M] [--cv 5]
                   [--out DIR] [--limit N] [--select RULE]
    bertfeat recommend OUTDIR --select RULE     (re-pick from a saved probe: no scoring)
    bertfeat embed DATA.csv --text-col text -o features.parquet [--layers L] [--pooling P]
    bertfeat cache info
    bertfeat cache clear [--model M]
    bertfeat export PIPELINE.joblib OUTDIR [--precision fp32|int8] [--overwrite]

Every command takes ``--cache-dir DIR`` (default: ``$BERTFEAT_CACHE_DIR`` or the per-user
cache directory). ``probe`` and ``embed`` read DATA with :mod:`bertfeat.tables`: one row per
record or a message saying why (``--quoting``, ``--on-bad-input``). Ctrl-C exits with status
130; vectors encoded so far stay in the store.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__, hardware
from .pooling import POOLINGS

__all__ = ["main"]

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
    from .io.tables import TableError, read_table

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
    from .store import FeatureStore

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


# --------------------------------------------------------------------------------- probe
def _cmd_probe(args: argparse.Namespace) -> int:
    if args.words:
        return _cmd_probe_words(args)
    if args.data is not None and (Path(args.data) / "probe.json").is_file():
        args.outdir = args.data  # `bertfeat probe OUTDIR --select RULE`: re-select
        return _cmd_recommend(args)
    from .io import datasets
    from .probe import probe
    from .store import FeatureStore

    if args.data is None:
        name = args.dataset or DEMO_DATASET
        df = datasets.load_dataset(name)
        limit = DEMO_LIMIT if args.limit is None else args.limit
        source = f"shipped dataset {name!r} ({datasets.DATASETS[name][1]})"
        label = name
    else:
        if args.dataset:
            raise CliError("give either DATA or --dataset, not both")
        df, texts, y = _read_rows(args, labels=True)
        limit = args.limit
        source = args.data
        label = Path(args.data).stem
    if args.data is None:
        texts = _column(df, args.text_col, "text")
        y = _column(df, args.label_col, "label")
    texts, y, subset = _stratified_subset(texts.reset_index(drop=True),
                                          y.reset_index(drop=True), limit or 0, args.seed,
                                          min_per_class=args.cv)
    from sklearn.utils.multiclass import type_of_target

    target = ("numeric target" if args.task == "regression" or (
        args.task == "auto" and type_of_target(y.to_numpy()) == "continuous")
        else f"{y.nunique()} distinct labels")
    out = Path(args.out)
    print(f"bertfeat probe: {source}")
    design = f"{args.repeats} x {args.cv}-fold" if args.repeats > 1 else f"{args.cv}-fold"
    print(f"  {subset}, {target}; model {args.model!r}; "
          f"{design} cross-validation"
          + (" (+ nested)" if args.nested else "")
          + ("" if args.data is not None else
             "; run `bertfeat probe DATA.csv --text-col ... --label-col ...` on your data"))
    print(flush=True)
    cache: Any = FeatureStore(args.cache_dir) if args.cache_dir else "auto"
    if args.no_cache:
        cache = False
    started = time.perf_counter()
    result = probe(
        texts, y, model=args.model, layers=args.layers, poolings=args.poolings,
        heads=args.heads, cv=args.cv, scoring=args.scoring,
        random_control=not args.no_random_control, cache=cache, tfidf=not args.no_tfidf,
        union=not (args.no_tfidf or args.no_union), chunk=not args.no_chunk,
        finetune=args.finetune, refine_top=args.refine_top, control_texts=args.control_texts,
        task=args.task, random_state=args.seed,
        n_jobs=args.n_jobs, refit=True, featurizer_params=_featurizer_params(args),
        verbose=not args.quiet, repeats=args.repeats, nested=args.nested,
        test_size=args.test_size, alpha=args.alpha, select=args.select)
    seconds = time.perf_counter() - started

    out.mkdir(parents=True, exist_ok=True)
    result.save(out)
    result.table.to_csv(out / "probe.csv", index=False)
    result.fold_scores.to_csv(out / "folds.csv", index_label="candidate")
    result.plot(out / "probe.png", title=f"bertfeat probe: {label} ({len(texts):,} texts), "
                                         f"model {args.model}")
    enc = result.encoding
    lines = [result.summary(top=args.top), ""]
    encoded = f"{enc['encoded']:,} of {enc['unique_texts']:,} unique texts encoded"
    if enc.get("chunk_encoded") is not None:  # the chunked pass gave the truncated vectors
        encoded = (f"{enc['chunk_encoded']:,} of {enc['unique_texts']:,} unique texts "
                   f"encoded in windows, their first windows serving as the truncated "
                   f"encoding ({enc['encoded']:,} more encoded truncated)")
    lines.append(
        f"encoder passes: {encoded} this run (store counter; 0 = all were already stored)"
        + ("" if enc["random_encoded"] is None else
           f", random-weights control {enc['random_encoded']:,}")
        + f"; {len(result.table)} candidates on the same {result.n_splits} splits "
          f"({result.design}); {seconds:.1f} s in all")
    t = result.timings
    heads = (t.get("screen", 0) + t.get("refine", 0) + t.get("baselines", 0)
             + t.get("union", 0) + t.get("chunk", 0))  # stage times exclude encoding
    lines.append(f"time: encoding {t.get('encode', 0):.1f} s"
                 + (f" + random-weights control {t['random_encode']:.1f} s"
                    if "random_encode" in t else "")
                 + (f" + chunked long texts {t['chunk_encode']:.1f} s"
                    if "chunk_encode" in t else "")
                 + f", cross-validating heads {heads:.1f} s"
                 + (f", fine-tuning {t['finetune']:.1f} s"
                    if (result.table["family"] == "finetune").any() else "")
                 + (f", nested/held-out selection {t['nested']:.1f} s" if "nested" in t else "")
                 + f", refit {t.get('refit', 0):.1f} s")
    lines.append(f"another rule without scoring again: bertfeat recommend {out} --select "
                 f"{{{','.join(SELECT_RULES[:-1])}}}")
    _write_pick(result, out, lines, args.no_save_model)
    return 0


def _write_pick(result: Any, out: Path, lines: list[str], no_save_model: bool) -> None:
    """probe.txt (``lines`` + the pick's code), report.md and best_pipeline.joblib."""
    lines = [*lines, "", "Build the best pipeline (unfitted) with:", ""]
    lines.extend("    " + line for line in result.best_code.splitlines())
    text = "\n".join(lines)
    print(text)
    (out / "probe.txt").write_text(text + "\n", encoding="utf-8")
    (out / "report.md").write_text(result.report("markdown"), encoding="utf-8")
    written = [out / name for name in ("probe.json", "data.json", "probe.csv", "folds.csv",
                                       "probe.png", "probe.txt", "report.md")
               if (out / name).exists()]
    if not no_save_model:
        import joblib

        joblib.dump(result.best_estimator, out / "best_pipeline.joblib")
    print()
    print("wrote " + ", ".join(str(p) for p in written)
          + ("" if no_save_model else
             f", {out / 'best_pipeline.joblib'} (best pipeline fitted on all rows)"))


def _cmd_recommend(args: argparse.Namespace) -> int:
    """``bertfeat recommend OUTDIR --select RULE``: re-pick from the saved fold scores."""
    from .probe import ProbeResult

    out = Path(args.outdir)
    started = time.perf_counter()
    try:
        saved = ProbeResult.load(out)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    result = saved.select(args.select)
    before = saved.recommendation.pick
    same = result.recommendation.pick == before and (out / "best_pipeline.joblib").is_file()
    if not args.no_save_model and not same:
        if not (out / "data.json").is_file():
            raise CliError(f"{out} holds no data.json (the probe's texts): cannot fit the "
                           "new pick; use --no-save-model for the code only")
        result.refit()  # reads vectors from the feature store the probe filled
    result.save(out, data=False)
    result.plot(out / "probe.png", title=f"bertfeat probe: {out.name}, model {result.model}")
    seconds = time.perf_counter() - started
    change = ("the same pick as before" + ("; best_pipeline.joblib kept" if same else "")
              if result.recommendation.pick == before
              else f"before: {saved.recommendation.select} picked "
                   f"{_describe(saved.best)}")
    lines = [result.summary(top=args.top), "",
             f"re-selected from the fold scores saved in {out} with rule "
             f"{result.recommendation.select} in {seconds:.1f} s: nothing was scored again "
             f"({change})"]
    # the same pick: best_pipeline.joblib already holds it, fitted on the same rows
    _write_pick(result, out, lines, args.no_save_model or same)
    return 0


def _describe(row: Any) -> str:
    from .probe import describe

    return describe(row)


#: ``probe`` options the word probe has no counterpart for: given with ``--words``, they
#: are refused rather than silently ignored
_NOT_FOR_WORDS = (
    ("nested", "--nested"), ("repeats", "--repeats"), ("test_size", "--test-size"),
    ("alpha", "--alpha"), ("select", "--select"), ("finetune", "--finetune"),
    ("heads", "--heads"), ("poolings", "--poolings"), ("scoring", "--scoring"),
    ("task", "--task"), ("control_texts", "--control-texts"), ("no_tfidf", "--no-tfidf"),
    ("no_union", "--no-union"), ("no_chunk", "--no-chunk"), ("text_col", "--text-col"),
    ("label_col", "--label-col"), ("quoting", "--quoting"),
    ("on_bad_input", "--on-bad-input"),
)


def _cmd_probe_words(args: argparse.Namespace) -> int:
    """``bertfeat probe --words FILE``: the layer x sub-word pooling probe for tags."""
    from .io.conll import read_conll
    from .probe import probe_words
    from .store import FeatureStore

    if args.data is not None or args.dataset:
        raise CliError("--words FILE replaces DATA and --dataset; give one of them")
    defaults = _parser().parse_args(["probe"])
    ignored = [flag for dest, flag in _NOT_FOR_WORDS
               if getattr(args, dest) != getattr(defaults, dest)]
    if ignored:
        raise CliError(f"{', '.join(ignored)}: not available with --words (the word probe "
                       "scores every layer x sub-word pooling with a logistic regression on "
                       "sentence-grouped folds, once); drop "
                       f"{'it' if len(ignored) == 1 else 'them'}")
    try:
        sentences, tags = read_conll(args.words, args.tag_col)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {args.words}: {exc}") from exc
    if args.limit:
        sentences, tags = sentences[:args.limit], tags[:args.limit]
    n_words = sum(map(len, sentences))
    print(f"bertfeat probe --words: {args.words}")
    print(f"  {len(sentences):,} sentences, {n_words:,} words, "
          f"{len({t for s in tags for t in s})} distinct tags; model {args.model!r}; "
          f"{args.cv} sentence-grouped folds", flush=True)
    cache: Any = FeatureStore(args.cache_dir) if args.cache_dir else "auto"
    if args.no_cache:
        cache = False
    result = probe_words(sentences, tags, model=args.model, cv=args.cv,
                         random_control=not args.no_random_control, cache=cache,
                         refine_top=args.refine_top, random_state=args.seed,
                         featurizer_params=_featurizer_params(args),
                         layers="all" if args.layers == "all" else args.layers,
                         n_jobs=None if args.n_jobs == defaults.n_jobs else args.n_jobs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(out / "probe.csv", index=False)
    result.plot(out / "probe.png", title=f"bertfeat word probe: {Path(args.words).name}, "
                                         f"model {args.model}")
    text = "\n".join([result.summary(top=args.top), "",
                      "Build the recommended tagger (unfitted) with:", "",
                      *("    " + line for line in result.best_code.splitlines())])
    print(text)
    (out / "probe.txt").write_text(text + "\n", encoding="utf-8")
    if not args.no_save_model:
        import joblib

        joblib.dump(result.best_estimator, out / "best_pipeline.joblib")
    print(f"\nwrote {out / 'probe.csv'}, {out / 'probe.png'}, {out / 'probe.txt'}"
          + ("" if args.no_save_model else f", {out / 'best_pipeline.joblib'}"))
    return 0


# --------------------------------------------------------------------------------- embed
def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from .estimators.featurizer import BertFeaturizer

    output = Path(args.output)
    kind = output.suffix.lower()
    if kind not in (".parquet", ".npy"):
        raise CliError(f"-o {args.output}: the extension must be .parquet or .npy")
    keep = _split_list(args.keep_cols) if args.keep_cols else []
    df, texts, _ = _read_rows(args, keep=keep)
    n_read = len(df)
    if args.limit:
        df, texts = df.head(args.limit), texts.head(args.limit)
    rows = (f"all {n_read:,} rows of {args.data}" if len(df) == n_read else
            f"the first {len(df):,} of {n_read:,} rows of {args.data} (--limit)")
    store = _store(args) if not args.no_cache else False
    featurizer = BertFeaturizer(
        model=args.model, layers=args.layers, pooling=args.pooling,
        layer_combine=args.layer_combine, normalize=args.normalize, cache=store,
        **_featurizer_params(args))
    started = time.perf_counter()
    featurizer.fit(texts)
    before = _encoded(store, featurizer.fingerprint_)
    X = featurizer.transform(texts)
    seconds = time.perf_counter() - started
    encoded = _encoded(store, featurizer.fingerprint_) - before if store else len(texts)
    output.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".npy":
        np.save(output, X)
        if keep:
            print("note: --keep-cols is ignored for .npy output", file=sys.stderr)
    else:
        frame = pd.DataFrame(X, columns=list(featurizer.get_feature_names_out()),
                             index=df.index)
        if keep:
            frame = pd.concat([df[keep], frame], axis=1)
        frame.reset_index(drop=True).to_parquet(output, index=False)
    print(f"wrote {X.shape[0]:,} x {X.shape[1]:,} features (model {args.model!r}, layers "
          f"{featurizer.layers_}, pooling {featurizer.pooling_!r}) to {output} in {seconds:.1f} s; "
          f"encoder ran on {encoded:,} texts; rows: {rows}")
    return 0


def _encoded(store: Any, fingerprint: str) -> int:
    if not store:
        return 0
    return store.encoded_count(fingerprint)


# --------------------------------------------------------------------------------- cache
def _store_call(store: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """``store.<method>(...)``, with any store failure as a one-line CLI error."""
    from .store import StoreError, store_errors

    try:
        return getattr(store, method)(*args, **kwargs)
    except (StoreError, *store_errors()) as exc:
        raise CliError(f"cannot use the feature store at {store.directory}: "
                       f"{type(exc).__name__}: {exc}") from exc


def _cmd_cache_info(args: argparse.Namespace) -> int:
    from .store import human_bytes

    store = _store(args)
    stats = _store_call(store, "stats")
    random_dir = store.random_init_directory
    stats["random_init"] = {"directory": str(random_dir),
                            "models": sorted(p.name for p in random_dir.iterdir()
                                             if p.is_dir()) if random_dir.is_dir() else [],
                            "bytes": _dir_size(random_dir)}
    stats["precision_decisions"] = {"file": str(hardware.decisions_path()),
                                    "override": os.environ.get(hardware.ENV_PRECISION) or None,
                                    "decisions": hardware.remembered_decisions()}
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
        return 0
    print(f"feature store: {stats['directory']}")
    source = "BERTFEAT_CACHE_DIR" if os.environ.get("BERTFEAT_CACHE_DIR") and \
        not args.cache_dir else ("--cache-dir" if args.cache_dir else "default location")
    print(f"  ({source}; set BERTFEAT_CACHE_DIR or --cache-dir to use another)")
    print(f"size: {human_bytes(stats['bytes'])} of a {human_bytes(stats['size_limit'])} "
          f"limit (oldest entries are evicted beyond it)")
    print(f"texts stored: {stats['entries']:,} (all models)")
    models = stats["models"]
    if models:
        print()
        print(f"  {'fingerprint':<12}  {'model':<24}  {'kind':<5}  {'long text':<13}  "
              f"{'prec':<8}  {'max_len':>7}  {'stored':>8}  {'hits':>9}  {'misses':>8}  "
              f"{'encoded':>8}")
        for fp, info in models.items():
            print("  " + _cache_row(fp, info))
        print("  (kind: texts = one vector per text and layer; words = per-word vectors of "
              "sentences.\n   long text: truncate = first max_len tokens; chunk = windows "
              "of max_len, stride s, at most m; words: windows of stride s)")
    else:
        print("no models stored yet")
    rinfo = stats["random_init"]
    if rinfo["models"]:
        print()
        print(f"random-weights control models (bertfeat probe): {len(rinfo['models'])} "
              f"({human_bytes(rinfo['bytes'])}) in {rinfo['directory']}")
    _print_precision_decisions(stats["precision_decisions"])
    return 0


def _cache_row(fp: str, info: dict) -> str:
    """One ``cache info`` row: what tells encodings of the same model apart, and counts."""
    desc = info.get("model") or {}
    name = str(desc.get("model", "?"))
    if len(name) > 24:
        name = "..." + name[-21:]
    if desc.get("kind") == "words":
        kind, mode = "words", f"words s={desc.get('window_stride', '?')}"
        counts = [info.get("sentences", 0), info.get("sentences_hits", 0),
                  info.get("sentences_misses", 0), info.get("sentences_encoded", 0)]
    else:
        kind, mode = "texts", str(desc.get("long_text", "?"))
        if mode.startswith("chunk"):
            mode = f"chunk s={desc.get('chunk_stride', '?')} m={desc.get('max_chunks', '?')}"
        counts = [info["entries"], info["hits"], info["misses"], info["encoded"]]
    dtype = desc.get("store_dtype")  # vectors kept as float16: other vectors
    precision = str(desc.get("precision", "?")) + (",f16" if dtype == "float16" else "")
    return (f"{fp[:12]:<12}  {name:<24}  {kind:<5}  {mode:<13}  {precision:<8}  "
            f"{desc.get('max_length', '?'):>7}  {counts[0]:>8,}  {counts[1]:>9,}  "
            f"{counts[2]:>8,}  {counts[3]:>8,}")


def _print_precision_decisions(info: dict) -> None:
    """The measured ``precision="auto"`` decisions (``bertfeat cache info``)."""
    print()
    decisions = info["decisions"]
    print(f"precision='auto' decisions: {len(decisions)} in {info['file']}")
    if info["override"]:
        print(f"  overridden here by {hardware.ENV_PRECISION}={info['override']}")
    for record in sorted(decisions.values(), key=lambda r: str(r.get("decided_at"))):
        print(f"  {hardware.describe(record)}")
        if record.get("reason"):
            print(f"    why: {record['reason']}")


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    store = _store(args)
    texts = _store_call(store, "stats")["entries"]
    removed = _store_call(store, "clear", model=args.model)
    texts -= _store_call(store, "stats")["entries"]  # stored texts (of every model) that went
    if args.model is None:
        random_dir = store.random_init_directory
        if random_dir.is_dir():
            shutil.rmtree(random_dir)
        print(f"cleared the feature store at {store.directory}: {texts:,} stored texts "
              f"removed ({removed:,} database rows)")
    elif removed:
        print(f"removed {texts:,} stored texts of model {args.model!r} from "
              f"{store.directory} ({removed:,} database rows)")
    else:
        print(f"no entries for model {args.model!r} in {store.directory} (give the model "
              "spec used, its directory, or a fingerprint prefix from `bertfeat cache info`)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import joblib

    from .deploy.export import export_pipeline

    if not Path(args.pipeline).is_file():
        raise CliError(f"{args.pipeline}: no such file")
    try:
        pipeline = joblib.load(args.pipeline)  # the user's own fitted pipeline (a pickle)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the file's fault
        raise CliError(f"{args.pipeline} cannot be loaded as a fitted pipeline (a joblib "
                       f"or pickle file): {type(exc).__name__}: {exc}") from exc
    export_pipeline(pipeline, args.outdir, precision=args.precision, overwrite=args.overwrite)
    print(f"load it without torch: bertfeat.runtime.load({str(args.outdir)!r})")
    return 0


# -------------------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    from .models import PRECISIONS
    from .pooling import COMBINES

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", default=argparse.SUPPRESS, metavar="DIR",
                        help="feature store directory (default: $BERTFEAT_CACHE_DIR or the "
                             "per-user cache directory)")
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument("--model", default="default",
                            help="'default' (bundled all-MiniLM-L6-v2), a hub id or a "
                                 "directory")
    model_opts.add_argument("--max-length", type=int, default=None, help="token limit")
    model_opts.add_argument("--precision", default=None,
                            choices=PRECISIONS)
    model_opts.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps")
    model_opts.add_argument("--batch-size", type=int, default=None)
    model_opts.add_argument("--no-cache", action="store_true",
                            help="do not keep vectors in the feature store")
    model_opts.add_argument("--quoting", default="auto", choices=["auto", "csv", "none"],
                            help="quotes in DATA: auto (CSV quoting; for TSV too unless a "
                                 "quote is not such quoting), csv, or none (quotes are text, "
                                 "every line is a row)")
    model_opts.add_argument("--on-bad-input", default="raise", choices=["raise", "empty"],
                            help="an empty text cell: raise (an error naming the lines) or "
                                 "empty (encode it as the empty string)")

    parser = argparse.ArgumentParser(
        prog="bertfeat", parents=[common],
        description="BERT-family encoders as scikit-learn features, with a feature store.")
    parser.add_argument("--version", action="version", version=f"bertfeat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "probe", parents=[common, model_opts],
        help="find the best layer, pooling and head for a labelled dataset",
        description="Encode every text once, then cross-validate every layer x pooling "
                    "(x head for the best ones) against a random-weights control, "
                    "TF-IDF and TF-IDF ⊕ the best layer (and chunked pooling when texts "
                    "are longer than max_length), on the same folds. Without DATA it "
                    "runs on a subset of a dataset shipped with bertfeat.")
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="CSV/TSV/Parquet file with a text and a label column")
    p.add_argument("--text-col", default="text")
    p.add_argument("--words", default=None, metavar="FILE",
                   help="probe word tags instead: a CoNLL-U or two-column CoNLL/BIO file "
                        "(every layer x sub-word pooling on sentence-grouped folds)")
    p.add_argument("--tag-col", default=None,
                   help="with --words: CoNLL-U field (default upos) or column index "
                        "(default: the last column)")
    p.add_argument("--label-col", default="label")
    p.add_argument("--dataset", default=None,
                   help=f"shipped dataset to use without DATA (default {DEMO_DATASET}; "
                        "see bertfeat.datasets.DATASETS)")
    p.add_argument("--limit", type=_row_limit, default=None,
                   help="use a stratified subset of N rows (0 = all); the demo without "
                        f"DATA uses {DEMO_LIMIT}")
    p.add_argument("--cv", type=int, default=5, help="folds (default 5)")
    p.add_argument("--repeats", type=int, default=1,
                   help="repeats of the k-fold split, the same for every candidate "
                        "(default 1; 2-3 narrow the intervals, no extra encoding)")
    p.add_argument("--nested", action="store_true",
                   help="also estimate the whole selection by nested CV (about --cv times "
                        "the cross-validation work, no extra encoding)")
    p.add_argument("--test-size", type=float, default=None, metavar="FRACTION",
                   help="also hold out this share of rows: select on the rest, score the "
                        "pick once on them")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="level of the paired tests that decide the tied group (default 0.05)")
    p.add_argument("--select", default=DEFAULT_SELECT, choices=SELECT_RULES,
                   help=f"selection rule (default {DEFAULT_SELECT}): top (the top mean), "
                        "cheapest-tied (the cheapest candidate tied with it), one-se (the "
                        "cheapest within one standard error of it), stable-top (the top "
                        "mean among candidates whose fold spread is not an outlier); "
                        "`bertfeat recommend OUTDIR --select RULE` changes it later "
                        "without scoring again")
    p.add_argument("--out", default="bertfeat-probe", help="output directory for "
                   "probe.json (table, fold scores, candidate specs), data.json (the texts "
                   "used), probe.csv, probe.png, probe.txt, report.md, folds.csv and "
                   "best_pipeline.joblib")
    p.add_argument("--layers", type=_parse_layers, default="all",
                   help="'all' or comma-separated hidden states (write --layers=-3,-2,-1)")
    p.add_argument("--poolings", type=_split_list, default=["cls", "mean", "max"],
                   help="comma-separated poolings (default cls,mean,max)")
    p.add_argument("--heads", type=_split_list, default=["logreg", "svm", "mlp"],
                   help="comma-separated heads; the first screens every layer "
                        "(default logreg,svm,mlp)")
    p.add_argument("--control-texts", type=_control_texts, default="auto", metavar="N",
                   help="texts the random-weights control encodes: N (a stratified subset, "
                        "the same folds restricted to it), 'all', or 'auto' (default: a "
                        "subset taking at most 10%% of the main pass's encoder tokens)")
    p.add_argument("--refine-top", type=int, default=3,
                   help="feature sets the other heads are tried on (default 3)")
    p.add_argument("--scoring", default=None,
                   help="sklearn scoring name (default accuracy, or r2 for numbers)")
    p.add_argument("--task", default="auto", choices=["auto", "classification",
                                                      "regression"])
    p.add_argument("--no-random-control", action="store_true",
                   help="skip the random-weights control (saves one encoder pass)")
    p.add_argument("--no-tfidf", action="store_true",
                   help="skip the TF-IDF baseline (and the TF-IDF ⊕ BERT union)")
    p.add_argument("--no-union", action="store_true",
                   help="skip the TF-IDF ⊕ best-layer union candidates")
    p.add_argument("--no-chunk", action="store_true",
                   help="do not try chunked pooling when texts exceed --max-length")
    p.add_argument("--finetune", action="store_true",
                   help="also fine-tune the encoder on each training fold (BertClassifier "
                        "defaults: 3 epochs; slow on a CPU) and compare it with the best "
                        "frozen pipeline")
    p.add_argument("--n-jobs", type=int, default=-1,
                   help="processes scoring the folds of a candidate (default -1: all cores; "
                   "1: none)")
    p.add_argument("--seed", type=int, default=0, help="folds, subset and init seed")
    p.add_argument("--top", type=int, default=15, help="table rows to print")
    p.add_argument("--no-save-model", action="store_true",
                   help="do not write best_pipeline.joblib")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_cmd_probe)

    r = sub.add_parser(
        "recommend", parents=[common],
        help="re-pick the best pipeline of a saved probe under another selection rule",
        description="Read the fold scores a previous `bertfeat probe --out OUTDIR` saved "
                    "(probe.json), apply a selection rule, and write the new pick's "
                    "best_pipeline.joblib (fitted on the probe's texts from the feature "
                    "store), probe.txt with its code, report.md and probe.png. Nothing is "
                    "scored again.")
    r.add_argument("outdir", metavar="OUTDIR", help="a folder written by bertfeat probe")
    r.add_argument("--select", default=DEFAULT_SELECT, choices=SELECT_RULES,
                   help=f"selection rule (default {DEFAULT_SELECT})")
    r.add_argument("--top", type=int, default=15, help="table rows to print")
    r.add_argument("--no-save-model", action="store_true",
                   help="do not fit and write best_pipeline.joblib")
    r.set_defaults(func=_cmd_recommend)

    e = sub.add_parser("embed", parents=[common, model_opts],
                       help="write features of a text column to Parquet or .npy",
                       description="Encode a text column and write the features.")
    e.add_argument("data", metavar="DATA", help="CSV/TSV/Parquet file")
    e.add_argument("--text-col", default="text")
    e.add_argument("-o", "--output", required=True,
                   help="features.parquet (named columns) or features.npy")
    e.add_argument("--layers", type=_parse_layers, default=-1,
                   help="'all' or comma-separated hidden states (default -1; write "
                        "--layers=-4,-3,-2,-1 for negative lists)")
    e.add_argument("--pooling", default="auto", choices=POOLINGS,
                   help="default auto: the model's own sentence embedding")
    e.add_argument("--layer-combine", default="concat", choices=COMBINES)
    e.add_argument("--normalize", action="store_const", const=True, default="auto",
                   help="L2-normalise each row (default: as the model's own sentence "
                        "embedding with --pooling auto)")
    e.add_argument("--keep-cols", default=None,
                   help="comma-separated columns copied into the Parquet output")
    e.add_argument("--limit", type=_row_limit, default=None,
                   help="first N rows only (0 = all)")
    e.set_defaults(func=_cmd_embed)

    x = sub.add_parser("export", parents=[common],
                       help="write a fitted pipeline as ONNX + tokenizer.json (runs without "
                            "torch via bertfeat.runtime)")
    x.add_argument("pipeline", metavar="PIPELINE.joblib",
                   help="fitted Pipeline starting with BertFeaturizer, TextUnion or "
                        "TfidfVectorizer "
                        "(joblib, e.g. the probe's best_pipeline.joblib; "
                        "load only files you trust)")
    x.add_argument("outdir", metavar="OUTDIR", help="folder to write")
    x.add_argument("--precision", default="fp32", choices=["fp32", "int8"],
                   help="int8: per-token dynamic int8 encoder (fidelity is printed)")
    x.add_argument("--overwrite", action="store_true", help="replace an earlier export")
    x.set_defaults(func=_cmd_export)

    c = sub.add_parser("cache", parents=[common], help="inspect or clear the feature store")
    csub = c.add_subparsers(dest="cache_command", metavar="ACTION")
    ci = csub.add_parser("info", parents=[common], help="where the store is, what it holds")
    ci.add_argument("--json", action="store_true", help="machine-readable output")
    ci.set_defaults(func=_cmd_cache_info)
    cc = csub.add_parser("clear", parents=[common], help="delete stored vectors")
    cc.add_argument("--model", default=None,
                    help="only this model (spec, directory or fingerprint prefix)")
    cc.set_defaults(func=_cmd_cache_clear)
    c.set_defaults(func=lambda args: (c.print_help(), 2)[1])
    return parser


def _interrupted(args: argparse.Namespace) -> str:
    """What to tell a user who pressed Ctrl-C: whether the work done so far is kept."""
    if getattr(args, "command", None) not in ("probe", "embed"):
        return "bertfeat: interrupted"
    if getattr(args, "no_cache", False):
        return ("bertfeat: interrupted; nothing was kept (--no-cache): a rerun encodes "
                "every text again")
    from .store import default_cache_dir

    where = args.cache_dir or default_cache_dir()
    return (f"bertfeat: interrupted; the vectors encoded so far are kept in the feature "
            f"store at {where}: running the same command again encodes only the rest")


def main(argv: list[str] | None = None) -> int:
    """Run the ``bertfeat`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on a usage or input error, 130 when interrupted
        (Ctrl-C; vectors already encoded stay in the store).
    """
    parser = _parser()
    args = parser.parse_args(_glue_negative_layers(sys.argv[1:] if argv is None else argv))
    if not hasattr(args, "cache_dir"):
        args.cache_dir = None
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        return 130
    except CliError as exc:
        print(f"bertfeat: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, ImportError) as exc:
        if os.environ.get("BERTFEAT_DEBUG"):
            raise
        print(f"bertfeat: error: {exc} (set BERTFEAT_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
