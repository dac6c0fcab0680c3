"""Batching without torch: tokenise on every core, sort by length, pad by indexing.

Shared by the torch encoder (:mod:`bertfeat.encoder`), the fine-tuning loop and the
torch-free runtime of an exported pipeline (:mod:`bertfeat.runtime`), so this module
imports numpy and the standard library only (``tokenizers`` objects are passed in).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["DEFAULT_BATCH_TOKENS", "DEFAULT_BATCH_TOKENS_GPU", "encode_texts_fast",
           "make_batches", "flatten_ids", "pad_batch", "batch_padder", "default_batch_tokens",
           "usable_cores"]

#: padded tokens per forward pass when ``max_batch_tokens=None``, on a CPU: measured in
#: benchmarks/bench_encode.py, 4096 beats 8192 and more (activations fall out of the caches)
#: and 2048 or less (per-call overhead)
DEFAULT_BATCH_TOKENS = 4096
#: the same on a GPU, where bigger batches keep the device busy (not measured on a GPU yet)
DEFAULT_BATCH_TOKENS_GPU = 8192

#: texts below which tokenising in one thread is cheaper than starting more
_TEXTS_PER_THREAD = 256


def default_batch_tokens(device: str) -> int:
    """The token budget of a forward pass on ``device`` when none is given.

    Parameters
    ----------
    device : str
        Concrete device (``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...).

    Returns
    -------
    int
        :data:`DEFAULT_BATCH_TOKENS` on the CPU, :data:`DEFAULT_BATCH_TOKENS_GPU` elsewhere.
    """
    return DEFAULT_BATCH_TOKENS if device == "cpu" else DEFAULT_BATCH_TOKENS_GPU


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup CPU quota.

    What ``joblib.cpu_count()`` reports, without importing joblib (the runtime of an
    exported pipeline runs without it).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" (no quota) or "200000 100000" (2 cores)
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _tokenizer_threads() -> int:
    return max(1, min(usable_cores(), 8))


def encode_texts_fast(backend, texts: Sequence[str]) -> list:
    """``backend.encode_batch`` split over threads (the Rust call releases the GIL).

    The tokenizers library parallelises a batch itself unless ``TOKENIZERS_PARALLELISM``
    is off (set by users and by the library after a fork); threads make the work parallel
    either way, and results are the same as one call.
    """
    texts = list(texts)
    n = len(texts)
    # encode_batch_fast (tokenizers >= 0.21) skips the character offsets, which bertfeat
    # never reads: about a sixth less work per text
    encode_batch = getattr(backend, "encode_batch_fast", backend.encode_batch)
    workers = min(_tokenizer_threads(), n // _TEXTS_PER_THREAD)
    if workers < 2:
        return encode_batch(texts)
    cuts = [n * i // workers for i in range(workers + 1)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(encode_batch, [texts[a:b] for a, b in zip(cuts, cuts[1:])]))
    return [e for part in parts for e in part]


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


def flatten_ids(input_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All token ids in one int64 array, with each text's offset and length."""
    lengths = np.fromiter(map(len, input_ids), dtype=np.int64, count=len(input_ids))
    offsets = np.zeros(len(input_ids), dtype=np.int64)
    if len(input_ids) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    flat = np.fromiter((i for ids in input_ids for i in ids), dtype=np.int64,
                       count=int(lengths.sum()))
    return flat, offsets, lengths


def pad_batch(flat: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
               positions: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded to the batch's longest text, and the attention mask."""
    lens = lengths[positions]
    width = int(lens.max())
    cols = np.arange(width, dtype=np.int64)
    mask = cols[None, :] < lens[:, None]
    if len(flat):
        index = np.minimum(offsets[positions][:, None] + cols[None, :], len(flat) - 1)
        ids = np.where(mask, flat[index], pad_id)
    else:  # only empty token lists
        ids = np.full(mask.shape, pad_id, dtype=np.int64)
    return ids, mask.astype(np.int64)


def batch_padder(input_ids: list[list[int]], pad_id: int,
                 ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Flatten token ids once; return a function that pads any group of them.

    Parameters
    ----------
    input_ids : list of list of int
        Token ids of every text.
    pad_id : int
        Id written into padded positions.

    Returns
    -------
    callable
        ``pad(positions) -> (ids, mask)``: int64 arrays of shape (len(positions), longest
        text among them), the attention mask 1 on real tokens.
    """
    flat, offsets, lengths = flatten_ids(input_ids)
    return lambda positions: pad_batch(flat, offsets, lengths, np.asarray(positions), pad_id)
