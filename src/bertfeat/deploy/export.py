"""Export a fitted pipeline to a folder that runs without torch and transformers.

:func:`export_pipeline` turns a fitted ``Pipeline`` whose first step is a
:class:`~bertfeat.BertFeaturizer`, a :class:`~bertfeat.TextUnion` or a scikit-learn
``TfidfVectorizer``, or a fine-tuned :class:`~bertfeat.BertClassifier` /
:class:`~bertfeat.BertRegressor` (as its encoder + linear head,
:mod:`bertfeat.deploy.finetuned`) -- every pick :func:`bertfeat.probe.probe` can recommend --
into::

    OUTDIR/
      manifest.json    what the runtime needs: pooling, limits, batching, classes, checks
      tokenizer.json   the fast tokenizer (truncation set up as the featurizer's)
      encoder.onnx     the encoder cut at the deepest needed layer, with the pooling,
                       the layer combination and the normalisation inside the graph:
                       (input_ids, attention_mask) -> features; for
                       ``long_text="chunk"`` each window's cls/mean/max statistics,
                       which the runtime pools per text and turns into features
      head.onnx        the scikit-learn steps after the featurizer (skl2onnx), if any
      tfidf.json       TextUnion or TfidfVectorizer: vocabulary, idf and analyzer
                       settings (and TextUnion's scaler of the BERT block)

A pipeline starting with a ``TfidfVectorizer`` has no encoder, tokenizer or model: its
folder holds ``manifest.json``, ``tfidf.json`` and ``head.onnx``. The runtime computes
TF-IDF rows with the same regular expression, n-grams, idf and norm as scikit-learn
(Python's ``re``, as scikit-learn's analyzer): skl2onnx's ``TfidfVectorizer`` converter
is not used, because its ONNX ``Tokenizer`` operator splits with RE2, not with Python's
``re``, and so does not reproduce every token of ``token_pattern``. The export compares
both on the check texts and on texts made of every vocabulary term, and refuses with
:class:`ExportError` when a TF-IDF value differs by more than :data:`TFIDF_TOLERANCE`.

No file in the folder is a pickle. :func:`bertfeat.runtime.load` reads it with
onnxruntime, tokenizers and numpy only. The manifest records a sha256 of every other file
and of its own settings; the runtime checks them when it loads the folder. The folder is
written in a temporary folder beside OUTDIR and renamed into place when complete.

The encoder is traced with the eager ("math") attention: plain MatMul/Softmax/MatMul,
which onnxruntime runs faster than the trace of torch's ``scaled_dot_product_attention``
(extra ``IsNaN``/``Where`` guards per layer); the manifest's ``graph`` entry records it.
onnxruntime's transformer fusions (one ``Attention`` operator per layer) were measured
slower here and are not applied (``benchmarks/README.md``, "Exported pipeline").

Precision ``"int8"`` rewrites every matrix product with a weight matrix into per-token
dynamic int8 (one scale per token row and one per output channel, int32 accumulation:
the scheme of :mod:`bertfeat._linear`), and prints its cosine to the fp32 graph.

Needs the ``export`` extra: ``pip install 'bertfeat[export]'`` (onnx, onnxruntime,
skl2onnx).
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["export_pipeline", "ExportError", "ExportReport", "MANIFEST", "FORMAT",
           "TFIDF_TOLERANCE"]

#: the manifest's file name and format version (bump when the folder's meaning changes;
#: 2: the manifest records a sha256 of every file and of itself)
MANIFEST = "manifest.json"
FORMAT = 2
#: every file an export writes
_FILES = (MANIFEST, "encoder.onnx", "tokenizer.json", "head.onnx", "tfidf.json")
#: largest difference allowed between the runtime's TF-IDF values (float64) and
#: scikit-learn's (float64 by default, float32 with ``dtype=np.float32``): rounding only;
#: a term tokenised differently changes a value by orders of magnitude more
TFIDF_TOLERANCE = 1e-6
#: vocabulary terms per check text made of vocabulary terms (TF-IDF fidelity check)
_TERMS_PER_TEXT = 64
#: ONNX opset of the encoder graph (scaled_dot_product_attention needs >= 14)
OPSET = 17
#: texts the exported graph is checked on when the caller gives none
_CHECK_TEXTS = (
    "", "a", "the film was good", "an awful, boring plot and very bad acting",
    "I love this movie! The music, the story and the actors are great.",
    "what is the fee for a card payment abroad?", "hello world " * 40,
    "not good, not bad", "Why? Who? When?", "free prize: call now to win",
)


class ExportError(ValueError):
    """The pipeline (or one of its steps) cannot be exported; the message says which."""


@dataclass
class ExportReport:
    """What :func:`export_pipeline` wrote and how faithful the exported graph is.

    Attributes
    ----------
    directory : Path
        The folder written.
    precision : str or None
        ``"fp32"`` or ``"int8"``; None for a TF-IDF pipeline (no encoder).
    cosine_mean, cosine_min : float or None
        Cosine between the exported encoder's features and the torch featurizer's (fp32)
        on the check texts; None when there is no encoder.
    n_check_texts : int
        How many texts were checked.
    files : dict of str to int
        File name -> size in bytes.
    tfidf_max_error : float or None
        Largest absolute difference between the runtime's TF-IDF values and scikit-learn's
        on the check texts and on texts made of every vocabulary term (at most
        :data:`TFIDF_TOLERANCE`, else the export is refused); None without TF-IDF.
    n_tfidf_texts : int
        How many texts the TF-IDF block was compared on.
    predictions_agree : tuple of (int, int) or None
        ``(same, checked)``: check texts where the runtime's ``predict`` equals the
        pipeline's (classifiers), or is within 1e-4 relative (regressors); None without
        a predicting head.
    """

    directory: Path
    precision: str | None
    cosine_mean: float | None
    cosine_min: float | None
    n_check_texts: int
    files: dict[str, int] = field(default_factory=dict)
    tfidf_max_error: float | None = None
    n_tfidf_texts: int = 0
    predictions_agree: tuple[int, int] | None = None

    @property
    def size_bytes(self) -> int:
        """Total size of the folder."""
        return sum(self.files.values())


# ------------------------------------------------------------------------- the graph
def pool_graph(hidden, mask, pooling: str, first=None):
    """One layer's pooling inside the exported graph (torch ops, traced to ONNX).

    The same arithmetic as :func:`bertfeat.pooling.pool_stats` followed by
    :func:`bertfeat.pooling.build_pooling`, computed for the requested pooling only.
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


