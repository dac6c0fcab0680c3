"""Tables of a probe for a paper or a report: Markdown and LaTeX.

:func:`report_table` renders the rows that matter for a cross-validation study -- the
top rows, the recommended pick and the baselines -- with the mean score, the corrected
95% interval, the corrected paired p-value against the top row and whether the row is
tied with it, followed by a note that states the design, the methods and the pick rule,
so a pasted table is self-explaining.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

__all__ = ["report_table", "format_p"]

_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "\\": r"\textbackslash{}", "⊕": r"$\oplus$", "·": r"$\cdot$",
                  "±": r"$\pm$", "≥": r"$\geq$", "×": r"$\times$", "–": "--", "—": "---"}


def format_p(p: float) -> str:
    """A p-value for reading: ``<0.001``, ``0.012``, ``0.41``, ``1``.

    Parameters
    ----------
    p : float

    Returns
    -------
    str
    """
    if p < 0.001:
        return "<0.001"
    if p >= 0.995:
        return "1"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def report_table(table: pd.DataFrame, *, fmt: str, describe: Callable[[pd.Series], str],
                 scoring: str, top: str, pick: str, extra: Sequence[str] = (),
                 rows: int = 10, note: str = "", digits: int = 3) -> str:
    """Render the study's table as Markdown or LaTeX.

    Parameters
    ----------
    table : pandas.DataFrame
        The annotated probe table (``rank``, ``mean_score``, ``ci_low``, ``ci_high``,
        ``p_value``, ``tied``, ``n_features``, ``candidate``), best first.
    fmt : {"markdown", "latex"}
    describe : callable
        Row -> the candidate's name.
    scoring : str
        The metric's name (column header).
    top, pick : str
        Candidate keys of the top row and the recommended one (marked in the table).
    extra : sequence of str
        Further candidate keys to show even when below ``rows`` (the baselines).
    rows : int, default=10
        Leading rows to show.
    note : str, default=""
        The text under the table (design, methods, pick rule).
    digits : int, default=3
        Decimals of scores.

    Returns
    -------
    str
    """
    if fmt not in ("markdown", "latex"):
        raise ValueError(f"fmt must be 'markdown' or 'latex', got {fmt!r}")
    keys = list(table["candidate"].iloc[:rows]) + [pick, *extra]
    shown = table[table["candidate"].isin(set(keys))]
    body = []
    for _, row in shown.iterrows():
        name = describe(row)
        marks = [m for m, key in (("top", top), ("pick", pick)) if row["candidate"] == key]
        p = "–" if row["candidate"] == top else format_p(float(row["p_value"]))
        width = "" if pd.isna(row["n_features"]) else f"{int(row['n_features']):,}"
        body.append((str(row["rank"]), name, marks, f"{row['mean_score']:.{digits}f}",
                     f"[{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]", p,
                     "yes" if row["tied"] else "no", width))
    header = ("rank", "candidate", scoring, "95% CI", "p vs top", "tied", "features")
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|---:|---|---:|---|---:|:---:|---:|"]
        for rank, name, marks, mean, ci, p, tied, width in body:
            label = name + (f" ({', '.join(marks)})" if marks else "")
            if "pick" in marks:
                label, mean = f"**{label}**", f"**{mean}**"
            lines.append(f"| {rank} | {label} | {mean} | {ci} | {p} | {tied} | {width} |")
        if note:
            lines += ["", note]
        return "\n".join(lines) + "\n"
    lines = [r"\begin{table}[ht]", r"\centering", r"\begin{tabular}{rlrlrcr}",
             r"\toprule",
             " & ".join(_latex(h) for h in header) + r" \\", r"\midrule"]
    for rank, name, marks, mean, ci, p, tied, width in body:
        label = _latex(name) + (f" ({', '.join(marks)})" if marks else "")
        if "pick" in marks:
            label, mean = rf"\textbf{{{label}}}", rf"\textbf{{{mean}}}"
        lines.append(" & ".join([rank, label, mean, ci, _latex(p), tied, _latex(width)])
                     + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if note:
        lines.append(rf"\caption{{{_latex(note)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
