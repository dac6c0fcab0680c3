"""The export folder as a package: which files it may hold, written aside, published whole.

The folder is written in a temporary folder beside OUTDIR (:func:`staging_folder`) and
renamed into place only when complete and checked: an earlier export stays intact when
anything fails, and a folder holding files that no export writes is never replaced
(:func:`check_outdir`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .manifest import MANIFEST
from .report import ExportError

__all__ = ["FILES", "check_outdir", "file_sizes", "staging_folder"]

#: every file an export writes
FILES = (MANIFEST, "encoder.onnx", "tokenizer.json", "head.onnx", "tfidf.json")


def check_outdir(outdir: str | Path, overwrite: bool) -> Path:
    """Refuse an ``outdir`` the export must not write to.

    Parameters
    ----------
    outdir : str or Path
    overwrite : bool
        Whether an earlier export there may be replaced.

    Returns
    -------
    Path

    Raises
    ------
    ExportError
        ``outdir`` is a file, holds files no export writes, or holds an export and
        ``overwrite`` is False.
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ExportError(f"{outdir} is a file, not a folder; choose a new folder")
    if outdir.is_dir() and any(outdir.iterdir()):
        others = sorted(p.name for p in outdir.iterdir() if p.name not in FILES)
        if others or not (outdir / MANIFEST).exists():
            raise ExportError(f"{outdir} exists and is not empty (it holds {others[:3]}, "
                              "which no export writes); choose a new folder")
        if not overwrite:
            raise ExportError(f"{outdir} already holds an export; pass overwrite=True "
                              "(--overwrite) to replace it")
    return outdir


@contextmanager
def staging_folder(outdir: Path) -> Iterator[Path]:
    """A fresh folder beside ``outdir`` to write the export into.

    When the ``with`` block ends without an error, the folder replaces ``outdir``
    (renames on one filesystem); in every case nothing of it is left behind.

    Parameters
    ----------
    outdir : Path

    Yields
    ------
    Path
        The empty staging folder.
    """
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.export-", dir=outdir.parent))
    try:
        yield staging
        _swap_into_place(staging, outdir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def file_sizes(folder: Path) -> dict[str, int]:
    """File name -> size in bytes, for the files directly in ``folder``.

    Parameters
    ----------
    folder : Path

    Returns
    -------
    dict of str to int
    """
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}


def _swap_into_place(staging: Path, outdir: Path) -> None:
    """Replace ``outdir`` by the finished ``staging`` folder (renames on one filesystem)."""
    if not outdir.exists():
        staging.rename(outdir)
        return
    old = staging.with_name(staging.name + ".old")
    outdir.rename(old)
    try:
        staging.rename(outdir)
    except OSError:
        old.rename(outdir)  # put the earlier export back
        raise
    shutil.rmtree(old, ignore_errors=True)
