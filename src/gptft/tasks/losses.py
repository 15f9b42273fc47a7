"""The fine-tuning objective: task loss + λ · LM loss (Radford et al. 2018, Section 3.2, L3 = L2 + λ·L1).

The LM loss is next-token cross-entropy on the task's own inputs, over real tokens only. The paper uses
λ = 0.5; its ablation (Table 5) shows the auxiliary loss helps large datasets and hurts small ones, so
λ = 0 is a legitimate choice, and then the LM head (the largest matrix product in the model) is never
computed. Both parts are returned so they can be logged.

A loss cell returns a tuple of scalars named by its `loss_names`; the first is the one minimised. The
training step logs each part under its name, and appends the arrays `extra_inputs(batch)` returns to
each batch: here the backbone's dropout masks, drawn on the host (see `GPT.draw_keep_masks`).
`LanguageModelLoss` is pre-training's objective (Section 3.1).
"""

import math
from typing import Callable

import mindspore as ms
from mindspore import nn, ops

from ..errors import ConfigError

_sparse_cross_entropy = ops.SparseSoftmaxCrossEntropyWithLogits()


def cross_entropy(logits, labels):
    """Mean cross-entropy of `(N, K)` logits against int32 class indices `(N,)`.

    The fused `SparseSoftmaxCrossEntropyWithLogits` kernel, far faster on CPU than `ops.cross_entropy`
    (docs/performance-cpu.md#operators).
    """
    return _sparse_cross_entropy(logits, labels.astype(ms.int32))


def mean_squared_error(scores, labels):
    """Mean squared error of `(N, 1)` or `(N,)` scores against float targets `(N,)`."""
    diff = scores.reshape(-1) - labels.astype(scores.dtype)
    return (diff * diff).mean()


LOSSES: dict[str, Callable] = {"cross_entropy": cross_entropy, "mse": mean_squared_error}


def masked_lm_loss(backbone, hidden, ids, lm_mask):
    """Mean next-token cross-entropy over real tokens.

    Args:
        backbone: the `GPT` whose tied head turns hidden states into logits.
        hidden: `(N, T, C)` final hidden states of `ids`.
        ids: int32 `(N, T)`.
        lm_mask: float32 `(N, T)`, 1.0 on real tokens; position t+1 is predicted from t when it is real.

    Shapes are static in a compiled graph, so padded positions cannot be dropped. Instead their hidden
    states are zeroed: their logits are then exactly 0, their cross-entropy exactly ln V, their gradient
    to every weight exactly 0. The fused kernel's mean is turned back into a sum, the padded rows' known
    ln V removed, and the rest divided by the number of real targets. All T positions are scored (the
    last has no target and is masked): shifting the small id and mask tensors instead of the hidden
    states avoids copying `(N, T-1, C)` forwards and backwards.
    """
    N, T, C = hidden.shape
    no_target = ops.zeros((N, 1), lm_mask.dtype)
    target_mask = ops.concat((lm_mask[:, 1:], no_target), axis=1)  # (N, T)
    targets = ops.concat((ids[:, 1:], ops.zeros((N, 1), ids.dtype)), axis=1)
    logits = backbone.lm_logits(hidden * target_mask.expand_dims(-1)).reshape(N * T, -1)
    mean = _sparse_cross_entropy(logits, targets.reshape(-1))
    rows = N * T
    real = target_mask.sum()
    log_vocab = math.log(backbone.config.vocab_size)
    return (mean * rows - (rows - real) * log_vocab) / ops.maximum(real, 1.0)


class TaskLoss(nn.Cell):
    """`(ids, positions, lm_mask, labels) -> (loss, task_loss, lm_loss)` for a `TaskModel`.

    Args:
        model: the `TaskModel` (backbone + head).
        task_loss: `loss(logits, labels) -> scalar`, e.g. `cross_entropy` or `mean_squared_error`.
        lm_coef: λ, the weight of the auxiliary LM loss; 0 skips the LM head entirely.
    """

    loss_names = ("loss", "task_loss", "lm_loss")

    def __init__(self, model, task_loss: Callable, lm_coef: float = 0.5):
        super().__init__()
        if not lm_coef >= 0:
            raise ConfigError(f"lm_coef (λ) must be >= 0, got {lm_coef}")
        self.model = model
        self.task_loss = task_loss
        self.lm_coef = float(lm_coef)

    def extra_inputs(self, batch, advance: bool = True) -> tuple:
        """The backbone's dropout masks for this batch `(ids, positions, lm_mask, labels)`."""
        B, S, T = batch[0].shape
        return self.model.backbone.draw_keep_masks(B * S, T, advance)

    def construct(self, ids, positions, lm_mask, labels, *keep):
        B, S, T = ids.shape
        hidden = self.model.hidden(ids, keep if keep else None)  # (B, S, T, C)
        task = self.task_loss(self.model.head(hidden, positions), labels)
        if self.lm_coef == 0.0:
            return task, task, ops.zeros((), task.dtype)
        lm = masked_lm_loss(self.model.backbone, hidden.reshape(B * S, T, -1), ids.reshape(B * S, T),
                            lm_mask.reshape(B * S, T))
        return task + self.lm_coef * lm, task, lm


class LanguageModelLoss(nn.Cell):
    """Next-token cross-entropy over whole blocks of text: `(ids (B, T)) -> (lm_loss,)` for a `GPT`."""

    loss_names = ("lm_loss",)

    def __init__(self, model):
        super().__init__()
        self.model = model

    def extra_inputs(self, batch, advance: bool = True) -> tuple:
        """The model's dropout masks for these blocks `(ids,)`, which it reads without their last token."""
        B, T = batch[0].shape
        return self.model.draw_keep_masks(B, T - 1, advance)

    def construct(self, ids, *keep):
        logits = self.model.lm_logits(self.model(ids[:, :-1], keep if keep else None))
        return (cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)),)
