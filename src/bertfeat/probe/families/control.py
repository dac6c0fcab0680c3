"""Family ``control``: the swept layers of a randomly initialised copy of the model.

The same architecture and tokenizer with random weights (seed ``control_seed``), through
the same layers, poolings, screening head and folds: how much of a score is knowledge
transfer and how much is the head fitting surface features (the control of the probing
literature). The copy is saved once next to the store (``random-init/``).

Its cost is bounded: at most ``control_texts`` texts (a subset stratified by label, seed
``control_seed``) are encoded, and its rows are scored on the same folds restricted to
that subset. ``result.encoding["control"]`` says how it was computed.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

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
        rows = control_rows(ctx, ctx.options["control_texts"], seed)
        n = len(ctx.texts)
        ctx.encoding["control"] = (
            f"random weights (seed {seed}): every swept layer and pooling, "
            + (f"all {n:,} texts" if rows is None else
               f"{len(rows):,} of {n:,} texts (stratified subset, control_texts="
               f"{ctx.options['control_texts']}), the same folds restricted to them")
            + f", screening head {ctx.screen_head[0]}")
        ctx.log(f"encoding the random-weights control: {ctx.encoding['control']}")
        encoded = ctx.encode(rmodel, ctx.poolings, rparams, timing="random_encode",
                             rows=rows)
        ctx.encoding["random_encoded"] = encoded.encoded
        sets = feature_sets("random", encoded, ctx.layers, [], {"model": rmodel, **rparams})
        ctx.log(f"scoring the random-weights control ({len(sets)} feature sets)")
        head_name, head = ctx.screen_head
        out = [bert_candidate(fs, head_name, head, "control", ctx.pipeline_params,
                              recommendable=False) for fs in sets]
        for cand in out:
            cand.rows = rows
        return out


def control_rows(ctx: ProbeContext, limit: int | None, seed: int) -> np.ndarray | None:
    """At most ``limit`` rows, stratified by label for classification (None: all rows)."""
    n = len(ctx.texts)
    if limit is None or n <= limit:
        return None
    stratify = ctx.y if ctx.task == "classification" else None
    rows, _ = train_test_split(np.arange(n), train_size=limit, random_state=seed,
                               stratify=stratify)
    return np.sort(rows)


FAMILY = RandomControl()
