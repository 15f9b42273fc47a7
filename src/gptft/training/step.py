"""The compiled training step: gradients, their all-reduce, accumulation, clipping and the AdamW update.

It knows nothing about GPT: it takes a loss cell and an `AdamW`. The loss cell returns a tuple of scalars
named by its `loss_names` attribute, the first being the one minimised; the step reports each of them and
the gradient norm. In GRAPH_MODE each call of a step cell runs one compiled graph, built once per input
shape (or once for all shapes, after `compile_for_any_length`).

With gradient accumulation over k micro-batches, the first k-1 call `accumulate_cell` (gradients added
into buffers) and the last calls the step itself (buffers plus its own gradients, divided by k, clipped,
applied, buffers cleared), so the update equals one step on the k micro-batches together; `train_on`
does that for one optimizer step's micro-batches.
"""

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ..model.layers import named_parameters
from .optim import AdamW


def any_shape(arrays) -> list[Tensor]:
    """Input placeholders with every dimension dynamic, matching `arrays` in rank and dtype.

    `cell.set_inputs(*any_shape(example))` makes GRAPH_MODE build one graph for inputs of any shape
    instead of one per shape (see `TrainConfig.dynamic_length` for the trade).
    """
    placeholders = []
    for a in arrays:
        a = np.asarray(a)
        placeholders.append(Tensor(shape=[None] * a.ndim, dtype=Tensor(np.zeros((), a.dtype)).dtype))
    return placeholders


def global_norm(grads):
    return ops.sqrt(ops.addn([ops.reduce_sum(g * g) for g in grads]))


class _Gradients(nn.Cell):
    """`(*batch) -> (loss parts, gradients)`, all-reduced (mean) across data-parallel workers."""

    def __init__(self, loss_cell: nn.Cell, optimizer: AdamW, world_size: int, loss_scaler=None):
        super().__init__()
        self.loss_cell = loss_cell
        self.grad_fn = ms.value_and_grad(self._scaled_loss, None, optimizer.params, has_aux=True)
        self.reducer = nn.DistributedGradReducer(optimizer.params, mean=True, degree=world_size) if world_size > 1 else None
        self.all_reduce = ops.AllReduce() if world_size > 1 else None
        self.world_size = world_size
        self.loss_scaler = loss_scaler

    def _scaled_loss(self, *batch):
        parts = self.loss_cell(*batch)
        if self.loss_scaler is None:
            return parts
        return (self.loss_scaler.scale(parts[0]),) + tuple(parts[1:])

    def construct(self, *batch):
        parts, grads = self.grad_fn(*batch)
        if self.loss_scaler is not None:
            grads = self.loss_scaler.unscale(grads)
            parts = (self.loss_scaler.unscale(parts[0]),) + tuple(parts[1:])
        if self.reducer is not None:
            grads = self.reducer(grads)
            # Report the losses over the whole global batch, not this worker's share of it.
            parts = tuple(self.all_reduce(p) / self.world_size for p in parts)
        return parts, grads


