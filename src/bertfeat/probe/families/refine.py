"""Family ``refine``: the heads on the best screened feature sets.

After the closed-form ridge screen (``screen="ridge"``) no head has been fitted yet: the
first head is fitted on the ``2 * refine_top`` best screened sets (ridge ranks feature
sets well but not exactly as the heads do, least of all with many classes), and the other
heads on the ``refine_top`` of those that the first head scores best. The last layer's
mean pooling always gets the first head too: it is the baseline the summary compares the
pick with (the plain sentence embedding with the usual head), so it must not be a ridge
score. With
``screen="head"`` the first head screened every set, and the other heads go to its
``refine_top`` best.
"""

from __future__ import annotations

from ..candidates import Candidate, bert_candidate
from ..context import ProbeContext
from . import Family

__all__ = ["Refine", "FAMILY", "FIRST_HEAD_POOL"]

#: with the ridge screen, the first head is fitted on this many times refine_top sets
FIRST_HEAD_POOL = 2


class Refine(Family):
    name = "refine"
    timing = "refine"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        heads = list(ctx.heads.items())
        top = ctx.options.refine_top
        if not top:
            return []
        if ctx.options.screen == "ridge":
            (first_name, first), others = heads[0], heads[1:]
            screened = ctx.ranked("screen")
            pool = screened[:FIRST_HEAD_POOL * top]
            baseline = next((fs for fs in screened if fs.layer_index == ctx.n_layers
                             and fs.pooling == "mean"), None)
            also = ""
            if baseline is not None and not any(fs is baseline for fs in pool):
                pool.append(baseline)
                also = f" and on L{ctx.n_layers} mean (the last-layer baseline)"
            ctx.log(f"fitting {first_name} on the top {FIRST_HEAD_POOL * top} screened "
                    f"feature sets{also}")
            # scored here: the other heads go to the best of these by the first head
            ctx.score_all([bert_candidate(fs, first_name, first, "refine",
                                          ctx.pipeline_params) for fs in pool])
            ranked = [fs for fs in ctx.ranked("refine") if any(fs is p for p in pool)][:top]
        else:
            others = heads[1:]
            ranked = ctx.ranked("screen")[:top]
        if not others:
            return []
        ctx.log(f"refining the top {len(ranked)} with {', '.join(n for n, _ in others)}")
        return [bert_candidate(fs, name, head, "refine", ctx.pipeline_params)
                for fs in ranked for name, head in others]


FAMILY = Refine()
