"""Family ``control``: the swept layers of a randomly initialised copy of the model.

The same architecture and tokenizer with random weights (seed ``control_seed``), through
the same layers, poolings, screening head and folds: how much of a score is knowledge
transfer and how much is the head fitting surface features (the control of the probing
literature). The copy is saved once next to the store (``random-init/``).
"""

from __future__ import annotations

from ... import models
from ..candidates import Candidate, bert_candidate, feature_sets
from ..context import ProbeContext
from . import Family

__all__ = ["RandomControl", "FAMILY"]


class RandomControl(Family):
    name = "control"
    timing = "baselines"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        if not ctx.options["random_control"]:
            return []
        seed = ctx.options["control_seed"]
        rmodel = models.random_init_model(
            ctx.model, seed=seed, directory=ctx.store.random_init_directory,
            revision=ctx.params.get("revision"),
            trust_remote_code=ctx.params.get("trust_remote_code", False))
        rparams = {k: v for k, v in ctx.params.items() if k != "revision"}
        ctx.log(f"encoding the random-weights control (same architecture, seed {seed})")
        encoded = ctx.encode(rmodel, ctx.poolings, rparams, timing="random_encode")
        ctx.encoding["random_encoded"] = encoded.encoded
        sets = feature_sets("random", encoded, ctx.layers, [], {"model": rmodel, **rparams})
        ctx.log(f"scoring the random-weights control ({len(sets)} feature sets)")
        head_name, head = ctx.screen_head
        return [bert_candidate(fs, head_name, head, "control", ctx.pipeline_params,
                               recommendable=False) for fs in sets]


FAMILY = RandomControl()