def combine_graph(blocks: list, combine: str):
    """Join the pooled layers (``concat``/``mean``/``sum``), as the featurizer does."""
    import torch

    if len(blocks) == 1:
        return blocks[0]
    if combine == "concat":
        return torch.cat(blocks, dim=1)
    total = torch.stack(blocks, dim=0).sum(dim=0)
    return total / len(blocks) if combine == "mean" else total


def normalize_graph(features):
    """Row-wise L2 normalisation, as ``BertFeaturizer(normalize=True)``."""
    norms = features.norm(dim=1, keepdim=True)
    return features / norms.clamp(min=1e-12)


def _featurizer_settings(feat) -> dict[str, Any]:
    """What the exported graph must compute, read from a fitted featurizer.

    Fitted attributes (``pooling_``, ``normalize_``) win over parameters, so a pooling
    resolved at fit time (``pooling="auto"``) is exported as resolved.
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


class _FeatureGraph:
    """Builds the ``torch.nn.Module`` that is traced: encoder + pooling + combination."""

    @staticmethod
    def build(model, settings: dict[str, Any], with_types: bool):
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


def _example_inputs(pad_id: int):
    """A padded two-row batch: tracing sees a real mask, never an all-ones one."""
    import torch

    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, pad_id, pad_id]], dtype=torch.int64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.int64)
    return ids, mask


def _export_onnx(module, example: tuple, path: Path) -> None:
    """Trace ``module`` to ONNX with dynamic batch and sequence axes.

    The TorchScript exporter needs nothing beyond torch; where a torch no longer has it,
    the ``torch.export`` based one is used (it needs the ``onnxscript`` package).
    """
    import torch

    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "features": {0: "batch"}}
    names = {"input_names": ["input_ids", "attention_mask"], "output_names": ["features"]}
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


def _eager_attention(model) -> str:
    """Switch ``model`` to the eager attention for tracing; returns the one now in use.

    torch's ``scaled_dot_product_attention`` traces with extra ``IsNaN``/``Where`` guards
    per layer; the eager attention traces to plain MatMul/Softmax/MatMul, which onnxruntime
    ran about 5% faster on SST-2 (``benchmarks/README.md``). Same arithmetic, so the traced
    graph gives the same features.
    """
    setter = getattr(model, "set_attn_implementation", None)
    if setter is not None:
        try:
            setter("eager")
        except (ValueError, TypeError, NotImplementedError):  # an architecture without it
            pass
    return str(getattr(model.config, "_attn_implementation", None) or "unknown")


# ------------------------------------------------------------------------ int8 rewrite
def quantize_graph(src: Path, dst: Path) -> int:
    """Per-token dynamic int8 for every ``MatMul``/``Gemm`` with a constant weight.

    Each such product ``x @ W`` becomes ``(q(x) @ q(W)) * s_x * s_W``: ``q(W)`` int8 with
    one scale per output channel (computed once, stored), ``q(x)`` int8 with one scale per
    row of ``x`` (per token, computed in the graph), ``MatMulInteger`` accumulating in int32.
    Returns the number of products rewritten.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    new_nodes, new_inits, count = [], [], 0
    shared = {"q_eps": np.array(1e-12, np.float32), "q_127": np.array(127.0, np.float32),
              "q_lo": np.array(-127.0, np.float32), "q_axes": np.array([-1], np.int64),
              "q_128": np.array(128.0, np.float32), "q_zp": np.array(128, np.uint8),
              "q_one": np.array(1.0, np.float32)}
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    for name, value in shared.items():
        new_inits.append(numpy_helper.from_array(value, name))
    for node in graph.node:
        weight_name = node.input[1] if len(node.input) > 1 else None
        gemm_ok = node.op_type == "Gemm" and not any(
            a.name == "transA" and a.i for a in node.attribute)
        if node.op_type not in ("MatMul", "Gemm") or (node.op_type == "Gemm" and not gemm_ok) \
                or weight_name not in inits:
            new_nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[weight_name]).astype(np.float32)
        if weight.ndim != 2:
            new_nodes.append(node)
            continue
        trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        if trans_b:
            weight = weight.T  # (in, out)
        for attr in node.attribute:
            if attr.name in ("alpha", "beta") and abs(attr.f - 1.0) > 0:
                raise ExportError(f"int8: Gemm node {node.name} has {attr.name}={attr.f}")
        scale = np.maximum(np.abs(weight).max(axis=0), 1e-12) / 127.0
        qweight = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        p = f"q{count}_"
        new_inits += [numpy_helper.from_array(qweight, p + "w"),
                      numpy_helper.from_array(scale.astype(np.float32), p + "ws")]
        x, out = node.input[0], node.output[0]
        bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 else ""
        new_nodes += [
            helper.make_node("Abs", [x], [p + "abs"]),
            helper.make_node("ReduceMax", [p + "abs", "q_axes"], [p + "amax"], keepdims=1)
            if opset >= 18 else
            helper.make_node("ReduceMax", [p + "abs"], [p + "amax"], axes=[-1], keepdims=1),
            helper.make_node("Max", [p + "amax", "q_eps"], [p + "amax1"]),
            helper.make_node("Div", [p + "amax1", "q_127"], [p + "xs"]),   # row scale
            helper.make_node("Div", ["q_127", p + "amax1"], [p + "inv"]),
            helper.make_node("Mul", [x, p + "inv"], [p + "xd"]),            # |x| <= 127
            # shifted to uint8 around a zero point of 128 (128 is even, so rounding is
            # unchanged): onnxruntime's fastest x86 int8 kernels take unsigned activations
            # and signed weights (U8S8)
            helper.make_node("Add", [p + "xd", "q_128"], [p + "xu"]),
            helper.make_node("Round", [p + "xu"], [p + "xr"]),
            helper.make_node("Cast", [p + "xr"], [p + "xq"], to=TensorProto.UINT8),
            # int32 accumulation, times the per-channel weight scales, in one kernel
            helper.make_node("MatMulIntegerToFloat",
                             [p + "xq", p + "w", "q_one", p + "ws", "q_zp"], [p + "y1"],
                             domain="com.microsoft"),
        ]
        if bias:
            new_nodes += [helper.make_node("Mul", [p + "y1", p + "xs"], [p + "y2"]),
                          helper.make_node("Add", [p + "y2", bias], [out])]
        else:
            new_nodes.append(helper.make_node("Mul", [p + "y1", p + "xs"], [out]))
        count += 1
    used = {i for n in new_nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + [i for i in new_inits if i.name in used])
    if count and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return count


