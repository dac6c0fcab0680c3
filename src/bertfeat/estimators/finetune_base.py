"""What :class:`~bertfeat.BertClassifier` and :class:`~bertfeat.BertRegressor` share:
parameters, the fit's validation and assembly, inference, persistence.

The fit validates texts, targets and weights, resolves the model through the encoder-backed
base (:class:`~bertfeat.estimators.base.EncoderEstimatorMixin`: trust policy, device,
precision, fingerprint), splits off the validation rows, and hands the training itself to
:class:`bertfeat.engine.training.Trainer`; the weights travel in pickles as safetensors
bytes (:mod:`bertfeat.engine.checkpoint`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import models
from ..engine import checkpoint, encoder, training
from ..engine import precision as auto_precision
from ..io.inputs import BAD_INPUT_POLICIES, to_texts
from .base import EncoderEstimatorMixin
from .params import non_negative_int, positive_int

__all__ = ["FINETUNE_POOLINGS", "training_precision"]

#: poolings a fine-tuned head can sit on (statistics of the last layer)
FINETUNE_POOLINGS = ("cls", "mean", "max", "mean_max")


def training_precision(precision: str, device: str, info: models.ModelInfo | None = None,
                       *, trust_remote_code: bool = False) -> str:
    """The autocast precision of fine-tuning for ``precision`` on ``device``.

    ``"auto"`` is decided by measurement like the featurizer's
    (:func:`bertfeat.engine.precision.resolve_precision`), but with its own calibration
    (``purpose="train"``): a forward and backward pass under each candidate's autocast is
    timed and its outputs checked against float32, since training speed is not
    inference speed (on a Xeon with AVX512-BF16 and no AMX, a bf16 training step of
    MiniLM-L6 at batch 32 took 7.4 s against 4.6 s in float32). ``BERTFEAT_PRECISION``
    replaces the decision. ``int8`` is an inference format and cannot be trained.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}
    device : str
        Concrete device.
    info : ModelInfo, optional
        The model to measure (needed for ``"auto"`` where there is a choice).
    trust_remote_code : bool
        Passed to the model loader when measuring.

    Returns
    -------
    str
    """
    from ..hardware import ENV_PRECISION

    forced = os.environ.get(ENV_PRECISION, "").strip().lower()
    if precision == "int8" or (precision == "auto" and forced == "int8"):
        raise ValueError("precision='int8' is inference-only; fine-tune with 'auto', "
                         "'fp32', 'bf16' or 'fp16' (GPU)")
    return auto_precision.resolve_precision(precision, device, info, purpose="train",
                                            trust_remote_code=trust_remote_code)


class _BertFineTuner(EncoderEstimatorMixin, BaseEstimator):
    """What :class:`BertClassifier` and :class:`BertRegressor` share."""

    _parameter_constraints: dict = {
        "model": [str, os.PathLike],
        "pooling": [StrOptions(set(FINETUNE_POOLINGS))],
        "epochs": [positive_int()],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [positive_int()],
        "max_batch_tokens": [positive_int(), None],
        "warmup": [Interval(Real, 0, 1, closed="both")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_length": [Interval(Integral, 2, None, closed="left"), None],
        "freeze_layers": [non_negative_int()],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [positive_int()],
        "max_steps": [positive_int(), None],
        "random_state": ["random_state"],
        "device": [str],
        "precision": [StrOptions({"auto", "fp32", "bf16", "fp16"})],
        "revision": [str, None],
        "show_progress": [StrOptions({"auto"}), "boolean"],
        "on_bad_input": [StrOptions(set(BAD_INPUT_POLICIES))],
        "trust_remote_code": ["boolean"],
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
        random_state: Any = None,
        device: str = "auto",
        precision: str = "auto",
        revision: str | None = None,
        show_progress: str | bool = "auto",
        on_bad_input: str = "raise",
        trust_remote_code: bool = False,
    ) -> None:
        self.model = model
        self.pooling = pooling
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.max_length = max_length
        self.freeze_layers = freeze_layers
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.max_steps = max_steps
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.revision = revision
        self.show_progress = show_progress
        self.on_bad_input = on_bad_input
        self.trust_remote_code = trust_remote_code

    # ------------------------------------------------------------------ sklearn plumbing
    def _add_to_pickle(self, state: dict) -> None:
        if "_rt_model" in state:  # the trained weights, as safetensors bytes
            state["_saved_weights"] = self._serialize()

    def _concrete_precision(self, device: str, info: models.ModelInfo) -> str:
        return training_precision(self.precision, device, info,
                                  trust_remote_code=self.trust_remote_code)

    # -------------------------------------------------------------- subclass interface
    def _prepare_targets(self, y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Set target attributes; return training targets and per-row weights."""
        raise NotImplementedError

    def _loss(self, outputs, targets):
        """Per-row loss (a tensor of shape (batch,))."""
        raise NotImplementedError

    def _val_score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        raise NotImplementedError

    def _stratify(self, targets: np.ndarray) -> np.ndarray | None:
        return None

    # --------------------------------------------------------------------------- fit
    def _fit(self, X: Any, y: Any, sample_weight: Any = None):
        # a fit is atomic: if it fails or is interrupted (Ctrl-C), the estimator is left
        # exactly as it was before the call -- fitted with the previous fit, or unfitted
        # -- never with new classes_ and an old head
        before = dict(self.__dict__)
        try:
            return self._fit_state(X, y, sample_weight)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit_state(self, X: Any, y: Any, sample_weight: Any = None):
        import torch

        t_start = time.perf_counter()
        texts, index = to_texts(X, self.on_bad_input)
        n = len(texts)
        if n == 0:
            raise ValueError(f"{type(self).__name__}.fit needs at least one text, got 0")
        if isinstance(y, Iterator):
            y = list(y)  # a generator of labels is read once, here
        targets, weights = self._prepare_targets(y, n)
        if sample_weight is not None:
            if isinstance(sample_weight, Iterator):
                sample_weight = list(sample_weight)
            sw = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
            if len(sw) != n:
                raise ValueError(f"sample_weight has {len(sw)} values for {n} texts")
            bad = np.flatnonzero(~np.isfinite(sw) | (sw < 0))
            if len(bad):
                raise ValueError(f"sample_weight of row {int(bad[0])} is {sw[bad[0]]!r}; "
                                 "weights must be finite and non-negative")
            if not sw.any():
                raise ValueError("sample_weight is 0 for every text: there is nothing to "
                                 "train on (scikit-learn refuses this too)")
            weights = weights * sw
        setup = self._resolve_encoder()
        info, device, precision = setup.info, setup.device, setup.precision
        if self.freeze_layers > info.n_layers:
            raise ValueError(
                f"freeze_layers={self.freeze_layers} exceeds the {info.n_layers} layers of "
                f"model {info.spec!r}; freeze_layers={info.n_layers} trains the head only")
        if self.max_length is not None and self.max_length > info.max_length:
            raise ValueError(
                f"max_length={self.max_length} exceeds the limit of model {info.spec!r} "
                f"({info.max_length} tokens)")
        self.max_length_ = int(self.max_length or info.max_length)
        self.device_, self.precision_ = device, precision
        self.n_layers_, self.hidden_size_ = info.n_layers, info.hidden_size
        columns = getattr(X, "columns", None)
        if columns is not None and len(columns) == 1:
            self.feature_names_in_ = np.asarray([str(columns[0])], dtype=object)
            self.n_features_in_ = 1

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        # the base model's fingerprint: the weights this fit starts from are the ones
        # hashed (a change of the files between the two raises ModelChangedError)
        self._take_fingerprint(info, None, {"max_length": self.max_length_,
                                            "precision": precision, "long_text": "finetune"})
        tokenizer, model = models.load_trainable(info, device=device,
                                                 trust_remote_code=self.trust_remote_code)
        self._check_model_files(None)
        ids = self._tokenize(tokenizer, texts)
        self._rt_files = {p.name: p.read_bytes() for p in models.tokenizer_files(info)}
        self._rt_tokenizer = tokenizer
        self._rt_model = model
        devices = [] if device == "cpu" else [torch.device(device).index or 0]
        with torch.random.fork_rng(devices=devices, enabled=True):
            torch.manual_seed(seed)
            self._rt_head = training.build_head(info.hidden_size, self._n_outputs,
                                                self.pooling).to(device)
            self._train(ids, targets, weights, seed)
        self.fit_time_ = time.perf_counter() - t_start
        return self

    def _tokenize(self, tokenizer, texts: list[str]) -> list[list[int]]:
        tok = encoder.tokenize(tokenizer, texts, self.max_length_)
        n_cut = int(tok.truncated.sum())
        if n_cut:
            warnings.warn(
                f"{type(self).__name__}: {n_cut} of {len(texts)} texts are longer than "
                f"max_length={self.max_length_} tokens and were truncated to their first "
                f"{self.max_length_} tokens.", UserWarning, stacklevel=4)
        return tok.input_ids

    def _split_validation(self, n: int, targets: np.ndarray, seed: int):
        rows = np.arange(n)
        if not self.early_stopping:
            return rows, rows[:0]
        stratify = self._stratify(targets)
        try:
            train, val = train_test_split(rows, test_size=self.validation_fraction,
                                          random_state=seed, stratify=stratify)
        except ValueError:  # a class too small to stratify, or too few rows
            if n < 2:
                raise ValueError("early_stopping=True needs at least 2 training texts") from None
            train, val = train_test_split(rows, test_size=self.validation_fraction,
                                          random_state=seed)
        return np.sort(train), np.sort(val)

    def _train(self, ids: list[list[int]], targets: np.ndarray, weights: np.ndarray,
               seed: int) -> None:
        """Run :class:`bertfeat.engine.training.Trainer`; set the fitted attributes."""
        train_rows, val_rows = self._split_validation(len(ids), targets, seed)
        if len(train_rows) == 0:
            raise ValueError("validation_fraction leaves no texts to train on")
        recipe = training.Recipe(
            epochs=int(self.epochs), learning_rate=float(self.learning_rate),
            batch_size=int(self.batch_size), warmup=float(self.warmup),
            weight_decay=float(self.weight_decay), max_steps=self.max_steps,
            n_iter_no_change=int(self.n_iter_no_change),
            freeze_layers=int(self.freeze_layers), device=self.device_,
            precision=self.precision_, token_budget=self._token_budget())
        trainer = training.Trainer(
            self._rt_model, self._rt_head, recipe,
            pad_id=self._rt_tokenizer.pad_token_id or 0, loss=self._loss,
            score=self._val_score, owner=type(self).__name__, n_outputs=self._n_outputs)
        self.loss_curve_, self.validation_scores_ = [], []
        self.n_steps_, self.n_train_tokens_ = 0, 0
        history = trainer.fit(ids, targets, weights, train_rows, val_rows, seed,
                              show=self._show_progress(len(train_rows)))
        self.loss_curve_, self.validation_scores_ = history.loss_curve, history.validation_scores
        self.n_steps_, self.n_train_tokens_ = history.n_steps, history.n_train_tokens
        self.n_epochs_, self.best_epoch_ = history.n_epochs, history.best_epoch
        self.best_validation_score_ = history.best_validation_score

    # ---------------------------------------------------------------------- inference
    def _runtime(self):
        """The fitted encoder and head (rebuilt from the pickled bytes on first use)."""
        if "_rt_model" not in self.__dict__:
            check_is_fitted(self, "n_steps_")
            saved = self.__dict__.get("_saved_weights")
            if saved is None:
                raise ValueError(f"this {type(self).__name__} holds no weights; fit it again")
            self._restore(saved)
        return self._rt_tokenizer, self._rt_model, self._rt_head

    def _outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_steps_")
        texts, _ = to_texts(X, self.on_bad_input)
        tokenizer, model, head = self._runtime()
        return training.predict_outputs(
            model, head, self._tokenize(tokenizer, texts), n_outputs=self._n_outputs,
            pad_id=tokenizer.pad_token_id or 0, device=self.device_,
            precision=self.precision_, token_budget=self._token_budget(),
            owner=type(self).__name__)

    # -------------------------------------------------------------------- persistence
    def _serialize(self) -> dict:
        """Weights as safetensors bytes, config and tokenizer files as bytes."""
        return checkpoint.serialize(self._rt_model, self._rt_head, self._rt_files)

    def _restore(self, saved: dict) -> None:
        device = models.resolve_device(self.device)
        tokenizer, model, head = checkpoint.restore(
            saved, device=device, hidden=self.hidden_size_, n_outputs=self._n_outputs,
            pooling=self.pooling, trust_remote_code=self.trust_remote_code)
        self.device_ = device
        self.precision_ = self._restored_precision(device)
        self._rt_files = dict(saved["files"])
        self._rt_tokenizer, self._rt_model, self._rt_head = tokenizer, model, head
        self.__dict__.pop("_saved_weights", None)

    def _restored_precision(self, device: str) -> str:
        """The precision of an unpickled estimator on ``device``.

        An explicit precision or ``BERTFEAT_PRECISION`` resolve as in :meth:`fit`. For
        ``"auto"`` the fitted decision is kept where this device can run it (the
        fine-tuned weights live in a temporary folder here, with no stable identity to
        remember a new measurement by); fp32 otherwise.
        """
        from ..hardware import ENV_PRECISION, machine

        if self.precision != "auto" or os.environ.get(ENV_PRECISION, "").strip():
            return training_precision(self.precision, device)
        fitted = getattr(self, "precision_", "fp32")
        return fitted if fitted in machine.candidates(device) else "fp32"

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the fine-tuned encoder as a normal model directory.

        The directory holds ``config.json``, ``model.safetensors`` and the tokenizer files
        of the base model: ``BertFeaturizer(model=directory)`` (or transformers'
        ``AutoModel``) loads it, and its weights give it a fingerprint of its own, so the
        fine-tuned layers become features for other heads. The task head is not part of
        the encoder and is not written.

        Parameters
        ----------
        directory : str or path
            Created if missing. Model files of an earlier save in it (tokenizer files,
            weights, config, sentence-transformers settings) that this save does not write
            are removed; other files are kept. Each file is written in full beside the
            folder and renamed into it.

        Returns
        -------
        Path
            The directory.
        """
        _, model, _ = self._runtime()
        return checkpoint.save_encoder(model, self._rt_files, directory)
