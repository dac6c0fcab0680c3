"""Family ``control``: the swept layers of a randomly initialised copy of the model.

The same architecture and tokenizer with random weights (seed ``control_seed``), through
the same layers, poolings, screening head and folds: how much of a score is knowledge
transfer and how much is the head fitting surface features (the control of the probing
literature). The copy is saved once next to the store (``random-init/``).

Its cost is bounded: it encodes a subset of the texts (stratified by label, seed
``control_seed``; only the first ``max_length`` tokens of each, as the main pass), and its
rows are scored on the same folds restricted to that subset. ``control_texts="auto"`` sizes
the subset so that the control costs at most :data:`CONTROL_TOKEN_SHARE` of the main
pass's encoder tokens, keeping at least :data:`CONTROL_MIN_TEXTS` texts (and
:data:`CONTROL_PER_CLASS` per class). So that its rows stay comparable, the best screened
feature set of the real model is scored on the same subset and folds too (the
``control`` stage's ``bert`` row, never recommended): the control's gap is measured
between rows on the same texts. ``result.encoding["control"]`` says how it was computed.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from ... import models
from ..candidates import (
    Candidate,
    FeatureSet,
    feature_sets,
)
from ..context import ProbeContext
from . import Family

__all__ = ["RandomControl", "FAMILY", "control_rows", "auto_control_size",
           "CONTROL_TOKEN_SHARE", "CONTROL_MIN_TEXTS", "CONTROL_PER_CLASS", "SUBSET_LABEL"]

#: most encoder tokens the control takes with control_texts="auto", as a share of the main
#: pass's (benchmarks/bench_probe.py --cost measures what it costs and what it keeps)
CONTROL_TOKEN_SHARE = 0.10
#: texts the control keeps at least with control_texts="auto" (all, when there are fewer)
CONTROL_MIN_TEXTS = 150
#: texts of each class the control keeps at least with control_texts="auto"
CONTROL_PER_CLASS = 5
#: how the real model's row on the control's subset is labelled (after its layer)
SUBSET_LABEL = "on the control's texts"


class RandomControl(Family):
    name = "control"
    timing = "baselines"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        if not ctx.options.random_control:
            return []
        seed = ctx.options.control_seed
        rmodel = models.random_init_model(
            ctx.model, seed=seed, directory=ctx.store.random_init_directory,
            revision=ctx.params.get("revision"),
            trust_remote_code=ctx.params.get("trust_remote_code", False))
        rparams = {k: v for k, v in ctx.params.items() if k != "revision"}
        # the real pass's precision ("auto" was measured for the real model): the control
        # is encoded alike, and its random-weights copy is not measured again
        rparams["precision"] = ctx.bert.featurizer.precision_
        limit = ctx.options.control_texts
        rows = control_rows(ctx, limit, seed)
        n = len(ctx.texts)
        if rows is None:
            texts = f"all {n:,} texts"
        else:
            why = (f"control_texts={limit}" if limit != "auto" else
                   f"control_texts='auto': at most {CONTROL_TOKEN_SHARE:.0%} of the main "
                   "pass's encoder tokens")
            texts = (f"{len(rows):,} of {n:,} texts (stratified subset, {why}), the same "
                     "folds restricted to them, next to the real model's best feature set "
                     "on the same texts")
        ctx.encoding["control"] = (
            f"random weights (seed {seed}): every swept layer and pooling, {texts}, "
            f"screened with {ctx.screen_name}")
        ctx.log(f"encoding the random-weights control: {ctx.encoding['control']}")
        encoded = ctx.encode(rmodel, ctx.poolings, rparams, timing="random_encode",
                             rows=rows)
        ctx.encoding["random_encoded"] = encoded.encoded
        sets = feature_sets("random", encoded, ctx.layers, [], {"model": rmodel, **rparams})
        ctx.log(f"scoring the random-weights control ({len(sets)} feature sets)")
        out = [ctx.screen_candidate(fs, "control", recommendable=False) for fs in sets]
        best = ctx.ranked("screen")[:1]
        if rows is not None and best:  # the real model on the same texts and folds
            fs = best[0]
            same = FeatureSet(fs.family, f"{fs.layer} {SUBSET_LABEL}", fs.pooling, fs.X[rows],
                              fs.featurizer_params, fs.layer_index)
            out.append(ctx.screen_candidate(same, "control", recommendable=False))
        for cand in out:
            cand.rows = rows
        return out


def control_rows(ctx: ProbeContext, limit: int | str | None, seed: int,
                 ) -> np.ndarray | None:
    """At most ``limit`` rows (``"auto"``: :func:`auto_control_size`), stratified by label
    for classification (None: all rows)."""
    n = len(ctx.texts)
    if limit == "auto":
        limit = auto_control_size(ctx)
    if limit is None or n <= limit:
        return None
    stratify = ctx.y if ctx.task == "classification" else None
    rows, _ = train_test_split(np.arange(n), train_size=limit, random_state=seed,
                               stratify=stratify)
    return np.sort(rows)


FAMILY = RandomControl()


def auto_control_size(ctx: ProbeContext) -> int:
    """Texts the control encodes with ``control_texts="auto"``.

    As many as fit in :data:`CONTROL_TOKEN_SHARE` of the main pass's encoder tokens (the
    windows of the chunked pass when it ran, else the truncated texts) at the control's
    mean tokens per text (it encodes the first ``max_length`` tokens), but at least
    :data:`CONTROL_MIN_TEXTS` and :data:`CONTROL_PER_CLASS` per class.
    """
    truncated = ctx.token_lengths("truncate")
    chunked = ctx.encoding.get("chunk_encoded") is not None
    main = ctx.token_lengths("chunk").sum() if chunked else truncated.sum()
    fit = int(CONTROL_TOKEN_SHARE * main / max(float(truncated.mean()), 1.0))
    floor = CONTROL_MIN_TEXTS
    if ctx.task == "classification":
        floor = max(floor, CONTROL_PER_CLASS * len(np.unique(ctx.y)))
    return max(fit, floor)