# ----------------------------------------------------------------------------- heads
def _has_converter(step: Any) -> bool:
    """Whether skl2onnx (with any converter registered by the user) can convert ``step``."""
    if _target_scaler(step) is not None:  # exported as its regressor + a rescaling
        return _has_converter(step.regressor_)
    try:  # the registry itself: class -> converter alias (LogisticRegression ->
        # "SklearnLinearClassifier"), including update_registered_converter() additions
        from skl2onnx._supported_operators import sklearn_operator_name_map
    except ImportError:  # pragma: no cover - a skl2onnx that moved it: try converting
        return True
    return type(step) in sklearn_operator_name_map


def _target_scaler(step: Any) -> dict[str, Any] | None:
    """``{"mean", "scale"}`` of a fitted ``TransformedTargetRegressor`` whose target
    transformer is a ``StandardScaler`` (the probe's SVM and MLP regression heads), else
    None: such a step is exported as its inner regressor, and the runtime undoes the
    scaling of its predictions (skl2onnx has no converter for the wrapper)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler

    if not isinstance(step, TransformedTargetRegressor) or not hasattr(step, "regressor_"):
        return None
    scaler = step.transformer_
    if type(scaler) is not StandardScaler:
        return None
    return {"mean": None if scaler.mean_ is None else float(scaler.mean_[0]),
            "scale": None if scaler.scale_ is None else float(scaler.scale_[0])}


def _export_head(steps: list[tuple[str, Any]], width: int, path: Path) -> dict[str, Any]:
    """Convert the scikit-learn steps after the featurizer to one ONNX graph.

    Returns the manifest entry: input dtype, output names and what they mean.
    """
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from sklearn.pipeline import Pipeline

    _check_head_steps(steps)
    tail = Pipeline([(n, s) for n, s in steps if s is not None and s != "passthrough"])
    last = tail.steps[-1][1]
    target = _target_scaler(last)
    if target is not None:
        last = last.regressor_
        tail = Pipeline(tail.steps[:-1] + [(tail.steps[-1][0], last)])
    classes = np.asarray(last.classes_) if hasattr(last, "classes_") else None
    if classes is not None:
        # the graph predicts the class *index*; the runtime maps it to the label. Labels
        # then keep their exact values and dtype (skl2onnx stores integer labels as
        # int32 in places: 10**12 came back as -727379968), strings and bools included
        tail = copy.deepcopy(tail)
        last = tail.steps[-1][1]
        try:
            last.classes_ = np.arange(len(classes))
        except AttributeError as exc:  # a read-only classes_
            raise ExportError(f"pipeline step {tail.steps[-1][0]!r} "
                              f"({type(last).__name__}): its classes_ cannot be set to "
                              f"class indices for the export ({exc})") from exc
    options = {id(last): {"zipmap": False}} if classes is not None else None
    errors = []
    # double first: scikit-learn computes the head in float64, and so does this graph;
    # float32 where onnxruntime has no double kernel for an operator (SVMRegressor)
    for dtype, kind in ((DoubleTensorType, "float64"), (FloatTensorType, "float32")):
        try:
            onx = to_onnx(tail, initial_types=[("features", dtype([None, width]))],
                          options=options, target_opset={"": OPSET, "ai.onnx.ml": 3})
            _loadable(onx)
            break
        except Exception as exc:  # noqa: BLE001 - a converter may refuse one dtype
            errors.append(f"{kind}: {type(exc).__name__}: {exc}")
    else:
        raise ExportError(f"the scikit-learn steps {[n for n, _ in steps]} could not be "
                          f"converted to ONNX: {'; '.join(errors)}")
    path.write_bytes(onx.SerializeToString())
    outputs = [o.name for o in onx.graph.output]
    entry: dict[str, Any] = {"file": path.name, "input_dtype": kind, "outputs": outputs,
                             "steps": [[n, type(s).__name__] for n, s in tail.steps]}
    if classes is not None:
        entry["classes"] = classes.tolist()
        entry["classes_dtype"] = classes.dtype.str if classes.dtype != object else "object"
        entry["label_is_index"] = True
        entry["label"] = outputs[0]
        entry["scores"] = outputs[1] if len(outputs) > 1 else None
        entry["proba"] = bool(hasattr(last, "predict_proba") and _has_proba(last))
    elif hasattr(last, "predict") and not hasattr(last, "transform"):
        entry["prediction"] = outputs[0]
        if target is not None:
            entry["target_scaler"] = target
    else:
        entry["transform"] = outputs[0]
    return entry


def _loadable(onx) -> None:
    """Raise unless onnxruntime has a kernel for every operator of the graph."""
    import onnxruntime as ort

    ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])


def _has_proba(estimator) -> bool:
    try:
        return callable(estimator.predict_proba)
    except AttributeError:  # SVC(probability=False) hides it
        return False


# --------------------------------------------------------------------------- TextUnion
def _tfidf_spec(tfidf, union=None) -> dict[str, Any]:
    """A fitted TfidfVectorizer (TextUnion's block, or a pipeline's first step) as plain
    JSON, for the numpy runtime."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    where = "TextUnion's TfidfVectorizer" if union is not None else "TfidfVectorizer"
    if type(tfidf) is not TfidfVectorizer:
        raise ExportError(f"TextUnion(tfidf={type(tfidf).__name__}) cannot be exported: only "
                          "a TfidfVectorizer block is")
    if not hasattr(tfidf, "vocabulary_"):
        raise ExportError(f"the {where} is not fitted; fit the pipeline before exporting")
    problems = [f"{name}={getattr(tfidf, name)!r}" for name, ok in (
        ("analyzer", tfidf.analyzer == "word"), ("tokenizer", tfidf.tokenizer is None),
        ("preprocessor", tfidf.preprocessor is None),
        ("strip_accents", tfidf.strip_accents in (None, "ascii", "unicode")),
        ("norm", tfidf.norm in (None, "l1", "l2")), ("use_idf", True)) if not ok]
    if problems:
        raise ExportError(f"{where}({', '.join(problems)}) cannot be "
                          "exported: the runtime implements analyzer='word' with the "
                          "default tokenizer and preprocessor")
    stop = tfidf.get_stop_words()
    vocab = {str(k): int(v) for k, v in tfidf.vocabulary_.items()}
    scaler = None if union is None else union.scaler_
    return {
        "vocabulary": vocab, "idf": tfidf.idf_.tolist() if tfidf.use_idf else None,
        "lowercase": bool(tfidf.lowercase), "token_pattern": tfidf.token_pattern,
        "ngram_range": list(tfidf.ngram_range), "stop_words": sorted(stop) if stop else None,
        "strip_accents": tfidf.strip_accents, "sublinear_tf": bool(tfidf.sublinear_tf),
        "binary": bool(tfidf.binary), "norm": tfidf.norm,
        "tfidf_weight": None if union is None else float(union.tfidf_weight),
        "bert_weight": None if union is None else float(union.bert_weight),
        "scaler_mean": None if scaler is None else scaler.mean_.tolist(),
        "scaler_scale": None if scaler is None else scaler.scale_.tolist(),
    }


