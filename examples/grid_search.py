"""Grid search over layers, poolings and C -- with the encoder running once per text.

A ``Pipeline(BertFeaturizer, StandardScaler, LogisticRegression)`` tuned by
``GridSearchCV`` on SST-2: 4 layer choices x 3 poolings x 3 values of C x 5 folds is 180
fits, yet every sentence goes through the encoder once -- the feature store serves every
other layer, pooling and fold. The store's counter proves it at the end.

Run:  python examples/grid_search.py              (2,000 training sentences, full grid)
      python examples/grid_search.py --quick      (a smoke run: 200 sentences, small grid)
      python examples/grid_search.py --limit 0    (all 6,920 training sentences)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bertfeat import BertFeaturizer, FeatureStore

DATA = Path(__file__).resolve().parents[1] / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=2000,
                        help="training sentences (0 = all; default 2000)")
    parser.add_argument("--quick", action="store_true", help="200 sentences, a small grid")
    parser.add_argument("--cache", default=None, help="feature store directory")
    parser.add_argument("--n-jobs", type=int, default=1, help="GridSearchCV processes")
    args = parser.parse_args()
    limit = 200 if args.quick else args.limit

    train = pd.read_csv(DATA / "sst2_train.csv", keep_default_na=False)
    test = pd.read_csv(DATA / "sst2_test.csv", keep_default_na=False)
    if limit:
        train, test = train.head(limit), test.head(max(limit // 2, 100))
    store = FeatureStore(args.cache) if args.cache else FeatureStore()

    pipe = make_pipeline(BertFeaturizer(layers=-1, pooling="mean", cache=store),
                         StandardScaler(), LogisticRegression(max_iter=2000))
    grid = {
        "bertfeaturizer__layers": [-1, -2, -3, [-4, -3, -2, -1]],
        "bertfeaturizer__pooling": ["cls", "mean", "max"],
        "logisticregression__C": [0.01, 0.1, 1.0],
    }
    folds = 5
    if args.quick:
        grid = {"bertfeaturizer__layers": [-1, -3], "bertfeaturizer__pooling": ["cls", "mean"],
                "logisticregression__C": [0.1]}
        folds = 3
    n_fits = folds
    for values in grid.values():
        n_fits *= len(values)
    print(f"SST-2: {len(train)} training / {len(test)} test sentences; "
          f"{n_fits} fits ({folds}-fold grid search)")

    fingerprint = BertFeaturizer(cache=store).fit(train["text"][:1]).fingerprint_
    before = store.stats()["models"].get(fingerprint, {}).get("encoded", 0)
    search = GridSearchCV(pipe, grid, cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                          n_jobs=args.n_jobs)
    start = time.perf_counter()
    search.fit(train["text"], train["label"])
    seconds = time.perf_counter() - start
    encoded = store.stats()["models"][fingerprint]["encoded"] - before

    results = pd.DataFrame(search.cv_results_)
    top = results.sort_values("rank_test_score").head(8)
    print()
    print(f"{'layers':<18} {'pooling':<8} {'C':>6}   {'CV accuracy':>14}")
    for _, row in top.iterrows():
        print(f"{row['param_bertfeaturizer__layers']!s:<18} "
              f"{row['param_bertfeaturizer__pooling']:<8} "
              f"{row['param_logisticregression__C']:>6}   "
              f"{row['mean_test_score']:.3f} ± {row['std_test_score']:.3f}")
    print()
    print(f"best: {search.best_params_}")
    print(f"test accuracy of the refitted best pipeline: "
          f"{search.score(test['text'], test['label']):.3f}")
    print(f"grid search took {seconds:.1f} s; the encoder ran on {encoded} texts "
          f"({train['text'].nunique()} unique training sentences; 0 if already stored)")


if __name__ == "__main__":
    main()
