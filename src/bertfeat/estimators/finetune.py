"""Fine-tuning estimators: ``BertClassifier`` and ``BertRegressor``.

The other half of knowledge transfer, in the same scikit-learn vocabulary as
:class:`~bertfeat.BertFeaturizer`: the encoder itself is trained on the task, with a
linear head on a pooled last layer (the classic BERT recipe: AdamW, a small learning
rate, a few epochs, linear warm-up and decay).

* Models resolve, load and run exactly as for the featurizer (:mod:`bertfeat.models`:
  model spec, ``revision``, the offline default model, the ``trust_remote_code`` policy,
  device and precision rules); texts are validated by :mod:`bertfeat.inputs` and
  tokenised and batched by :mod:`bertfeat.encoder`; pooling is
  :func:`bertfeat.pooling.pool_stats`.
* Training keeps float32 master weights; ``precision="auto"`` runs forward and backward
  passes under the autocast precision measured fastest and faithful for training on this
  machine (:func:`training_precision`; bf16 or, on GPUs, fp16 with loss scaling).
* A fitted estimator pickles its weights as safetensors bytes (never a pickled tensor),
  together with the tokenizer files, so ``joblib.load`` rebuilds it anywhere without the
  base model. :meth:`save_pretrained` writes a normal model directory that
  ``BertFeaturizer(model=directory)`` loads, with its own fingerprint.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .. import models
from ..engine import encoder
from ..engine.progress import Progress
from ..io.inputs import BAD_INPUT_POLICIES, _is_missing, to_texts
from ..pooling import pool_stats
from .base import EncoderEstimatorMixin
from .params import non_negative_int, positive_int

__all__ = ["BertClassifier", "BertRegressor"]

#: poolings a fine-tuned head can sit on (statistics of the last layer)
FINETUNE_POOLINGS = ("cls", "mean", "max", "mean_max")
#: dropout on the pooled vector before the head (BERT's classifier dropout)
_HEAD_DROPOUT = 0.1
#: most texts per forward pass when predicting
_PREDICT_BATCH = 128
#: file names of the head's and the encoder's weights in a pickled estimator
_ENCODER_FILE = "model.safetensors"


class _Head:
    """Factory of the head module (a class so that torch is imported lazily)."""

    @staticmethod
    def build(hidden: int, n_outputs: int, pooling: str):
        import torch

        width = 2 * hidden if pooling == "mean_max" else hidden

        class Head(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.dropout = torch.nn.Dropout(_HEAD_DROPOUT)
                self.linear = torch.nn.Linear(width, n_outputs)

            def forward(self, hidden_state, mask):
                stats = pool_stats(hidden_state, mask)  # (batch, 3, dim): cls, mean, max
                if pooling == "mean_max":
                    pooled = torch.cat((stats[:, 1], stats[:, 2]), dim=1)
                else:
                    pooled = stats[:, ("cls", "mean", "max").index(pooling)]
                return self.linear(self.dropout(pooled))

        return Head()


def training_precision(precision: str, device: str, info: models.ModelInfo | None = None,
                       *, trust_remote_code: bool = False) -> str:
    """The autocast precision of fine-tuning for ``precision`` on ``device``.

    ``"auto"`` is decided by measurement like the featurizer's
    (:func:`bertfeat.models.resolve_precision`), but with its own calibration
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
    return models.resolve_precision(precision, device, info, purpose="train",
                                    trust_remote_code=trust_remote_code)


