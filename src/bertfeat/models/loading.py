"""Loading a resolved model: its fast tokenizer and its weights on a device, in a precision.

* :func:`load` builds the tokenizer and an inference model, cut above the deepest
  requested layer (int8 and CPU bf16 get bertfeat's own linear layers,
  :mod:`bertfeat.models.linear`);
* :func:`load_trainable` the whole encoder in float32 with gradients, for fine-tuning.

Both refuse a checkpoint that does not fit its config or tokenizer instead of running
with random weights, name a JSON file that does not parse, and run no model code unless
the user opted in (:mod:`.trust`).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from .files import _first_bad_json
from .trust import opted_in

if TYPE_CHECKING:
    from .spec import ModelInfo

__all__ = ["load", "load_tokenizer", "load_trainable", "quiet_transformers",
           "transformer_layers"]

#: top-level parameter groups a checkpoint may lack: heads bertfeat never uses
_OPTIONAL_WEIGHTS = ("pooler.",)


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
    """A context manager that silences transformers' weight loading/saving progress bars.

    Returns
    -------
    context manager
    """
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
        from .linear import quantize_int8

        model = quantize_int8(model)  # per-token dynamic int8 (CPU only)
    model.to(device)
    if precision == "bf16" and device.split(":")[0] == "cpu":
        from .linear import use_bf16_linear

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

