"""Issue 28: the torch-free runtime runs when installed as the docs say.

``pip install onnxruntime tokenizers numpy`` and ``pip install --no-deps bertfeat``: nothing
else. Two checks, both in a subprocess as a user runs it:

* a process where importing torch, transformers, scikit-learn, scipy, joblib, pandas or
  diskcache fails (a meta-path finder) loads an export and predicts what the pipeline
  predicts, for a BERT pipeline and a TF-IDF one;
* (slow) a fresh virtualenv (no system site-packages) with only those three packages and
  the package installed with ``--no-deps`` does the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from bertfeat import BertFeaturizer
from bertfeat.export import export_pipeline

from ..conftest import WORDS

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

ROOT = Path(__file__).resolve().parents[2]
#: what the runtime must never import (each would pull torch or a scientific stack)
BLOCKED = ("torch", "transformers", "sklearn", "scipy", "joblib", "pandas", "diskcache")

_rng = np.random.default_rng(3)
TEXTS = [" ".join(_rng.choice(WORDS, size=int(_rng.integers(2, 20)))) for _ in range(40)]
LABELS = np.array([int("good" in t or "great" in t or "love" in t) for t in TEXTS])
NEW = ["the film was good", "", "awful plot", "i love this movie " * 30] + TEXTS[:8]

#: run in the subprocess: load each export, predict, compare with the pipeline's labels
_SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys
    BLOCKED = set(sys.argv[2].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"blocked import: {name}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    case = json.loads(open(sys.argv[1], encoding="utf-8").read())
    from bertfeat import runtime
    for folder, want in case["exports"].items():
        pipe = runtime.load(folder)
        got = pipe.predict(case["texts"]).tolist()
        assert got == want, (folder, got, want)
        assert pipe.predict_proba(case["texts"]).shape == (len(want), 2)
    print("ok", sorted(m for m in BLOCKED if m in sys.modules))
""")


@pytest.fixture(scope="module")
def exports(tiny_model, tmp_path_factory) -> Path:
    """Two exports (BERT + logreg, TF-IDF + logreg) and the labels their pipelines give."""
    root = tmp_path_factory.mktemp("runtime-install")
    bert = make_pipeline(BertFeaturizer(model=tiny_model, precision="fp32", cache=False,
                                        layers=-1, pooling="mean"),
                         LogisticRegression(max_iter=500)).fit(TEXTS, LABELS)
    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          LogisticRegression(C=10, max_iter=1000)).fit(TEXTS, LABELS)
    case = {"texts": NEW, "exports": {}}
    for name, pipe in (("bert", bert), ("tfidf", tfidf)):
        export_pipeline(pipe, root / name, verbose=False)
        case["exports"][str(root / name)] = pipe.predict(NEW).tolist()
    (root / "case.json").write_text(json.dumps(case), encoding="utf-8")
    (root / "check.py").write_text(_SCRIPT, encoding="utf-8")
    return root


def _run(python: str, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([python, str(root / "check.py"), str(root / "case.json"),
                           ",".join(BLOCKED)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=root)


def test_runtime_predicts_with_torch_sklearn_joblib_blocked(exports):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = _run(sys.executable, exports, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok []"


def test_the_blocker_blocks(exports, tmp_path):
    """The check above would fail if the runtime imported joblib (as it once did)."""
    script = exports / "check.py"
    text = script.read_text(encoding="utf-8")
    bad = tmp_path / "check.py"
    bad.write_text(text.replace("from bertfeat import runtime", "import joblib\n"
                                "from bertfeat import runtime"), encoding="utf-8")
    done = subprocess.run([sys.executable, str(bad), str(exports / "case.json"),
                           ",".join(BLOCKED)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "blocked import: joblib" in done.stderr


@pytest.mark.slow
def test_runtime_in_a_fresh_virtualenv(exports, tmp_path):
    """``pip install onnxruntime tokenizers numpy`` + ``pip install --no-deps bertfeat``
    in a new virtualenv (about 15 s from the local pip cache)."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = str(env_dir / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run(pip + ["onnxruntime", "tokenizers", "numpy"], capture_output=True,
                          text=True, timeout=600, env=env)
    if done.returncode != 0:
        pytest.skip(f"cannot install onnxruntime/tokenizers/numpy here: {done.stderr[-500:]}")
    done = subprocess.run(pip + ["--no-deps", str(ROOT)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, env=env, check=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "bertfeat" in installed and not installed & {"torch", "joblib", "scikit-learn"}
    done = _run(python, exports, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok []"
