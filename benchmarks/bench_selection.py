"""Selection benchmark (issue 25): does the probe's pick win on data it never saw?

For each labelled set (``../shared/data``; sets without a test split get a fixed
stratified 80/20 split, seed 0):

1. ``probe()`` (default model, default options but no random-weights control, which is
   never recommended) on a stratified 1,500-row subset of the train split -- the rows
   ``bertfeat probe DATA --limit 1500`` takes (seed 0).
2. Each rule's pick (``result.make_pipeline(key)``; with ``--all-candidates`` every
   recommendable candidate, so that any further rule's test accuracy is a lookup) is
   fitted on the whole train split and scored on the test split. The rules only read the
   probe's table and fold scores. Train and test texts are encoded once, every layer,
   into the feature store first, so the candidates' fits read vectors and fit heads.
3. The plain baselines, fitted on train, scored on test: TF-IDF (word 1-2 grams,
   sublinear tf) + ``LogisticRegression(max_iter=1000)``, and the default embedding,
   ``BertFeaturizer()`` + ``LogisticRegression()``.
4. Each rule of :data:`bertfeat.probe.selection.RULES` is applied to the saved table and
   fold scores; the report gives each rule's test accuracy per set, the mean, the
   worst-case loss to the best rule per set, and the pick's fit cost.

Everything a set produced is written to ``OUT/<set>.json`` (``<set>-<rows>.json`` for
another ``--rows``) as it is computed (the probe's
table and fold scores, then each candidate's test score), so a crash or Ctrl-C loses at
most the candidate being fitted: run the same command again to go on.

SpamAssassin (long e-mails): the probe's chunked pass over 1,500 e-mails is 2.6 M encoder
tokens, about an hour at the 540-760 tokens/s the shared, loaded 2-core machine gave on
2026-12-06, and about as much again for the test split; so this set is probed with
``chunk=False`` (every e-mail truncated to its first 512 tokens, ``PROBE_OPTIONS``), and
its picks are fitted on the probe's 1,500 rows, not the 4,836 training e-mails
(``FIT_ROWS``); the table says so.

Run:  python benchmarks/bench_selection.py                     (every set, OUT=bench-selection)
      python benchmarks/bench_selection.py --sets trec sst2 --out DIR
      python benchmarks/bench_selection.py --quick                (500 probe rows, trec + sms)
      python benchmarks/bench_selection.py --report-only         (the table from OUT/*.json)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cores, cpu_flags, cpu_name, loadavg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
#: name: (train file, test file or None for a stratified 80/20 split)
SETS = {
    "trec": ("trec_train.csv", "trec_test.csv"),
    "sst2": ("sst2_train.csv", "sst2_test.csv"),
    "sms_spam": ("sms_spam.csv", None),
    "banking77": ("banking77_train.csv", "banking77_test.csv"),
    "subj": ("subj.csv", None),
    "spamassassin": ("spamassassin.csv.gz", None),
}
#: sets whose picks are fitted on the probe's rows, not the whole train split (why: above)
FIT_ROWS = {"spamassassin": "probe"}
#: probe options other than the defaults, per set (why: above)
PROBE_OPTIONS = {"spamassassin": {"chunk": False}}
PROBE_ROWS = 1500


def load_set(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and test split of a set (a fixed stratified 80/20 split, seed 0, when the
    set has no test split)."""
    from sklearn.model_selection import train_test_split

    train_file, test_file = SETS[name]
    df = pd.read_csv(SHARED / train_file, keep_default_na=False)
    df["text"] = df["text"].astype(str)
    if test_file is not None:
        test = pd.read_csv(SHARED / test_file, keep_default_na=False)
        test["text"] = test["text"].astype(str)
        return df.reset_index(drop=True), test.reset_index(drop=True)
    train, test = train_test_split(df, test_size=0.2, stratify=df["label"], random_state=0)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def probe_rows(train: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """The stratified subset ``bertfeat probe DATA --limit rows --seed seed`` takes."""
    from bertfeat.cli import _stratified_subset

    texts, y, _ = _stratified_subset(train["text"], train["label"], rows, seed,
                                     min_per_class=5)
    return pd.DataFrame({"text": texts, "label": y})


def _save(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=float), encoding="utf-8")
    tmp.replace(path)


