"""Running the encoder on pre-tokenised sentences: the vector of every sub-word piece.

The word-level counterpart of :mod:`bertfeat.encoder`, for
:class:`~bertfeat.BertWordFeaturizer`:

1. :func:`word_pieces` splits every word of a sentence into pieces with the fast
   tokenizer (its ``word_ids`` say which piece belongs to which word). A word that yields
   no piece at all (zero-width or control characters only, a word the normaliser deletes,
   the empty string) gets one ``unk_token`` piece in its place, so it has a vector -- the
   contextual vector of ``[UNK]`` at its position -- and never shifts the other words.
2. :func:`plan_windows` cuts a sentence longer than ``max_length`` pieces into overlapping
   windows of whole words and assigns each word to the window where it has most context
   (the most pieces on its shorter side). No word is dropped; a single word with more
   pieces than a window holds keeps its first pieces.
3. :func:`encode_words` runs the windows of all sentences in length-sorted, token-budgeted
   batches (the machinery of :mod:`bertfeat.encoder`) and hands each finished sentence's
   piece vectors -- every hidden state ``0..depth``, float32 -- to a callback (the cached
  pass checks them and rounds them to float16 where float16 holds them).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass

import numpy as np

from . import encoder

__all__ = ["SentencePieces", "word_pieces", "plan_windows", "encode_words", "special_tokens"]

#: a word that yields no piece is encoded as this many ``unk_token`` pieces
_UNK_PIECES = 1

WordCallback = Callable[[list[int], list["SentencePieces"], list[np.ndarray]], None]


@dataclass
class SentencePieces:
    """The pieces of one sentence, word by word.

    Attributes
    ----------
    ids : list of int
        Piece ids of all words in order, special tokens excluded.
    counts : ndarray of int64, shape (n_words,)
        Pieces of each word (at least 1; see :data:`flags`).
    flags : ndarray of uint8, shape (n_words,)
        1: the word yielded no piece and is encoded as ``unk_token``; 2: the word has more
        pieces than a window holds and keeps only its first ones.
    """

    ids: list[int]
    counts: np.ndarray
    flags: np.ndarray


#: flag bits of :attr:`SentencePieces.flags`
NO_PIECE, CUT_WORD = 1, 2

_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _prefix_space(node):
    """Set byte-level pre-tokenizers to add a prefix space and Metaspace to always prepend.

    With pre-tokenised input every word is tokenised on its own; without this, a
    byte-level BPE (RoBERTa, GPT-2 vocabularies) would tokenise every word as if it
    started the text (no ``Ġ``), unlike the same word inside running text.
    """
    if isinstance(node, dict):
        if node.get("type") == "ByteLevel" and "add_prefix_space" in node:
            node["add_prefix_space"] = True
        if node.get("type") == "Metaspace" and node.get("prepend_scheme") == "first":
            node["prepend_scheme"] = "always"
        for value in node.values():
            _prefix_space(value)
    elif isinstance(node, list):
        for value in node:
            _prefix_space(value)
    return node


def _backend(tokenizer):
    """A private copy of the tokenizer's Rust backend for pre-tokenised words.

    No truncation, no padding, the prefix-space fix of :func:`_prefix_space`, and the
    loaded tokenizer's handling of special-token text (bertfeat loads tokenizers so that
    a word ``"[SEP]"`` is text, not a control token).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError("BertWordFeaturizer needs a fast tokenizer (with word ids)")
    with _LOCK:
        copy = _BACKENDS.get(tokenizer)
        if copy is None:
            from tokenizers import Tokenizer

            spec = json.loads(backend.to_str())
            spec["pre_tokenizer"] = _prefix_space(spec.get("pre_tokenizer"))
            spec["truncation"] = None
            spec["padding"] = None
            copy = Tokenizer.from_str(json.dumps(spec))
            copy.encode_special_tokens = bool(getattr(backend, "encode_special_tokens", False))
            _BACKENDS[tokenizer] = copy
    return copy


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """Ids the model puts before and after one sequence (``[CLS]`` … ``[SEP]``)."""
    enc = _backend(tokenizer).encode(["a"], is_pretokenized=True, add_special_tokens=True)
    words = [i for i, w in enumerate(enc.word_ids) if w is not None]
    if not words:  # pragma: no cover - every vocabulary has a piece for "a"
        return list(enc.ids), []
    return list(enc.ids[:words[0]]), list(enc.ids[words[-1] + 1:])


def _unk_id(tokenizer) -> int:
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        unk = getattr(tokenizer, "pad_token_id", None)
    return int(unk) if unk is not None else 0


