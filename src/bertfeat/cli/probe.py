"""``bertfeat probe`` (texts and ``--words``) and ``bertfeat recommend``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .common import (
    DEMO_DATASET,
    DEMO_LIMIT,
    SELECT_RULES,
    CliError,
    _column,
    _featurizer_params,
    _read_rows,
    _stratified_subset,
)

#: the command line's entry point is bertfeat.cli.main; this module exports nothing else
__all__: list[str] = []


# --------------------------------------------------------------------------------- probe
def _cmd_probe(args: argparse.Namespace) -> int:
    if args.words:
        return _cmd_probe_words(args)
    if args.data is not None and (Path(args.data) / "probe.json").is_file():
        args.outdir = args.data  # `bertfeat probe OUTDIR --select RULE`: re-select
        return _cmd_recommend(args)
    from ..io import datasets
    from ..probe import probe
    from ..store import FeatureStore

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
    from ..probe import ProbeResult

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
    from ..probe import describe

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
    from ..io.conll import read_conll
    from ..probe import probe_words
    from ..store import FeatureStore

    if args.data is not None or args.dataset:
        raise CliError("--words FILE replaces DATA and --dataset; give one of them")
    # the probe subcommand's own parser (set by the parser, which imports this module)
    defaults = args.probe_parser.parse_args([])
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
