"""
Which layer? The probe's layer curve
====================================

:func:`bertfeat.probe.probe` encodes every text once, then scores every layer and pooling
of the encoder with a logistic-regression head on the same cross-validation folds, next to
a random-weights copy of the model (how much of the score is transfer) and TF-IDF.

Here: 8 intents of the shipped banking77 data set, 40 texts each (320 texts), 3 folds.
"""

# %%
# Run the probe
# -------------
import tempfile

import matplotlib.pyplot as plt

from bertfeat.datasets import load_dataset
from bertfeat.probe import probe

per_intent = 40
# sphinx_gallery_start_ignore
import os  # noqa: E402

if os.environ.get("BERTFEAT_DOCS_QUICK"):  # the docs test: smaller subsets
    per_intent = 15
# sphinx_gallery_end_ignore
data = load_dataset("banking77")
intents = sorted(data["label"].value_counts().index[:8])
subset = data[data["label"].isin(intents)].groupby("label").head(per_intent)
print(f"{len(subset)} texts, {subset['label'].nunique()} intents")

store = tempfile.mkdtemp(prefix="bertfeat-gallery-")  # an empty feature store
result = probe(subset["text"], subset["label"], poolings=("cls", "mean", "max"),
               heads=("logreg",), cv=3, union=False, cache=store, verbose=False,
               random_state=0)

# %%
# The table
# ---------
# One row per candidate, best first: the mean score over the folds, its 95% interval
# (corrected resampled t) and the p-value of a corrected paired test against the top row;
# ``=`` marks candidates the folds cannot tell from the top, and ``*`` the pick (the
# cheapest of those).
print(result.summary(top=10))

# %%
# The layer curve
# ---------------
# Accuracy per layer (0 = the embedding output) for each pooling, with the random-weights
# control and TF-IDF as reference lines.
fig, ax = plt.subplots(figsize=(9, 4.5))
result.plot(ax=ax)
fig.tight_layout()

# %%
# The recommended pipeline, fitted on all the texts, and the code that builds it:
print(result.best_code)
print(result.best_estimator.predict(["I still have not received my new card"]))
