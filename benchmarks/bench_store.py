"""Feature store benchmark: cold encode, warm reads, and a grid search with and without the store.

Run from the repository root (after `make setup`):

    .venv/bin/python benchmarks/bench_store.py            # full run (SST-2 train)
    .venv/bin/python benchmarks/bench_store.py --quick    # smoke run, small numbers
    .venv/bin/python benchmarks/bench_store.py --scale    # issue 13: exactly once at scale

``--scale`` measures, instead: a cold GridSearchCV with n_jobs 1, 2 and -1 (texts encoded
per unique text, counted by the store's counters, which see every worker process); the
cost of encoding every layer ("full" depth) against only the needed ones; warm reads at
10k and 100k stored texts; bytes per text of each storage layout, and float16's cosine to
float32.

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
from _common import cpu_flags, cpu_name, loadavg

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
    parser.add_argument("--scale", action="store_true",
                        help="issue 13's measurements instead (see the module docstring)")
    parser.add_argument("--n-jobs", type=int, nargs="+", default=[1, 2, -1],
                        help="--scale: n_jobs values of the cold grid search")
    parser.add_argument("--max-iter", type=int, default=1000,
                        help="--scale: LogisticRegression max_iter in the grid")
    parser.add_argument("--depth-texts", type=int, default=2000,
                        help="--scale: texts for the depth and float16 measurements")
    parser.add_argument("--stored", type=int, nargs="+", default=[10_000, 100_000],
                        help="--scale: texts stored for the warm-read rows")
    parser.add_argument("--read-texts", type=int, default=5000,
                        help="--scale: texts read per warm call")
    parser.add_argument("--parts", nargs="+", default=["grid", "depth", "layouts", "warm"],
                        help="--scale: which measurements to run")
    args = parser.parse_args()
    if args.scale:
        if args.quick:
            args.grid_texts, args.depth_texts, args.stored = 200, 200, [1000, 2000]
            args.read_texts, args.n_jobs, args.max_iter = 500, [1, 2], 100
        scale(args)
        return

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


def machine_header(title: str, load_at_start: float) -> None:
    import sklearn
    import torch
    import transformers

    print(f"# {title} ({time.strftime('%Y-%m-%d %H:%M')})\n")
    print(f"- machine: {cpu_name()} ({cpu_flags()}), {os.cpu_count()} cores, "
          f"{platform.system()}; load average at the start {load_at_start:.1f}")
    print(f"- versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, scikit-learn {sklearn.__version__}")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def scale(args: argparse.Namespace) -> None:
    """Issue 13: exactly once in parallel, full depth, store size and layouts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline

    from bertfeat import BertFeaturizer, FeatureStore
    from bertfeat.store import text_digest

    load_at_start = loadavg()
    texts, labels = load_sst2(None)
    workdir = Path(tempfile.mkdtemp(prefix="bertfeat-bench-scale-"))
    lines: list[str] = []
    out = lines.append
    try:
        # 1. cold grid search, n_jobs 1 / 2 / -1: encodes per unique text from the counters
        n = args.grid_texts if "grid" in args.parts else 0
        gx, gy = texts[:n], labels[:n]
        unique = len(set(gx))
        grid = {
            "bertfeaturizer__layers": [-1, -2, -3, [-1, -2, -3, -4]],
            "bertfeaturizer__pooling": ["cls", "mean", "max"],
            "logisticregression__C": [0.1, 1.0, 10.0],
        }
        if n:
            out(f"\n## Cold GridSearchCV, 36 candidates x 5 folds, {n} SST-2 texts ({unique} "
                "unique), an empty store each time\n")
            out("| n_jobs | wall time (s) | texts encoded | encodes per unique text | "
                "load before / after |")
            out("|---:|---:|---:|---:|---|")
        for n_jobs in args.n_jobs if n else []:
            directory = workdir / f"grid-{n_jobs}"
            pipe = make_pipeline(BertFeaturizer(model=args.model, cache=str(directory)),
                                 LogisticRegression(max_iter=args.max_iter))
            search = GridSearchCV(pipe, grid, cv=StratifiedKFold(5), n_jobs=n_jobs)
            before = loadavg()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                seconds, _ = timed(lambda s=search: s.fit(gx, gy))
            (stats,) = FeatureStore(directory).stats()["models"].values()
            out(f"| {n_jobs} | {seconds:.1f} | {stats['encoded']:,} | "
                f"{stats['encoded'] / unique:.2f} | {before:.1f} / {loadavg():.1f} |")
            print(lines[-1], file=sys.stderr, flush=True)

        # 2. what full depth costs: layers=1 encoded 1 layer deep vs every layer
        n_depth = min(len(texts), args.depth_texts) if "depth" in args.parts else 0
        if n_depth:
            out(f"\n## Full depth vs needed depth, cold, {n_depth} texts, layers=1\n")
            out("| store depth | wall time (s) | texts/s |")
            out("|---|---:|---:|")
            BertFeaturizer(model=args.model, cache=False).fit(["warm up"]).transform(["a"])
        for depth in ("needed", "full") if n_depth else ():
            store = FeatureStore(workdir / f"depth-{depth}", depth=depth)
            f = BertFeaturizer(model=args.model, cache=store, layers=1).fit(texts[:n_depth])
            seconds, _ = timed(lambda f=f: f.transform(texts[:n_depth]))
            out(f"| {depth} | {seconds:.2f} | {n_depth / seconds:,.0f} |")
            print(lines[-1], file=sys.stderr, flush=True)

        # 3. float16 fidelity on real vectors, and bytes per text of each layout
        if "layouts" in args.parts:
            n_fid = min(len(texts), args.depth_texts)
            out(f"\n## Storage layouts (bytes per text measured on disk; cosine on {n_fid} "
                "SST-2 texts)\n")
            out("| model shape | dtype | bytes per text on disk | estimate | texts per GiB | "
                "cosine to float32 (min / mean) |")
            out("|---|---|---:|---:|---:|---|")
            f32 = FeatureStore(workdir / "fid-f32")
            f16 = FeatureStore(workdir / "fid-f16", dtype="float16")
            cos: dict[str, str] = {}
            ref = {}
            for pooling in ("cls", "mean", "max"):
                a = BertFeaturizer(model=args.model, cache=f32, pooling=pooling,
                                   layers=[-1]).fit(texts[:n_fid]).transform(texts[:n_fid])
                b = BertFeaturizer(model=args.model, cache=f16, pooling=pooling,
                                   layers=[-1]).fit(texts[:n_fid]).transform(texts[:n_fid])
                ref[pooling] = _cosine(a, b)
            worst = min(float(c.min()) for c in ref.values())
            mean = float(np.mean([c.mean() for c in ref.values()]))
            cos["float16"] = (f"{worst:.8f} / {mean:.8f} (1 - cosine at most {1 - worst:.1e}; "
                              "cls, mean, max of the last layer)")
            cos["float32"] = "1 (bit for bit)"
            probe = BertFeaturizer(model=args.model, cache=False).fit(["a"])
            shapes = [(f"{args.model} ({probe.n_layers_} layers x {probe.hidden_size_})",
                       probe.n_layers_, probe.hidden_size_),
                      ("12 layers x 768 (BERT-base)", 12, 768)]
            for label, layers, hidden in shapes:
                for dtype in ("float32", "float16"):
                    store = FeatureStore(workdir / f"bytes-{layers}-{dtype}", dtype=dtype)
                    rng = np.random.default_rng(0)
                    count = 2000
                    for start in range(0, count, 64):
                        digests = [text_digest(f"t{i}") for i in range(start, start + 64)]
                        stats = rng.standard_normal((64, layers + 1, 3, hidden)).astype(np.float32)
                        store.write("fp", digests, store.storable(stats))
                    store.close()
                    on_disk = sum(p.stat().st_size for p in Path(store.directory).rglob("*")
                                  if p.is_file())
                    per_text = on_disk / count
                    estimate = store.bytes_per_text(layers, hidden)
                    out(f"| {label} | {dtype} | {per_text:,.0f} | {estimate:,} | "
                        f"{2**30 / per_text:,.0f} | "
                        f"{cos[dtype] if layers == probe.n_layers_ else ''} |")
                    print(lines[-1], file=sys.stderr, flush=True)

        # 4. warm transform with 10k and 100k texts stored (synthetic entries of the
        # default model's shape under its real fingerprint: this measures the store)
        if "warm" in args.parts:
            out("\n## Warm transform with many texts stored (a fresh featurizer; fit "
                "included; median of 3)\n")
            out("| texts stored | texts read per call | wall time (s) | texts/s | "
                "bytes on disk |")
            out("|---:|---:|---:|---:|---:|")
        store = FeatureStore(workdir / "warm")
        synthetic = [f"synthetic text number {i}" for i in range(max(args.stored))]
        base = BertFeaturizer(model=args.model, cache=store, layers=-1).fit(synthetic[:1])
        rng = np.random.default_rng(1)
        written = 0
        for target in sorted(args.stored) if "warm" in args.parts else []:
            for start in range(written, target, 1000):
                chunk = synthetic[start:min(target, start + 1000)]
                stats = rng.standard_normal(
                    (len(chunk), base.n_layers_ + 1, 3, base.hidden_size_)).astype(np.float32)
                store.write(base.fingerprint_, [text_digest(t) for t in chunk], stats)
            written = target
            sample = synthetic[target - args.read_texts:target]
            warm = BertFeaturizer(model=args.model, cache=store, layers=-1)
            seconds, _ = timed(lambda w=warm, s=sample: w.fit(s).transform(s), repeat=3)
            out(f"| {target:,} | {len(sample):,} | {seconds:.3f} | "
                f"{len(sample) / seconds:,.0f} | {store.stats()['bytes'] / 2**20:,.0f} MiB |")
            print(lines[-1], file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    machine_header("bertfeat feature store at scale (issue 13)", load_at_start)
    print(f"- model: {args.model}; load average at the end {loadavg():.1f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
