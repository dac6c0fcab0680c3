"""Layer probe: which layer, pooling and head of an encoder carry what a task needs.

:func:`probe` encodes every text once (every layer's pooled statistics go to the feature
store in one encoder pass), then scores *candidates* with standard scikit-learn
cross-validation on one fixed set of folds:

* **bert** -- one hidden state (0 = embedding output .. N = last layer) or a combination
  of the last four (concatenated, averaged) x a pooling x a head;
* **random** -- the same architecture with random weights (a fixed seed), through the same
  layers and poolings: how much of a score is knowledge transfer and how much is the head
  fitting surface features (the control of the probing literature);
* **tfidf** -- TF-IDF word n-grams + a linear model, the baseline every probe must beat;
* **union** -- TF-IDF ⊕ the best screened BERT feature set (:class:`~bertfeat.TextUnion`)
  + a linear model: on long, topical documents TF-IDF often carries what frozen encoder
  features miss, and the union lets one head use both. Its TF-IDF vocabulary and BERT
  scaler are fitted inside each training fold (no leakage), from the cached BERT block;
* **chunked** (``bert`` rows of stage ``chunk``) -- when some texts exceed ``max_length``
  and the featurizer has a ``long_text="chunk"`` mode, the best feature sets again with
  every text encoded as token windows pooled per document (one more encoder pass), next
  to their truncated versions.

The recommendation is the best of the ``bert`` (truncated or chunked), ``tfidf`` and
``union`` rows, so it never scores below the TF-IDF baseline the probe reports.

Every feature set is built from the store without running the encoder again (the
featurizer reads the statistics of any layer and pooling back), and a Pipeline
``BertFeaturizer -> head`` is per-text, so scoring the head on cached features is exactly
``cross_val_score`` of that Pipeline. The first head (the cheapest) screens every feature
set; the other heads refine only the ``refine_top`` best ones, which keeps the number of
fits small on a laptop.

Adding a candidate kind means adding a function that returns :class:`_Candidate` objects
(features or raw texts, the estimator to cross-validate on them, and a builder of the
equivalent Pipeline on raw texts); the scoring, table, plot and recommendation treat all
candidates alike.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.multiclass import type_of_target

from . import models
from .featurizer import BertFeaturizer
from .inputs import to_texts
from .pooling import pooling_width
from .store import DEFAULT_SIZE_LIMIT, FeatureStore, text_digest
from .union import TextUnion, default_tfidf

__all__ = ["probe", "ProbeResult", "describe", "pipeline_code", "random_init_model", "HEADS",
           "SWEEP_POOLINGS"]

#: poolings the layer sweep can build from stored statistics
SWEEP_POOLINGS = ("mean", "max", "cls", "mean_max", "first_last")
#: head names per task; "linear" is the cheapest and screens every feature set
HEADS = {
    "classification": ("logreg", "svm", "mlp"),
    "regression": ("ridge", "svm", "mlp"),
}
_LINEAR_ALIASES = {"logreg", "ridge", "linear"}
#: families a recommendation may come from (the random-weights model is a control only)
_RECOMMENDABLE = ("bert", "tfidf", "union")
#: regularisation strengths tried for the TF-IDF baseline and the TF-IDF ⊕ BERT union
_TFIDF_C = (1.0, 10.0, 100.0)
#: featurizer parameters of the chunked long-text mode (absent: the mode is not available)
_CHUNK_PARAMS = ("long_text", "chunk_stride", "max_chunks")
#: metrics in [0, 1] whose differences read as percentage points
_PROPORTION_METRICS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc",
                       "jaccard", "average_precision")
_RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


# ------------------------------------------------------------------------------ heads
def _make_head(name: str, task: str, random_state: int) -> BaseEstimator:
    """A fresh head estimator (scaling included) for ``task``."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    if task == "classification":
        if name in _LINEAR_ALIASES:
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        if name == "svm":
            return make_pipeline(StandardScaler(), SVC())
        if name == "mlp":
            return make_pipeline(StandardScaler(), MLPClassifier(
                hidden_layer_sizes=(256,), early_stopping=True, max_iter=300,
                random_state=random_state))
    else:
        if name in _LINEAR_ALIASES:
            return make_pipeline(StandardScaler(), RidgeCV(alphas=_RIDGE_ALPHAS))
        if name == "svm":
            return make_pipeline(StandardScaler(), TransformedTargetRegressor(
                regressor=SVR(), transformer=StandardScaler()))
        if name == "mlp":
            return make_pipeline(StandardScaler(), TransformedTargetRegressor(
                regressor=MLPRegressor(hidden_layer_sizes=(256,), early_stopping=True,
                                       max_iter=300, random_state=random_state),
                transformer=StandardScaler()))
    raise ValueError(
        f"unknown head {name!r}; use one of {HEADS[task]} (or 'linear'), or pass a dict "
        "{name: estimator} of your own heads")


def _resolve_heads(heads: Any, task: str, random_state: int) -> dict[str, BaseEstimator]:
    """Heads as an ordered ``{name: unfitted estimator}``; the first one screens."""
    if isinstance(heads, dict):
        if not heads:
            raise ValueError("heads must name at least one head")
        out = {}
        for name, est in heads.items():
            if isinstance(est, str):
                est = _make_head(est, task, random_state)
            if not hasattr(est, "fit"):
                raise TypeError(f"head {name!r} is not an estimator: {est!r}")
            out[str(name)] = est
        return out
    if isinstance(heads, str):
        heads = (heads,)
    names = list(heads)
    if not names:
        raise ValueError("heads must name at least one head")
    out = {}
    for name in names:
        est = _make_head(name, task, random_state)
        label = HEADS[task][0] if name in _LINEAR_ALIASES else name
        out[label] = est
    return out


