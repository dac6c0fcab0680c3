"""Calibration of the cross-validation statistics (issue 18): how often a test lies.

Two scikit-learn classifiers of *equal* expected accuracy (the same GaussianNB on two
independent, equally informative views of one signal) are cross-validated on the same
repeated stratified k-fold splits, for many data sets. A paired test at level 0.05 should
call them different in at most 5% of the data sets. The corrected resampled t of
Nadeau & Bengio (:mod:`bertfeat.cvstats`) is compared with the naive paired t-test that
treats folds as independent. A second row per design gives the power against a real gap
(one view more informative), and the coverage of the 95% interval of one classifier's
accuracy (the truth from a large fresh sample).

Run:  python benchmarks/bench_cvstats.py                  (200 data sets per design, ~2 min)
      python benchmarks/bench_cvstats.py --datasets 100
Prints a Markdown table (for docs/statistics.md) and the machine facts.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import scipy
import sklearn
from _common import cores, cpu_flags, cpu_name, loadavg
from sklearn.naive_bayes import GaussianNB

from bertfeat.cvstats import cv_splits, paired_test, score_interval, split_ratio

DESIGNS = ((5, 1), (10, 1), (5, 2), (5, 4))


def _views(rng: np.random.Generator, n: int, gap: float) -> tuple:
    """Labels and two views of one latent signal; B holds ``1 - gap`` of it (0: equal)."""
    y = rng.integers(0, 2, n)
    signal = 0.6 * y[:, None] + rng.normal(size=(n, 1))
    a = signal + rng.normal(size=(n, 3))
    b = (1.0 - gap) * signal + rng.normal(size=(n, 3))
    return y, a, b


def _cv(X: np.ndarray, y: np.ndarray, splits: list) -> np.ndarray:
    """Fold accuracies (a plain loop: ``cross_val_score`` without its per-call overhead)."""
    return np.array([GaussianNB().fit(X[tr], y[tr]).score(X[te], y[te]) for tr, te in splits])


def run(datasets: int, n: int) -> list[dict]:
    rows = []
    for k, r in DESIGNS:
        counts = {"corr_null": 0, "naive_null": 0, "corr_power": 0, "naive_power": 0,
                  "corr_cover": 0, "naive_cover": 0}
        for seed in range(datasets):
            for gap, tag in ((0.0, "null"), (0.5, "power")):
                rng = np.random.default_rng(seed)
                y, a, b = _views(rng, n, gap)
                splits = cv_splits(y, k, r, random_state=seed)
                ratio = split_ratio(splits)
                sa, sb = _cv(a, y, splits), _cv(b, y, splits)
                for corr, name in ((True, "corr"), (False, "naive")):
                    counts[f"{name}_{tag}"] += paired_test(sa, sb, ratio,
                                                           corrected=corr).p_value < 0.05
                if tag == "null":  # accuracy of GaussianNB fitted on n rows: a big test set
                    ty, ta, _ = _views(np.random.default_rng(10**6 + seed), 5000, 0.0)
                    truth = GaussianNB().fit(a, y).score(ta, ty)
                    for corr, name in ((True, "corr"), (False, "naive")):
                        iv = score_interval(sa, ratio, corrected=corr)
                        counts[f"{name}_cover"] += iv.low <= truth <= iv.high
        rows.append({"design": f"{r} x {k}-fold", **{key: v / datasets
                                                     for key, v in counts.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--rows", type=int, default=100)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = run(args.datasets, args.rows)
    print(f"{args.datasets} data sets of {args.rows} rows per design, GaussianNB, "
          "paired tests at 0.05")
    print("| design | false 'different' corrected | naive | power corrected | naive "
          "| 95% interval coverage corrected | naive |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['design']} | {row['corr_null']:.3f} | {row['naive_null']:.3f} | "
              f"{row['corr_power']:.3f} | {row['naive_power']:.3f} | "
              f"{row['corr_cover']:.3f} | {row['naive_cover']:.3f} |")
    print(f"\n{time.perf_counter() - t0:.0f} s; CPU {cpu_name()} ({cpu_flags()}), {cores()} "
          f"cores, load average {loadavg():.2f}; Python {platform.python_version()}, numpy "
          f"{np.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}")


if __name__ == "__main__":
    main()
