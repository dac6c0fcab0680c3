"""The text report of a probe: the table's top rows, the baselines, the tied group, the pick."""

from __future__ import annotations

from .candidates import describe
from .families.finetune import FROZEN_FAMILIES
from .paper import format_p, report_table

__all__ = ["ReportMixin", "finetune_line", "PROPORTION_METRICS"]

#: metrics in [0, 1] whose differences read as percentage points
PROPORTION_METRICS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc",
                      "jaccard", "average_precision")


def _vs_top(row, top_key: str) -> str:
    if row["candidate"] == top_key:
        return "top"
    return f"{format_p(float(row['p_value']))}{' =' if row['tied'] else ''}"


def _summary(result: ReportMixin, top: int) -> str:
    metric = result.scoring
    rec = result.recommendation
    level = f"{round(100 * rec.level)}%"
    lines = []
    shown = result.table.head(top)
    # every column as wide as its longest cell ("L3-6 concat chunked", "logreg C=100",
    # a negative r2 interval), so rows stay aligned whatever the labels
    cells = {
        name: [str(v) for v in shown[name]] for name in ("family", "layer", "pooling", "head")}
    cells["interval"] = [f"[{lo:.4f}, {hi:.4f}]"
                         for lo, hi in zip(shown["ci_low"], shown["ci_high"])]
    titles = {"family": "family", "layer": "layer", "pooling": "pooling", "head": "head",
              "interval": level + " interval"}
    minimum = {"family": 6, "layer": 14, "pooling": 8, "head": 13, "interval": 16}
    w = {name: max([minimum[name], len(titles[name]), *map(len, values)])
         for name, values in cells.items()}
    header = (f"{'rank':>4}  {'family':<{w['family']}}  {'layer':<{w['layer']}}  "
              f"{'pooling':<{w['pooling']}}  {'head':<{w['head']}}  {metric:>8}  "
              f"{titles['interval']:<{w['interval']}}  {'p vs top':>9}  {'fit s':>6}")
    lines.append(header)
    lines.append("-" * len(header))
    for i, (_, row) in enumerate(shown.iterrows()):
        mark = "*" if row["candidate"] == rec.pick else " "
        lines.append(
            f"{row['rank']:>4}{mark} {cells['family'][i]:<{w['family']}}  "
            f"{cells['layer'][i]:<{w['layer']}}  {cells['pooling'][i]:<{w['pooling']}}  "
            f"{cells['head'][i]:<{w['head']}}  {row['mean_score']:>8.4f}  "
            f"{cells['interval'][i]:<{w['interval']}}  {_vs_top(row, rec.top):>9}  "
            f"{row['fit_time']:>6.2f}")
    if len(result.table) > top:
        lines.append(f"... {len(result.table) - top} more rows in the CSV")
    lines.append(f"{result.design}, the same splits for every row; interval: corrected "
                 f"resampled t (Nadeau & Bengio); p vs top: corrected paired t-test, "
                 f"two-sided ('=' tied: p >= {rec.alpha:g}); * the pick")
    lines.append("")
    b = result.baselines

    def fmt(value: float | None) -> str:
        return "not run" if value is None else f"{value:.4f}"

    control = f"random-weights control (best): {fmt(b['random'])}"
    subset = result.control_subset
    if subset is not None:  # scored on a subset: say so
        control = (f"random-weights control (best, on {subset['rows']:,} of "
                   f"{subset['texts']:,} texts): {fmt(b['random'])} (the real model's best "
                   f"feature set on the same texts: {subset['score']:.4f})")
    last_key = result.baseline_keys["last_layer"]
    last_head = (result.table.set_index("candidate").loc[last_key, "head"]
                 if last_key is not None else result.screen_head)
    lines.append(f"last layer (L{result.n_layers}, mean, {last_head}): "
                 f"{fmt(b['last_layer'])}   TF-IDF + linear: {fmt(b['tfidf'])}   {control}")
    fam = result.families
    lines.append(f"best BERT (truncated): {fmt(fam['bert'])}   chunked long texts: "
                 f"{fmt(fam['chunked'])}   TF-IDF ⊕ best layer: {fmt(fam['union'])}")
    tuned = finetune_line(result)
    if tuned:
        lines.append(tuned)
    note = result.encoding.get("chunk")
    if note:
        lines.append(f"long texts: {note}")
    control = result.encoding.get("control")
    if control and "stratified subset" in control:  # else: as documented, every text
        lines.append(f"control: {control}")
    top_row, best = result.top, result.best

    def score(row) -> str:
        return (f"{metric} {row['mean_score']:.4f} [{row['ci_low']:.4f}, "
                f"{row['ci_high']:.4f}]")

    lines.append(f"selection rule: {rec.select} -- {rec.rule}")
    lines.append(f"top mean: {describe(top_row)}  {score(top_row)}")
    n_rec = sum(1 for key in result.table["candidate"] if result.is_recommendable(key))
    rows = result.table.set_index("candidate")
    group = ", ".join(describe(rows.loc[key]) for key in rec.group[:4])
    more = f", ... {len(rec.group) - 4} more" if len(rec.group) > 4 else ""
    lines.append(f"tied with it (corrected paired t-test, p >= {rec.alpha:g}): "
                 f"{len(rec.group)} of {n_rec} recommendable candidates: {group}{more}")
    why = f"rule {rec.select}" + ("; it is also the top mean"
                                  if best["candidate"] == rec.top and rec.select != "top"
                                  else "")
    lines.append(f"best: {describe(best)}  {score(best)}  ({why})")
    if best["family"] == "tfidf":
        lines.append("  the pick is TF-IDF alone: no encoder layer (the model's vectors are "
                     "not used)")
    elif best["family"] == "union":
        lines.append(f"  the pick is TF-IDF joined with encoder features ({best['layer']})")
    gains = _gains(result)
    if gains:
        lines.append("  best vs " + "; vs ".join(gains))
    nested = result.nested
    if nested is not None:
        lines.append(_nested_line(result, nested))
    holdout = result.holdout
    if holdout is not None:
        lines.append(f"held-out estimate ({holdout['n_test']:,} rows never seen by the "
                     f"selection): {metric} {holdout['score']:.4f} for "
                     f"{holdout['picks'][0]} (selected and fitted on the other "
                     f"{holdout['n_train']:,} rows); CV score of the best above: "
                     f"{best['mean_score']:.4f}")
    return "\n".join(lines)


