"""The probe's orchestration: check the arguments, encode once, run the candidate
families on the same folds, rank every row, refit the best."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ..estimators.featurizer import BertFeaturizer
from ..estimators.params import StrictInterval, non_negative_int
from ..stats.cvstats import split_ratio
from ..store import FeatureStore
from .candidates import Candidate
from .checks import (
    check_data,
    check_poolings,
    design,
    holdout_split,
    inner_splits,
    make_splits,
    probe_store,
)
from .context import ProbeContext
from .families import registered
from .heads import resolve_heads
from .nested import outer_estimate
from .options import ProbeOptions
from .progress import ProbeVerbosity, StageBar
from .result import ProbeResult
from .selection import ALIASES, RULES
from .stats import annotate

__all__ = ["probe"]

#: featurizer parameters the probe sets itself
_RESERVED = ("model", "layers", "pooling", "layer_combine", "cache")


@validate_params(
    {
        "texts": "no_validation",  # bertfeat.inputs.to_texts checks them, naming rows
        "y": ["array-like"],
        "model": [str, os.PathLike],
        "layers": [StrOptions({"all"}), "array-like", Integral],
        "poolings": [str, list, tuple],
        "heads": [str, list, tuple, dict],
        "cv": ["cv_object"],
        "scoring": [str, callable, None],
        "random_control": ["boolean"],
        "cache": [StrOptions({"auto"}), str, os.PathLike, FeatureStore, "boolean", None],
        "combos": ["boolean", list, tuple, None],
        "tfidf": ["boolean"],
        "union": ["boolean", None],
        "chunk": ["boolean"],
        "finetune": ["boolean", dict],
        "screen": [StrOptions({"ridge", "head"})],
        "refine_top": [non_negative_int()],
        "union_top": [non_negative_int()],
        "chunk_top": [non_negative_int()],
        "task": [StrOptions({"auto", "classification", "regression"})],
        "random_state": [Integral],
        "control_seed": [Integral],
        "control_texts": [StrictInterval(Integral, 10, None, closed="left"),
                          StrOptions({"auto"}), None],
        "n_jobs": [Integral, None],
        "refit": ["boolean"],
        "featurizer_params": [dict, None],
        "verbose": ["boolean", StrOptions({"auto"})],
        "repeats": [Interval(Integral, 1, None, closed="left")],
        "nested": ["boolean"],
        "test_size": [Interval(Real, 0, 1, closed="neither"), None],
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "select": [StrOptions(set(RULES) | set(ALIASES))],
    },
    # the featurizers and heads the probe builds from the user's values are validated
    prefer_skip_nested_validation=False,
)
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
    finetune: bool | dict = False,
    screen: str = "ridge",
    refine_top: int = 2,
    union_top: int = 1,
    chunk_top: int = 2,
    task: str = "auto",
    random_state: int = 0,
    control_seed: int = 0,
    control_texts: int | str | None = "auto",
    n_jobs: int | None = None,
    refit: bool = True,
    featurizer_params: dict | None = None,
    verbose: bool | str = "auto",
    repeats: int = 1,
    nested: bool = False,
    test_size: float | None = None,
    alpha: float = 0.05,
    select: str = "top",
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

    Each window of text is encoded once: when chunked candidates will run, the chunked
    pass comes first and stores every text's first window as its truncated encoding (the
    same tokens), so the main pass reads it. Before each encoder pass the token count and
    a time estimate are logged; ``result.timings`` says where the time went.

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
        Also score the random-weights copy of the model (one more encoder pass, on the
        texts ``control_texts`` chooses; the model is saved once next to the store, under
        ``random-init/``).
    cache : "auto", path, FeatureStore, False or None, default="auto"
        The feature store. ``False``/``None`` uses a temporary store for the run (the
        texts are still encoded once) and gives the recommended Pipeline ``cache=False``.
    combos : bool or list of (layers, combine), default=True
        Layer combinations: ``True`` = the last four transformer layers concatenated and
        averaged.
    tfidf : bool, default=True
        Score the TF-IDF (word 1-2 grams with ``min_df=2``, sublinear tf: the union's TF-IDF
        block) + LogisticRegression baseline
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
        texts in windows and score the ``chunk_top`` best feature sets (screening head) on
        chunk-pooled vectors. This pass runs before the main one and gives it its vectors
        (a text's first window is its truncated encoding), so no window is encoded twice.
        Skipped, with a note in ``result.encoding["chunk"]``, when no text is longer than
        ``max_length`` (chunking would change nothing).
    finetune : bool or dict, default=False
        Also fine-tune the encoder on each training fold (:class:`~bertfeat.BertClassifier`,
        :class:`~bertfeat.BertRegressor` for regression, with their defaults or the
        parameters of a dict) and score it on the held-out fold: the ``finetune`` row,
        whose ``fit_time`` is the fine-tuning itself. The summary compares it with the best
        frozen pipeline (score and fit time). Costs ``epochs`` training passes per fold.
    screen : {"ridge", "head"}, default="ridge"
        How every feature set is screened. ``"ridge"``: ``StandardScaler`` + ridge
        (``RidgeClassifier``; ``Ridge`` for regression) for every alpha of
        :data:`~bertfeat.probe.heads.RIDGE_ALPHAS` at once, in closed form from one
        eigendecomposition per fold and feature set (:mod:`bertfeat.probe.ridge`); the row
        is the alpha with the best mean score, named ``ridge α=<alpha>``, and its pipeline
        is that model. The heads are then fitted on the ``refine_top`` best screened
        feature sets only. ``"head"``: the first head is fitted on every feature set (the
        older, slower screen) and the other heads on the ``refine_top`` best.
    refine_top : int, default=2
        Feature sets (by the screening score) that the heads are fitted on (with
        ``screen="head"``: the heads after the first).
    union_top : int, default=1
        Feature sets the TF-IDF ⊕ BERT union is built on.
    chunk_top : int, default=2
        Feature sets tried in chunked form.
    task : {"auto", "classification", "regression"}, default="auto"
        ``auto`` reads it from ``y`` (floats that are not whole numbers: regression).
    random_state : int, default=0
        Seed of the folds and the MLP heads.
    control_seed : int, default=0
        Seed of the random-weights model and of its subset of texts (kept apart from
        ``random_state`` so that new folds reuse the stored control vectors).
    control_texts : int, "auto" or None, default="auto"
        Texts the random-weights control encodes. ``"auto"``: a stratified subset (seed
        ``control_seed``) whose encoder tokens are at most 10 % of the main pass's (at
        least 150 texts and 5 per class; every text when they are fewer), which bounds the
        control on large or long-document sets; an int: at most that many texts; None:
        every text. On a subset the control's rows are scored on the same folds
        restricted to it, next to the real model's best screened feature set on the same
        texts (a ``control``-stage ``bert`` row, never recommended), and the summary
        compares those two.
    n_jobs : int, optional
        Threads scoring the candidates (joblib's count: None is one, -1 every core).
        Every fold of every candidate of a stage is one task on one pool
        (:mod:`bertfeat.probe.scoring`), with one BLAS thread each.
    refit : bool, default=True
        Fit the best configuration on all the data (``result.best_estimator``).
    featurizer_params : dict, optional
        Further :class:`~bertfeat.BertFeaturizer` parameters (``max_length``,
        ``precision``, ``device``, ``batch_size`` ...), used for the sweep and carried
        into the recommended Pipeline.
    verbose : bool or "auto", default="auto"
        ``"auto"``: in a terminal or a notebook a bar over the stages; elsewhere (stderr
        sent to a file) a log line per stage with elapsed time and ETA, the probe's
        messages and the encoder's periodic progress lines, through :mod:`logging`
        (logger ``"bertfeat"``). True: the messages on stderr (and the bar in a
        terminal); False: nothing.
    repeats : int, default=1
        Repeats of the k-fold split when ``cv`` is an int (``RepeatedStratifiedKFold``;
        repeat 1 is the plain split). Every candidate is scored on the same
        ``repeats x cv`` splits; the store makes a repeat cost head fits only, no
        encoding. More repeats narrow the intervals and sharpen the paired tests.
    nested : bool, default=False
        Also estimate how the whole selection does on new data: each of ``cv`` outer
        folds runs the complete probe (every family, the tied group, the pick) on inner
        folds of its training rows, then scores its pick on the outer test fold
        (``result.nested_score``, ``result.nested``). No extra encoding; about ``cv``
        times the cross-validation work.
    test_size : float, optional
        Also hold out this share of the rows (stratified): the whole selection runs on
        the rest and its pick is scored once on the held-out rows
        (``result.holdout``). The table itself is still the cross-validation on all rows.
    alpha : float, default=0.05
        Level of the corrected paired tests: a candidate is *tied* with the top one when
        its test against it gives ``p >= alpha``.
    select : {"top", "cheapest-tied", "one-se", "stable-top"}, default="top"
        The selection rule (:data:`bertfeat.probe.selection.RULES`): the top mean; the
        cheapest candidate tied with it (:data:`bertfeat.probe.costs.PICK_RULE`, also
        ``"cheapest"``); the cheapest within one standard error of it; or the top mean
        among candidates whose fold scores are not an outlier in spread. The default
        (:data:`~bertfeat.probe.selection.DEFAULT_RULE`) won
        ``benchmarks/bench_selection.py``. ``result.select(rule)`` changes the rule later
        without scoring anything again.

    Returns
    -------
    ProbeResult
        ``.table`` (tidy DataFrame, best first), ``.best``, ``.best_estimator`` (fitted on
        all data when ``refit``), ``.make_pipeline()`` (unfitted), ``.best_code``,
        ``.baselines``, ``.encoding``, ``.plot()``, ``.summary()``; the statistics:
        ``.top``, ``.tied``, ``.recommendation``, ``.comparisons``, ``.fold_scores``,
        ``.nested_score``, ``.holdout``, ``.report("markdown")``.

    Examples
    --------
    >>> from bertfeat.probe import probe
    >>> from bertfeat.datasets import load_dataset
    >>> df = load_dataset("sms_spam").sample(400, random_state=0)
    >>> result = probe(df["text"], df["label"])  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    >>> result.best_estimator.predict(["WIN a free prize now!"])  # doctest: +SKIP
    """
    options = ProbeOptions(**{name: value for name, value in locals().items()
                              if name not in ("texts", "y", "featurizer_params")})
    verbosity = ProbeVerbosity(verbose)
    options.progress = verbosity.mode
    try:
        return _run(texts, y, options, dict(featurizer_params or {}))
    finally:
        verbosity.close()


