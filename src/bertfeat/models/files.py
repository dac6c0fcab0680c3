"""What a model directory holds: which files are tokenizer files, weights, model files,
and the checks that refuse a directory whose files cannot be read.

Nothing here loads a model: these functions read file names, JSON settings and
safetensors headers only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["model_file_names", "tokenizer_files", "weight_files"]

#: the tokenizer files of a model directory (those the fingerprint hashes)
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
#: weight files, safetensors preferred
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
#: file names a fast tokenizer can be built from (one of them must exist)
_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spm.model",
                "sentencepiece.bpe.model", "tokenizer.model")


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


def weight_files(path: Path) -> list[Path]:
    """The weight files of a model directory: its safetensors, else its ``.bin`` files.

    Parameters
    ----------
    path : Path
        The model directory.

    Returns
    -------
    list of Path
        Sorted; empty when the directory holds no weights.
    """
    safetensors = sorted(path.glob("*.safetensors"))
    if safetensors:
        return safetensors
    files: list[Path] = []
    for pattern in _WEIGHT_PATTERNS[1:]:
        files.extend(sorted(path.glob(pattern)))
    return sorted(set(files))


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


def _first_bad_json(directory: Path) -> Path | None:
    for path in sorted(directory.glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return path
    return None


def tokenizer_files(info: Any) -> list[Path]:
    """The tokenizer files of a model directory (those the fingerprint hashes).

    Parameters
    ----------
    info : ModelInfo
        The resolved model (only its ``path`` is read: this module sits under
        :mod:`.spec`, which defines :class:`~bertfeat.models.ModelInfo`).

    Returns
    -------
    list of Path
        The files that exist, in a fixed order.
    """
    return [info.path / name for name in _TOKENIZER_FILES if (info.path / name).exists()]

