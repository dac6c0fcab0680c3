"""Quick start: frozen MiniLM features + logistic regression on SST-2, against TF-IDF.

Run:  python examples/quickstart.py              (full SST-2 train -> test)
      python examples/quickstart.py --quick      (200 sentences of each: a fast smoke run)
      python examples/quickstart.py --limit 1000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from bertfeat import BertFeaturizer

DATA = Path(__file__).resolve().parents[1] / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    parser.add_argument("--quick", action="store_true", help="small run: --limit 200")
    parser.add_argument("--cache", default="auto", help="feature store directory")
    args = parser.parse_args()

    train = pd.read_csv(DATA / "sst2_train.csv", keep_default_na=False)
    test = pd.read_csv(DATA / "sst2_test.csv", keep_default_na=False)
    limit = 200 if args.quick else args.limit
    if limit:
        train, test = train.head(limit), test.head(limit)
    print(f"SST-2: {len(train)} training and {len(test)} test sentences")

    bert = make_pipeline(
        BertFeaturizer(layers=-1, pooling="mean", cache=args.cache),
        LogisticRegression(max_iter=2000, C=1.0),
    )
    start = time.perf_counter()
    bert.fit(train["text"], train["label"])
    accuracy = bert.score(test["text"], test["label"])
    seconds = time.perf_counter() - start

    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1),
                          LogisticRegression(max_iter=2000, C=10.0))
    tfidf.fit(train["text"], train["label"])
    baseline = tfidf.score(test["text"], test["label"])

    featurizer = bert[0]
    print(f"BertFeaturizer(model='default', layers=-1, pooling='mean') + LogisticRegression: "
          f"accuracy {accuracy:.3f}  ({seconds:.1f} s, precision={featurizer.precision_})")
    print(f"TF-IDF (1-2 grams) + LogisticRegression:                      "
          f"accuracy {baseline:.3f}")


if __name__ == "__main__":
    main()