def _preencode(texts: list[str], cache: str, poolings: list[str], chunk: bool) -> float:
    """Every layer of every text into the store (one encoder pass per long-text mode)."""
    from sklearn.base import clone

    from bertfeat import BertFeaturizer

    t0 = time.perf_counter()
    modes = ["truncate", "chunk"] if chunk else ["truncate"]
    for mode in modes:
        base = BertFeaturizer(layers="all", pooling=poolings[0], cache=cache, long_text=mode)
        for pooling in poolings:
            clone(base).set_params(pooling=pooling).fit_transform(texts)
    return time.perf_counter() - t0


def _stem(name: str, rows: int, seed: int) -> str:
    return name + ("" if rows == PROBE_ROWS else f"-{rows}") + (f"-seed{seed}" if seed else "")


def run_set(name: str, out: Path, cache: str, rows: int, every: bool = False,
            seed: int = 0, screen: str = "ridge") -> dict:
    """Probe, then fit and test each rule's pick (``every``: every recommendable
    candidate, the rules' picks first); resumable from the JSON. ``screen`` is the
    probe's screen (``"head"``: the first head on every feature set)."""
    import joblib
    from sklearn.exceptions import ConvergenceWarning

    from bertfeat.probe import probe

    stem = _stem(name, rows, seed)
    path = out / f"{stem}.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    train, test = load_set(name)
    sub = probe_rows(train, rows, seed)
    fit = sub if FIT_ROWS.get(name) == "probe" else train
    pipes_path = out / f"{stem}.candidates.joblib"
    if "table" not in record:
        print(f"[{name}] probe on {len(sub):,} of {len(train):,} train rows", flush=True)
        load0 = loadavg()
        t0 = time.perf_counter()
        result = probe(sub["text"], sub["label"], random_control=False, cache=cache,
                       verbose=True, refit=False, random_state=seed, screen=screen,
                       **PROBE_OPTIONS.get(name, {}))
        record = {
            "set": name, "seed": seed, "n_train": len(train), "n_test": len(test),
            "n_probe": len(sub),
            "n_fit": len(fit), "fit_rows": FIT_ROWS.get(name, "train"),
            "probe_options": PROBE_OPTIONS.get(name, {}), "screen": screen,
            "probe_seconds": time.perf_counter() - t0, "probe_load": [load0, loadavg()],
            "timings": result.timings, "design": result.design,
            "ratio": result.recommendation.ratio, "heads": result.head_order,
            "table": json.loads(result.table.to_json(orient="records")),
            "folds": {key: [float(v) for v in row]
                      for key, row in result.fold_scores.iterrows()},
            "test": {}, "baselines": {},
        }
        keys = [k for k in result.table["candidate"] if result.is_recommendable(k)]
        joblib.dump({k: result.make_pipeline(k) for k in keys}, pipes_path)
        _save(path, record)
    pipes = joblib.load(pipes_path)  # written by this script: trusted
    if "encode_seconds" not in record:
        chunked = any(row["stage"] == "chunk" for row in record["table"])
        texts = list(dict.fromkeys(list(fit["text"]) + list(test["text"])))
        print(f"[{name}] encoding {len(texts):,} train+test texts, every layer"
              + (" (and in windows)" if chunked else ""), flush=True)
        record["encode_load"] = [loadavg()]
        record["encode_seconds"] = _preencode(texts, cache, ["cls", "mean", "max"], chunked)
        record["encode_load"].append(loadavg())
        _save(path, record)
    y_fit, y_test = fit["label"].to_numpy(), test["label"].to_numpy()
    X_fit = np.asarray(fit["text"], dtype=object)
    X_test = np.asarray(test["text"], dtype=object)

    def score(pipe) -> dict:
        load0 = loadavg()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe.fit(X_fit, y_fit)
        fit_s = time.perf_counter() - t0
        acc = float(pipe.score(X_test, y_test))
        return {"accuracy": acc, "fit_s": fit_s, "load": [load0, loadavg()]}

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from bertfeat import BertFeaturizer
    from bertfeat.probe.families.tfidf import baseline_vectorizer

    baselines = {
        "tfidf_lr": lambda: make_pipeline(baseline_vectorizer(),
                                          LogisticRegression(max_iter=1000)),
        "default_lr": lambda: make_pipeline(BertFeaturizer(cache=cache), LogisticRegression()),
    }
    for key, make in baselines.items():
        if key not in record["baselines"]:
            record["baselines"][key] = score(make())
            print(f"[{name}] {key}: {record['baselines'][key]['accuracy']:.4f}", flush=True)
            _save(path, record)
    chosen = list(dict.fromkeys(picks(record).values()))
    order = chosen + [k for k in pipes if k not in chosen] if every else chosen
    for key in order:
        pipe = pipes[key]
        if key in record["test"]:
            continue
        record["test"][key] = score(pipe)
        print(f"[{name}] {key}: {record['test'][key]['accuracy']:.4f} "
              f"({record['test'][key]['fit_s']:.1f} s)", flush=True)
        _save(path, record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--out", default="bench-selection", help="per-set JSON folder")
    parser.add_argument("--cache", default=None,
                        help="feature store directory (default: the per-user store)")
    parser.add_argument("--rows", type=int, default=PROBE_ROWS, help="probe rows")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the probe's subset and folds (a second trial)")
    parser.add_argument("--quick", action="store_true",
                        help="500 probe rows on trec and sms_spam (a smoke run)")
    parser.add_argument("--all-candidates", action="store_true",
                        help="fit and test every recommendable candidate, not only the "
                             "rules' picks (the rules' picks first)")
    parser.add_argument("--screen", default="ridge", choices=["ridge", "head"],
                        help="the probe's screen: closed-form ridge (default) or the first "
                             "head on every feature set (every head fitted, as before)")
    parser.add_argument("--report-only", action="store_true",
                        help="print the table from the JSON files, run nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = 500
        if args.sets == list(SETS):
            args.sets = ["trec", "sms_spam"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from bertfeat.store import default_cache_dir

    cache = str(args.cache or default_cache_dir())
    print(f"CPU: {cpu_name()} ({cores()} cores; {cpu_flags()}); load {loadavg():.2f}",
          flush=True)
    if not args.report_only:
        for name in args.sets:
            run_set(name, out, cache, args.rows, args.all_candidates, args.seed, args.screen)
    stems = [_stem(n, args.rows, args.seed) for n in args.sets]
    records = [json.loads((out / f"{n}.json").read_text()) for n in stems
               if (out / f"{n}.json").exists()]
    print(report(records))
    return 0


#: the probe's default heads, cheapest first (the cost order of the rules)
HEAD_ORDER = ["logreg", "svm", "mlp"]
#: short column names of the rules in the table
RULE_LABELS = {"top": "top mean", "cheapest-tied": "cheapest tied (old default)",
               "one-se": "one-SE", "stable-top": "stable top"}


def picks(record: dict, rules: list[str] | None = None) -> dict[str, str]:
    """Each rule's pick on the saved table and fold scores of one set (no scoring)."""
    from bertfeat.probe.selection import RULES, recommend

    table = pd.DataFrame.from_records(record["table"])
    folds = pd.DataFrame.from_dict(record["folds"], orient="index")
    recommendable = [k for k, fam in zip(table["candidate"], table["family"])
                     if fam in ("bert", "tfidf", "union")]
    return {rule: recommend(table, folds, record["ratio"], head_order=HEAD_ORDER,
                            recommendable=recommendable, rule=rule, alpha=0.05,
                            level=0.95).pick
            for rule in (rules or list(RULES))}


def _short(key: str) -> str:
    family, layer, pooling, head = key.split(":", 3)
    if family == "tfidf":
        return f"TF-IDF {head.replace('logreg ', '')}"
    prefix = "TF-IDF ⊕ " if family == "union" else ""
    return f"{prefix}{layer} {pooling} {head}"


def _depth(key: str) -> int:
    from bertfeat.probe.stats import layer_depth

    return 0 if key.startswith("tfidf") else layer_depth(key.split(":")[1])


def report(records: list[dict]) -> str:
    """Markdown: each rule's test accuracy per set, the mean, the worst-case loss to the best
    rule per set, the fit cost of the picks, and whether the rule meets the issue's bar."""
    from bertfeat.probe.selection import DEFAULT_RULE, RULES

    records = [r for r in records if r.get("test") and r.get("baselines")
               and all(k in r["test"] for k in picks(r).values())]
    if not records:
        return "no finished set yet"
    rules = list(RULES)
    acc: dict[str, dict[str, float]] = {}
    lines = ["| set (probe rows → fit rows / test rows) | TF-IDF + LR | default embedding + LR | "
             + " | ".join(RULE_LABELS.get(r, r) for r in rules)
             + " | best tested candidate on test (tested / candidates) |",
             "|---" * (len(rules) + 4) + "|"]
    for rec in records:
        chosen = picks(rec, rules)
        base = rec["baselines"]
        row = [f"{rec['set']} ({rec['n_probe']:,} → {rec['n_fit']:,} / {rec['n_test']:,})",
               f"{base['tfidf_lr']['accuracy']:.4f}", f"{base['default_lr']['accuracy']:.4f}"]
        for rule in rules:
            key = chosen[rule]
            a = rec["test"][key]["accuracy"]
            acc.setdefault(rule, {})[rec["set"]] = a
            row.append(f"{a:.4f} ({_short(key)})")
        best = max(rec["test"], key=lambda k: rec["test"][k]["accuracy"])
        row.append(f"{rec['test'][best]['accuracy']:.4f} ({_short(best)}; "
                   f"{len(rec['test'])} / {len(rec['table'])})")
        lines.append("| " + " | ".join(row) + " |")
    sets = [r["set"] for r in records]
    floor = {r["set"]: max(r["baselines"]["tfidf_lr"]["accuracy"],
                           r["baselines"]["default_lr"]["accuracy"]) for r in records}
    best_rule = {s: max(acc[rule][s] for rule in rules) for s in sets}
    mean = {rule: float(np.mean([acc[rule][s] for s in sets])) for rule in rules}
    base_mean = [float(np.mean([r["baselines"][b]["accuracy"] for r in records]))
                 for b in ("tfidf_lr", "default_lr")]
    lines.append("| **mean test accuracy** | " + f"{base_mean[0]:.4f} | {base_mean[1]:.4f} | "
                 + " | ".join(f"**{mean[r]:.4f}**" for r in rules) + " | |")
    lines.append("| worst-case loss to the best rule on a set (points) | | | "
                 + " | ".join(f"{100 * max(best_rule[s] - acc[r][s] for s in sets):.1f}"
                              for r in rules) + " | |")
    lines.append("| sets below max(TF-IDF + LR, default embedding + LR) | | | "
                 + " | ".join(str(sum(acc[r][s] < floor[s] for s in sets)) for r in rules)
                 + " | |")
    fit = {rule: [rec["test"][picks(rec, [rule])[rule]]["fit_s"] for rec in records]
           for rule in rules}
    depth = {rule: [_depth(picks(rec, [rule])[rule]) for rec in records] for rule in rules}
    base_fit = [float(np.mean([r["baselines"][b]["fit_s"] for r in records]))
                for b in ("tfidf_lr", "default_lr")]
    lines.append("| fit cost: mean head-fit s on the fit rows (vectors stored) / mean encoder "
                 f"layers the pick needs | {base_fit[0]:.1f} / 0 | {base_fit[1]:.1f} / 6 | "
                 + " | ".join(f"{np.mean(fit[r]):.1f} / {np.mean(depth[r]):.1f}" for r in rules)
                 + " | |")
    ok = [r for r in rules if mean[r] >= mean["top"] - 1e-12
          and all(acc[r][s] >= floor[s] for s in sets)]
    lines.append("")
    lines.append(f"rules meeting the bar (mean >= top mean's, every set >= both baselines): "
                 f"{', '.join(ok) or 'none'}; probe default: {DEFAULT_RULE}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