def _autocast(device: str, precision: str):
    """Autocast context for a concrete precision (fp32: none)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


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
            self._rt_head = _Head.build(info.hidden_size, self._n_outputs, self.pooling).to(
                device)
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

    def _batches(self, rows: np.ndarray, lengths: np.ndarray, rng) -> list[np.ndarray]:
        """One epoch of batches: shuffled, length-bucketed, in random order."""
        order = rng.permutation(rows)
        size = int(self.batch_size)
        pool = size * 50  # sort by length inside pools of 50 batches: little padding
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + size] for i in range(0, len(chunk), size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def _trainable(self):
        """Freeze the embeddings and the bottom ``freeze_layers`` layers; return the rest."""
        model = self._rt_model
        if self.freeze_layers:
            layers = models.transformer_layers(model)
            model.requires_grad_(False)
            for layer in layers[self.freeze_layers:]:
                layer.requires_grad_(True)
            for name, module in model.named_children():  # e.g. the pooler above the layers
                if "embed" not in name and "encoder" not in name and "transformer" not in name:
                    module.requires_grad_(True)
        params = [(f"encoder.{k}", p) for k, p in model.named_parameters() if p.requires_grad]
        params += [(f"head.{k}", p) for k, p in self._rt_head.named_parameters()]
        return params

    def _train(self, ids: list[list[int]], targets: np.ndarray, weights: np.ndarray,
               seed: int) -> None:
        import torch

        rng = np.random.default_rng(seed)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        train_rows, val_rows = self._split_validation(len(ids), targets, seed)
        if len(train_rows) == 0:
            raise ValueError("validation_fraction leaves no texts to train on")
        named = self._trainable()
        no_decay = [p for k, p in named if p.ndim < 2]  # biases and LayerNorm weights
        decay = [p for k, p in named if p.ndim >= 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": float(self.weight_decay)},
             {"params": no_decay, "weight_decay": 0.0}], lr=float(self.learning_rate))
        per_epoch = -(-len(train_rows) // int(self.batch_size))
        total = per_epoch * int(self.epochs)
        if self.max_steps is not None:
            total = min(total, int(self.max_steps))
        warm = int(round(float(self.warmup) * total))

        def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
            if step < warm:
                return (step + 1) / (warm + 1)
            return max(0.0, (total - step) / max(1, total - warm))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        scaler = torch.amp.GradScaler("cuda") if self.precision_ == "fp16" else None
        pad_id = self._rt_tokenizer.pad_token_id or 0
        pad = encoder.batch_padder(ids, pad_id)
        y_all = torch.as_tensor(targets)
        w_all = torch.as_tensor(weights, dtype=torch.float32)
        budget = self._token_budget()
        params = [p for _, p in named]

        show = self._show_progress(len(train_rows))
        progress = Progress(total, "bertfeat fine-tune", "step", enabled=bool(show),
                            mode="bar" if show is True else "auto")
        self.loss_curve_, self.validation_scores_ = [], []
        self.n_steps_, self.n_train_tokens_ = 0, 0
        best_score, best_state, best_epoch, stale = -np.inf, None, 0, 0
        epoch = 0
        for epoch in range(1, int(self.epochs) + 1):
            self._rt_model.train()
            self._rt_head.train()
            losses = []
            try:
                for batch in self._batches(train_rows, lengths, rng):
                    loss = self._step(batch, lengths, pad, y_all, w_all, budget, optimizer,
                                      scaler, params)
                    scheduler.step()
                    losses.append(loss)
                    self.n_steps_ += 1
                    self.n_train_tokens_ += int(lengths[batch].sum())
                    progress.update(1, f"epoch {epoch}/{self.epochs}, loss {loss:.4g}")
                    if self.n_steps_ >= total:
                        break
            except BaseException:
                progress.close()
                raise
            self.loss_curve_.append(float(np.mean(losses)))
            if len(val_rows):
                outputs = self._outputs_of_ids([ids[i] for i in val_rows])
                score = self._val_score(outputs, targets[val_rows])
                self.validation_scores_.append(score)
                if score > best_score:
                    best_score, best_epoch, stale = score, epoch, 0
                    best_state = self._state_copy()
                else:
                    stale += 1
                if stale >= self.n_iter_no_change:
                    break
            if self.n_steps_ >= total:
                break
        progress.close()
        self.n_epochs_ = epoch
        if best_state is not None:  # early stopping: keep the best epoch's weights
            self._rt_model.load_state_dict(best_state["encoder"])
            self._rt_head.load_state_dict(best_state["head"])
        self.best_epoch_ = best_epoch if len(val_rows) else epoch
        self.best_validation_score_ = float(best_score) if len(val_rows) else None
        self._rt_model.eval()
        self._rt_head.eval()
        self._rt_model.requires_grad_(False)

    def _step(self, batch, lengths, pad, y_all, w_all, budget, optimizer, scaler,
              params) -> float:
        """One optimizer step on a batch, split into micro-batches under the token budget."""
        import torch

        device = self.device_
        total_weight = float(w_all[batch].sum())
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for part in encoder.make_batches(lengths[batch], len(batch), budget):
            rows = batch[np.sort(part)]
            input_ids, mask = pad(rows)
            input_ids = torch.from_numpy(input_ids).to(device)
            mask = torch.from_numpy(mask).to(device)
            with _autocast(device, self.precision_):
                hidden = self._rt_model(input_ids=input_ids, attention_mask=mask,
                                        return_dict=True).last_hidden_state
                outputs = self._rt_head(hidden, mask).float()
            per_row = self._loss(outputs, y_all[rows].to(device))
            if not bool(torch.isfinite(per_row.detach()).all()):
                raise self._non_finite(rows, "a training loss")
            loss = (per_row * w_all[rows].to(device)).sum() / max(total_weight, 1e-12)
            if scaler is not None:
                scaler.scale(loss).backward()
            else:
                loss.backward()
            loss_sum += float(loss.detach())
        if scaler is not None:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return loss_sum

    def _non_finite(self, rows: np.ndarray, what: str) -> encoder.NonFiniteError:
        return encoder.NonFiniteError(
            f"{type(self).__name__}: {what} is NaN or infinite for a batch of "
            f"{len(rows)} texts, first row {int(np.min(rows))} (autocast {self.precision_}). "
            "The weights are probably damaged (NaN or inf in the checkpoint), or the "
            "precision overflows: try precision='fp32' or a smaller learning_rate.")

    def _state_copy(self) -> dict:
        return {
            "encoder": {k: v.detach().clone() for k, v in self._rt_model.state_dict().items()},
            "head": {k: v.detach().clone() for k, v in self._rt_head.state_dict().items()},
        }

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

    def _outputs_of_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Head outputs (float32, shape (n, n_outputs)) for tokenised texts."""
        import torch

        tokenizer, model, head = self._runtime()
        was_training = model.training
        model.eval()
        head.eval()
        out = np.zeros((len(ids), self._n_outputs), dtype=np.float32)
        if not ids:
            return out
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        pad = encoder.batch_padder(ids, tokenizer.pad_token_id or 0)
        try:
            with torch.inference_mode(), _autocast(self.device_, self.precision_):
                for rows in encoder.make_batches(lengths, _PREDICT_BATCH, self._token_budget()):
                    input_ids, mask = pad(rows)
                    input_ids = torch.from_numpy(input_ids).to(self.device_)
                    mask = torch.from_numpy(mask).to(self.device_)
                    hidden = model(input_ids=input_ids, attention_mask=mask,
                                   return_dict=True).last_hidden_state
                    out[rows] = head(hidden, mask).float().cpu().numpy()
                    if not np.isfinite(out[rows]).all():
                        raise self._non_finite(rows, "an output")
        finally:
            if was_training:
                model.train()
                head.train()
        return out

    def _outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_steps_")
        texts, _ = to_texts(X, self.on_bad_input)
        tokenizer, _, _ = self._runtime()
        return self._outputs_of_ids(self._tokenize(tokenizer, texts))

    # -------------------------------------------------------------------- persistence
    def _serialize(self) -> dict:
        """Weights as safetensors bytes, config and tokenizer files as bytes."""
        from safetensors.torch import save

        def tensors(module) -> bytes:
            return save({k: v.detach().cpu().contiguous().clone()
                         for k, v in module.state_dict().items()})

        return {"files": dict(self._rt_files),
                "config": self._rt_model.config.to_json_string().encode(),
                "encoder": tensors(self._rt_model), "head": tensors(self._rt_head)}

    def _restore(self, saved: dict) -> None:
        from safetensors.torch import load

        device = models.resolve_device(self.device)
        with tempfile.TemporaryDirectory(prefix="bertfeat-finetuned-") as tmp:
            folder = Path(tmp)
            for name, data in saved["files"].items():
                (folder / name).write_bytes(data)
            (folder / "config.json").write_bytes(saved["config"])
            (folder / _ENCODER_FILE).write_bytes(saved["encoder"])
            info = models.resolve_model(str(folder))
            tokenizer, model = models.load_trainable(
                info, device=device, trust_remote_code=self.trust_remote_code)
        model.eval()
        model.requires_grad_(False)
        head = _Head.build(self.hidden_size_, self._n_outputs, self.pooling)
        head.load_state_dict(load(saved["head"]))
        self.device_ = device
        self.precision_ = self._restored_precision(device)
        self._rt_files = dict(saved["files"])
        self._rt_tokenizer, self._rt_model = tokenizer, model
        self._rt_head = head.to(device).eval()
        self.__dict__.pop("_saved_weights", None)

    def _restored_precision(self, device: str) -> str:
        """The precision of an unpickled estimator on ``device``.

        An explicit precision or ``BERTFEAT_PRECISION`` resolve as in :meth:`fit`. For
        ``"auto"`` the fitted decision is kept where this device can run it (the
        fine-tuned weights live in a temporary folder here, with no stable identity to
        remember a new measurement by); fp32 otherwise.
        """
        from .. import hardware

        if self.precision != "auto" or os.environ.get(hardware.ENV_PRECISION, "").strip():
            return training_precision(self.precision, device)
        fitted = getattr(self, "precision_", "fp32")
        return fitted if fitted in hardware.candidates(device) else "fp32"

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
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.save-", dir=folder.parent))
        try:
            with models.quiet_transformers():
                model.save_pretrained(str(staging), safe_serialization=True)
            for name, data in self._rt_files.items():
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
