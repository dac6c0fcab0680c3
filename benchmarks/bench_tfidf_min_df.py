"""TF-IDF baseline with ``min_df=1`` against ``min_df=2`` (issue 26): accuracy, vocabulary, time.

The probe's TF-IDF baseline is the union's TF-IDF block (word 1-2 grams, sublinear tf,
``min_df=2``). This measures what ``min_df=2`` costs in accuracy and saves in vocabulary
and fit time: on each shared set, 1,500 rows (``sample(1500, random_state=0)``), 5-fold
stratified CV (shuffled, seed 0) of ``TfidfVectorizer(...) + LogisticRegression(C=10,
max_iter=1000)`` (the probe's baseline C), one BLAS thread.

Run:  python benchmarks/bench_tfidf_min_df.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cores, cpu_flags, cpu_name, loadavg  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"banking77": "banking77_train.csv", "trec": "trec_train.csv",
        "sst2": "sst2_train.csv", "subj": "subj.csv", "sms_spam": "sms_spam.csv"}


def main() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")
    print(f"CPU: {cpu_name()} ({cores()} cores; {cpu_flags()}); load {loadavg():.2f}\n")
    print("| set | classes | min_df | vocabulary (all 1,500 rows) | CV accuracy | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    with threadpool_limits(1):
        for name, file in SETS.items():
            df = pd.read_csv(SHARED / file, keep_default_na=False).sample(1500, random_state=0)
            X = np.asarray(df["text"].astype(str).tolist(), dtype=object)
            y = np.asarray(df["label"].tolist())
            cv = StratifiedKFold(5, shuffle=True, random_state=0)
            for min_df in (1, 2):
                def vec(min_df=min_df) -> TfidfVectorizer:
                    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                           min_df=min_df)
                t0 = time.perf_counter()
                scores = cross_val_score(make_pipeline(
                    vec(), LogisticRegression(C=10.0, max_iter=1000)), X, y, cv=cv)
                seconds = time.perf_counter() - t0
                print(f"| {name} | {len(np.unique(y))} | {min_df} | "
                      f"{len(vec().fit(X).vocabulary_):,} | {scores.mean():.4f} | "
                      f"{seconds:.2f} |", flush=True)
    print(f"\nload at the end {loadavg():.2f}")


if __name__ == "__main__":
    main()
