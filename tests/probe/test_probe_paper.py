"""Markdown and LaTeX tables of a probe study."""

import pandas as pd
import pytest

from bertfeat.probe.paper import format_p, report_table


def _table():
    return pd.DataFrame({
        "rank": [1, 2, 3, 4],
        "family": ["union", "bert", "bert", "tfidf"],
        "name": ["TF-IDF ⊕ L6 · mean", "L6 · mean", "L2_x · cls", "TF-IDF & 100%"],
        "mean_score": [0.8667, 0.8613, 0.70, 0.7167],
        "ci_low": [0.83, 0.825, 0.66, 0.68],
        "ci_high": [0.90, 0.897, 0.74, 0.75],
        "p_value": [1.0, 0.41, 0.0001, 0.0004],
        "tied": [True, True, False, False],
        "n_features": pd.array([pd.NA, 384, 1536, pd.NA], dtype="Int64"),
        "candidate": ["u", "b6", "b2", "t"],
    })


def _render(fmt, **kwargs):
    args = {"fmt": fmt, "describe": lambda r: r["name"], "scoring": "accuracy", "top": "u",
            "pick": "b6", "extra": ["t"], "rows": 1, "note": "5-fold CV; p: corrected."}
    return report_table(_table(), **{**args, **kwargs})


def test_markdown_rows_marks_and_note():
    text = _render("markdown")
    lines = text.strip().splitlines()
    assert lines[0] == "| rank | candidate | accuracy | 95% CI | p vs top | tied | features |"
    body = [line for line in lines[2:] if line.startswith("| ")]
    # the first row, the pick and the extra (baseline) row; not row 3
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in body]
    assert [c[0] for c in cells] == ["1", "2", "4"]
    assert cells[0][1] == "TF-IDF ⊕ L6 · mean (top)" and cells[0][4] == "–"
    assert cells[1] == ["2", "**L6 · mean (pick)**", "**0.861**", "[0.825, 0.897]", "0.41",
                        "yes", "384"]
    assert cells[2][4] == "<0.001" and cells[2][5] == "no" and cells[2][6] == ""
    assert lines[-1] == "5-fold CV; p: corrected."


def test_latex_is_escaped_and_complete():
    text = _render("latex", rows=4)
    assert text.startswith("\\begin{table}") and text.rstrip().endswith("\\end{table}")
    assert "\\toprule" in text and "\\bottomrule" in text
    assert "TF-IDF $\\oplus$ L6 $\\cdot$ mean (top)" in text
    assert "L2\\_x" in text and "TF-IDF \\& 100\\%" in text
    assert "\\textbf{L6 $\\cdot$ mean (pick)} & \\textbf{0.861}" in text
    assert text.count(" \\\\\n") == 5  # header + 4 rows
    assert "\\caption{5-fold CV; p: corrected.}" in text


def test_format_p_and_errors():
    assert [format_p(p) for p in (0.0, 0.0004, 0.012, 0.41, 0.999)] == [
        "<0.001", "<0.001", "0.012", "0.41", "1"]
    with pytest.raises(ValueError, match="fmt must be"):
        _render("html")
