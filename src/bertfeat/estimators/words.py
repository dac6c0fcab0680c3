"""Word-level features for tagging: ``BertWordFeaturizer`` and ``WordTagger``.

The data path, one direction::

    sentences (word lists) ─► validate ─► dedup ─► store lookup per (fingerprint, sentence)
      ─► (misses) word pieces + windows ─► encoder ─► store write (every piece, every layer)
      ─► select layers ─► sub-word pooling ─► combine ─► features (n_words_total, d)

A tag list per word never meets a sub-word position: the pieces of each word are found
with the fast tokenizer's word ids and pooled into one row per word, in order (see
:mod:`bertfeat.wordencoder` for words without a piece and sentences longer than a window).
This module holds no torch code.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import models
from ..engine import wordencoder
from ..engine.word_pass import WordPass
from ..io.inputs import BAD_INPUT_POLICIES, _is_missing, to_sentences
from ..pooling import (
    COMBINES,
    SUBWORD_POOLINGS,
    combine_layers,
    pool_subwords,
    subword_width,
)
from ..stats.tagscore import entity_f1, is_bio, token_accuracy
from ..store import FeatureStore, sentence_digest
from .base import EncoderEstimatorMixin, usable_store
from .featurizer import resolve_layers
from .params import non_negative_int, positive_int

__all__ = ["BertWordFeaturizer", "WordTagger", "flatten_tags", "sentence_ids",
           "unflatten_tags"]

#: version of the per-word encoding (pre-tokenised words, [UNK] for empty words, windows;
#: 2: values beyond float16's range are kept as float32, never clamped)
WORD_FORMAT = 2


class BertWordFeaturizer(EncoderEstimatorMixin, TransformerMixin, BaseEstimator,
                         auto_wrap_output_keys=None):
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
        "model": [str, os.PathLike],
        "layers": "no_validation",  # the range depends on the model
        "subword_pooling": [StrOptions(set(SUBWORD_POOLINGS))],
        "layer_combine": [StrOptions(set(COMBINES))],
        "max_length": [positive_int(), None],
        "window_stride": [non_negative_int(), None],
        "batch_size": [positive_int()],
        "device": [str, None],
        "precision": [StrOptions(set(models.PRECISIONS))],
        "revision": [str, None],
        "cache": [StrOptions({"auto"}), str, os.PathLike, FeatureStore, "boolean", None],
        "show_progress": [StrOptions({"auto"}), "boolean"],
        "max_batch_tokens": [positive_int(), None],
        "on_bad_input": [StrOptions(set(BAD_INPUT_POLICIES))],
        "trust_remote_code": ["boolean"],
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
        if self.max_length is not None and self.max_length > info.max_length:
            raise ValueError(f"max_length={self.max_length} exceeds the limit of model "
                             f"{info.spec!r} ({info.max_length} tokens)")
        if self.max_length is not None and self.max_length < 3:
            raise ValueError("max_length must leave room for the special tokens and a "
                             "piece (>= 3)")
        max_length = int(self.max_length or info.max_length)
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
            {"kind": "words", "model": info.spec, "path": str(info.path),
             "revision": info.revision, "model_type": info.model_type,
             "n_layers": info.n_layers, "hidden_size": info.hidden_size,
             "max_length": max_length, "window_stride": stride, "precision": precision})
        self.layers_ = layers
        self.n_layers_ = info.n_layers
        self.hidden_size_ = info.hidden_size
        self.max_length_ = max_length
        self.window_stride_ = stride
        self.device_ = device
        self.precision_ = precision
        self.feature_names_out_ = self._feature_names()
        self.n_features_out_ = len(self.feature_names_out_)
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

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns (layer, sub-word pooling, dimension).

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

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
        digests = [sentence_digest(s) for s in sentences]
        first: dict[str, int] = {}
        inverse = np.array([first.setdefault(d, len(first)) for d in digests], dtype=np.int64)
        unique = [None] * len(first)
        for sentence, u in zip(sentences, inverse):
            unique[u] = sentence
        counts, vectors = self._pieces(unique, list(first))
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


# ------------------------------------------------------------------- tags per word
def flatten_tags(tags: Any, sentences: Any = None) -> np.ndarray:
    """One tag per word, all sentences in order: the ``y`` of word-level features.

    Parameters
    ----------
    tags : sequence of sequence
        Tags per sentence (one per word).
    sentences : sequence of list of str, optional
        When given, every sentence must have as many tags as words; the error names the
        first sentence that does not.

    Returns
    -------
    ndarray of shape (n_words_total,)
    """
    tags = _tag_lists(tags)
    if sentences is not None:
        sentences = to_sentences(sentences, "empty")
        if len(sentences) != len(tags):
            raise ValueError(f"{len(sentences)} sentences but {len(tags)} tag lists")
        for i, (s, t) in enumerate(zip(sentences, tags)):
            if len(s) != len(t):
                raise ValueError(f"Sentence {i} has {len(s)} words but {len(t)} tags.")
    flat = [tag for sentence in tags for tag in sentence]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    if flat and all(isinstance(t, str) for t in flat):
        return out.astype(str)
    return out


def sentence_ids(sentences: Any) -> np.ndarray:
    """The sentence of every word, in order: ``groups`` for ``GroupKFold``.

    Parameters
    ----------
    sentences : sequence of list of str

    Returns
    -------
    ndarray of int64, shape (n_words_total,)
    """
    lengths = [len(s) for s in to_sentences(sentences, "empty")]
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def unflatten_tags(flat: Any, sentences: Any) -> list[list]:
    """Inverse of :func:`flatten_tags`: per-word values back into per-sentence lists.

    Parameters
    ----------
    flat : array-like of shape (n_words_total,)
    sentences : sequence of list of str

    Returns
    -------
    list of list
    """
    lengths = [len(s) for s in to_sentences(sentences, "empty")]
    flat = np.asarray(flat)
    if len(flat) != sum(lengths):
        raise ValueError(f"{len(flat)} values for {sum(lengths)} words")
    cuts = np.cumsum(lengths)[:-1] if lengths else []
    return [part.tolist() for part in np.split(flat, cuts)] if lengths else []


def _once(values: Any) -> Any:
    """A one-shot iterator (generator, ``map`` ...) as a list; anything else as it is."""
    if isinstance(values, Iterator):
        return list(values)
    return values


def _tag_lists(tags: Any) -> list[list]:
    if isinstance(tags, (str, bytes)) or tags is None:
        raise TypeError("tags must be a sequence of per-sentence tag lists")
    out = []
    for i, sentence in enumerate(tags):
        if isinstance(sentence, (str, bytes)) or not hasattr(sentence, "__len__"):
            raise TypeError(f"Tags of sentence {i} must be a list (one tag per word), got "
                            f"{type(sentence).__name__}.")
        row = list(sentence.tolist() if isinstance(sentence, np.ndarray) else sentence)
        for j, tag in enumerate(row):
            if _is_missing(tag):
                raise ValueError(f"Sentence {i}, word {j} has no tag ({tag!r}).")
        out.append(row)
    return out


# ------------------------------------------------------------------------- tagger
class WordTagger(BaseEstimator):
    """A tagger over sentences: word features from a featurizer, any scikit-learn head.

    ``fit(sentences, tags)`` and ``predict(sentences)`` take and return lists of per-word
    tag lists; in between, every word is one row of ``featurizer`` features and one
    sample of ``classifier``.

    Parameters
    ----------
    featurizer : estimator, default=None
        Turns sentences into one row per word; default ``BertWordFeaturizer()``.
    classifier : estimator, default=None
        Any scikit-learn classifier (LogisticRegression, LinearSVC, MLPClassifier, a
        Pipeline ...); default ``LogisticRegression(max_iter=1000)``.
    scoring : {"auto", "accuracy", "entity_f1"}, default="auto"
        What :meth:`score` returns: token accuracy, or entity-level F1 of BIO/IOB2 tags
        (micro-averaged, as seqeval's default mode). ``"auto"``: entity F1 when every
        true tag is ``O``, ``B-X`` or ``I-X``, else accuracy.

    Attributes
    ----------
    featurizer_ : estimator
        The fitted clone of ``featurizer``.
    classifier_ : estimator
        The fitted clone of ``classifier``.
    classes_ : ndarray
        The tags seen in ``fit``.

    Examples
    --------
    >>> from bertfeat import BertWordFeaturizer, WordTagger
    >>> from sklearn.linear_model import LogisticRegression
    >>> tagger = WordTagger(BertWordFeaturizer(layers=3), LogisticRegression(max_iter=500))
    >>> tagger.fit([["Dogs", "bark"]], [["NOUN", "VERB"]]).predict([["Cats", "sleep"]])
    ... # doctest: +SKIP
    [['NOUN', 'VERB']]
    """

    _parameter_constraints: dict = {
        "featurizer": [HasMethods(["fit", "transform"]), None],
        "classifier": [HasMethods(["fit", "predict"]), None],
        "scoring": [StrOptions({"auto", "accuracy", "entity_f1"})],
    }

    def __init__(self, featurizer: Any = None, classifier: Any = None,
                 scoring: str = "auto") -> None:
        self.featurizer = featurizer
        self.classifier = classifier
        self.scoring = scoring

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.required = True
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any) -> WordTagger:
        """Fit the head on the words of ``X`` and their tags.

        Parameters
        ----------
        X : sequence of list of str
            Sentences, each a list of words.
        y : sequence of list
            Tags per sentence, one per word.

        Returns
        -------
        self : WordTagger
        """
        from sklearn.linear_model import LogisticRegression

        X, y = _once(X), _once(y)  # a generator is read once, here
        sentences = to_sentences(X, "empty")
        flat = flatten_tags(y, sentences)
        featurizer = BertWordFeaturizer() if self.featurizer is None else self.featurizer
        head = LogisticRegression(max_iter=1000) if self.classifier is None else self.classifier
        fitted_featurizer = clone(featurizer)
        features = fitted_featurizer.fit_transform(X)
        if len(features) != len(flat):
            raise ValueError(f"the featurizer returned {len(features)} rows for "
                             f"{len(flat)} words; it must give one row per word")
        classifier = clone(head).fit(features, flat)
        # the fitted state changes only now, after everything succeeded: a failed or
        # interrupted refit leaves the previous fit (or none) in place
        self.featurizer_ = fitted_featurizer
        self.classifier_ = classifier
        self.classes_ = getattr(classifier, "classes_", np.unique(flat))
        return self

    def predict(self, X: Any) -> list[list]:
        """Tags of every word.

        Parameters
        ----------
        X : sequence of list of str
            Sentences, each a list of words.

        Returns
        -------
        list of list
            One tag list per sentence, as long as the sentence.
        """
        check_is_fitted(self, "classifier_")
        X = _once(X)  # a generator is read once, here
        sentences = to_sentences(X, "empty")
        features = self.featurizer_.transform(X)
        if len(features) == 0:
            return [[] for _ in sentences]
        return unflatten_tags(self.classifier_.predict(features), sentences)

    def score(self, X: Any, y: Any) -> float:
        """Token accuracy or entity-level F1 (see ``scoring``) of the predicted tags.

        Parameters
        ----------
        X : sequence of list of str
            Sentences.
        y : sequence of list
            True tags per sentence.

        Returns
        -------
        float
        """
        truth = _tag_lists(y)
        predicted = self.predict(X)
        if len(predicted) != len(truth):
            raise ValueError(f"{len(predicted)} sentences but tags for {len(truth)}")
        scoring = self.scoring
        if scoring == "auto":
            scoring = "entity_f1" if is_bio(truth) else "accuracy"
        if scoring == "entity_f1":
            return entity_f1(truth, predicted)
        return token_accuracy(truth, predicted)
