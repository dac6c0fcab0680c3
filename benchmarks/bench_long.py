"""Long documents and the TF-IDF ⊕ BERT union (issue 8): every probe candidate, same folds.

For each dataset (from ``../shared/data``; a stratified subset with ``--limit``) it runs
:func:`bertfeat.probe.probe` with the default model, screening head only (StandardScaler +
LogisticRegression), no random-weights control, and reports per candidate kind the best
5-fold CV accuracy on the same ``StratifiedKFold(5, shuffle=True, random_state=0)`` folds:

* best single layer (truncated to ``max_length``) and best BERT feature set overall;
* chunked pooling of the best feature sets (``long_text="chunk"``), when the featurizer has
  that mode and some texts are longer than ``max_length``;
* TF-IDF (1-2 grams) + LogisticRegression, C in {1, 10, 100};
* TF-IDF ⊕ best feature set (``TextUnion``) + LogisticRegression, C in {1, 10, 100};
* the probe's recommendation.

On SpamAssassin it also reports the encoder's time for the truncating pass (and the chunked
pass when it ran) in tokens per second; tokens are counted with the model's tokenizer
(truncated: ``min(length, max_length)`` per text).

Run:  python benchmarks/bench_long.py                         (all five, 2,000 texts each)
      python benchmarks/bench_long.py --datasets spamassassin --limit 0   (all rows)
Results: a Markdown table on stdout and ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {
    "spamassassin": ("spamassassin.csv.gz", "SpamAssassin"),
    "sms_spam": ("sms_spam.csv", "SMS spam"),
    "sst2": ("sst2_train.csv", "SST-2"),
    "trec": ("trec_train.csv", "TREC"),
    "subj": ("subj.csv", "SUBJ"),
}


def load(name: str, limit: int, seed: int) -> tuple[list[str], np.ndarray, int]:
    """Texts and labels of ``name``; a stratified subset of ``limit`` rows when limit > 0."""
    df = pd.read_csv(SHARED / DATASETS[name][0]).dropna(subset=["text", "label"])
    total = len(df)
    if 0 < limit < total:
        from sklearn.model_selection import train_test_split

        df, _ = train_test_split(df, train_size=limit, stratify=df["label"],
                                 random_state=seed)
    return df["text"].astype(str).tolist(), df["label"].to_numpy(), total


def _lengths(texts: list[str]) -> np.ndarray:
    """Token count of each full text under the default model's tokenizer."""
    from transformers import AutoTokenizer

    from bertfeat import models

    tokenizer = AutoTokenizer.from_pretrained(str(models.resolve_model("default").path))
    return np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=True,
                                                    truncation=False)["input_ids"]])


def token_counts(texts: list[str], max_length: int) -> tuple[int, int]:
    """(tokens the truncating pass sees, tokens of the full texts), special tokens included."""
    lengths = _lengths(texts)
    return int(np.minimum(lengths, max_length).sum()), int(lengths.sum())


def run(name: str, limit: int, store: str, seed: int, poolings: tuple[str, ...]) -> dict:
    from bertfeat.probe import describe, probe

    texts, y, total = load(name, limit, seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the truncation count, reported below
        res = probe(texts, y, model="default", poolings=poolings, heads=("logreg",),
                    random_control=False, cache=store, random_state=seed, verbose=True)
    seconds = time.perf_counter() - started
    table = res.table
    bert = table[(table.family == "bert") & (table.stage != "chunk")]
    singles = bert[bert.layer_index.notna()]
    best_single = singles.iloc[0]
    chunked = table[table.stage == "chunk"]
    union = table[table.family == "union"]
    tfidf = table[table.family == "tfidf"]

    def cell(rows: pd.DataFrame) -> dict | None:
        if rows.empty:
            return None
        row = rows.iloc[0]
        return {"what": describe(row), "mean": float(row["mean_score"]),
                "std": float(row["std_score"])}

    out = {
        "dataset": DATASETS[name][1], "rows": len(texts), "of": total,
        "probe_seconds": seconds, "encoding": {k: v for k, v in res.encoding.items()
                                               if k != "fingerprint"},
        "best_single_layer": cell(singles), "best_bert": cell(bert),
        "chunked": cell(chunked), "tfidf": cell(tfidf), "union": cell(union),
        "recommended": cell(table[table.candidate == res.best["candidate"]]),
        "candidates": len(table), "timings": res.timings,
        "truncated_single_layer_label": best_single["layer"],
    }
    if name == "spamassassin":
        from bertfeat import BertFeaturizer

        max_length = BertFeaturizer().fit(texts[:1]).max_length_
        seen, full = token_counts(texts, max_length)
        enc = res.encoding
        out["tokens"] = {"max_length": max_length, "truncated_tokens": seen,
                         "full_tokens": full,
                         "truncated_tokens_per_s": (seen / enc["seconds"]
                                                    if enc["encoded"] else None)}
        if enc.get("chunk_seconds"):
            from bertfeat import BertFeaturizer as _F

            cap = _F().max_chunks * max_length  # tokens per text, windows overlap aside
            lengths = _lengths(texts)
            out["tokens"]["chunk_seconds"] = enc["chunk_seconds"]
            out["tokens"]["chunk_tokens_upper"] = int(np.minimum(lengths, cap).sum())
            out["tokens"]["max_windows_per_text"] = _F().max_chunks
            out["tokens"]["chunk_tokens_per_s"] = (out["tokens"]["chunk_tokens_upper"]
                                                   / enc["chunk_seconds"])
    return out


def pct(cell: dict | None) -> str:
    return "—" if cell is None else f"{100 * cell['mean']:.1f} ± {100 * cell['std']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--limit", type=int, default=2000,
                        help="stratified subset per dataset (0 = all rows)")
    parser.add_argument("--store", default="/tmp/bertfeat-issue8-store")
    parser.add_argument("--poolings", default="mean,max")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/bertfeat-issue8-bench.json")
    args = parser.parse_args()
    results = []
    for name in args.datasets:
        results.append(run(name, args.limit, args.store, args.seed,
                           tuple(args.poolings.split(","))))
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print("| dataset | rows | best single layer (truncated) | chunked | TF-IDF + LR | "
          "TF-IDF ⊕ best layer | probe's recommendation | rec − TF-IDF | rec − best layer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rec = r["recommended"]
        print(f"| {r['dataset']} | {r['rows']:,} of {r['of']:,} | "
              f"{r['truncated_single_layer_label']}: {pct(r['best_single_layer'])} | "
              f"{pct(r['chunked'])} | {pct(r['tfidf'])} | {pct(r['union'])} | "
              f"{rec['what']}: **{pct(rec)}** | "
              f"{100 * (rec['mean'] - r['tfidf']['mean']):+.1f} | "
              f"{100 * (rec['mean'] - r['best_single_layer']['mean']):+.1f} |")
    for r in results:
        if "tokens" in r:
            print(json.dumps({"dataset": r["dataset"], **r["tokens"],
                              "encoding": r["encoding"]}, default=str))


if __name__ == "__main__":
    main()
