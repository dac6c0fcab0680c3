"""The encoder graph of an export: the featurizer as a traced ``torch.nn.Module`` in ONNX.

:func:`feature_graph` wraps the model cut at the deepest needed layer, with the pooling,
the layer combination and the normalisation inside the graph:
``(input_ids, attention_mask) -> features``; for ``long_text="chunk"`` each window's
cls/mean/max statistics, which the runtime pools per text. :func:`export_onnx` traces it.

The encoder is traced with the eager ("math") attention (:func:`eager_attention`): plain
MatMul/Softmax/MatMul, which onnxruntime runs faster than the trace of torch's
``scaled_dot_product_attention`` (extra ``IsNaN``/``Where`` guards per layer).
onnxruntime's transformer fusions (one ``Attention`` operator per layer) were measured
slower here and are not applied (``benchmarks/README.md``, "Exported pipeline").

torch is imported inside the functions only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .report import ExportError

__all__ = ["OPSET", "combine_graph", "eager_attention", "export_onnx", "feature_graph",
           "featurizer_settings", "graph_width", "normalize_graph", "pool_graph",
           "torch_features"]

#: ONNX opset of the encoder graph (scaled_dot_product_attention needs >= 14)
OPSET = 17


def pool_graph(hidden: Any, mask: Any, pooling: str, first: Any = None) -> Any:
    """One layer's pooling inside the exported graph (torch ops, traced to ONNX).

    The same arithmetic as :func:`bertfeat.pooling.pool_stats` followed by
    :func:`bertfeat.pooling.build_pooling`, computed for the requested pooling only.

    Parameters
    ----------
    hidden : Tensor of shape (batch, tokens, hidden)
    mask : Tensor of shape (batch, tokens)
    pooling : str
    first : Tensor, optional
        The first layer's hidden states (``pooling="first_last"``).

    Returns
    -------
    Tensor of shape (batch, width)
    """
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "cls":
        return hidden[:, 0]
    mean = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    if pooling == "mean":
        return mean
    if pooling == "first_last":
        first_mean = (first * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        return (first_mean + mean) * 0.5
    mx = hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    if pooling == "max":
        return mx
    if pooling == "mean_max":
        return torch.cat((mean, mx), dim=1)
    raise ExportError(f"pooling={pooling!r} cannot be exported")


def combine_graph(blocks: list, combine: str) -> Any:
    """Join the pooled layers (``concat``/``mean``/``sum``), as the featurizer does.

    Parameters
    ----------
    blocks : list of Tensor
    combine : {"concat", "mean", "sum"}

    Returns
    -------
    Tensor
    """
    import torch

    if len(blocks) == 1:
        return blocks[0]
    if combine == "concat":
        return torch.cat(blocks, dim=1)
    total = torch.stack(blocks, dim=0).sum(dim=0)
    return total / len(blocks) if combine == "mean" else total


def normalize_graph(features: Any) -> Any:
    """Row-wise L2 normalisation, as ``BertFeaturizer(normalize=True)``.

    Parameters
    ----------
    features : Tensor of shape (batch, width)

    Returns
    -------
    Tensor of shape (batch, width)
    """
    norms = features.norm(dim=1, keepdim=True)
    return features / norms.clamp(min=1e-12)


def featurizer_settings(feat: Any) -> dict[str, Any]:
    """What the exported graph must compute, read from a fitted featurizer.

    Fitted attributes (``pooling_``, ``normalize_``) win over parameters, so a pooling
    resolved at fit time (``pooling="auto"``) is exported as resolved.

    Parameters
    ----------
    feat : BertFeaturizer
        Fitted.

    Returns
    -------
    dict
        The manifest's ``settings``: layers, pooling, combination, normalisation, depth
        and, for ``long_text="chunk"``, the window settings.
    """
    from ..pooling import FIRST_LAYER

    pooling = getattr(feat, "pooling_", feat.pooling)
    normalize = bool(getattr(feat, "normalize_", getattr(feat, "normalize", False)))
    long_text = getattr(feat, "long_text", "truncate")
    if long_text not in ("truncate", "chunk"):
        raise ExportError(f"BertFeaturizer(long_text={long_text!r}) cannot be exported")
    layers = [int(x) for x in feat.layers_]
    stat_layers = sorted(set(layers) | ({FIRST_LAYER} if pooling == "first_last" else set()))
    if pooling == "pooler":
        depth = int(feat.n_layers_)
    else:
        depth = max(stat_layers)
    settings = {"layers": layers, "pooling": pooling, "layer_combine": feat.layer_combine,
                "normalize": normalize, "depth": depth, "first_layer": FIRST_LAYER,
                "long_text": long_text}
    if long_text == "chunk":
        # the graph returns each window's statistics; the runtime pools the windows of a
        # text (token-weighted cls/mean, max of max) and builds the features, as the
        # encoder's chunked pass and the featurizer do
        settings.update(chunk_stride=int(feat.chunk_stride_ or 0),
                        max_chunks=int(feat.max_chunks), stat_layers=stat_layers)
    return settings


def feature_graph(model: Any, settings: dict[str, Any], with_types: bool) -> Any:
    """The ``torch.nn.Module`` that is traced: encoder + pooling + combination.

    Parameters
    ----------
    model : transformers model
        Loaded in fp32, cut at ``settings["depth"]``.
    settings : dict
        :func:`featurizer_settings`.
    with_types : bool
        Whether the model takes ``token_type_ids`` (all zeros).

    Returns
    -------
    torch.nn.Module
        In eval mode; ``forward(input_ids, attention_mask) -> features``.
    """
    import torch

    class FeatureGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if with_types:
                kwargs["token_type_ids"] = torch.zeros_like(input_ids)
            out = self.model(**kwargs, output_hidden_states=True, return_dict=True)
            if settings.get("long_text") == "chunk":  # per-window statistics
                if settings["pooling"] == "pooler":
                    return out.pooler_output.float()
                from ..pooling import pool_stats

                stats = torch.stack([pool_stats(out.hidden_states[layer], attention_mask)
                                     for layer in settings["stat_layers"]], dim=1)
                return stats.reshape(stats.shape[0], -1)
            if settings["pooling"] == "pooler":
                features = out.pooler_output
            else:
                hidden = out.hidden_states
                first = hidden[settings["first_layer"]] \
                    if settings["pooling"] == "first_last" else None
                blocks = [pool_graph(hidden[layer], attention_mask, settings["pooling"],
                                     first) for layer in settings["layers"]]
                features = combine_graph(blocks, settings["layer_combine"])
            if settings["normalize"]:
                features = normalize_graph(features)
            return features

    return FeatureGraph().eval()


def _example_inputs(pad_id: int) -> tuple:
    """A padded two-row batch: tracing sees a real mask, never an all-ones one."""
    import torch

    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, pad_id, pad_id]], dtype=torch.int64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.int64)
    return ids, mask


def export_onnx(module: Any, pad_id: int, path: Path) -> None:
    """Trace ``module`` to ONNX with dynamic batch and sequence axes.

    The TorchScript exporter needs nothing beyond torch; where a torch no longer has it,
    the ``torch.export`` based one is used (it needs the ``onnxscript`` package). The
    example batch is padded, so tracing sees a real mask, never an all-ones one.

    Parameters
    ----------
    module : torch.nn.Module
        :func:`feature_graph`.
    pad_id : int
        The tokenizer's padding id.
    path : Path
        The ``.onnx`` file to write.
    """
    import torch

    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "features": {0: "batch"}}
    names = {"input_names": ["input_ids", "attention_mask"], "output_names": ["features"]}
    example = _example_inputs(pad_id)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, example, str(path), dynamo=False, dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True, **names)
            return
        except (TypeError, NotImplementedError, AttributeError) as exc:
            legacy_error = exc
        try:
            batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
            shapes = {"input_ids": {0: batch, 1: tokens}, "attention_mask": {0: batch, 1: tokens}}
            torch.onnx.export(module, example, str(path), dynamo=True, dynamic_shapes=shapes,
                              opset_version=max(OPSET, 18), external_data=False, **names)
        except ModuleNotFoundError as exc:
            raise ExportError(
                f"this torch cannot export with the TorchScript exporter ({legacy_error}) and "
                f"its torch.export based exporter needs a missing package ({exc}); "
                "pip install onnxscript") from exc


def eager_attention(model: Any) -> str:
    """Switch ``model`` to the eager attention for tracing; returns the one now in use.

    torch's ``scaled_dot_product_attention`` traces with extra ``IsNaN``/``Where`` guards
    per layer; the eager attention traces to plain MatMul/Softmax/MatMul, which onnxruntime
    ran about 5% faster on SST-2 (``benchmarks/README.md``). Same arithmetic, so the traced
    graph gives the same features.

    Parameters
    ----------
    model : transformers model

    Returns
    -------
    str
        The attention implementation now in use (the manifest's ``graph`` entry).
    """
    setter = getattr(model, "set_attn_implementation", None)
    if setter is not None:
        try:
            setter("eager")
        except (ValueError, TypeError, NotImplementedError):  # an architecture without it
            pass
    return str(getattr(model.config, "_attn_implementation", None) or "unknown")


def graph_width(feat: Any, settings: dict[str, Any]) -> int:
    """Columns of the encoder graph's output: the features, or (chunked) the statistics
    of every window.

    Parameters
    ----------
    feat : BertFeaturizer
        Fitted.
    settings : dict
        :func:`featurizer_settings`.

    Returns
    -------
    int
    """
    if settings.get("long_text") != "chunk":
        return int(feat.n_features_out_)
    if settings["pooling"] == "pooler":
        return int(feat.hidden_size_)
    return len(settings["stat_layers"]) * 3 * int(feat.hidden_size_)


def torch_features(graph: Any, ids: list[list[int]], pad_id: int) -> np.ndarray:
    """The traced module's features for token ids, in torch (fp32), one padded batch.

    Parameters
    ----------
    graph : torch.nn.Module
        :func:`feature_graph`.
    ids : list of list of int
        Token ids per text.
    pad_id : int

    Returns
    -------
    ndarray of shape (n_texts, width), float32
    """
    import torch

    width = max(len(i) for i in ids)
    batch = torch.full((len(ids), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(ids), width), dtype=torch.int64)
    for row, seq in enumerate(ids):
        batch[row, :len(seq)] = torch.tensor(seq, dtype=torch.int64)
        mask[row, :len(seq)] = 1
    with torch.inference_mode():
        return graph(batch, mask).float().numpy()