# ------------------------------------------------------------------------- candidates
@dataclass
class _Candidate:
    """One thing to cross-validate.

    ``X`` is what ``estimator`` is cross-validated on (cached features, or the raw texts
    for text pipelines); ``build()`` returns the equivalent unfitted Pipeline on raw
    texts. For a per-text featurizer the two give the same scores on the same folds.
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
    dense: np.ndarray | None = None  # the cached BERT block of a union candidate

    @property
    def key(self) -> str:
        return f"{self.family}:{self.layer}:{self.pooling}:{self.head}"


@dataclass
class _FeatureSet:
    family: str
    layer: str
    pooling: str
    X: np.ndarray
    featurizer_params: dict
    layer_index: int | None


def _layer_label(layers: list[int], combine: str) -> str:
    """``L4``; ``L3-6 concat`` / ``L3-6 avg`` / ``L3-6 sum`` for combinations."""
    if len(layers) == 1:
        return f"L{layers[0]}"
    span = (f"L{layers[0]}-{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1))
            else "L" + "+".join(map(str, layers)))
    return f"{span} {'avg' if combine == 'mean' else combine}"


def _combos(spec: Any, n_layers: int) -> list[tuple[list[int], str]]:
    """Layer combinations: ``True`` = concat and mean of the last four transformer layers."""
    if spec is False or spec is None:
        return []
    if spec is True:
        k = min(4, n_layers)
        if k < 2:
            return []
        last = list(range(n_layers - k + 1, n_layers + 1))
        return [(last, "concat"), (last, "mean")]
    out = []
    for item in spec:
        layers, combine = item
        resolved = [int(v) if int(v) >= 0 else n_layers + 1 + int(v) for v in layers]
        if any(not 0 <= v <= n_layers for v in resolved) or len(resolved) < 2:
            raise ValueError(f"combos: {layers!r} must name 2+ layers in 0..{n_layers}")
        if combine not in ("concat", "mean", "sum"):
            raise ValueError(f"combos: combine must be concat, mean or sum, got {combine!r}")
        out.append((sorted(resolved), combine))
    return out


def _feature_sets(family: str, all_layers: dict[str, np.ndarray], hidden: int,
                  layers: list[int], combos: list[tuple[list[int], str]],
                  base_params: dict) -> list[_FeatureSet]:
    """Views of one (n, (N+1) * width) array per pooling: one block per layer/combo."""
    sets = []
    for pooling, full in all_layers.items():
        width = pooling_width(pooling, hidden)

        def block(layer: int, full=full, width=width) -> np.ndarray:
            return full[:, layer * width:(layer + 1) * width]

        for layer in layers:
            sets.append(_FeatureSet(family, _layer_label([layer], ""), pooling, block(layer),
                                    {**base_params, "layers": layer, "pooling": pooling},
                                    layer))
        for combo, combine in combos:
            blocks = [block(layer) for layer in combo]
            if combine == "concat":
                X = np.concatenate(blocks, axis=1)
            else:  # the featurizer's own arithmetic, so features match bit for bit
                X = np.sum(blocks, axis=0, dtype=np.float32)
                if combine == "mean":
                    X /= np.float32(len(blocks))
            sets.append(_FeatureSet(family, _layer_label(combo, combine), pooling, X,
                                    {**base_params, "layers": list(combo), "pooling": pooling,
                                     "layer_combine": combine}, None))
    return sets


def _bert_candidate(fs: _FeatureSet, head_name: str, head: BaseEstimator, stage: str,
                    pipeline_params: dict) -> _Candidate:
    params = {**fs.featurizer_params, **pipeline_params}

    def build(params=params, head=head) -> Pipeline:
        head_steps = [step for _, step in head.steps] if isinstance(head, Pipeline) else [head]
        return make_pipeline(BertFeaturizer(**params), *[clone(step) for step in head_steps])

    return _Candidate(fs.family, fs.layer, fs.pooling, head_name, fs.X, clone(head), build,
                      stage, fs.layer_index, fs.X.shape[1])


def _tfidf_candidates(texts: np.ndarray, task: str) -> list[_Candidate]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, RidgeCV

    def vectorizer() -> TfidfVectorizer:
        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)

    out = []
    if task == "classification":
        for C in _TFIDF_C:
            def build(C=C) -> Pipeline:
                return make_pipeline(vectorizer(), LogisticRegression(C=C, max_iter=1000))
            out.append(_Candidate("tfidf", "-", "-", f"logreg C={C:g}", texts, build(),
                                  build, "baseline"))
    else:
        def build() -> Pipeline:
            return make_pipeline(vectorizer(), RidgeCV(alphas=_RIDGE_ALPHAS))
        out.append(_Candidate("tfidf", "-", "-", "ridge", texts, build(), build, "baseline"))
    return out


class _UnionData:
    """Texts, cached BERT blocks and per-fold TF-IDF fits shared by the union candidates.

    ``clone`` deep-copies estimator parameters; this object returns itself from
    ``__deepcopy__`` so every clone of a union candidate shares the fits. A TF-IDF fit is
    keyed by its parameters and the exact training rows, so a fold only ever sees a
    vocabulary fitted on its own training rows, and the candidates of one probe (several
    heads, several BERT blocks) fit each fold's vocabulary once.
    """

    def __init__(self, texts: np.ndarray) -> None:
        self.texts = texts
        self.blocks: dict[str, np.ndarray] = {}
        self._fits: dict[tuple, tuple[Any, Any]] = {}
        self._transforms: dict[tuple, Any] = {}

    def __deepcopy__(self, memo: dict) -> _UnionData:
        return self

    @staticmethod
    def _key(tfidf: BaseEstimator, rows: np.ndarray) -> tuple[str, str]:
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        return repr(sorted(tfidf.get_params().items())), hashlib.sha1(rows.tobytes()).hexdigest()

    def fit(self, tfidf: BaseEstimator, rows: np.ndarray) -> tuple[tuple, Any, Any]:
        """``(key, fitted vectorizer, matrix of the rows)`` for the training ``rows``."""
        key = self._key(tfidf, rows)
        if key not in self._fits:
            vec = clone(tfidf)
            self._fits[key] = (vec, vec.fit_transform(list(self.texts[rows])))
        vec, matrix = self._fits[key]
        return key, vec, matrix

    def transform(self, key: tuple, vec: Any, rows: np.ndarray) -> Any:
        """The rows' TF-IDF under the vocabulary fitted as ``key``."""
        tkey = (key, self._key(vec, rows)[1])
        if tkey not in self._transforms:
            self._transforms[tkey] = vec.transform(list(self.texts[rows]))
        return self._transforms[tkey]


class _CachedUnion(TextUnion):
    """:class:`~bertfeat.TextUnion` on row indices, reading a cached BERT block.

    ``X`` is a column of row numbers into ``data.texts``; the output is exactly what
    ``TextUnion(bert=<featurizer of that block>)`` gives on those texts, so cross-validating
    a Pipeline of this and a head scores the same as the TextUnion Pipeline on raw texts.
    """

    def __init__(self, data: _UnionData | None = None, block: str = "", bert: Any = None,
                 tfidf: Any = None, bert_weight: float = 1.0, tfidf_weight: float = 1.0,
                 scale_bert: bool = True) -> None:
        super().__init__(bert=bert, tfidf=tfidf, bert_weight=bert_weight,
                         tfidf_weight=tfidf_weight, scale_bert=scale_bert)
        self.data = data
        self.block = block

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        from sklearn.preprocessing import StandardScaler

        self._check()
        rows = np.asarray(X).ravel().astype(np.int64)
        tfidf = self.tfidf if self.tfidf is not None else default_tfidf()
        self.fit_key_, self.tfidf_, lexical = self.data.fit(tfidf, rows)
        dense = self.data.blocks[self.block][rows]
        self.scaler_ = StandardScaler().fit(dense) if self.scale_bert else None
        self.n_features_out_ = lexical.shape[1] + dense.shape[1]
        return self._join(lexical, dense)

    def transform(self, X: Any) -> Any:
        rows = np.asarray(X).ravel().astype(np.int64)
        lexical = self.data.transform(self.fit_key_, self.tfidf_, rows)
        return self._join(lexical, self.data.blocks[self.block][rows])


