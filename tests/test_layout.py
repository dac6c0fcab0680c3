"""The package layout: every module of the flat layout still imports (as the same module
object), earlier pickles load, and the packages import no layer above them."""

from __future__ import annotations

import ast
import importlib
import pickle
import sys
from pathlib import Path

import pytest

import bertfeat

SRC = Path(bertfeat.__file__).resolve().parent


@pytest.mark.parametrize("old", sorted(bertfeat._MOVED))
def test_a_flat_module_name_is_its_new_home(old):
    moved = importlib.import_module(f"bertfeat.{old}")
    home = importlib.import_module(f"bertfeat.{bertfeat._MOVED[old]}")
    assert moved is home
    assert getattr(bertfeat, old) is home
    assert not (SRC / f"{old}.py").exists()  # no stub file: the alias is the only trace


def test_a_pickle_written_before_the_move_loads(tiny_model):
    from bertfeat import BertFeaturizer

    fitted = BertFeaturizer(model=tiny_model, cache=False, precision="fp32").fit(["a"])
    blob = pickle.dumps(fitted, protocol=2)  # the class named as text: "module\nname"
    new_home = b"bertfeat.estimators.featurizer\nBertFeaturizer"
    assert new_home in blob
    old = blob.replace(new_home, b"bertfeat.featurizer\nBertFeaturizer")
    restored = pickle.loads(old)
    assert type(restored) is BertFeaturizer
    assert restored.transform(["a"]).shape == fitted.transform(["a"]).shape


#: which layer each package is; a module may import its own layer and the layers below
LAYERS = {"io": 0, "stats": 0, "equality": 0, "hardware": 0, "pooling": 0, "lru": 0,
          "store": 1, "models": 1,
          "engine": 2, "estimators": 3, "probe": 4, "deploy": 4, "cli": 5}


def _layer(module: str) -> int | None:
    head = module.split(".")[1] if module.count(".") else None
    return LAYERS.get(head)


def _imports(path: Path, module: str) -> set[str]:
    """bertfeat modules imported at module level (not inside functions)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            base = base[:len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            out.add(target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bertfeat"):
            out.add(node.module)
    return out


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def test_no_package_imports_a_layer_above_it_at_module_level():
    wrong = []
    for module, path in _modules().items():
        mine = _layer(module)
        if mine is None:
            continue
        for target in _imports(path, module):
            theirs = _layer(target)
            if theirs is not None and theirs > mine:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_runtime_imports_no_torch_sklearn_or_joblib(tmp_path):
    import subprocess

    code = ("import sys, bertfeat.runtime, bertfeat.deploy.runtime; "
            "bad = [m for m in ('torch', 'sklearn', 'joblib', 'transformers') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_word_tagger_pickled_when_it_lived_in_words_loads():
    """``WordTagger`` moved from ``estimators/words.py`` to ``estimators/tagger.py``: a
    pickle naming its old module (or the flat ``bertfeat.words``) still loads."""
    from bertfeat import WordTagger
    from bertfeat.estimators import words

    blob = pickle.dumps(WordTagger(scoring="accuracy"), protocol=2)
    new_home = b"bertfeat.estimators.tagger\nWordTagger"
    assert new_home in blob
    for old in (b"bertfeat.estimators.words\nWordTagger", b"bertfeat.words\nWordTagger"):
        restored = pickle.loads(blob.replace(new_home, old))
        assert type(restored) is WordTagger and restored.scoring == "accuracy"
    assert words.WordTagger is WordTagger


def _moved_objects():
    from bertfeat import hardware, models

    info = models.ModelInfo(spec="x", path=Path("x"), revision=None, model_type="bert",
                            n_layers=1, hidden_size=2, max_length=3, has_pooler=False)
    cal = hardware.Calibration({"fp32": 1.0}, {"fp32": 1.0}, {"fp32": 1.0})
    return [("bertfeat.models", info), ("bertfeat.models", models.ModelChangedError("x")),
            ("bertfeat.hardware", hardware.Decision("fp32", "measured", "r", "k", cal)),
            ("bertfeat.hardware", cal)]


@pytest.mark.parametrize("index", range(4))
def test_a_class_split_into_a_package_module_unpickles_from_its_old_path(index):
    # models.py and hardware.py became packages: a pickle that names the class at the
    # package (as every pickle written before the split does) still loads
    old_module, obj = _moved_objects()[index]
    cls = type(obj)
    blob = pickle.dumps(obj, protocol=2)
    new_home = f"{cls.__module__}\n{cls.__name__}".encode()
    assert cls.__module__ != old_module and new_home in blob
    restored = pickle.loads(blob.replace(new_home, f"{old_module}\n{cls.__name__}".encode()))
    assert type(restored) is cls
    assert restored == obj if not isinstance(obj, Exception) else restored.args == obj.args
