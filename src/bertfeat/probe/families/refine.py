"""Family ``refine``: the heads on the ``refine_top`` best screened feature sets (every
head after a closed-form ridge screen; the heads after the first with ``screen="head"``)."""

from __future__ import annotations

from ..candidates import Candidate, bert_candidate
from ..context import ProbeContext
from . import Family

__all__ = ["Refine", "FAMILY"]


class Refine(Family):
    name = "refine"
    timing = "refine"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        # a closed-form screen fitted no head: every head is fitted on the best sets
        others = list(ctx.heads.items())[0 if ctx.options.screen == "ridge" else 1:]
        top = ctx.options.refine_top
        if not others or not top:
            return []
        ranked = ctx.ranked("screen")[:top]
        ctx.log(f"refining the top {len(ranked)} with {', '.join(n for n, _ in others)}")
        return [bert_candidate(fs, name, head, "refine", ctx.pipeline_params)
                for fs in ranked for name, head in others]


FAMILY = Refine()
