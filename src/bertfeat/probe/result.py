"""What :func:`~bertfeat.probe.probe` returns: :class:`ProbeResult` (table, best, baselines)."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from .candidates import Candidate
from .codegen import pipeline_code

__all__ = ["ProbeResult", "describe"]


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
        The best row among the recommendable candidates (every family but the
        random-weights control): never below the TF-IDF baseline when that ran.
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
    """

    def __init__(self, *, table: pd.DataFrame, candidates: dict[str, Candidate],
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
        recommendable = table[table["candidate"].map(
            lambda key: candidates[key].recommendable).astype(bool)]
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
        from .report import summary

        return summary(self, top)

    @property
    def screen_head(self) -> str:
        """Name of the head that screened every feature set (``-`` when none ran)."""
        screen = self.table[self.table["stage"] == "screen"]
        return str(screen["head"].iloc[0]) if len(screen) else "-"

    def plot(self, path: str | os.PathLike | None = None, ax: Any = None,
             title: str | None = None):
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
        from .plot import plot

        return plot(self, path=path, ax=ax, title=title)
