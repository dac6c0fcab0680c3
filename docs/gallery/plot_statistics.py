"""
Intervals and paired tests on cross-validation scores
=====================================================

Fold scores of k-fold cross-validation are correlated (the training sets overlap), so the
naive ``std / sqrt(k)`` interval is too narrow. :mod:`bertfeat.cvstats` gives the corrected
resampled t interval (Nadeau & Bengio) and a corrected paired t-test on the same splits,
for any scikit-learn cross-validation; the probe uses them for its table.

Here: 300 SMS texts, 5 folds x 2 repeats, frozen features of three layers and TF-IDF.
"""

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from bertfeat import BertFeaturizer
from bertfeat.cvstats import cv_splits, paired_test, score_interval, split_ratio
from bertfeat.datasets import load_dataset

n_texts = 300
# sphinx_gallery_start_ignore
import os  # noqa: E402

if os.environ.get("BERTFEAT_DOCS_QUICK"):  # the docs test: smaller subsets
    n_texts = 120
# sphinx_gallery_end_ignore
data = load_dataset("sms_spam").sample(n_texts, random_state=1)
texts, y = data["text"].to_numpy(dtype=object), data["label"].to_numpy()
splits = cv_splits(y, n_splits=5, n_repeats=2)     # the same 10 splits for every candidate
ratio = split_ratio(splits)
store = tempfile.mkdtemp(prefix="bertfeat-gallery-")

candidates = {f"L{layer} mean": make_pipeline(
    BertFeaturizer(layers=layer, pooling="mean", cache=store),
    LogisticRegression(C=10, max_iter=1000)) for layer in (2, 4, 6)}
candidates["TF-IDF"] = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10))
scores = {name: cross_val_score(pipe, texts, y, cv=splits)
          for name, pipe in candidates.items()}

# %%
top = max(scores, key=lambda name: scores[name].mean())
for name, s in scores.items():
    iv = score_interval(s, ratio)
    naive = score_interval(s, ratio, corrected=False)
    p = "top" if name == top else f"p = {paired_test(scores[top], s, ratio).p_value:.3f}"
    print(f"{name:8s} {iv.mean:.3f}  corrected [{iv.low:.3f}, {iv.high:.3f}]  "
          f"naive [{naive.low:.3f}, {naive.high:.3f}]  vs {top}: {p}")

# %%
# The corrected intervals (thick) are wider than the naive ones (thin): they account for
# the overlap of the training sets.
fig, ax = plt.subplots(figsize=(7, 3.4))
for i, s in enumerate(scores.values()):
    iv = score_interval(s, ratio)
    naive = score_interval(s, ratio, corrected=False)
    ax.plot([iv.low, iv.high], [i, i], lw=6, color="C0", alpha=0.5,
            label="corrected 95%" if i == 0 else None)
    ax.plot([naive.low, naive.high], [i, i], lw=2, color="C3",
            label="naive 95%" if i == 0 else None)
    ax.plot(s, np.full(len(s), i + 0.18), "k.", ms=3, label="fold scores" if i == 0 else None)
    ax.plot(iv.mean, i, "kD")
ax.set_yticks(range(len(scores)), list(scores))
ax.set_xlabel("accuracy (5-fold CV x 2 repeats)")
ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()
