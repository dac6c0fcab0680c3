"""The result of :func:`~bertfeat.probe.words.probe_words`: table, report, plot and the
recommended :class:`~bertfeat.WordTagger`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..estimators.tagger import WordTagger
from .codegen import pipeline_code

__all__ = ["WordProbeResult"]


class WordProbeResult:
    """What :func:`probe_words` found.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate, best first, with the columns of
        :class:`~bertfeat.probe.ProbeResult`: ``rank``, ``family`` (``bert``, ``random``,
        ``most_frequent``), ``layer`` (``L3``, ``L1+2+3 concat`` ...), ``layer_index``,
        ``pooling`` (the sub-word pooling), ``head``, ``mean_score`` (token accuracy over
        sentence-grouped folds), ``std_score``, ``fit_time``, ``score_time``,
        ``n_features``, ``stage`` (``screen``, ``refine``, ``control``, ``baseline``) and
        ``candidate``.
    best : pandas.Series
        The best ``bert`` row.
    best_estimator : WordTagger or None
        The best configuration fitted on all sentences (``refit=True``).
    baselines : dict
        ``most_frequent`` (most frequent tag per word), ``random`` (best random-weights
        row), ``last_layer`` (last layer, mean of pieces, screening head); None when not
        run.
    encoding : dict
        ``sentences``, ``unique_sentences``, ``words``, ``encoded`` (sentences the
        encoder ran on, from the store's counter), ``random_encoded``, ``fingerprint``.
    timings : dict
        Seconds: ``encode``, ``screen``, ``refine``, ``random_encode``, ``control``,
        ``baselines``, ``refit``, ``total``.
    n_splits, n_layers : int
    model : str
    """

    scoring = "accuracy"

    def __init__(self, *, table, candidates, best_estimator, encoding, timings, n_splits,
                 n_layers, model):
        self.table = table
        self._candidates = candidates
        self.best_estimator = best_estimator
        self.encoding = encoding
        self.timings = timings
        self.n_splits = n_splits
        self.n_layers = n_layers
        self.model = model
        self.best = table[table["family"] == "bert"].iloc[0]

        def best_of(mask):
            rows = table[mask]
            return None if rows.empty else float(rows["mean_score"].max())

        self.baselines = {
            "most_frequent": best_of(table["family"] == "most_frequent"),
            "random": best_of(table["family"] == "random"),
            "last_layer": best_of((table["family"] == "bert") & (table["stage"] == "screen")
                                  & (table["layer"] == f"L{n_layers}")
                                  & (table["pooling"] == "mean")),
        }

    def make_pipeline(self, candidate: str | None = None) -> WordTagger:
        """An unfitted :class:`~bertfeat.WordTagger` for the best (or a named) candidate.

        Parameters
        ----------
        candidate : str, optional
            A value of the ``candidate`` column (a ``bert`` row); default: the best.

        Returns
        -------
        WordTagger
        """
        key = self.best["candidate"] if candidate is None else candidate
        cand = self._candidates.get(key)
        if cand is None or cand.family != "bert":
            raise KeyError(f"no bert candidate {key!r}; see result.table['candidate']")
        return cand.build()

    make_tagger = make_pipeline

    @property
    def best_code(self) -> str:
        """Python that builds the recommended WordTagger (unfitted), as ``tagger``."""
        return pipeline_code(self.make_tagger(), name="tagger")

    def __repr__(self) -> str:
        return (f"WordProbeResult(best={self.describe(self.best)}: accuracy="
                f"{self.best['mean_score']:.4f}, {len(self.table)} candidates)")

    @staticmethod
    def describe(row) -> str:
        """``L3 · first piece · ridge`` for a table row."""
        if row["family"] == "most_frequent":
            return "most frequent tag per word"
        prefix = "random weights " if row["family"] == "random" else ""
        return f"{prefix}{row['layer']} · {row['pooling']} pooling · {row['head']}"

    def summary(self, top: int = 12) -> str:
        """The ``top`` rows, the baselines and the recommendation, as text."""
        lines = [f"bertfeat word probe: model {self.model!r}, {self.n_splits} sentence-grouped "
                 f"folds, {self.encoding['words']:,} words in {self.encoding['sentences']:,} "
                 "sentences; token accuracy", ""]
        lines.append(f"{'rank':>4}  {'candidate':<46} {'accuracy':>9} {'± std':>7} "
                     f"{'fit s':>6}")
        for _, row in self.table.head(top).iterrows():
            lines.append(f"{int(row['rank']):>4}  {self.describe(row):<46} "
                         f"{row['mean_score']:>9.4f} {row['std_score']:>7.4f} "
                         f"{row['fit_time']:>6.1f}")
        b = self.baselines
        lines.append("")
        for name, label in (("most_frequent", "most frequent tag per word"),
                            ("random", "random-weights control (best)"),
                            ("last_layer", "last layer, mean of pieces")):
            if b[name] is not None:
                lines.append(f"{label}: {b[name]:.4f}")
        lines.append(f"recommended: {self.describe(self.best)} "
                     f"({self.best['mean_score']:.4f})")
        return "\n".join(lines)

    def plot(self, path: Any = None, ax: Any = None, title: str | None = None):
        """Accuracy per layer, one line per sub-word pooling, baselines as lines.

        Parameters
        ----------
        path : str or path, optional
            Write a PNG there.
        ax : matplotlib Axes, optional
            Draw into this Axes.
        title : str, optional

        Returns
        -------
        matplotlib.figure.Figure
        """
        from matplotlib.figure import Figure

        fig = ax.figure if ax is not None else Figure(figsize=(7, 4.2))
        ax = ax if ax is not None else fig.add_subplot()
        screen = self.table[(self.table["stage"] == "screen")
                            & self.table["layer_index"].notna()]
        for pooling, rows in screen.groupby("pooling", sort=False):
            rows = rows.sort_values("layer_index")
            ax.errorbar(rows["layer_index"], rows["mean_score"], yerr=rows["std_score"],
                        marker="o", capsize=2, label=f"{pooling} ({self.screen_head})")
        control = self.table[self.table["stage"] == "control"].sort_values("layer_index")
        if len(control):
            ax.plot(control["layer_index"], control["mean_score"], ":", color="grey",
                    label="random weights")
        if self.baselines["most_frequent"] is not None:
            ax.axhline(self.baselines["most_frequent"], color="black", linestyle="--",
                       linewidth=1, label="most frequent tag")
        best = self.best
        x = best["layer_index"] if pd.notna(best["layer_index"]) else self.n_layers + 0.7
        ax.plot([x], [best["mean_score"]], "*", markersize=14, color="gold",
                markeredgecolor="black", label=f"best: {self.describe(best)}")
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_ylabel(f"token accuracy ({self.n_splits}-fold CV)")
        ax.set_title(title or f"bertfeat word probe: {self.model}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig

    @property
    def screen_head(self) -> str:
        screen = self.table[self.table["stage"] == "screen"]
        return str(screen["head"].iloc[0]) if len(screen) else "-"
