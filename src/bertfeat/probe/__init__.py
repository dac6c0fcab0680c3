"""Layer probe: which layer, pooling and head of an encoder carry what a task needs.

:func:`probe` encodes every text once (every layer's pooled statistics go to the feature
store in one encoder pass), then scores *candidates* with standard scikit-learn
cross-validation on one fixed set of folds, and recommends the best Pipeline on raw texts.

Candidate families
------------------
Each kind of candidate is one module of :mod:`bertfeat.probe.families`, run in the order
of :data:`~bertfeat.probe.families.FAMILIES`:

========== ======== ==========================================================================
family     stage    candidates
========== ======== ==========================================================================
layers     screen   every hidden state (0 = embedding output .. N) x pooling, first head
combos     screen   combinations of the last four layers (concat, mean) x pooling, first head
refine     refine   the other heads on the ``refine_top`` best screened feature sets
chunked    chunk    the ``chunk_top`` best feature sets from a ``long_text="chunk"`` pass,
                    when some texts exceed ``max_length``
union      union    TF-IDF ⊕ the ``union_top`` best feature sets + a linear model
control    control  the swept layers of a random-weights copy of the model (never
                    recommended: how much of a score is knowledge transfer)
tfidf      baseline TF-IDF word 1-2 grams + a linear model
finetune   finetune the encoder fine-tuned on each training fold (``BertClassifier`` /
                    ``BertRegressor``); opt-in: ``probe(..., finetune=True)``
========== ======== ==========================================================================

The interface is one method. A family subclasses
:class:`~bertfeat.probe.families.Family` and turns the shared
:class:`~bertfeat.probe.context.ProbeContext` (texts, ``y``, the folds, the heads, the
main encoder pass ``ctx.bert``, ``ctx.ranked(stage)`` for what earlier families scored,
``ctx.encode()`` for another encoder pass through the store, ``ctx.options`` for
:func:`probe`'s arguments) into :class:`~bertfeat.probe.candidates.Candidate` objects:
what to cross-validate (``X``, ``estimator``) and how to build the equivalent Pipeline on
raw texts (``build``). A new family is one new module plus its name in ``FAMILIES``::

    # src/bertfeat/probe/families/mine.py
    from ..candidates import bert_candidate
    from . import Family

    class Mine(Family):
        name, timing = "mine", "mine"

        def candidates(self, ctx):
            head_name, head = ctx.screen_head
            return [bert_candidate(fs, head_name, head, "mine", ctx.pipeline_params)
                    for fs in ctx.ranked("screen")[:2]]

    FAMILY = Mine()

Scoring, the table, the text report, the plot, the printed code and the refit treat
every candidate alike. Every feature set is built from the store without running the
encoder again, and a Pipeline ``BertFeaturizer -> head`` is per-text, so scoring the head
on cached features is exactly ``cross_val_score`` of that Pipeline. The recommendation is
the best recommendable row (every family but the control), so it never scores below the
TF-IDF baseline the probe reports.

Tags, one per word: :func:`probe_words` (:mod:`.words`) is the word-level variant. It
sweeps every layer x sub-word pooling of :class:`~bertfeat.BertWordFeaturizer` on
sentence-grouped folds, with the most-frequent-tag baseline and the random-weights
control, builds the same :class:`~bertfeat.probe.candidates.Candidate` objects, scores them
with the same cross-validation, and returns a :class:`WordProbeResult` (table, report,
plot, code printer) whose recommendation is a :class:`~bertfeat.WordTagger`.

Modules: :mod:`.core` (:func:`probe`: orchestration), :mod:`.checks` (arguments, folds),
:mod:`.context` (shared state, scoring), :mod:`.candidates`, :mod:`.heads`,
:mod:`.families`, :mod:`.stats`, :mod:`.selection` and :mod:`.nested` (the statistics,
the selection rules and the estimate of the selection),
:mod:`.result` (:class:`ProbeResult`), :mod:`.report` (the text summary), :mod:`.plot`
(the figure), :mod:`.codegen` (:func:`pipeline_code`), :mod:`.progress`.
"""

from ..models import random_init_model
from .candidates import SWEEP_POOLINGS
from .codegen import pipeline_code
from .core import probe
from .heads import HEADS
from .result import ProbeResult, describe
from .words import probe_words
from .words_result import WordProbeResult

__all__ = ["probe", "ProbeResult", "describe", "pipeline_code", "random_init_model", "HEADS",
           "SWEEP_POOLINGS", "probe_words", "WordProbeResult"]
