"""Family ``finetune``: the encoder fine-tuned on each training fold (opt-in).

The other half of knowledge transfer next to the frozen feature sets: a
:class:`~bertfeat.BertClassifier` (:class:`~bertfeat.BertRegressor` for numeric
targets) with its defaults, fine-tuned end to end on each training fold of the **same**
folds and scored on the held-out fold like every other candidate. Its ``fit s`` column is
the real cost of fine-tuning from raw texts; a frozen row's ``fit s`` is its head alone
(the features come from the one encoder pass), so
:func:`bertfeat.probe.report.finetune_line` compares against
the frozen pipeline's head time **plus** its share of that pass.

Off unless ``probe(..., finetune=True)`` (``bertfeat probe --finetune``): it costs
``epochs`` training passes per fold. ``finetune`` may also be a dict of
``BertClassifier`` parameters (``{"epochs": 4}``).
"""

from __future__ import annotations

from sklearn.pipeline import Pipeline, make_pipeline

from ...estimators.finetune import BertClassifier, BertRegressor
from ..candidates import Candidate
from ..context import ProbeContext
from . import Family

__all__ = ["FineTune", "FROZEN_FAMILIES"]

#: featurizer parameters that mean the same for fine-tuning
_SHARED = ("max_length", "device", "revision", "trust_remote_code")
#: families whose rows are frozen BERT features (what fine-tuning is compared with)
FROZEN_FAMILIES = ("bert", "union")


class FineTune(Family):
    name = "finetune"
    timing = "finetune"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        option = ctx.options.finetune
        if not option:
            return []
        params = {k: ctx.params[k] for k in _SHARED if k in ctx.params}
        if ctx.params.get("precision") in ("fp32", "bf16", "fp16"):
            params["precision"] = ctx.params["precision"]
        params.update(random_state=ctx.random_state, show_progress=False)
        if isinstance(option, dict):
            params.update(option)
        cls = BertClassifier if ctx.task == "classification" else BertRegressor
        model = ctx.model

        def build() -> Pipeline:
            return make_pipeline(cls(model=model, **params))

        estimator = build()
        est = estimator[-1]
        ctx.log(f"fine-tuning {cls.__name__} on each of {len(ctx.splits)} training folds "
                f"({est.epochs} epochs, learning rate {est.learning_rate:g})")
        # torch's global random generator is seeded per fit: folds one at a time
        return [Candidate("finetune", f"L1-{ctx.n_layers} tuned", est.pooling,
                          cls.__name__, ctx.text_array, estimator, build, "finetune",
                          threads=False)]


FAMILY = FineTune()
