"""Run an exported pipeline with onnxruntime, tokenizers and numpy only (no torch).

>>> from bertfeat import runtime
>>> pipe = runtime.load("sst2-export")                     # doctest: +SKIP
>>> pipe.predict(["a gripping, funny film"])              # doctest: +SKIP
array([1])

The folder is written by :func:`bertfeat.export.export_pipeline` (``bertfeat export``).
Texts are tokenised once, sorted by token length and run in batches bounded by the
featurizer's ``batch_size`` and a token budget, as :mod:`bertfeat.encoder` does, so a batch
is padded only to its own longest text. The budget is the featurizer's, capped at
:data:`BATCH_TOKENS` (smaller batches are padded less; measured faster here).

The folder's manifest is read and checked by :mod:`bertfeat.deploy.manifest`, sessions
made by :mod:`bertfeat.deploy.sessions`, a TF-IDF block computed by
:mod:`bertfeat.deploy.tfidf` and ``long_text="chunk"`` windows pooled by
:mod:`bertfeat.deploy.windows`; this module is the estimator-like face over them.

None of them imports anything that needs torch, transformers or scikit-learn: on a machine
with only ``pip install onnxruntime tokenizers numpy`` and ``pip install --no-deps
bertfeat`` it runs as is.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, KeysView, Mapping, Set
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.batching import (
    encode_texts_fast,
    flatten_ids,
    make_batches,
    pad_batch,
    usable_cores,
)
from ..io.inputs import _LONE_SURROGATE
from .manifest import (  # noqa: F401  (file_digest, manifest_digest: their old home)
    MANIFEST,
    file_digest,
    manifest_digest,
    read_manifest,
)
from .sessions import check_int8_cpu, session
from .tfidf import TfidfBlock
from .windows import keep_windows, pool_window_stats

__all__ = ["load", "ExportedPipeline", "BATCH_TOKENS"]

#: padded tokens per batch at most (unless ``load(max_batch_tokens=...)`` says otherwise):
#: on SST-2 test (all-MiniLM-L6-v2, 2-core Xeon) 1,024 ran ~12% faster than the
#: featurizer's default of 4,096, because length-sorted batches of fewer texts are padded
#: less; 512 was slower (benchmarks/README.md, "Exported pipeline")
BATCH_TOKENS = 1024
#: rows per call of the head graph (bounds memory for wide TextUnion inputs) ...
_HEAD_ROWS = 512
#: ... and dense input values per call at most (a TF-IDF vocabulary can be 100,000 wide)
_HEAD_VALUES = 2 ** 22


def load(directory: str | Path, *, threads: int | None = None, streams: int | None = None,
         max_batch_tokens: int | None = None) -> ExportedPipeline:
    """Load an exported pipeline folder.

    Parameters
    ----------
    directory : str or Path
        Folder written by ``bertfeat export``.
    threads : int, optional
        Cores to use (default: all this process may run on).
    streams : int, optional
        Batches run at once, each on ``threads // streams`` onnxruntime threads (default:
        2 with at least 2 cores, as the torch encoder does).
    max_batch_tokens : int, optional
        Padded tokens per batch at most (default: the featurizer's budget, capped at
        :data:`BATCH_TOKENS`).

    Returns
    -------
    ExportedPipeline
    """
    return ExportedPipeline(directory, threads=threads, streams=streams,
                            max_batch_tokens=max_batch_tokens)


class ExportedPipeline:
    """An exported pipeline: ``transform`` / ``predict`` / ``predict_proba`` on raw texts.

    Parameters
    ----------
    directory : str or Path
        Folder written by :func:`bertfeat.export.export_pipeline`.
    threads : int, optional
        Cores to use (default: all this process may run on).
    streams : int, optional
        Batches run at once (default: 2 with at least 2 cores).
    max_batch_tokens : int, optional
        Padded tokens per batch at most (default: the featurizer's budget, capped at
        :data:`BATCH_TOKENS`).

    Attributes
    ----------
    manifest : dict
        The folder's ``manifest.json``.
    classes_ : ndarray
        Class labels, when the pipeline ends in a classifier.
    n_features_out_ : int
        Width of :meth:`transform`'s output.
    max_batch_tokens : int
        The token budget of a batch in use (absent for a TF-IDF pipeline, which has no
        encoder).
    """

    def __init__(self, directory: str | Path, *, threads: int | None = None,
                 streams: int | None = None, max_batch_tokens: int | None = None) -> None:
        from tokenizers import Tokenizer

        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        m = self.manifest
        self._cores = int(threads) if threads else usable_cores()
        head = m.get("head")
        self._head = None if head is None else session(self.directory / head["file"],
                                                       self._cores)
        self._tfidf = None
        if m.get("tfidf"):
            self._tfidf = TfidfBlock(json.loads(
                (self.directory / m["tfidf"]).read_text(encoding="utf-8")))
        if head is not None and "classes" in head:
            dtype = head.get("classes_dtype")
            self.classes_ = np.asarray(head["classes"],
                                       dtype=None if dtype is None else np.dtype(dtype))
        self.n_features_out_ = int(m.get("union_features") or m["n_features"])
        self._encoder = None
        if m.get("first_step") == "TfidfVectorizer":  # TF-IDF only: no encoder, no tokenizer
            return
        if m["precision"] == "int8":
            check_int8_cpu()
        self._tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._settings = m.get("settings") or {}
        # what the graph outputs: the features, or (chunked) each window's statistics
        self._width_key = ("graph_features" if self._settings.get("long_text") == "chunk"
                           else "n_features")
        self._graph_width = int(m[self._width_key])
        # a chunked export keeps the windows (overflowing encodings, ``stride`` apart)
        self._tokenizer.enable_truncation(int(m["max_length"]),
                                          stride=int(self._settings.get("chunk_stride", 0)))
        if hasattr(self._tokenizer, "encode_special_tokens"):
            self._tokenizer.encode_special_tokens = bool(m["encode_special_tokens"])
        self._streams = max(1, min(int(streams) if streams else 2, self._cores))
        if max_batch_tokens is not None and int(max_batch_tokens) < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens!r}")
        self.max_batch_tokens = int(max_batch_tokens) if max_batch_tokens else min(
            int(m["max_batch_tokens"]), BATCH_TOKENS)
        # one session, ``streams`` batches in flight (onnxruntime's Run is thread-safe),
        # each on its share of the cores: on 2 cores two one-thread batches beat one
        # two-thread batch, as in bertfeat.encoder
        self._encoder = session(self.directory / "encoder.onnx",
                                max(1, self._cores // self._streams))
        width = self._encoder.get_outputs()[0].shape
        if len(width) != 2 or (isinstance(width[1], int) and width[1] != self._graph_width):
            raise ValueError(f"{self.directory / 'encoder.onnx'} gives features of shape "
                             f"{width}, but {self.directory / MANIFEST} says "
                             f"{self._width_key}={self._graph_width}: the folder is "
                             "inconsistent; export again")

    def __repr__(self) -> str:
        m = self.manifest
        steps = [s[1] for s in (m.get("head") or {}).get("steps", [])]
        return (f"ExportedPipeline({str(self.directory)!r}, model={m['model']!r}, "
                f"precision={m['precision']!r}, head={steps})")

    # --------------------------------------------------------------------- encoding
    def encode(self, texts: Iterable[str]) -> np.ndarray:
        """The featurizer's output (pooled, combined, normalised as fitted) for ``texts``.

        Parameters
        ----------
        texts : iterable of str

        Returns
        -------
        ndarray of shape (n_texts, n_features), float32
        """
        texts = _as_texts(texts)
        if self._encoder is None:
            raise AttributeError("this export is a TF-IDF pipeline without an encoder; "
                                 "use transform for its TF-IDF features")
        unique: dict[str, int] = {}
        inverse = np.fromiter((unique.setdefault(t, len(unique)) for t in texts),
                              dtype=np.int64, count=len(texts))
        distinct = list(unique)
        if not distinct:
            return np.zeros((0, int(self.manifest["n_features"])), dtype=np.float32)
        encodings = encode_texts_fast(self._tokenizer, distinct)
        if self._settings.get("long_text") == "chunk":
            return self._pool_windows(encodings, len(distinct))[inverse]
        return self._run_graph([e.ids for e in encodings])[inverse]

    def _run_graph(self, ids: list[list[int]]) -> np.ndarray:
        """The encoder graph's output for each token-id sequence (length-sorted batches)."""
        m = self.manifest
        out = np.zeros((len(ids), self._graph_width), dtype=np.float32)
        flat, offsets, lengths = flatten_ids(ids)
        pad = int(m["pad_id"])
        batches = make_batches(lengths, int(m["batch_size"]), self.max_batch_tokens)

        if len(batches) < self._streams:  # fewer batches than streams: split them by rows,
            # so a small input also runs on every core (the session's threads are fixed)
            batches = [part for positions in batches
                       for part in np.array_split(positions, self._streams) if len(part)]

        def run(positions: np.ndarray) -> None:
            batch, mask = pad_batch(flat, offsets, lengths, positions, pad)
            features = self._encoder.run(
                ["features"], {"input_ids": batch, "attention_mask": mask})[0]
            if features.shape != (len(positions), out.shape[1]):
                raise ValueError(
                    f"{self.directory / 'encoder.onnx'} gave features of shape "
                    f"{features.shape} for {len(positions)} texts, but "
                    f"{self.directory / MANIFEST} says {self._width_key}={out.shape[1]}: "
                    "the folder is inconsistent; export again")
            out[positions] = features

        if self._streams < 2 or len(batches) < 2:
            for positions in batches:
                run(positions)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self._streams, thread_name_prefix="bertfeat-ort") as pool:
                list(pool.map(run, batches))  # rows are disjoint: no lock needed
        return out

    def _pool_windows(self, encodings: list, n_texts: int) -> np.ndarray:
        """``long_text="chunk"``: every window of every text through the graph, then each
        text's windows pooled and its features built (:mod:`bertfeat.deploy.windows`)."""
        windows, owner = keep_windows(encodings, int(self._settings["max_chunks"]))
        raw = self._run_graph(windows)
        return pool_window_stats(raw, owner, [len(w) for w in windows], n_texts,
                                 self._settings)

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """Features of the first step (``BertFeaturizer`` or ``TextUnion``), or the output
        of the whole pipeline when every step after it is a transformer.

        Parameters
        ----------
        texts : iterable of str

        Returns
        -------
        ndarray of shape (n_texts, width)
        """
        texts = _as_texts(texts)
        head = self.manifest.get("head")
        if head is not None and "transform" in head:
            return self._run_head(texts, head["transform"])
        return self._first_step(texts)

    def predict(self, texts: Iterable[str]) -> np.ndarray:
        """Labels (classifier) or values (regressor) of the pipeline for ``texts``.

        Parameters
        ----------
        texts : iterable of str

        Returns
        -------
        ndarray of shape (n_texts,)
        """
        head = self._need_head("predict")
        if "label" in head:
            labels = self._run_head(_as_texts(texts), head["label"]).reshape(-1)
            if head.get("label_is_index"):  # the graph predicts class indices
                return self.classes_[labels.astype(np.int64)]
            return labels.astype(self.classes_.dtype, copy=False)
        if "prediction" not in head:
            raise AttributeError("the exported pipeline ends in a transformer: use transform")
        values = self._run_head(_as_texts(texts), head["prediction"])
        values = values.reshape(-1) if values.ndim == 2 and values.shape[1] == 1 else values
        target = head.get("target_scaler")  # a TransformedTargetRegressor's StandardScaler
        if target is not None:
            values = values.astype(np.float64)
            if target["scale"] is not None:
                values = values * target["scale"]
            if target["mean"] is not None:
                values = values + target["mean"]
        return values

    def predict_proba(self, texts: Iterable[str]) -> np.ndarray:
        """Class probabilities, columns in the order of :attr:`classes_`.

        Parameters
        ----------
        texts : iterable of str

        Returns
        -------
        ndarray of shape (n_texts, n_classes)
        """
        head = self._need_head("predict_proba")
        if not head.get("proba"):
            raise AttributeError("the exported pipeline's last step has no predict_proba")
        return self._run_head(_as_texts(texts), head["scores"])

    # ----------------------------------------------------------------------- helpers
    def _need_head(self, what: str) -> dict[str, Any]:
        head = self.manifest.get("head")
        if head is None:
            raise AttributeError(f"{what}: the export holds no scikit-learn head (it was a "
                                 "featurizer alone); use transform")
        return head

    def _first_step(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:
            return self._tfidf.lexical(texts)
        features = self.encode(texts)
        if self._tfidf is None:
            return features
        return self._tfidf.join(texts, features)

    def _run_head(self, texts: list[str], output: str) -> np.ndarray:
        head = self.manifest["head"]
        dtype = np.float64 if head["input_dtype"] == "float64" else np.float32
        if not texts:  # onnxruntime refuses a batch of 0 rows: run one, keep none
            width = int(self.manifest.get("union_features") or self.manifest["n_features"])
            return self._head.run([output], {"features": np.zeros((1, width), dtype)})[0][:0]
        if self._tfidf is None:
            features = self.encode(texts).astype(dtype)
            return self._head.run([output], {"features": features})[0]
        dense = None if self._encoder is None else self.encode(texts)
        step = max(1, min(_HEAD_ROWS, _HEAD_VALUES // max(self.n_features_out_, 1)))
        parts = []
        for start in range(0, max(len(texts), 1), step):
            rows = slice(start, start + step)
            joined = (self._tfidf.lexical(texts[rows]) if dense is None
                      else self._tfidf.join(texts[rows], dense[rows]))
            parts.append(self._head.run([output], {"features": joined.astype(dtype)})[0])
        return np.concatenate(parts)


def _as_texts(texts: Any) -> list[str]:
    """The input as a list of ``str``: rows named on errors, as the featurizer does.

    Sets and mappings are refused (no row order). A lone UTF-16 surrogate is replaced by
    U+FFFD with one warning, as :func:`bertfeat.inputs.to_texts` does (the tokenizer
    refuses it with an opaque error).
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("pass a list of texts, not a single string (wrap it: [text])")
    if isinstance(texts, Mapping):
        raise TypeError(f"expected a sequence of texts, got a {type(texts).__name__}; pass "
                        "its values (list(d.values()))")
    if isinstance(texts, Set) and not isinstance(texts, KeysView):
        raise TypeError(f"expected a sequence of texts, got a {type(texts).__name__}, which "
                        "has no order: rows could not be matched to outputs; pass a list "
                        "(e.g. sorted(texts))")
    if hasattr(texts, "columns"):  # a 1-column DataFrame
        if len(texts.columns) != 1:
            raise ValueError(f"a DataFrame input needs exactly one text column, "
                             f"got {len(texts.columns)}")
        texts = texts.iloc[:, 0]
    if isinstance(texts, np.ndarray):
        if texts.ndim == 2 and texts.shape[1] == 1:
            texts = texts[:, 0]
        elif texts.ndim != 1:
            raise ValueError(f"expected one text per row, got an array of shape "
                             f"{texts.shape}")
    if not isinstance(texts, Iterable):
        raise TypeError(f"expected a sequence of texts, got {type(texts).__name__}")
    out = list(texts)
    surrogates: list[int] = []
    for row, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"row {row}: expected a string, got {type(text).__name__} "
                            f"({text!r:.40})")
        if type(text) is not str:
            text = out[row] = str.__str__(text)
        if not text.isascii() and _LONE_SURROGATE.search(text):
            surrogates.append(row)
            out[row] = _LONE_SURROGATE.sub("\ufffd", text)
    if surrogates:
        warnings.warn(f"{len(surrogates)} text(s) hold lone UTF-16 surrogates (first: row "
                      f"{surrogates[0]}), which are not characters; each was replaced by "
                      "U+FFFD, as BertFeaturizer does", UserWarning, stacklevel=3)
    return out
