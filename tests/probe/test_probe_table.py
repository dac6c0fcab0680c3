"""Issue 28: the probe's printed table stays aligned with long labels."""

from __future__ import annotations

import numpy as np

from bertfeat.probe import probe

from ..conftest import WORDS


def test_rows_align_with_long_layer_labels(tiny_model):
    rng = np.random.default_rng(2)
    texts = [" ".join(rng.choice(WORDS, 5)) for _ in range(24)]
    y = np.arange(24) % 2
    res = probe(texts, y, model=tiny_model, layers=[-1, -2], poolings=("mean",),
                heads=("logreg",), cv=2, random_control=False, union=False, cache=False,
                verbose=False, featurizer_params={"precision": "fp32"})
    # the labels a chunked combination and a TF-IDF head carry, and a negative interval
    res.table.loc[res.table.index[0], "layer"] = "L3-6 concat chunked"
    res.table.loc[res.table.index[-1], "head"] = "logreg C=100 (tfidf)"
    res.table.loc[res.table.index[1], "ci_low"] = -0.25
    lines = res.summary().splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("rank"))
    rows = lines[header + 2: header + 2 + len(res.table)]
    assert len(rows) == len(res.table)
    title = lines[header]
    for column, values in (("pooling", res.table["pooling"]), ("head", res.table["head"]),
                           ("p vs top", None)):
        start = title.index(column)
        for row, value in zip(rows, values if values is not None else [None] * len(rows)):
            if value is not None:
                assert row[start:start + len(value)] == value, (column, row, title)
    # the score, the interval and the fit time end where their titles end in every row
    metric_end = title.index(res.scoring) + len(res.scoring)
    for row, score in zip(rows, res.table["mean_score"]):
        assert row[metric_end - 6:metric_end] == f"{score:.4f}"[-6:], (row, title)
    assert len({len(row) for row in rows}) == 1, rows