def _union_candidates(fs: _FeatureSet, data: _UnionData, task: str,
                      pipeline_params: dict) -> list[_Candidate]:
    """TF-IDF ⊕ one BERT feature set, + LogisticRegression (C grid) or RidgeCV."""
    from sklearn.linear_model import LogisticRegression, RidgeCV

    block = f"{fs.family}:{fs.layer}:{fs.pooling}"
    data.blocks[block] = fs.X
    params = {**fs.featurizer_params, **pipeline_params}
    rows = np.arange(len(data.texts)).reshape(-1, 1)
    if task == "classification":
        heads = [(f"logreg C={C:g}", lambda C=C: LogisticRegression(C=C, max_iter=1000))
                 for C in _TFIDF_C]
    else:
        heads = [("ridge", lambda: RidgeCV(alphas=_RIDGE_ALPHAS))]
    out = []
    for name, head in heads:
        def build(head=head) -> Pipeline:
            return make_pipeline(TextUnion(bert=BertFeaturizer(**params)), head())

        estimator = make_pipeline(_CachedUnion(data, block), head())
        out.append(_Candidate("union", fs.layer, fs.pooling, name, rows, estimator, build,
                              "union", fs.layer_index, None, dense=fs.X))
    return out


def chunking_available() -> bool:
    """Whether :class:`~bertfeat.BertFeaturizer` has the ``long_text="chunk"`` mode.

    Returns
    -------
    bool
    """
    return "long_text" in BertFeaturizer().get_params()


def _truncated_count(store: FeatureStore, base: BertFeaturizer, texts: list[str]) -> int:
    """Distinct texts that the (truncating) encoder pass had to cut to ``max_length``."""
    unique = list(dict.fromkeys(texts))
    hit = store.read(base.fingerprint_, [text_digest(t) for t in unique], [0],
                     base.hidden_size_)
    return int(np.asarray(hit.truncated, dtype=bool).sum())


