"""Issue 14: command-line rough edges a new user hits first.

``--layers -4,-3`` (a negative list without ``=``), ``bertfeat --version``, ``cache clear``
reporting texts (not database rows), and a float target whose values are whole numbers
(read as classes) getting a hint towards ``--task regression``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bertfeat import FeatureStore, __version__
from bertfeat.cli import _glue_negative_layers, main

from ..conftest import WORDS

N_TEXTS = 24


@pytest.fixture
def csv_file(tmp_path):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 5)) + f" {i}" for i in range(N_TEXTS)]
    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": texts, "label": [i % 2 for i in range(N_TEXTS)]}).to_csv(
        path, index=False)
    return path


@pytest.mark.parametrize(("argv", "want"), [
    (["embed", "x.csv", "--layers", "-4,-3"], ["embed", "x.csv", "--layers=-4,-3"]),
    (["--layers", "-2,1", "-o", "a"], ["--layers=-2,1", "-o", "a"]),
    (["--layers", "-1"], ["--layers", "-1"]),  # argparse reads a lone negative number
    (["--layers", "--quiet"], ["--layers", "--quiet"]),  # an option stays an option
    (["--model", "-4,-3"], ["--model", "-4,-3"]),  # only --layers is glued
])
def test_negative_layer_lists_are_glued(argv, want):
    assert _glue_negative_layers(argv) == want


def test_embed_takes_a_negative_layer_list_without_equals(csv_file, tiny_model, tmp_path,
                                                          capsys):
    out = tmp_path / "f.parquet"
    assert main(["embed", str(csv_file), "-o", str(out), "--model", tiny_model,
                 "--layers", "-2,-1", "--pooling", "mean", "--precision", "fp32"]) == 0
    assert "layers [2, 3]" in capsys.readouterr().out
    columns = pd.read_parquet(out).columns
    assert columns[0] == "L2_mean_0" and columns[-1] == "L3_mean_31"


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"bertfeat {__version__}"


def test_cache_clear_reports_texts(csv_file, tiny_model, tmp_path, capsys):
    store_dir = tmp_path / "store"
    assert main(["--cache-dir", str(store_dir), "embed", str(csv_file), "-o",
                 str(tmp_path / "f.npy"), "--model", tiny_model, "--precision", "fp32"]) == 0
    with FeatureStore(store_dir).cache.read() as con:  # a text's record is several rows
        rows = sum(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                   for table in ("blocks", "vectors", "texts"))
    assert rows > N_TEXTS  # (its text row, its block's rows): the report must count texts
    capsys.readouterr()
    assert main(["--cache-dir", str(store_dir), "cache", "clear", "--model", tiny_model]) == 0
    assert f"removed {N_TEXTS} stored texts of model" in capsys.readouterr().out
    assert main(["--cache-dir", str(store_dir), "embed", str(csv_file), "-o",
                 str(tmp_path / "f.npy"), "--model", tiny_model, "--precision", "fp32"]) == 0
    capsys.readouterr()
    assert main(["--cache-dir", str(store_dir), "cache", "clear"]) == 0
    assert f": {N_TEXTS} stored texts removed" in capsys.readouterr().out


def test_whole_number_float_target_suggests_regression(tiny_model, tmp_path, capsys):
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, 4)) for _ in range(30)]
    scores = [float(i % 7) for i in range(29)] + [9.0]  # 9.0 once: a "class" of one
    pd.DataFrame({"text": texts, "score": scores}).to_csv(tmp_path / "s.csv", index=False)
    argv = ["probe", str(tmp_path / "s.csv"), "--label-col", "score", "--model", tiny_model,
            "--cv", "3", "--heads", "ridge", "--poolings", "mean", "--no-random-control",
            "--no-tfidf", "--out", str(tmp_path / "o"), "--quiet", "--n-jobs", "1",
            "--no-save-model"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "class 9.0 has only 1 example(s)" in err and "--task regression" in err