def _gains(result: ReportMixin) -> list[str]:
    """``last layer: +0.5 points, p=0.62 (not significant)`` per baseline that ran."""
    proportion = result.scoring.startswith(PROPORTION_METRICS)
    out = []
    for name, label in (("last_layer", "last layer"), ("tfidf", "TF-IDF"),
                        ("random", "random weights")):
        test = result.comparisons.get(name)
        if test is None:
            continue
        if result.baseline_keys[name] == result.best["candidate"]:
            out.append(f"{label}: the pick is that row")
            continue
        if name == "random" and result.control_subset is not None:
            label = f"random weights (vs {result.control_subset['layer']})"
        diff = f"{100 * test.diff:+.1f} points" if proportion else f"{test.diff:+.4f}"
        verdict = "significant" if test.significant(result.recommendation.alpha) \
            else "not significant"
        p = format_p(test.p_value)
        out.append(f"{label}: {diff}, p{p if p.startswith('<') else '=' + p} ({verdict})")
    return out


def _nested_line(result: ReportMixin, nested: dict) -> str:
    metric = result.scoring
    picks = nested["picks"]
    common = max(set(picks), key=picks.count)
    return (f"nested CV estimate of the whole selection ({len(nested['scores'])} outer "
            f"folds, selection on inner folds): {metric} {nested['mean']:.4f} "
            f"[{nested['ci_low']:.4f}, {nested['ci_high']:.4f}]  vs CV score of the best "
            f"{result.best['mean_score']:.4f}; the outer folds picked {common} "
            f"{picks.count(common)} of {len(picks)} times")


