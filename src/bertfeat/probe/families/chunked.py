"""Family ``chunked``: the best feature sets again from a chunked encoder pass.

When some texts exceed ``max_length``, the ``chunk_top`` best screened feature sets are
scored once more with every text encoded as token windows pooled per document
(``long_text="chunk"``, one more encoder pass), next to their truncated versions.
``ctx.encoding`` records how many texts were truncated and why chunking did or did not run.
"""

from __future__ import annotations

import numpy as np

from ...store import text_digest
from ..candidates import Candidate, FeatureSet, bert_candidate, feature_sets
from ..context import ProbeContext
from . import Family

__all__ = ["Chunked", "FAMILY", "truncated_count"]


def truncated_count(ctx: ProbeContext) -> int:
    """Distinct texts that the (truncating) main encoder pass had to cut to ``max_length``."""
    base = ctx.bert.featurizer
    unique = list(dict.fromkeys(ctx.texts))
    hit = ctx.store.read(base.fingerprint_, [text_digest(t) for t in unique], [0],
                         base.hidden_size_)
    return int(np.asarray(hit.truncated, dtype=bool).sum())


class Chunked(Family):
    name = "chunked"
    timing = "chunk"

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        best = self.feature_sets(ctx)
        head_name, head = ctx.screen_head
        return [bert_candidate(fs, head_name, head, "chunk", ctx.pipeline_params)
                for fs in best]

    def feature_sets(self, ctx: ProbeContext) -> list[FeatureSet]:
        """The ``chunk_top`` best screened feature sets from a chunked pass, when it matters."""
        encoding = ctx.encoding
        truncated = truncated_count(ctx)
        encoding["truncated"] = truncated
        limit = ctx.bert.featurizer.max_length_
        mode = ctx.params.get("long_text", "truncate")
        if mode != "truncate":
            encoding["chunk"] = (f"every text encoded with long_text={mode!r}; no truncated "
                                 "version to compare")
            return []
        if truncated == 0:
            encoding["chunk"] = (f"no text is longer than max_length={limit} tokens; chunked "
                                 "pooling not tried (it would equal truncation)")
            return []
        head = f"{truncated:,} distinct texts are longer than max_length={limit} tokens"
        if not ctx.options["chunk"]:
            encoding["chunk"] = f"{head}; chunked pooling not tried (chunk=False)"
            return []
        best = ctx.ranked("screen")[:ctx.options["chunk_top"]]
        if not best:
            encoding["chunk"] = f"{head}; no feature set to try in chunks"
            return []
        cparams = {**ctx.params, "long_text": "chunk"}
        poolings = list(dict.fromkeys(fs.pooling for fs in best))
        ctx.log(f"{head}: encoding every text in chunks (long_text='chunk') for "
                + ", ".join(f"{fs.layer} {fs.pooling}" for fs in best))
        encoded = ctx.encode(ctx.model, poolings, cparams, timing="chunk_encode")
        singles = sorted({fs.layer_index for fs in best if fs.layer_index is not None})
        combos = list(dict.fromkeys(
            (tuple(fs.featurizer_params["layers"]), fs.featurizer_params["layer_combine"])
            for fs in best if fs.layer_index is None))
        wanted = {(fs.layer, fs.pooling) for fs in best}
        out = []
        for fs in feature_sets("bert", encoded, singles, [(list(c), m) for c, m in combos],
                               {"model": ctx.model, **cparams}):
            if (fs.layer, fs.pooling) in wanted:
                fs.layer = f"{fs.layer} chunked"
                out.append(fs)
        encoding["chunk_encoded"] = encoded.encoded
        encoding["chunk_seconds"] = ctx.timings["chunk_encode"]
        encoding["chunk"] = (f"{head}: the {len(out)} best feature set(s) also scored with "
                             f"long_text='chunk' ({encoded.encoded:,} texts encoded in "
                             f"chunks, {encoding['chunk_seconds']:.1f} s)")
        return out


FAMILY = Chunked()
