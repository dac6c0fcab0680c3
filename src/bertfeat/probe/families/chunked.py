"""Family ``chunked``: the best feature sets again from a chunked encoder pass.

When some texts exceed ``max_length``, the ``chunk_top`` best screened feature sets are
scored once more with every text encoded as token windows pooled per document
(``long_text="chunk"``), next to their truncated versions. ``ctx.encoding`` records how
many texts were truncated and why chunking did or did not run.

Every window is encoded once: the chunked pass runs *before* the main one
(:meth:`Chunked.before_encode`), and since a text's first window holds the same tokens as
its truncated encoding, the featurizer stores it as that; the main (truncated) pass then
reads every text from the store.
"""

from __future__ import annotations

import numpy as np

from ...store import text_digest
from ..candidates import (
    Candidate,
    FeatureSet,
    feature_sets,
)
from ..context import ProbeContext
from . import Family

__all__ = ["Chunked", "FAMILY", "truncated_count", "longer_count"]


def truncated_count(ctx: ProbeContext) -> int:
    """Distinct texts that the (truncating) main encoder pass had to cut to ``max_length``."""
    base = ctx.bert.featurizer
    unique = list(dict.fromkeys(ctx.texts))
    hit = ctx.store.read(base.fingerprint_, [text_digest(t) for t in unique], [0],
                         base.hidden_size_)
    return int(np.asarray(hit.truncated, dtype=bool).sum())


def longer_count(ctx: ProbeContext) -> tuple[int, int]:
    """Distinct texts longer than ``max_length`` tokens (tokenised, nothing encoded), and
    ``max_length``: a text is longer when its windows hold more than one window's tokens."""
    lengths = ctx.token_lengths("chunk")
    return int((lengths > ctx.max_length).sum()), ctx.max_length


class Chunked(Family):
    name = "chunked"
    timing = "chunk"

    def before_encode(self, ctx: ProbeContext) -> None:
        """When chunked candidates will be scored, encode every text in windows now.

        Each text's first window is stored as its truncated encoding, so the main pass
        that follows is a store read and no window is encoded twice.
        """
        if (ctx.params.get("long_text", "truncate") != "truncate" or not ctx.options.chunk
                or not ctx.options.chunk_top):
            return
        longer, limit = longer_count(ctx)
        if not longer:
            return
        ctx.log(f"{longer:,} distinct texts are longer than max_length={limit} tokens: "
                "encoding every text in windows (long_text='chunk') first; a text's first "
                "window is its truncated encoding, so the main pass reads it from the store")
        t0 = ctx.encode_seconds
        encoded = ctx.encode(ctx.model, ctx.poolings[:1], {**ctx.params, "long_text": "chunk"},
                             timing="encode")
        ctx.encoding["chunk_encoded"] = encoded.encoded
        ctx.encoding["chunk_seconds"] = ctx.encode_seconds - t0

    def candidates(self, ctx: ProbeContext) -> list[Candidate]:
        return [ctx.screen_candidate(fs, "chunk") for fs in self.feature_sets(ctx)]

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
        if not ctx.options.chunk:
            encoding["chunk"] = f"{head}; chunked pooling not tried (chunk=False)"
            return []
        best = ctx.ranked("screen")[:ctx.options.chunk_top]
        if not best:
            encoding["chunk"] = f"{head}; no feature set to try in chunks"
            return []
        cparams = {**ctx.params, "long_text": "chunk"}
        poolings = list(dict.fromkeys(fs.pooling for fs in best))
        ctx.log(f"{head}: chunked (long_text='chunk') versions of "
                + ", ".join(f"{fs.layer} {fs.pooling}" for fs in best))
        t0 = ctx.encode_seconds
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
        encoding["chunk_encoded"] = (encoding.get("chunk_encoded") or 0) + encoded.encoded
        encoding["chunk_seconds"] = (encoding.get("chunk_seconds") or 0.0) + (
            ctx.encode_seconds - t0)
        encoding["chunk"] = (f"{head}: the {len(out)} best feature set(s) also scored with "
                             f"long_text='chunk' ({encoding['chunk_encoded']:,} texts encoded "
                             f"in windows, {encoding['chunk_seconds']:.1f} s; their first "
                             "windows are the truncated encoding)")
        return out


FAMILY = Chunked()