def word_pieces(tokenizer, sentences: Sequence[Sequence[str]]) -> list[SentencePieces]:
    """Split every word of every sentence into the tokenizer's pieces.

    Parameters
    ----------
    tokenizer : transformers fast tokenizer
        As loaded by :func:`bertfeat.models.load`.
    sentences : sequence of sequence of str
        Pre-tokenised sentences.

    Returns
    -------
    list of SentencePieces
        One per sentence; words without a piece are encoded as ``unk_token``.
    """
    backend = _backend(tokenizer)
    unk = _unk_id(tokenizer)
    todo = [i for i, s in enumerate(sentences) if len(s)]
    encodings = backend.encode_batch([list(sentences[i]) for i in todo], is_pretokenized=True,
                                     add_special_tokens=False) if todo else []
    out = [SentencePieces([], np.zeros(0, np.int64), np.zeros(0, np.uint8))
           for _ in sentences]
    for i, enc in zip(todo, encodings):
        n = len(sentences[i])
        word_ids = np.fromiter((-1 if w is None else w for w in enc.word_ids), dtype=np.int64,
                               count=len(enc.ids))
        ids = np.asarray(enc.ids, dtype=np.int64)
        keep = word_ids >= 0
        word_ids, ids = word_ids[keep], ids[keep]
        counts = np.bincount(word_ids, minlength=n)[:n].astype(np.int64)
        flags = np.zeros(n, dtype=np.uint8)
        empty = counts == 0
        if empty.any():  # insert one [UNK] piece where the word stands
            flags[empty] = NO_PIECE
            counts[empty] = _UNK_PIECES
            order = np.argsort(word_ids, kind="stable")
            pieces = [[] for _ in range(n)]
            for w, t in zip(word_ids[order].tolist(), ids[order].tolist()):
                pieces[w].append(t)
            flat = [t for w in range(n) for t in (pieces[w] or [unk] * _UNK_PIECES)]
        else:
            flat = ids[np.argsort(word_ids, kind="stable")].tolist()
        out[i] = SentencePieces(flat, counts, flags)
    return out


