"""Build the API reference (a static HTML site) from the docstrings, with pdoc.

Run:  python docs/build_api.py [OUTPUT_DIR]      (default build/api; or `make docs`)

Every public module of :mod:`bertfeat` (the package and each submodule whose name does not
start with an underscore) gets a page; docstrings are read as numpydoc. pdoc imports the
modules, so the optional extras a module needs (``dask`` for ``bertfeat.distributed``) must
be installed: ``pip install -e '.[docs,dask]'`` (both are in ``dev``).
"""

from __future__ import annotations

import pkgutil
import sys
from pathlib import Path

__all__ = ["public_modules", "build"]

ROOT = Path(__file__).resolve().parents[1]


def public_modules() -> list[str]:
    """``bertfeat`` and its public submodules, found by walking the package."""
    import bertfeat

    names = ["bertfeat"]
    for info in pkgutil.walk_packages(bertfeat.__path__, prefix="bertfeat."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def build(output: Path) -> list[str]:
    """Write the site to ``output``; return the modules documented."""
    import pdoc
    import pdoc.render

    modules = public_modules()
    pdoc.render.configure(docformat="numpy", footer_text="bertfeat API reference",
                          search=True, show_source=False)
    pdoc.pdoc(*modules, output_directory=output)
    return modules


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "api"
    done = build(out)
    print(f"API reference of {len(done)} modules in {out}/index.html")
