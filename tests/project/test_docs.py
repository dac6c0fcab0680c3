"""Issues 14 and 28: the documentation site builds, offline, with its executed gallery.

* every public module says what it exports (``__all__``), which the API reference documents;
* ``sphinx`` builds the site (the gallery on small subsets: ``BERTFEAT_DOCS_QUICK=1``);
  every gallery example ran and drew its figure, every object of every ``__all__`` has an
  entry in the API reference;
* headless Chromium (Debian's ``chromium``; ``make chromium`` installs it) opens the front
  page and a gallery page: a screenshot that is not blank and no console error. Without
  chromium the browser check skips and says why.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import needs_default_model

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs"))
import build_api  # noqa: E402

sys.path.remove(str(ROOT / "docs"))

MODULES = build_api.public_modules()
GALLERY = sorted((ROOT / "docs" / "gallery").glob("plot_*.py"))
#: seconds the whole build may take (the quick gallery: about 3 minutes on 2 busy cores)
BUILD_TIMEOUT = 900


def test_public_modules_are_found():
    assert {"bertfeat", "bertfeat.estimators.featurizer", "bertfeat.store", "bertfeat.pooling",
            "bertfeat.cli", "bertfeat.deploy.runtime", "bertfeat.engine.progress"} <= set(MODULES)
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


def test_api_pages_list_every_export(tmp_path):
    written = build_api.write_api_pages(tmp_path)
    assert written == MODULES
    page = (tmp_path / "bertfeat.estimators.featurizer.rst").read_text(encoding="utf-8")
    assert ".. autoclass:: BertFeaturizer" in page
    # a re-export links to the module that defines it
    assert ":obj:`make_batches <bertfeat.engine.batching.make_batches>`" in (
        tmp_path / "bertfeat.engine.encoder.rst").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for name in ("sphinx", "sphinx_gallery", "pydata_sphinx_theme", "numpydoc", "myst_parser"):
        pytest.importorskip(name)
    pytest.importorskip("dask")  # bertfeat.distributed is documented too
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "BERTFEAT_DOCS_QUICK": "1", "PYTHONWARNINGS": "ignore",
           "BERTFEAT_CACHE_DIR": str(out / "store"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(
               [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(out / "doctrees"),
         str(ROOT / "docs"), str(out / "html")], capture_output=True, text=True, env=env,
        timeout=BUILD_TIMEOUT)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-5000:])
    (out / "warnings.txt").write_text(done.stderr, encoding="utf-8")
    return out / "html"


@pytest.mark.slow
@needs_default_model
def test_every_gallery_example_ran_and_drew(site):
    assert len(GALLERY) >= 4
    for script in GALLERY:
        page = site / "auto_examples" / f"{script.stem}.html"
        assert page.is_file(), script.name
        html = page.read_text(encoding="utf-8")
        images = re.findall(rf'src="\.\./(_images/sphx_glr_{script.stem}_\d+\.png)"', html)
        assert images, f"{script.name}: no figure on its page"
        for image in images:
            assert (site / image).stat().st_size > 5_000
        assert "Traceback" not in html
        assert "Total running time of the script" in html
    # every page of the user guide was built
    for name in ("getting_started", "user_guide/featurizer", "user_guide/probe",
                 "user_guide/words", "user_guide/finetune", "user_guide/export",
                 "user_guide/dask", "user_guide/hardware", "architecture"):
        assert (site / f"{name}.html").is_file(), name


@pytest.mark.slow
@needs_default_model
def test_every_api_object_is_documented(site):
    missing = []
    for module, objects in build_api.api_objects().items():
        for name, full in objects:
            page = site / "api" / f"{full.rsplit('.', 1)[0]}.html"
            html = page.read_text(encoding="utf-8") if page.is_file() else ""
            if f'id="{full}"' not in html:
                missing.append(f"{module}.{name}")
    assert not missing, f"not in the API reference: {missing}"
    featurizer = (site / "api" / "bertfeat.estimators.featurizer.html").read_text(
        encoding="utf-8")
    assert "layer_combine" in featurizer and "sentence-transformers" in featurizer
    # what a class inherits from bertfeat's own bases is on its page; scikit-learn's is not
    result = (site / "api" / "bertfeat.probe.result.html").read_text(encoding="utf-8")
    for method in ("save", "load", "summary", "report", "plot"):
        assert f'id="bertfeat.probe.result.ProbeResult.{method}"' in result, method
    assert 'id="bertfeat.estimators.featurizer.BertFeaturizer.get_feature_names_out"' in (
        featurizer)
    assert 'id="bertfeat.estimators.featurizer.BertFeaturizer.get_params"' not in featurizer


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _console_errors(log: str) -> list[str]:
    """Console lines of chromium's log that report an error (chromium logs every console
    message at INFO, so the text tells: uncaught exceptions, failed loads, errors)."""
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    return [line for line in console if re.search(r"error|uncaught|failed", line, re.I)]


def _browse(page: Path, shot: Path) -> str:
    """Open ``page`` headless: write a screenshot, return chromium's log (console too)."""
    done = subprocess.run(
        [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--disable-extensions", "--enable-logging=stderr", "--v=0",
         "--window-size=1280,900", f"--screenshot={shot}", "--virtual-time-budget=3000",
         page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    return done.stderr


@pytest.mark.slow
@needs_default_model
def test_front_page_and_a_gallery_page_in_a_browser(site, tmp_path):
    if _chromium() is None:
        pytest.skip("chromium is not installed (make chromium: apt-get install chromium)")
    from PIL import Image

    # the check sees an error where there is one
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body>x<script>no_such_function();</script></body></html>")
    assert _console_errors(_browse(bad, tmp_path / "bad.png"))
    pages = {"index": site / "index.html",
             "gallery": site / "auto_examples" / "plot_probe_layers.html"}
    for name, page in pages.items():
        shot = tmp_path / f"{name}.png"
        errors = _console_errors(_browse(page, shot))
        assert not errors, errors
        image = Image.open(shot).convert("RGB")
        assert image.size == (1280, 900)
        colours = image.getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 50, f"{name}: the screenshot looks blank"
        keep = os.environ.get("BERTFEAT_DOCS_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / shot.name)
