"""How faithful an export is: the checks run on the written folder before it is published.

* :func:`cosines` of the runtime's features to the torch featurizer's (fp32);
* :func:`reference_features`: the torch side of that comparison;
* :func:`agreement` of the runtime's predictions with the pipeline's (or the fine-tuned
  estimator's) own;
* the TF-IDF comparison is :func:`bertfeat.deploy.tfidf.check_tfidf`.

Their results go to the manifest (:func:`record_checks`) and to the
:class:`~bertfeat.deploy.report.ExportReport`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .graph import torch_features

__all__ = ["CHECK_TEXTS", "agreement", "cosines", "record_checks", "reference_features"]

#: texts the exported graph is checked on when the caller gives none
CHECK_TEXTS = (
    "", "a", "the film was good", "an awful, boring plot and very bad acting",
    "I love this movie! The music, the story and the actors are great.",
    "what is the fee for a card payment abroad?", "hello world " * 40,
    "not good, not bad", "Why? Who? When?", "free prize: call now to win",
)


def reference_features(feat: Any, graph: Any, backend: Any, pad_id: int,
                       texts: list[str]) -> np.ndarray:
    """What the runtime's features are compared with: the torch side, in fp32.

    Parameters
    ----------
    feat : BertFeaturizer
        The fitted featurizer that was exported.
    graph : torch.nn.Module
        The traced module (:func:`bertfeat.deploy.graph.feature_graph`).
    backend : tokenizers.Tokenizer
        The exported tokenizer.
    pad_id : int
    texts : list of str

    Returns
    -------
    ndarray of shape (n_texts, n_features)
        For ``long_text="chunk"`` the featurizer's own chunked pass (a clone without its
        store), else the traced module run in torch on the exported tokenizer's ids.
    """
    if getattr(feat, "long_text", "truncate") == "chunk":
        return _chunked_reference(feat, texts)
    ids = [e.ids for e in backend.encode_batch(texts)]
    return np.concatenate([torch_features(graph, ids[i:i + 32], pad_id)
                           for i in range(0, len(ids), 32)])


def _chunked_reference(feat, texts: list[str]) -> np.ndarray:
    """The fitted featurizer's features of ``texts`` in fp32, without its store."""
    from sklearn.base import clone

    reference = clone(feat).set_params(precision="fp32", cache=False, device="cpu",
                                       show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return reference.fit(texts[:1]).transform(texts)


def agreement(pipeline: Any, runtime: Any, texts: list[str]) -> tuple[int, int] | None:
    """Predictions of the exported runtime compared with the pipeline's.

    Parameters
    ----------
    pipeline : estimator
        What was exported (its ``predict`` is the reference).
    runtime : ExportedPipeline
        The written folder, loaded.
    texts : list of str

    Returns
    -------
    (int, int) or None
        ``(same, checked)``: equal labels (classifiers), or values within 1e-4 relative
        (regressors); None without a predicting head.
    """
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


def record_checks(check: dict[str, Any], tfidf_check: tuple[float, int] | None,
                  agree: tuple[int, int] | None) -> None:
    """Add the TF-IDF and agreement results to the manifest's ``check`` entry.

    Parameters
    ----------
    check : dict
        The manifest's ``check`` entry (changed in place).
    tfidf_check : (float, int) or None
        :func:`bertfeat.deploy.tfidf.check_tfidf`.
    agree : (int, int) or None
        :func:`agreement`.
    """
    if tfidf_check is not None:
        check["tfidf_max_error"], check["tfidf_texts"] = tfidf_check
    if agree is not None:
        check["predictions_agree"] = list(agree)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two feature matrices, in float64.

    Parameters
    ----------
    a, b : ndarray of shape (n, d)

    Returns
    -------
    ndarray of shape (n,)
    """
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-30)