class TrainStep(nn.Cell):
    """One optimizer step on one batch: `step(lr, eps, decay, *batch) -> (*loss parts, grad_norm)`.

    `lr, eps, decay` are the scalars of `AdamW.scalars(step, lr)`; computing them on the host keeps the
    schedule out of the graph and the step a pure function of its inputs and the parameters.

    Args:
        loss_cell: returns a tuple of scalars named by its `loss_names`; the gradient is that of the first.
        optimizer: the `AdamW` over the parameters to train.
        max_grad_norm: clip gradients to this global norm (0 disables clipping).
        accumulate: micro-batches per optimizer step; above 1 use `accumulate_cell` for all but the last.
        world_size: data-parallel workers whose gradients are averaged.
        loss_scaler: a `mindspore.amp.DynamicLossScaler` for float16 training, else None.
    """

    def __init__(self, loss_cell: nn.Cell, optimizer: AdamW, max_grad_norm: float = 1.0, accumulate: int = 1,
                 world_size: int = 1, loss_scaler=None):
        super().__init__()
        self.loss_names = tuple(loss_cell.loss_names)
        self.gradients = _Gradients(loss_cell, optimizer, world_size, loss_scaler)
        self.optimizer = optimizer
        self.max_grad_norm = float(max_grad_norm)
        self.accumulate = int(accumulate)
        self.loss_scaler = loss_scaler
        self.buffers = optimizer.params.clone(prefix="grad_buffer", init="zeros") if accumulate > 1 else None
        self.accumulate_cell = _Accumulate(self.gradients, self.buffers) if accumulate > 1 else None

    def weights(self) -> dict[str, Parameter]:
        """What the loss cell holds (weights and dropout counters), by structural name: a model's state."""
        return named_parameters(self.gradients.loss_cell)

    def checkpoint_state(self) -> dict[str, Parameter]:
        """Everything a checkpoint must hold to resume exactly: `weights()`, the Adam moments and the loss scale."""
        state = self.weights()
        names = {id(p): name for name, p in state.items()}
        for param, m, v in zip(self.optimizer.params, self.optimizer.m, self.optimizer.v):
            state[f"optimizer.m.{names[id(param)]}"] = m
            state[f"optimizer.v.{names[id(param)]}"] = v
        if self.loss_scaler is not None:
            state["loss_scale.value"] = self.loss_scaler.scale_value
            state["loss_scale.counter"] = self.loss_scaler.counter
        return state

    def compile_for_any_length(self, batch) -> None:
        """Build one graph for batches of every shape like `batch` (one micro-batch of arrays), instead of
        one graph per batch length (see `TrainConfig.dynamic_length`)."""
        scalars = [Tensor(shape=[], dtype=ms.float32)] * 3
        self.set_inputs(*scalars, *any_shape(batch))
        if self.accumulate_cell is not None:
            self.accumulate_cell.set_inputs(*any_shape(batch))

    def train_on(self, micro_batches, step: int, lr: float) -> tuple[dict, float]:
        """Optimizer step number `step` (1-based) at learning rate `lr` on its `accumulate` micro-batches.

        Returns `({loss name: mean over the micro-batches}, gradient norm)`.
        """
        if len(micro_batches) != self.accumulate:
            raise ValueError(f"step {step} got {len(micro_batches)} micro-batches, the step accumulates {self.accumulate}")
        parts = [self.accumulate_cell(*map(Tensor, batch)) for batch in micro_batches[:-1]]
        *last, grad_norm = self(*self.optimizer.scalars(step, lr), *map(Tensor, micro_batches[-1]))
        parts.append(last)
        means = np.array([[float(x) for x in p] for p in parts]).mean(axis=0)
        return dict(zip(self.loss_names, means.tolist())), float(grad_norm)

    def construct(self, lr, eps, decay, *batch):
        parts, grads = self.gradients(*batch)
        if self.buffers is not None:
            grads = tuple((g + b) / self.accumulate for g, b in zip(grads, self.buffers))
            for b in self.buffers:
                ops.assign(b, ops.zeros_like(b))
        norm = global_norm(grads)
        if self.max_grad_norm > 0:
            scale = self.max_grad_norm / ops.maximum(norm, self.max_grad_norm)
            grads = tuple(g * scale for g in grads)
        if self.loss_scaler is None:
            self.optimizer(grads, lr, eps, decay)
        else:
            finite = ms.amp.all_finite(grads)
            self.loss_scaler.adjust(finite)
            if finite:
                self.optimizer(grads, lr, eps, decay)
        return parts + (norm,)


class _Accumulate(nn.Cell):
    """A micro-batch that is not the last of its step: add its gradients to the buffers."""

    def __init__(self, gradients: _Gradients, buffers):
        super().__init__()
        self.gradients = gradients
        self.buffers = buffers

    def construct(self, *batch):
        parts, grads = self.gradients(*batch)
        for b, g in zip(self.buffers, grads):
            ops.assign_add(b, g)
        return parts
