"""
The feature store's speed-up
============================

A :class:`~bertfeat.BertFeaturizer` keeps every layer's pooled vectors of every text it
encodes in an on-disk feature store, keyed by the model's fingerprint and the text. A second
transform is a read; a grid search over layers, poolings, heads and folds encodes each
unique text once.

Timings below are measured while the documentation is built, on whatever machine built it.
"""

# %%
import tempfile
import time

import matplotlib.pyplot as plt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from bertfeat import BertFeaturizer, FeatureStore
from bertfeat.datasets import load_dataset

n_texts = 400
# sphinx_gallery_start_ignore
import os  # noqa: E402

if os.environ.get("BERTFEAT_DOCS_QUICK"):  # the docs test: smaller subsets
    n_texts = 120
# sphinx_gallery_end_ignore
data = load_dataset("sms_spam").sample(n_texts, random_state=0)
texts, labels = data["text"].tolist(), data["label"].to_numpy()
store = FeatureStore(tempfile.mkdtemp(prefix="bertfeat-gallery-"))


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


featurizer = BertFeaturizer(layers=-1, pooling="mean", cache=store).fit(texts)
featurizer.transform(["a warm-up text, not one of the SMS"])  # loads the model first
cold = timed(lambda: featurizer.transform(texts))          # encodes: the store is empty
warm = timed(lambda: featurizer.transform(texts))          # reads
other = timed(lambda: BertFeaturizer(layers=-3, pooling="max", cache=store)
              .fit(texts).transform(texts))                # another layer and pooling: reads
print(f"cold {cold:.2f} s, warm {warm:.3f} s, another layer/pooling {other:.3f} s")

# %%
# A grid search: 2 layers x 2 poolings x 2 C x 3 folds = 24 fits, one encoder pass
pipe = make_pipeline(BertFeaturizer(cache=store), LogisticRegression(max_iter=1000))
grid = GridSearchCV(pipe, {"bertfeaturizer__layers": [-1, -2],
                           "bertfeaturizer__pooling": ["mean", "cls"],
                           "logisticregression__C": [0.1, 1.0]}, cv=3)
before = store.stats()["models"]
search = timed(lambda: grid.fit(texts, labels))
after = store.stats()["models"]
encoded = sum(m["encoded"] for m in after.values()) - sum(
    m["encoded"] for m in before.values())
print(f"grid search: {search:.1f} s, texts encoded during it: {encoded}; "
      f"best {grid.best_params_} accuracy {grid.best_score_:.3f}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
labels_ = ["first transform\n(encode)", "same again\n(read)", "other layer\nand pooling (read)"]
bars = ax.barh(labels_[::-1], [other, warm, cold], color=["C2", "C2", "C0"])
ax.bar_label(bars, fmt="%.2f s", padding=3)
ax.set_xlabel(f"seconds for {len(texts)} SMS texts (all-MiniLM-L6-v2)")
ax.set_title("bertfeat feature store: encode once, read afterwards")
ax.margins(x=0.2)
fig.tight_layout()