# --------------------------------------------------------------------- random weights
def random_init_model(model: str = "default", *, seed: int = 0, directory: str | os.PathLike,
                      revision: str | None = None, trust_remote_code: bool = False) -> str:
    """Save a randomly initialised copy of a model's architecture (same tokenizer).

    Parameters
    ----------
    model : str, default="default"
        The model whose config and tokenizer are copied.
    seed : int, default=0
        Seed of the initialisation; the same seed gives the same weights.
    directory : str or path
        Parent directory; the model goes to a sub-directory named after a digest of the
        config, tokenizer and seed, and is reused when it exists.
    revision : str, optional
        Hub revision of ``model``.
    trust_remote_code : bool, default=False
        Passed to transformers.

    Returns
    -------
    str
        The model directory, usable as ``BertFeaturizer(model=...)``.
    """
    info = models.resolve_model(model, revision)
    hasher = hashlib.sha256()
    hasher.update((info.path / "config.json").read_bytes())
    tokenizer_files = [info.path / name for name in models._TOKENIZER_FILES
                       if (info.path / name).exists()]
    for file in tokenizer_files:
        hasher.update(file.name.encode() + b"\0" + file.read_bytes())
    hasher.update(f"seed={seed}".encode())
    parent = Path(directory)
    target = parent / f"{info.model_type or 'model'}-{hasher.hexdigest()[:16]}"
    if (target / "config.json").exists():
        return str(target)
    import torch
    from transformers import AutoConfig, AutoModel

    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with models._quiet_transformers():
            config = AutoConfig.from_pretrained(str(info.path),
                                                trust_remote_code=trust_remote_code)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
            net.save_pretrained(str(tmp))
        for file in tokenizer_files:
            shutil.copyfile(file, tmp / file.name)
        try:
            os.replace(tmp, target)
        except OSError:  # another process made it first
            if not (target / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


# ------------------------------------------------------------------------------ result
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


class ProbeResult:
    """What :func:`probe` found.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate, best first, with columns ``rank``, ``family`` (``bert``,
        ``tfidf``, ``union`` or ``random``), ``layer`` (``L4``, ``L3-6 concat`` ...;
        ``L4 chunked`` for the chunked long-text mode),
        ``layer_index`` (hidden state for single layers, else NA), ``pooling``, ``head``,
        ``mean_score``, ``std_score`` (across folds), ``fit_time`` and ``score_time``
        (seconds per fold), ``n_features``, ``stage`` (``screen``, ``refine``,
        ``chunk``, ``union``, ``control`` or ``baseline``) and ``candidate`` (a unique
        key).
    best : pandas.Series
        The best row among the ``bert``, ``tfidf`` and ``union`` candidates: never below
        the TF-IDF baseline when that ran.
    best_estimator : Pipeline or None
        The best configuration **fitted on all the data** (when ``refit=True``), a
        Pipeline on raw texts ready for ``predict``.
    best_code : str
        Python lines that build the best Pipeline (unfitted).
    baselines : dict
        ``last_layer`` (last layer, mean pooling, screening head), ``tfidf`` (best TF-IDF
        row), ``random`` (best random-weights row); a value is None when not run.
    families : dict
        Best score per kind of candidate: ``bert`` (truncated texts), ``chunked``,
        ``tfidf``, ``union``, ``random``; None when not run.
    encoding : dict
        ``texts``, ``unique_texts``, ``encoded`` (texts the encoder ran on, from the
        store's ``encoded`` counter: 0 when every text was already stored, never more than
        ``unique_texts``), ``random_encoded``, ``fingerprint``, ``seconds``;
        ``truncated`` (distinct texts longer than ``max_length``), ``chunk`` (whether and
        why the chunked candidates ran), ``chunk_encoded``, ``chunk_seconds``.
    task : str
        ``classification`` or ``regression``.
    scoring : str
        The metric (``accuracy``, ``r2`` or the one given).
    n_splits : int
        Folds used by every candidate.
    n_layers : int
        Transformer layers of the model.
    model : str
        The model spec.
    timings : dict
        Seconds spent encoding, screening, refining, on baselines and refitting.
    """

    def __init__(self, *, table: pd.DataFrame, candidates: dict[str, _Candidate],
                 task: str, scoring: str, n_splits: int, n_layers: int, model: str,
                 encoding: dict, timings: dict, best_estimator: Pipeline | None) -> None:
        self.table = table
        self._candidates = candidates
        self.task = task
        self.scoring = scoring
        self.n_splits = n_splits
        self.n_layers = n_layers
        self.model = model
        self.encoding = encoding
        self.timings = timings
        self.best_estimator = best_estimator
        recommendable = table[table["family"].isin(_RECOMMENDABLE)]
        if recommendable.empty:
            raise ValueError("probe scored no BERT or TF-IDF candidate")
        self.best = recommendable.iloc[0]
        self.baselines = {
            "last_layer": self._score_of(
                (table["family"] == "bert") & (table["layer"] == f"L{n_layers}")
                & (table["pooling"] == "mean") & (table["stage"] == "screen")),
            "tfidf": self._score_of(table["family"] == "tfidf"),
            "random": self._score_of(table["family"] == "random"),
        }
        chunked = table["stage"] == "chunk"
        self.families = {
            "bert": self._score_of((table["family"] == "bert") & ~chunked),
            "chunked": self._score_of(chunked),
            "tfidf": self.baselines["tfidf"],
            "union": self._score_of(table["family"] == "union"),
            "random": self.baselines["random"],
        }

    def _score_of(self, mask: pd.Series) -> float | None:
        rows = self.table[mask]
        return None if rows.empty else float(rows["mean_score"].max())

    def __repr__(self) -> str:
        return (f"ProbeResult(best={describe(self.best)}: {self.scoring}="
                f"{self.best['mean_score']:.4f}, {len(self.table)} candidates)")

    # -- pipelines ---------------------------------------------------------------------
    def make_pipeline(self, candidate: str | None = None) -> Pipeline:
        """An unfitted Pipeline on raw texts for the best (or a named) candidate.

        Parameters
        ----------
        candidate : str, optional
            A value of the ``candidate`` column; default: the best.

        Returns
        -------
        Pipeline
        """
        key = self.best["candidate"] if candidate is None else candidate
        if key not in self._candidates:
            raise KeyError(f"no candidate {key!r}; see result.table['candidate']")
        return self._candidates[key].build()

    @property
    def best_code(self) -> str:
        """Python that builds the best Pipeline (unfitted)."""
        return pipeline_code(self.make_pipeline())

    # -- reporting ---------------------------------------------------------------------
    def summary(self, top: int = 12) -> str:
        """A readable report: the ``top`` rows (best first), baselines and the winner.

        Parameters
        ----------
        top : int, default=12
            Rows of the table to show (the baselines are always listed below it).

        Returns
        -------
        str
        """
        metric = self.scoring
        lines = []
        shown = self.table.head(top)
        header = (f"{'rank':>4}  {'family':<6}  {'layer':<14}  {'pooling':<8}  "
                  f"{'head':<13}  {metric + ' (mean ± std)':<22}  {'fit s':>6}")
        lines.append(header)
        lines.append("-" * len(header))
        for _, row in shown.iterrows():
            lines.append(
                f"{row['rank']:>4}  {row['family']:<6}  {row['layer']:<14}  "
                f"{row['pooling']:<8}  {row['head']:<13}  "
                f"{row['mean_score']:.4f} ± {row['std_score']:.4f}{'':<5}  "
                f"{row['fit_time']:>6.2f}")
        if len(self.table) > top:
            lines.append(f"... {len(self.table) - top} more rows in the CSV")
        lines.append("")
        best = self.best
        b = self.baselines

        def fmt(value: float | None) -> str:
            return "not run" if value is None else f"{value:.4f}"

        lines.append(f"last layer (L{self.n_layers}, mean, {self._screen_head()}): "
                     f"{fmt(b['last_layer'])}   TF-IDF + linear: {fmt(b['tfidf'])}   "
                     f"random-weights control (best): {fmt(b['random'])}")
        fam = self.families
        lines.append(f"best BERT (truncated): {fmt(fam['bert'])}   chunked long texts: "
                     f"{fmt(fam['chunked'])}   TF-IDF ⊕ best layer: {fmt(fam['union'])}")
        note = self.encoding.get("chunk")
        if note:
            lines.append(f"long texts: {note}")
        proportion = metric.startswith(_PROPORTION_METRICS)
        gains = []
        for name, label in (("last_layer", "last layer"), ("tfidf", "TF-IDF"),
                            ("random", "random weights")):
            if b[name] is not None:
                diff = best["mean_score"] - b[name]
                gains.append(f"{100 * diff:+.1f} points vs {label}" if proportion
                             else f"{diff:+.4f} vs {label}")
        lines.append(f"best: {describe(best)}  "
                     f"{metric} {best['mean_score']:.4f} ± {best['std_score']:.4f}"
                     + (f"  ({', '.join(gains)})" if gains else ""))
        return "\n".join(lines)

    def _focus_y(self, ax: Any, screen: pd.DataFrame, singles: pd.DataFrame,
                 combo_x: dict) -> None:
        """Zoom the y axis on the informative range; name the points left below it.

        A degenerate feature set (e.g. the ``[CLS]`` vector of the embedding layer, the
        same for every text) would otherwise squash every other line to the top.
        """
        scores = screen["mean_score"].to_numpy(dtype=float)
        if len(scores) == 0:
            return
        refs = [v for v in self.baselines.values() if v is not None]
        top = max([float(scores.max()), float(self.best["mean_score"]), *refs])
        low = min([float(np.quantile(scores, 0.1)), *refs])
        pad = 0.08 * max(top - low, 1e-3)
        floor = low - pad
        if float(scores.min()) >= floor:
            return
        ax.set_ylim(floor, top + pad)
        clipped = screen[screen["mean_score"] < floor]
        notes = []
        for _, row in clipped.iterrows():
            x = (float(row["layer_index"]) if pd.notna(row["layer_index"])
                 else combo_x.get(row["layer"], 0.0))
            ax.annotate("", xy=(x, floor + 0.15 * pad), xytext=(x, floor + 0.9 * pad),
                        arrowprops={"arrowstyle": "->", "color": "0.4"})
            notes.append(f"{row['layer']} {row['pooling']} {row['mean_score']:.3f}")
        ax.text(0.99, 0.01, "below the axis: " + ", ".join(notes[:4])
                + (" ..." if len(notes) > 4 else ""), transform=ax.transAxes, fontsize=7,
                color="0.35", va="bottom", ha="right")

    def _screen_head(self) -> str:
        screen = self.table[self.table["stage"] == "screen"]
        return str(screen["head"].iloc[0]) if len(screen) else "-"

    def plot(self, path: str | os.PathLike | None = None, ax: Any = None, title: str | None = None):
        """Score per layer, one line per pooling, baselines as horizontal lines.

        Lines show the screening head (the one that saw every layer), with a band of
        ± one standard deviation across folds; layer combinations are drawn as points to
        the right; the best configuration is starred.

        Parameters
        ----------
        path : str or path, optional
            Write a PNG there (no pyplot or global backend change is involved).
        ax : matplotlib Axes, optional
            Draw into this Axes instead of a new Figure.
        title : str, optional
            Figure title.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(10.0, 4.8), dpi=110)
            ax = fig.add_subplot(1, 1, 1)
        else:
            fig = ax.figure
        table = self.table
        screen = table[(table["family"] == "bert") & (table["stage"] == "screen")]
        singles = screen[screen["layer_index"].notna()]
        combos = screen[screen["layer_index"].isna()]
        combo_labels = list(dict.fromkeys(combos["layer"]))
        n = self.n_layers
        combo_x = {label: n + 1.5 + i for i, label in enumerate(combo_labels)}
        # one colour per pooling, the same in every plot
        colors = {p: f"C{i}" for i, p in enumerate(SWEEP_POOLINGS)}
        present = set(singles["pooling"])
        for pooling in [p for p in SWEEP_POOLINGS if p in present]:
            group = singles[singles["pooling"] == pooling].sort_values("layer_index")
            x = group["layer_index"].to_numpy(dtype=float)
            yv = group["mean_score"].to_numpy(dtype=float)
            sd = group["std_score"].to_numpy(dtype=float)
            ax.plot(x, yv, marker="o", markersize=4, linewidth=1.8, label=pooling,
                    color=colors[pooling])
            ax.fill_between(x, yv - sd, yv + sd, color=colors[pooling], alpha=0.12,
                            linewidth=0)
        for _, row in combos.iterrows():
            ax.plot([combo_x[row["layer"]]], [row["mean_score"]], marker="D", markersize=5,
                    linestyle="none", color=colors.get(row["pooling"], "k"))
        for name, style, label in (("tfidf", "--", "TF-IDF + linear"),
                                   ("random", ":", "random weights (best)")):
            value = self.baselines[name]
            if value is not None:
                ax.axhline(value, color="0.35" if name == "tfidf" else "0.6",
                           linestyle=style, linewidth=1.4, label=f"{label} {value:.3f}")
        best = self.best
        if best["family"] == "bert":
            bx = (float(best["layer_index"]) if pd.notna(best["layer_index"])
                  else combo_x.get(best["layer"]))
            if bx is not None:
                ax.plot([bx], [best["mean_score"]], marker="*", markersize=16,
                        color="gold", markeredgecolor="k", linestyle="none",
                        label=f"best: {describe(best)} {best['mean_score']:.3f}", zorder=5)
        self._focus_y(ax, screen, singles, combo_x)
        ticks = list(range(n + 1)) + list(combo_x.values())
        labels = ["emb" if i == 0 else str(i) for i in range(n + 1)]
        labels += [label.replace(" ", "\n") for label in combo_x]
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels)
        ax.set_xlabel("layer (hidden state; combinations on the right)")
        head = self._screen_head()
        ax.set_ylabel(f"{self.scoring} ({self.n_splits}-fold CV, {head} head)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.set_title(title or f"bertfeat probe: {self.model}")
        fig.tight_layout()
        if path is not None:
            fig.savefig(os.fspath(path))
        return fig


# ---------------------------------------------------------------------- code printing
def _public_module(cls: type) -> str:
    module = cls.__module__
    if module.split(".")[0] == "bertfeat":
        return "bertfeat"
    parts = []
    for part in module.split("."):
        if part.startswith("_"):
            break
        parts.append(part)
    return ".".join(parts)


def _value_code(value: Any, imports: set[str]) -> str:
    if isinstance(value, BaseEstimator):
        return _estimator_code(value, imports)
    if isinstance(value, FeatureStore):  # a directory names the same store
        if value.size_limit == DEFAULT_SIZE_LIMIT:
            return repr(value.directory)
        imports.add("from bertfeat import FeatureStore")
        return f"FeatureStore({value.directory!r}, size_limit={value.size_limit})"
    if isinstance(value, os.PathLike):  # a PosixPath repr would not run as printed
        return repr(os.fspath(value))
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    if isinstance(value, (np.floating, np.integer)):
        return repr(value.item())
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _estimator_code(est: BaseEstimator, imports: set[str]) -> str:
    if isinstance(est, Pipeline):
        imports.add("from sklearn.pipeline import make_pipeline")
        return "make_pipeline(" + ", ".join(_estimator_code(step, imports)
                                            for _, step in est.steps) + ")"
    cls = type(est)
    imports.add(f"from {_public_module(cls)} import {cls.__name__}")
    signature = inspect.signature(cls.__init__)
    args = []
    params = est.get_params(deep=False)
    order = [name for name in signature.parameters if name in params]
    for name in order + sorted(set(params) - set(order)):
        value = params[name]
        param = signature.parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty \
                and _same(value, param.default):
            continue
        args.append(f"{name}={_value_code(value, imports)}")
    return f"{cls.__name__}({', '.join(args)})"


def pipeline_code(pipeline: BaseEstimator, name: str = "pipe") -> str:
    """Python lines (imports, then one assignment) that build ``pipeline`` unfitted.

    Parameters
    ----------
    pipeline : estimator
        Usually a Pipeline from :meth:`ProbeResult.make_pipeline`.
    name : str, default="pipe"
        Variable name assigned.

    Returns
    -------
    str
    """
    imports: set[str] = set()
    body = _estimator_code(pipeline, imports)
    return "\n".join(sorted(imports) + [f"{name} = {body}"])


# ------------------------------------------------------------------------------ probe
def _infer_task(y: np.ndarray, task: str) -> str:
    if task not in ("auto", "classification", "regression"):
        raise ValueError(f"task must be 'auto', 'classification' or 'regression', got {task!r}")
    if task != "auto":
        return task
    kind = type_of_target(y)
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind == "continuous":
        return "regression"
    raise ValueError(f"y must be one label or one number per text; got a {kind!r} target")


def _splits(cv: Any, task: str, y: np.ndarray, n: int, random_state: int) -> list:
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        if cv < 2:
            raise ValueError(f"cv must be >= 2, got {cv}")
        if task == "classification":
            labels, counts = np.unique(y, return_counts=True)
            if len(labels) < 2:
                raise ValueError("y holds a single class; a probe needs at least two")
            if counts.min() < cv:
                rare = labels.tolist()[counts.argmin()]  # 9.0, not np.float64(9.0)
                numbers = np.asarray(y).dtype.kind == "f"  # 3.0, 4.5 ... read as classes
                raise ValueError(
                    f"class {rare!r} has only {counts.min()} example(s), fewer than cv={cv} "
                    "folds; lower cv, drop rare classes, or pass a splitter as cv"
                    + ("; if y holds numbers to predict, not classes, pass task='regression' "
                       "(bertfeat probe --task regression)" if numbers else ""))
            splitter = StratifiedKFold(int(cv), shuffle=True, random_state=random_state)
        else:
            splitter = KFold(int(cv), shuffle=True, random_state=random_state)
        return list(splitter.split(np.zeros(n), y))
    if hasattr(cv, "split"):
        return list(cv.split(np.zeros(n), y))
    return list(cv)  # an iterable of (train, test) index pairs


def _resolve_store(cache: Any) -> tuple[FeatureStore, tempfile.TemporaryDirectory | None]:
    """The store the probe reads and writes; a temporary one when caching is off."""
    if isinstance(cache, FeatureStore):
        return cache, None
    if cache in ("auto", True):
        return FeatureStore(), None
    if cache in (None, False):
        tmp = tempfile.TemporaryDirectory(prefix="bertfeat-probe-")
        return FeatureStore(tmp.name), tmp
    if isinstance(cache, (str, os.PathLike)):
        return FeatureStore(cache), None
    raise TypeError(f"cache must be 'auto', a directory, a FeatureStore, False or None, "
                    f"got {type(cache).__name__}")


def _encoded_count(store: FeatureStore, fingerprint: str) -> int:
    return int(store.stats()["models"].get(fingerprint, {}).get("encoded", 0))


def _encode_all_layers(texts: list[str], model: str, poolings: Sequence[str],
                       store: FeatureStore, params: dict) -> tuple[dict, BertFeaturizer, int]:
    """One encoder pass over every layer; then one store read per pooling.

    Returns ``{pooling: (n, (N+1) * width) array}``, the fitted featurizer, and how many
    texts the encoder ran on (from the store's counter).
    """
    base = BertFeaturizer(model=model, layers="all", pooling=poolings[0], cache=store,
                          **params).fit(texts)
    before = _encoded_count(store, base.fingerprint_)
    out = {}
    for pooling in poolings:
        feat = clone(base).set_params(pooling=pooling).fit(texts)
        out[pooling] = feat.transform(texts)
    return out, base, _encoded_count(store, base.fingerprint_) - before


def _chunk_sets(texts: list[str], model: str, params: dict, store: FeatureStore,
                base: BertFeaturizer, best: list[_FeatureSet], encoding: dict, chunk: bool,
                say: Callable[[str], None]) -> list[_FeatureSet]:
    """The ``best`` feature sets again from a chunked encoder pass, when that can matter.

    Records in ``encoding`` how many texts the truncating pass cut (``truncated``) and
    why chunked candidates did or did not run (``chunk``).
    """
    truncated = _truncated_count(store, base, texts)
    encoding["truncated"] = truncated
    limit = base.max_length_
    mode = params.get("long_text", "truncate")
    if mode != "truncate":
        encoding["chunk"] = (f"every text encoded with long_text={mode!r}; no truncated "
                             "version to compare")
        return []
    if truncated == 0:
        encoding["chunk"] = (f"no text is longer than max_length={limit} tokens; chunked "
                             "pooling not tried (it would equal truncation)")
        return []
    head = f"{truncated:,} distinct texts are longer than max_length={limit} tokens"
    if not chunk:
        encoding["chunk"] = f"{head}; chunked pooling not tried (chunk=False)"
        return []
    if not chunking_available():
        encoding["chunk"] = (f"{head}; chunked pooling not tried (this BertFeaturizer has "
                             "no long_text='chunk' mode)")
        return []
    if not best:
        encoding["chunk"] = f"{head}; no feature set to try in chunks"
        return []
    t0 = time.perf_counter()
    cparams = {**params, "long_text": "chunk"}
    poolings = list(dict.fromkeys(fs.pooling for fs in best))
    say(f"{head}: encoding every text in chunks (long_text='chunk') for "
        + ", ".join(f"{fs.layer} {fs.pooling}" for fs in best))
    c_layers, cbase, c_encoded = _encode_all_layers(texts, model, poolings, store, cparams)
    singles = sorted({fs.layer_index for fs in best if fs.layer_index is not None})
    combos = [(fs.featurizer_params["layers"], fs.featurizer_params["layer_combine"])
              for fs in best if fs.layer_index is None]
    wanted = {(fs.layer, fs.pooling) for fs in best}
    out = []
    for fs in _feature_sets("bert", c_layers, cbase.hidden_size_, singles,
                            [(list(c), m) for c, m in
                             dict.fromkeys((tuple(c), m) for c, m in combos)],
                            {"model": model, **cparams}):
        if (fs.layer, fs.pooling) in wanted:
            fs.layer = f"{fs.layer} chunked"
            out.append(fs)
    encoding["chunk_encoded"] = c_encoded
    encoding["chunk_seconds"] = time.perf_counter() - t0
    encoding["chunk"] = (f"{head}: the {len(out)} best feature set(s) also scored with "
                         f"long_text='chunk' ({c_encoded:,} texts encoded in chunks, "
                         f"{encoding['chunk_seconds']:.1f} s)")
    return out


def _cv_score(candidate: _Candidate, y: np.ndarray, splits: list, scoring: Any,
              n_jobs: int | None) -> dict:
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # one BLAS thread per fit: small matrices gain nothing from threads, and on a
        # busy machine oversubscribed BLAS is ten times slower
        with threadpool_limits(1):
            res = cross_validate(candidate.estimator, candidate.X, y, cv=splits,
                                 scoring=scoring, n_jobs=n_jobs, error_score="raise")
    return {
        "mean_score": float(np.mean(res["test_score"])),
        "std_score": float(np.std(res["test_score"])),
        "fit_time": float(np.mean(res["fit_time"])),
        "score_time": float(np.mean(res["score_time"])),
    }


def _row(candidate: _Candidate, scores: dict) -> dict:
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


def probe(
    texts: Any,
    y: Any,
    model: str = "default",
    layers: str | Sequence[int] = "all",
    poolings: Sequence[str] = ("cls", "mean", "max"),
    heads: Sequence[str] | dict = ("logreg", "svm", "mlp"),
    cv: Any = 5,
    scoring: Any = None,
    random_control: bool = True,
    cache: Any = "auto",
    *,
    combos: Any = True,
    tfidf: bool = True,
    union: bool | None = None,
    chunk: bool = True,
    refine_top: int = 3,
    union_top: int = 1,
    chunk_top: int = 2,
    task: str = "auto",
    random_state: int = 0,
    control_seed: int = 0,
    n_jobs: int | None = None,
    refit: bool = True,
    featurizer_params: dict | None = None,
    verbose: bool = False,
) -> ProbeResult:
    """Find the layer, pooling and head of an encoder that suit a task, in one encoder pass.

    Every text is encoded once (all layers' pooled statistics are stored), then every
    candidate is scored by cross-validation on the **same folds**: single layers and
    combinations of the last four (concat, mean) x ``poolings`` with the first head;
    the other heads on the ``refine_top`` best of those; the same layers of a
    randomly initialised copy of the model (control); TF-IDF + a linear model; TF-IDF ⊕
    the best BERT feature set (:class:`~bertfeat.TextUnion`) + a linear model; and, when
    some texts are longer than ``max_length``, the best feature sets encoded in chunks
    (``long_text="chunk"``) next to their truncated versions. The recommendation is the
    best ``bert``, ``tfidf`` or ``union`` candidate.

    Parameters
    ----------
    texts : sequence of str, Series or 1-column DataFrame
        One text per row.
    y : array-like of shape (n,)
        Labels (classification) or numbers (regression).
    model : str, default="default"
        Model spec as for :class:`~bertfeat.BertFeaturizer`.
    layers : "all" or list of int, default="all"
        Hidden states to sweep (0 = embedding output, negative counts from the end).
    poolings : sequence of str, default=("cls", "mean", "max")
        Any of :data:`SWEEP_POOLINGS`.
    heads : sequence of str or dict, default=("logreg", "svm", "mlp")
        Head names (``logreg``/``linear``, ``svm``, ``mlp``; for regression targets they
        mean RidgeCV, SVR and MLPRegressor), or ``{name: estimator}``. The first head
        screens every feature set, so it should be the cheapest.
    cv : int, splitter or iterable of splits, default=5
        An int means ``StratifiedKFold`` (classification) or ``KFold`` (regression),
        shuffled with ``random_state``. The same folds serve every candidate.
    scoring : str or callable, optional
        Default: ``accuracy`` (classification) or ``r2`` (regression).
    random_control : bool, default=True
        Also score the random-weights copy of the model (one more encoder pass; the
        model is saved once next to the store, under ``random-init/``).
    cache : "auto", path, FeatureStore, False or None, default="auto"
        The feature store. ``False``/``None`` uses a temporary store for the run (the
        texts are still encoded once) and gives the recommended Pipeline ``cache=False``.
    combos : bool or list of (layers, combine), default=True
        Layer combinations: ``True`` = the last four transformer layers concatenated and
        averaged.
    tfidf : bool, default=True
        Score the TF-IDF (word 1-2 grams, sublinear tf) + LogisticRegression baseline
        (C in 1, 10, 100; RidgeCV for regression).
    union : bool, optional
        Score TF-IDF ⊕ BERT unions: ``TextUnion(bert=<feature set>)`` +
        LogisticRegression (C in 1, 10, 100; RidgeCV for regression) on the ``union_top``
        best feature sets (screening head, truncated or chunked). The TF-IDF vocabulary
        and the BERT scaler are fitted on each training fold only; the BERT block comes
        from the encoder pass already made. Default: the value of ``tfidf``.
    chunk : bool, default=True
        When some texts were truncated to ``max_length`` and
        :class:`~bertfeat.BertFeaturizer` has the ``long_text="chunk"`` mode, encode the
        texts once more in chunks and score the ``chunk_top`` best feature sets (screening
        head) on chunk-pooled vectors. Skipped, with a note in ``result.encoding["chunk"]``,
        when no text is truncated (chunking would change nothing) or the mode is missing.
    refine_top : int, default=3
        Feature sets (by the screening score) that the other heads are tried on.
    union_top : int, default=1
        Feature sets the TF-IDF ⊕ BERT union is built on.
    chunk_top : int, default=2
        Feature sets tried in chunked form.
    task : {"auto", "classification", "regression"}, default="auto"
        ``auto`` reads it from ``y`` (floats that are not whole numbers: regression).
    random_state : int, default=0
        Seed of the folds and the MLP heads.
    control_seed : int, default=0
        Seed of the random-weights model (kept apart from ``random_state`` so that new
        folds reuse the stored control vectors).
    n_jobs : int, optional
        Processes for each cross-validation (joblib).
    refit : bool, default=True
        Fit the best configuration on all the data (``result.best_estimator``).
    featurizer_params : dict, optional
        Further :class:`~bertfeat.BertFeaturizer` parameters (``max_length``,
        ``precision``, ``device``, ``batch_size`` ...), used for the sweep and carried
        into the recommended Pipeline.
    verbose : bool, default=False
        Report progress on stderr.

    Returns
    -------
    ProbeResult
        ``.table`` (tidy DataFrame, best first), ``.best``, ``.best_estimator`` (fitted on
        all data when ``refit``), ``.make_pipeline()`` (unfitted), ``.best_code``,
        ``.baselines``, ``.encoding``, ``.plot()``, ``.summary()``.

    Examples
    --------
    >>> from bertfeat.probe import probe
    >>> from bertfeat.datasets import load_dataset
    >>> df = load_dataset("sms_spam").sample(400, random_state=0)
    >>> result = probe(df["text"], df["label"])  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    >>> result.best_estimator.predict(["WIN a free prize now!"])  # doctest: +SKIP
    """
    started = time.perf_counter()
    say = (lambda msg: print(f"[probe] {msg}", file=sys.stderr, flush=True)) if verbose \
        else (lambda msg: None)
    texts, _ = to_texts(texts, "raise")
    y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if y.ndim != 1 or len(y) != len(texts):
        raise ValueError(f"y must be 1-D with one value per text: {len(texts)} texts, "
                         f"y of shape {y.shape}")
    if len(texts) == 0:
        raise ValueError("probe needs texts")
    task = _infer_task(y, task)
    if scoring is None:
        scoring = "accuracy" if task == "classification" else "r2"
    scoring_name = scoring if isinstance(scoring, str) else getattr(
        scoring, "__name__", type(scoring).__name__)
    poolings = tuple(dict.fromkeys([poolings] if isinstance(poolings, str) else poolings))
    bad = [p for p in poolings if p not in SWEEP_POOLINGS]
    if bad or not poolings:
        raise ValueError(f"poolings must be among {SWEEP_POOLINGS}, got {poolings!r}"
                         + (" ('pooler' exists for the last layer only: use "
                            "BertFeaturizer(pooling='pooler'))" if "pooler" in bad else ""))
    for name, value in (("refine_top", refine_top), ("union_top", union_top),
                        ("chunk_top", chunk_top)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if union is None:
        union = tfidf
    head_map = _resolve_heads(heads, task, random_state)
    params = dict(featurizer_params or {})
    for reserved in ("model", "layers", "pooling", "layer_combine", "cache"):
        if reserved in params:
            raise ValueError(f"featurizer_params may not set {reserved!r}; it is a probe "
                             "argument or chosen by the probe")
    splits = _splits(cv, task, y, len(texts), random_state)
    store, tmp = _resolve_store(cache)
    pipeline_cache = False if cache in (None, False) else cache
    timings: dict[str, float] = {}
    try:
        # -- one encoder pass ------------------------------------------------------------
        t0 = time.perf_counter()
        unique = len(set(texts))
        say(f"encoding {len(texts)} texts ({unique} unique) with {model!r}, every layer")
        all_layers, base, encoded = _encode_all_layers(texts, model, poolings, store, params)
        selected = (clone(base).set_params(layers=layers).fit(texts[:1]).layers_
                    if not (isinstance(layers, str) and layers == "all")
                    else list(range(base.n_layers_ + 1)))
        n_layers = base.n_layers_
        combo_list = _combos(combos, n_layers)
        model_params = {"model": model, **params}
        sets = _feature_sets("bert", all_layers, base.hidden_size_, selected, combo_list,
                             model_params)
        timings["encode"] = time.perf_counter() - t0
        encoding = {"texts": len(texts), "unique_texts": unique, "encoded": encoded,
                    "fingerprint": base.fingerprint_, "random_encoded": None,
                    "truncated": None, "chunk": None, "chunk_encoded": None,
                    "seconds": timings["encode"]}
        say(f"encoder ran on {encoded} texts ({timings['encode']:.1f} s); "
            f"{len(sets)} feature sets from the store")

        random_sets: list[_FeatureSet] = []
        if random_control:
            t0 = time.perf_counter()
            parent = Path(store.directory) / "random-init"
            rmodel = random_init_model(
                model, seed=control_seed, directory=parent,
                revision=params.get("revision"),
                trust_remote_code=params.get("trust_remote_code", False))
            rparams = {k: v for k, v in params.items() if k != "revision"}
            say("encoding the random-weights control (same architecture, seed "
                f"{control_seed})")
            r_layers, rbase, r_encoded = _encode_all_layers(texts, rmodel, poolings, store,
                                                            rparams)
            random_sets = _feature_sets("random", r_layers, rbase.hidden_size_, selected,
                                        [], {"model": rmodel, **rparams})
            encoding["random_encoded"] = r_encoded
            timings["random_encode"] = time.perf_counter() - t0

        # -- screen: the first head on every feature set -----------------------------------
        screen_name, screen_head = next(iter(head_map.items()))
        candidates: dict[str, _Candidate] = {}
        rows: list[dict] = []
        failures: list[str] = []

        def run(cand: _Candidate) -> dict | None:
            try:
                scores = _cv_score(cand, y, splits, scoring, n_jobs)
            except Exception as exc:  # one head failing on this data must not end the probe
                warnings.warn(f"probe: candidate {describe(vars(cand))} failed and is left "
                              f"out ({type(exc).__name__}: {exc})", RuntimeWarning,
                              stacklevel=3)
                failures.append(cand.key)
                return None
            candidates[cand.key] = cand
            row = _row(cand, scores)
            rows.append(row)
            return row

        t0 = time.perf_counter()
        say(f"screening {len(sets)} feature sets with {screen_name} "
            f"({len(splits)}-fold {scoring_name})")
        screen_rows = []
        pipe_params = {"cache": pipeline_cache}
        for fs in sets:
            row = run(_bert_candidate(fs, screen_name, screen_head, "screen", pipe_params))
            if row is not None:
                screen_rows.append((row, fs))
        timings["screen"] = time.perf_counter() - t0

        # -- refine: the other heads on the best feature sets ------------------------------
        t0 = time.perf_counter()
        others = list(head_map.items())[1:]
        if others and refine_top:
            ranked = sorted(screen_rows, key=lambda rf: -rf[0]["mean_score"])[:refine_top]
            say(f"refining the top {len(ranked)} with {', '.join(n for n, _ in others)}")
            for _, fs in ranked:
                for name, head in others:
                    run(_bert_candidate(fs, name, head, "refine", pipe_params))
        timings["refine"] = time.perf_counter() - t0

        # -- long texts: chunked vs truncated on the best feature sets ----------------------
        t0 = time.perf_counter()
        ranked_sets = [fs for _, fs in sorted(screen_rows, key=lambda rf: -rf[0]["mean_score"])]
        chunk_rows = []
        for fs in _chunk_sets(texts, model, params, store, base, ranked_sets[:chunk_top],
                              encoding, chunk, say):
            row = run(_bert_candidate(fs, screen_name, screen_head, "chunk", pipe_params))
            if row is not None:
                chunk_rows.append((row, fs))
        if "chunk_seconds" in encoding:
            timings["chunk_encode"] = encoding["chunk_seconds"]
        timings["chunk"] = time.perf_counter() - t0

        # -- TF-IDF ⊕ the best feature set(s) ------------------------------------------------
        t0 = time.perf_counter()
        if union and union_top:
            best_sets = sorted(screen_rows + chunk_rows, key=lambda rf: -rf[0]["mean_score"])
            data = _UnionData(np.asarray(texts, dtype=object))
            for _, fs in best_sets[:union_top]:
                say(f"scoring TF-IDF ⊕ {fs.layer} {fs.pooling} (vocabulary fitted per fold)")
                for cand in _union_candidates(fs, data, task, pipe_params):
                    run(cand)
        timings["union"] = time.perf_counter() - t0

        # -- controls and baselines --------------------------------------------------------
        t0 = time.perf_counter()
        if random_sets:
            say(f"scoring the random-weights control ({len(random_sets)} feature sets)")
            for fs in random_sets:
                run(_bert_candidate(fs, screen_name, screen_head, "control",
                                    {"cache": pipeline_cache}))
        if tfidf:
            say("scoring the TF-IDF baseline")
            text_array = np.asarray(texts, dtype=object)
            for cand in _tfidf_candidates(text_array, task):
                run(cand)
        timings["baselines"] = time.perf_counter() - t0

        if not rows:
            raise ValueError(f"probe: every candidate failed (first: {failures[0]}); see the "
                             "warnings")
        table = pd.DataFrame(rows)
        table["layer_index"] = table["layer_index"].astype("Int64")
        table["n_features"] = table["n_features"].astype("Int64")
        # ties (common on easy data) go to the steadier, then the smaller candidate;
        # timing never decides, so the ranking is reproducible
        table = table.sort_values(["mean_score", "std_score", "n_features"],
                                  ascending=[False, True, True], kind="stable",
                                  na_position="last")
        table.insert(0, "rank", np.arange(1, len(table) + 1))
        table = table.reset_index(drop=True)

        # -- refit the best on all data ----------------------------------------------------
        t0 = time.perf_counter()
        result = ProbeResult(table=table, candidates=candidates, task=task,
                             scoring=scoring_name, n_splits=len(splits), n_layers=n_layers,
                             model=str(model), encoding=encoding, timings=timings,
                             best_estimator=None)
        if refit:
            best = candidates[result.best["candidate"]]
            result.best_estimator = _fit_best(best, texts, y)
        timings["refit"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        say(f"done in {timings['total']:.1f} s")
        return result
    finally:
        if tmp is not None:
            store.close()
            tmp.cleanup()


def _fit_best(candidate: _Candidate, texts: list[str], y: np.ndarray) -> Pipeline:
    """Fit the candidate's Pipeline on all data, reusing cached features for BERT."""
    pipe = candidate.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if candidate.family == "tfidf":
            return pipe.fit(np.asarray(texts, dtype=object), y)
        if candidate.family == "union":  # both blocks from what the probe holds
            union = pipe.steps[0][1]
            union.bert_ = clone(union.bert).fit(texts)
            Xt = union._fit_blocks(texts, candidate.dense)
            for _, step in pipe.steps[1:-1]:
                Xt = step.fit_transform(Xt, y)
            pipe.steps[-1][1].fit(Xt, y)
            return pipe
        # the featurizer is per-text and stateless: fit it (no encoding), and fit the
        # head steps on the features the probe already holds
        pipe.steps[0][1].fit(texts)
        Xt = candidate.X
        for _, step in pipe.steps[1:-1]:
            Xt = step.fit_transform(Xt, y)
        pipe.steps[-1][1].fit(Xt, y)
    return pipe
