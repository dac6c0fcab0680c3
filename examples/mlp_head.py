"""Knowledge transfer into a neural network: an MLP head on frozen encoder features.

The encoder's knowledge (pre-trained on large text corpora) is transferred into a small
neural network trained on a few thousand labelled sentences: frozen BERT features from a
middle-to-late layer feed scikit-learn's ``MLPClassifier``. Compared on SST-2 with the same
MLP on TF-IDF features (no transferred knowledge) and with a linear head.

Run:  python examples/mlp_head.py            (2,000 training sentences)
      python examples/mlp_head.py --quick    (a smoke run: 300 sentences)
      python examples/mlp_head.py --limit 0 --layer -2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bertfeat import BertFeaturizer

DATA = Path(__file__).resolve().parents[1] / "data"


def mlp(seed: int) -> MLPClassifier:
    return MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, early_stopping=True,
                         max_iter=300, random_state=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=2000,
                        help="training sentences (0 = all; default 2000)")
    parser.add_argument("--quick", action="store_true", help="300 training sentences")
    parser.add_argument("--layer", type=int, default=-1, help="hidden state (default -1)")
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--cache", default="auto", help="feature store directory")
    args = parser.parse_args()
    limit = 300 if args.quick else args.limit

    train = pd.read_csv(DATA / "sst2_train.csv", keep_default_na=False)
    test = pd.read_csv(DATA / "sst2_test.csv", keep_default_na=False)
    if limit:
        train, test = train.head(limit), test.head(max(limit // 2, 150))
    print(f"SST-2: {len(train)} training / {len(test)} test sentences")

    def bert() -> BertFeaturizer:
        return BertFeaturizer(layers=args.layer, pooling=args.pooling, cache=args.cache)

    start = time.perf_counter()  # encode once; every pipeline below reads the store
    texts = pd.concat([train["text"], test["text"]])
    bert().fit(texts).transform(texts)
    print(f"encoded {texts.nunique()} sentences in {time.perf_counter() - start:.1f} s "
          "(0 s when they were already in the feature store)")

    models = {
        f"BERT layer {args.layer} ({args.pooling}) -> MLP(256)":
            make_pipeline(bert(), StandardScaler(), mlp(0)),
        f"BERT layer {args.layer} ({args.pooling}) -> LogisticRegression":
            make_pipeline(bert(), StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)),
        "TF-IDF (1-2 grams) -> MLP(256)":
            make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), mlp(0)),
    }
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(train["text"], train["label"])
        accuracy = model.score(test["text"], test["label"])
        extra = ""
        head = model.steps[-1][1]
        if isinstance(head, MLPClassifier):
            extra = f", {head.n_iter_} epochs"
        print(f"{name:<48} test accuracy {accuracy:.3f}  "
              f"({time.perf_counter() - start:.1f} s{extra})")


if __name__ == "__main__":
    main()