def _study_table(result: ReportMixin, fmt: str, rows: int) -> str:
    rec = result.recommendation
    extra = [key for key in result.baseline_keys.values() if key is not None]
    note = (f"{result.scoring}: mean over {result.design} (the same splits for every row); "
            f"{round(100 * rec.level)}% CI: corrected resampled t (Nadeau & Bengio 2003; "
            f"Bouckaert & Frank 2004); p vs top: corrected paired t-test, two-sided; tied: "
            f"p >= {rec.alpha:g}. ")
    note += f"Pick (rule {rec.select}): {rec.rule}."
    if result.nested is not None:
        n = result.nested
        note += (f" Nested CV estimate of the selection: {n['mean']:.3f} "
                 f"[{n['ci_low']:.3f}, {n['ci_high']:.3f}] ({len(n['scores'])} outer folds).")
    if result.holdout is not None:
        h = result.holdout
        note += f" Held-out estimate: {h['score']:.3f} ({h['n_test']:,} rows)."
    return report_table(result.table, fmt=fmt, describe=describe, scoring=result.scoring,
                        top=rec.top, pick=rec.pick, extra=extra, rows=rows, note=note)


def finetune_line(result: ReportMixin) -> str | None:
    """``fine-tuning: +3.1 points over the best frozen pipeline at 40× the fit time``.

    The frozen pipeline's fit time per fold is its head's fit time plus the main encoder
    pass scaled to a training fold (``encoding["seconds"]`` × (k - 1) / k): what fitting
    it on raw texts costs without a store.

    Parameters
    ----------
    result : ProbeResult
        A result whose table may hold the ``finetune`` family's row.

    Returns
    -------
    str or None
        None when the fine-tuning family did not run.
    """
    table = result.table
    tuned = table[table["family"] == "finetune"]
    frozen = table[table["family"].isin(FROZEN_FAMILIES) & (table["stage"] != "control")]
    if tuned.empty:
        return None
    row = tuned.iloc[0]
    if frozen.empty:
        return (f"fine-tuning: {result.scoring} {row['mean_score']:.4f} "
                f"({row['fit_time']:.1f} s per fold); no frozen pipeline to compare with")
    best = frozen.iloc[0]  # the table is sorted, best first
    k = max(result.n_splits, 2)
    frozen_fit = float(best["fit_time"]) + float(result.encoding.get("seconds") or 0.0) * (
        k - 1) / k
    diff = float(row["mean_score"] - best["mean_score"])
    proportion = result.scoring.startswith(PROPORTION_METRICS)
    gain = f"{100 * abs(diff):.1f} points" if proportion else f"{abs(diff):.4f}"
    side = "over" if diff >= 0 else "below"
    ratio = float(row["fit_time"]) / max(frozen_fit, 1e-9)
    return (f"fine-tuning: {'+' if diff >= 0 else '-'}{gain} {side} the best frozen pipeline "
            f"at {ratio:.0f}× the fit time "
            f"({row['fit_time']:.1f} s vs {frozen_fit:.1f} s per fold, encoding included; "
            f"{result.scoring} {row['mean_score']:.4f} vs {best['mean_score']:.4f})")


class ReportMixin:
    """:class:`~bertfeat.probe.result.ProbeResult`'s text reports (the result holds the
    table, the recommendation and the settings they read)."""

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
        return _summary(self, top)

    def report(self, fmt: str = "markdown", rows: int = 10) -> str:
        """The study's table for a paper: Markdown or LaTeX (booktabs).

        The ``rows`` best rows, the recommendation and the baseline rows, with the mean,
        the 95% interval, the p-value against the top row and whether the row is tied
        with it; a note under the table states the design, the methods, the pick rule
        and the nested (or held-out) estimate.

        Parameters
        ----------
        fmt : {"markdown", "latex"}, default="markdown"
        rows : int, default=10
            Leading rows of the table to show.

        Returns
        -------
        str
        """
        return _study_table(self, fmt, rows)
