"""A fine-tuned encoder and head as bytes (pickles hold no tensor) and as a model directory.

:func:`serialize` turns the weights into safetensors bytes plus the config and tokenizer
files, :func:`restore` rebuilds the encoder and head from them anywhere (no base model
needed), and :func:`save_encoder` writes the encoder as a normal model directory that
``BertFeaturizer(model=directory)`` loads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .. import models
from .training import build_head

__all__ = ["restore", "save_encoder", "serialize"]

#: file name of the encoder's weights in a pickled estimator
_ENCODER_FILE = "model.safetensors"

def serialize(model, head, files: dict[str, bytes]) -> dict:
    """Weights as safetensors bytes, config and tokenizer files as bytes (no pickled tensor).

    Parameters
    ----------
    model, head : torch.nn.Module
        The fine-tuned encoder and head.
    files : dict
        Tokenizer file name -> bytes.

    Returns
    -------
    dict
        ``files``, ``config``, ``encoder`` and ``head``: what :func:`restore` reads.
    """
    from safetensors.torch import save

    def tensors(module) -> bytes:
        return save({k: v.detach().cpu().contiguous().clone()
                     for k, v in module.state_dict().items()})

    return {"files": dict(files), "config": model.config.to_json_string().encode(),
            "encoder": tensors(model), "head": tensors(head)}


def restore(saved: dict, *, device: str, hidden: int, n_outputs: int, pooling: str,
            trust_remote_code: bool = False):
    """Rebuild a fine-tuned encoder and head from :func:`serialize`'s bytes.

    Parameters
    ----------
    saved : dict
        What :func:`serialize` returned.
    device : str
        Concrete device.
    hidden, n_outputs : int
        Width of the hidden states and of the head's output.
    pooling : str
        The head's pooling.
    trust_remote_code : bool
        Passed to the model loader.

    Returns
    -------
    tokenizer, model, head
        In evaluation mode, without gradients.
    """
    from safetensors.torch import load

    with tempfile.TemporaryDirectory(prefix="bertfeat-finetuned-") as tmp:
        folder = Path(tmp)
        for name, data in saved["files"].items():
            (folder / name).write_bytes(data)
        (folder / "config.json").write_bytes(saved["config"])
        (folder / _ENCODER_FILE).write_bytes(saved["encoder"])
        info = models.resolve_model(str(folder))
        tokenizer, model = models.load_trainable(info, device=device,
                                                 trust_remote_code=trust_remote_code)
    model.eval()
    model.requires_grad_(False)
    head = build_head(hidden, n_outputs, pooling)
    head.load_state_dict(load(saved["head"]))
    return tokenizer, model, head.to(device).eval()


def save_encoder(model, files: dict[str, bytes], directory: str | os.PathLike) -> Path:
    """Write an encoder and its tokenizer files as a normal model directory.

    Model files of an earlier save in ``directory`` that this save does not write are
    removed; other files are kept. Each file is written in full beside the folder and
    renamed into it, config last.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        The encoder.
    files : dict
        Tokenizer file name -> bytes.
    directory : str or path
        Created if missing.

    Returns
    -------
    Path
        The directory.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.save-", dir=folder.parent))
    try:
        with models.quiet_transformers():
            model.save_pretrained(str(staging), safe_serialization=True)
        for name, data in files.items():
            (staging / name).write_bytes(data)
        written = {p.name for p in staging.iterdir()}
        # files of an earlier model in the folder would be read with the new ones (a
        # stale tokenizer.json wins over the new vocab.txt): they go
        for stale in models.model_file_names(folder):
            if stale not in written:
                (folder / stale).unlink(missing_ok=True)
        # each file replaced in one rename: a process loading the folder meanwhile
        # reads whole files, the old or the new, never half of one
        for name in sorted(written, key=lambda n: n == "config.json"):  # config last
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
