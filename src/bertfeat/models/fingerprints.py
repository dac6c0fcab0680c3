"""The fingerprint of an encoding: a hash of everything that changes a vector.

The weights' digest (not only the model's name), config, tokenizer files, ``max_length``,
truncation settings, precision and the store format version. Weight digests are
remembered per file signature (:func:`file_signature`), in the process and in the store,
so a warm start reads 128 KiB per weight file instead of hashing it; the signature of
every fingerprinted file (:func:`model_signature`) tells when the fingerprint must be
taken again, and :func:`weights_stat` is the cheap per-batch check.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import STORE_FORMAT
from .files import _TOKENIZER_FILES, weight_files

if TYPE_CHECKING:
    from .spec import ModelInfo

__all__ = ["ModelChangedError", "checked_fingerprint", "file_digest", "file_signature",
           "fingerprint", "model_signature", "weights_stat"]

#: what a precision name means in the fingerprint (int8 is per-token dynamic quantization,
#: see :mod:`bertfeat._linear`; a change of scheme must not reuse old vectors)
_PRECISION_TAGS = {"int8": "int8-per-token-v1"}
#: bytes hashed at each end of a weight file for its cheap signature (see file_signature)
_EDGE_BYTES = 1 << 16

_digest_cache: dict[tuple, str] = {}
#: (digest key, store directory) pairs known to be remembered by that store
_digest_told: set[tuple] = set()
_digest_lock = threading.Lock()


def file_signature(path: Path) -> tuple:
    """A cheap identity of a file's contents: where it is, its size, times and edges.

    ``(device, inode, size, mtime_ns, ctime_ns, hash of the first and last 64 KiB)``.
    Copying other bytes over a file changes its ``ctime`` even when its size is the same
    and its ``mtime`` is put back (``touch -d``, ``cp -p``, archives built with a fixed
    mtime), and a new file (unpacked, moved in) has a new inode; the edge hash catches the
    rest of what a coarse clock could miss. Reading 128 KiB costs microseconds, hashing a
    gigabyte seconds: see ``benchmarks/bench_fingerprint.py``.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    tuple
    """
    with open(path, "rb") as fh:
        stat = os.fstat(fh.fileno())
        edges = hashlib.blake2b(fh.read(_EDGE_BYTES), digest_size=16)
        if stat.st_size > 2 * _EDGE_BYTES:
            fh.seek(-_EDGE_BYTES, os.SEEK_END)
        edges.update(fh.read(_EDGE_BYTES))
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns,
            edges.hexdigest())


def file_digest(path: Path, persistent: Any = None) -> str:
    """SHA-256 of a file, computed once per :func:`file_signature`.

    The digest is remembered in this process and, with ``persistent``, in the store, keyed
    by the file's path and signature: a warm start reads 128 KiB of the file instead of all
    of it. A file whose signature changes while it is hashed is hashed again.

    Parameters
    ----------
    path : Path
        File to hash.
    persistent : object with ``get_meta``/``set_meta``, optional
        A store that remembers digests across processes.

    Returns
    -------
    str
        64 hex characters.
    """
    resolved = str(Path(path).resolve())
    for _ in range(3):
        signature = file_signature(path)
        key = (resolved, *signature)
        meta_key = "digest2:" + ":".join(map(str, key))
        store_key = (key, str(getattr(persistent, "directory", id(persistent))))
        with _digest_lock:
            known = _digest_cache.get(key)
            told = persistent is None or store_key in _digest_told
        if known is not None:
            if not told:  # hashed in this process for another store (or none): tell this one
                persistent.set_meta(meta_key, known)
                with _digest_lock:
                    _digest_told.add(store_key)
            return known
        digest = persistent.get_meta(meta_key) if persistent is not None else None
        if isinstance(digest, str):
            break
        hasher = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                hasher.update(chunk)
        digest = hasher.hexdigest()
        if file_signature(path) != signature:  # written to while we read it
            continue
        if persistent is not None:
            persistent.set_meta(meta_key, digest)
        break
    else:
        raise ValueError(f"{path} kept changing while bertfeat read it; try again when "
                         "whatever writes it has finished")
    with _digest_lock:
        _digest_cache[key] = digest
        if persistent is not None:
            _digest_told.add(store_key)
    return digest


def weights_stat(info: ModelInfo) -> tuple:
    """``(inode, size, mtime_ns, ctime_ns)`` of each weight file: a check cheap per batch.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.

    Returns
    -------
    tuple
        Empty entries for files that vanished (so a vanished file is a change too).
    """
    out = []
    for file in weight_files(info.path):
        try:
            stat = file.stat()
        except OSError:
            out.append((file.name,))
            continue
        out.append((file.name, stat.st_ino, stat.st_size, stat.st_mtime_ns,
                    stat.st_ctime_ns))
    return tuple(out)


def model_signature(info: ModelInfo) -> tuple:
    """:func:`file_signature` of every file :func:`fingerprint` reads.

    Equal signatures mean the fingerprint is still valid without hashing anything again;
    a different one means the directory changed (weights, config or tokenizer) and the
    fingerprint must be computed again before any vector is read or written.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.

    Returns
    -------
    tuple
    """
    files = [info.path / "config.json", *weight_files(info.path)]
    files += [info.path / name for name in _TOKENIZER_FILES if (info.path / name).exists()]
    try:
        return tuple((file.name, *file_signature(file)) for file in files)
    except OSError as exc:
        raise ValueError(f"model={info.spec!r}: cannot read {exc.filename} ({exc.strerror}); "
                         "the model directory changed or is incomplete") from exc


class ModelChangedError(ValueError):
    """A model's files no longer give the fingerprint a fitted featurizer was fitted with."""


