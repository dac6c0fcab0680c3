"""What the probe scores: :class:`Candidate` (one thing to cross-validate) and
:class:`FeatureSet` (one view of the encoded layers), and how BERT feature sets become
candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline, make_pipeline

from ..estimators.featurizer import BertFeaturizer
from ..pooling import combine_layers, pooling_width

__all__ = ["Candidate", "FeatureSet", "EncodedLayers", "feature_sets", "bert_candidate",
           "layer_label", "SWEEP_POOLINGS"]

#: poolings the layer sweep can build from stored statistics
SWEEP_POOLINGS = ("mean", "max", "cls", "mean_max", "first_last")


@dataclass
class EncodedLayers:
    """One encoder pass over every layer, read back from the store once per pooling.

    Attributes
    ----------
    arrays : dict of str -> ndarray of shape (n, (N + 1) * width)
        Per pooling, every hidden state's features side by side (layer 0 first).
    featurizer : BertFeaturizer
        The fitted featurizer of the pass (``layers="all"``).
    encoded : int
        Texts the encoder ran on (the store's counter; 0 when all were stored).
    estimate : (float, float), optional
        Seconds the pass was announced to take (after its measured sample) and seconds
        it took from then on; ``None`` when nothing was estimated.
    """

    arrays: dict[str, np.ndarray]
    featurizer: BertFeaturizer
    encoded: int
    estimate: tuple[float, float] | None = None

    def block(self, pooling: str, layer: int) -> np.ndarray:
        """The features of one hidden state (a view, no copy)."""
        width = pooling_width(pooling, self.featurizer.hidden_size_)
        return self.arrays[pooling][:, layer * width:(layer + 1) * width]


@dataclass
class FeatureSet:
    """Features of one layer (or combination) and pooling, with the featurizer's parameters
    that compute them from raw texts."""

    family: str
    layer: str
    pooling: str
    X: np.ndarray
    featurizer_params: dict
    layer_index: int | None


@dataclass
class Candidate:
    """One thing to cross-validate.

    ``X`` is what ``estimator`` is cross-validated on (cached features, or the raw texts
    for text pipelines); ``build()`` returns the equivalent unfitted Pipeline on raw
    texts. For a per-text featurizer the two give the same scores on the same folds.

    Attributes
    ----------
    family, layer, pooling, head, stage : str
        The table's columns of its row.
    X : array-like
        Input of the cross-validation.
    estimator : estimator
        What is cross-validated on ``X``.
    build : callable
        Returns the equivalent unfitted Pipeline on raw texts.
    layer_index : int, optional
        The hidden state, for a single layer.
    n_features : int, optional
        Width of the features.
    features : FeatureSet, optional
        The BERT feature set scored (families ranking feature sets read it).
    refit : callable, optional
        ``refit(texts, y)`` fits the Pipeline on all data reusing what the probe holds;
        default: ``build().fit(texts, y)``.
    rows : ndarray of int, optional
        When ``X`` holds only these rows of the texts: scored on the folds restricted
        to them (the random-weights control on a subset).
    recommendable : bool, default=True
        Whether the candidate may be the recommendation (a control may not).
    threads : bool, default=True
        Whether its folds may be fitted at once on the probe's threads
        (:mod:`bertfeat.probe.scoring`); False for an estimator that uses process-wide
        state while it fits, such as torch's global random generator in fine-tuning: its
        folds are then fitted one at a time, in the calling thread.
    group : int, default=0
        Candidates of one stage are scored in order of ``group`` (then in the order the
        families gave them): the layer families give a pooling's position, so that a
        pooling's single layers and combinations are scored together.
    path : RidgePath, optional
        Scored in closed form instead of by cross-validating ``estimator``
        (:class:`~bertfeat.probe.ridge.RidgePath`: every ridge alpha at once); the row is
        then the chosen alpha's candidate. ``estimator`` (the screening head) is scored
        instead when the path cannot score (a scorer that needs probabilities).
    """

    family: str
    layer: str
    pooling: str
    head: str
    X: Any
    estimator: BaseEstimator
    build: Callable[[], Pipeline]
    stage: str
    layer_index: int | None = None
    n_features: int | None = None
    features: FeatureSet | None = None
    refit: Callable[[list[str], np.ndarray], Pipeline] | None = None
    rows: np.ndarray | None = None
    recommendable: bool = True
    group: int = 0
    path: Any = None
    threads: bool = True

    @property
    def key(self) -> str:
        return f"{self.family}:{self.layer}:{self.pooling}:{self.head}"

    def fit_all(self, texts: list[str], y: np.ndarray) -> Pipeline:
        """The Pipeline fitted on all data."""
        if self.refit is not None:
            return self.refit(texts, y)
        return self.build().fit(np.asarray(texts, dtype=object), y)


def layer_label(layers: list[int], combine: str) -> str:
    """``L4``; ``L3-6 concat`` / ``L3-6 avg`` / ``L3-6 sum`` for combinations."""
    if len(layers) == 1:
        return f"L{layers[0]}"
    span = (f"L{layers[0]}-{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1))
            else "L" + "+".join(map(str, layers)))
    return f"{span} {'avg' if combine == 'mean' else combine}"


def feature_sets(family: str, encoded: EncodedLayers, layers: list[int],
                 combos: list[tuple[list[int], str]], base_params: dict,
                 poolings: list[str] | None = None) -> list[FeatureSet]:
    """Per pooling, the single ``layers`` then the ``combos``, as views of ``encoded``.

    Combinations use :func:`bertfeat.pooling.combine_layers`, the featurizer's own
    arithmetic, so each feature set equals what its ``featurizer_params`` compute.
    """
    sets = []
    for pooling in poolings if poolings is not None else list(encoded.arrays):
        for layer in layers:
            sets.append(FeatureSet(family, layer_label([layer], ""), pooling,
                                   encoded.block(pooling, layer),
                                   {**base_params, "layers": layer, "pooling": pooling},
                                   layer))
        for combo, combine in combos:
            X = combine_layers([encoded.block(pooling, layer) for layer in combo], combine)
            sets.append(FeatureSet(family, layer_label(combo, combine), pooling, X,
                                   {**base_params, "layers": list(combo), "pooling": pooling,
                                    "layer_combine": combine}, None))
    return sets


def bert_candidate(fs: FeatureSet, head_name: str, head: BaseEstimator, stage: str,
                   pipeline_params: dict, group: int = 0,
                   recommendable: bool = True) -> Candidate:
    """``BertFeaturizer(**fs.featurizer_params) -> head`` scored on the cached ``fs.X``."""
    params = {**fs.featurizer_params, **pipeline_params}

    def build(params=params, head=head) -> Pipeline:
        head_steps = [step for _, step in head.steps] if isinstance(head, Pipeline) else [head]
        return make_pipeline(BertFeaturizer(**params), *[clone(step) for step in head_steps])

    def refit(texts: list[str], y: np.ndarray) -> Pipeline:
        # the featurizer is per-text and stateless: fit it (no encoding), and fit the
        # head steps on the features the probe already holds
        pipe = build()
        pipe[0].fit(texts)
        pipe[1:].fit(fs.X, y)
        return pipe

    return Candidate(fs.family, fs.layer, fs.pooling, head_name, fs.X, clone(head), build,
                     stage, fs.layer_index, fs.X.shape[1], features=fs, refit=refit,
                     recommendable=recommendable, group=group)


def describe(row: Any) -> str:
    """A short name of a table row: ``L4 · mean pooling · logreg`` or ``TF-IDF + logreg``.

    Parameters
    ----------
    row : Mapping or pandas.Series
        A row of :attr:`ProbeResult.table`.

    Returns
    -------
    str
    """
    if row["family"] == "tfidf":
        return f"TF-IDF + {row['head']}"
    if row["family"] == "union":
        return f"TF-IDF ⊕ {row['layer']} · {row['pooling']} pooling · {row['head']}"
    prefix = "random weights " if row["family"] == "random" else ""
    return f"{prefix}{row['layer']} · {row['pooling']} pooling · {row['head']}"
