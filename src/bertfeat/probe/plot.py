"""The probe's figure: score per layer, one line per pooling, intervals, baselines."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .candidates import SWEEP_POOLINGS, describe

__all__ = ["PlotMixin"]

#: marker of each head drawn off the lines (the lines are the screening head)
_HEAD_MARKERS = {"svm": "s", "mlp": "^"}


def _x_of(row: pd.Series, combo_x: dict) -> float | None:
    """Where a row sits on the layer axis (its hidden state, or its combination's slot)."""
    if pd.notna(row["layer_index"]):
        return float(row["layer_index"])
    return combo_x.get(str(row["layer"]).replace(" chunked", ""))


def _errorbar(ax: Any, x: float, row: pd.Series, **style: Any) -> None:
    mean = float(row["mean_score"])
    ax.errorbar([x], [mean], yerr=[[mean - float(row["ci_low"])],
                                   [float(row["ci_high"]) - mean]],
                capsize=2.5, elinewidth=0.9, linestyle="none", **style)


def _plot(result: PlotMixin, path: str | os.PathLike | None, ax: Any, title: str | None):
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if ax is None:
        fig = Figure(figsize=(10.5, 5.0), dpi=110)
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    table = result.table
    screen = table[(table["family"] == "bert") & (table["stage"] == "screen")]
    singles = screen[screen["layer_index"].notna()]
    combos = screen[screen["layer_index"].isna()]
    combo_labels = list(dict.fromkeys(combos["layer"]))
    n = result.n_layers
    combo_x = {label: n + 1.5 + i for i, label in enumerate(combo_labels)}
    # one colour per pooling, the same in every plot
    colors = {p: f"C{i}" for i, p in enumerate(SWEEP_POOLINGS)}
    present = set(singles["pooling"])
    for pooling in [p for p in SWEEP_POOLINGS if p in present]:
        group = singles[singles["pooling"] == pooling].sort_values("layer_index")
        x = group["layer_index"].to_numpy(dtype=float)
        ax.plot(x, group["mean_score"].to_numpy(dtype=float), marker="o", markersize=4,
                linewidth=1.8, label=pooling, color=colors[pooling])
        ax.fill_between(x, group["ci_low"].to_numpy(dtype=float),
                        group["ci_high"].to_numpy(dtype=float), color=colors[pooling],
                        alpha=0.10, linewidth=0)
    for _, row in combos.iterrows():
        _errorbar(ax, combo_x[row["layer"]], row, marker="D", markersize=5,
                  color=colors.get(row["pooling"], "k"))
    # the other heads, where they were tried (the lines are the screening head)
    for head, marker in _HEAD_MARKERS.items():
        rows = table[(table["family"] == "bert") & (table["stage"] == "refine")
                     & (table["head"] == head)]
        for i, (_, row) in enumerate(rows.iterrows()):
            x = _x_of(row, combo_x)
            if x is not None:
                ax.plot([x + 0.12], [row["mean_score"]], marker=marker, markersize=6,
                        markerfacecolor="none", linestyle="none",
                        color=colors.get(row["pooling"], "k"),
                        label=f"{head} head (hollow {'square' if marker == 's' else 'triangle'})"
                        if i == 0 else None)
    union = table[table["family"] == "union"]
    if len(union):  # the best C of each union feature set
        best_union = union.sort_values("mean_score", ascending=False).drop_duplicates(
            ["layer", "pooling"])
        for i, (_, row) in enumerate(best_union.iterrows()):
            x = _x_of(row, combo_x)
            if x is not None:
                _errorbar(ax, x - 0.12, row, marker="P", markersize=8, color="C4",
                          label=(f"TF-IDF ⊕ {row['layer']} {row['pooling']} "
                                 f"({row['head']}) {row['mean_score']:.3f}") if i == 0 or
                          len(best_union) <= 3 else None)
    top, pick = result.top, result.best
    for name, style, label in (("tfidf", "--", "TF-IDF + linear"),
                               ("random", ":", "random weights (best)")):
        value = result.baselines[name]
        if value is not None:
            text = f"{label} {value:.3f}"
            if name == "tfidf" and pick["family"] == "tfidf":
                text += f" (the pick: {pick['head']})"
            subset = result.control_subset
            if name == "random" and subset is not None:  # not the curves' texts
                text += (f"\non {subset['rows']:,} of {subset['texts']:,} texts, where the "
                         f"real model scores {subset['score']:.3f}")
            ax.axhline(value, color="0.35" if name == "tfidf" else "0.6",
                       linestyle=style, linewidth=1.4, label=text)
    ax.axvline(n, color="0.3", linestyle="-.", linewidth=0.9, alpha=0.6,
               label=f"last layer (L{n})")
    for row, marker, size, face, label in (
            (top, "*", 16, "gold", "top mean"), (pick, "o", 15, "none", "pick")):
        if row["family"] not in ("bert", "union"):
            continue
        x = _x_of(row, combo_x)
        if x is None:
            continue
        if row["family"] == "union":
            x -= 0.12
        elif row["stage"] == "refine":
            x += 0.12
        same = top["candidate"] == pick["candidate"]
        if label == "pick" and same:
            continue
        text = ("top mean = pick" if same and label == "top mean" else label)
        ax.plot([x], [row["mean_score"]], marker=marker, markersize=size,
                markerfacecolor=face, markeredgecolor="k", markeredgewidth=1.3,
                linestyle="none", zorder=5,
                label=f"{text}: {describe(row)} {row['mean_score']:.3f}")
    handles, labels = ax.get_legend_handles_labels()
    rec = result.recommendation
    design = result.design
    handles.append(Patch(color="0.5", alpha=0.25, linewidth=0))
    labels.append(f"shaded / bars: {round(100 * rec.level)}% interval of the mean, {design}\n"
                  "(corrected resampled t, Nadeau & Bengio)")
    _focus_y(result, ax, screen, combo_x)
    ticks = list(range(n + 1)) + list(combo_x.values())
    tick_labels = ["emb" if i == 0 else str(i) for i in range(n + 1)]
    tick_labels += [label.replace(" ", "\n") for label in combo_x]
    ax.set_xticks(ticks)
    ax.set_xticklabels(tick_labels)
    ax.set_xlabel("layer (hidden state; combinations on the right)")
    ax.set_ylabel(f"{result.scoring} ({design}; lines: {result.screen_head} head)")
    ax.grid(True, alpha=0.3)
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5,
              frameon=False)
    ax.set_title(title or f"bertfeat probe: {result.model}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path))
    return fig


def _focus_y(result: PlotMixin, ax: Any, screen: pd.DataFrame, combo_x: dict) -> None:
    """Zoom the y axis on the informative range; name the points left below it.

    A degenerate feature set (e.g. the ``[CLS]`` vector of the embedding layer, the
    same for every text) would otherwise squash every other line to the top.
    """
    scores = screen["mean_score"].to_numpy(dtype=float)
    if len(scores) == 0:
        return
    refs = [v for v in result.baselines.values() if v is not None]
    top = max([float(scores.max()), float(result.top["mean_score"]), *refs])
    low = min([float(np.quantile(scores, 0.1)), *refs])
    pad = 0.08 * max(top - low, 1e-3)
    floor = low - pad
    if float(scores.min()) >= floor:
        return
    ax.set_ylim(floor, top + pad)
    clipped = screen[screen["mean_score"] < floor]
    notes = []
    for _, row in clipped.iterrows():
        x = _x_of(row, combo_x) or 0.0
        ax.annotate("", xy=(x, floor + 0.15 * pad), xytext=(x, floor + 0.9 * pad),
                    arrowprops={"arrowstyle": "->", "color": "0.4"})
        notes.append(f"{row['layer']} {row['pooling']} {row['mean_score']:.3f}")
    ax.text(0.99, 0.01, "below the axis: " + ", ".join(notes[:4])
            + (" ..." if len(notes) > 4 else ""), transform=ax.transAxes, fontsize=7,
            color="0.35", va="bottom", ha="right")


class PlotMixin:
    """:class:`~bertfeat.probe.result.ProbeResult`'s figure."""

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
        return _plot(self, path, ax, title)
