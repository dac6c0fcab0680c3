"""The text report of a probe: the table's top rows, the baselines and the winner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .result import describe

if TYPE_CHECKING:  # pragma: no cover
    from .result import ProbeResult

__all__ = ["summary"]

#: metrics in [0, 1] whose differences read as percentage points
PROPORTION_METRICS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc",
                      "jaccard", "average_precision")


def summary(result: ProbeResult, top: int = 12) -> str:
    """:meth:`ProbeResult.summary`: the ``top`` rows, the baselines and the winner."""
    metric = result.scoring
    lines = []
    shown = result.table.head(top)
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
    if len(result.table) > top:
        lines.append(f"... {len(result.table) - top} more rows in the CSV")
    lines.append("")
    best = result.best
    b = result.baselines

    def fmt(value: float | None) -> str:
        return "not run" if value is None else f"{value:.4f}"

    lines.append(f"last layer (L{result.n_layers}, mean, {result.screen_head}): "
                 f"{fmt(b['last_layer'])}   TF-IDF + linear: {fmt(b['tfidf'])}   "
                 f"random-weights control (best): {fmt(b['random'])}")
    fam = result.families
    lines.append(f"best BERT (truncated): {fmt(fam['bert'])}   chunked long texts: "
                 f"{fmt(fam['chunked'])}   TF-IDF ⊕ best layer: {fmt(fam['union'])}")
    note = result.encoding.get("chunk")
    if note:
        lines.append(f"long texts: {note}")
    control = result.encoding.get("control")
    if control and "stratified subset" in control:  # else: as documented, every text
        lines.append(f"control: {control}")
    proportion = metric.startswith(PROPORTION_METRICS)
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
