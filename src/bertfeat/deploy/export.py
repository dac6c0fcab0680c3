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
TF-IDF rows with numpy (:mod:`bertfeat.deploy.tfidf`); the export compares them with
scikit-learn's and refuses with :class:`ExportError` when a value differs by more than
:data:`TFIDF_TOLERANCE`.

No file in the folder is a pickle. :func:`bertfeat.deploy.runtime.load` reads it with
onnxruntime, tokenizers and numpy only. The manifest records a sha256 of every other file
and of its own settings; the runtime checks them when it loads the folder. The folder is
written in a temporary folder beside OUTDIR and renamed into place when complete.

The export runs in stages, one module each, in this order::

    _split (this module) ─► graph.featurizer_settings ─► head.check_head_steps
      ─► tfidf.tfidf_spec + check_tfidf ─► folder.staging_folder:
         graph.feature_graph + export_onnx (+ quantize.quantize_graph for int8)
         ─► tokenizer.json ─► head.export_head ─► manifest.write_manifest
         ─► checks (cosines to torch, agreement of predictions) ─► renamed into place

The encoder is traced with the eager ("math") attention (:mod:`bertfeat.deploy.graph`);
the manifest's ``graph`` entry records it. Precision ``"int8"`` rewrites every matrix
product with a weight matrix into per-token dynamic int8
(:mod:`bertfeat.deploy.quantize`), and prints its cosine to the fp32 graph.

Needs the ``export`` extra: ``pip install 'bertfeat[export]'`` (onnx, onnxruntime,
skl2onnx).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from . import graph, head
from .checks import CHECK_TEXTS, agreement, cosines, record_checks, reference_features
from .folder import check_outdir, file_sizes, staging_folder
from .manifest import FORMAT, MANIFEST, write_manifest
from .quantize import quantize_graph
from .report import ExportError, ExportReport, describe_checks
from .tfidf import TFIDF_TOLERANCE, check_tfidf, tfidf_spec

__all__ = ["export_pipeline", "ExportError", "ExportReport", "MANIFEST", "FORMAT",
           "TFIDF_TOLERANCE"]


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
        settings = graph.featurizer_settings(feat)
    outdir = check_outdir(outdir, overwrite)
    texts = list(check_texts) if check_texts else list(CHECK_TEXTS)
    if feat is None:  # a TfidfVectorizer first: no encoder, no model
        return _export_tfidf(pipeline, union, steps, outdir, texts, verbose)
    if steps:
        head.check_head_steps(steps)
    spec, tfidf_check = None, None
    if union is not None:  # refused before anything is written
        spec = tfidf_spec(union.tfidf_, union)
        tfidf_check = check_tfidf(spec, union.tfidf_, texts)
    encoder = _Encoder.load(feat, settings)
    # everything is written into a temporary folder beside OUTDIR and checked there;
    # OUTDIR is replaced only when the new export is complete (an earlier export stays
    # intact when anything fails)
    with staging_folder(outdir) as staging:
        report = _write_export(staging, original if original is not None else pipeline,
                               feat, union, steps, encoder, precision, texts, spec,
                               tfidf_check)
    report.directory = outdir
    if verbose:
        print(f"bertfeat export: {outdir} ({report.size_bytes / 1e6:.1f} MB, {precision}); "
              f"cosine to the torch featurizer (fp32) on {report.n_check_texts} texts: "
              f"mean {report.cosine_mean:.5f}, min {report.cosine_min:.5f}"
              + describe_checks(report))
    return report


class _Encoder:
    """The fitted featurizer's model as the export traces it (fp32, on the CPU)."""

    def __init__(self, info: Any, tokenizer: Any, module: Any, backend: Any, pad_id: int,
                 attention: str, settings: dict[str, Any]) -> None:
        self.info, self.tokenizer, self.module, self.backend = info, tokenizer, module, backend
        self.pad_id, self.attention, self.settings = pad_id, attention, settings

    @classmethod
    def load(cls, feat: Any, settings: dict[str, Any]) -> _Encoder:
        from .. import models
        from ..engine.encoder import truncating_backend

        info = models.resolve_model(feat.model, feat.revision)
        tokenizer, model = models.load(
            info, depth=max(settings["depth"], min(1, feat.n_layers_)), device="cpu",
            precision="fp32", trust_remote_code=feat.trust_remote_code)
        with_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        attention = graph.eager_attention(model)
        module = graph.feature_graph(model, settings, with_types)
        backend = truncating_backend(tokenizer, int(feat.max_length_),
                                     stride=int(settings.get("chunk_stride", 0)))
        if backend is None:
            raise ExportError(f"model {feat.model!r} has no fast tokenizer to export")
        return cls(info, tokenizer, module, backend, int(pad_id), attention, settings)


