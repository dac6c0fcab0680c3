"""The API reference's pages: one per public module, written before Sphinx reads them.

``docs/conf.py`` calls :func:`write_api_pages`, which writes ``docs/api/<module>.rst`` for
:mod:`bertfeat` and each public submodule (name parts that do not start with an
underscore): an autosummary table of the module's ``__all__`` and the numpydoc docstrings
of each object (``automodule`` honours ``__all__``). Re-exported names (defined in another
public module) link to the page of the module that defines them. The pages are generated
(``docs/api/`` is not in git); ``make docs`` builds the whole site into ``build/html``.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

__all__ = ["public_modules", "api_objects", "write_api_pages"]

ROOT = Path(__file__).resolve().parents[1]


def public_modules() -> list[str]:
    """``bertfeat`` and its public submodules, found by walking the package (a package
    that only groups modules, without an ``__all__``, is documented through them)."""
    import bertfeat

    names = ["bertfeat"]
    for info in pkgutil.walk_packages(bertfeat.__path__, prefix="bertfeat."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if info.ispkg and not hasattr(importlib.import_module(info.name), "__all__"):
            continue  # a layer's package that only groups modules (engine/, io/ ...)
        names.append(info.name)
    return names


def _home(module: str, name: str) -> str:
    """The public module that defines ``module.name`` (``module`` itself for data)."""
    obj = getattr(importlib.import_module(module), name)
    defined = getattr(obj, "__module__", None)
    modules = set(public_modules())
    if (isinstance(defined, str) and defined != module and defined in modules
            and name in getattr(importlib.import_module(defined), "__all__", ())):
        return defined
    return module


def api_objects() -> dict[str, list[tuple[str, str]]]:
    """Per public module: ``(name, full name of its documentation)`` for its ``__all__``."""
    out = {}
    for module in public_modules():
        names = list(getattr(importlib.import_module(module), "__all__", ()))
        out[module] = [(n, f"{_home(module, n)}.{n}") for n in names]
    return out


def _inherited(cls: type) -> list[str]:
    """The option that documents what ``cls`` inherits from bertfeat's own bases (the
    estimators' shared mixins, ProbeResult's save/report/plot) and nothing it inherits
    from scikit-learn or Python (named as the bases to leave out)."""
    ours = [b for b in cls.__mro__[1:] if b.__module__.split(".")[0] == "bertfeat"]
    if not ours:
        return []
    others = [b.__name__ for b in cls.__mro__[1:] if b not in ours]
    return [f"   :inherited-members: {','.join(dict.fromkeys(others))}"]


def _page(module: str, objects: list[tuple[str, str]]) -> str:
    title = f"``{module}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {module}", "   :no-members:", ""]
    local = [n for n, full in objects if full == f"{module}.{n}"]
    moved = [(n, full) for n, full in objects if full != f"{module}.{n}"]
    if local:
        lines += [".. rubric:: Contents", "", f".. currentmodule:: {module}", "",
                  ".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   {n}" for n in local] + [""]
    if moved:
        lines += [".. rubric:: Re-exported here", ""]
        lines += [f"* :obj:`{n} <{full}>` (documented in "
                  f":mod:`{full.rsplit('.', 1)[0]}`)" for n, full in moved] + [""]
    mod = importlib.import_module(module)
    for name in local:
        obj = getattr(mod, name)
        if isinstance(obj, type):
            lines += [f".. autoclass:: {name}", "   :members:", *_inherited(obj), ""]
        elif callable(obj):
            lines += [f".. autofunction:: {name}", ""]
        else:
            lines += [f".. autodata:: {name}", "   :annotation:", ""]
    return "\n".join(lines)


def write_api_pages(directory: Path) -> list[str]:
    """Write ``directory/<module>.rst`` for every public module; return the modules."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for module, objects in api_objects().items():
        text = _page(module, objects)
        path = directory / f"{module}.rst"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")  # unchanged pages keep their mtime
        written.append(module)
    for stale in directory.glob("*.rst"):
        if stale.stem not in written:
            stale.unlink()
    return written
