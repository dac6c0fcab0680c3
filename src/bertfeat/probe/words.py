"""The probe for tags (a variant of :func:`~bertfeat.probe.probe`): which layer and
sub-word pooling carry what a word tagger needs.

:func:`probe_words` encodes every sentence once (every piece vector of every layer goes
to the feature store), then scores candidates on one fixed set of sentence-grouped folds
(``GroupKFold``: the words of a sentence are never split between training and test):

* **layers** (stage ``screen``) -- every hidden state x sub-word pooling, with the
  screening head (the first of ``heads``);
* **combos** (stage ``screen``) -- the best 2, 3 and 4 screened layers concatenated, with
  the best pooling, and the mean of all layers;
* **refine** (stage ``refine``) -- the other heads on the ``refine_top`` best sets;
* **random** (stage ``control``) -- the same layers of a random-weights copy of the model
  with the best pooling: how much of a score is knowledge transfer (never recommended);
* **most frequent tag** (stage ``baseline``) -- each word's most frequent training tag
  (unseen words: the most frequent tag overall), on the same folds.

The recommendation is a :class:`~bertfeat.WordTagger` with the best configuration;
scoring a head on the cached word features is exactly cross-validating that WordTagger on
the same sentence folds, as the featurizer is per-sentence and stateless.

The candidates are the package's :class:`~bertfeat.probe.candidates.Candidate` objects,
scored by the package's cross-validation and printed by its code printer; the table has
the columns of :class:`~bertfeat.probe.ProbeResult`. :class:`WordProbeResult` keeps its own
report and plot (the most-frequent-tag baseline in place of TF-IDF; the package's
significance tests and tied-group pick are not applied to words yet).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GroupKFold

from ..estimators.words import (
    BertWordFeaturizer,
    WordTagger,
    flatten_tags,
    sentence_ids,
)
from ..io.inputs import to_sentences
from ..models import random_init_model
from ..pooling import SUBWORD_POOLINGS, subword_width
from ..store import FeatureStore
from .candidates import Candidate
from .context import cv_score, logger
from .words_result import WordProbeResult

__all__ = ["probe_words", "word_heads"]

#: ridge penalty of the screening head (on standardised features): measured on UD EWT
#: dev -> test (benchmarks/bench_words.py), where more penalty helps wide combinations
RIDGE_ALPHA = 100.0


def word_heads() -> dict[str, BaseEstimator]:
    """The default heads: a ridge classifier screens, logistic regression refines.

    Both on standardised features. The ridge head is one linear solve per fold (seconds
    on 20,000 words x 3,000 features), which keeps the full layer x pooling sweep cheap.
    """
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "ridge": make_pipeline(StandardScaler(), RidgeClassifier(alpha=RIDGE_ALPHA)),
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300)),
    }


def _most_frequent_scores(words: list[str], y: np.ndarray, splits) -> list[float]:
    """Accuracy per fold of each word's most frequent training tag (unseen: overall)."""
    scores = []
    for train, test in splits:
        counts: dict[str, Counter] = {}
        for i in train:
            counts.setdefault(words[i], Counter())[y[i]] += 1
        fallback = Counter(y[train].tolist()).most_common(1)[0][0]
        guess = [counts[words[i]].most_common(1)[0][0] if words[i] in counts else fallback
                 for i in test]
        scores.append(float(np.mean(np.asarray(guess, dtype=object)
                                    == y[test].astype(object))))
    return scores


def _label(layers: list[int], combine: str) -> str:
    if len(layers) == 1:
        return f"L{layers[0]}"
    return f"L{'+'.join(map(str, layers))} {combine}"


def _tagger(model: str, layers: list[int], pooling: str, combine: str, head: BaseEstimator,
            params: dict) -> WordTagger:
    feat = BertWordFeaturizer(model=model, layers=list(layers), subword_pooling=pooling,
                              layer_combine=combine, **params)
    return WordTagger(feat, clone(head), scoring="accuracy")


