"""The probe's figure: score per layer, one line per pooling, baselines as lines."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .candidates import SWEEP_POOLINGS
from .result import describe

if TYPE_CHECKING:  # pragma: no cover
    from .result import ProbeResult

__all__ = ["plot"]

def plot(result: ProbeResult, path: str | os.PathLike | None = None, ax: Any = None,
         title: str | None = None):
    """:meth:`ProbeResult.plot`: draw (and optionally write a PNG of) the probe's figure."""
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(10.0, 4.8), dpi=110)
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
    # (and the word probe's sub-word poolings after them)
    colors = {p: f"C{i}" for i, p in enumerate(dict.fromkeys(
        [*SWEEP_POOLINGS, *sorted(set(singles["pooling"]))]))}
    present = set(singles["pooling"])
    for pooling in [p for p in colors if p in present]:
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
    lines = [(name, label, style) for name, label, style in getattr(
        result, "baseline_lines", (("tfidf", "TF-IDF + linear", "--"),
                                   ("random", "random weights (best)", ":"))) if style]
    for i, (name, label, style) in enumerate(lines):
        value = result.baselines[name]
        if value is not None:
            ax.axhline(value, color="0.35" if i == 0 else "0.6",
                       linestyle=style, linewidth=1.4, label=f"{label} {value:.3f}")
    best = result.best
    if best["family"] == "bert":
        bx = (float(best["layer_index"]) if pd.notna(best["layer_index"])
              else combo_x.get(best["layer"]))
        if bx is not None:
            ax.plot([bx], [best["mean_score"]], marker="*", markersize=16,
                    color="gold", markeredgecolor="k", linestyle="none",
                    label=f"best: {describe(best)} {best['mean_score']:.3f}", zorder=5)
    _focus_y(result, ax, screen, singles, combo_x)
    ticks = list(range(n + 1)) + list(combo_x.values())
    labels = ["emb" if i == 0 else str(i) for i in range(n + 1)]
    labels += [label.replace(" ", "\n") for label in combo_x]
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.set_xlabel("layer (hidden state; combinations on the right)")
    head = result.screen_head
    ax.set_ylabel(f"{result.scoring} ({result.n_splits}-fold CV, {head} head)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(title or f"bertfeat probe: {result.model}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path))
    return fig


def _focus_y(result: ProbeResult, ax: Any, screen: pd.DataFrame, singles: pd.DataFrame,
             combo_x: dict) -> None:
    """Zoom the y axis on the informative range; name the points left below it.

    A degenerate feature set (e.g. the ``[CLS]`` vector of the embedding layer, the
    same for every text) would otherwise squash every other line to the top.
    """
    scores = screen["mean_score"].to_numpy(dtype=float)
    if len(scores) == 0:
        return
    refs = [v for v in result.baselines.values() if v is not None]
    top = max([float(scores.max()), float(result.best["mean_score"]), *refs])
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
