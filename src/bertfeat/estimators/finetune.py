"""Fine-tuning estimators: ``BertClassifier`` and ``BertRegressor``.

The other half of knowledge transfer, in the same scikit-learn vocabulary as
:class:`~bertfeat.BertFeaturizer`: the encoder itself is trained on the task, with a
linear head on a pooled last layer (the classic BERT recipe: AdamW, a small learning
rate, a few epochs, linear warm-up and decay).

* Models resolve, load and run exactly as for the featurizer (:mod:`bertfeat.models`:
  model spec, ``revision``, the offline default model, the ``trust_remote_code`` policy,
  device and precision rules); texts are validated by :mod:`bertfeat.io.inputs` and
  tokenised and batched by :mod:`bertfeat.engine.encoder`; pooling is
  :func:`bertfeat.pooling.pool_stats`.
* This module holds the scikit-learn faces (targets, losses, scores, predictions); what
  both share (parameters, fit assembly, inference, persistence) is in
  :mod:`.finetune_base`, and the training loop itself in :mod:`bertfeat.engine.training`.
* Training keeps float32 master weights; ``precision="auto"`` runs forward and backward
  passes under the autocast precision measured fastest and faithful for training on this
  machine (:func:`training_precision`; bf16 or, on GPUs, fp16 with loss scaling).
* A fitted estimator pickles its weights as safetensors bytes (never a pickled tensor),
  together with the tokenizer files, so ``joblib.load`` rebuilds it anywhere without the
  base model. :meth:`save_pretrained` writes a normal model directory that
  ``BertFeaturizer(model=directory)`` loads, with its own fingerprint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets

from ..io.inputs import _is_missing
from .finetune_base import FINETUNE_POOLINGS, _BertFineTuner, training_precision

__all__ = ["FINETUNE_POOLINGS", "BertClassifier", "BertRegressor", "training_precision"]


class BertClassifier(ClassifierMixin, _BertFineTuner):
    """Fine-tune a BERT-family encoder with a linear classification head.

    The encoder is trained end to end with AdamW (no weight decay on biases and
    LayerNorm weights), a linear warm-up then linear decay of the learning rate, gradient
    clipping at norm 1 and dropout 0.1 before the head. Texts are tokenised once; each
    epoch shuffles them, groups similar lengths into batches of ``batch_size`` texts and
    splits a batch into micro-batches under ``max_batch_tokens`` padded tokens
    (gradients are accumulated, so the budget changes memory, not the result).

    Parameters
    ----------
    model : str, default="default"
        As for :class:`~bertfeat.BertFeaturizer`: ``"default"`` (the bundled
        all-MiniLM-L6-v2, offline), a hub id or a local directory.
    pooling : {"cls", "mean", "max", "mean_max"}, default="mean"
        Pooling of the last layer under the head (real tokens only).
    epochs : int, default=3
        Passes over the training texts.
    learning_rate : float, default=1e-4
        Peak learning rate of AdamW.
    batch_size : int, default=32
        Texts per optimizer step.
    max_batch_tokens : int, optional
        Most padded tokens per forward pass; default 4096 on a CPU, 8192 on a GPU.
    warmup : float, default=0.1
        Share of the steps over which the learning rate rises linearly from 0.
    weight_decay : float, default=0.01
        AdamW weight decay (weight matrices only).
    max_length : int, optional
        Token limit per text; default the model's limit. Longer texts are truncated, with
        one warning that counts them.
    freeze_layers : int, default=0
        Keep the embeddings and the bottom ``freeze_layers`` transformer layers fixed;
        train only the top ``n_layers - freeze_layers`` layers and the head.
        ``freeze_layers=n_layers`` trains the head alone.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the texts (stratified), score them after each
        epoch, stop after ``n_iter_no_change`` epochs without improvement and keep the
        weights of the best epoch.
    validation_fraction : float, default=0.1
        Held-out share for ``early_stopping``.
    n_iter_no_change : int, default=2
        Epochs without a better validation accuracy before stopping.
    max_steps : int, optional
        Stop after this many optimizer steps (the schedule is fitted to it).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn.
    random_state : int, RandomState or None, default=None
        Seeds head initialisation, dropout, shuffling and the validation split: the same
        integer gives the same weights on a CPU.
    device : str, default="auto"
        As for the featurizer.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast precision of forward and backward passes (master weights stay float32).
        ``"auto"``: the fastest faithful one measured for training on this machine
        (fp32, bf16; fp16 on GPUs), remembered in the cache folder
        (:func:`training_precision`).
    revision : str, optional
        Hub revision for hub ids.
    show_progress : "auto" or bool, default="auto"
        Progress over the training steps (epoch and loss shown). ``"auto"``: for at
        least 256 training texts, a bar in a terminal or a notebook, and elsewhere
        (stderr sent to a file) a log line every 30 s with elapsed time, done/total
        steps, rate and ETA (logger ``"bertfeat"``, :mod:`bertfeat.engine.progress`). True:
        always a bar; False: nothing.
    on_bad_input : {"raise", "empty"}, default="raise"
        Missing texts: raise naming the row, or use the empty string.
    trust_remote_code : bool, default=False
        Allow models that ship their own Python code.

    Attributes
    ----------
    classes_ : ndarray
        Class labels.
    n_epochs_ : int
        Epochs run.
    n_steps_ : int
        Optimizer steps taken.
    n_train_tokens_ : int
        Real tokens trained on (all epochs).
    loss_curve_ : list of float
        Mean training loss of each epoch.
    validation_scores_ : list of float
        Validation accuracy after each epoch (``early_stopping`` only).
    best_epoch_ : int
        Epoch whose weights are kept.
    best_validation_score_ : float or None
        Its validation accuracy (``early_stopping`` only).
    fit_time_ : float
        Seconds spent in ``fit``.
    max_length_, device_, precision_, n_layers_, hidden_size_
        As for the featurizer.

    Examples
    --------
    >>> from bertfeat import BertClassifier
    >>> clf = BertClassifier(max_steps=2, random_state=0)
    >>> clf.fit(["good film", "awful plot"], ["pos", "neg"])  # doctest: +SKIP
    >>> clf.predict(["great film"])  # doctest: +SKIP
    array(['pos'], dtype='<U3')
    """

    _parameter_constraints: dict = {
        **_BertFineTuner._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(
        self,
        model: str = "default",
        *,
        pooling: str = "mean",
        epochs: int = 3,
        learning_rate: float = 1e-4,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        warmup: float = 0.1,
        weight_decay: float = 0.01,
        max_length: int | None = None,
        freeze_layers: int = 0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 2,
        max_steps: int | None = None,
        class_weight: dict | str | None = None,
        random_state: Any = None,
        device: str = "auto",
        precision: str = "auto",
        revision: str | None = None,
        show_progress: str | bool = "auto",
        on_bad_input: str = "raise",
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(
            model, pooling=pooling, epochs=epochs, learning_rate=learning_rate,
            batch_size=batch_size, max_batch_tokens=max_batch_tokens, warmup=warmup,
            weight_decay=weight_decay, max_length=max_length, freeze_layers=freeze_layers,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, max_steps=max_steps,
            random_state=random_state, device=device, precision=precision, revision=revision,
            show_progress=show_progress, on_bad_input=on_bad_input,
            trust_remote_code=trust_remote_code)
        self.class_weight = class_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BertClassifier:
        """Fine-tune the encoder and the head on labelled texts.

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame
            Training texts.
        y : array-like of shape (n_texts,)
            Labels (strings, integers ...); at least two classes.
        sample_weight : array-like of shape (n_texts,), optional
            Weight of each text in the loss (multiplies ``class_weight``).

        Returns
        -------
        self : BertClassifier
        """
        return self._fit(X, y, sample_weight)

    @property
    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _prepare_targets(self, y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = _labels_1d(y, n, type(self).__name__)
        check_classification_targets(labels)
        classes, encoded = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"BertClassifier needs at least 2 classes in y, got "
                             f"{len(classes)} ({classes.tolist()!r})")
        self.classes_ = classes
        if self.class_weight is None:
            weights = np.ones(n)
        else:
            if isinstance(self.class_weight, dict):
                unknown = set(self.class_weight) - set(classes.tolist())
                if unknown:
                    raise ValueError(f"class_weight names classes not in y: {sorted(unknown)!r}")
            per_class = compute_class_weight(self.class_weight, classes=classes, y=labels)
            weights = per_class[encoded]
        return encoded.astype(np.int64), weights.astype(np.float64)

    def _loss(self, outputs, targets):
        import torch

        return torch.nn.functional.cross_entropy(outputs, targets, reduction="none")

    def _val_score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float(accuracy_score(targets, outputs.argmax(axis=1)))

    def _stratify(self, targets: np.ndarray) -> np.ndarray | None:
        return targets

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits of the head.

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame

        Returns
        -------
        ndarray of shape (n_texts,) for two classes (positive class minus negative),
        else (n_texts, n_classes)
        """
        logits = self._outputs(X)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of the logits).

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame

        Returns
        -------
        ndarray of shape (n_texts, n_classes)
        """
        logits = self._outputs(X).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each text.

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame

        Returns
        -------
        ndarray of shape (n_texts,)
        """
        outputs = self._outputs(X)
        return self.classes_[outputs.argmax(axis=1)]


