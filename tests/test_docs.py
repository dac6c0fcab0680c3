"""Issue 14: the API reference builds from the docstrings, and every public module says
what it exports (``__all__``), which is also what the reference documents."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import build_api  # noqa: E402

sys.path.remove(str(ROOT / "docs"))

MODULES = build_api.public_modules()


def test_public_modules_are_found():
    assert {"bertfeat", "bertfeat.featurizer", "bertfeat.store", "bertfeat.pooling",
            "bertfeat.cli"} <= set(MODULES)
    assert not [m for m in MODULES if m.rsplit(".", 1)[-1].startswith("_")]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_module_has_all(name):
    if name == "bertfeat.distributed":
        pytest.importorskip("dask")
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, (list, tuple)), f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_api_reference_builds(tmp_path):
    pytest.importorskip("pdoc")
    pytest.importorskip("dask")  # bertfeat.distributed is documented too
    built = build_api.build(tmp_path / "api")
    assert built == MODULES
    assert (tmp_path / "api" / "index.html").is_file()
    for name in MODULES[1:]:
        page = tmp_path / "api" / (name.replace(".", "/") + ".html")
        assert page.is_file(), name
    featurizer = (tmp_path / "api" / "bertfeat" / "featurizer.html").read_text("utf-8")
    # numpydoc sections rendered: the parameter list and the new default are there
    assert "BertFeaturizer" in featurizer and "layer_combine" in featurizer
    assert "sentence-transformers" in featurizer
