"""Fine-tuning on the torch side: the head, the training loop, inference and persistence.

The classic BERT recipe: AdamW (no weight decay on biases and LayerNorm weights), a linear
warm-up then linear decay of the learning rate, gradient clipping at norm 1, dropout
before a linear head on a pooled last layer. Each epoch shuffles the texts, groups similar
lengths into batches and splits a batch into micro-batches under a token budget (the
gradients are accumulated, so the budget changes memory, not the result); forward and
backward passes run under the autocast of the training precision while the master weights
stay float32. Non-finite losses or outputs are refused, naming the rows.

The weights of a fitted estimator as bytes and as a model directory are
:mod:`.checkpoint`'s. No scikit-learn here: :mod:`bertfeat.estimators.finetune` validates
the parameters and the targets, splits off the validation rows and sets the fitted
attributes from a :class:`History`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import models
from ..pooling import pool_stats
from . import encoder
from .progress import Progress

__all__ = ["History", "Recipe", "Trainer", "autocast", "build_head", "non_finite_error",
           "predict_outputs"]

#: dropout on the pooled vector before the head (BERT's classifier dropout)
_HEAD_DROPOUT = 0.1
#: most texts per forward pass when predicting
PREDICT_BATCH = 128


def build_head(hidden: int, n_outputs: int, pooling: str):
    """The task head: dropout and one linear layer on a pooling of the last layer.

    Parameters
    ----------
    hidden : int
        Width of the encoder's hidden states.
    n_outputs : int
        Classes (logits) or regression targets.
    pooling : {"cls", "mean", "max", "mean_max"}
        Statistic of the last layer's real tokens the head sits on.

    Returns
    -------
    torch.nn.Module
        Called as ``head(hidden_state, attention_mask)``.
    """
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


def autocast(device: str, precision: str):
    """Autocast context for a concrete precision (fp32: none).

    Parameters
    ----------
    device : str
        Concrete device.
    precision : {"fp32", "bf16", "fp16"}
        Concrete training precision.

    Returns
    -------
    context manager
    """
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def non_finite_error(owner: str, rows: np.ndarray, what: str,
                     precision: str) -> encoder.NonFiniteError:
    """The error for a NaN or infinite loss or output, naming the batch's first row.

    Parameters
    ----------
    owner : str
        The estimator's class name.
    rows : ndarray
        Rows of the batch.
    what : str
        ``"a training loss"`` or ``"an output"``.
    precision : str
        The autocast precision in effect.

    Returns
    -------
    NonFiniteError
    """
    return encoder.NonFiniteError(
        f"{owner}: {what} is NaN or infinite for a batch of "
        f"{len(rows)} texts, first row {int(np.min(rows))} (autocast {precision}). "
        "The weights are probably damaged (NaN or inf in the checkpoint), or the "
        "precision overflows: try precision='fp32' or a smaller learning_rate.")


@dataclass(frozen=True)
class Recipe:
    """The settings of one training run (validated by the estimator).

    Attributes
    ----------
    epochs, learning_rate, batch_size, warmup, weight_decay, max_steps, n_iter_no_change, \
