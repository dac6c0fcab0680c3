"""Running the encoder: tokenise once, sort by token length, batch by a token budget.

:func:`encode` streams per-batch results to a callback, so the caller can write each batch
to the feature store as soon as it is done (a run killed half-way keeps its work).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .pooling import pool_stats

__all__ = ["encode", "Tokenized", "tokenize", "make_batches"]

BatchCallback = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", np.ndarray], None]


@dataclass
class Tokenized:
    """Token ids of each text (already truncated) and which texts were truncated."""

    input_ids: list[list[int]]
    truncated: np.ndarray


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> Tokenized:
    """Tokenise all texts in one batched call of the fast tokenizer.

    Texts longer than ``max_length`` tokens keep their first ``max_length`` tokens
    (special tokens included); a boolean mask tells which texts were cut.
    """
    if not texts:
        return Tokenized([], np.zeros(0, dtype=bool))
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        return_overflowing_tokens=True,
        stride=0,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    ids = enc["input_ids"]
    mapping = enc.get("overflow_to_sample_mapping")
    if mapping is None:  # pragma: no cover - every fast tokenizer returns it
        return Tokenized(list(ids), np.zeros(len(texts), dtype=bool))
    first: list[list[int] | None] = [None] * len(texts)
    chunks = np.bincount(np.asarray(mapping, dtype=np.int64), minlength=len(texts))
    for chunk_ids, sample in zip(ids, mapping):
        if first[sample] is None:
            first[sample] = chunk_ids
    return Tokenized(first, chunks > 1)  # type: ignore[arg-type]


def make_batches(lengths: np.ndarray, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Group text positions into batches, longest first.

    A batch holds at most ``batch_size`` texts and at most ``max_tokens`` padded tokens
    (texts x longest text in the batch); a single text longer than the budget gets a
    batch of its own.
    """
    order = np.argsort(-lengths, kind="stable")
    batches = []
    start = 0
    n = len(order)
    while start < n:
        longest = int(lengths[order[start]])
        fit = max(1, min(batch_size, max_tokens // max(longest, 1)))
        batches.append(order[start:start + fit])
        start += fit
    return batches


def encode(
    tokenizer,
    model,
    texts: Sequence[str],
    *,
    depth: int,
    max_length: int,
    batch_size: int,
    max_tokens: int,
    device: str,
    want_pooler: bool,
    on_batch: BatchCallback,
    show_progress: bool = False,
) -> int:
    """Encode texts and hand each finished batch to ``on_batch``.

    Parameters
    ----------
    tokenizer, model
        From :func:`bertfeat.models.load`; the model has ``depth`` layers.
    texts : sequence of str
        Texts to encode (already unique).
    depth : int
        Number of layers kept in ``model``; hidden states ``0..depth`` are pooled.
    max_length : int
        Token limit (longer texts are truncated).
    batch_size : int
        Most texts per forward pass.
    max_tokens : int
        Most padded tokens per forward pass.
    device : str
        Device the model lives on.
    want_pooler : bool
        Also return the model's pooler output.
    on_batch : callable
        ``on_batch(positions, stats, pooler, truncated)`` with ``positions`` into
        ``texts``, ``stats`` of shape (b, depth + 1, 3, hidden) float32, ``pooler`` of
        shape (b, hidden) or None and ``truncated`` a boolean mask of shape (b,).
    show_progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    int
        Number of texts that were truncated.
    """
    import torch

    tok = tokenize(tokenizer, texts, max_length)
    lengths = np.fromiter((len(ids) for ids in tok.input_ids), dtype=np.int64,
                          count=len(tok.input_ids))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    progress = None
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(texts), unit="text", desc="bertfeat encode")
    try:
        for positions in make_batches(lengths, batch_size, max_tokens):
            width = int(lengths[positions].max())
            ids = np.full((len(positions), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(positions), width), dtype=np.int64)
            for row, pos in enumerate(positions):
                n = lengths[pos]
                ids[row, :n] = tok.input_ids[pos]
                mask[row, :n] = 1
            inputs = {
                "input_ids": torch.from_numpy(ids).to(device),
                "attention_mask": torch.from_numpy(mask).to(device),
            }
            if with_types:
                inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
            with torch.inference_mode():
                out = model(**inputs, output_hidden_states=True, return_dict=True)
                hidden = out.hidden_states
                if len(hidden) != depth + 1:
                    raise RuntimeError(
                        f"model returned {len(hidden)} hidden states, expected {depth + 1}"
                    )
                stats = torch.stack(
                    [pool_stats(h, inputs["attention_mask"]) for h in hidden], dim=1
                )
                pooler = None
                if want_pooler:
                    pooled = getattr(out, "pooler_output", None)
                    if pooled is None:
                        raise ValueError("this model has no pooler output")
                    pooler = pooled.float().cpu().numpy()
            on_batch(np.asarray(positions), stats.cpu().numpy(), pooler,
                     tok.truncated[positions])
            if progress is not None:
                progress.update(len(positions))
    finally:
        if progress is not None:
            progress.close()
    return int(tok.truncated.sum())
