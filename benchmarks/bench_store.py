"""Feature store benchmark: cold encode, warm reads, and a grid search with and without the store.

Run from the repository root (after `make setup`):

    .venv/bin/python benchmarks/bench_store.py            # full run (SST-2 train)
    .venv/bin/python benchmarks/bench_store.py --quick    # smoke run, small numbers

It prints a markdown table. Each number is measured in this run; nothing is estimated.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import cpu_name

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "sst2_train.csv"
LOCAL = ROOT / "data" / "sst2_train.csv"


def load_sst2(limit: int | None) -> tuple[list[str], np.ndarray]:
    frame = pd.read_csv(SHARED if SHARED.exists() else LOCAL, keep_default_na=False)
    if limit:
        frame = frame.head(limit)
    return frame["text"].astype(str).tolist(), frame["label"].to_numpy()


class EncoderSpy:
    """Counts texts that reach ``bertfeat.encoder.encode`` (this process only)."""

    def __init__(self) -> None:
        from bertfeat import encoder

        self.encoder = encoder
        self.real = encoder.encode
        self.texts = 0
        self.calls = 0

        def spy(tokenizer, model, texts, **kwargs):
            self.texts += len(texts)
            self.calls += 1
            return self.real(tokenizer, model, texts, **kwargs)

        encoder.encode = spy

    def reset(self) -> None:
        self.texts = self.calls = 0


def progress(row: tuple) -> None:
    print(f"  .. {row[0]}: {row[1]:.2f} s", file=sys.stderr, flush=True)


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--grid-texts", type=int, default=1000,
                        help="texts used by the grid-search comparison (default 1000)")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()

    import sklearn
    import torch
    import transformers
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    from bertfeat import BertFeaturizer, FeatureStore, models

    texts, labels = load_sst2(400 if args.quick else None)
    grid_n = 200 if args.quick else args.grid_texts
    spy = EncoderSpy()
    workdir = Path(tempfile.mkdtemp(prefix="bertfeat-bench-store-"))
    rows = []
    try:
        store = FeatureStore(workdir / "store")

        # cold: every text goes through the encoder and into the store (model load excluded)
        probe = BertFeaturizer(model=args.model, cache=False).fit(texts[:2])
        probe.transform(texts[:2])  # loads the model once, so cold timing is encoding only
        cold = BertFeaturizer(model=args.model, cache=store, layers=-1).fit(texts)
        spy.reset()
        cold_s, _ = timed(lambda: cold.transform(texts))
        n_unique = len(set(texts))
        rows.append(("cold encode + store write, layers=-1", cold_s, len(texts) / cold_s,
                     spy.texts))
        progress(rows[-1])

        # warm: a fresh featurizer (new fit) on the same store, median of 3
        for layers in (-1, "all"):
            warm = BertFeaturizer(model=args.model, cache=store, layers=layers)
            if layers == "all":  # make sure every layer is stored (cold run was full depth)
                warm.fit(texts).transform(texts)
            spy.reset()
            warm_s, _ = timed(lambda w=warm: w.fit(texts).transform(texts), repeat=3)
            rows.append((f"warm transform (fit + read), layers={layers!r}", warm_s,
                         len(texts) / warm_s, spy.texts))
            progress(rows[-1])

        # grid search: 4 layer choices x 3 poolings x 3 C x 5 folds
        grid = {
            "bertfeaturizer__layers": [-1, -2, -3, [-1, -2, -3, -4]],
            "bertfeaturizer__pooling": ["cls", "mean", "max"],
            "logisticregression__C": [0.1, 1.0, 10.0],
        }
        gx, gy = texts[:grid_n], labels[:grid_n]
        for label, cache in (("with store", str(workdir / "grid-store")),
                             ("without store (cache=False)", False)):
            pipe = make_pipeline(BertFeaturizer(model=args.model, cache=cache),
                                 LogisticRegression(max_iter=1000))
            search = GridSearchCV(pipe, grid, cv=StratifiedKFold(5), n_jobs=1)
            spy.reset()
            # one BLAS thread for the heads: the encoder keeps its torch threads, and
            # OpenBLAS threads spinning next to them slow lbfgs down on a 2-core machine
            with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
                warnings.simplefilter("ignore")
                grid_s, _ = timed(lambda s=search: s.fit(gx, gy))
            passes = spy.texts / len(set(gx))
            rows.append((f"GridSearchCV 36 candidates x 5 folds, {grid_n} texts, {label}",
                         grid_s, None, spy.texts, passes, search.best_score_))
            progress(rows[-1])
        stats = store.stats()
    finally:
        models.forget_loaded()
        shutil.rmtree(workdir, ignore_errors=True)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# bertfeat feature store benchmark ({time.strftime('%Y-%m-%d')})\n")
    print(f"- machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()}")
    print(f"- versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, scikit-learn {sklearn.__version__}")
    print(f"- model: {args.model}, precision {cold.precision_}, texts: SST-2 train "
          f"({len(texts)} rows, {n_unique} unique)")
    print(f"- store after the run: {stats['entries']} texts, {stats['bytes'] / 2**20:.1f} MiB "
          "on disk")
    print(f"- peak RSS of the process: {peak_mb:.0f} MiB\n")
    print("| what | wall time (s) | texts/s | texts through the encoder | encoder passes "
          "per unique text | best CV accuracy |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        what, seconds, rate, encoded = row[:4]
        passes = f"{row[4]:.1f}" if len(row) > 4 else ""
        best = f"{row[5]:.3f}" if len(row) > 5 else ""
        rate_s = f"{rate:,.0f}" if rate else ""
        print(f"| {what} | {seconds:.2f} | {rate_s} | {encoded:,} | {passes} | {best} |")
    with_store = [r for r in rows if "with store" in r[0]][0]
    without = [r for r in rows if "without store" in r[0]][0]
    print(f"\nGrid search speed-up from the store: {without[1] / with_store[1]:.1f}x "
          f"({without[4]:.0f} vs {with_store[4]:.0f} encoder passes per text)")


if __name__ == "__main__":
    main()
