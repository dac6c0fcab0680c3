""":class:`ProbeContext`: what every candidate family reads, and how a candidate is scored.

One context lives for one :func:`~bertfeat.probe.probe` call. It holds the shared inputs
(texts, labels, the fixed folds, the heads), the store, the main encoder pass, and the
rows scored so far, so a family can build on earlier results (``ranked``) without
knowing which family produced them.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone

from ..estimators.featurizer import BertFeaturizer
from ..store import FeatureStore, text_digest
from . import scoring as _scoring
from .candidates import Candidate, EncodedLayers, FeatureSet
from .options import ProbeOptions
from .scoring import Job

__all__ = ["ProbeContext", "encode_all_layers", "cv_score", "restrict_splits", "logger",
           "token_lengths"]

#: errors of a closed-form path that send its candidate to plain cross-validation (a
#: scorer that needs predict_proba, which ridge has not)
#: progress messages of the probe (``probe(verbose=True)`` shows them on stderr)
logger = logging.getLogger("bertfeat.probe")


def encode_all_layers(texts: list[str], model: str, poolings: Sequence[str],
                      store: FeatureStore, params: dict,
                      announce: Callable[[str], None] | None = None) -> EncodedLayers:
    """One encoder pass over every layer; then one store read per pooling.

    The encoder runs on the texts the store does not hold yet; ``encoded`` counts them
    (from the store's counter). With ``announce``, the number of tokens to encode and an
    estimate of the time (from the measured speed of a first sample) are announced
    before the bulk of the encoding starts.
    """
    base = BertFeaturizer(model=model, layers="all", pooling=poolings[0], cache=store,
                          **params).fit(texts)
    before = store.encoded_count(base.fingerprint_)
    estimate = None
    if announce is not None:
        estimate = _announce(base, texts, store, announce)
    t0 = _clock()
    out = {}
    for pooling in poolings:
        feat = clone(base).set_params(pooling=pooling).fit(texts)
        out[pooling] = feat.transform(texts)
    # what the estimate was for: the pass after the announcement
    estimates = None if estimate is None else (estimate, _clock() - t0)
    return EncodedLayers(out, base, store.encoded_count(base.fingerprint_) - before,
                         estimates)


#: batches of the pass encoded first, spread over the length range, to measure the speed
#: an estimate is based on: one warms up (loads the model), the others are timed (eight:
#: enough for the two batches at once that a CPU pass runs, see bertfeat.encoder)
_SAMPLE_BATCHES = 9
#: the clock of the estimate (tests replace it)
_clock = time.perf_counter


def _announce(base: BertFeaturizer, texts: list[str], store: FeatureStore,
              announce: Callable[[str], None]) -> float | None:
    """Say how many tokens the pass will encode and about how long it will take.

    The texts not in the store yet are tokenised (as the encoder will: truncated, or in
    windows for ``long_text="chunk"``) and batched as the encoder batches them. A few of
    those batches, spread from the shortest to the longest texts, are encoded first (into
    the store: no work is lost): the first warms up (the model loads), the others are
    timed. Their speed per padded token (what a batch costs) gives the estimate for the
    batches left. Returns the estimate in seconds (``None`` when there is none).
    """
    unique = list(dict.fromkeys(texts))
    found = store.read(base.fingerprint_, [text_digest(t) for t in unique], [base.n_layers_],
                       base.hidden_size_, count=False).found
    missing = [t for t, hit in zip(unique, found) if not hit]
    if not missing:
        announce(f"{base.model}: every text is in the store, nothing to encode")
        return None
    units, owner = _batch_units(base, missing)
    total = int(units.sum())
    batches = _encoder_batches(base, units)
    if len(batches) < 2 * _SAMPLE_BATCHES:
        announce(f"{base.model}: {len(missing):,} texts, {total:,} tokens to encode")
        return None
    picked = np.linspace(0, len(batches) - 1, _SAMPLE_BATCHES).round().astype(int)
    groups = [np.unique(owner[batches[i]]) for i in picked]
    warm = groups[-1]  # the shortest texts: the cheapest warm-up
    timed = np.setdiff1d(np.unique(np.concatenate(groups[:-1])), warm)
    sample = clone(base).set_params(show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the full pass warns once
        sample.fit_transform([missing[i] for i in warm])
        t0 = _clock()
        sample.fit_transform([missing[i] for i in timed])
        seconds = max(_clock() - t0, 1e-9)
    rest = np.setdiff1d(np.arange(len(missing)), np.concatenate([warm, timed]))
    cost = _padded_cost(base, units, owner, timed)
    estimate = _padded_cost(base, units, owner, rest) * seconds / max(cost, 1)
    rate = float(units[np.isin(owner, timed)].sum()) / seconds
    announce(f"{base.model}: {len(missing):,} texts, {total:,} tokens to encode; about "
             f"{estimate:,.0f} s at {rate:,.0f} tokens/s (measured on {len(timed)} texts "
             f"in {len(picked) - 1} batches)")
    return estimate


def _batch_units(base: BertFeaturizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """What the encoder batches for ``texts``: token lengths of the sequences (a text, or
    each window with ``long_text="chunk"``) and the text each one belongs to."""
    from .. import models
    from ..engine import encoder

    info = models.resolve_model(base.model, base.revision)
    tokenizer, _ = models.load_shared(
        info, depth=max(base.n_layers_, min(1, base.n_layers_)), device=base.device_,
        precision=base.precision_, trust_remote_code=base.trust_remote_code)
    if base.long_text == "chunk":
        windows, owner, _ = encoder.tokenize_chunks(tokenizer, texts, base.max_length_,
                                                    base.chunk_stride_, base.max_chunks)
        return (np.asarray([len(w) for w in windows], dtype=np.int64),
                np.asarray(owner, dtype=np.int64))
    lengths = [len(ids) for ids in encoder.tokenize(tokenizer, texts, base.max_length_).input_ids]
    return np.asarray(lengths, dtype=np.int64), np.arange(len(texts))


def _encoder_batches(base: BertFeaturizer, units: np.ndarray) -> list[np.ndarray]:
    """The encoder's batches of sequences of these lengths for the fitted ``base``."""
    from ..engine.encoder import make_batches

    return make_batches(units, base.batch_size, base._token_budget())


def _padded_cost(base: BertFeaturizer, units: np.ndarray, owner: np.ndarray,
                 texts: np.ndarray) -> int:
    """Padded tokens (rows x longest row, per batch) of encoding ``texts`` on their own."""
    keep = units[np.isin(owner, texts)]
    return int(sum(len(b) * int(keep[b].max()) for b in _encoder_batches(base, keep) if len(b)))


def token_lengths(base: BertFeaturizer, texts: Sequence[str]) -> np.ndarray:
    """Tokens the encoder runs on each text for the fitted ``base``: its first
    ``max_length`` tokens, or every window with ``long_text="chunk"`` (tokenised only)."""
    units, owner = _batch_units(base, texts)
    return np.bincount(owner, weights=units, minlength=len(texts)).astype(np.int64)


@dataclass
class ProbeContext:
    """Shared state of one probe run, handed to every candidate family.

    Attributes
    ----------
    texts : list of str
        The texts (validated), one per row of ``y``.
    y : ndarray
        Labels or numbers.
    task : {"classification", "regression"}
    splits : list of (train, test) index arrays
        The folds every candidate is scored on.
    scoring : str or callable
        The metric, as given to ``cross_validate``.
    model : str
        The model spec.
    params : dict
        Further :class:`~bertfeat.BertFeaturizer` parameters (``featurizer_params``).
    poolings : tuple of str
        Poolings swept.
    heads : dict of str -> estimator
        Heads in order; the first one screens.
    store : FeatureStore
        The store of the run (a temporary one when caching is off).
    pipeline_params : dict
        Parameters every recommended featurizer gets (``cache``).
    options : ProbeOptions
        The arguments of :func:`~bertfeat.probe.probe` (``options.combos``,
        ``options.refine_top`` ...).
    n_jobs : int or None
        Threads scoring the candidates (:func:`bertfeat.probe.scoring.run_jobs`).
    random_state : int
        Seed of the folds and heads.
    bert : EncodedLayers
        The main encoder pass (set before the first family runs).
    layers : list of int
        The hidden states swept (absolute).
    encoding : dict
        What the encoder did (``ProbeResult.encoding``); families add their entries.
    timings : dict
        Seconds per stage (``ProbeResult.timings``).
    scored : list of (dict, Candidate)
        The rows scored so far, with their candidates, in scoring order.
    fold_scores : dict of str -> ndarray
        Every scored candidate's score on each split (in ``splits`` order), by key: the
        paired samples of the statistics (:mod:`bertfeat.probe.stats`).
    shared : dict
        What families share within a run, by name (e.g. the texts' TF-IDF counts and
        per-fold vocabularies: :func:`bertfeat.probe.families.union.text_data`); nested
        studies share it too (its entries are keyed by the rows they were fitted on).
    """

    texts: list[str]
    y: np.ndarray
    task: str
    splits: list
    scoring: Any
    model: str
    params: dict
    poolings: tuple[str, ...]
    heads: dict[str, BaseEstimator]
    store: FeatureStore
    pipeline_params: dict
    options: ProbeOptions
    n_jobs: int | None = None
    random_state: int = 0
    bert: EncodedLayers | None = None
    layers: list[int] = field(default_factory=list)
    encoding: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    scored: list[tuple[dict, Candidate]] = field(default_factory=list)
    fold_scores: dict[str, np.ndarray] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    encode_seconds: float = 0.0
    shared: dict = field(default_factory=dict, repr=False)
    _lengths: dict = field(default_factory=dict, repr=False)

    # -- shared data ----------------------------------------------------------------------
    @property
    def text_array(self) -> np.ndarray:
        """The texts as an object array (what text pipelines are cross-validated on)."""
        return np.asarray(self.texts, dtype=object)

    @property
    def n_layers(self) -> int:
        return self.bert.featurizer.n_layers_

    @property
    def screen_head(self) -> tuple[str, BaseEstimator]:
        """The first head: the one every feature set is screened with when
        ``screen="head"`` (and what a closed-form screen falls back to)."""
        return next(iter(self.heads.items()))

    @property
    def screen_name(self) -> str:
        """What screens the feature sets, in words."""
        if self.options.screen == "ridge":
            return "ridge (closed form, every alpha)"
        return self.screen_head[0]

    def screen_candidate(self, fs: FeatureSet, stage: str, group: int = 0,
                         recommendable: bool = True) -> Candidate:
        """The candidate that screens ``fs``: closed-form ridge over every alpha
        (``screen="ridge"``, :mod:`bertfeat.probe.ridge`) or the first head."""
        from .candidates import bert_candidate
        from .ridge import RidgePath

        head_name, head = self.screen_head
        cand = bert_candidate(fs, head_name, head, stage, self.pipeline_params, group=group,
                              recommendable=recommendable)
        if self.options.screen == "ridge":
            def make(name: str, est: BaseEstimator) -> Candidate:
                return bert_candidate(fs, name, est, stage, self.pipeline_params)

            cand.path = RidgePath(self.task, make)
        return cand

    def token_lengths(self, long_text: str = "truncate") -> np.ndarray:
        """Tokens the real model's encoder runs on each distinct text (first occurrence
        order) with ``long_text`` (``"truncate"`` or ``"chunk"``); tokenised once per mode,
        nothing encoded."""
        return self._tokenized(long_text)[1]

    @property
    def max_length(self) -> int:
        """The real model's token limit in effect (``featurizer_params`` or the model's)."""
        return self._tokenized(next(iter(self._lengths), "truncate"))[0].max_length_

    def _tokenized(self, long_text: str) -> tuple[BertFeaturizer, np.ndarray]:
        if long_text not in self._lengths:
            base = BertFeaturizer(model=self.model, **{**self.params, "long_text": long_text,
                                                       "cache": False}).fit(self.texts[:1])
            self._lengths[long_text] = (base, token_lengths(base, list(dict.fromkeys(self.texts))))
        return self._lengths[long_text]

    def log(self, message: str) -> None:
        """A progress message (``verbose=True`` shows it)."""
        logger.info(message)

    def encode(self, model: str, poolings: Sequence[str], params: dict, timing: str,
               rows: np.ndarray | None = None) -> EncodedLayers:
        """:func:`encode_all_layers` through the store, timed as ``timings[timing]``.

        ``rows`` encodes only those texts. The token count and a time estimate are
        logged first. Encoding time is kept out of the stage's own time (the time of its
        heads).
        """
        texts = self.texts if rows is None else [self.texts[i] for i in rows]
        t0 = time.perf_counter()
        out = encode_all_layers(texts, model, poolings, self.store, params,
                                announce=self.log)
        seconds = time.perf_counter() - t0
        self.timings[timing] = self.timings.get(timing, 0.0) + seconds
        self.encode_seconds += seconds
        if out.estimate is not None:  # the up-front estimate beside the time it took
            self.encoding.setdefault("estimates", {})[timing] = {
                "estimated_s": out.estimate[0], "actual_s": out.estimate[1]}
        return out

    # -- scoring ----------------------------------------------------------------------------
    def score(self, cand: Candidate) -> dict | None:
        """Cross-validate ``cand`` on the folds; its row, or None when it failed."""
        return self.score_all([cand])[0]

    def score_all(self, cands: Sequence[Candidate]) -> list[dict | None]:
        """Cross-validate every candidate on the folds, all their folds on one pool of
        ``n_jobs`` threads (:mod:`bertfeat.probe.scoring`); their rows in order, None for
        a candidate that failed (left out with a warning: one head failing on this data
        must not end the probe). Rows are recorded in the order of ``cands``."""
        from .candidates import describe

        jobs = []
        for cand in cands:
            y, splits = self.y, self.splits
            if cand.rows is not None:
                y, splits = self.y[cand.rows], restrict_splits(self.splits, cand.rows, len(self.y))
            jobs.append(Job(cand, y, splits, self.scoring))
        rows: list[dict | None] = []
        for outcome in _scoring.run_jobs(jobs, self.n_jobs):
            cand = outcome.candidate
            if outcome.error is not None:
                exc = outcome.error
                warnings.warn(f"probe: candidate {describe(vars(cand))} failed and is left "
                              f"out ({type(exc).__name__}: {exc})", RuntimeWarning,
                              stacklevel=3)
                self.failures.append(cand.key)
                rows.append(None)
                continue
            scores = dict(outcome.scores)
            self.fold_scores[cand.key] = scores.pop("fold_scores")
            row = _row(cand, scores)
            self.scored.append((row, cand))
            rows.append(row)
        return rows

    def ranked(self, *stages: str) -> list[FeatureSet]:
        """Feature sets scored in ``stages``, best first (ties: in scoring order)."""
        rows = [(row, cand.features) for row, cand in self.scored
                if cand.stage in stages and cand.features is not None]
        return [fs for _, fs in sorted(rows, key=lambda rf: -rf[0]["mean_score"])]


def restrict_splits(splits: list, rows: np.ndarray, n: int) -> list:
    """The folds restricted to ``rows`` (renumbered 0..len(rows)-1): each kept text stays
    in its fold."""
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    out = []
    for train, test in splits:
        train, test = position[train], position[test]
        out.append((train[train >= 0], test[test >= 0]))
    return out


def cv_score(candidate: Candidate, y: np.ndarray, splits: list, scoring: Any,
             n_jobs: int | None) -> dict:
    """Cross-validate one candidate's estimator (no closed-form path) on ``splits``:
    ``fold_scores``, ``mean_score``, ``std_score``, ``fit_time``, ``score_time``; raises
    what a fold raised."""
    outcome = _scoring.run_jobs([Job(candidate, y, splits, scoring, use_path=False)],
                               n_jobs)[0]
    if outcome.error is not None:
        raise outcome.error
    return dict(outcome.scores)


def _row(candidate: Candidate, scores: dict) -> dict:
    return {
        "family": candidate.family,
        "layer": candidate.layer,
        "layer_index": candidate.layer_index,
        "pooling": candidate.pooling,
        "head": candidate.head,
        **scores,
        "n_features": candidate.n_features,
        "stage": candidate.stage,
        "candidate": candidate.key,
    }