def _run(texts: Any, y: Any, options: ProbeOptions, params: dict) -> ProbeResult:
    started = time.perf_counter()
    texts, y, task = check_data(texts, y, options.task)
    scoring = options.scoring or ("accuracy" if task == "classification" else "r2")
    scoring_name = scoring if isinstance(scoring, str) else getattr(
        scoring, "__name__", type(scoring).__name__)
    options.poolings = check_poolings(options.poolings)
    if options.union is None:
        options.union = options.tfidf
    for reserved in _RESERVED:
        if reserved in params:
            raise ValueError(f"featurizer_params may not set {reserved!r}; it is a probe "
                             "argument or chosen by the probe")
    # refuse a bad featurizer parameter before any work (the same check fit makes)
    BertFeaturizer(model=options.model, **params)._validate_params()
    heads = resolve_heads(options.heads, task, options.random_state)
    splits = make_splits(options.cv, task, y, len(texts), options.random_state,
                     options.repeats)
    if options.nested and not isinstance(options.cv, Integral):
        raise ValueError("nested=True needs cv as an int (the number of outer and inner "
                         f"folds), got {options.cv!r}")
    cache = options.cache
    store, tmp = probe_store(cache)
    ctx = ProbeContext(
        texts=texts, y=y, task=task, splits=splits, scoring=scoring, model=options.model,
        params=params, poolings=options.poolings, heads=heads, store=store,
        pipeline_params={"cache": False if cache is None or cache is False else cache},
        options=options, n_jobs=options.n_jobs, random_state=options.random_state)
    stages = _stages(registered())
    bar = StageBar(len(stages) + 2, mode=options.progress)
    try:
        bar.stage("encode")
        ctx.encoding.update({"random_encoded": None, "control": None, "truncated": None,
                             "chunk": None, "chunk_encoded": None})
        for family in registered():
            family.before_encode(ctx)
        _encode(ctx, options.layers)
        table, folds, recommendation = _study(ctx, bar)
        result = ProbeResult(
            table=table, candidates={cand.key: cand for _, cand in ctx.scored}, task=task,
            scoring=scoring_name, n_splits=len(splits), n_layers=ctx.n_layers,
            model=str(options.model), encoding=ctx.encoding, timings=ctx.timings,
            best_estimator=None, fold_scores=folds, recommendation=recommendation,
            design=design(options, len(splits)), head_order=list(ctx.heads),
            data=(texts, y))
        t0 = time.perf_counter()
        if options.nested:
            outer = make_splits(options.cv, task, y, len(texts), options.random_state + 1)
            result.nested = outer_estimate(ctx, outer, _study, inner_splits, "nested fold")
        if options.test_size is not None:
            result.holdout = outer_estimate(ctx, [holdout_split(options, task, y)], _study,
                                            inner_splits, "held-out split")
        if options.nested or options.test_size is not None:
            ctx.timings["nested"] = time.perf_counter() - t0
        bar.stage("refit")
        t0 = time.perf_counter()
        if options.refit:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                result.best_estimator = result.candidate().fit_all(texts, y)
        ctx.timings["refit"] = time.perf_counter() - t0
        ctx.timings["total"] = time.perf_counter() - started
        ctx.log(f"done in {ctx.timings['total']:.1f} s")
        return result
    finally:
        bar.close()
        if tmp is not None:
            store.close()
            tmp.cleanup()


