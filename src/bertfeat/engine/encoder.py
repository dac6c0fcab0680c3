"""Running the encoder: tokenise once, sort by token length, batch by a token budget.

:func:`encode` streams per-batch results to a callback, so the caller can write each batch
to the feature store as soon as it is done (a run killed half-way keeps its work).

What keeps it fast (each measured in ``benchmarks/bench_encode.py``):

* texts are tokenised once, by a private copy of the fast tokenizer's Rust backend called
  from one thread per core (:func:`tokenize`); token ids are flattened into one array once
  and each batch is padded by array indexing, not a Python loop;
* texts sorted by token length and grouped under a padded-token budget, so a batch is
  padded only to its own longest text and small texts share large batches;
* the statistics of every returned layer are pooled without copying hidden states: a
  length-sorted batch has few padded positions, which are overwritten in place before
  each reduction instead of masking whole tensors (see :func:`bertfeat.pooling.pool_layers`);
* on a CPU, two batches run at once, each on half of the threads (:func:`cpu_streams`);
* a bf16 BERT-shaped model on the CPU runs packed (:mod:`bertfeat.models.packed`): its
  linear layers, LayerNorms and GELU see the real tokens only, attention of short batches
  runs as two GEMMs around a float32 softmax.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass

import numpy as np

from ..models import packed as _packed
from ..pooling import pool_layers
from .batching import (
    batch_padder,
    encode_texts_fast,
    flatten_ids,
    make_batches,
    pad_batch,
)

__all__ = ["encode", "Tokenized", "tokenize", "tokenize_chunks", "make_batches",
           "pool_layers", "all_cores", "batch_padder", "flatten_ids", "pad_batch", "in_parallel",
           "truncating_backend", "encode_texts_fast", "MIN_BATCHES_PER_STREAM"]

BatchCallback = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", np.ndarray], None]


@dataclass
class Tokenized:
    """Token ids of each text (already truncated) and which texts were truncated."""

    input_ids: list[list[int]]
    truncated: np.ndarray


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> Tokenized:
    """Tokenise all texts with the fast tokenizer, on every core.

    Texts longer than ``max_length`` tokens keep their first ``max_length`` tokens
    (special tokens included); a boolean mask tells which texts were cut. The result is
    the same as ``tokenizer(texts, truncation=True, max_length=max_length)``.
    """
    if not texts:
        return Tokenized([], np.zeros(0, dtype=bool))
    encodings = encode_texts_fast(truncating_backend(tokenizer, max_length, stride=0), texts)
    # the fast tokenizer keeps the cut-off tokens on each encoding; asking for them only
    # as a count avoids turning every overflow chunk into Python lists
    truncated = np.fromiter((len(e.overflowing) > 0 for e in encodings), dtype=bool,
                            count=len(texts))
    return Tokenized([e.ids for e in encodings], truncated)


#: private copies of fast tokenizers' Rust backends, set up to truncate (see truncating_backend)
_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BACKENDS_LOCK = threading.Lock()


def truncating_backend(tokenizer, max_length: int, stride: int):
    """A private copy of the tokenizer's Rust backend that truncates like the tokenizer.

    The copy is configured once (truncation to ``max_length`` with ``stride``, no padding)
    and only read afterwards, so several threads can encode with it at once; the loaded
    tokenizer itself is never reconfigured (bertfeat loads fast tokenizers only:
    :func:`bertfeat.models.load` refuses others).
    """
    backend = tokenizer.backend_tokenizer
    side = getattr(tokenizer, "truncation_side", "right")
    split = bool(getattr(tokenizer, "split_special_tokens", False))
    key = (max_length, stride, side, split)
    with _BACKENDS_LOCK:
        copies = _BACKENDS.setdefault(tokenizer, {})
        copy = copies.get(key)
        if copy is None:
            from tokenizers import Tokenizer

            copy = Tokenizer.from_str(backend.to_str())
            copy.no_padding()
            copy.enable_truncation(max_length, stride=stride, strategy="longest_first",
                                   direction=side)
            copy.encode_special_tokens = split
            copies[key] = copy
    return copy


def tokenize_chunks(tokenizer, texts: Sequence[str], max_length: int, stride: int,
                    max_chunks: int) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
    """Split each text into windows of at most ``max_length`` tokens.

    Consecutive windows of a text overlap by ``stride`` tokens, and each window carries the
    model's special tokens. A text with more than ``max_chunks`` windows keeps its first
    ``ceil(max_chunks / 2)`` and last ``floor(max_chunks / 2)`` windows (head + tail).

    Returns
    -------
    chunks : list of list of int
        Token ids of every kept window, texts in order.
    owner : ndarray of int64
        Index of the text each window belongs to.
    capped : ndarray of bool
        Texts that lost windows to ``max_chunks``.
    """
    if not texts:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    head = (max_chunks + 1) // 2
    tail = max_chunks - head
    chunks, owners = [], []
    counts = np.zeros(len(texts), dtype=np.int64)
    backend = truncating_backend(tokenizer, max_length, stride)
    for doc, e in enumerate(encode_texts_fast(backend, texts)):
        windows = [e, *e.overflowing]
        counts[doc] = len(windows)
        if len(windows) > max_chunks:
            windows = windows[:head] + windows[len(windows) - tail:]
        chunks.extend(w.ids for w in windows)
        owners.extend([doc] * len(windows))
    return chunks, np.asarray(owners, dtype=np.int64), counts > max_chunks


def _forward_batches(model, tokenizer, input_ids: list[list[int]], *, depth: int,
                     batch_size: int, max_tokens: int, device: str, want_pooler: bool):
    """Run length-sorted, token-budgeted batches; yield (positions, stats, pooler, lengths).

    Batches come out in order. On a CPU with several threads, :func:`cpu_streams` batches
    run at once, each on its share of the threads (see :func:`in_parallel`).
    """
    import torch

    flat, offsets, lengths = flatten_ids(input_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    # bf16 BERT-shaped models on the CPU: every per-token step on the real tokens only
    packed = None if want_pooler else _packed.packed_encoder(model)

    def run(positions: np.ndarray):
        ids, mask = pad_batch(flat, offsets, lengths, positions, pad_id)
        inputs = {
            "input_ids": torch.from_numpy(ids).to(device),
            "attention_mask": torch.from_numpy(mask).to(device),
        }
        if with_types:
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        with torch.inference_mode():
            if packed is not None and int(lengths[positions].min()) >= 1:
                out = None
                hidden = packed.hidden_states(inputs["input_ids"], inputs["attention_mask"],
                                              lengths[positions],
                                              token_type_ids=inputs.get("token_type_ids"))
            else:
                out = model(**inputs, output_hidden_states=True, return_dict=True)
                hidden = out.hidden_states
            if len(hidden) != depth + 1:
                raise RuntimeError(
                    f"model returned {len(hidden)} hidden states, expected {depth + 1}"
                )
            stats = pool_layers(hidden, inputs["attention_mask"], lengths[positions])
            pooler = None
            if want_pooler:
                pooled = getattr(out, "pooler_output", None)
                if pooled is None:
                    raise ValueError("this model has no pooler output")
                pooler = pooled.float().cpu().numpy()
        return np.asarray(positions), stats.cpu().numpy(), pooler, lengths[positions]

    batches = make_batches(lengths, batch_size, max_tokens)
    streams, threads = cpu_streams() if device == "cpu" else (1, 0)
    if streams < 2 or len(batches) < MIN_BATCHES_PER_STREAM * streams:
        yield from map(run, batches)
    else:
        yield from in_parallel(run, batches, streams, threads)


class NonFiniteError(ValueError):
    """The model produced NaN or infinite values: the batch is neither returned nor stored.

    Raised by the one cached pass (:mod:`bertfeat.cached_pass`) for every encoder-backed
    estimator, and by fine-tuning when a loss or an output is not finite.
    """


#: below this many batches per stream, the last round (some streams idle while others
#: finish) costs more than parallel batches gain, and one batch at a time is faster
MIN_BATCHES_PER_STREAM = 4


def cpu_streams() -> tuple[int, int]:
    """How many batches run at once on the CPU, and with how many torch threads each.

    Two batches, each on half of ``torch.get_num_threads()``, when there are at least two
    threads; one otherwise. Measured on 2 cores with bf16 weights (all-MiniLM-L6-v2 and a
    BERT-base shape): two one-thread batches encode about a tenth faster than one
    two-thread batch, because the small operations of a BERT layer (attention per head,
    LayerNorm, GELU) parallelise worse inside one batch than across two; fp32 and int8
    run at parity. Used only for inputs of at least ``4 * streams`` batches: with fewer,
    the last batch would leave a stream idle for too large a share of the run.
    """
    import torch

    threads = torch.get_num_threads()
    return (2, threads // 2) if threads >= 2 else (1, threads)


@contextmanager
def all_cores():
    """Let torch use every core of this process while the block runs (then put it back).

    For the process holding a store's encode lock: the other workers of a search wait
    for it in the kernel, so the cores they were given (joblib's loky backend gives each
    of ``n_jobs`` workers ``cores // n_jobs`` threads, so workers never oversubscribe)
    are free for the one that encodes.
    """
    import joblib
    import torch

    before = torch.get_num_threads()
    cores = joblib.cpu_count()
    if cores > before:
        torch.set_num_threads(cores)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def in_parallel(run: Callable, items: Sequence, streams: int, threads: int):
    """Yield ``run(item)`` for every item, in order, computing ``streams`` items at once.

    Each worker thread sets its own torch thread count (a per-thread setting: the caller's
    is untouched). At most ``2 * streams`` results are pending, so a slow consumer bounds
    memory. An exception in ``run`` is raised here; when the consumer stops early (an
    error, an interrupt, ``close()``), queued items are cancelled and running ones finish.
    """
    import torch

    caller_threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix="bertfeat-encode",
                              initializer=torch.set_num_threads, initargs=(threads,))
    pending: deque = deque()
    todo = iter(items)
    try:
        for item in itertools.islice(todo, 2 * streams):
            pending.append(pool.submit(run, item))
        while pending:
            result = pending.popleft().result()
            for item in itertools.islice(todo, 1):
                pending.append(pool.submit(run, item))
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        # OpenMP keeps the thread count per thread; a torch built on another thread pool
        # may share it, so the caller's is put back either way
        if torch.get_num_threads() != caller_threads:
            torch.set_num_threads(caller_threads)


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
    show_progress: bool | str = False,
    long_text: str = "truncate",
    chunk_stride: int = 0,
    max_chunks: int = 8,
    on_first_window: BatchCallback | None = None,
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
        Token limit per forward sequence.
    batch_size : int
        Most sequences per forward pass.
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
    show_progress : bool or "auto"
        True: a tqdm progress bar; ``"auto"``: a bar where a person watches (a terminal,
        a notebook), else a log line every 30 s (:class:`bertfeat.engine.progress.Progress`);
        False: nothing.
    long_text : {"truncate", "chunk"}
        ``truncate``: a text longer than ``max_length`` keeps its first tokens.
        ``chunk``: it is split into windows (see :func:`tokenize_chunks`), every window is
        encoded (windows of all texts share batches), and the window statistics are pooled
        per text: ``cls`` and ``mean`` as token-weighted means over windows, ``max`` as
        the maximum; the pooler output as a token-weighted mean. A text with one window
        gets exactly its window's statistics.
    chunk_stride : int
        Tokens shared by consecutive windows (``chunk`` only).
    max_chunks : int
        Most windows per text (``chunk`` only; head + tail are kept).
    on_first_window : callable, optional
        ``chunk`` only: also called, like ``on_batch``, with the statistics of each
        text's **first window** as soon as it is encoded. The first window holds the
        first ``max_length`` tokens, the same token ids as ``truncate`` gives the text,
        so these are the text's truncated statistics (``truncated``: the text has more
        than one window, i.e. is longer than ``max_length``), at no extra encoding.

    Returns
    -------
    int
        Number of texts that were truncated (``truncate``) or lost windows to
        ``max_chunks`` (``chunk``).
    """
    progress = None
    if show_progress:
        from .progress import Progress

        progress = Progress(len(texts), "bertfeat encode", "text",
                            mode="bar" if show_progress is True else "auto")
    run = dict(depth=depth, batch_size=batch_size, max_tokens=max_tokens, device=device,
               want_pooler=want_pooler)
    try:
        if long_text == "chunk":
            return _encode_chunked(tokenizer, model, texts, max_length=max_length,
                                   chunk_stride=chunk_stride, max_chunks=max_chunks,
                                   on_batch=on_batch, progress=progress, run=run,
                                   on_first_window=on_first_window)
        tok = tokenize(tokenizer, texts, max_length)
        # closing(): an error in on_batch stops the batches still running at once
        with closing(_forward_batches(model, tokenizer, tok.input_ids, **run)) as batches:
            for positions, stats, pooler, _ in batches:
                on_batch(positions, stats, pooler, tok.truncated[positions])
                if progress is not None:
                    progress.update(len(positions))
        return int(tok.truncated.sum())
    finally:
        if progress is not None:
            progress.close()


def _encode_chunked(tokenizer, model, texts, *, max_length, chunk_stride, max_chunks,
                    on_batch, progress, run, on_first_window=None) -> int:
    chunks, owner, capped = tokenize_chunks(tokenizer, texts, max_length, chunk_stride,
                                            max_chunks)
    remaining = np.bincount(owner, minlength=len(texts))
    # a text longer than max_length has several windows (or lost them to max_chunks)
    longer = (remaining > 1) | capped
    # windows come text by text: a text's first window is where its owner changes
    first = np.ones(len(owner), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    # running sums of the texts with several windows: weight, weighted cls/mean, max
    partial: dict[int, list] = {}
    with closing(_forward_batches(model, tokenizer, chunks, **run)) as batches:
        for positions, stats, pooler, lengths in batches:
            if on_first_window is not None:
                rows = np.flatnonzero(first[positions])
                if len(rows):
                    docs = owner[positions[rows]]
                    on_first_window(docs, stats[rows],
                                    None if pooler is None else pooler[rows], longer[docs])
            _pool_windows(positions, stats, pooler, lengths, owner, remaining, partial,
                          capped, on_batch, progress)
    return int(capped.sum())


def _pool_windows(positions, stats, pooler, lengths, owner, remaining, partial, capped,
                  on_batch, progress) -> None:
    """Fold a batch of windows into their texts; hand finished texts to ``on_batch``."""
    done, done_stats, done_pooler = [], [], []
    for row, chunk in enumerate(positions):
        doc = int(owner[chunk])
        remaining[doc] -= 1
        if doc not in partial and remaining[doc] == 0:  # a single window: as is
            done.append(doc)
            done_stats.append(stats[row])
            done_pooler.append(None if pooler is None else pooler[row])
            continue
        weight = np.float32(lengths[row])
        acc = partial.get(doc)
        if acc is None:
            acc = [np.float32(0), np.zeros_like(stats[row]), None]
            acc[1][:, 2] = -np.inf
            partial[doc] = acc
        acc[0] += weight
        acc[1][:, :2] += weight * stats[row][:, :2]
        acc[1][:, 2] = np.maximum(acc[1][:, 2], stats[row][:, 2])
        if pooler is not None:
            acc[2] = weight * pooler[row] if acc[2] is None else acc[2] + weight * pooler[row]
        if remaining[doc] == 0:
            total, summed, pooled = partial.pop(doc)
            summed[:, :2] /= total
            done.append(doc)
            done_stats.append(summed)
            done_pooler.append(None if pooled is None else pooled / total)
    if done:
        index = np.asarray(done, dtype=np.int64)
        pooled = None if pooler is None else np.stack(done_pooler).astype(np.float32)
        on_batch(index, np.stack(done_stats).astype(np.float32, copy=False), pooled,
                 capped[index])
        if progress is not None:
            progress.update(len(done))
