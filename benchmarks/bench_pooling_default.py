"""Which default pooling? Frozen features + logistic regression on the shared data sets.

Compares ``pooling="auto"`` (for the bundled all-MiniLM-L6-v2: mean pooling + L2
normalisation, the model's own sentence embedding) with the raw poolings, last layer, on a
stratified train subset of each data set, scored on a test subset. One encoder pass per text
(the store holds every pooling), so each extra row of the table is a store read.

Run:  .venv/bin/python benchmarks/bench_pooling_default.py            (1,000 train / 500 test)
      .venv/bin/python benchmarks/bench_pooling_default.py --quick    (200 / 100, smoke run)
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import sklearn
import torch
import transformers
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cores, cpu_flags, cpu_name, loadavg  # noqa: E402

from bertfeat import BertFeaturizer  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
#: name -> (train file, test file or None for a split of the train file)
DATASETS = {"SST-2": ("sst2_train.csv", "sst2_test.csv"),
            "TREC": ("trec_train.csv", "trec_test.csv"),
            "SUBJ": ("subj.csv", None),
            "banking77": ("banking77_train.csv", "banking77_test.csv")}
#: (label, BertFeaturizer parameters)
VARIANTS = [("auto (default: mean + L2)", {}),
            ("mean (old default)", {"pooling": "mean"}),
            ("cls", {"pooling": "cls"}),
            ("max", {"pooling": "max"})]


def _subset(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    if n >= len(frame):
        return frame
    return train_test_split(frame, train_size=n, stratify=frame["label"], random_state=seed)[0]


def _load(name: str, n_train: int, n_test: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    train_file, test_file = DATASETS[name]
    train = pd.read_csv(SHARED / train_file, keep_default_na=False)
    if test_file is None:
        train, test = train_test_split(train, test_size=0.2, stratify=train["label"],
                                       random_state=0)
    else:
        test = pd.read_csv(SHARED / test_file, keep_default_na=False)
    return _subset(train, n_train), _subset(test, n_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="--train 200 --test 100")
    parser.add_argument("--cache", default=None,
                        help="feature store directory to keep (default: a temporary one)")
    args = parser.parse_args()
    n_train, n_test = (200, 100) if args.quick else (args.train, args.test)

    print(f"{datetime.date.today()}  CPU: {cpu_name()} ({cores()} cores; {cpu_flags()})  "
          f"load average at start: {loadavg():.2f}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"scikit-learn {sklearn.__version__}; train {n_train} / test {n_test} per data set, "
          "stratified; last layer; test accuracy")
    heads = {f"LR C={C}": (lambda C=C: LogisticRegression(C=C, max_iter=3000))
             for C in (1, 10)}
    heads.update({f"scaler+LR C={C}": (lambda C=C: make_pipeline(
        StandardScaler(), LogisticRegression(C=C, max_iter=3000))) for C in (0.1, 1)})
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        store = args.cache or scratch
        for name in DATASETS:
            train, test = _load(name, n_train, n_test)
            for label, params in VARIANTS:
                featurizer = BertFeaturizer(cache=store, **params)
                X_train = featurizer.fit_transform(train["text"])
                X_test = featurizer.transform(test["text"])
                for head_name, head in heads.items():
                    model = head().fit(X_train, train["label"])
                    rows.append({"data set": name, "pooling": label, "head": head_name,
                                 "accuracy": model.score(X_test, test["label"])})
    table = pd.DataFrame(rows).pivot_table(index=["head", "data set"], columns="pooling",
                                           values="accuracy", sort=False)
    print(table.round(3).to_markdown() if _has_tabulate() else table.round(3).to_string())
    print(f"precision {featurizer.precision_}; {time.perf_counter() - started:.0f} s in all; "
          f"load average at end: {loadavg():.2f}")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
