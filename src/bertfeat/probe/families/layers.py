"""Family ``layers``: every swept hidden state x pooling, screened with the first head."""

from __future__ import annotations

from ..candidates import Candidate, bert_candidate, feature_sets
from ..context import ProbeContext
from . import Family

__all__ = ["Layers", "FAMILY"]


class Layers(Family):
    name = "layers"
    timing = "screen"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        sets = feature_sets("bert", ctx.bert, ctx.layers, [], {"model": ctx.model, **ctx.params})
        head_name, head = ctx.screen_head
        ctx.log(f"screening {len(sets)} single-layer feature sets with {head_name} "
                f"({len(ctx.splits)}-fold)")
        return [bert_candidate(fs, head_name, head, "screen", ctx.pipeline_params,
                               group=ctx.poolings.index(fs.pooling)) for fs in sets]


FAMILY = Layers()
