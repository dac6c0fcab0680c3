"""Family ``finetune``: the encoder fine-tuned on each training fold (opt-in).

The other half of knowledge transfer next to the frozen feature sets: a
:class:`~bertfeat.BertClassifier` (:class:`~bertfeat.BertRegressor` for numeric
targets) with its defaults, fine-tuned end to end on each training fold of the **same**
folds and scored on the held-out fold like every other candidate. Its ``fit s`` column is
the real cost of fine-tuning from raw texts; a frozen row's ``fit s`` is its head alone
(the features come from the one encoder pass), so :func:`summary_line` compares against
the frozen pipeline's head time **plus** its share of that pass.

Off unless ``probe(..., finetune=True)`` (``bertfeat probe --finetune``): it costs
``epochs`` training passes per fold. ``finetune`` may also be a dict of
``BertClassifier`` parameters (``{"epochs": 4}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sklearn.pipeline import Pipeline, make_pipeline

from ...estimators.finetune import BertClassifier, BertRegressor
from ..candidates import Candidate
from ..context import ProbeContext
from . import Family

if TYPE_CHECKING:  # pragma: no cover
    from ..result import ProbeResult

__all__ = ["FineTune", "summary_line"]

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
        return [Candidate("finetune", f"L1-{ctx.n_layers} tuned", est.pooling,
                          cls.__name__, ctx.text_array, estimator, build, "finetune")]


def summary_line(result: ProbeResult) -> str | None:
    """``fine-tuning: +3.1 points over the best frozen pipeline at 40× the fit time``.

    The frozen pipeline's fit time per fold is its head's fit time plus the main encoder
    pass scaled to a training fold (``encoding["seconds"]`` × (k - 1) / k): what fitting
    it on raw texts costs without a store.

    Parameters
    ----------
    result : ProbeResult

    Returns
    -------
    str or None
        None when the fine-tuning family did not run.
    """
    from .. import report

    table = result.table
    tuned = table[table["family"] == "finetune"]
    frozen = table[table["family"].isin(FROZEN_FAMILIES) & (table["stage"] != "control")]
    if tuned.empty:
        return None
    row = tuned.iloc[0]
    if frozen.empty:
        return (f"fine-tuning: {result.scoring} {row['mean_score']:.4f} "
                f"({row['fit_time']:.1f} s per fold); no frozen pipeline to compare with")
    best = frozen.iloc[0]  # the table is sorted, best first
    k = max(result.n_splits, 2)
    frozen_fit = float(best["fit_time"]) + float(result.encoding.get("seconds") or 0.0) * (
        k - 1) / k
    diff = float(row["mean_score"] - best["mean_score"])
    proportion = result.scoring.startswith(report.PROPORTION_METRICS)
    gain = f"{100 * abs(diff):.1f} points" if proportion else f"{abs(diff):.4f}"
    side = "over" if diff >= 0 else "below"
    ratio = float(row["fit_time"]) / max(frozen_fit, 1e-9)
    return (f"fine-tuning: {'+' if diff >= 0 else '-'}{gain} {side} the best frozen pipeline "
            f"at {ratio:.0f}× the fit time "
            f"({row['fit_time']:.1f} s vs {frozen_fit:.1f} s per fold, encoding included; "
            f"{result.scoring} {row['mean_score']:.4f} vs {best['mean_score']:.4f})")


FAMILY = FineTune()