# ------------------------------------------------------------------------------ main
def _split(pipeline) -> tuple[Any, Any, list[tuple[str, Any]]]:
    """(featurizer, union or None, head steps) of a pipeline or a bare featurizer.

    A pipeline starting with a ``TfidfVectorizer`` gives ``(None, vectorizer, steps)``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from ..estimators.featurizer import BertFeaturizer
    from ..estimators.union import TextUnion

    if isinstance(pipeline, Pipeline):
        first_name, first = pipeline.steps[0]
        steps = list(pipeline.steps[1:])
    else:
        first_name, first, steps = "step 0", pipeline, []
    for name, step in steps:
        if isinstance(step, (BertFeaturizer, TextUnion, TfidfVectorizer)):
            raise ExportError(f"pipeline step {name!r}: only the first step may be a "
                              f"{type(step).__name__}")
    if isinstance(first, TextUnion):
        check_is_fitted(first, "bert_")
        return first.bert_, first, steps
    if isinstance(first, TfidfVectorizer):
        return None, first, steps
    if not isinstance(first, BertFeaturizer):
        raise ExportError(
            f"the pipeline's first step {first_name!r} is a {type(first).__name__}; "
            "bertfeat exports pipelines that start with BertFeaturizer, TextUnion or "
            "TfidfVectorizer")
    check_is_fitted(first, "layers_")
    return first, None, steps


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-30)


def export_pipeline(pipeline: Any, outdir: str | Path, *, precision: str = "fp32",
                    check_texts: list[str] | None = None, overwrite: bool = False,
                    verbose: bool = True) -> ExportReport:
    """Write a fitted pipeline to ``outdir`` as ONNX graphs, a tokenizer and a manifest.

    Parameters
    ----------
    pipeline : Pipeline, BertFeaturizer, TextUnion, BertClassifier or BertRegressor
        Fitted. A ``Pipeline`` must start with a ``BertFeaturizer``, a ``TextUnion`` or
        a ``TfidfVectorizer``; the steps after it are converted with skl2onnx. A
        fine-tuned ``BertClassifier``/``BertRegressor`` (alone, or the one step of a
        pipeline: the probe's fine-tuned pick) is exported as its fine-tuned encoder, its
        pooling and its linear head (:mod:`bertfeat.deploy.finetuned`); the agreement in
        the report is with the estimator itself.
    outdir : str or Path
        Folder to write (created; must be empty or absent unless ``overwrite``).
    precision : {"fp32", "int8"}, default="fp32"
        ``"int8"``: per-token dynamic int8 matrix products in the encoder graph.
    check_texts : list of str, optional
        Texts the exported encoder is compared on with the torch one, and the exported
        predictions with the pipeline's (default: a few built-in sentences); the cosines
        and the agreement are in the report and printed. A TF-IDF block is also compared
        on texts made of every vocabulary term.
    overwrite : bool, default=False
        Replace an existing export in ``outdir``. The new export is written and checked in
        a temporary folder beside ``outdir`` and renamed into place only when complete: if
        anything fails, the earlier export is left as it was. A folder holding files that
        no export writes is never replaced.
    verbose : bool, default=True
        Print the fidelity and the folder size.

    Returns
    -------
    ExportReport

    Raises
    ------
    ExportError
        A step cannot be exported (the message names it), ``outdir`` is not empty, or
        the runtime's TF-IDF values differ from scikit-learn's.
    """
    if precision not in ("fp32", "int8"):
        raise ExportError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    from .finetuned import finetuned_estimator, frozen_pipeline

    tuned = finetuned_estimator(pipeline)
    if tuned is not None:  # the fine-tuned encoder + its linear head, as featurizer + head
        with tempfile.TemporaryDirectory(prefix="bertfeat-finetuned-") as encoder_dir:
            return _export(frozen_pipeline(tuned, encoder_dir), outdir, precision,
                           check_texts, overwrite, verbose, original=pipeline)
    return _export(pipeline, outdir, precision, check_texts, overwrite, verbose)


def _export(pipeline: Any, outdir: str | Path, precision: str,
            check_texts: list[str] | None, overwrite: bool, verbose: bool,
            original: Any = None) -> ExportReport:
    """:func:`export_pipeline` of a pipeline that starts with a featurizer, a union or a
    vectorizer; predictions are compared with ``original`` (default: ``pipeline``)."""
    feat, union, steps = _split(pipeline)
    settings = None
    if feat is not None:
        # the weights exported must be those the pipeline was fitted with (ModelChangedError)
        feat._check_model_files(feat._runtime_store())
        settings = _featurizer_settings(feat)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ExportError(f"{outdir} is a file, not a folder; choose a new folder")
    if outdir.is_dir() and any(outdir.iterdir()):
        others = sorted(p.name for p in outdir.iterdir() if p.name not in _FILES)
        if others or not (outdir / MANIFEST).exists():
            raise ExportError(f"{outdir} exists and is not empty (it holds {others[:3]}, "
                              "which no export writes); choose a new folder")
        if not overwrite:
            raise ExportError(f"{outdir} already holds an export; pass overwrite=True "
                              "(--overwrite) to replace it")
    texts = list(check_texts) if check_texts else list(_CHECK_TEXTS)
    if feat is None:  # a TfidfVectorizer first: no encoder, no model
        return _export_tfidf(pipeline, union, steps, outdir, texts, verbose)
    head_width = union.n_features_out_ if union is not None else feat.n_features_out_
    if steps:
        _check_head_steps(steps)
    spec, tfidf_check = None, None
    if union is not None:  # refused before anything is written
        spec = _tfidf_spec(union.tfidf_, union)
        tfidf_check = _check_tfidf(spec, union.tfidf_, texts)

    from .. import models
    from ..engine.encoder import truncating_backend

    info = models.resolve_model(feat.model, feat.revision)
    tokenizer, model = models.load(info, depth=max(settings["depth"], min(1, feat.n_layers_)),
                                   device="cpu", precision="fp32",
                                   trust_remote_code=feat.trust_remote_code)
    with_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    attention = _eager_attention(model)
    graph = _FeatureGraph.build(model, settings, with_types)
    backend = truncating_backend(tokenizer, int(feat.max_length_),
                                 stride=int(settings.get("chunk_stride", 0)))
    if backend is None:
        raise ExportError(f"model {feat.model!r} has no fast tokenizer to export")

    parent = outdir.parent
    parent.mkdir(parents=True, exist_ok=True)
    # everything is written into a temporary folder beside OUTDIR and checked there;
    # OUTDIR is replaced only when the new export is complete (an earlier export stays
    # intact when anything fails)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.export-", dir=parent))
    try:
        report = _write_export(staging, outdir, original if original is not None else pipeline,
                               feat, union, steps, settings, info,
                               tokenizer, graph, backend, pad_id, attention, precision,
                               head_width, texts, spec, tfidf_check)
        _swap_into_place(staging, outdir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.directory = outdir
    if verbose:
        print(f"bertfeat export: {outdir} ({report.size_bytes / 1e6:.1f} MB, {precision}); "
              f"cosine to the torch featurizer (fp32) on {report.n_check_texts} texts: "
              f"mean {report.cosine_mean:.5f}, min {report.cosine_min:.5f}"
              + _more_checks(report))
    return report


def _write_export(folder: Path, outdir: Path, pipeline, feat, union, steps, settings, info,
                  tokenizer, graph, backend, pad_id: int, attention: str, precision: str,
                  head_width: int, texts: list[str], spec, tfidf_check) -> ExportReport:
    """Write every file of the export into ``folder`` (a fresh, empty folder)."""
    from ..engine.batching import DEFAULT_BATCH_TOKENS

    scratch = folder / ".scratch"
    scratch.mkdir()
    fp32_path = scratch / "encoder.onnx"
    _export_onnx(graph, _example_inputs(pad_id), fp32_path)
    encoder_path = folder / "encoder.onnx"
    n_quantized = 0
    if precision == "int8":
        n_quantized = quantize_graph(fp32_path, encoder_path)
    else:
        shutil.move(str(fp32_path), encoder_path)
    shutil.rmtree(scratch)
    backend.save(str(folder / "tokenizer.json"))

    manifest: dict[str, Any] = {
        "format": FORMAT, "kind": "bertfeat-export", "precision": precision,
        "model": str(feat.model), "model_type": info.model_type,
        "fingerprint": getattr(feat, "fingerprint_", None),
        "max_length": int(feat.max_length_), "model_max_length": int(info.max_length),
        "pad_id": int(pad_id),
        "encode_special_tokens": bool(getattr(tokenizer, "split_special_tokens", False)),
        "batch_size": int(feat.batch_size),
        "max_batch_tokens": int(feat.max_batch_tokens or DEFAULT_BATCH_TOKENS),
        "n_features": int(feat.n_features_out_), "settings": settings,
        "graph_features": _graph_width(feat, settings),
        "feature_names": [str(n) for n in feat.get_feature_names_out()],
        "n_quantized_matmuls": n_quantized, "graph": {"attention": attention},
        "tfidf": None, "head": None,
    }
    if union is not None:
        (folder / "tfidf.json").write_text(json.dumps(spec), encoding="utf-8")
        manifest["tfidf"] = "tfidf.json"
        manifest["union_features"] = int(union.n_features_out_)
    if steps:
        manifest["head"] = _export_head(steps, head_width, folder / "head.onnx")

    from .runtime import ExportedPipeline

    write_manifest(folder, manifest)
    runtime = ExportedPipeline(folder)
    got = runtime.encode(texts)
    if settings.get("long_text") == "chunk":  # the torch featurizer's own chunked pass
        want = _chunked_reference(feat, texts)
    else:
        ids = [e.ids for e in backend.encode_batch(texts)]
        want = np.concatenate([_torch_features(graph, ids[i:i + 32], pad_id)
                               for i in range(0, len(ids), 32)])
    cos = _cosines(got, want)
    agree = _agreement(pipeline, runtime, texts)
    manifest["check"] = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
                         "n_texts": len(texts)}
    _record_checks(manifest["check"], tfidf_check, agree)
    write_manifest(folder, manifest)
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    return ExportReport(outdir, precision, float(cos.mean()), float(cos.min()), len(texts),
                        files, *(tfidf_check or (None, 0)), agree)


# ------------------------------------------------------------------- fidelity checks
def _tfidf_texts(tfidf, texts: list[str]) -> list[str]:
    """``texts`` and texts made of every vocabulary term (so each term is tokenised)."""
    terms = sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get)
    return list(texts) + [" ".join(terms[i:i + _TERMS_PER_TEXT])
                          for i in range(0, len(terms), _TERMS_PER_TEXT)]


def _check_tfidf(spec: dict[str, Any], tfidf, texts: list[str]) -> tuple[float, int]:
    """(largest difference, texts compared) between the runtime's TF-IDF and
    scikit-learn's; :class:`ExportError` naming the first text where it is too large."""
    from .runtime import _Tfidf

    lexical = _Tfidf(spec)
    checked = _tfidf_texts(tfidf, texts)
    rows = max(1, 2 ** 22 // max(len(spec["vocabulary"]), 1))  # dense blocks of ~32 MB
    worst = 0.0
    for start in range(0, len(checked), rows):
        part = checked[start:start + rows]
        want = tfidf.transform(part).toarray()
        error = np.abs(lexical.lexical(part) - want).max(axis=1) if len(part) else []
        bad = np.flatnonzero(np.asarray(error) > TFIDF_TOLERANCE)
        if len(bad):
            i = int(bad[0])
            raise ExportError(
                f"the exported TF-IDF differs from scikit-learn's TfidfVectorizer on check "
                f"text {start + i} ({part[i][:60]!r}): {float(error[i]):.3g} > "
                f"{TFIDF_TOLERANCE:g}, so the runtime would not reproduce the pipeline; "
                f"runtime terms {lexical._terms(part[i])[:8]}, scikit-learn terms "
                f"{tfidf.build_analyzer()(part[i])[:8]}")
        worst = max(worst, float(np.max(error, initial=0.0)))
    return worst, len(checked)


def _agreement(pipeline: Any, runtime: Any, texts: list[str]) -> tuple[int, int] | None:
    """(same, checked) predictions of the exported runtime and of the pipeline."""
    head = runtime.manifest.get("head") or {}
    if not texts or not hasattr(pipeline, "predict") or not (
            "label" in head or "prediction" in head):
        return None
    with warnings.catch_warnings():  # truncation of the long check text: said at fit
        warnings.simplefilter("ignore", UserWarning)
        want = np.asarray(pipeline.predict(texts))
    got = runtime.predict(texts)
    if "label" in head:
        return int((got == want).sum()), len(texts)
    scale = max(1.0, float(np.abs(want).max()))
    return int(np.isclose(got, want, rtol=1e-4, atol=1e-4 * scale).sum()), len(texts)


def _record_checks(check: dict[str, Any], tfidf_check, agree) -> None:
    if tfidf_check is not None:
        check["tfidf_max_error"], check["tfidf_texts"] = tfidf_check
    if agree is not None:
        check["predictions_agree"] = list(agree)


def _more_checks(report: ExportReport) -> str:
    out = ""
    if report.tfidf_max_error is not None:
        out += (f"; TF-IDF max difference to scikit-learn {report.tfidf_max_error:.1e} on "
                f"{report.n_tfidf_texts} texts")
    if report.predictions_agree is not None:
        same, n = report.predictions_agree
        out += f"; predictions agree with the pipeline on {same}/{n} texts"
    return out


def _export_tfidf(pipeline: Any, tfidf, steps: list[tuple[str, Any]], outdir: Path,
                  texts: list[str], verbose: bool) -> ExportReport:
    """Export a pipeline starting with a TfidfVectorizer: tfidf.json + head.onnx."""
    from .runtime import ExportedPipeline

    spec = _tfidf_spec(tfidf)
    if steps:
        _check_head_steps(steps)
    tfidf_check = _check_tfidf(spec, tfidf, texts)  # refused before anything is written
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.export-", dir=outdir.parent))
    try:
        (staging / "tfidf.json").write_text(json.dumps(spec), encoding="utf-8")
        width = len(spec["vocabulary"])
        manifest: dict[str, Any] = {
            "format": FORMAT, "kind": "bertfeat-export", "first_step": "TfidfVectorizer",
            "precision": None, "model": None, "n_features": width,
            "feature_names": [str(n) for n in tfidf.get_feature_names_out()],
            "tfidf": "tfidf.json", "head": None,
        }
        if steps:
            manifest["head"] = _export_head(steps, width, staging / "head.onnx")
        write_manifest(staging, manifest)
        agree = _agreement(pipeline, ExportedPipeline(staging), texts)
        manifest["check"] = {"n_texts": len(texts)}
        _record_checks(manifest["check"], tfidf_check, agree)
        write_manifest(staging, manifest)
        files = {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()}
        _swap_into_place(staging, outdir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report = ExportReport(outdir, None, None, None, len(texts), files, *tfidf_check, agree)
    if verbose:
        print(f"bertfeat export: {outdir} ({report.size_bytes / 1e6:.1f} MB, TF-IDF, no "
              f"encoder){_more_checks(report)}")
    return report


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json``: a sha256 of every other file, then of the manifest itself.

    The runtime checks each digest when it loads the folder, so a damaged or edited file
    (a permuted ``tokenizer.json``, a flipped setting) is an error naming the file, never
    different predictions. The digests detect damage and edits, not a forger who rewrites
    the digests too: an export folder is as trustworthy as whoever can write to it.
    """
    from .runtime import file_digest, manifest_digest

    manifest["files"] = {p.name: file_digest(p) for p in sorted(folder.iterdir())
                         if p.is_file() and p.name != MANIFEST}
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")


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


def _check_head_steps(steps: list[tuple[str, Any]]) -> None:
    """Fail before the slow encoder export when a head step has no converter."""
    for name, step in steps:
        if step is None or step == "passthrough":
            continue
        if not _has_converter(step):
            raise ExportError(
                f"pipeline step {name!r} ({type(step).__name__}) has no ONNX converter in "
                "skl2onnx, so the pipeline cannot be exported; steps that can include "
                "StandardScaler, PCA, LogisticRegression, LinearSVC, SVC, MLPClassifier, "
                "Ridge (see skl2onnx.supported_converters())")


def _graph_width(feat, settings: dict[str, Any]) -> int:
    """Columns of the encoder graph's output: the features, or (chunked) the statistics
    of every window."""
    if settings.get("long_text") != "chunk":
        return int(feat.n_features_out_)
    if settings["pooling"] == "pooler":
        return int(feat.hidden_size_)
    return len(settings["stat_layers"]) * 3 * int(feat.hidden_size_)


def _chunked_reference(feat, texts: list[str]) -> np.ndarray:
    """The fitted featurizer's features of ``texts`` in fp32, without its store."""
    from sklearn.base import clone

    reference = clone(feat).set_params(precision="fp32", cache=False, device="cpu",
                                       show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return reference.fit(texts[:1]).transform(texts)


def _torch_features(graph, ids: list[list[int]], pad_id: int) -> np.ndarray:
    """The traced module's features for token ids, in torch (fp32), one padded batch."""
    import torch

    width = max(len(i) for i in ids)
    batch = torch.full((len(ids), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(ids), width), dtype=torch.int64)
    for row, seq in enumerate(ids):
        batch[row, :len(seq)] = torch.tensor(seq, dtype=torch.int64)
        mask[row, :len(seq)] = 1
    with torch.inference_mode():
        return graph(batch, mask).float().numpy()
