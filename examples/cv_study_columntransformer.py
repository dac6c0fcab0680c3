"""A cross-validation study on a DataFrame: a text column and numeric columns together.

SMS spam (shipped with bertfeat) as a DataFrame with the message ``text`` and two numeric
columns computed from it (``length`` in characters, ``digits``). A ``ColumnTransformer``
routes the text column through ``BertFeaturizer`` and scales the numbers; three models
(numbers only, text only, both) are compared by stratified cross-validation on the same
folds, with accuracy and spam F1. The encoder runs once per message for the whole study.

Run:  python examples/cv_study_columntransformer.py            (1,500 messages, 5 folds)
      python examples/cv_study_columntransformer.py --quick    (a smoke run: 300, 3 folds)
      python examples/cv_study_columntransformer.py --limit 0  (all 5,574)
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bertfeat import BertFeaturizer
from bertfeat.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=1500,
                        help="messages (stratified subset; 0 = all; default 1500)")
    parser.add_argument("--quick", action="store_true", help="300 messages, 3 folds")
    parser.add_argument("--layer", type=int, default=-3, help="hidden state (default -3)")
    parser.add_argument("--cache", default="auto", help="feature store directory")
    args = parser.parse_args()
    limit = 300 if args.quick else args.limit
    n_folds = 3 if args.quick else 5

    data = load_dataset("sms_spam")
    if limit and limit < len(data):
        data, _ = train_test_split(data, train_size=limit, stratify=data["label"],
                                   random_state=0)
    frame = pd.DataFrame({
        "text": data["text"].to_numpy(),
        "length": data["text"].str.len().to_numpy(),
        "digits": data["text"].str.count(r"\d").to_numpy(),
    })
    y = (data["label"] == "spam").astype(int).to_numpy()
    print(f"SMS spam: {len(frame)} messages ({y.sum()} spam), columns {list(frame.columns)}")

    def bert() -> BertFeaturizer:
        return BertFeaturizer(layers=args.layer, pooling="mean", cache=args.cache)

    numbers = ["length", "digits"]
    models = {
        "numbers only (length, digits)": ColumnTransformer(
            [("num", StandardScaler(), numbers)]),
        f"text only (BERT layer {args.layer})": ColumnTransformer(
            [("bert", bert(), "text")]),
        "text + numbers": ColumnTransformer(
            [("bert", bert(), "text"), ("num", StandardScaler(), numbers)]),
    }
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=0)
    print(f"\n{'model':<34} {'accuracy':>16} {'spam F1':>16} {'seconds':>8}")
    for name, columns in models.items():
        pipe = make_pipeline(columns, StandardScaler(), LogisticRegression(max_iter=2000))
        start = time.perf_counter()
        scores = cross_validate(pipe, frame, y, cv=folds, scoring=("accuracy", "f1"))
        acc, f1 = scores["test_accuracy"], scores["test_f1"]
        print(f"{name:<34} {acc.mean():>9.3f} ± {acc.std():.3f} {f1.mean():>9.3f} ± "
              f"{f1.std():.3f} {time.perf_counter() - start:>8.1f}")


if __name__ == "__main__":
    main()