def plan_windows(counts: np.ndarray, size: int, stride: int,
                 ) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Windows of whole words holding at most ``size`` pieces, overlapping by ~``stride``.

    Parameters
    ----------
    counts : ndarray of int, shape (n_words,)
        Pieces per word.
    size : int
        Pieces a window holds (special tokens excluded).
    stride : int
        Most pieces two consecutive windows share (whole words only).

    Returns
    -------
    windows : list of (start, stop)
        Word ranges ``[start, stop)``, in order; together they cover every word.
    owner : ndarray of int64, shape (n_words,)
        The window each word takes its vector from: of the windows holding it, the one
        with most pieces on the word's shorter side (the first one on a tie). A word with
        more than ``size`` pieces gets a window of its own.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    if n == 0:
        return [], np.zeros(0, dtype=np.int64)
    if int(counts.sum()) <= size:
        return [(0, n)], np.zeros(n, dtype=np.int64)
    cum = np.concatenate(([0], np.cumsum(counts)))
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        # the most words from `start` that fit in `size` pieces (at least one)
        stop = int(np.searchsorted(cum, cum[start] + size, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        windows.append((start, stop))
        if stop >= n:
            break
        # the next window starts as early as possible while sharing <= stride pieces
        nxt = int(np.searchsorted(cum, cum[stop] - stride, side="left"))
        start = min(max(nxt, start + 1), stop)
    owner = np.zeros(n, dtype=np.int64)
    best = np.full(n, -1, dtype=np.int64)
    for k, (a, b) in enumerate(windows):
        words = np.arange(a, b)
        left = cum[words] - cum[a]
        right = cum[b] - cum[words + 1]
        context = np.minimum(left, right)
        better = context > best[a:b]
        owner[a:b][better] = k
        best[a:b][better] = context[better]
    return windows, owner


@dataclass
class _Window:
    sentence: int
    ids: list[int]
    #: positions (in the window, specials included) of the pieces this window provides
    columns: np.ndarray
    #: where those pieces go in the sentence's piece array
    targets: np.ndarray


def _windows(pieces: list[SentencePieces], max_length: int, stride: int,
             prefix: list[int], suffix: list[int]) -> list[_Window]:
    size = max(1, max_length - len(prefix) - len(suffix))
    stride = max(0, min(stride, size - 1))
    out = []
    for s, sp in enumerate(pieces):
        if len(sp.counts) == 0:
            continue
        if int(sp.counts.max()) > size:  # a word longer than a window keeps its first pieces
            starts = np.concatenate(([0], np.cumsum(sp.counts)[:-1]))
            cut = sp.counts > size
            sp.flags[cut] |= CUT_WORD
            keep = np.concatenate([np.arange(a, a + min(c, size))
                                   for a, c in zip(starts, sp.counts)])
            sp.ids = [sp.ids[i] for i in keep]
            sp.counts = np.minimum(sp.counts, size)
        cum = np.concatenate(([0], np.cumsum(sp.counts)))
        windows, owner = plan_windows(sp.counts, size, stride)
        for k, (a, b) in enumerate(windows):
            mine = np.flatnonzero(owner[a:b] == k) + a
            if len(mine) == 0:
                continue
            targets = np.concatenate([np.arange(cum[w], cum[w + 1]) for w in mine])
            out.append(_Window(s, prefix + sp.ids[cum[a]:cum[b]] + suffix,
                               targets - cum[a] + len(prefix), targets))
    return out


def encode_words(tokenizer, model, sentences: Sequence[Sequence[str]], *, depth: int,
                 max_length: int, stride: int, batch_size: int, max_tokens: int, device: str,
                 on_batch: WordCallback, show_progress: bool | str = False) -> None:
    """Encode pre-tokenised sentences and hand each finished one to ``on_batch``.

    Parameters
    ----------
    tokenizer, model
        From :func:`bertfeat.models.load`; the model has ``depth`` layers.
    sentences : sequence of sequence of str
        Sentences to encode (already unique).
    depth : int
        Hidden states ``0..depth`` are returned.
    max_length : int
        Pieces per window, special tokens included.
    stride : int
        Most pieces consecutive windows of a long sentence share.
    batch_size, max_tokens : int
        Most windows and most padded tokens per forward pass.
    device : str
        Device the model lives on.
    on_batch : callable
        ``on_batch(positions, pieces, vectors)``: ``positions`` into ``sentences``, their
        :class:`SentencePieces`, and per sentence a float32 array of shape
        (depth + 1, n_pieces, hidden) with the vector of every piece at every layer.
    show_progress : bool or "auto"
        True: a tqdm progress bar; ``"auto"``: a bar in a terminal or a notebook, else
        periodic log lines (:class:`bertfeat.engine.progress.Progress`); False: nothing.
    """
    pieces = word_pieces(tokenizer, sentences)
    prefix, suffix = special_tokens(tokenizer)
    windows = _windows(pieces, max_length, stride, prefix, suffix)
    remaining = np.zeros(len(sentences), dtype=np.int64)
    for w in windows:
        remaining[w.sentence] += 1
    results: dict[int, np.ndarray] = {}
    progress = None
    if show_progress:
        from .progress import Progress

        progress = Progress(len(sentences), "bertfeat encode words", "sentence",
                            mode="bar" if show_progress is True else "auto")
    try:
        empty = [i for i in range(len(sentences)) if remaining[i] == 0]
        if empty:  # sentences without words: nothing to run
            width = _hidden_width(model)
            on_batch(empty, [pieces[i] for i in empty],
                     [np.zeros((depth + 1, 0, width), np.float32) for _ in empty])
        batches = _forward(model, tokenizer, windows, depth=depth, batch_size=batch_size,
                           max_tokens=max_tokens, device=device)
        with closing(batches) as stream:
            for window_ids, vectors in stream:
                done = []
                for k, vec in zip(window_ids, vectors):
                    w = windows[k]
                    out = results.get(w.sentence)
                    if out is None:
                        out = np.zeros((depth + 1, len(pieces[w.sentence].ids), vec.shape[-1]),
                                       dtype=np.float32)
                        results[w.sentence] = out
                    out[:, w.targets] = vec
                    remaining[w.sentence] -= 1
                    if remaining[w.sentence] == 0:
                        done.append(w.sentence)
                if done:
                    on_batch(done, [pieces[i] for i in done], [results.pop(i) for i in done])
                    if progress is not None:
                        progress.update(len(done))
    finally:
        if progress is not None:
            progress.close()


def _hidden_width(model) -> int:
    config = model.config
    return int(getattr(config, "hidden_size", None) or config.dim)


def _forward(model, tokenizer, windows: list[_Window], *, depth: int, batch_size: int,
             max_tokens: int, device: str):
    """Yield (window indices, float32 piece vectors per window) batch by batch, in order."""
    import torch

    if not windows:
        return
    flat, offsets, lengths = encoder.flatten_ids([w.ids for w in windows])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())

    def run(positions: np.ndarray):
        ids, mask = encoder.pad_batch(flat, offsets, lengths, positions, pad_id)
        inputs = {"input_ids": torch.from_numpy(ids).to(device),
                  "attention_mask": torch.from_numpy(mask).to(device)}
        if with_types:
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        rows = np.concatenate([np.full(len(windows[p].columns), r, dtype=np.int64)
                               for r, p in enumerate(positions)])
        cols = np.concatenate([windows[p].columns for p in positions])
        sizes = [len(windows[p].columns) for p in positions]
        r, c = torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)
        with torch.inference_mode():
            out = model(**inputs, output_hidden_states=True, return_dict=True)
            hidden = out.hidden_states
            if len(hidden) != depth + 1:
                raise RuntimeError(
                    f"model returned {len(hidden)} hidden states, expected {depth + 1}")
            picked = torch.stack([h[r, c] for h in hidden]).float()
            picked = picked.cpu().numpy()
        cuts = np.cumsum(sizes)[:-1]
        return positions.tolist(), np.split(picked, cuts, axis=1)

    batches = encoder.make_batches(lengths, batch_size, max_tokens)
    streams, threads = encoder.cpu_streams() if device == "cpu" else (1, 0)
    if streams < 2 or len(batches) < encoder.MIN_BATCHES_PER_STREAM * streams:
        yield from map(run, batches)
    else:
        yield from encoder.in_parallel(run, batches, streams, threads)
