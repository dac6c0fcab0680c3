"""
Per-layer tagging curve
=======================

:func:`bertfeat.probe.probe_words` does for word-level tags what the probe does for texts:
every layer x sub-word pooling of a :class:`~bertfeat.BertWordFeaturizer`, a ridge head on
folds that never split a sentence, the most frequent tag per word and a random-weights copy
of the model as baselines.

Here: part-of-speech tags (UPOS) of the first 300 sentences of the Universal Dependencies
English Web Treebank dev split (CC BY-SA 4.0; Silveira et al., 2014; the licence is in
``docs/gallery/data/UD_EWT_LICENSE.txt``), 2 folds.
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from bertfeat.conll import read_conll
from bertfeat.probe import probe_words

here = Path(__file__).parent if "__file__" in globals() else Path.cwd()
sentences, tags = read_conll(here / "data" / "en_ewt-ud-dev-300.conllu", tag_col="upos")
# sphinx_gallery_start_ignore
import os  # noqa: E402

if os.environ.get("BERTFEAT_DOCS_QUICK"):  # the docs test: smaller subsets
    sentences, tags = sentences[:80], tags[:80]
# sphinx_gallery_end_ignore
print(f"{len(sentences)} sentences, {sum(map(len, sentences)):,} words")

result = probe_words(sentences, tags, poolings=("first", "first_last"), combos=False,
                     cv=2, cache=tempfile.mkdtemp(prefix="bertfeat-gallery-"))
print(result.summary())

# %%
# Lower-middle layers carry part of speech best; the last layer of this sentence-embedding
# model is several points lower.
fig, ax = plt.subplots(figsize=(8, 4.2))
result.plot(ax=ax)
fig.tight_layout()
