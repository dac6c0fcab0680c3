"""Fine-tuned ``BertClassifier`` vs frozen features vs TF-IDF, train -> test.

Default model (all-MiniLM-L6-v2), CPU. Per dataset (SST-2, TREC; data from
``../shared/data``) and per way, a fresh process fits on the train split and scores the
test split, reporting accuracy, fit time, peak RSS and (fine-tuning) training tokens/s:

* ``finetune``: ``BertClassifier`` with its defaults (or the ``--set`` overrides);
* ``frozen``: the probe's recommended frozen pipeline for that dataset (benchmarks/README.md,
  "Layer probe": SST-2 L3-6 averaged, mean pooling; TREC L3-6 concatenated, max pooling;
  StandardScaler + SVC), fitted from an empty store, so the encoding is in the fit time;
* ``tfidf``: TF-IDF 1-2 grams (sublinear tf) + LogisticRegression(C=10), the probe's
  baseline with its middle C (a search over C costs more than everything else here on a
  busy 2-core machine).

Usage::

    python benchmarks/bench_finetune.py                       # the table in benchmarks/README.md
    python benchmarks/bench_finetune.py --limit 2000 --eval dev --ways finetune \\
        --set learning_rate=5e-5 --set epochs=2                # a pilot on a subset

Each way runs in its own process (``--worker``), so peak RSS is that way's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import cores, cpu_flags, cpu_name, loadavg  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
#: C of the TF-IDF baseline
TFIDF_C = 10
#: the probe's recommended frozen pipelines (benchmarks/README.md, "Layer probe")
FROZEN = {
    "sst2": {"layers": [3, 4, 5, 6], "layer_combine": "mean", "pooling": "mean"},
    "trec": {"layers": [3, 4, 5, 6], "layer_combine": "concat", "pooling": "max"},
}


def _read(name: str, split: str, limit: int | None, seed: int = 0):
    import pandas as pd

    frame = pd.read_csv(DATA / f"{name}_{split}.csv")
    if limit and limit < len(frame):
        from sklearn.model_selection import train_test_split

        frame, _ = train_test_split(frame, train_size=limit, random_state=seed,
                                    stratify=frame["label"])
    return frame["text"].tolist(), frame["label"].to_numpy()


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"None": None, "True": True, "False": False}.get(text, text)


def worker(args) -> dict:
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    eval_split = "dev" if args.eval == "dev" and args.dataset == "sst2" else "test"
    x_train, y_train = _read(args.dataset, "train", args.limit)
    x_test, y_test = _read(args.dataset, eval_split, None)
    result = {"dataset": args.dataset, "way": args.way, "n_train": len(x_train),
              "eval": eval_split, "n_eval": len(x_test), "threads": torch.get_num_threads(),
              "load_start": loadavg()}
    start = time.perf_counter()
    if args.way == "finetune":
        from bertfeat import BertClassifier

        params = dict(_parse_set(args.set))
        params.setdefault("random_state", 0)
        clf = BertClassifier(**params)
        clf.fit(x_train, y_train)
        fit = time.perf_counter() - start
        result.update(params=clf.get_params(), precision=clf.precision_,
                      n_steps=clf.n_steps_, epochs_run=clf.n_epochs_,
                      train_tokens=clf.n_train_tokens_,
                      tokens_per_s=clf.n_train_tokens_ / fit,
                      loss_curve=[round(v, 4) for v in clf.loss_curve_])
    elif args.way == "frozen":
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        from bertfeat import BertFeaturizer

        with tempfile.TemporaryDirectory() as store:
            clf = make_pipeline(BertFeaturizer(cache=store, **FROZEN[args.dataset]),
                                StandardScaler(), SVC())
            clf.fit(x_train, y_train)
            fit = time.perf_counter() - start
            result["config"] = FROZEN[args.dataset]
            accuracy = float(np.mean(clf.predict(x_test) == y_test))
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                            LogisticRegression(C=TFIDF_C, max_iter=1000))
        clf.fit(x_train, y_train)
        fit = time.perf_counter() - start
        result["config"] = {"C": TFIDF_C}
    if args.way != "frozen":
        t_pred = time.perf_counter()
        accuracy = float(np.mean(clf.predict(x_test) == y_test))
        result["predict_s"] = time.perf_counter() - t_pred
    result.update(fit_s=fit, accuracy=accuracy, load_end=loadavg(),
                  peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def _parse_set(items):
    for item in items or []:
        key, _, value = item.partition("=")
        yield key, _value(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sst2", "trec"])
    parser.add_argument("--ways", nargs="+", default=["finetune", "frozen", "tfidf"])
    parser.add_argument("--limit", type=int, default=None, help="stratified train subset")
    parser.add_argument("--eval", choices=["test", "dev"], default="test",
                        help="dev: score SST-2 on its dev split (pilots)")
    parser.add_argument("--set", action="append", help="BertClassifier parameter=value")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--way", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    import torch
    import transformers

    print(f"CPU: {cpu_name()} ({cpu_flags()}), {cores()} cores; torch {torch.__version__}, "
          f"transformers {transformers.__version__}; load average {loadavg():.1f}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    for dataset in args.datasets:
        for way in args.ways:
            cmd = [sys.executable, __file__, "--worker", "--dataset", dataset, "--way", way,
                   "--eval", args.eval, "--threads", str(args.threads)]
            if args.limit:
                cmd += ["--limit", str(args.limit)]
            for item in args.set or []:
                cmd += ["--set", item]
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode or not lines:
                print(f"{dataset} {way}: failed\n{out.stderr[-2000:]}", flush=True)
                continue
            result = json.loads(lines[-1][7:])
            tps = result.get("tokens_per_s")
            print(f"{dataset:5s} {way:8s} acc {result['accuracy']:.4f}"
                  f"  fit {result['fit_s']:7.1f} s  rss {result['peak_rss_mib']:6.0f} MiB"
                  + (f"  {tps:7.0f} tok/s" if tps else "")
                  + f"  load {result['load_start']:.1f}-{result['load_end']:.1f}"
                  + "  " + json.dumps({k: result[k] for k in ("loss_curve", "config")
                                       if k in result}),
                  flush=True)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