def _encode(ctx: ProbeContext, layers: Any) -> None:
    """The main encoder pass: every layer of every text, into the store."""
    texts = ctx.texts
    unique = len(set(texts))
    ctx.log(f"encoding {len(texts)} texts ({unique} unique) with {ctx.model!r}, every layer")
    ctx.bert = ctx.encode(ctx.model, ctx.poolings, ctx.params, timing="encode")
    base = ctx.bert.featurizer
    ctx.layers = (clone(base).set_params(layers=layers).fit(texts[:1]).layers_
                  if not (isinstance(layers, str) and layers == "all")
                  else list(range(base.n_layers_ + 1)))
    ctx.encoding.update({
        "texts": len(texts), "unique_texts": unique, "encoded": ctx.bert.encoded,
        "fingerprint": base.fingerprint_, "seconds": ctx.timings["encode"]})
    ctx.log(f"encoder ran on {ctx.bert.encoded} texts ({ctx.timings['encode']:.1f} s)")


def _study(ctx: ProbeContext, bar: StageBar | None = None,
           ) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """Every family on ``ctx.splits``: the annotated table, the fold scores, the pick."""
    for stage, families in _stages(registered()):
        if bar is not None:
            bar.stage(stage)
        _run_stage(ctx, stage, families)
    if not ctx.scored:
        raise ValueError(f"probe: every candidate failed (first: {ctx.failures[0]}); "
                         "see the warnings")
    table = _ranked_table([row for row, _ in ctx.scored])
    folds = pd.DataFrame.from_dict(ctx.fold_scores, orient="index")
    folds.columns = [f"split_{i}" for i in range(folds.shape[1])]
    recommendable = [cand.key for _, cand in ctx.scored if cand.recommendable]
    table, recommendation = annotate(
        table, folds, split_ratio(ctx.splits), head_order=list(ctx.heads),
        recommendable=recommendable, alpha=ctx.options.alpha,
        select=ctx.options.select)
    return table, folds, recommendation


