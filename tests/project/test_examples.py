"""Issue 5: every script in examples/ runs (small settings) and prints what it promises.

Each runs in a subprocess, as a user would run it, with the default (bundled) model and
the per-test feature store (``BERTFEAT_CACHE_DIR`` is inherited from the test).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import needs_default_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DATA = Path(__file__).resolve().parents[2] / "data"

pytestmark = [
    needs_default_model,
    pytest.mark.skipif(not (DATA / "sst2_train.csv").exists(), reason="data/ not present"),
]


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _accuracies(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"accuracy (0\.\d+|1\.000)", text)]


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    tested = {"quickstart.py", "grid_search.py", "mlp_head.py", "svm_head.py",
              "cv_study_columntransformer.py", "regression.py", "persist_skops.py"}
    assert scripts == tested, f"add a test for {sorted(scripts - tested)}"


def test_quickstart():
    out = _run("quickstart.py", "--quick")
    assert "SST-2: 200 training and 200 test sentences" in out
    assert len(_accuracies(out)) == 2


def test_grid_search():
    out = _run("grid_search.py", "--quick")
    assert "12 fits (3-fold grid search)" in out
    assert "best: {'bertfeaturizer__layers'" in out
    test_acc = float(re.search(r"refitted best pipeline: (\d\.\d+)", out).group(1))
    assert 0.5 < test_acc <= 1.0
    # 12 fits, 200 sentences: the encoder ran on each sentence once
    assert "the encoder ran on 200 texts (200 unique training sentences" in out


def test_mlp_head():
    out = _run("mlp_head.py", "--quick")
    assert "encoded 450 sentences" in out
    lines = [line for line in out.splitlines() if "test accuracy" in line]
    assert [line.split(" test accuracy")[0].strip() for line in lines] == [
        "BERT layer -1 (mean) -> MLP(256)", "BERT layer -1 (mean) -> LogisticRegression",
        "TF-IDF (1-2 grams) -> MLP(256)"]
    assert all(0.4 < acc <= 1.0 for acc in _accuracies(out))


def test_svm_head():
    out = _run("svm_head.py", "--quick")
    assert len(re.findall(r"CV accuracy 0\.\d+", out)) == 4
    assert "best: {" in out and "support vectors" in out


def test_cv_study_columntransformer():
    out = _run("cv_study_columntransformer.py", "--quick")
    assert "300 messages" in out and "['text', 'length', 'digits']" in out
    rows = {name: float(re.search(rf"{re.escape(name)}\s+(0\.\d+)", out).group(1))
            for name in ("numbers only (length, digits)", "text only (BERT layer -3)",
                         "text + numbers")}
    # the text carries most of the signal: BERT features beat the two numbers alone
    assert rows["text only (BERT layer -3)"] > rows["numbers only (length, digits)"]


def test_regression():
    out = _run("regression.py", "--quick")
    assert "200 training and 100 test sentences" in out
    r2 = {name: float(re.search(rf"{name}.*R2 (-?\d\.\d+)", out).group(1))
          for name in ("BertFeaturizer", "TF-IDF")}
    # frozen sentence embeddings carry sentiment: they explain part of the variance
    assert r2["BertFeaturizer"] > 0.05


def test_persist_skops():
    pytest.importorskip("skops")
    out = _run("persist_skops.py", "--quick")
    assert ("types skops does not trust by default: "
            "['bertfeat.estimators.featurizer.BertFeaturizer']") in out
    assert "load without trusted=: refused (UntrustedTypesFoundException)" in out
    assert "predictions identical: True" in out
    size = int(re.search(r"spam\.skops: (\d+) KiB", out).group(1))
    assert size < 1024  # no weights in the file (the model alone is 87 MiB)
