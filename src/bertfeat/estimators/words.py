"""Word-level features for tagging: ``BertWordFeaturizer``.

The data path, one direction::

    sentences (word lists) ─► validate ─► dedup ─► store lookup per (fingerprint, sentence)
      ─► (misses) word pieces + windows ─► encoder ─► store write (every piece, every layer)
      ─► select layers ─► sub-word pooling ─► combine ─► features (n_words_total, d)

A tag list per word never meets a sub-word position: the pieces of each word are found
with the fast tokenizer's word ids and pooled into one row per word, in order (see
:mod:`bertfeat.wordencoder` for words without a piece and sentences longer than a window).
This module holds no torch code. The tagger over these features is
:class:`~bertfeat.estimators.tagger.WordTagger`; tag lists per word are read by
:mod:`bertfeat.io.tags`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from .._compat import forwarding
from ..engine import wordencoder
from ..engine.word_pass import WordPass
from ..io.inputs import dedup, to_sentences
from ..io.tags import flatten_tags, sentence_ids, unflatten_tags
from ..pooling import SUBWORD_POOLINGS, combine_layers, pool_subwords, subword_width
from ..store import FeatureStore, sentence_digest
from .base import EncoderEstimatorMixin, LayerFeaturesMixin, usable_store
from .params import layer_features_constraints, non_negative_int, resolve_layers

__all__ = ["BertWordFeaturizer", "flatten_tags", "sentence_ids", "unflatten_tags"]

# backwards compatibility only: WordTagger lived here before it had its own module (pickles
# name bertfeat.estimators.words.WordTagger); the tagger imports this module, not the reverse
__getattr__, __dir__ = forwarding(__name__, {"WordTagger": f"{__package__}.tagger"}, globals())

#: version of the per-word encoding (pre-tokenised words, [UNK] for empty words, windows;
#: 2: values beyond float16's range are kept as float32, never clamped)
WORD_FORMAT = 2


class BertWordFeaturizer(EncoderEstimatorMixin, LayerFeaturesMixin, TransformerMixin,
                         BaseEstimator, auto_wrap_output_keys=None):
    """One feature row per word of pre-tokenised sentences, from chosen encoder layers.

    Sentences are lists of words (as in CoNLL files). Each word's sub-word pieces are
    found with the fast tokenizer's word ids and pooled into one vector per word, so the
    output has exactly one row per input word, in order -- whatever the tokenizer does.
    Every piece vector of every computed layer goes to the feature store, keyed by
    (fingerprint, sentence): a search over ``layers`` and ``subword_pooling`` encodes each
    sentence once.

    Note that ``transform`` returns ``n_words_total`` rows for ``n_sentences`` input
    rows; pair it with :func:`flatten_tags` and :func:`sentence_ids` (for ``GroupKFold``)
    or use :class:`WordTagger`, which takes and returns per-sentence tag lists.

    Parameters
    ----------
    model : str, default="default"
        As :class:`~bertfeat.BertFeaturizer`: ``"default"`` (bundled all-MiniLM-L6-v2), a
        hub id or a local directory; the model needs a fast tokenizer.
    layers : int, list of int or "all", default=-1
        Hidden states to use: 0 is the embedding output, 1..N the transformer layers,
        negative values count from the end.
    subword_pooling : {"first", "last", "mean", "max", "first_last"}, default="first"
        How the vectors of a word's pieces become one: its first piece, last piece, the
        mean or the max over its pieces, or ``first_last``, the first and the last piece
        concatenated (twice as wide; a one-piece word repeats its vector).
    layer_combine : {"concat", "mean", "sum"}, default="concat"
        How the vectors of several selected layers are joined.
    max_length : int, optional
        Pieces per forward window, special tokens included. Default: the model's limit.
    window_stride : int, optional
        A sentence with more pieces than a window is cut into windows of whole words that
        share up to ``window_stride`` pieces; each word takes its vector from the window
        where it has most context (most pieces on its shorter side). Default:
        ``max_length // 2``. No word is ever dropped: a single word with more pieces than
        a window keeps its first pieces (one warning counts such words).
    batch_size : int, default=128
        Most windows per forward pass.
    device : str, default="auto"
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}, default="auto"
        As :class:`~bertfeat.BertFeaturizer`.
    revision : str, optional
        Hub revision for hub ids.
    cache : "auto", str, path, FeatureStore, False or None, default="auto"
        Where piece vectors are kept (as :class:`~bertfeat.BertFeaturizer`). They are
        stored as float16, and features are always built from the float16 values, so
        stored and freshly encoded sentences give identical features.
    show_progress : "auto" or bool, default="auto"
        Progress while encoding: as in :class:`~bertfeat.BertFeaturizer` (``"auto"``: a bar in
        a terminal or notebook, else a log line every 30 s; for at least 256 sentences).
    max_batch_tokens : int, optional
        Most padded tokens per forward pass. Default: 4096 on a CPU, 8192 on a GPU.
    on_bad_input : {"raise", "empty"}, default="raise"
        A missing sentence or word (None, NaN): raise a ``ValueError`` naming it, or use
        an empty sentence (no rows) / the empty string (one row, see Notes).
    trust_remote_code : bool, default=False
        Allow models that ship their own Python code.

    Attributes
    ----------
    layers_ : list of int
        Selected hidden-state indices (0..N).
    n_layers_ : int
        Transformer layers in the model (N).
    hidden_size_ : int
        Width of one hidden state.
    max_length_ : int
        Pieces per window in effect.
    window_stride_ : int
        Pieces consecutive windows share at most.
    device_, precision_ : str
        Device and precision in use.
    fingerprint_ : str
        Hash of everything that changes a piece vector; the store's key prefix.
    n_features_out_ : int
        Output width.
    feature_names_out_ : ndarray of str
        ``L{layer}_{subword_pooling}_{j}`` (``first_last``: ``L{layer}_first_{j}`` then
        ``L{layer}_last_{j}``).

    Notes
    -----
    A word that yields no piece at all (zero-width or control characters only, a word
    the tokenizer's normaliser deletes, the empty string) is encoded as one
    ``unk_token`` piece at its position: its row is the contextual ``[UNK]`` vector,
    and the other words keep their own pieces.

    Examples
    --------
    >>> from bertfeat import BertWordFeaturizer
    >>> words = BertWordFeaturizer(layers=3, subword_pooling="mean")
    >>> words.fit_transform([["The", "cat", "sat"], ["Hi", "!"]]).shape  # doctest: +SKIP
    (5, 384)
    """

    _parameter_constraints: dict = {
        **layer_features_constraints(),
        "subword_pooling": [StrOptions(set(SUBWORD_POOLINGS))],
        "window_stride": [non_negative_int(), None],
    }

    def __init__(
        self,
        model: str = "default",
        layers: int | list[int] | str = -1,
        subword_pooling: str = "first",
        layer_combine: str = "concat",
        max_length: int | None = None,
        window_stride: int | None = None,
        batch_size: int = 128,
        device: str = "auto",
        precision: str = "auto",
        revision: str | None = None,
        cache: Any = "auto",
        show_progress: str | bool = "auto",
        max_batch_tokens: int | None = None,
        on_bad_input: str = "raise",
        trust_remote_code: bool = False,
    ) -> None:
        self.model = model
        self.layers = layers
        self.subword_pooling = subword_pooling
        self.layer_combine = layer_combine
        self.max_length = max_length
        self.window_stride = window_stride
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.revision = revision
        self.cache = cache
        self.show_progress = show_progress
        self.max_batch_tokens = max_batch_tokens
        self.on_bad_input = on_bad_input
        self.trust_remote_code = trust_remote_code

    # ---------------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> BertWordFeaturizer:
        """Check parameters and input and read the model's shape (no weights are loaded).

        Parameters
        ----------
        X : sequence of list of str
            Sentences, each a list of words (validated, not encoded).
        y : ignored

        Returns
        -------
        self : BertWordFeaturizer
        """
        setup = self._resolve_encoder()
        info, device, precision = setup.info, setup.device, setup.precision
        layers = resolve_layers(self.layers, info)
        max_length = self._checked_max_length(info, 3, "the special tokens and a piece")
        stride = max_length // 2 if self.window_stride is None else int(self.window_stride)
        if X is not None:
            to_sentences(X, self.on_bad_input)
        store = usable_store(FeatureStore.from_cache(self.cache))
        self._rt_store = store
        # what the fingerprint hashes besides the files, to check it again before the
        # store is used (after unpickling, or when the model's files change)
        self._take_fingerprint(
            info, store,
            {"max_length": max_length, "precision": precision, "long_text": "words",
             "extra": {"words": WORD_FORMAT, "window_stride": stride, "dtype": "float16"}},
            self._description(info, max_length, precision, kind="words",
                              window_stride=stride))
        self.window_stride_ = stride
        self._set_fitted_shape(info, layers, max_length, device, precision)
        return self

    def _feature_names(self) -> np.ndarray:
        hidden, pooling = self.hidden_size_, self.subword_pooling
        if pooling == "first_last":
            parts = [f"first_{j}" for j in range(hidden)] + [f"last_{j}" for j in range(hidden)]
        else:
            parts = [f"{pooling}_{j}" for j in range(subword_width(pooling, hidden))]
        if len(self.layers_) == 1 or self.layer_combine == "concat":
            names = [f"L{layer}_{part}" for layer in self.layers_ for part in parts]
        else:
            tag = f"L{self.layer_combine}{'+'.join(map(str, self.layers_))}"
            names = [f"{tag}_{part}" for part in parts]
        return np.asarray(names, dtype=object)

    # ---------------------------------------------------------------------- transform
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then return the features of every word of ``X``.

        Parameters
        ----------
        X : sequence of list of str
            Sentences, each a list of words.
        y : ignored

        Returns
        -------
        ndarray of shape (n_words_total, n_features_out_), float32
        """
        if fit_params:
            raise TypeError(f"fit() got unexpected keyword arguments {sorted(fit_params)}")
        X = X if isinstance(X, (list, tuple, np.ndarray)) or hasattr(X, "__len__") else list(X)
        return self.fit(X).transform(X)

    def transform(self, X: Any) -> np.ndarray:
        """Encode sentences (reading the store first) and return one row per word.

        Parameters
        ----------
        X : sequence of list of str
            Sentences, each a list of words. An empty sentence contributes no rows.

        Returns
        -------
        ndarray of shape (n_words_total, n_features_out_), float32
            Rows of sentence 0's words, then sentence 1's, ... (see :func:`sentence_ids`).
        """
        check_is_fitted(self, "layers_")
        sentences = to_sentences(X, self.on_bad_input)
        digests, inverse = dedup([sentence_digest(s) for s in sentences])
        first = np.unique(inverse, return_index=True)[1]  # each sentence's first row
        counts, vectors = self._pieces([sentences[i] for i in first], digests)
        return self._assemble(counts, vectors, inverse)

    #: word records hold float16 (float32 beyond its range) whatever the store's dtype
    _store_dtype_matters = False

    def _needed_layers(self) -> list[int]:
        return sorted(set(self.layers_))

    def _pieces(self, sentences: list[list[str]], digests: list[str],
                ) -> tuple[list[np.ndarray], dict[int, list[np.ndarray]]]:
        """Pieces per word and per needed layer the piece vectors, of each sentence: read
        from the store or encoded once, through the one cached pass
        (:class:`~bertfeat.word_pass.WordPass`)."""
        run = WordPass(self, self._runtime_store(), sentences, digests)
        run.run()
        cut = sum(int(np.count_nonzero(f & wordencoder.CUT_WORD)) for f in run.flags)
        if cut:
            warnings.warn(
                f"BertWordFeaturizer: {cut} word(s) have more pieces than a window of "
                f"max_length={self.max_length_} tokens holds; their vectors come from their "
                "first pieces only.", UserWarning, stacklevel=3)
        return run.counts, run.vectors

    def _assemble(self, counts: list[np.ndarray], vectors: dict[int, list[np.ndarray]],
                  inverse: np.ndarray) -> np.ndarray:
        n_words = np.array([len(c) for c in counts], dtype=np.int64)
        word_start = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(n_words, out=word_start[1:])
        rows = (np.concatenate([np.arange(word_start[u], word_start[u + 1]) for u in inverse])
                if len(inverse) else np.zeros(0, dtype=np.int64))
        all_counts = (np.concatenate(counts) if counts else np.zeros(0, np.int64))
        blocks = []
        for layer in self.layers_:
            pieces = (np.concatenate(vectors[layer]) if counts
                      else np.zeros((0, self.hidden_size_), np.float16))
            blocks.append(pool_subwords(pieces, all_counts, self.subword_pooling)[rows])
        return combine_layers(blocks, self.layer_combine)