def checked_fingerprint(info: ModelInfo, **kwargs: Any) -> tuple[str, tuple]:
    """:func:`fingerprint` and the :func:`model_signature` of the files it was computed from.

    The signature is taken before and after hashing; files that change meanwhile are
    hashed again, so the pair always describes the same bytes.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    **kwargs
        Passed to :func:`fingerprint`.

    Returns
    -------
    fingerprint : str
    signature : tuple
    """
    for _ in range(3):
        before = model_signature(info)
        value = fingerprint(info, **kwargs)
        after = model_signature(info)
        if after == before:
            return value, after
    raise ValueError(f"model={info.spec!r}: the files in {info.path} kept changing while "
                     "bertfeat read them; try again when whatever writes them has finished")


def fingerprint(info: ModelInfo, *, max_length: int, precision: str, long_text: str = "truncate",
                persistent: Any = None, extra: dict | None = None) -> str:
    """Hash everything that changes a stored vector.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    max_length : int
        Token limit in effect.
    precision : str
        Concrete precision (``fp32``, ``bf16``, ``fp16``, ``int8``).
    long_text : str
        How texts longer than ``max_length`` are handled.
    persistent : object, optional
        Store used to remember weight digests across processes.
    extra : dict, optional
        Further settings that change vectors.

    Returns
    -------
    str
        32 hex characters.
    """
    weights = weight_files(info.path)
    if not weights:
        raise ValueError(f"model={info.spec!r}: no weight files in {info.path}")
    tokenizer_files = {}
    for name in _TOKENIZER_FILES:
        file = info.path / name
        if file.exists():
            tokenizer_files[name] = hashlib.sha256(file.read_bytes()).hexdigest()
    payload = {
        "format": STORE_FORMAT,
        "config": hashlib.sha256((info.path / "config.json").read_bytes()).hexdigest(),
        "tokenizer": tokenizer_files,
        "weights": {f.name: file_digest(f, persistent) for f in weights},
        "revision": info.revision,
        "max_length": int(max_length),
        "truncation": "right",
        "special_tokens": True,
        "special_tokens_in_text": "split",
        "precision": _PRECISION_TAGS.get(precision, precision),
        "long_text": long_text,
        "extra": extra or {},
    }
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32]