freeze_layers
        As the estimator's parameters of the same names.
    device, precision : str
        Concrete device and autocast precision.
    token_budget : int
        Most padded tokens per forward pass.
    """

    epochs: int
    learning_rate: float
    batch_size: int
    warmup: float
    weight_decay: float
    max_steps: int | None
    n_iter_no_change: int
    freeze_layers: int
    device: str
    precision: str
    token_budget: int


@dataclass
class History:
    """What a training run did: the estimator's fitted attributes of the same names.

    Attributes
    ----------
    loss_curve, validation_scores : list of float
    n_steps, n_train_tokens, n_epochs, best_epoch : int
    best_validation_score : float or None
    """

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    n_steps: int = 0
    n_train_tokens: int = 0
    n_epochs: int = 0
    best_epoch: int = 0
    best_validation_score: float | None = None


class Trainer:
    """Trains an encoder and its head in place.

    Parameters
    ----------
    model, head : torch.nn.Module
        The encoder (float32, from :func:`bertfeat.models.load_trainable`) and the head.
    recipe : Recipe
    pad_id : int
        The tokenizer's padding id.
    loss : callable
        ``loss(outputs, targets)``: the per-row loss, a tensor of shape (batch,).
    score : callable
        ``score(outputs, targets)``: a validation score (higher is better) from numpy
        outputs and targets.
    owner : str
        The estimator's class name, for errors.
    n_outputs : int
        Width of the head's output.
    """

    def __init__(self, model, head, recipe: Recipe, *, pad_id: int,
                 loss: Callable[[Any, Any], Any], score: Callable[[np.ndarray, np.ndarray], float],
                 owner: str, n_outputs: int) -> None:
        self.model, self.head, self.recipe = model, head, recipe
        self.pad_id, self.loss, self.score = pad_id, loss, score
        self.owner, self.n_outputs = owner, n_outputs

    def trainable(self) -> list[tuple[str, Any]]:
        """Freeze the embeddings and the bottom ``freeze_layers`` layers; return the rest.

        Returns
        -------
        list of (str, torch.nn.Parameter)
            Named parameters that train, the encoder's then the head's.
        """
        model = self.model
        if self.recipe.freeze_layers:
            layers = models.transformer_layers(model)
            model.requires_grad_(False)
            for layer in layers[self.recipe.freeze_layers:]:
                layer.requires_grad_(True)
            for name, module in model.named_children():  # e.g. the pooler above the layers
                if "embed" not in name and "encoder" not in name and "transformer" not in name:
                    module.requires_grad_(True)
        params = [(f"encoder.{k}", p) for k, p in model.named_parameters() if p.requires_grad]
        params += [(f"head.{k}", p) for k, p in self.head.named_parameters()]
        return params

    def batches(self, rows: np.ndarray, lengths: np.ndarray, rng) -> list[np.ndarray]:
        """One epoch of batches: shuffled, length-bucketed, in random order.

        Parameters
        ----------
        rows : ndarray
            The training rows.
        lengths : ndarray
            Token count of every row.
        rng : numpy.random.Generator

        Returns
        -------
        list of ndarray
        """
        order = rng.permutation(rows)
        size = int(self.recipe.batch_size)
        pool = size * 50  # sort by length inside pools of 50 batches: little padding
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + size] for i in range(0, len(chunk), size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def fit(self, ids: list[list[int]], targets: np.ndarray, weights: np.ndarray,
            train_rows: np.ndarray, val_rows: np.ndarray, seed: int,
            show: bool | str = False) -> History:
        """Train on ``train_rows``; with ``val_rows``, stop early and keep the best epoch.

        Parameters
        ----------
        ids : list of list of int
            Token ids of every text.
        targets : ndarray
            Training targets, one row per text.
        weights : ndarray
            Weight of each text in the loss.
        train_rows, val_rows : ndarray
            Rows to train on and to validate on (empty: no early stopping).
        seed : int
            Seeds the shuffling.
        show : bool or "auto"
            Progress over the steps (:class:`bertfeat.engine.progress.Progress`).

        Returns
        -------
        History
        """
        import torch

        recipe = self.recipe
        rng = np.random.default_rng(seed)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        named = self.trainable()
        no_decay = [p for k, p in named if p.ndim < 2]  # biases and LayerNorm weights
        decay = [p for k, p in named if p.ndim >= 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": float(recipe.weight_decay)},
             {"params": no_decay, "weight_decay": 0.0}], lr=float(recipe.learning_rate))
        per_epoch = -(-len(train_rows) // int(recipe.batch_size))
        total = per_epoch * int(recipe.epochs)
        if recipe.max_steps is not None:
            total = min(total, int(recipe.max_steps))
        warm = int(round(float(recipe.warmup) * total))

        def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
            if step < warm:
                return (step + 1) / (warm + 1)
            return max(0.0, (total - step) / max(1, total - warm))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        scaler = torch.amp.GradScaler("cuda") if recipe.precision == "fp16" else None
        pad = encoder.batch_padder(ids, self.pad_id)
        y_all = torch.as_tensor(targets)
        w_all = torch.as_tensor(weights, dtype=torch.float32)
        params = [p for _, p in named]

        progress = Progress(total, "bertfeat fine-tune", "step", enabled=bool(show),
                            mode="bar" if show is True else "auto")
        history = History()
        best_score, best_state, stale = -np.inf, None, 0
        epoch = 0
        for epoch in range(1, int(recipe.epochs) + 1):
            self.model.train()
            self.head.train()
            losses = []
            try:
                for batch in self.batches(train_rows, lengths, rng):
                    loss = self.step(batch, lengths, pad, y_all, w_all, optimizer, scaler,
                                     params)
                    scheduler.step()
                    losses.append(loss)
                    history.n_steps += 1
                    history.n_train_tokens += int(lengths[batch].sum())
                    progress.update(1, f"epoch {epoch}/{recipe.epochs}, loss {loss:.4g}")
                    if history.n_steps >= total:
                        break
            except BaseException:
                progress.close()
                raise
            history.loss_curve.append(float(np.mean(losses)))
            if len(val_rows):
                outputs = self.predict([ids[i] for i in val_rows])
                score = self.score(outputs, targets[val_rows])
                history.validation_scores.append(score)
                if score > best_score:
                    best_score, history.best_epoch, stale = score, epoch, 0
                    best_state = self._state_copy()
                else:
                    stale += 1
                if stale >= recipe.n_iter_no_change:
                    break
            if history.n_steps >= total:
                break
        progress.close()
        history.n_epochs = epoch
        if best_state is not None:  # early stopping: keep the best epoch's weights
            self.model.load_state_dict(best_state["encoder"])
            self.head.load_state_dict(best_state["head"])
        if len(val_rows):
            history.best_validation_score = float(best_score)
        else:
            history.best_epoch = epoch
        self.model.eval()
        self.head.eval()
        self.model.requires_grad_(False)
        return history

    def step(self, batch, lengths, pad, y_all, w_all, optimizer, scaler, params) -> float:
        """One optimizer step on a batch, split into micro-batches under the token budget.

        Parameters
        ----------
        batch : ndarray
            Rows of the batch.
        lengths : ndarray
            Token count of every row.
        pad : callable
            ``pad(rows)``: padded ids and attention mask (:func:`.encoder.batch_padder`).
        y_all, w_all : torch.Tensor
            Targets and loss weights of every row.
        optimizer : torch.optim.Optimizer
        scaler : torch.amp.GradScaler or None
            Loss scaling (fp16 only).
        params : list of torch.nn.Parameter
            What the gradient is clipped over.

        Returns
        -------
        float
            The batch's weighted mean loss.
        """
        import torch

        device, precision = self.recipe.device, self.recipe.precision
        total_weight = float(w_all[batch].sum())
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for part in encoder.make_batches(lengths[batch], len(batch), self.recipe.token_budget):
            rows = batch[np.sort(part)]
            input_ids, mask = pad(rows)
            input_ids = torch.from_numpy(input_ids).to(device)
            mask = torch.from_numpy(mask).to(device)
            with autocast(device, precision):
                hidden = self.model(input_ids=input_ids, attention_mask=mask,
                                    return_dict=True).last_hidden_state
                outputs = self.head(hidden, mask).float()
            per_row = self.loss(outputs, y_all[rows].to(device))
            if not bool(torch.isfinite(per_row.detach()).all()):
                raise non_finite_error(self.owner, rows, "a training loss", precision)
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

    def predict(self, ids: list[list[int]]) -> np.ndarray:
        """Head outputs for tokenised texts (see :func:`predict_outputs`).

        Parameters
        ----------
        ids : list of list of int

        Returns
        -------
        ndarray of shape (n, n_outputs)
        """
        return predict_outputs(self.model, self.head, ids, n_outputs=self.n_outputs,
                               pad_id=self.pad_id, device=self.recipe.device,
                               precision=self.recipe.precision,
                               token_budget=self.recipe.token_budget, owner=self.owner)

    def _state_copy(self) -> dict:
        return {
            "encoder": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "head": {k: v.detach().clone() for k, v in self.head.state_dict().items()},
        }


def predict_outputs(model, head, ids: list[list[int]], *, n_outputs: int, pad_id: int,
                    device: str, precision: str, token_budget: int,
                    owner: str) -> np.ndarray:
    """Head outputs (float32) for tokenised texts, in evaluation mode.

    Parameters
    ----------
    model, head : torch.nn.Module
        The encoder and the head; a model in training mode is put back in it afterwards.
    ids : list of list of int
        Token ids of each text.
    n_outputs : int
        Width of the head's output.
    pad_id : int
        The tokenizer's padding id.
    device, precision : str
        Concrete device and autocast precision.
    token_budget : int
        Most padded tokens per forward pass.
    owner : str
        The estimator's class name, for errors.

    Returns
    -------
    ndarray of shape (n, n_outputs)

    Raises
    ------
    NonFiniteError
        When an output is NaN or infinite.
    """
    import torch

    was_training = model.training
    model.eval()
    head.eval()
    out = np.zeros((len(ids), n_outputs), dtype=np.float32)
    if not ids:
        return out
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    pad = encoder.batch_padder(ids, pad_id)
    try:
        with torch.inference_mode(), autocast(device, precision):
            for rows in encoder.make_batches(lengths, PREDICT_BATCH, token_budget):
                input_ids, mask = pad(rows)
                input_ids = torch.from_numpy(input_ids).to(device)
                mask = torch.from_numpy(mask).to(device)
                hidden = model(input_ids=input_ids, attention_mask=mask,
                               return_dict=True).last_hidden_state
                out[rows] = head(hidden, mask).float().cpu().numpy()
                if not np.isfinite(out[rows]).all():
                    raise non_finite_error(owner, rows, "an output", precision)
    finally:
        if was_training:
            model.train()
            head.train()
    return out