class BertRegressor(RegressorMixin, _BertFineTuner):
    """Fine-tune a BERT-family encoder with a linear regression head.

    Targets are standardised for training (mean 0, variance 1 per column; predictions
    are mapped back) and the loss is the mean squared error. Everything else is as in
    :class:`BertClassifier`: the parameters (without ``class_weight``), the recipe, the
    persistence. With ``early_stopping`` the validation score is R².

    Parameters
    ----------
    model, pooling, epochs, learning_rate, batch_size, max_batch_tokens, warmup, \
weight_decay, max_length, freeze_layers, early_stopping, validation_fraction, \
n_iter_no_change, max_steps, random_state, device, precision, revision, show_progress, \
on_bad_input, trust_remote_code
        See :class:`BertClassifier`.

    Attributes
    ----------
    y_mean_, y_scale_ : ndarray of shape (n_targets,)
        Standardisation of the targets.
    n_epochs_, n_steps_, n_train_tokens_, loss_curve_, validation_scores_, best_epoch_, \
best_validation_score_, fit_time_
        See :class:`BertClassifier`.
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BertRegressor:
        """Fine-tune the encoder and the head on texts with numeric targets.

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame
            Training texts.
        y : array-like of shape (n_texts,) or (n_texts, n_targets)
            Finite numbers.
        sample_weight : array-like of shape (n_texts,), optional
            Weight of each text in the loss.

        Returns
        -------
        self : BertRegressor
        """
        return self._fit(X, y, sample_weight)

    @property
    def _n_outputs(self) -> int:
        return len(self.y_mean_)

    def _prepare_targets(self, y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            values = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"BertRegressor needs numeric targets: {exc}") from None
        if values.ndim not in (1, 2) or len(values) != n or (
                values.ndim == 2 and values.shape[1] == 0):
            raise ValueError(f"y has shape {values.shape}; expected ({n},) or ({n}, n_targets) "
                             f"with n_targets >= 1 for {n} texts")
        bad = np.flatnonzero(~np.isfinite(values.reshape(n, -1)).all(axis=1))
        if len(bad):
            raise ValueError(f"y of row {int(bad[0])} is not a finite number "
                             f"({values[bad[0]]!r}); drop or fill such rows first")
        self._y_1d = values.ndim == 1
        matrix = values.reshape(n, -1)
        self.y_mean_ = matrix.mean(axis=0)
        scale = matrix.std(axis=0)
        self.y_scale_ = np.where(scale > 0, scale, 1.0)
        standard = (matrix - self.y_mean_) / self.y_scale_
        return standard.astype(np.float32), np.ones(n)

    def _loss(self, outputs, targets):
        return ((outputs - targets) ** 2).mean(dim=1)

    def _val_score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float(r2_score(targets, outputs))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets.

        Parameters
        ----------
        X : sequence of str, Series or 1-column DataFrame

        Returns
        -------
        ndarray of shape (n_texts,) or (n_texts, n_targets), like ``y`` in ``fit``
        """
        pred = self._outputs(X).astype(np.float64) * self.y_scale_ + self.y_mean_
        return pred[:, 0] if self._y_1d else pred


def _labels_1d(y: Any, n: int, owner: str) -> np.ndarray:
    """Labels as a 1-D array with one per text; a missing label is an error naming its row."""
    if y is None:
        raise ValueError(f"{owner}.fit needs labels y")
    labels = np.asarray(y, dtype=object if not hasattr(y, "dtype") else None)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per text), got shape {labels.shape}")
    if len(labels) != n:
        raise ValueError(f"X has {n} texts but y has {len(labels)} labels")
    for i, value in enumerate(labels):
        if _is_missing(value):
            raise ValueError(f"Row {i} of y is missing ({value!r}); every text needs a label")
    if labels.dtype == object:
        kinds = {type(v) for v in labels}
        if len(kinds) == 1:
            labels = np.asarray(labels.tolist())
    return labels