class _Blocks:
    """Word features of the swept layers, read from the store one pooling at a time.

    The block of the pooling read last is kept (candidates come grouped by pooling), so
    memory holds one pooling's layers, not all of them; nothing is encoded here.
    """

    def __init__(self, sentences, model, layers, hidden, store, params):
        self.sentences, self.model, self.layers = sentences, model, list(layers)
        self.hidden, self.store, self.params = hidden, store, params
        self._pooling, self._block = None, None

    def features(self, pooling: str, layers: list[int], combine: str = "concat"):
        if pooling != self._pooling:
            self._block = None
            feat = BertWordFeaturizer(model=self.model, layers=self.layers,
                                      subword_pooling=pooling, cache=self.store,
                                      **self.params).fit(self.sentences)
            self._block, self._pooling = feat.transform(self.sentences), pooling
        width = subword_width(pooling, self.hidden)
        parts = [self._block[:, k * width:(k + 1) * width]
                 for k in (self.layers.index(layer) for layer in layers)]
        if len(parts) == 1:
            return parts[0]
        if combine == "concat":
            return np.concatenate(parts, axis=1)
        return np.mean(parts, axis=0, dtype=np.float32)


def probe_words(sentences: Any, tags: Any, *, model: str = "default", layers: Any = "all",
                poolings: Sequence[str] = SUBWORD_POOLINGS, combos: bool = True,
                heads: dict[str, BaseEstimator] | None = None, refine_top: int = 2,
                cv: int = 5, random_control: bool = True, cache: Any = "auto",
                featurizer_params: dict | None = None, refit: bool = True,
                random_state: int = 0, n_jobs: int | None = None) -> WordProbeResult:
    """Score every layer x sub-word pooling of an encoder for a word-tagging task.

    Parameters
    ----------
    sentences : sequence of list of str
        Sentences, each a list of words (e.g. from :func:`bertfeat.conll.read_conll`).
    tags : sequence of list
        Tags per sentence, one per word.
    model : str, default="default"
        The encoder (as :class:`~bertfeat.BertWordFeaturizer`).
    layers : "all" or list of int, default="all"
        Hidden states to sweep.
    poolings : sequence of str, default=all sub-word poolings
        ``first``, ``last``, ``mean``, ``max``, ``first_last``.
    combos : bool, default=True
        Also score the best 2, 3 and 4 layers concatenated and the mean of all layers.
    heads : dict of str -> estimator, optional
        Heads in order; the first screens every feature set, the others refine the
        ``refine_top`` best. Default :func:`word_heads` (ridge, then logistic regression).
    refine_top : int, default=2
        Feature sets the other heads are tried on.
    cv : int, default=5
        Sentence-grouped folds (``GroupKFold``, shuffled with ``random_state``), the same
        for every candidate.
    random_control : bool, default=True
        Also score a random-weights copy of the model (one more encoder pass).
    cache : "auto", str, FeatureStore or False, default="auto"
        The feature store (``False``: a temporary one, removed afterwards).
    featurizer_params : dict, optional
        Further :class:`~bertfeat.BertWordFeaturizer` parameters (``max_length``,
        ``precision`` ...).
    refit : bool, default=True
        Fit the recommended WordTagger on all sentences (``best_estimator``).
    random_state : int, default=0
        Seed of the folds and of the random-weights model.
    n_jobs : int, optional
        Threads for each cross-validation (one fold per task).

    Returns
    -------
    WordProbeResult

    Examples
    --------
    >>> from bertfeat.conll import read_conll
    >>> from bertfeat.probe import probe_words
    >>> sentences, tags = read_conll("en_ewt-ud-dev.conllu", "upos")  # doctest: +SKIP
    >>> result = probe_words(sentences, tags, cv=3)  # doctest: +SKIP
    >>> result.best_estimator.predict([["Dogs", "bark", "."]])  # doctest: +SKIP
    [['NOUN', 'VERB', 'PUNCT']]
    """
    t_start = time.perf_counter()
    sentences = to_sentences(sentences)
    y = flatten_tags(tags, sentences)
    groups = sentence_ids(sentences)
    if len(y) == 0:
        raise ValueError("probe_words needs at least one word")
    n_groups = len(np.unique(groups))
    if cv < 2 or cv > n_groups:
        raise ValueError(f"cv={cv}: need 2 <= cv <= the number of non-empty sentences "
                         f"({n_groups})")
    splits = list(GroupKFold(cv, shuffle=True, random_state=random_state).split(
        y, y, groups))
    head_map = dict(word_heads() if heads is None else heads)
    if not head_map:
        raise ValueError("heads must name at least one estimator")
    params = dict(featurizer_params or {})
    for bad in ("model", "layers", "subword_pooling", "layer_combine", "cache"):
        if bad in params:
            raise ValueError(f"featurizer_params must not set {bad!r}; it is swept or a "
                             "probe_words argument")
    poolings = list(poolings)
    unknown = [p for p in poolings if p not in SUBWORD_POOLINGS]
    if unknown or not poolings:
        raise ValueError(f"poolings must be among {SUBWORD_POOLINGS}, got {poolings}")
    with contextlib.ExitStack() as stack:
        if cache in (False, None):
            store = FeatureStore(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="bertfeat-wordprobe-")))
            pipeline_cache: Any = False
        else:
            store = FeatureStore.from_cache(cache)
            pipeline_cache = cache
        tagger_params = {**params, "cache": pipeline_cache}
        timings: dict[str, float] = {}
        rows: list[dict] = []
        candidates: dict[str, Candidate] = {}

        def score(family, layer_list, pooling, combine, head_name, head, stage, reader,
                  timing, cand_model=model, recommendable=True) -> dict:
            X = reader(pooling, layer_list, combine)
            label = _label(layer_list, combine)

            def build(layer_list=layer_list, pooling=pooling, combine=combine, head=head):
                return _tagger(cand_model, layer_list, pooling, combine, head, tagger_params)

            cand = Candidate(family, label, pooling, head_name, X, clone(head), build, stage,
                             layer_list[0] if len(layer_list) == 1 else None, X.shape[1],
                             recommendable=recommendable)
            t0 = time.perf_counter()
            scores = cv_score(cand, y, splits, "accuracy", n_jobs)
            scores.pop("fold_scores", None)
            timings[timing] = timings.get(timing, 0.0) + time.perf_counter() - t0
            cand.X = None  # the result keeps no feature matrices
            key = f"{family}:{label}:{pooling}:{head_name}"
            row = {"family": family, "layer": label, "layer_index": cand.layer_index,
                   "pooling": pooling, "head": head_name, **scores,
                   "n_features": X.shape[1], "stage": stage, "candidate": key}
            rows.append(row)
            candidates[key] = cand
            cand.spec = (layer_list, pooling, combine)
            return row

        # one encoder pass: every swept layer; each pooling is read back from the store
        t0 = time.perf_counter()
        probe_feat = BertWordFeaturizer(model=model, layers=layers, cache=store,
                                        **params).fit(sentences)
        fp = probe_feat.fingerprint_
        before = store.word_stats(fp)["sentences_encoded"]
        probe_feat.transform(sentences)
        encoded = store.word_stats(fp)["sentences_encoded"] - before
        timings["encode"] = time.perf_counter() - t0
        logger.info("probe_words: %d sentences encoded in %.1f s", encoded, timings["encode"])
        swept = list(probe_feat.layers_)
        reader = _Blocks(sentences, model, swept, probe_feat.hidden_size_, store, params)
        screen_name, screen_head = next(iter(head_map.items()))
        screened = [score("bert", [layer], pooling, "concat", screen_name, screen_head,
                          "screen", reader.features, "screen")
                    for pooling in poolings for layer in swept]
        best_pooling = max(screened, key=lambda r: r["mean_score"])["pooling"]
        if combos and len(swept) > 1:
            by_layer = sorted((r for r in screened if r["pooling"] == best_pooling),
                              key=lambda r: -r["mean_score"])
            order = [int(r["layer_index"]) for r in by_layer]
            specs = [(sorted(order[:k]), "concat") for k in (2, 3, 4) if k <= len(order)]
            specs.append((sorted(swept), "mean"))
            for layer_list, combine in specs:
                score("bert", layer_list, best_pooling, combine, screen_name, screen_head,
                      "screen", reader.features, "screen")
        ranked = sorted(rows, key=lambda r: -r["mean_score"])[:refine_top]
        for row in ranked:
            layer_list, pooling, combine = candidates[row["candidate"]].spec
            for name, head in list(head_map.items())[1:]:
                score("bert", layer_list, pooling, combine, name, head, "refine",
                      reader.features, "refine")
        random_encoded = None
        if random_control:
            t0 = time.perf_counter()
            rmodel = random_init_model(model, seed=random_state,
                                       directory=f"{store.directory}/random-init")
            rfeat = BertWordFeaturizer(model=rmodel, layers=swept, cache=store,
                                       **params).fit(sentences)
            rbefore = store.word_stats(rfeat.fingerprint_)["sentences_encoded"]
            rfeat.transform(sentences)
            random_encoded = store.word_stats(rfeat.fingerprint_)["sentences_encoded"] - rbefore
            timings["random_encode"] = time.perf_counter() - t0
            rreader = _Blocks(sentences, rmodel, swept, probe_feat.hidden_size_, store, params)
            for layer in swept:
                score("random", [layer], best_pooling, "concat", screen_name, screen_head,
                      "control", rreader.features, "control", cand_model=rmodel,
                      recommendable=False)
        t0 = time.perf_counter()
        mft = _most_frequent_scores([w for s in sentences for w in s], y, splits)
        timings["baselines"] = time.perf_counter() - t0
        rows.append({"family": "most_frequent", "layer": "-", "layer_index": None,
                     "pooling": "-", "head": "lookup", "mean_score": float(np.mean(mft)),
                     "std_score": float(np.std(mft)), "fit_time": 0.0, "score_time": 0.0,
                     "n_features": 0, "stage": "baseline", "candidate": "most_frequent"})
        candidates["most_frequent"] = Candidate(
            "most_frequent", "-", "-", "lookup", None, None, lambda: None, "baseline",
            recommendable=False)
        table = pd.DataFrame(rows).sort_values("mean_score", ascending=False, kind="stable")
        table.insert(0, "rank", np.arange(1, len(table) + 1))
        table = table.reset_index(drop=True)
        table["layer_index"] = table["layer_index"].astype("Int64")
        best_key = table[table["family"] == "bert"].iloc[0]["candidate"]
        best_estimator = None
        if refit:
            t0 = time.perf_counter()
            layer_list, pooling, combine = candidates[best_key].spec
            best_estimator = candidates[best_key].build()
            # the featurizer is stateless: fit it (no encoding) and the head on the
            # features the probe holds in the store
            best_estimator.featurizer_ = clone(best_estimator.featurizer).fit(sentences)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                best_estimator.classifier_ = clone(best_estimator.classifier).fit(
                    reader.features(pooling, layer_list, combine), y)
            best_estimator.classes_ = best_estimator.classifier_.classes_
            timings["refit"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        encoding = {"sentences": len(sentences),
                    "unique_sentences": len({tuple(s) for s in sentences}),
                    "words": int(len(y)), "encoded": int(encoded),
                    "random_encoded": random_encoded, "fingerprint": fp}
        return WordProbeResult(table=table, candidates=candidates, n_splits=cv,
                               n_layers=probe_feat.n_layers_, model=model,
                               encoding=encoding, timings=timings,
                               best_estimator=best_estimator)
