"""Family ``layers``: every swept hidden state x pooling, screened (closed-form ridge over
every alpha by default; the first head with ``screen="head"``)."""

from __future__ import annotations

from ..candidates import Candidate, feature_sets
from ..context import ProbeContext
from . import Family

__all__ = ["Layers", "FAMILY"]


class Layers(Family):
    name = "layers"
    timing = "screen"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        sets = feature_sets("bert", ctx.bert, ctx.layers, [], {"model": ctx.model, **ctx.params})
        ctx.log(f"screening {len(sets)} single-layer feature sets with {ctx.screen_name} "
                f"({len(ctx.splits)}-fold)")
        return [ctx.screen_candidate(fs, "screen", group=ctx.poolings.index(fs.pooling))
                for fs in sets]


FAMILY = Layers()