def _stages(families: list) -> list[tuple[str, list]]:
    """Consecutive families with the same ``timing``, grouped: one stage each."""
    stages: list[tuple[str, list]] = []
    for family in families:
        if stages and stages[-1][0] == family.timing:
            stages[-1][1].append(family)
        else:
            stages.append((family.timing, [family]))
    return stages


def _run_stage(ctx: ProbeContext, stage: str, families: list) -> None:
    """Collect the stage's candidates, score them in ``group`` order; time the heads."""
    t0 = time.perf_counter()
    encoding_before = ctx.encode_seconds
    candidates: list[Candidate] = []
    for family in families:
        candidates.extend(family.candidates(ctx))
    ctx.score_all(sorted(candidates, key=lambda c: c.group))
    spent = time.perf_counter() - t0 - (ctx.encode_seconds - encoding_before)
    ctx.timings[stage] = ctx.timings.get(stage, 0.0) + spent


def _ranked_table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    table["layer_index"] = table["layer_index"].astype("Int64")
    table["n_features"] = table["n_features"].astype("Int64")
    # ties (common on easy data) go to the steadier, then the smaller candidate;
    # timing never decides, so the ranking is reproducible
    table = table.sort_values(["mean_score", "std_score", "n_features"],
                              ascending=[False, True, True], kind="stable",
                              na_position="last")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


