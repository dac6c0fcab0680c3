"""What :func:`~bertfeat.probe.probe` returns: :class:`ProbeResult` (table, best, baselines)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ..stats.cvstats import PairedTest
from .candidates import Candidate, describe
from .codegen import pipeline_code
from .plot import PlotMixin
from .report import ReportMixin
from .saved import SavedMixin
from .stats import Recommendation, compare

__all__ = ["ProbeResult", "describe"]


class ProbeResult(SavedMixin, ReportMixin, PlotMixin):
    """What :func:`probe` found.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate, best first, with columns ``rank``, ``family`` (``bert``,
        ``tfidf``, ``union``, ``random`` or ``finetune``), ``layer`` (``L4``, ``L3-6 concat`` ...;
        ``L4 chunked`` for the chunked long-text mode),
        ``layer_index`` (hidden state for single layers, else NA), ``pooling``, ``head``,
        ``mean_score``, ``std_score`` (across folds), ``ci_low`` and ``ci_high`` (the 95%
        interval of the mean, corrected resampled t), ``p_value`` (corrected paired
        t-test against the top row, two-sided), ``tied`` (``p_value >= alpha``),
        ``fit_time`` and ``score_time`` (seconds per fold), ``n_features``, ``stage``
        (``screen``, ``refine``, ``chunk``, ``union``, ``control`` or ``baseline``) and
        ``candidate`` (a unique key). ``docs/statistics.md`` gives the formulas.
    top : pandas.Series
        The row with the highest mean among the recommendable candidates (every family
        but the random-weights control).
    best : pandas.Series
        The recommendation: the row the selection rule ``recommendation.select`` picks
        (:mod:`bertfeat.probe.selection`; ``result.select(rule)`` re-picks from the
        stored fold scores).
    tied : pandas.DataFrame
        The recommendable rows not distinguishable from ``top`` (the tied group).
    recommendation : Recommendation
        ``top``, ``pick``, ``group`` (keys), ``rule``, ``alpha``, ``level``.
    control_reference : str or None
        With the random-weights control on a subset of the texts: the candidate key of the
        real model's best screened feature set scored on the same subset and folds, which
        ``comparisons["random"]`` compares the control with (None: the control ran on
        every text and is compared with the pick).
    comparisons : dict of str -> PairedTest
        ``best`` minus each baseline row (``last_layer``, ``tfidf``, ``random``) on the
        same folds: ``diff``, ``p_value``, ``significant()``; absent when not run.
    baseline_keys : dict
        The candidate key of each baseline row (None when not run).
    fold_scores : pandas.DataFrame
        Each candidate's score on every split (rows: candidate keys).
    design : str
        The cross-validation design, e.g. ``2 x 5-fold CV``.
    nested : dict or None
        With ``nested=True``: ``scores`` (one per outer fold), ``mean``, ``ci_low``,
        ``ci_high``, ``picks`` and ``tops`` (what each outer fold's selection chose).
    nested_score : float or None
        ``nested["mean"]``: the estimate of the whole selection on new data.
    holdout : dict or None
        With ``test_size``: ``score`` of the selection's pick on the held-out rows,
        ``picks``, ``n_train``, ``n_test``.
    best_estimator : Pipeline or None
        The best configuration **fitted on all the data** (when ``refit=True``), a
        Pipeline on raw texts ready for ``predict``.
    best_code : str
        Python lines that build the best Pipeline (unfitted).
    baselines : dict
        ``last_layer`` (last layer, mean pooling, the first head; the screen's ridge row only
        when that head was not fitted on it), ``tfidf`` (best TF-IDF
        row), ``random`` (best random-weights row); a value is None when not run.
    families : dict
        Best score per kind of candidate: ``bert`` (truncated texts), ``chunked``,
        ``tfidf``, ``union``, ``random``; None when not run.
    encoding : dict
        ``texts``, ``unique_texts``, ``encoded`` (texts the encoder ran on, from the
        store's ``encoded`` counter: 0 when every text was already stored, never more than
        ``unique_texts``), ``random_encoded``, ``control`` (how the random-weights
        control was computed), ``fingerprint``, ``seconds``;
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
        Seconds per stage: ``encode``, ``random_encode`` and ``chunk_encode`` (encoder
        passes); ``screen``, ``refine``, ``chunk``, ``union`` and ``baselines``
        (cross-validating heads, encoder passes excluded); ``refit`` and ``total``.
    head_order : list of str
        The probe's heads, cheapest first (the cost order of the ``cheapest-tied`` and
        ``one-se`` rules).

    Notes
    -----
    :meth:`select` re-picks under another rule from the stored fold scores;
    :meth:`save` and :meth:`load` write and read the JSON a re-selection needs
    (``bertfeat recommend OUTDIR --select RULE``).
    """

    def __init__(self, *, table: pd.DataFrame, candidates: dict[str, Candidate],
                 task: str, scoring: str, n_splits: int, n_layers: int, model: str,
                 encoding: dict, timings: dict, best_estimator: Pipeline | None,
                 fold_scores: pd.DataFrame, recommendation: Recommendation,
                 design: str, head_order: list[str] | None = None,
                 data: tuple[list[str], np.ndarray] | None = None) -> None:
        self.table = table
        self.head_order = list(head_order or [])
        self._data = data
        self._candidates = candidates
        self.task = task
        self.scoring = scoring
        self.n_splits = n_splits
        self.n_layers = n_layers
        self.model = model
        self.encoding = encoding
        self.timings = timings
        self.best_estimator = best_estimator
        self.fold_scores = fold_scores
        self.recommendation = recommendation
        self.design = design
        self.nested: dict | None = None
        self.holdout: dict | None = None
        rows = table.set_index("candidate", drop=False)
        self.top = rows.loc[recommendation.top]
        self.best = rows.loc[recommendation.pick]
        self.tied = table[table["candidate"].isin(set(recommendation.group))]
        last = ((table["family"] == "bert") & (table["layer"] == f"L{n_layers}")
                & (table["pooling"] == "mean"))
        # the last layer with the first head (fitted in the screen or, after the
        # closed-form screen, in the refine stage); a ridge screen row only without one
        fitted = last & table["stage"].isin(["screen", "refine"]) & (
            table["head"] == (self.head_order[0] if self.head_order else None))
        masks = {
            "last_layer": fitted if fitted.any() else last & (table["stage"] == "screen"),
            "tfidf": table["family"] == "tfidf",
            "random": table["family"] == "random",
        }
        self.baseline_keys = {name: self._key_of(mask) for name, mask in masks.items()}
        self.baselines = {name: self._score_of(mask) for name, mask in masks.items()}
        # a control on a subset of the texts is compared with the real model's row on
        # the same texts and folds, not with the pick (scored on every text)
        subset = (table["family"] == "bert") & (table["stage"] == "control")
        self.control_reference = self._key_of(subset)
        self._control_rows = None
        if self.control_reference is not None and \
                candidates[self.control_reference].rows is not None:
            self._control_rows = len(candidates[self.control_reference].rows)
        against = {"random": self.control_reference or self.best["candidate"]}
        self.comparisons: dict[str, PairedTest] = {
            name: compare(fold_scores, against.get(name, self.best["candidate"]), key,
                          recommendation.ratio)
            for name, key in self.baseline_keys.items() if key is not None}
        chunked = table["stage"] == "chunk"
        self.families = {
            "bert": self._score_of((table["family"] == "bert") & ~chunked & ~subset),
            "chunked": self._score_of(chunked),
            "tfidf": self.baselines["tfidf"],
            "union": self._score_of(table["family"] == "union"),
            "random": self.baselines["random"],
        }

    def _key_of(self, mask: pd.Series) -> str | None:
        rows = self.table[mask]  # best first
        return None if rows.empty else str(rows["candidate"].iloc[0])

    @property
    def control_subset(self) -> dict | None:
        """When the random-weights control ran on a subset: ``rows`` (texts it used),
        ``texts`` (all texts), ``layer`` and ``score`` of the real model's reference row
        on the same texts; None when it ran on every text (or not at all)."""
        if self.control_reference is None or self.baselines["random"] is None \
                or self._control_rows is None:
            return None
        row = self.table.set_index("candidate").loc[self.control_reference]
        return {"rows": self._control_rows,
                "texts": int(self.encoding.get("texts", 0)), "layer": str(row["layer"]),
                "score": float(row["mean_score"])}

    @property
    def nested_score(self) -> float | None:
        """The nested-CV estimate of the whole selection (None without ``nested=True``)."""
        return None if self.nested is None else float(self.nested["mean"])

    def is_recommendable(self, key: str) -> bool:
        """Whether the candidate ``key`` may be recommended (the control may not)."""
        return bool(self._candidates[key].recommendable)

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
        return self.candidate(candidate).build()

    def candidate(self, key: str | None = None) -> Candidate:
        """The :class:`~bertfeat.probe.candidates.Candidate` behind a table row.

        Parameters
        ----------
        key : str, optional
            A value of the ``candidate`` column; default: the best.

        Returns
        -------
        Candidate
        """
        key = self.best["candidate"] if key is None else key
        if key not in self._candidates:
            raise KeyError(f"no candidate {key!r}; see result.table['candidate']")
        return self._candidates[key]

    @property
    def best_code(self) -> str:
        """Python that builds the best Pipeline (unfitted)."""
        return pipeline_code(self.make_pipeline())

    # -- selection ---------------------------------------------------------------------
    def select(self, rule: str, *, refit: bool = False) -> ProbeResult:
        """The recommendation of another selection rule, from the stored fold scores.

        Nothing is scored or encoded: the rule reads the table and :attr:`fold_scores`
        (:mod:`bertfeat.probe.selection`). The returned result shares the table, the fold
        scores and the candidates; its :attr:`best`, :attr:`best_code`,
        :meth:`summary` and :meth:`make_pipeline` follow ``rule``. The nested and
        held-out estimates (which ran the old rule) are not carried over.

        Parameters
        ----------
        rule : str
            A key of :data:`bertfeat.probe.selection.RULES`: ``top``,
            ``cheapest-tied``, ``one-se``, ``stable-top``.
        refit : bool, default=False
            Also fit the new pick on the probe's texts (``best_estimator``), reading
            vectors from the feature store; needs a result that holds its texts (one
            from :func:`probe` or :meth:`load`). Otherwise ``best_estimator`` is the
            old one when the pick did not change, else None.

        Returns
        -------
        ProbeResult
        """
        from .selection import recommend

        rec = self.recommendation
        recommendable = [key for key in self.table["candidate"]
                         if self.is_recommendable(key)]
        new = recommend(self.table, self.fold_scores, rec.ratio, head_order=self.head_order,
                        recommendable=recommendable, rule=rule, alpha=rec.alpha,
                        level=rec.level, top=rec.top)
        out = ProbeResult(
            table=self.table, candidates=self._candidates, task=self.task,
            scoring=self.scoring, n_splits=self.n_splits, n_layers=self.n_layers,
            model=self.model, encoding=self.encoding, timings=dict(self.timings),
            best_estimator=self.best_estimator if new.pick == rec.pick else None,
            fold_scores=self.fold_scores, recommendation=new, design=self.design,
            head_order=self.head_order, data=self._data)
        out._control_rows = self._control_rows
        if refit:
            out.refit()
        return out

    def refit(self) -> Pipeline:
        """Fit the best pipeline on the probe's texts (``best_estimator``).

        The vectors come from the feature store the probe filled (nothing is encoded
        when it still holds them).

        Returns
        -------
        Pipeline
        """
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        if self._data is None:
            raise ValueError("this result does not hold the probe's texts; refit needs a "
                             "result from probe() or ProbeResult.load()")
        texts, y = self._data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.best_estimator = self.candidate().fit_all(texts, y)
        return self.best_estimator

    @property
    def screen_head(self) -> str:
        """Name of the head that screened every feature set (``-`` when none ran;
        ``ridge`` for the closed-form screen, whose rows name their alpha)."""
        screen = self.table[self.table["stage"] == "screen"]
        return str(screen["head"].iloc[0]).split(" α=")[0] if len(screen) else "-"
