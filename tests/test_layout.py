"""The package layout: every module of the flat layout still imports (as the same module
object), earlier pickles load, and the packages import no layer above them."""

from __future__ import annotations

import ast
import functools
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
          "store": 0, "models": 1,
          "engine": 2, "estimators": 3, "probe": 4, "deploy": 4, "cli": 5}
#: imports inside a function that go a layer up, each with why it is not a cycle; a new one
#: is a layering bug unless it is added here with its reason
UPWARD_INSIDE_FUNCTIONS: set[tuple[str, str]] = set()


def _layer(module: str) -> int | None:
    head = module.split(".")[1] if module.count(".") else None
    return LAYERS.get(head)


def _imports(path: Path, module: str, *, inside_functions: bool = False) -> set[str]:
    """bertfeat modules imported at module level (and inside functions and ``if
    TYPE_CHECKING:`` blocks, with ``inside_functions``): ``from .. import models`` names
    ``bertfeat.models``, ``from . import machine`` the module ``machine``."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree) if inside_functions else tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "bertfeat"}
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")
            base = base[:len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        elif (node.module or "").split(".")[0] == "bertfeat":
            target = node.module
        else:
            continue
        named = {f"{target}.{a.name}" for a in node.names}
        submodules = named & set(_modules())  # ``from .. import models``: the module
        out |= submodules
        if submodules != named:  # names defined in the package (or module) itself
            out.add(target)
    return out


@functools.cache
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


def test_no_package_imports_a_layer_above_it_inside_functions_either():
    """A lazy import is an import: one a layer up makes the layers a circle all the same
    (hardware once measured by importing the engine, which imports hardware)."""
    wrong = []
    for module, path in _modules().items():
        mine = _layer(module)
        if mine is None:
            continue
        for target in _imports(path, module, inside_functions=True):
            theirs = _layer(target)
            if (theirs is not None and theirs > mine
                    and (module, target) not in UPWARD_INSIDE_FUNCTIONS):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_import_cycle_between_modules():
    """No module reaches itself through imports, module-level or inside functions
    (``if TYPE_CHECKING:`` included), within a package or across packages."""
    modules = _modules()
    graph = {m: {t for t in _imports(p, m, inside_functions=True) if t in modules and t != m}
             for m, p in modules.items() if _layer(m) is not None}
    assert _cycles(graph) == []


def test_cycles_are_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_names_whose_home_moved_up_still_import_from_their_old_package():
    """``bertfeat.hardware.decide`` (and the other measuring names) and
    ``bertfeat.models.resolve_precision`` are the engine's functions, found on access,
    while importing those packages imports no engine module."""
    import subprocess

    from bertfeat import hardware, models
    from bertfeat.engine import precision

    for package in (hardware, models):
        for name in package._MOVED_UP:
            assert getattr(package, name) is getattr(precision, name)
            assert name not in package.__all__ and name in dir(package)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        hardware.nothing  # noqa: B018
    code = ("import sys, bertfeat.hardware, bertfeat.models; "
            "bad = [m for m in sys.modules if m.startswith('bertfeat.engine')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


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
