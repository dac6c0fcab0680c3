"""Random-weights copies of a model's architecture (the control baseline of a probe)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .files import tokenizer_files
from .loading import _quiet_transformers
from .spec import resolve_model
from .trust import opted_in

__all__ = ["random_init_model"]


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
    tok_files = tokenizer_files(info)
    for file in tok_files:
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
        for file in tok_files:
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
