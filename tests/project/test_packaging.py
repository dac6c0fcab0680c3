"""Issue 14: a wheel built from the checkout carries the package data a user needs.

The wheel is built offline with the build backend already installed (hatchling, in the
``dev`` extra): ``pip wheel --no-deps --no-build-isolation``.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("bertfeat-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_package_data(wheel):
    names = set(wheel.namelist())
    for data in ("sms_spam.csv", "banking77_train.csv", "banking77_test.csv",
                 "ATTRIBUTION.md"):
        assert f"bertfeat/data/{data}" in names
    assert "bertfeat/py.typed" in names  # type hints are public (PEP 561)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))]


def test_wheel_metadata_has_entry_point_and_extras(wheel):
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = wheel.read(info).decode()
    for extra in ("default-model", "dask", "parquet", "skops", "docs", "dev"):
        assert f"Provides-Extra: {extra}" in metadata
    entry = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    assert "bertfeat = bertfeat.cli:main" in wheel.read(entry).decode()
