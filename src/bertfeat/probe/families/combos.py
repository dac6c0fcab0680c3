"""Family ``combos``: combinations of layers (default: the last four concatenated and
averaged) x pooling, screened next to the single layers."""

from __future__ import annotations

from typing import Any

from ...pooling import COMBINES
from ..candidates import Candidate, feature_sets
from ..context import ProbeContext
from . import Family

__all__ = ["Combos", "FAMILY", "resolve_combos"]


def resolve_combos(spec: Any, n_layers: int) -> list[tuple[list[int], str]]:
    """Layer combinations: ``True`` = concat and mean of the last four transformer layers."""
    if spec is False or spec is None:
        return []
    if spec is True:
        k = min(4, n_layers)
        if k < 2:
            return []
        last = list(range(n_layers - k + 1, n_layers + 1))
        return [(last, "concat"), (last, "mean")]
    out = []
    for item in spec:
        layers, combine = item
        resolved = [int(v) if int(v) >= 0 else n_layers + 1 + int(v) for v in layers]
        if any(not 0 <= v <= n_layers for v in resolved) or len(resolved) < 2:
            raise ValueError(f"combos: {layers!r} must name 2+ layers in 0..{n_layers}")
        if combine not in COMBINES:
            raise ValueError(f"combos: combine must be concat, mean or sum, got {combine!r}")
        out.append((sorted(resolved), combine))
    return out


class Combos(Family):
    name = "combos"
    timing = "screen"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        combos = resolve_combos(ctx.options.combos, ctx.n_layers)
        if not combos:
            return []
        sets = feature_sets("bert", ctx.bert, [], combos, {"model": ctx.model, **ctx.params})
        ctx.log(f"screening {len(sets)} layer combinations with {ctx.screen_name}")
        return [ctx.screen_candidate(fs, "screen", group=ctx.poolings.index(fs.pooling))
                for fs in sets]


FAMILY = Combos()
