"""An SVM head on frozen encoder features: linear and RBF kernels, tuned by CV.

Frozen features from one layer of the default encoder feed ``SVC``; the kernel, C and
the layer are chosen by a small ``GridSearchCV`` on the training sentences (the encoder
still runs once per sentence: the store serves every other layer and fold), then the
best model is scored on the SST-2 test sentences.

Run:  python examples/svm_head.py            (1,500 training sentences)
      python examples/svm_head.py --quick    (a smoke run: 200 sentences)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from bertfeat import BertFeaturizer

DATA = Path(__file__).resolve().parents[1] / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=1500,
                        help="training sentences (0 = all; default 1500)")
    parser.add_argument("--quick", action="store_true", help="200 training sentences")
    parser.add_argument("--cache", default="auto", help="feature store directory")
    args = parser.parse_args()
    limit = 200 if args.quick else args.limit

    train = pd.read_csv(DATA / "sst2_train.csv", keep_default_na=False)
    test = pd.read_csv(DATA / "sst2_test.csv", keep_default_na=False)
    if limit:
        train, test = train.head(limit), test.head(max(limit // 2, 100))
    print(f"SST-2: {len(train)} training / {len(test)} test sentences")

    pipe = make_pipeline(BertFeaturizer(layers=-1, pooling="mean", cache=args.cache),
                         StandardScaler(), SVC())
    grid = [
        {"bertfeaturizer__layers": [-1, -2], "svc__kernel": ["linear"],
         "svc__C": [0.001, 0.01]},
        {"bertfeaturizer__layers": [-1, -2], "svc__kernel": ["rbf"], "svc__C": [1.0, 10.0]},
    ]
    if args.quick:
        grid = [{"bertfeaturizer__layers": [-1, -2], "svc__kernel": ["linear", "rbf"],
                 "svc__C": [1.0]}]
    search = GridSearchCV(pipe, grid, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    start = time.perf_counter()
    search.fit(train["text"], train["label"])
    results = pd.DataFrame(search.cv_results_).sort_values("rank_test_score")
    for _, row in results.iterrows():
        print(f"layer {row['param_bertfeaturizer__layers']:>3}  {row['param_svc__kernel']:<6} "
              f"C={row['param_svc__C']:<6}  CV accuracy {row['mean_test_score']:.3f} "
              f"± {row['std_test_score']:.3f}")
    best = search.best_estimator_
    print(f"best: {search.best_params_}")
    print(f"test accuracy {best.score(test['text'], test['label']):.3f}  "
          f"(support vectors: {best[-1].n_support_.sum()}; "
          f"{time.perf_counter() - start:.1f} s in all)")


if __name__ == "__main__":
    main()
