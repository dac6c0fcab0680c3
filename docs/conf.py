"""Sphinx configuration of the bertfeat documentation (``make docs``; offline).

Pages: ``index.rst``, ``getting_started.md``, ``user_guide/*.md`` (MyST Markdown),
``architecture.md``, ``api.rst`` (autosummary over every public module's ``__all__``,
numpydoc docstrings) and the gallery ``gallery/plot_*.py`` (sphinx-gallery, executed at
build time). ``BERTFEAT_DOCS_QUICK=1`` runs the gallery on smaller subsets (the test does).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "docs"))

from build_api import write_api_pages  # noqa: E402

import bertfeat  # noqa: E402

os.environ.setdefault("MPLBACKEND", "agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# nothing may be fetched from a hub while the docs build
os.environ.setdefault("HF_HUB_OFFLINE", "1")

project = "bertfeat"
author = "bertfeat developers"
copyright = "2026, bertfeat developers"  # noqa: A001
release = version = bertfeat.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "gallery/data", "bad_input_policy.md", "scaling.md",
                    "statistics.md", "*.txt"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "myst.xref_missing"]

# API reference: one page per public module, its __all__ in an autosummary table
write_api_pages(Path(__file__).parent / "api")
autosummary_generate = True
autodoc_default_options = {"members": True,
                           "show-inheritance": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
intersphinx_mapping: dict = {}  # offline: no inventories are fetched

quick = bool(os.environ.get("BERTFEAT_DOCS_QUICK"))
sphinx_gallery_conf = {
    "examples_dirs": "gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "run_stale_examples": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "min_reported_time": 0,  # always report it (the docs test reads it on every page)
}

html_theme = "pydata_sphinx_theme"
html_title = f"bertfeat {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "getting_started": []}
html_show_sourcelink = False