def _write_export(folder: Path, pipeline: Any, feat: Any, union: Any,
                  steps: list[tuple[str, Any]], encoder: _Encoder, precision: str,
                  texts: list[str], spec: dict[str, Any] | None,
                  tfidf_check: tuple[float, int] | None) -> ExportReport:
    """Write every file of the export into ``folder`` (a fresh, empty folder) and check
    the folder against the torch featurizer and the pipeline."""
    from .runtime import ExportedPipeline

    scratch = folder / ".scratch"
    scratch.mkdir()
    fp32_path = scratch / "encoder.onnx"
    graph.export_onnx(encoder.module, encoder.pad_id, fp32_path)
    n_quantized = 0
    if precision == "int8":
        n_quantized = quantize_graph(fp32_path, folder / "encoder.onnx")
    else:
        shutil.move(str(fp32_path), folder / "encoder.onnx")
    shutil.rmtree(scratch)
    encoder.backend.save(str(folder / "tokenizer.json"))
    manifest = _encoder_manifest(feat, encoder, precision, n_quantized)
    if union is not None:
        (folder / "tfidf.json").write_text(json.dumps(spec), encoding="utf-8")
        manifest["tfidf"] = "tfidf.json"
        manifest["union_features"] = int(union.n_features_out_)
    if steps:
        width = union.n_features_out_ if union is not None else feat.n_features_out_
        manifest["head"] = head.export_head(steps, width, folder / "head.onnx")

    write_manifest(folder, manifest)
    runtime = ExportedPipeline(folder)
    cos = cosines(runtime.encode(texts), reference_features(
        feat, encoder.module, encoder.backend, encoder.pad_id, texts))
    agree = agreement(pipeline, runtime, texts)
    manifest["check"] = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
                         "n_texts": len(texts)}
    record_checks(manifest["check"], tfidf_check, agree)
    write_manifest(folder, manifest)
    return ExportReport(folder, precision, float(cos.mean()), float(cos.min()), len(texts),
                        file_sizes(folder), *(tfidf_check or (None, 0)), agree)


def _encoder_manifest(feat: Any, encoder: _Encoder, precision: str,
                      n_quantized: int) -> dict[str, Any]:
    """The manifest of an export with an encoder, before its head, TF-IDF and checks."""
    from ..engine.batching import DEFAULT_BATCH_TOKENS

    settings = encoder.settings
    return {
        "format": FORMAT, "kind": "bertfeat-export", "precision": precision,
        "model": str(feat.model), "model_type": encoder.info.model_type,
        "fingerprint": getattr(feat, "fingerprint_", None),
        "max_length": int(feat.max_length_), "model_max_length": int(encoder.info.max_length),
        "pad_id": encoder.pad_id,
        "encode_special_tokens": bool(getattr(encoder.tokenizer, "split_special_tokens",
                                              False)),
        "batch_size": int(feat.batch_size),
        "max_batch_tokens": int(feat.max_batch_tokens or DEFAULT_BATCH_TOKENS),
        "n_features": int(feat.n_features_out_), "settings": settings,
        "graph_features": graph.graph_width(feat, settings),
        "feature_names": [str(n) for n in feat.get_feature_names_out()],
        "n_quantized_matmuls": n_quantized, "graph": {"attention": encoder.attention},
        "tfidf": None, "head": None,
    }


def _export_tfidf(pipeline: Any, tfidf: Any, steps: list[tuple[str, Any]], outdir: Path,
                  texts: list[str], verbose: bool) -> ExportReport:
    """Export a pipeline starting with a TfidfVectorizer: tfidf.json + head.onnx."""
    from .runtime import ExportedPipeline

    spec = tfidf_spec(tfidf)
    if steps:
        head.check_head_steps(steps)
    tfidf_check = check_tfidf(spec, tfidf, texts)  # refused before anything is written
    with staging_folder(outdir) as staging:
        (staging / "tfidf.json").write_text(json.dumps(spec), encoding="utf-8")
        width = len(spec["vocabulary"])
        manifest: dict[str, Any] = {
            "format": FORMAT, "kind": "bertfeat-export", "first_step": "TfidfVectorizer",
            "precision": None, "model": None, "n_features": width,
            "feature_names": [str(n) for n in tfidf.get_feature_names_out()],
            "tfidf": "tfidf.json", "head": None,
        }
        if steps:
            manifest["head"] = head.export_head(steps, width, staging / "head.onnx")
        write_manifest(staging, manifest)
        agree = agreement(pipeline, ExportedPipeline(staging), texts)
        manifest["check"] = {"n_texts": len(texts)}
        record_checks(manifest["check"], tfidf_check, agree)
        write_manifest(staging, manifest)
        files = file_sizes(staging)
    report = ExportReport(outdir, None, None, None, len(texts), files, *tfidf_check, agree)
    if verbose:
        print(f"bertfeat export: {outdir} ({report.size_bytes / 1e6:.1f} MB, TF-IDF, no "
              f"encoder){describe_checks(report)}")
    return report


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


