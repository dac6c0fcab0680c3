"""A fine-tuned estimator as the pipeline export already knows: featurizer + linear head.

A fitted :class:`~bertfeat.BertClassifier` or :class:`~bertfeat.BertRegressor` is its
fine-tuned encoder, a pooling of the last layer (``cls``, ``mean``, ``max`` or
``mean_max``) and one linear layer (dropout is the identity at inference). That is exactly
``BertFeaturizer(model=<the fine-tuned encoder>, layers=-1, pooling=...)`` followed by a
scikit-learn linear model holding the same weights:

* classifier: ``LogisticRegression`` whose decision is the head's logits (two classes:
  the difference of the two logits, so ``softmax`` and ``sigmoid`` give the same
  probabilities);
* regressor: ``LinearRegression`` with the head's weights scaled back to the targets'
  units (``y_scale_``, ``y_mean_``).

:func:`frozen_pipeline` builds that pipeline (the encoder is written with
``save_pretrained`` into a folder the caller owns), so :func:`bertfeat.deploy.export.
export_pipeline` exports a probe's fine-tuned pick like any other, with the same fidelity
report against the original estimator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["finetuned_estimator", "frozen_pipeline"]


def finetuned_estimator(pipeline: Any) -> Any | None:
    """The fine-tuned estimator ``pipeline`` is (alone or as a one-step Pipeline), else None.

    Parameters
    ----------
    pipeline : estimator or Pipeline

    Returns
    -------
    BertClassifier, BertRegressor or None
    """
    from sklearn.pipeline import Pipeline

    from ..estimators.finetune import _BertFineTuner

    if isinstance(pipeline, Pipeline) and len(pipeline.steps) == 1:
        pipeline = pipeline.steps[0][1]
    return pipeline if isinstance(pipeline, _BertFineTuner) else None


def frozen_pipeline(estimator: Any, folder: str | Path) -> Any:
    """``BertFeaturizer(fine-tuned encoder) + linear head`` equal to a fitted fine-tuner.

    Parameters
    ----------
    estimator : BertClassifier or BertRegressor
        Fitted.
    folder : str or Path
        Where the fine-tuned encoder is written (it must outlive the pipeline's use).

    Returns
    -------
    Pipeline
        Fitted: ``("bertfeaturizer", ...), ("head", LogisticRegression | LinearRegression)``.
    """
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from ..estimators.featurizer import BertFeaturizer
    from ..estimators.finetune import BertClassifier

    check_is_fitted(estimator, "n_steps_")
    folder = Path(folder)
    estimator.save_pretrained(folder)
    _, _, head = estimator._runtime()
    weight = head.linear.weight.detach().cpu().double().numpy()
    bias = head.linear.bias.detach().cpu().double().numpy()
    featurizer = BertFeaturizer(model=str(folder), layers=-1, pooling=estimator.pooling,
                                normalize=False, max_length=estimator.max_length_,
                                precision="fp32", device="cpu", cache=False,
                                trust_remote_code=estimator.trust_remote_code,
                                show_progress=False).fit([""])
    width = featurizer.n_features_out_
    if weight.shape[1] != width:  # pragma: no cover - a head that is not on this pooling
        raise ValueError(f"the fine-tuned head takes {weight.shape[1]} features, the "
                         f"featurizer gives {width}")
    if isinstance(estimator, BertClassifier):
        classes = np.asarray(estimator.classes_)
        k = len(classes)
        # fitted on stand-in data for every attribute skl2onnx reads, then given the head
        head_model = LogisticRegression().fit(np.eye(k, width), np.arange(k))
        if k == 2:
            head_model.coef_ = (weight[1] - weight[0])[None, :]
            head_model.intercept_ = np.array([bias[1] - bias[0]])
        else:
            head_model.coef_, head_model.intercept_ = weight.copy(), bias.copy()
        head_model.classes_ = classes
    else:
        scale, mean = np.asarray(estimator.y_scale_), np.asarray(estimator.y_mean_)
        targets = len(mean)
        head_model = LinearRegression().fit(np.eye(max(2, targets), width)[:2],
                                            np.zeros((2, targets)) if targets > 1
                                            else np.zeros(2))
        coef = weight * scale[:, None]
        intercept = bias * scale + mean
        if estimator._y_1d:
            head_model.coef_, head_model.intercept_ = coef[0], float(intercept[0])
        else:
            head_model.coef_, head_model.intercept_ = coef, intercept
    head_model.n_features_in_ = width
    return Pipeline([("bertfeaturizer", featurizer), ("head", head_model)])
