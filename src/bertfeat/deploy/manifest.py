"""The export folder's ``manifest.json``: written by the export, read and checked by the runtime.

The manifest records what the runtime needs (pooling, limits, batching, classes, checks),
a sha256 of every other file of the folder and one of its own settings. Writing and
reading live together here so that the format has one home; nothing here needs torch,
transformers or scikit-learn (the runtime imports it).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "FORMAT", "file_digest", "manifest_digest", "read_manifest",
           "write_manifest"]

#: the manifest's file name
MANIFEST = "manifest.json"
#: the format an export writes (bump when the folder's meaning changes;
#: 2: the manifest records a sha256 of every file and of itself)
FORMAT = 2
#: manifest format versions the runtime reads (1: no file digests, read with a warning)
_FORMATS = (1, 2)


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, in hex.

    Parameters
    ----------
    path : Path

    Returns
    -------
    str
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The sha256 of a manifest's settings (every key but ``manifest_sha256``).

    Parameters
    ----------
    manifest : dict

    Returns
    -------
    str
    """
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    """Read and check an export folder's manifest and the digests of its files.

    Every error names the file: a missing or unreadable manifest, a manifest that is not
    JSON (truncated), a setting edited after the export (its own digest), a file missing
    or changed since the export (its sha256), a setting out of range.

    Parameters
    ----------
    directory : Path
        An export folder.

    Returns
    -------
    dict
        The manifest.
    """
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory} holds no exported pipeline (no {MANIFEST}); "
                                "write one with `bertfeat export`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); the file is damaged or "
                         "truncated: export the pipeline again") from exc
    if not isinstance(manifest, dict) or manifest.get("kind") != "bertfeat-export" or \
            manifest.get("format") not in _FORMATS:
        format_ = manifest.get("format") if isinstance(manifest, dict) else None
        raise ValueError(f"{path}: not a bertfeat export of a format this runtime reads "
                         f"(format {format_!r}, reads {_FORMATS})")
    if manifest["format"] >= 2:
        if manifest.get("manifest_sha256") != manifest_digest(manifest):
            raise ValueError(f"{path} was changed after the export (its settings no longer "
                             "match the digest it records); export the pipeline again")
        needed = {"encoder.onnx", "tokenizer.json", (manifest.get("head") or {}).get("file"),
                  manifest.get("tfidf")} - {None}
        if manifest.get("first_step") == "TfidfVectorizer":  # no encoder, no tokenizer
            needed -= {"encoder.onnx", "tokenizer.json"}
        listed = manifest.get("files") or {}
        for name in sorted(needed - set(listed)):
            raise ValueError(f"{path} records no digest for {name}; export again")
        for name, digest in sorted(listed.items()):
            file = directory / name
            if not file.is_file():
                raise FileNotFoundError(f"{file} is missing: the export in {directory} is "
                                        "incomplete; export the pipeline again")
            if file_digest(file) != digest:
                raise ValueError(f"{file} was changed after the export (its sha256 differs "
                                 f"from the one {MANIFEST} records); export the pipeline "
                                 "again")
    else:
        warnings.warn(f"{path} is format {manifest['format']} and records no file digests: "
                      "its files cannot be checked; export the pipeline again with this "
                      "bertfeat", UserWarning, stacklevel=3)
    _check_settings(manifest, path)
    return manifest


def _check_settings(m: dict[str, Any], path: Path) -> None:
    """Settings in range, or an error naming the manifest and the setting."""
    def whole(name: str, low: int, high: int | None = None) -> int:
        value = m.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (
                high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise ValueError(f"{path}: {name}={value!r} is out of range (a whole number "
                             f"{bound}); export the pipeline again")
        return value

    whole("n_features", 1)
    if m.get("first_step") == "TfidfVectorizer":  # no encoder: no encoder settings
        return
    limit = m.get("model_max_length")
    whole("max_length", 1, limit if isinstance(limit, int) else None)
    whole("batch_size", 1)
    whole("max_batch_tokens", 1)
    whole("pad_id", 0)
    if m.get("precision") not in ("fp32", "int8"):
        raise ValueError(f"{path}: precision={m.get('precision')!r} is neither 'fp32' nor "
                         "'int8'; export the pipeline again")



def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json``: a sha256 of every other file, then of the manifest itself.

    The runtime checks each digest when it loads the folder, so a damaged or edited file
    (a permuted ``tokenizer.json``, a flipped setting) is an error naming the file, never
    different predictions. The digests detect damage and edits, not a forger who rewrites
    the digests too: an export folder is as trustworthy as whoever can write to it.

    Parameters
    ----------
    folder : Path
        The folder, holding every other file already.
    manifest : dict
        Its settings; ``files`` and ``manifest_sha256`` are set here.
    """
    manifest["files"] = {p.name: file_digest(p) for p in sorted(folder.iterdir())
                         if p.is_file() and p.name != MANIFEST}
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
